"""Hub → log tables when Defender moves alerts between incidents: the latest SecurityIncident
row of the incident an alert left stops listing it, even when Graph never shows that incident
again, and a merge's source read before or after its alerts ends with none."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xdrsync.destinations.runner import DestinationRunner
from xdrsync.destinations.tables import LogTables
from xdrsync.hub import Hub, InboundBatch
from xdrsync.models import Alert, Incident
from xdrsync.tables.logstore import LogStore

TENANT = "00000000-0000-0000-0000-00000000000a"
MDE, MDO, MDI = (
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForOffice365",
    "microsoftDefenderForIdentity",
)
LATEST = "SecurityIncident | summarize arg_max({by}, *) by IncidentNumber"


def _at(minute: int, hour: int = 10) -> str:
    return f"2026-11-01T{hour:02d}:{minute:02d}:00Z"


def _alert(alert_id: str, incident_id: str, minute: int, product: str, **fields: Any) -> Any:
    return {
        "id": alert_id,
        "incidentId": incident_id,
        "status": "new",
        "severity": "high",
        "serviceSource": product,
        "title": f"Alert {alert_id}",
        "createdDateTime": _at(minute),
        "lastUpdateDateTime": _at(minute),
        "firstActivityDateTime": _at(minute, hour=9),
        "lastActivityDateTime": _at(minute + 1, hour=9),
        "evidence": [],
        **fields,
    }


def _incident(incident_id: str, minute: int, alerts: list[Any], **fields: Any) -> Incident:
    return Incident.from_graph(
        {
            "id": incident_id,
            "displayName": f"Incident {incident_id}",
            "severity": "high",
            "status": "active",
            "createdDateTime": _at(0),
            "lastUpdateDateTime": _at(minute, hour=11),
            "alerts": alerts,
            **fields,
        }
    )


DA1 = _alert("da1", "41", 1, MDE)
DA2 = _alert("da2", "41", 2, MDO)
DB1 = _alert("db1", "42", 3, MDI)


def _moved(alert: Any, to: str, minute: int) -> Any:
    return {**alert, "incidentId": to, "lastUpdateDateTime": _at(minute, hour=11)}


def _commit(hub: Hub, *incidents: Incident, alerts: tuple[Any, ...] = (), stream: str = "") -> None:
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT,
            stream=stream or ("alerts" if alerts and not incidents else "incidents"),
            incidents=list(incidents),
            alerts=[Alert.from_graph(a) for a in alerts],
        )
    )


def _runner(hub: Hub, store: LogStore, batch_size: int = 1000) -> DestinationRunner:
    """A runner whose every delivery writes a second later than the one before."""
    ticks = itertools.count()

    def clock() -> datetime:
        return datetime(2026, 12, 5, tzinfo=UTC) + timedelta(seconds=next(ticks))

    return DestinationRunner(hub, LogTables(hub, store, clock=clock), batch_size=batch_size)


def _latest(store: LogStore, by: str = "TimeGenerated") -> dict[int, dict[str, Any]]:
    result = store.query(
        LATEST.format(by=by) + " | project IncidentNumber, Status, AlertIds, "
        "AdditionalData.alertsCount, AdditionalData.alertProductNames, FirstActivityTime, "
        "LastActivityTime, LastModifiedTime"
    )
    names = ("status", "alerts", "count", "products", "first", "last", "modified")
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in result.rows}


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("batch_size", [1, 2, 500])
def test_the_incident_an_alert_left_lists_it_no_more_without_a_new_version(
    hub: Hub, tmp_path: Path, batch_size: int
) -> None:
    _commit(hub, _incident("41", 5, [DA1, DA2]), _incident("42", 5, [DB1]))
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store, batch_size)
    runner.publish()
    # alerts_v2 shows da2 in 42 at 11:30; neither incident is read again.
    _commit(hub, alerts=(_moved(DA2, "42", 30),))
    runner.publish()
    for by in ("TimeGenerated", "LastModifiedTime"):
        left = _latest(store, by)[41]
        assert (left["status"], left["alerts"], left["count"]) == ("New", ["da1"], 1), by
        assert left["products"] == ["Microsoft Defender Advanced Threat Protection"]
        assert (left["first"], left["last"]) == (_moment(_at(1, 9)), _moment(_at(2, 9)))
        # Its version (11:05) stated again: a microsecond later, so that it wins over the
        # version's first row and any later version wins over it.
        assert left["modified"] == _moment(_at(5, 11)) + timedelta(microseconds=1)
    # The incident it joined lists it at once, stated again likewise; and so does its own
    # new version, when Defender stamps it.
    assert sorted(_latest(store)[42]["alerts"]) == ["da2", "db1"]
    _commit(hub, _incident("42", 30, [DB1, _moved(DA2, "42", 30)]))
    runner.publish()
    latest = _latest(store)
    assert sorted(latest[42]["alerts"]) == ["da2", "db1"] and latest[42]["count"] == 2
    assert latest[41]["alerts"] == ["da1"]
    assert store.query("SecurityIncident | where IncidentNumber == 41 | count").rows == ((2,),)
    # A replay writes each change's rows again, once, to the same latest state.
    runner.replay_from(1)
    runner.publish()
    assert _latest(store) == latest
    assert store.query("SecurityIncident | count").rows == ((5,),)


def test_an_alert_moved_at_its_old_stamp_leaves_the_incident_it_left(
    hub: Hub, tmp_path: Path
) -> None:
    """The reconcile brings da2 naming 42 with its lastUpdateDateTime as it was (whether a
    move bumps it is undocumented), and both incidents as they are now, their stamps unmoved:
    41's latest row lists da2 no more."""
    _commit(hub, _incident("41", 5, [DA1, DA2]), _incident("42", 5, [DB1]))
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    runner.publish()
    moved = {**DA2, "incidentId": "42"}
    _commit(hub, _incident("42", 5, [DB1, moved]), _incident("41", 5, [DA1]))
    runner.publish()
    for by in ("TimeGenerated", "LastModifiedTime"):
        latest = _latest(store, by)
        assert sorted(latest[42]["alerts"]) == ["da2", "db1"], by
        assert (latest[41]["alerts"], latest[41]["count"]) == (["da1"], 1), by


