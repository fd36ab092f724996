"""Graph incidents and alerts become the rows Microsoft's Sentinel connector would have written."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from graph_samples import (
    TENANT,
    all_incidents,
    benign_incident,
    false_positive_incident,
    multistage_incident,
    phishing_incident,
    redirected_incident,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.models import Alert, Incident
from xdrsync.models.errors import ModelError
from xdrsync.models.evidence_enums import EvidenceRole
from xdrsync.tables.alert_rows import alert_for_rows
from xdrsync.tables.evidence_columns import role_and_direction
from xdrsync.tables.schemas import table_schema
from xdrsync.tables.sentinel import (
    alert_evidence_rows,
    alert_info_row,
    incident_name,
    incident_rows,
    security_alert_row,
    security_incident_row,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KAI = "KaiC@contoso.onmicrosoft.com"


def incident_row(graph: dict[str, Any], **changes: Any) -> dict[str, Any]:
    graph.update(changes)
    return security_incident_row(Incident.from_graph(graph), time_generated=NOW)


def alert(graph_incident: dict[str, Any], index: int = 0) -> Alert:
    return Incident.from_graph(graph_incident).alerts[index]


def entities(row: dict[str, Any]) -> list[dict[str, Any]]:
    parsed: list[dict[str, Any]] = json.loads(row["Entities"])
    return parsed


# -- the value tables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "redirect_to", "expected"),
    [
        ("active", None, "New"),
        ("Active", None, "New"),  # Graph examples also use PascalCase
        ("inProgress", None, "Active"),
        ("awaitingAction", None, "Active"),
        ("resolved", None, "Closed"),
        ("redirected", "2972395", "Closed"),
    ],
)
def test_status_maps_as_the_connector_does(
    status: str, redirect_to: str | None, expected: str
) -> None:
    row = incident_row(multistage_incident(), status=status, redirectIncidentId=redirect_to)
    assert row["Status"] == expected


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("high", "High"),
        ("medium", "Medium"),
        ("low", "Low"),
        ("informational", "Informational"),
        ("High", "High"),
        ("unknown", "Informational"),
        (None, "Informational"),
        # A member newer than this version (Graph sends it as it is) must not read as the
        # lowest severity, which would hide it from `Severity == "High"` rules.
        ("critical", "High"),
    ],
)
def test_severity_maps_to_sentinels_four_values(severity: str | None, expected: str) -> None:
    assert incident_row(multistage_incident(), severity=severity)["Severity"] == expected


def test_an_alert_of_a_newer_severity_reads_as_high_in_every_alert_table() -> None:
    graph = multistage_incident()
    graph["alerts"][0]["severity"] = "critical"
    newer = alert(graph)
    assert security_alert_row(newer, time_generated=NOW)["AlertSeverity"] == "High"
    assert alert_info_row(newer, time_generated=NOW)["Severity"] == "High"
    rows = alert_evidence_rows(newer, time_generated=NOW)
    assert rows and {r["Severity"] for r in rows} == {"High"}


@pytest.mark.parametrize(
    ("classification", "determination", "status", "expected"),
    [
        ("truePositive", "multiStagedAttack", "active", ("TruePositive", "SuspiciousActivity")),
        ("truePositive", "malware", "resolved", ("TruePositive", "SuspiciousActivity")),
        ("TruePositive", "phishing", "resolved", ("TruePositive", "SuspiciousActivity")),
        ("falsePositive", "notMalicious", "resolved", ("FalsePositive", "InaccurateData")),
        ("falsePositive", "notEnoughDataToValidate", "resolved", ("FalsePositive", "InaccurateData")),
        ("informationalExpectedActivity", "securityTesting", "resolved", ("BenignPositive", "SuspiciousButExpected")),
        ("informationalExpectedActivity", "lineOfBusinessApplication", "resolved", ("BenignPositive", "SuspiciousButExpected")),
        ("unknown", "unknown", "resolved", ("Undetermined", None)),
        ("unknown", "unknown", "active", (None, None)),
    ],
)  # fmt: skip
def test_classification_and_determination_collapse_into_classification_and_reason(
    classification: str, determination: str, status: str, expected: tuple[str | None, str | None]
) -> None:
    row = incident_row(
        multistage_incident(),
        classification=classification,
        determination=determination,
        status=status,
    )
    assert (row["Classification"], row["ClassificationReason"]) == expected


@pytest.mark.parametrize(
    ("sample", "index", "product", "provider"),
    [
        (multistage_incident, 0, "Microsoft Defender Advanced Threat Protection", "MDATP"),
        (multistage_incident, 1, "Azure Advanced Threat Protection", "Azure Advanced Threat Protection"),
        (phishing_incident, 0, "Office 365 Advanced Threat Protection", "OATP"),
        (phishing_incident, 1, "Microsoft Cloud App Security", "MCAS"),
        (benign_incident, 0, "Azure Active Directory Identity Protection", "IPC"),
    ],
)  # fmt: skip
def test_alert_product_and_provider_names_per_service(
    sample: Any, index: int, product: str, provider: str
) -> None:
    row = security_alert_row(alert(sample(), index), time_generated=NOW)
    assert (row["ProductName"], row["ProviderName"], row["VendorName"]) == (
        product,
        provider,
        "Microsoft",
    )


def test_an_alert_from_a_service_sentinel_never_named_keeps_graphs_product_name() -> None:
    graph = multistage_incident()
    graph["alerts"][0].update(serviceSource="microsoftSecurityForAI", productName="Security for AI")
    row = security_alert_row(alert(graph), time_generated=NOW)
    assert (row["ProductName"], row["ProviderName"]) == ("Security for AI", "Security for AI")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("new", "New"),
        ("inProgress", "InProgress"),
        ("resolved", "Resolved"),
        ("unknown", "Unknown"),
    ],
)
def test_alert_status_vocabulary(status: str, expected: str) -> None:
    graph = multistage_incident()
    graph["alerts"][0]["status"] = status
    assert security_alert_row(alert(graph), time_generated=NOW)["Status"] == expected


# -- every column, every row ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(all_incidents()))
def test_every_row_has_exactly_the_schema_columns(name: str) -> None:
    rows = incident_rows(Incident.from_graph(all_incidents()[name]), time_generated=NOW)
    for table, table_rows in rows.items():
        for row in table_rows:
            assert tuple(row) == table_schema(table).column_names
            assert row["Type"] == table
            assert row["TimeGenerated"] == NOW
            assert row["TenantId"] == TENANT


# -- SecurityIncident ---------------------------------------------------------------------


def test_incident_row_of_the_multistage_incident() -> None:
    row = incident_row(multistage_incident())
    assert row["IncidentNumber"] == 2972395
    assert row["ProviderIncidentId"] == "2972395"
    assert row["ProviderName"] == "Microsoft XDR"
    assert row["Title"].startswith("Multi-stage incident involving Initial access")
    assert row["Owner"] == {
        "objectId": None,
        "email": KAI,
        "assignedTo": KAI,
        "userPrincipalName": KAI,
    }
    assert row["Labels"] == [
        {"labelName": "Demo", "labelType": "User"},
        {"labelName": "Defender Experts", "labelType": "AutoAssigned"},
    ]
    assert row["AlertIds"] == [
        "da637551227677560813_-961444813",
        "aad1f6e9a1-3d2b-4c5e-8f7a-9b0c1d2e3f4a",
    ]
    assert row["Comments"] == [
        {
            "message": "Demo incident",
            "createdTimeUtc": "2021-09-30T12:07:37.275699Z",
            "author": {
                "name": "DavidS@contoso.onmicrosoft.com",
                "email": "DavidS@contoso.onmicrosoft.com",
                "userPrincipalName": "DavidS@contoso.onmicrosoft.com",
                "objectId": None,
            },
        }
    ]
    assert row["AdditionalData"] == {
        "alertsCount": 2,
        "bookmarksCount": 0,
        "commentsCount": 1,
        "alertProductNames": [
            "Microsoft Defender Advanced Threat Protection",
            "Azure Advanced Threat Protection",
        ],
        "tactics": ["DefenseEvasion", "Execution", "LateralMovement", "CredentialAccess"],
        "techniques": ["T1564", "T1059", "T1550"],
        "providerIncidentUrl": f"https://security.microsoft.com/incidents/2972395?tid={TENANT}",
    }
    # Activity spans the alerts: the MDI alert started first, and ended last.
    assert row["FirstActivityTime"] == datetime(2021, 4, 25, 22, 10, tzinfo=UTC)
    assert row["LastActivityTime"] == datetime(2021, 5, 3, 1, 0, tzinfo=UTC)
    assert row["CreatedTime"] == datetime(2021, 8, 13, 8, 43, 35, 553333, tzinfo=UTC)
    assert row["LastModifiedTime"] == datetime(2021, 9, 30, 9, 35, 45, 113333, tzinfo=UTC)
    assert row["ClosedTime"] is None
    assert row["ModifiedBy"] == "DavidS@contoso.onmicrosoft.com"
    assert row["IncidentUrl"] == f"https://security.microsoft.com/incidents/2972395?tid={TENANT}"
    assert (row["SourceSystem"], row["BookmarkIds"], row["RelatedAnalyticRuleIds"]) == (
        "Azure",
        [],
        [],
    )


def test_incident_name_is_a_stable_guid_per_tenant_and_incident() -> None:
    first = incident_row(multistage_incident())["IncidentName"]
    later = incident_row(multistage_incident(), status="resolved", severity="high")
    assert later["IncidentName"] == first
    assert uuid.UUID(first).version == 5
    assert incident_name("other-tenant", "2972395") != first
    assert incident_name(TENANT, "2972396") != first


def test_unassigned_incident_has_an_empty_owner_object() -> None:
    row = incident_row(phishing_incident())
    assert row["Owner"] == {
        "objectId": None,
        "email": None,
        "assignedTo": None,
        "userPrincipalName": None,
    }


def test_an_assignee_that_is_not_an_address_is_only_the_assigned_name() -> None:
    row = incident_row(phishing_incident(), assignedTo="Tier 2 queue")
    assert row["Owner"]["assignedTo"] == "Tier 2 queue"
    assert row["Owner"]["email"] is None


def test_closed_incident_carries_resolution() -> None:
    row = incident_row(false_positive_incident())
    assert row["Status"] == "Closed"
    assert row["ClassificationComment"] == "Nightly build runs this script."
    # Closed when first read: closure is when its alerts were resolved, not the later
    # bookkeeping update.
    assert row["ClosedTime"] == datetime(2021, 9, 20, 16, 0, tzinfo=UTC)


def test_merged_incident_is_closed_and_tagged_redirected() -> None:
    row = incident_row(redirected_incident())
    assert row["Status"] == "Closed"
    assert row["Classification"] == "Undetermined"
    assert row["Labels"] == [{"labelName": "Redirected", "labelType": "AutoAssigned"}]
    assert row["ClosedTime"] == datetime(2021, 8, 13, 9, 0, tzinfo=UTC)
    assert row["AlertIds"] == []
    assert row["AdditionalData"]["alertsCount"] == 0
    # Its comments were not moved by the merge, so they stay on its row.
    assert row["AdditionalData"]["commentsCount"] == 1


def test_a_redirected_tag_from_defender_is_not_duplicated() -> None:
    row = incident_row(redirected_incident(), customTags=["Redirected"])
    assert [lb["labelName"] for lb in row["Labels"]] == ["Redirected"]


def test_tenant_falls_back_to_the_configured_tenant() -> None:
    graph = multistage_incident()
    graph["tenantId"] = None
    row = security_incident_row(
        Incident.from_graph(graph), time_generated=NOW, workspace_tenant_id="configured"
    )
    assert row["TenantId"] == "configured"
    assert row["IncidentName"] == incident_name("configured", "2972395")


# -- SecurityAlert --------------------------------------------------------------------------


def test_alert_row_of_the_endpoint_alert() -> None:
    row = security_alert_row(alert(multistage_incident()), time_generated=NOW)
    assert row["SystemAlertId"] == "da637551227677560813_-961444813"
    assert row["VendorOriginalId"] == "da637551227677560813"
    assert row["AlertName"] == row["DisplayName"] == "Suspicious execution of hidden file"
    assert row["AlertSeverity"] == "Medium"
    assert row["Status"] == "New"
    assert row["Tactics"] == "DefenseEvasion, Execution"
    assert json.loads(row["Techniques"]) == ["T1564", "T1059"]
    assert json.loads(row["SubTechniques"]) == ["T1564.001"]
    assert row["CompromisedEntity"] == "WS-0142.contoso.com"
    assert row["StartTime"] == datetime(2021, 4, 26, 7, 45, 50, 116000, tzinfo=UTC)
    assert row["EndTime"] == datetime(2021, 5, 2, 7, 56, 58, 222000, tzinfo=UTC)
    assert row["AlertLink"].startswith("https://security.microsoft.com/alerts/")
    assert row["IsIncident"] is False
    assert row["SourceSystem"] == "Detection"
    assert json.loads(row["RemediationSteps"]) == ["Collect artifacts and determine scope"]
    props = json.loads(row["ExtendedProperties"])
    assert props["IncidentId"] == "2972395"
    assert props["ThreatName"] == "Trojan:Win32/Wacatac"
    assert props["ThreatFamilyName"] == "Wacatac"
    assert props["DetectionSource"] == "antivirus"
    assert props["ServiceSource"] == "microsoftDefenderForEndpoint"
    assert props["MitreTechniques"] == ["T1564.001", "T1059"]


def test_entities_are_sentinel_entity_objects() -> None:
    found = entities(security_alert_row(alert(multistage_incident()), time_generated=NOW))
    by_id = {e["$id"]: e for e in found}
    assert len(by_id) == len(found)
    types = [e["Type"] for e in found]
    for expected in (
        "host",
        "file",
        "filehash",
        "process",
        "account",
        "registry-key",
        "registry-value",
        "ip",
        "url",
    ):
        assert expected in types  # fmt: skip
    host = next(e for e in found if e["Type"] == "host")
    assert host["HostName"] == "WS-0142"
    assert host["DnsDomain"] == "contoso.com"
    assert host["MdatpDeviceId"] == "73e7e2de709dff64ef64b1d0c30e67fab63279db"
    assert host["OSFamily"] == "Windows"
    assert host["RiskScore"] == "Medium"
    image = next(e for e in found if e["Type"] == "file" and e["Name"] == "MsSense.exe")
    assert image["Directory"] == "C:\\Program Files\\temp"
    hashes = {
        by_id[ref["$ref"]]["Algorithm"]: by_id[ref["$ref"]]["Value"] for ref in image["FileHashes"]
    }
    assert hashes == {
        "SHA1": "5f1e8acedc065031aad553b710838eb366cfee9a",
        "SHA256": "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec",
    }
    process = next(e for e in found if e["Type"] == "process" and e.get("CommandLine"))
    assert process["ProcessId"] == "4780"
    assert by_id[process["ImageFile"]["$ref"]] == image
    assert by_id[process["Account"]["$ref"]]["Sid"] == "S-1-5-18"
    parent = by_id[process["ParentProcess"]["$ref"]]
    assert by_id[parent["ImageFile"]["$ref"]]["Name"] == "services.exe"
    value = next(e for e in found if e["Type"] == "registry-value")
    assert (value["Name"], value["Value"]) == ("Start", "31-00-00-00")
    assert by_id[value["Key"]["$ref"]]["Hive"] == "HKEY_LOCAL_MACHINE"
    ip = next(e for e in found if e["Type"] == "ip")
    assert ip == {
        "$id": ip["$id"],
        "Address": "198.51.100.23",
        "Location": {"CountryCode": "NL"},
        "Type": "ip",
    }
    # The same file as evidence and as the process image is one entity, not two.
    assert sum(1 for e in found if e["Type"] == "file" and e["Name"] == "MsSense.exe") == 1


def test_identity_mail_and_cloud_entities() -> None:
    account = next(
        e
        for e in entities(security_alert_row(alert(multistage_incident(), 1), time_generated=NOW))
        if e["Type"] == "account"
    )
    assert account["Name"] == "kaic"
    assert account["UPNSuffix"] == "contoso.onmicrosoft.com"
    assert account["AadUserId"] == "5e5b3d1a-4f7c-4a2b-9a0e-5f1c2a3b4c5d"
    assert account["NTDomain"] == "CONTOSO"
    mail = {
        e["Type"]: e
        for e in entities(security_alert_row(alert(phishing_incident()), time_generated=NOW))
    }
    assert mail["mailbox"]["MailboxPrimaryAddress"] == KAI
    assert mail["mailMessage"]["NetworkMessageId"] == "4a1e7e6c-3f7d-4c52-8e8e-08d9833a1b2c"
    assert mail["mailMessage"]["Sender"] == "it-support@phish.example"
    assert mail["mailMessage"]["DeliveryAction"] == "Delivered"
    assert mail["mailCluster"]["MailCount"] == 12
    assert mail["url"]["Url"] == "https://login.phish.example/owa"
    cloud = {
        e["Type"]: e
        for e in entities(security_alert_row(alert(phishing_incident(), 1), time_generated=NOW))
    }
    assert cloud["cloud-application"]["AppId"] == 20893
    assert cloud["cloud-application"]["Name"] == "Microsoft Exchange Online"
    assert cloud["oauth-application"]["OAuthAppId"] == "0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def test_evidence_sentinel_has_no_entity_for_keeps_its_properties() -> None:
    found = entities(security_alert_row(alert(benign_incident()), time_generated=NOW))
    pod = next(e for e in found if e["Type"] == "kubernetes-pod")
    assert pod["Name"] == "api-7d9f"
    assert pod["Namespace"] == {"name": "prod"}


def test_an_unknown_types_own_id_and_ref_leave_the_entity_its_identity() -> None:
    """An evidence type the models do not know becomes an entity of its own properties. Ones
    named `$id` and `$ref` took the place of the entity's id, or made it read as a link to
    another entity, so other entities' links missed it; they stay in AdditionalFields."""
    graph = benign_incident()
    odd = {
        "@odata.type": "#microsoft.graph.security.fooEvidence",
        "createdDateTime": "2024-05-01T10:00:00Z",
        "$id": "1",
        "$ref": "2",
        "name": "odd",
    }
    graph["alerts"][0]["evidence"] = [*graph["alerts"][0]["evidence"], odd]
    found = entities(security_alert_row(alert(graph), time_generated=NOW))
    assert [e["$id"] for e in found] == [str(n) for n in range(1, len(found) + 1)]
    foo = next(e for e in found if e["Type"] == "foo")
    assert "$ref" not in foo
    assert foo["Name"] == "odd"
    rows = alert_evidence_rows(alert(graph), time_generated=NOW)
    kept = next(r for r in rows if r["EntityType"] == "Foo")["AdditionalFields"]
    assert (kept["$id"], kept["$ref"]) == ("1", "2")


