"""Hub → log tables: what an analyst sees in SecurityIncident / SecurityAlert after publish."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from xdrsync.destinations.runner import DestinationRunner
from xdrsync.destinations.tables import LogTables
from xdrsync.hub import Hub, InboundBatch
from xdrsync.models import Alert, Incident
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.schemas import TABLE_NAMES

TENANT = "00000000-0000-0000-0000-00000000000a"


def _alert(alert_id: str, incident_id: str, minute: int, product: str) -> dict[str, Any]:
    return {
        "id": alert_id,
        "incidentId": incident_id,
        "status": "new",
        "severity": "high",
        "serviceSource": product,
        "title": f"Alert {alert_id}",
        "createdDateTime": f"2026-11-01T10:{minute:02d}:00Z",
        "lastUpdateDateTime": f"2026-11-01T10:{minute:02d}:00Z",
        "evidence": [
            {
                "@odata.type": "#microsoft.graph.security.ipEvidence",
                "ipAddress": f"10.0.0.{minute}",
                "verdict": "suspicious",
            }
        ],
    }


def _incident(minute: int, alerts: list[dict[str, Any]], status: str = "active") -> Incident:
    return Incident.from_graph(
        {
            "id": "41",
            "displayName": "Multi-stage attack",
            "severity": "high",
            "status": status,
            "createdDateTime": "2026-11-01T10:00:00Z",
            "lastUpdateDateTime": f"2026-11-01T11:{minute:02d}:00Z",
            "alerts": alerts,
        }
    )


ALERTS = [
    _alert("da1", "41", 1, "microsoftDefenderForEndpoint"),
    _alert("da2", "41", 2, "microsoftDefenderForOffice365"),
    _alert("da3", "41", 3, "microsoftDefenderForIdentity"),
]


def _runner(hub: Hub, store: LogStore, batch_size: int = 1000) -> DestinationRunner:
    return DestinationRunner(hub, LogTables(hub, store), batch_size=batch_size)


def _commit(hub: Hub, *incidents: Incident, alerts: tuple[Alert, ...] = ()) -> None:
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT, stream="incidents", incidents=list(incidents), alerts=list(alerts)
        )
    )


def _incident_rows(store: LogStore) -> list[tuple[Any, ...]]:
    result = store.query(
        "SecurityIncident | order by TimeGenerated asc "
        "| project Status, AlertIds, AdditionalData.alertsCount, AdditionalData.alertProductNames"
    )
    return [tuple(row) for row in result.rows]


@pytest.mark.parametrize("batch_size", [1, 2, 500])
def test_incident_rows_carry_their_alerts_however_the_changes_are_batched(
    hub: Hub, tmp_path: Path, batch_size: int
) -> None:
    _commit(hub, _incident(5, ALERTS))
    store = LogStore(tmp_path / "logs.duckdb")
    published = _runner(hub, store, batch_size=batch_size).publish()
    assert published == 4  # the incident and its three alerts, once each
    (row,) = _incident_rows(store)
    assert row[1] == ["da1", "da2", "da3"]
    assert row[2] == 3
    assert len(row[3]) == 3  # one product name per Defender product, as Sentinel names them
    assert "Microsoft Defender Advanced Threat Protection" in row[3]
    alerts = store.query("SecurityAlert | summarize count() by SystemAlertId | count")
    assert alerts.rows[0][0] == 3
    evidence = store.query("AlertEvidence | summarize by RemoteIP | order by RemoteIP asc")
    assert [r[0] for r in evidence.rows] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_a_backlog_of_versions_shows_each_with_the_alerts_the_incident_has_now(
    hub: Hub, tmp_path: Path
) -> None:
    _commit(hub, _incident(5, ALERTS[:2]))
    _commit(hub, _incident(9, ALERTS, status="inProgress"))
    store = LogStore(tmp_path / "logs.duckdb")
    _runner(hub, store).publish()
    rows = _incident_rows(store)
    assert [r[0] for r in rows] == ["New", "Active"]  # both versions, oldest first
    assert all(r[1] == ["da1", "da2", "da3"] for r in rows)


@pytest.mark.parametrize("chunk_size", [1, 2, 3])
def test_a_delivery_mapped_in_chunks_writes_the_rows_of_one_mapped_whole(
    hub: Hub, tmp_path: Path, chunk_size: int
) -> None:
    # Chunks split an incident from its alerts, and versions of one incident from each other.
    _commit(hub, _incident(5, ALERTS[:2]))
    _commit(hub, _incident(9, ALERTS, status="inProgress"))

    def stored(chunk: int) -> dict[str, list[str]]:
        store = LogStore(tmp_path / f"logs-{chunk}.duckdb")
        tables = LogTables(hub, store, clock=lambda: datetime(2026, 12, 5, tzinfo=UTC))
        tables.chunk_size = chunk
        assert DestinationRunner(hub, tables, batch_size=1000).publish() == 5
        return {
            table: sorted(map(repr, store.sql(f"SELECT * FROM {table}"))) for table in TABLE_NAMES
        }

    whole = stored(1000)
    assert sum(map(len, whole.values())) > 5
    assert stored(chunk_size) == whole


def test_publishing_again_appends_nothing_and_a_new_version_appends_one_row(
    hub: Hub, tmp_path: Path
) -> None:
    _commit(hub, _incident(5, ALERTS))
    store = LogStore(tmp_path / "logs.duckdb")
    assert _runner(hub, store).publish() == 4
    assert _runner(hub, store).publish() == 0  # a restarted publisher resumes exactly
    _commit(hub, _incident(9, ALERTS, status="resolved"))
    publisher = _runner(hub, store)
    assert publisher.publish() == 1
    assert publisher.delivered == 1
    assert [r[0] for r in _incident_rows(store)] == ["New", "Closed"]


def test_an_incident_shows_the_alert_it_lists_whose_incident_id_differs(
    hub: Hub, tmp_path: Path
) -> None:
    # As in Microsoft's documented $expand=alerts example: the listed alert names another
    # incident. AlertIds, alertsCount and the incident-alert join follow the listing.
    stray = _alert("da9", "28282", 4, "microsoftDefenderForEndpoint")
    _commit(hub, _incident(5, [*ALERTS[:1], stray]))
    store = LogStore(tmp_path / "logs.duckdb")
    _runner(hub, store).publish()
    (row,) = _incident_rows(store)
    assert (row[1], row[2]) == (["da1", "da9"], 2)
    joined = store.query(
        "SecurityIncident | mv-expand AlertId = AlertIds to typeof(string)"
        " | join kind=inner (SecurityAlert) on $left.AlertId == $right.SystemAlertId"
        " | project IncidentNumber, AlertName | order by AlertName asc"
    )
    assert [tuple(r) for r in joined.rows] == [(41, "Alert da1"), (41, "Alert da9")]


def test_rows_carry_when_the_hub_received_them_and_when_the_store_wrote_them(
    hub: Hub, tmp_path: Path
) -> None:
    _commit(hub, _incident(5, ALERTS[:1]))
    (change,) = [c for c in hub.changes_after(0, 10) if c.entity_type == "incident"]
    store = LogStore(tmp_path / "logs.duckdb")
    _runner(hub, store).publish()
    result = store.query("SecurityIncident | project _TimeReceived, _IngestionTime")
    ((received, ingested),) = result.rows
    assert received == change.at
    assert ingested >= received


def test_a_change_whose_rows_cannot_be_made_is_a_dead_letter_and_the_rest_go_on(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record the hub accepted but whose rows fail (a shape no mapper foresaw) costs only
    itself: dead-lettered with the reason, while the changes after it reach the tables."""
    import xdrsync.destinations.tables as fanout

    real = fanout.security_alert_row

    def fragile(alert: Alert, **kwargs: Any) -> dict[str, Any]:
        if alert.id == "da2":
            raise AttributeError("'list' object has no attribute 'get'")
        return real(alert, **kwargs)

    monkeypatch.setattr(fanout, "security_alert_row", fragile)
    _commit(hub, _incident(5, ALERTS))
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    assert runner.publish() == 4
    alerts = store.query("SecurityAlert | order by SystemAlertId asc | project SystemAlertId")
    assert [r[0] for r in alerts.rows] == ["da1", "da3"]
    assert store.query("AlertEvidence | where AlertId == 'da2' | count").rows == ((0,),)
    assert store.query("SecurityIncident | count").rows == ((1,),)
    (dead,) = hub.list_dead_letters("tables")
    assert "AttributeError" in dead.reason and dead.seq == next(
        c.seq for c in hub.changes_after(0) if c.entity_id == "da2"
    )
    _commit(hub, _incident(9, ALERTS, status="inProgress"))
    assert runner.publish() >= 1  # later changes still flow
    assert store.query("SecurityIncident | count").rows == ((2,),)