def test_a_merges_source_read_after_its_alerts_moved_ends_closed_with_none(
    hub: Hub, tmp_path: Path
) -> None:
    _commit(hub, _incident("41", 5, [DA1, DA2]), _incident("42", 5, [DB1]))
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    runner.publish()
    # The survivor's page comes first, with the alerts it took; the source comes later.
    moved = [_moved(DA1, "42", 30), _moved(DA2, "42", 30)]
    _commit(hub, _incident("42", 30, [DB1, *moved]))
    runner.publish()
    latest = _latest(store)
    assert (latest[41]["status"], latest[41]["alerts"], latest[41]["count"]) == ("New", [], 0)
    assert sorted(latest[42]["alerts"]) == ["da1", "da2", "db1"]
    _commit(hub, _incident("41", 30, [], status="redirected", redirectIncidentId="42"))
    runner.publish()
    latest = _latest(store)
    assert (latest[41]["status"], latest[41]["alerts"]) == ("Closed", [])
    assert sorted(latest[42]["alerts"]) == ["da1", "da2", "db1"]


def test_a_merges_source_read_before_its_alerts_ends_closed_with_none(
    hub: Hub, tmp_path: Path
) -> None:
    """The source, closed as redirected, comes on an earlier page than the survivor: its
    listing (none) takes no alert away by itself (a listing may be a part), so its first
    closed row still shows them; when their moves are read, it gets a row without them."""
    _commit(hub, _incident("41", 5, [DA1, DA2]), _incident("42", 5, [DB1]))
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    runner.publish()
    _commit(hub, _incident("41", 30, [], status="redirected", redirectIncidentId="42"))
    runner.publish()
    assert sorted(_latest(store)[41]["alerts"]) == ["da1", "da2"]
    moved = [_moved(DA1, "42", 30), _moved(DA2, "42", 30)]
    _commit(hub, _incident("42", 30, [DB1, *moved]))
    runner.publish()
    for by in ("TimeGenerated", "LastModifiedTime"):
        latest = _latest(store, by)
        assert (latest[41]["status"], latest[41]["alerts"]) == ("Closed", []), by
        assert sorted(latest[42]["alerts"]) == ["da1", "da2", "db1"]
    assert store.query("SecurityIncident | where IncidentNumber == 41 | count").rows == ((3,),)


def test_a_version_older_than_the_move_read_after_it_is_the_latest_row(
    hub: Hub, tmp_path: Path
) -> None:
    """Resolved at 11:20, da2 moved away at 11:30; the move is read first (the incidents
    stream failed that cycle, say), then the 11:20 version. Both ways of taking the latest
    row show it resolved, without da2: the membership row states the 11:05 version, which
    comes before 11:20 in every order."""
    _commit(hub, _incident("41", 5, [DA1, DA2]), _incident("42", 5, [DB1]))
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    runner.publish()
    _commit(hub, alerts=(_moved(DA2, "42", 30),))
    runner.publish()
    _commit(hub, _incident("41", 20, [DA1, DA2], status="resolved"))
    runner.publish()
    for by in ("TimeGenerated", "LastModifiedTime"):
        left = _latest(store, by)[41]
        assert (left["status"], left["alerts"]) == ("Closed", ["da1"]), by


@pytest.mark.parametrize("batch_size", [1, 500])
def test_a_version_stated_again_twice_has_one_latest_row(
    hub: Hub, tmp_path: Path, batch_size: int
) -> None:
    """da2 leaves 41 at 11:30, db1 joins it at 11:40, and Defender stamps 41 neither time:
    its 11:05 version is stated again twice, with other alerts each time. Each statement is
    a row of its own, a microsecond after the one before, so that the latest row, taken
    either way, lists the alerts 41 has now (a tie would let either win)."""
    _commit(hub, _incident("41", 5, [DA1, DA2]), _incident("42", 5, [DB1]))
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store, batch_size)
    runner.publish()
    _commit(hub, alerts=(_moved(DA2, "42", 30),))
    runner.publish()
    _commit(hub, alerts=(_moved(DB1, "41", 40),))
    runner.publish()
    for by in ("TimeGenerated", "LastModifiedTime"):
        left = _latest(store, by)[41]
        assert (left["alerts"], left["count"]) == (["da1", "db1"], 2), by
        assert left["modified"] == _moment(_at(5, 11)) + timedelta(microseconds=2)
    modified = store.query(
        "SecurityIncident | where IncidentNumber == 41 | project LastModifiedTime "
        "| order by LastModifiedTime asc"
    )
    start = _moment(_at(5, 11))
    assert [row[0] - start for row in modified.rows] == [
        timedelta(0),
        timedelta(microseconds=1),
        timedelta(microseconds=2),
    ]
    # A replay numbers them the same way.
    latest = _latest(store, "LastModifiedTime")
    runner.replay_from(1)
    runner.publish()
    assert _latest(store, "LastModifiedTime") == latest