# -- AlertInfo / AlertEvidence ------------------------------------------------------------------


def test_alert_info_row() -> None:
    row = alert_info_row(alert(multistage_incident()), time_generated=NOW)
    assert row["AlertId"] == "da637551227677560813_-961444813"
    assert row["Category"] == "DefenseEvasion"
    assert row["ServiceSource"] == "Microsoft Defender for Endpoint"
    assert row["DetectionSource"] == "Antivirus"
    assert json.loads(row["AttackTechniques"]) == ["T1564.001", "T1059"]


def test_one_evidence_row_per_evidence_item_with_its_key_fields() -> None:
    source = alert(multistage_incident())
    rows = alert_evidence_rows(source, time_generated=NOW)
    assert len(rows) == len(source.evidence)
    by_type = {r["EntityType"]: r for r in rows}
    assert list(by_type) == [
        "Machine",
        "File",
        "Process",
        "RegistryKey",
        "RegistryValue",
        "Ip",
        "Url",
    ]
    machine = by_type["Machine"]
    assert (machine["DeviceId"], machine["DeviceName"]) == (
        "73e7e2de709dff64ef64b1d0c30e67fab63279db",
        "WS-0142.contoso.com",
    )
    assert (machine["EvidenceRole"], machine["LocalIP"]) == ("Impacted", "10.1.2.3")
    assert by_type["File"]["SHA256"].startswith("8963a19f")
    assert by_type["File"]["FileSize"] == 6136392
    assert by_type["File"]["EvidenceRole"] == "Related"
    assert by_type["Process"]["ProcessCommandLine"] == '"MsSense.exe" -hidden'
    assert by_type["Process"]["AccountSid"] == "S-1-5-18"
    assert (
        by_type["RegistryKey"]["RegistryKey"]
        == "HKEY_LOCAL_MACHINE\\SYSTEM\\CONTROLSET001\\Services\\SENSE"
    )
    assert by_type["RegistryValue"]["RegistryValueName"] == "Start"
    assert by_type["Ip"]["RemoteIP"] == "198.51.100.23"
    assert by_type["Ip"]["EvidenceDirection"] == "Destination"
    assert by_type["Url"]["RemoteUrl"] == "http://malicious.example.net/stage2"
    for row in rows:
        assert row["AlertId"] == source.id
        assert row["Title"] == "Suspicious execution of hidden file"
        assert json.loads(row["Categories"]) == ["DefenseEvasion", "Execution"]
        assert row["ServiceSource"] == "Microsoft Defender for Endpoint"
        assert row["Severity"] == "Medium"
        assert row["Timestamp"] == datetime(2021, 4, 27, 12, 19, 27, 721130, tzinfo=UTC)
    # AdditionalFields is the whole Graph evidence item.
    assert rows[0]["AdditionalFields"] == multistage_incident()["alerts"][0]["evidence"][0]


