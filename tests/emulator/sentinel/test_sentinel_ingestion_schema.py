"""Logs Ingestion lands rows as the data collection rule declares them (microsoft-apis.md §4):
undeclared and reserved columns are dropped, values of the wrong type become null, and the
emulator counts what it left out, so a test notices rows that do not match the rule."""

from __future__ import annotations

import json
from typing import Any

ALERTS = "Custom-XdrSecurityAlert"
EVIDENCE = "Custom-XdrAlertEvidence"
RESERVED = ("_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title")


def test_reserved_and_undeclared_columns_are_dropped_and_counted(sentinel: Any) -> None:
    s = sentinel()
    row = {name: "x" for name in RESERVED} | {
        "SystemAlertId": "a1",
        "NotInTheRule": 1,
        "DefenderTenantId": "t-1",
        "AlertName": "Ransomware",
    }
    reply = s.ingest(ALERTS, json.dumps([row]).encode())
    assert reply.status_code == 204, reply.text
    (stored,) = s.truth()["logs"][ALERTS]
    assert stored["SystemAlertId"] == "a1"
    assert stored["DefenderTenantId"] == "t-1" and stored["AlertName"] == "Ransomware"
    assert not set(stored) & {*RESERVED, "NotInTheRule"}, stored
    dropped = s.control("GET", "/stats").json()["ingestion_dropped"]
    assert dropped == {f"{ALERTS} column: {name}": 1 for name in (*RESERVED, "NotInTheRule")}


def test_values_of_the_wrong_type_become_null(sentinel: Any) -> None:
    s = sentinel()
    good = {
        "SystemAlertId": "a1",
        "XdrSeq": 7,
        "IsIncident": False,
        "ConfidenceScore": 1,
        "StartTime": "2026-11-01T10:01:00.000000Z",
    }
    bad = {
        "SystemAlertId": 12,  # string column
        "XdrSeq": "7",  # long
        "IsIncident": "false",  # boolean
        "ConfidenceScore": True,  # real
        "StartTime": "yesterday",  # datetime
        "TimeGenerated": "not a date",
    }
    assert s.ingest(ALERTS, json.dumps([good, bad]).encode()).status_code == 204
    kept, nulled = s.truth()["logs"][ALERTS]
    assert {k: kept[k] for k in good} == good
    assert all(nulled[k] is None for k in bad if k != "TimeGenerated"), nulled
    assert nulled["TimeGenerated"].endswith("Z")  # the ingestion time, as for a row without
    dropped = s.control("GET", "/stats").json()["ingestion_dropped"]
    assert dropped == {f"{ALERTS} type: {name}": 1 for name in bad}


def test_dynamic_columns_take_any_json(sentinel: Any) -> None:
    s = sentinel()
    rows = [{"AlertId": "a1", "AdditionalFields": {"k": [1, 2]}}, {"AdditionalFields": "text"}]
    assert s.ingest(EVIDENCE, json.dumps(rows).encode()).status_code == 204
    assert [r["AdditionalFields"] for r in s.truth()["logs"][EVIDENCE]] == [{"k": [1, 2]}, "text"]
    assert s.control("GET", "/stats").json()["ingestion_dropped"] == {}