def test_rows_written_after_the_clock_stepped_back_still_come_last(
    hub: Hub, tmp_path: Path
) -> None:
    """The machine's clock steps back an hour between two versions of incident 41 (an NTP
    correction, a resumed VM). The second version's rows still come after the first's in
    `TimeGenerated` — in the same writer (which says in the log that the clock is behind), in
    one started afresh, and after another writer took a turn — so that
    `arg_max(TimeGenerated, *)` shows the incident as it is now."""
    times = iter(
        [datetime(2026, 12, 5, 12, tzinfo=UTC), *[datetime(2026, 12, 5, 11, tzinfo=UTC)] * 9]
    )
    store = LogStore(tmp_path / "logs.duckdb")

    def runner() -> DestinationRunner:
        return DestinationRunner(hub, LogTables(hub, store, clock=lambda: next(times)))

    writer = runner()
    _commit(hub, _incident(5, ALERTS))
    writer.publish()
    _commit(hub, _incident(9, ALERTS, status="inProgress"))
    with capture_logs() as logs:
        writer.publish()  # the clock an hour behind: said in the log
    (said,) = [e for e in logs if e["log_level"] == "warning"]
    assert said["behind_seconds"] == 3600
    latest = (
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber | project Status"
    )
    assert store.query(latest).rows == (("Active",),)
    _commit(hub, _incident(12, ALERTS, status="resolved"))
    runner().publish()  # a writer started afresh, the clock still behind
    assert store.query(latest).rows == (("Closed",),)
    # Another writer of the same tables (the worker process a backlog goes to) wrote later
    # rows meanwhile, with a clock that had not stepped back; the first takes over again.
    _commit(hub, _incident(15, ALERTS, status="active"))
    DestinationRunner(
        hub, LogTables(hub, store, clock=lambda: datetime(2026, 12, 5, 13, tzinfo=UTC))
    ).publish()
    _commit(hub, _incident(18, ALERTS, status="resolved"))
    writer.took_over(1)
    writer.publish()
    assert store.query(latest).rows == (("Closed",),)
    stamps = store.query(
        "SecurityIncident | order by LastModifiedTime asc | project TimeGenerated"
    ).rows
    assert [row[0] for row in stamps] == sorted(row[0] for row in stamps)
    assert stamps[0][0] == datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert len(stamps) == 5