@pytest.mark.parametrize(
    "odata_type",
    [
        "#microsoft.graph.security.DeviceEvidence",
        " #microsoft.graph.security.deviceevidence ",
        "#Microsoft.Graph.Security.deviceEVIDENCE",
    ],
)
def test_an_evidence_type_in_another_spelling_maps_as_its_model_parses(odata_type: str) -> None:
    # Parsing finds the model class without regard to case or stray spaces; the hub's
    # evidence rows, the entities and the AlertEvidence columns use the same rule.
    graph = multistage_incident()
    graph["alerts"][0]["evidence"][0]["@odata.type"] = odata_type  # the device
    source = alert(graph)
    assert source.evidence[0].kind == "device"
    host = entities(security_alert_row(source, time_generated=NOW))[0]
    assert (host["Type"], host["HostName"]) == ("host", "WS-0142")
    row = alert_evidence_rows(source, time_generated=NOW)[0]
    assert (row["EntityType"], row["DeviceName"]) == ("Machine", "WS-0142.contoso.com")


@pytest.mark.parametrize(
    "evidence", ["not a list", {"@odata.type": "x"}, [{"ok": 1}, "not an object"], [None]]
)
def test_evidence_that_is_not_a_list_of_objects_fails_as_the_model_parse_does(
    evidence: Any,
) -> None:
    graph = multistage_incident()["alerts"][0]
    graph["evidence"] = evidence
    with pytest.raises(ModelError, match="evidence"):
        alert_for_rows(graph)


