"""Microsoft Graph documentation example payloads parse into typed models and round-trip."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from xdrsync.models import (
    Alert,
    AlertStatus,
    Classification,
    Comment,
    DetectionSource,
    Determination,
    DeviceEvidence,
    DeviceHealthStatus,
    EntityKey,
    EvidenceRole,
    FileEvidence,
    Incident,
    IncidentStatus,
    ProcessEvidence,
    RegistryKeyEvidence,
    ServiceSource,
    Severity,
    VmCloudProvider,
)

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["list_incidents.json", "list_incidents_expand_alerts.json"])
def test_listed_incidents_round_trip_exactly(name: str) -> None:
    for item in load(name)["value"]:
        original = copy.deepcopy(item)
        incident = Incident.from_graph(item)
        assert incident.to_graph() == original
        assert item == original


def test_get_alert_round_trips_exactly() -> None:
    payload = load("get_alert.json")
    assert Alert.from_graph(payload).to_graph() == payload


def test_list_incidents_example_is_typed() -> None:
    incident = Incident.from_graph(load("list_incidents.json")["value"][0])
    assert incident.id == "2972395"
    # PascalCase values in this example parse to the same members as camelCase ones.
    assert incident.status == IncidentStatus.ACTIVE
    assert incident.status.wire == "Active"
    assert incident.severity == Severity.MEDIUM
    assert incident.classification == Classification.TRUE_POSITIVE
    assert incident.determination == Determination.MULTI_STAGED_ATTACK
    assert incident.created_date_time == datetime(2021, 8, 13, 8, 43, 35, 553333, tzinfo=UTC)
    assert incident.created_date_time.utcoffset() is not None
    assert incident.custom_tags == ("Demo",)
    assert incident.system_tags == ("Defender Experts",)
    assert incident.redirect_incident_id is None
    assert incident.assigned_to == "KaiC@contoso.onmicrosoft.com"
    assert incident.alerts == ()
    assert incident.is_redirected is False


def test_legacy_comment_shape_is_understood() -> None:
    incident = Incident.from_graph(load("list_incidents.json")["value"][0])
    (comment,) = incident.comments
    assert isinstance(comment, Comment)
    assert comment.comment == "Demo incident"
    assert comment.created_by_display_name == "DavidS@contoso.onmicrosoft.com"
    assert comment.created_date_time == datetime(2021, 9, 30, 12, 7, 37, 275699, tzinfo=UTC)
    # ... and written back under the names it came with.
    assert set(comment.to_graph()) == {"comment", "createdBy", "createdTime"}


def test_current_comment_shape_wins_over_legacy_names() -> None:
    payload = {
        "comment": "x",
        "createdByDisplayName": "new@contoso.com",
        "createdBy": "old@contoso.com",
        "createdDateTime": "2024-01-01T00:00:00Z",
    }
    comment = Comment.from_graph(payload)
    assert comment.created_by_display_name == "new@contoso.com"
    assert comment.to_graph() == payload
    changed = comment.model_copy(update={"created_by_display_name": "other@contoso.com"})
    assert changed.to_graph() == {**payload, "createdByDisplayName": "other@contoso.com"}


def test_expanded_alerts_and_their_evidence_are_typed() -> None:
    incident = Incident.from_graph(load("list_incidents_expand_alerts.json")["value"][0])
    assert incident.custom_tags == ("Demo",)  # this example spells customTags `tags`
    (alert,) = incident.alerts
    assert incident.alert_ids == ("da637551227677560813_-961444813",)
    assert alert.status == AlertStatus.NEW
    assert alert.service_source == ServiceSource.MICROSOFT_DEFENDER_FOR_ENDPOINT
    assert alert.detection_source == DetectionSource.ANTIVIRUS
    assert alert.product == "Microsoft Defender for Endpoint"
    assert incident.product_names == ("Microsoft Defender for Endpoint",)
    assert incident.service_sources == {ServiceSource.MICROSOFT_DEFENDER_FOR_ENDPOINT}
    assert alert.mitre_techniques == ("T1564.001",)
    assert alert.resolved_date_time is None
    assert alert.first_activity_date_time == datetime(2021, 4, 26, 7, 45, 50, 116000, tzinfo=UTC)
    assert alert.comments == ()
    device, file, process, registry = alert.evidence
    assert isinstance(device, DeviceEvidence)
    assert device.health_status == DeviceHealthStatus.ACTIVE
    assert device.os_build == 22424
    assert device.roles == (EvidenceRole.COMPROMISED,)
    assert device.detailed_roles == ("Main device",)
    assert device.vm_metadata is not None
    assert device.vm_metadata.cloud_provider == VmCloudProvider.AZURE
    assert device.display_name() == "tempDns"
    assert device.entity_key() == EntityKey("device", "73e7e2de709dff64ef64b1d0c30e67fab63279db")
    assert isinstance(file, FileEvidence)
    assert file.file_details is not None
    assert file.file_details.file_size == 6136392
    assert file.display_name() == "MsSense.exe"
    assert isinstance(process, ProcessEvidence)
    assert process.user_account is not None
    assert process.user_account.user_sid == "S-1-5-18"
    assert process.display_name() == "MsSense.exe (4780)"
    assert isinstance(registry, RegistryKeyEvidence)
    assert registry.registry_hive == "HKEY_LOCAL_MACHINE"


def test_raw_is_the_input_mapping() -> None:
    payload = load("get_alert.json")
    alert = Alert.from_graph(payload)
    assert alert.raw is payload
    assert alert.evidence[0].raw is payload["evidence"][0]


def test_serialisation_is_a_copy_not_a_view() -> None:
    payload = load("get_alert.json")
    alert = Alert.from_graph(payload)
    out = alert.to_graph()
    out["evidence"][0]["tags"].append("mutated")
    out["mitreTechniques"].clear()
    assert alert.to_graph() == load("get_alert.json")
