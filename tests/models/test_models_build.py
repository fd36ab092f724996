"""Models built in code, changed copies, immutability and the convenience properties."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from xdrsync.models import (
    Alert,
    AlertStatus,
    Comment,
    DeviceEvidence,
    EvidenceRole,
    EvidenceVerdict,
    FileDetails,
    FileEvidence,
    Incident,
    IncidentStatus,
    IpEvidence,
    ServiceSource,
    Severity,
    UserAccount,
    UserEvidence,
    parse_evidence,
)

EXAMPLE = json.loads(
    (Path(__file__).parent / "data" / "list_incidents_expand_alerts.json").read_text("utf-8")
)["value"][0]


def built_incident() -> Incident:
    device = DeviceEvidence(
        mde_device_id="abc123",
        host_name="pc1",
        os_build=22631,
        roles=(EvidenceRole.COMPROMISED,),
        verdict=EvidenceVerdict.SUSPICIOUS,
        created_date_time=datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
    )
    user = UserEvidence(user_account=UserAccount(user_principal_name="kaic@contoso.com"))
    alert = Alert(
        id="da1",
        incident_id="42",
        title="Suspicious PowerShell",
        severity=Severity.HIGH,
        status=AlertStatus.NEW,
        service_source=ServiceSource.MICROSOFT_DEFENDER_FOR_ENDPOINT,
        mitre_techniques=("T1059.001",),
        additional_data={"key": ["value"]},
        evidence=(device, user),
        comments=(Comment(comment="seen", created_by_display_name="soc@contoso.com"),),
    )
    return Incident(
        id="42",
        display_name="Multi-stage incident",
        status=IncidentStatus.ACTIVE,
        severity=Severity.HIGH,
        custom_tags=("vip",),
        priority_score=90,
        created_date_time=datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        alerts=(alert,),
    )


def test_models_built_in_code_serialise_to_graph_json_that_parses_back_equal() -> None:
    incident = built_incident()
    graph = incident.to_graph()
    assert json.loads(json.dumps(graph)) == graph  # plain JSON types only
    assert graph["status"] == "active"
    assert graph["createdDateTime"] == "2024-05-01T10:00:00Z"  # converted to UTC
    assert graph["alerts"][0]["evidence"][0]["@odata.type"] == (
        "#microsoft.graph.security.deviceEvidence"
    )
    assert graph["alerts"][0]["evidence"][0]["createdDateTime"] == "2024-05-01T10:00:00.123456Z"
    assert "summary" not in graph  # unset fields are left out, not sent as null
    assert Incident.from_graph(graph) == incident
    assert incident.raw == graph


def test_models_built_from_graph_shaped_nested_dicts() -> None:
    alert = Alert(
        id="a",
        evidence=[{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.0.0.1"}],
    )
    assert isinstance(alert.evidence[0], IpEvidence)
    assert Alert(status="New").status == AlertStatus.NEW  # type: ignore[arg-type]


def test_changed_copies_serialise_their_changes_and_keep_the_rest() -> None:
    incident = Incident.from_graph(copy.deepcopy(EXAMPLE))
    changed = incident.model_copy(
        update={
            "status": IncidentStatus.RESOLVED,
            "assigned_to": None,
            "custom_tags": ("Demo", "triaged"),
        }
    )
    graph = changed.to_graph()
    assert graph["status"] == "resolved"
    assert graph["assignedTo"] is None
    assert graph["tags"] == ["Demo", "triaged"]  # written under the name it came with
    assert "customTags" not in graph
    expected = {k: v for k, v in EXAMPLE.items() if k not in {"status", "assignedTo", "tags"}}
    assert {k: v for k, v in graph.items() if k in expected} == expected
    assert incident.to_graph() == EXAMPLE  # the original is untouched


def test_same_meaning_keeps_the_original_spelling() -> None:
    incident = Incident.from_graph(
        {"status": "Active", "createdDateTime": "2024-05-01T10:00:00+00:00"}
    )
    same = incident.model_copy(
        update={
            "status": IncidentStatus.ACTIVE,
            "created_date_time": datetime(2024, 5, 1, 10, tzinfo=UTC),
        }
    )
    assert same.to_graph() == {"status": "Active", "createdDateTime": "2024-05-01T10:00:00+00:00"}


def test_changed_nested_evidence_is_serialised() -> None:
    alert = Alert.from_graph(copy.deepcopy(EXAMPLE["alerts"][0]))
    device = alert.evidence[0]
    assert isinstance(device, DeviceEvidence)
    updated = alert.model_copy(
        update={"evidence": (device.model_copy(update={"verdict": EvidenceVerdict.MALICIOUS}),)}
    )
    graph = updated.to_graph()
    assert len(graph["evidence"]) == 1
    assert graph["evidence"][0] == {**EXAMPLE["alerts"][0]["evidence"][0], "verdict": "malicious"}


def test_models_are_frozen() -> None:
    incident = Incident.from_graph({"id": "1"})
    with pytest.raises(ValidationError):
        incident.id = "2"  # type: ignore[misc]
    assert isinstance(incident.custom_tags, tuple)


def test_parsed_models_equal_fully_validated_ones() -> None:
    # from_graph assembles instances without a second pydantic pass; they must be
    # indistinguishable from validated ones.
    incident = Incident.from_graph(copy.deepcopy(EXAMPLE))
    for model in (incident, incident.alerts[0], *incident.alerts[0].evidence):
        revalidated = type(model).model_validate(dict(model.__dict__))
        assert revalidated == model
        assert list(revalidated.__dict__) == list(model.__dict__)
        assert model.model_fields_set >= {"raw"}
    assert incident.model_dump()["alerts"][0]["evidence"][0]["mde_device_id"] == (
        "73e7e2de709dff64ef64b1d0c30e67fab63279db"
    )
    assert json.loads(incident.model_dump_json())["status"] == "active"


def test_models_pickle() -> None:
    incident = Incident.from_graph(copy.deepcopy(EXAMPLE))
    restored = pickle.loads(pickle.dumps(incident))
    assert restored == incident
    assert restored.to_graph() == EXAMPLE


def test_parsing_the_same_payload_twice_gives_equal_models() -> None:
    assert Incident.from_graph(copy.deepcopy(EXAMPLE)) == Incident.from_graph(
        copy.deepcopy(EXAMPLE)
    )
    assert Incident.from_graph({"status": "Active"}) != Incident.from_graph({"status": "active"})


# -- convenience properties -----------------------------------------------------------------


def _alert(
    source: str | None, product_name: str | None = None, alert_id: str = "a"
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": alert_id}
    if source is not None:
        body["serviceSource"] = source
    if product_name is not None:
        body["productName"] = product_name
    return body


@pytest.mark.parametrize(
    ("source", "product_name", "product"),
    [
        ("microsoftDefenderForEndpoint", None, "Microsoft Defender for Endpoint"),
        ("MicrosoftDefenderForIdentity", None, "Microsoft Defender for Identity"),
        ("microsoftDefenderForOffice365", "Office 365 ATP", "Microsoft Defender for Office 365"),
        ("microsoftDefenderForCloudApps", None, "Microsoft Defender for Cloud Apps"),
        ("microsoft365Defender", None, "Microsoft Defender XDR"),
        ("azureAdIdentityProtection", None, "Microsoft Entra ID Protection"),
        ("microsoftSentinel", None, "Microsoft Sentinel"),
        ("microsoftDefenderForServers", None, "Microsoft Defender for Servers"),
        ("microsoftDefenderForIoT", "Defender for IoT", "Defender for IoT"),
        ("unknownFutureValue", "Contoso EDR", "Contoso EDR"),
        (None, None, "Microsoft Defender XDR"),
    ],
)
def test_alert_product(source: str | None, product_name: str | None, product: str) -> None:
    assert Alert.from_graph(_alert(source, product_name)).product == product


def test_incident_products_alert_ids_and_sources() -> None:
    incident = Incident.from_graph(
        {
            "id": "7",
            "alerts": [
                _alert("microsoftDefenderForEndpoint", alert_id="a1"),
                _alert("microsoftDefenderForOffice365", alert_id="a2"),
                _alert("MicrosoftDefenderForEndpoint", alert_id="a3"),
                {"title": "no id"},
            ],
        }
    )
    assert incident.alert_ids == ("a1", "a2", "a3")
    assert incident.product_names == (
        "Microsoft Defender for Endpoint",
        "Microsoft Defender for Office 365",
        "Microsoft Defender XDR",
    )
    assert incident.service_sources == {
        ServiceSource.MICROSOFT_DEFENDER_FOR_ENDPOINT,
        ServiceSource.MICROSOFT_DEFENDER_FOR_OFFICE365,
    }


@pytest.mark.parametrize(
    ("payload", "redirected"),
    [
        ({"status": "redirected", "redirectIncidentId": "99"}, True),
        ({"status": "Redirected"}, True),
        ({"status": "resolved", "redirectIncidentId": "99"}, True),
        ({"status": "active", "redirectIncidentId": None}, False),
        ({}, False),
    ],
)
def test_incident_is_redirected(payload: dict[str, Any], redirected: bool) -> None:
    assert Incident.from_graph(payload).is_redirected is redirected


def test_file_details_full_path() -> None:
    assert FileDetails(file_name="a.exe", file_path="C:\\Temp\\").full_path == "C:\\Temp\\a.exe"
    assert FileDetails(file_name="a.sh", file_path="/tmp").full_path == "/tmp/a.sh"
    assert FileDetails(file_name="a.sh").full_path == "a.sh"
    assert FileEvidence(file_details=FileDetails(file_name="a.sh")).display_name() == "a.sh"
    assert parse_evidence({}).display_name() == "unknown"
