"""Every Graph evidence type parses into its own class, round-trips and has an identity."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from xdrsync.models import (
    Alert,
    DeviceEvidence,
    EntityKey,
    Evidence,
    FileEvidence,
    IpEvidence,
    KubernetesClusterEvidence,
    MalwareEvidence,
    ProcessEvidence,
    UnknownEvidence,
    UserEvidence,
    evidence_kind,
    parse_evidence,
    registered_types,
)

SAMPLES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "evidence_samples.json").read_text(encoding="utf-8")
)

# The v1.0 discriminator list of reference/microsoft-apis.md §2.6.
DOCUMENTED_TYPES = [
    "activeDirectoryDomainEvidence",
    "aiAgentEvidence",
    "amazonResourceEvidence",
    "analyzedMessageEvidence",
    "azureResourceEvidence",
    "blobContainerEvidence",
    "blobEvidence",
    "cloudApplicationEvidence",
    "cloudLogonRequestEvidence",
    "cloudLogonSessionEvidence",
    "containerEvidence",
    "containerImageEvidence",
    "containerRegistryEvidence",
    "deviceEvidence",
    "dnsEvidence",
    "fileEvidence",
    "fileHashEvidence",
    "gitHubOrganizationEvidence",
    "gitHubRepoEvidence",
    "gitHubUserEvidence",
    "googleCloudResourceEvidence",
    "hostLogonSessionEvidence",
    "ioTDeviceEvidence",
    "ipEvidence",
    "kubernetesClusterEvidence",
    "kubernetesControllerEvidence",
    "kubernetesNamespaceEvidence",
    "kubernetesPodEvidence",
    "kubernetesSecretEvidence",
    "kubernetesServiceAccountEvidence",
    "kubernetesServiceEvidence",
    "mailboxConfigurationEvidence",
    "mailboxEvidence",
    "mailClusterEvidence",
    "malwareEvidence",
    "networkConnectionEvidence",
    "nicEvidence",
    "oauthApplicationEvidence",
    "processEvidence",
    "registryKeyEvidence",
    "registryValueEvidence",
    "sasTokenEvidence",
    "securityGroupEvidence",
    "servicePrincipalEvidence",
    "submissionMailEvidence",
    "teamsMessageEvidence",
    "urlEvidence",
    "userEvidence",
]


def test_every_documented_type_has_its_own_class_and_a_sample() -> None:
    known = registered_types()
    for name in DOCUMENTED_TYPES:
        assert f"#microsoft.graph.security.{name}" in known, name
    assert len({cls for cls in known.values()}) == len(DOCUMENTED_TYPES)
    assert sorted(SAMPLES) == sorted(DOCUMENTED_TYPES)


@pytest.mark.parametrize("name", DOCUMENTED_TYPES)
def test_sample_parses_into_its_class_and_round_trips(name: str) -> None:
    payload = SAMPLES[name]["payload"]
    original = copy.deepcopy(payload)
    evidence = parse_evidence(payload)
    cls = registered_types()[f"#microsoft.graph.security.{name}"]
    assert type(evidence) is cls
    assert evidence.odata_type == payload["@odata.type"]
    assert evidence.kind == name.removesuffix("Evidence")
    assert evidence.to_graph() == payload
    assert payload == original  # parsing never touches the input
    assert evidence.raw is payload


@pytest.mark.parametrize("name", DOCUMENTED_TYPES)
def test_sample_has_stable_identity_and_label(name: str) -> None:
    sample = SAMPLES[name]
    evidence = parse_evidence(sample["payload"])
    assert evidence.entity_key() == EntityKey(*sample["key"])
    assert evidence.display_name() == sample["label"]
    # Same entity, parsed again from its own serialisation: same key.
    assert parse_evidence(evidence.to_graph()).entity_key() == evidence.entity_key()


@pytest.mark.parametrize("name", DOCUMENTED_TYPES)
def test_type_without_fields_yields_no_key_and_a_generic_label(name: str) -> None:
    evidence = parse_evidence({"@odata.type": f"#microsoft.graph.security.{name}"})
    assert evidence.entity_key() is None
    assert evidence.display_name() == evidence.kind


def test_odata_type_is_matched_without_regard_to_case_or_prefix() -> None:
    assert type(parse_evidence({"@odata.type": "#Microsoft.Graph.Security.DeviceEvidence"})) is (
        DeviceEvidence
    )
    assert type(parse_evidence({"@odata.type": "microsoft.graph.security.ipEvidence"})) is (
        IpEvidence
    )


def test_unknown_type_keeps_everything() -> None:
    payload = {
        "@odata.type": "#microsoft.graph.security.quantumEntanglementEvidence",
        "createdDateTime": "2030-01-01T00:00:00.0000001Z",
        "verdict": "Malicious",
        "roles": ["observer", "attacker"],
        "qubits": [{"id": 1, "spin": "up"}],
        "strange": None,
    }
    evidence = parse_evidence(payload)
    assert type(evidence) is UnknownEvidence
    assert evidence.kind == "quantumEntanglement"
    assert evidence.verdict == "malicious"
    assert [role.is_known for role in evidence.roles] == [False, True]
    assert evidence.entity_key() is None
    assert evidence.display_name() == "quantumEntanglement"
    assert evidence.to_graph() == payload


def test_evidence_without_odata_type_is_unknown() -> None:
    evidence = parse_evidence({"verdict": "unknown"})
    assert type(evidence) is UnknownEvidence
    assert evidence.kind == "unknown"
    assert evidence.odata_type is None
    assert evidence.to_graph() == {"verdict": "unknown"}


@pytest.mark.parametrize(
    ("odata_type", "kind"),
    [
        ("#microsoft.graph.security.fileHashEvidence", "fileHash"),
        (" #Microsoft.Graph.Security.FILEHASHEVIDENCE ", "fileHash"),  # found as parsing does
        ("#microsoft.graph.security.quantumEntanglementEvidence", "quantumEntanglement"),
        ("", "unknown"),
        (None, "unknown"),
        (["#microsoft.graph.security.fileHashEvidence"], "unknown"),  # hostile JSON
        ({"a": 1}, "unknown"),
    ],
)
def test_evidence_kind_is_the_kind_parsing_gives(odata_type: Any, kind: str) -> None:
    assert evidence_kind(odata_type) == kind
    if isinstance(odata_type, str) and odata_type:
        assert parse_evidence({"@odata.type": odata_type}).kind == kind


def test_nested_evidence_takes_the_declared_class_or_a_more_specific_one() -> None:
    malware = parse_evidence(SAMPLES["malwareEvidence"]["payload"])
    assert isinstance(malware, MalwareEvidence)
    # `processes` items carry no @odata.type: they are read as the declared class.
    assert type(malware.processes[0]) is ProcessEvidence
    assert malware.processes[0].odata_type is None
    assert type(malware.files[0]) is FileEvidence
    cluster = parse_evidence(SAMPLES["kubernetesClusterEvidence"]["payload"])
    assert isinstance(cluster, KubernetesClusterEvidence)
    # `cloudResource` is declared as any evidence: its @odata.type decides.
    assert cluster.cloud_resource is not None
    assert cluster.cloud_resource.kind == "azureResource"


def test_specific_class_reads_a_payload_of_another_type_as_itself() -> None:
    payload = {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.0.0.1"}
    as_device = DeviceEvidence.from_graph(payload)
    assert type(as_device) is DeviceEvidence
    assert as_device.to_graph() == payload  # nothing lost


def test_alert_evidence_list_dispatches_each_item() -> None:
    payloads = [SAMPLES[name]["payload"] for name in DOCUMENTED_TYPES]
    alert = Alert.from_graph({"id": "a1", "evidence": payloads})
    assert [type(e).__name__ for e in alert.evidence] == [
        registered_types()[p["@odata.type"]].__name__ for p in payloads
    ]
    assert all(isinstance(e, Evidence) for e in alert.evidence)
    assert alert.to_graph() == {"id": "a1", "evidence": payloads}


# -- identity rules -------------------------------------------------------------------------


def _device(**fields: Any) -> Evidence:
    return parse_evidence({"@odata.type": "#microsoft.graph.security.deviceEvidence", **fields})


def _user(**account: Any) -> Evidence:
    return parse_evidence(
        {"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": account}
    )


def test_device_identity_prefers_mde_id_then_entra_id_then_dns_name() -> None:
    everything = {
        "mdeDeviceId": "ABC123",
        "azureAdDeviceId": "5E0D7A1B-2C3D-4E5F-8A9B-0C1D2E3F4A5B",
        "deviceDnsName": "PC1.Contoso.com",
    }
    assert _device(**everything).entity_key() == EntityKey("device", "abc123")
    del everything["mdeDeviceId"]
    assert _device(**everything).entity_key() == EntityKey(
        "device", "5e0d7a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
    )
    del everything["azureAdDeviceId"]
    assert _device(**everything).entity_key() == EntityKey("device", "pc1.contoso.com")
    assert _device(hostName="PC1", dnsDomain="contoso.com").entity_key() == EntityKey(
        "device", "pc1.contoso.com"
    )


def test_user_identity_prefers_entra_id_then_sid_then_upn_then_down_level_name() -> None:
    account = {
        "azureAdUserId": "6F7AD1C4-0C8E-4A3B-8B33-7D2C8C1FDD6E",
        "userSid": "s-1-5-21-1-2-3-1104",
        "userPrincipalName": "KaiC@Contoso.com",
        "accountName": "KaiC",
        "domainName": "CONTOSO",
    }
    assert _user(**account).entity_key() == EntityKey(
        "user", "6f7ad1c4-0c8e-4a3b-8b33-7d2c8c1fdd6e"
    )
    del account["azureAdUserId"]
    assert _user(**account).entity_key() == EntityKey("user", "S-1-5-21-1-2-3-1104")
    del account["userSid"]
    assert _user(**account).entity_key() == EntityKey("user", "kaic@contoso.com")
    del account["userPrincipalName"]
    assert _user(**account).entity_key() == EntityKey("user", "contoso\\kaic")
    assert _user(accountName="kaic").entity_key() is None  # a bare name could be anyone
    assert _user(accountName="kaic").display_name() == "kaic"


def test_file_identity_falls_back_from_sha256_to_sha1_to_md5_to_path() -> None:
    def key(**details: Any) -> EntityKey | None:
        return parse_evidence(
            {"@odata.type": "#microsoft.graph.security.fileEvidence", "fileDetails": details}
        ).entity_key()

    assert key(sha1="AA", md5="BB") == EntityKey("file", "sha1:aa")
    assert key(md5="BB") == EntityKey("file", "md5:bb")
    assert key(fileName="A.EXE", filePath="C:\\Temp") == EntityKey("file", "path:c:\\temp\\a.exe")
    assert key(fileName="run.sh", filePath="/opt/App") == EntityKey("file", "path:/opt/App/run.sh")
    assert key() is None


def test_file_and_file_hash_evidence_of_one_file_share_a_key() -> None:
    file_key = parse_evidence(SAMPLES["fileEvidence"]["payload"]).entity_key()
    hash_key = parse_evidence(SAMPLES["fileHashEvidence"]["payload"]).entity_key()
    assert file_key == hash_key


def test_process_identity_needs_device_and_pid() -> None:
    payload = dict(SAMPLES["processEvidence"]["payload"])
    del payload["processCreationDateTime"]
    assert parse_evidence(payload).entity_key() == EntityKey(
        "process", "73e7e2de709dff64ef64b1d0c30e67fab63279db/4780"
    )
    del payload["mdeDeviceId"]
    assert parse_evidence(payload).entity_key() is None


def test_entity_keys_are_hashable_and_group_the_same_entity() -> None:
    a = _device(mdeDeviceId="ABC", hostName="pc1")
    b = _device(mdeDeviceId="abc", hostName="PC1")
    groups: dict[EntityKey | None, list[Evidence]] = {}
    for item in (a, b):
        groups.setdefault(item.entity_key(), []).append(item)
    assert list(groups) == [EntityKey("device", "abc")]
    assert str(EntityKey("device", "abc")) == "device:abc"
    kind, value = EntityKey("ip", "10.0.0.1")
    assert (kind, value) == ("ip", "10.0.0.1")


def test_user_and_nested_account_labels() -> None:
    assert isinstance(parse_evidence(SAMPLES["userEvidence"]["payload"]), UserEvidence)
    assert _user(displayName="Kai Carter").display_name() == "Kai Carter"