def _without_evidence(graph: dict[str, Any]) -> Alert:
    return Alert.from_graph({k: v for k, v in graph.items() if k != "evidence"})


@pytest.mark.parametrize("name", sorted(all_incidents()))
def test_alert_rows_from_the_evidence_json_are_those_of_the_parsed_evidence(name: str) -> None:
    # The log tables' worker parses an alert without its evidence and hands the evidence's
    # JSON to the mapping; its rows must be those of the fully parsed alert.
    for graph in all_incidents()[name]["alerts"]:
        full = Alert.from_graph(graph)
        shallow, items = _without_evidence(graph), graph.get("evidence") or []
        assert items, "every sample alert has evidence"
        assert security_alert_row(shallow, time_generated=NOW, evidence=items) == (
            security_alert_row(full, time_generated=NOW)
        )
        assert alert_evidence_rows(shallow, time_generated=NOW, evidence=items) == (
            alert_evidence_rows(full, time_generated=NOW)
        )


ROLES = [*EvidenceRole.MEMBERS, "policyViolator", "attacker", "somethingNew"]


@settings(max_examples=80, deadline=None)
@given(
    roles=st.lists(
        st.tuples(st.sampled_from(ROLES), st.sampled_from([str.lower, str.upper, str.title])),
        max_size=3,
    ),
    detailed=st.lists(st.sampled_from(["main", "MainEntity", "parent", "target"]), max_size=2),
    created=st.sampled_from(
        [
            None,
            "2021-04-27T12:19:27.7211305Z",
            "2021-04-27T12:19:27z",
            "2021-04-27T14:19:27.72+02:00",
            "2021-04-27T12:19:27",
        ]
    ),
)
def test_evidence_read_from_its_json_means_what_its_model_holds(
    roles: list[tuple[str, Any]], detailed: list[str], created: str | None
) -> None:
    graph = multistage_incident()["alerts"][0]
    item = {**graph["evidence"][0], "roles": [case(r) for r, case in roles]}
    item["detailedRoles"] = detailed
    item["createdDateTime"] = created
    graph["evidence"] = [item]
    model = Alert.from_graph(graph).evidence[0]
    (row,) = alert_evidence_rows(_without_evidence(graph), time_generated=NOW, evidence=[item])
    assert row["Timestamp"] == (
        model.created_date_time or Alert.from_graph(graph).created_date_time
    )
    roles = [str(r) for r in model.roles]
    assert (row["EvidenceRole"], row["EvidenceDirection"]) == role_and_direction(roles, detailed)


