"""Evidence JSON of any shape makes its alert's rows: an item whose values do not fit its type
(`UnparsedEvidence`, Graph having changed a property's shape) is a row of its kind with the
item whole in AdditionalFields, and never costs the alert's other rows."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from graph_samples import multistage_incident
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdrsync.models import Alert, UnparsedEvidence, registered_types
from xdrsync.models.base import specs_of
from xdrsync.tables.alert_rows import alert_for_rows
from xdrsync.tables.encode import NdjsonWriter
from xdrsync.tables.schemas import table_schema
from xdrsync.tables.sentinel import alert_evidence_rows, security_alert_row

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T = "#microsoft.graph.security."
#: The columns each AlertEvidence row fills from an item's type (the rest are the alert's).
TYPED = {
    "FileName", "FolderPath", "SHA1", "SHA256", "FileSize", "ThreatFamily", "RemoteIP",
    "RemoteUrl", "AccountName", "AccountDomain", "AccountSid", "AccountObjectId", "AccountUpn",
    "DeviceId", "DeviceName", "LocalIP", "NetworkMessageId", "EmailSubject", "ApplicationId",
    "Application", "OAuthApplicationId", "ProcessCommandLine", "RegistryKey",
    "RegistryValueName", "RegistryValueData", "CloudResource", "CloudPlatform", "ResourceType",
    "ResourceID", "SubscriptionId",
}  # fmt: skip


def storable(table: str, rows: list[dict[str, Any]]) -> None:
    """Each row encodes for the log store (raises as the store would refuse it)."""
    writer = NdjsonWriter(io.BytesIO(), table_schema(table).columns, table)
    for row in rows:
        writer.encode(row)


def rows_of(graph: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The SecurityAlert row and AlertEvidence rows, as the log tables' worker makes them (the
    alert parsed without its evidence, the evidence read as JSON)."""
    shallow, items = alert_for_rows(graph)
    alert_row = security_alert_row(shallow, time_generated=NOW, evidence=items)
    evidence_rows = alert_evidence_rows(shallow, time_generated=NOW, evidence=items)
    storable("SecurityAlert", [alert_row])
    storable("AlertEvidence", evidence_rows)
    return alert_row, evidence_rows


@pytest.mark.parametrize(
    ("item", "entity_type", "kept"),
    [
        ({"@odata.type": T + "processEvidence", "processId": "abc",
          "processCommandLine": "x.exe /q"}, "Process", {"ProcessCommandLine": "x.exe /q"}),
        ({"@odata.type": T + "deviceEvidence", "createdDateTime": "yesterday",
          "deviceDnsName": "pc1.contoso.com"}, "Machine", {"DeviceName": "pc1.contoso.com"}),
        ({"@odata.type": T + "ipEvidence", "ipAddress": 12}, "Ip", {}),
        ({"@odata.type": T + "networkConnectionEvidence", "destinationAddress": "10.0.0.9",
          "sourceAddress": {"ipAddress": "10.0.0.1"}}, "NetworkConnection",
         {"LocalIP": "10.0.0.1"}),
        ({"@odata.type": T + "analyzedMessageEvidence", "p1Sender": "a@b.c",
          "subject": ["x"]}, "MailMessage", {}),
        ({"@odata.type": T + "dnsEvidence", "ipAddresses": 4, "domainName": "c2.example"},
         "DnsResolution", {"RemoteUrl": "c2.example"}),
        ({"@odata.type": T + "userEvidence", "userAccount": {"userPrincipalName": 7},
          "roles": "compromised"}, "User", {}),
        ({"@odata.type": T + "registryValueEvidence", "registryHive": {"x": 1},
          "registryKey": "SOFTWARE\\Run", "roles": [1, "compromised"]}, "RegistryValue",
         {"RegistryKey": "SOFTWARE\\Run"}),
        ({"@odata.type": T + "ipEvidence", "location": "Oslo", "ipAddress": "10.1.1.1"}, "Ip",
         {"RemoteIP": "10.1.1.1"}),
    ],
)  # fmt: skip
def test_an_item_that_does_not_fit_its_type_is_a_row_of_its_kind_with_the_item_whole(
    item: dict[str, Any], entity_type: str, kept: dict[str, Any]
) -> None:
    graph = multistage_incident()["alerts"][0]
    graph["evidence"] = [*graph["evidence"], item]
    assert isinstance(Alert.from_graph(graph).evidence[-1], UnparsedEvidence)
    alert_row, evidence_rows = rows_of(graph)
    assert len(evidence_rows) == len(graph["evidence"])  # the items around it too
    row = evidence_rows[-1]
    assert row["EntityType"] == entity_type
    assert row["AdditionalFields"] == item
    assert row["AlertId"] == graph["id"]
    # Of the type's columns, only values of the column's own type are shown.
    assert {k: v for k, v in row.items() if k in TYPED and v is not None} == kept
    if item.get("createdDateTime") == "yesterday":  # not a date-time: the alert's time
        assert row["Timestamp"] == Alert.from_graph(graph).created_date_time
    assert isinstance(json.loads(alert_row["Entities"]), list)
    # The fully parsed alert maps the same (the hub and the Sentinel destination read it so).
    full = Alert.from_graph(graph)
    assert alert_evidence_rows(full, time_generated=NOW) == evidence_rows
    assert security_alert_row(full, time_generated=NOW) == alert_row


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(-1e9, 1e9)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)  # fmt: skip
#: Nested properties the row builders look into, so that objects with them are tried too.
INNER = ["ipAddress", "emailAddress", "countryCode", "userPrincipalName", "accountName",
         "domainName", "fileName", "sha256", "fileSize", "azureAdUserId"]  # fmt: skip
SHAPES = (
    ANY_JSON
    | st.dictionaries(st.sampled_from(INNER), ANY_JSON, max_size=4)
    | st.lists(st.dictionaries(st.sampled_from(INNER), ANY_JSON, max_size=3), max_size=2)
)


@st.composite
def any_shaped_item(draw: st.DrawFn) -> dict[str, Any]:
    """An item of a known type whose properties have any JSON shape at all."""
    odata_type = draw(st.sampled_from(sorted(registered_types())))
    keys = sorted(k for k in specs_of(registered_types()[odata_type]).by_key if k[0] != "@")
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
    return {"@odata.type": odata_type, **{key: draw(SHAPES) for key in chosen}}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_shaped_item(), min_size=1, max_size=3))
def test_evidence_of_a_known_type_in_any_shape_makes_storable_rows(
    items: list[dict[str, Any]],
) -> None:
    graph = multistage_incident()["alerts"][0]
    graph["evidence"] = items
    alert_row, evidence_rows = rows_of(graph)
    assert [row["AdditionalFields"] for row in evidence_rows] == items
    assert alert_row["SystemAlertId"] == graph["id"]
