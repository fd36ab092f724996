"""SecurityIncident's times, from the incident's versions in the hub: time to triage
(FirstModifiedTime), ClosedTime that later updates do not move, the activity times of an
incident whose alerts were merged into another, and a LastModifiedTime of its own for each
row that states a version again. A replay of the log tables rebuilds them with the same
values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pgserver import PgServer, pg_server
from xdrsync.destinations.runner import DestinationRunner
from xdrsync.destinations.tables import LogTables
from xdrsync.hub import Hub, InboundBatch, default_url
from xdrsync.models import Alert, Incident
from xdrsync.tables.logstore import LogStore

TENANT = "00000000-0000-0000-0000-00000000000a"
#: A recent day, so that queries over `ago(...)` windows see it.
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with pg_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    """The history is read with the hub's own queries: on each database it supports."""
    if request.param == "sqlite":
        url = default_url(tmp_path)
    else:
        url = request.getfixturevalue("pg").new_database()
    with Hub.open(url) as opened:
        yield opened


def _at(minutes: int) -> datetime:
    return DAY + timedelta(minutes=minutes)


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _alert(alert_id: str, incident_id: str, first: int, last: int) -> dict[str, Any]:
    return {
        "id": alert_id,
        "incidentId": incident_id,
        "status": "new",
        "severity": "high",
        "serviceSource": "microsoftDefenderForEndpoint",
        "title": f"Alert {alert_id}",
        "createdDateTime": _text(_at(last)),
        "lastUpdateDateTime": _text(_at(last)),
        "firstActivityDateTime": _text(_at(first)),
        "lastActivityDateTime": _text(_at(last)),
        "evidence": [],
    }


def _incident(
    incident_id: str,
    minute: int,
    alerts: list[dict[str, Any]],
    status: str = "active",
    **fields: Any,
) -> Incident:
    return Incident.from_graph(
        {
            "id": incident_id,
            "displayName": "Multi-stage attack",
            "severity": "high",
            "status": status,
            "createdDateTime": _text(_at(0)),
            "lastUpdateDateTime": _text(_at(minute)),
            "alerts": alerts,
            **fields,
        }
    )


def _commit(hub: Hub, *incidents: Incident, alerts: tuple[dict[str, Any], ...] = ()) -> None:
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT,
            stream="incidents",
            incidents=list(incidents),
            alerts=[Alert.from_graph(a) for a in alerts],
        )
    )


def _runner(hub: Hub, store: LogStore) -> DestinationRunner:
    return DestinationRunner(hub, LogTables(hub, store), batch_size=1000)


def _current(store: LogStore, columns: str) -> dict[int, dict[str, Any]]:
    rows = store.query(
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "
        f"| project IncidentNumber, {columns}"
    ).as_dicts()
    return {r["IncidentNumber"]: r for r in rows}


ALERTS = [_alert("da1", "41", 1, 3), _alert("da2", "41", 2, 5)]
COMMENT = {"comments": [{"comment": "still watching", "createdByDisplayName": "Analyst One"}]}