def test_identity_mail_and_app_evidence_columns() -> None:
    mail = {
        r["EntityType"]: r
        for r in alert_evidence_rows(alert(phishing_incident()), time_generated=NOW)
    }
    assert mail["Mailbox"]["AccountUpn"] == KAI
    assert mail["MailMessage"]["NetworkMessageId"] == "4a1e7e6c-3f7d-4c52-8e8e-08d9833a1b2c"
    assert mail["MailMessage"]["EmailSubject"] == "Action required: verify your mailbox"
    apps = {
        r["EntityType"]: r
        for r in alert_evidence_rows(alert(phishing_incident(), 1), time_generated=NOW)
    }
    assert (apps["User"]["AccountName"], apps["User"]["AccountUpn"]) == ("kaic", KAI)
    assert apps["User"]["AccountObjectId"] == "5e5b3d1a-4f7c-4a2b-9a0e-5f1c2a3b4c5d"
    assert (apps["CloudApplication"]["ApplicationId"], apps["CloudApplication"]["Application"]) == (
        20893,
        "Microsoft Exchange Online",
    )
    assert apps["OAuthApplication"]["OAuthApplicationId"] == "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    assert apps["Ip"]["EvidenceDirection"] == "Source"
    unknown = alert_evidence_rows(alert(benign_incident()), time_generated=NOW)[1]
    assert unknown["EntityType"] == "KubernetesPod"