def test_a_hub_failing_after_the_rows_were_written_gets_no_second_copy(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log store commits a batch, then the hub fails to record the delivery (a dropped
    PostgreSQL connection, say). The next publish starts from the store's own position: each
    change's rows are there once, where the retry wrote them again."""
    _commit(hub, _incident(5, ALERTS))
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    record = hub.record_delivery
    failures = iter([OSError("connection to the hub lost")])

    def flaky(*args: Any, **kwargs: Any) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        record(*args, **kwargs)

    monkeypatch.setattr(hub, "record_delivery", flaky)
    with pytest.raises(OSError, match="connection to the hub lost"):
        runner.publish()
    assert runner.publish(force=True) == 0  # nothing left to deliver: the store has it all
    counts = {
        t: store.query(f"{t} | count").rows[0][0] for t in ("SecurityIncident", "SecurityAlert")
    }
    assert counts == {"SecurityIncident": 1, "SecurityAlert": 3}
    _commit(hub, _incident(9, ALERTS, status="resolved"))
    assert runner.publish(force=True) == 1
    assert [r[0] for r in _incident_rows(store)] == ["New", "Closed"]


def test_a_rejected_last_change_is_one_dead_letter_across_restarts_and_stays_cleared(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last change the hub holds is rejected (no rows can be made of it). A runner that
    starts afresh — the next `sync --once`, the thread taking over from the worker process,
    or one recovering from a failure — resumes after it, not before it: it is not rejected
    again with a second dead letter, nor back after an operator cleared its dead letter. A
    replay from before it does deliver it again."""
    import xdrsync.destinations.tables as fanout

    _commit(hub, _incident(5, ALERTS))
    last = hub.changes_after(0)[-1]
    assert last.entity_type == "alert"
    real = fanout.security_alert_row

    def fragile(alert: Alert, **kwargs: Any) -> dict[str, Any]:
        if alert.id == last.entity_id:
            raise AttributeError("'list' object has no attribute 'get'")
        return real(alert, **kwargs)

    monkeypatch.setattr(fanout, "security_alert_row", fragile)
    store = LogStore(tmp_path / "logs.duckdb")
    assert _runner(hub, store).publish() == 4
    assert [d.seq for d in hub.list_dead_letters("tables")] == [last.seq]
    assert _runner(hub, store).publish() == 0  # the next sync --once
    assert [d.seq for d in hub.list_dead_letters("tables")] == [last.seq]
    assert hub.clear_dead_letters("tables") == 1
    assert _runner(hub, store).publish() == 0
    assert hub.list_dead_letters("tables") == []
    assert store.query("SecurityAlert | count").rows == ((2,),)
    runner = _runner(hub, store)
    runner.replay_from(1)
    assert runner.publish() == 4
    assert [d.seq for d in hub.list_dead_letters("tables")] == [last.seq]
    assert store.query("SecurityAlert | count").rows == ((2,),)


def test_a_crash_before_the_acknowledgement_keeps_the_dead_letters_of_the_batch(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log store commits a batch in which one change was rejected, then the process dies
    (or the hub fails) before the hub records the delivery with its dead letter. The runner
    started afresh resumes after the batch, from the store's own position: the rejected
    change still gets its dead letter, and the hub's cursor catches up (`destinations
    status` shows nothing behind)."""
    import xdrsync.destinations.tables as fanout

    real = fanout.security_alert_row

    def fragile(alert: Alert, **kwargs: Any) -> dict[str, Any]:
        if alert.id == "da2":
            raise AttributeError("'list' object has no attribute 'get'")
        return real(alert, **kwargs)

    monkeypatch.setattr(fanout, "security_alert_row", fragile)
    _commit(hub, _incident(5, ALERTS))
    store = LogStore(tmp_path / "logs.duckdb")

    def killed(*args: Any, **kwargs: Any) -> None:
        raise OSError("killed before the acknowledgement")

    with monkeypatch.context() as patched:
        patched.setattr(hub, "record_delivery", killed)
        with pytest.raises(OSError, match="killed"):
            _runner(hub, store).publish()
    assert hub.list_dead_letters("tables") == []
    assert _runner(hub, store).publish() == 0  # after the restart: nothing twice
    (dead,) = hub.list_dead_letters("tables")
    assert dead.entity_id == "da2" and "AttributeError" in dead.reason
    assert hub.get_cursor("tables") == hub.max_seq()
    assert store.query("SecurityAlert | count").rows == ((2,),)