def test_microsofts_time_to_triage_query_has_values(hub: Hub, tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    _commit(hub, _incident("41", 0, ALERTS))  # created
    runner.publish()
    _commit(hub, _incident("41", 25, ALERTS, status="inProgress", assignedTo="a@contoso.com"))
    runner.publish()
    _commit(hub, _incident("41", 90, ALERTS, status="inProgress", **COMMENT))
    runner.publish()
    # Microsoft's "mean time to triage" sample (manage-soc-with-incident-metrics).
    rows = store.query(
        "SecurityIncident | where TimeGenerated > ago(14d) "
        "| summarize arg_max(TimeGenerated, *) by IncidentNumber "
        "| extend TimeToTriage = iff(isnotempty(FirstModifiedTime), "
        "FirstModifiedTime - CreatedTime, now() - CreatedTime) "
        "| summarize Median = percentile(TimeToTriage / 1m, 50) by Severity"
    ).as_dicts()
    assert rows == [{"Severity": "High", "Median": pytest.approx(25)}]
    # Each version says when the incident was first modified; the one as created, nothing.
    versions = store.query(
        "SecurityIncident | order by LastModifiedTime asc | project FirstModifiedTime"
    ).as_dicts()
    assert [r["FirstModifiedTime"] for r in versions] == [None, _at(25), _at(25)]


def test_closed_time_stays_put_after_a_later_comment(hub: Hub, tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    _commit(hub, _incident("41", 0, ALERTS))
    _commit(hub, _incident("41", 60, ALERTS, status="resolved", classification="truePositive"))
    runner.publish()
    closed = _current(store, "ClosedTime, HoursToClose = (ClosedTime - CreatedTime) / 1h")
    assert closed[41] == {"IncidentNumber": 41, "ClosedTime": _at(60), "HoursToClose": 1.0}
    # A comment on the closed incident is a new version: it does not close it again.
    _commit(hub, _incident("41", 300, ALERTS, status="resolved", **COMMENT))
    runner.publish()
    assert _current(store, "ClosedTime")[41]["ClosedTime"] == _at(60)
    # Reopened, it is not closed; closed again, ClosedTime is when it was last closed.
    _commit(hub, _incident("41", 400, ALERTS, status="active"))
    _commit(hub, _incident("41", 500, ALERTS, status="resolved"))
    _commit(hub, _incident("41", 600, ALERTS, status="resolved", **COMMENT, severity="low"))
    runner.publish()
    rows = store.query(
        "SecurityIncident | order by LastModifiedTime asc | project Status, ClosedTime"
    ).as_dicts()
    assert [(r["Status"], r["ClosedTime"]) for r in rows] == [
        ("New", None),
        ("Closed", _at(60)),
        ("Closed", _at(60)),
        ("New", None),
        ("Closed", _at(500)),
        ("Closed", _at(500)),
    ]


def _merge(hub: Hub) -> None:
    """Incident 41 (two alerts, active from minute 1 to 5) is merged into 42, which already
    had an alert of its own: its alerts move, it is redirected with none."""
    _commit(hub, _incident("41", 10, ALERTS), _incident("42", 10, [_alert("db1", "42", 7, 8)]))
    moved = [{**a, "incidentId": "42"} for a in ALERTS]
    _commit(
        hub,
        _incident("41", 20, [], status="redirected", redirectIncidentId="42"),
        _incident("42", 20, [*moved, _alert("db1", "42", 7, 8)]),
        alerts=tuple(moved),
    )


def test_a_merged_incident_keeps_the_activity_times_of_its_alerts(hub: Hub, tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    _merge(hub)
    _runner(hub, store).publish()
    recent = store.query(
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "
        "| where LastActivityTime > ago(7d) "
        "| project IncidentNumber, Status, AlertIds, FirstActivityTime, LastActivityTime"
        "| order by IncidentNumber asc"
    ).as_dicts()
    assert recent == [
        {
            "IncidentNumber": 41,
            "Status": "Closed",
            "AlertIds": [],
            "FirstActivityTime": _at(1),
            "LastActivityTime": _at(5),
        },
        {
            "IncidentNumber": 42,
            "Status": "New",
            "AlertIds": ["da1", "da2", "db1"],
            "FirstActivityTime": _at(1),
            "LastActivityTime": _at(8),
        },
    ]


TIMES = "FirstModifiedTime, ClosedTime, FirstActivityTime, LastActivityTime, LastModifiedTime"


def _all_rows(store: LogStore) -> list[dict[str, Any]]:
    return store.query(
        "SecurityIncident | order by LastModifiedTime asc, IncidentNumber asc "
        f"| project IncidentNumber, Status, {TIMES}"
    ).as_dicts()


def test_a_replay_rebuilds_the_same_times(hub: Hub, tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    closing = [_alert("dc1", "43", 1, 2)]
    steps = [
        lambda: _commit(hub, _incident("43", 0, closing)),
        lambda: _commit(hub, _incident("43", 5, closing, status="inProgress")),
        lambda: _commit(hub, _incident("43", 9, closing, status="resolved")),
        lambda: _commit(hub, _incident("43", 15, closing, status="resolved", **COMMENT)),
        lambda: _merge(hub),
    ]
    for step in steps:  # delivered as they come, one version at a time
        step()
        runner.publish()
    live = _all_rows(store)
    assert len(live) == 8
    by_incident = {n: [r for r in live if r["IncidentNumber"] == n] for n in (41, 42, 43)}
    assert [r["FirstModifiedTime"] for r in by_incident[43]] == [None, _at(5), _at(5), _at(5)]
    assert [r["ClosedTime"] for r in by_incident[43]] == [None, None, _at(9), _at(9)]
    assert [r["LastActivityTime"] for r in by_incident[41]] == [_at(5), _at(5)]
    # `xdrsync destinations replay tables --from-seq 1`: every row made again, in one go.
    runner.replay_from(1)
    runner.publish()
    assert _all_rows(store) == live
    # Made in chunks of one change (each version's earlier ones read back from the hub).
    again = LogStore(tmp_path / "again.duckdb")
    tables = LogTables(hub, again)
    tables.chunk_size = 1
    DestinationRunner(hub, tables, batch_size=1).publish()
    assert _all_rows(again) == live


@pytest.mark.parametrize("one_delivery", [True, False])
def test_content_changed_at_the_same_version_is_the_latest_row(
    hub: Hub, tmp_path: Path, one_delivery: bool
) -> None:
    """Defender assigns 41 and then closes it without a new `lastUpdateDateTime` (the hub
    keeps each as a change: same stamp, new content). Each statement of that version has a
    row of its own, a microsecond after the one before, so `arg_max(LastModifiedTime, *)`
    takes the last, where the rows tied and either could win."""
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    _commit(hub, _incident("41", 30, ALERTS))
    if not one_delivery:
        runner.publish()
    _commit(hub, _incident("41", 30, ALERTS, assignedTo="a@contoso.com"))
    _commit(hub, _incident("41", 30, ALERTS, status="resolved", assignedTo="a@contoso.com"))
    runner.publish()
    rows = store.query(
        "SecurityIncident | order by LastModifiedTime asc | project LastModifiedTime, Status, Owner"
    ).as_dicts()
    assert [(r["LastModifiedTime"] - _at(30), r["Status"]) for r in rows] == [
        (timedelta(0), "New"),
        (timedelta(microseconds=1), "New"),
        (timedelta(microseconds=2), "Closed"),
    ]
    latest = store.query(
        "SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentNumber "
        "| project Status"
    ).as_dicts()
    assert latest == [{"Status": "Closed"}]


TENANT_B = "00000000-0000-0000-0000-00000000000b"


def test_each_tenants_incident_numbers_its_own_restatements(hub: Hub, tmp_path: Path) -> None:
    """Incident 41 in two tenants, an alert whose id is also 41: alerts leave contoso's 41
    twice and fabrikam's once without a new stamp. Each incident's rows count only its own
    statements: contoso's 41 at +1 and +2 µs, fabrikam's at +1 µs."""
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    alerts = [_alert("41", "41", 1, 3), _alert("da2", "41", 2, 5), _alert("da3", "41", 2, 5)]
    _commit(hub, _incident("41", 30, alerts), _incident("42", 30, []))
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT_B,
            stream="incidents",
            incidents=[_incident("41", 30, alerts), _incident("42", 30, [])],
        )
    )
    runner.publish()
    for tenant, alert, minute in ((TENANT, "41", 40), (TENANT_B, "da2", 41), (TENANT, "da3", 42)):
        moved = {**_alert(alert, "42", 2, 5), "lastUpdateDateTime": _text(_at(minute))}
        hub.commit_batch(
            InboundBatch(tenant_id=tenant, stream="alerts", alerts=[Alert.from_graph(moved)])
        )
        runner.publish()
    rows = store.query(
        "SecurityIncident | where IncidentNumber == 41 "
        "| project TenantId, LastModifiedTime, AlertIds | order by LastModifiedTime asc"
    ).as_dicts()
    shown = {
        tenant: [
            (r["LastModifiedTime"] - _at(30), sorted(r["AlertIds"]))
            for r in rows
            if r["TenantId"] == tenant
        ]
        for tenant in (TENANT, TENANT_B)
    }
    assert shown[TENANT] == [
        (timedelta(0), ["41", "da2", "da3"]),
        (timedelta(microseconds=1), ["da2", "da3"]),
        (timedelta(microseconds=2), ["da2"]),
    ]
    assert shown[TENANT_B] == [
        (timedelta(0), ["41", "da2", "da3"]),
        (timedelta(microseconds=1), ["41", "da3"]),
    ]