# -- properties over any enum combination ----------------------------------------------------

STATUSES = [
    "active",
    "inProgress",
    "resolved",
    "redirected",
    "awaitingAction",
    "Active",
    "Resolved",
]
SEVERITIES = ["unknown", "informational", "low", "medium", "high", "High", "Medium"]
CLASSIFICATIONS = ["unknown", "falsePositive", "truePositive", "informationalExpectedActivity"]


@settings(max_examples=60, deadline=None)
@given(
    status=st.sampled_from(STATUSES),
    severity=st.sampled_from(SEVERITIES),
    classification=st.sampled_from(CLASSIFICATIONS),
    custom=st.lists(st.text(min_size=1, max_size=12), max_size=4),
    system=st.lists(st.sampled_from(["Defender Experts", "Redirected", "Ransomware"]), max_size=2),
)
def test_any_incident_maps_into_sentinels_vocabulary(
    status: str, severity: str, classification: str, custom: list[str], system: list[str]
) -> None:
    graph = multistage_incident()
    graph.update(
        status=status,
        severity=severity,
        classification=classification,
        customTags=custom,
        systemTags=system,
        redirectIncidentId="1" if status == "redirected" else None,
    )
    row = security_incident_row(Incident.from_graph(graph), time_generated=NOW)
    assert tuple(row) == table_schema("SecurityIncident").column_names
    assert row["Status"] in {"New", "Active", "Closed"}
    assert row["Severity"] in {"High", "Medium", "Low", "Informational"}
    assert row["Classification"] in {
        None,
        "TruePositive",
        "FalsePositive",
        "BenignPositive",
        "Undetermined",
    }
    assert (row["Classification"] is None) == (
        row["Status"] != "Closed" and classification == "unknown"
    )
    assert (row["ClosedTime"] is None) == (row["Status"] != "Closed")
    names = [lb["labelName"] for lb in row["Labels"]]
    assert len(names) == len(set(names)) or set(custom) & set(system)  # tags kept once per kind
    assert all(lb["labelType"] in {"User", "AutoAssigned"} for lb in row["Labels"])
    if status == "redirected":
        assert "redirected" in {n.lower() for n in names}
    json.dumps(row["Labels"])  # dynamic columns stay plain JSON


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"@odata.type": "#microsoft.graph.security.file", "fileDetails": "x"}, None),
        ({"@odata.type": "#microsoft.graph.security.user", "userAccount": ["x"]}, None),
        ({"@odata.type": "file", "fileDetails": {"fileName": "a", "fileSize": "big"}}, None),
        ({"@odata.type": "file", "fileDetails": {"fileName": "a", "fileSize": 1.5}}, None),
        ({"@odata.type": "file", "fileDetails": {"fileName": "a", "fileSize": 2**70}}, None),
        ({"@odata.type": "file", "fileDetails": {"fileName": "a", "fileSize": True}}, None),
        ({"@odata.type": "file", "fileDetails": {"fileName": "a", "fileSize": 7}}, 7),
    ],
)
def test_evidence_of_an_unknown_type_in_odd_shapes_still_makes_its_rows(
    item: dict[str, Any], size: int | None
) -> None:
    """Evidence types the models do not know are kept as Graph sent them, in any shape: their
    rows take what fits and leave the rest out, instead of failing the alert's rows."""
    graph = multistage_incident()["alerts"][0]
    shallow, items = _without_evidence(graph), [item]
    (row,) = alert_evidence_rows(shallow, time_generated=NOW, evidence=items)
    assert row.get("FileSize") == size
    security_alert_row(shallow, time_generated=NOW, evidence=items)  # the entities too
