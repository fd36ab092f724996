"""An alert Defender moves from one incident to another: in SecurityIncident's current rows
(`arg_max(TimeGenerated, *) by IncidentName`) it is listed by the incident it joined only,
both incidents count their own alerts and span their own alerts' activity, whether or not
Defender bumped the incident it left, and a replay of the log tables gives the same rows.
Sentinel: every alert belongs to one incident, which "gets updated accordingly"."""

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
from xdrsync.tables.logstore import LogStore, _storage

TENANT = "00000000-0000-0000-0000-00000000000a"
#: SecurityIncident's stored table, where the bookkeeping column `_Seq` can be read.
INCIDENTS = _storage("SecurityIncident")
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with pg_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
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


def _alert(
    alert_id: str, incident_id: str, active: tuple[int, int], updated: int
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "incidentId": incident_id,
        "status": "new",
        "severity": "high",
        "serviceSource": "microsoftDefenderForEndpoint",
        "title": f"Alert {alert_id}",
        "createdDateTime": _text(_at(active[1])),
        "lastUpdateDateTime": _text(_at(updated)),
        "firstActivityDateTime": _text(_at(active[0])),
        "lastActivityDateTime": _text(_at(active[1])),
        "evidence": [],
    }


def _incident(incident_id: str, minute: int, alerts: list[dict[str, Any]]) -> Incident:
    return Incident.from_graph(
        {
            "id": incident_id,
            "displayName": f"Incident {incident_id}",
            "severity": "high",
            "status": "active",
            "createdDateTime": _text(_at(0)),
            "lastUpdateDateTime": _text(_at(minute)),
            "alerts": alerts,
        }
    )


def _commit(hub: Hub, *incidents: Incident, alerts: tuple[dict[str, Any], ...] = ()) -> None:
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT,
            stream="incidents" if incidents else "alerts",
            incidents=list(incidents),
            alerts=[Alert.from_graph(a) for a in alerts],
        )
    )


#: Incident 51 has da1 (active minutes 1-2) and da2 (minutes 3-40); incident 52 has db1.
DA1 = _alert("da1", "51", (1, 2), 2)
DA2 = _alert("da2", "51", (3, 40), 40)
DB1 = _alert("db1", "52", (10, 12), 12)
#: da2 moved to 52 at minute 60: its record names 52, at a later version.
MOVED = _alert("da2", "52", (3, 40), 60)


def _before(hub: Hub) -> None:
    _commit(hub, _incident("51", 45, [DA1, DA2]), _incident("52", 45, [DB1]))


def _move_bumping_the_target_only(hub: Hub) -> None:
    """The reviewer's case: 52 is bumped and lists da2; 51 is read again unchanged, so its
    listing in the hub still names da2."""
    _commit(hub, _incident("51", 45, [DA1, DA2]), _incident("52", 60, [DB1, MOVED]))


def _move_read_by_the_alerts_stream(hub: Hub) -> None:
    """Only the alert is read again: neither incident has a version that says so."""
    _commit(hub, alerts=(MOVED,))


def _runner(hub: Hub, store: LogStore) -> DestinationRunner:
    return DestinationRunner(hub, LogTables(hub, store), batch_size=1000)


def _owners(store: LogStore) -> dict[str, list[int]]:
    """The analyst's query: which incidents' current rows list each alert."""
    rows = store.query(
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName "
        "| mv-expand AlertIds | summarize Owners = make_list(IncidentNumber) by tostring(AlertIds)"
    ).as_dicts()
    return {r["AlertIds"]: sorted(r["Owners"]) for r in rows}


def _current(store: LogStore, by: str = "TimeGenerated") -> dict[int, dict[str, Any]]:
    rows = store.query(
        f"SecurityIncident | summarize arg_max({by}, *) by IncidentName "
        "| project IncidentNumber, AlertIds, Count = toint(AdditionalData.alertsCount), "
        "FirstActivityTime, LastActivityTime, LastModifiedTime"
    ).as_dicts()
    return {r["IncidentNumber"]: r for r in rows}


EXPECTED = {
    51: {
        "IncidentNumber": 51,
        "AlertIds": ["da1"],
        "Count": 1,
        "FirstActivityTime": _at(1),
        "LastActivityTime": _at(2),  # no longer da2's minute 40
        "LastModifiedTime": _at(60),  # updated by the move, as Sentinel updates it
    },
    52: {
        "IncidentNumber": 52,
        "AlertIds": ["db1", "da2"],  # in creation order
        "Count": 2,
        "FirstActivityTime": _at(3),
        "LastActivityTime": _at(40),
        "LastModifiedTime": _at(60),
    },
}


@pytest.mark.parametrize(
    "move", [_move_bumping_the_target_only, _move_read_by_the_alerts_stream], ids=["bump", "alert"]
)
def test_each_alert_is_in_one_incident_after_a_move(hub: Hub, tmp_path: Path, move: Any) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    runner = _runner(hub, store)
    _before(hub)
    runner.publish()
    assert _owners(store) == {"da1": [51], "da2": [51], "db1": [52]}
    move(hub)
    runner.publish()
    assert _owners(store) == {"da1": [51], "da2": [52], "db1": [52]}
    assert _current(store) == EXPECTED
    # Microsoft's own dedupe (`arg_max(LastModifiedTime, *)`) finds the same rows.
    assert _current(store, by="LastModifiedTime") == EXPECTED
    # `xdrsync destinations replay tables --from-seq 1` writes the same current rows.
    runner.replay_from(1)
    runner.publish()
    assert _owners(store) == {"da1": [51], "da2": [52], "db1": [52]}
    assert _current(store) == EXPECTED


def _rows_per_incident(store: LogStore) -> dict[int, int]:
    rows = store.query("SecurityIncident | summarize Rows = count() by IncidentNumber").as_dicts()
    return {r["IncidentNumber"]: r["Rows"] for r in rows}


def test_a_move_adds_a_row_only_for_an_incident_its_commit_did_not_change(
    hub: Hub, tmp_path: Path
) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    _before(hub)
    _move_bumping_the_target_only(hub)
    _runner(hub, store).publish()
    # 51: as first read, then updated by the move; 52: as first read, then its own bump,
    # which was read with the move and already lists da2.
    assert _rows_per_incident(store) == {51: 2, 52: 2}
    moved_seq = max(c.seq for c in hub.changes_after(0) if c.entity_id == "da2")
    rows = store.sql(
        f"SELECT _Seq, AlertIds FROM {INCIDENTS} WHERE IncidentNumber = 51 ORDER BY TimeGenerated"
    )
    assert rows[-1] == (moved_seq, '["da1"]')  # the alert change's row


def test_a_merge_adds_no_rows(hub: Hub, tmp_path: Path) -> None:
    # Both incidents change in the commit that moves the alerts: their own rows show it.
    store = LogStore(tmp_path / "logs.duckdb")
    _before(hub)
    _commit(
        hub,
        Incident.from_graph(
            {
                **_incident("51", 60, []).raw,
                "status": "redirected",
                "redirectIncidentId": "52",
            }
        ),
        _incident("52", 60, [DB1, {**DA1, "incidentId": "52"}, MOVED]),
    )
    _runner(hub, store).publish()
    assert _rows_per_incident(store) == {51: 2, 52: 2}
    assert _owners(store) == {"da1": [52], "da2": [52], "db1": [52]}


def test_moves_give_the_same_rows_however_the_changes_are_batched(hub: Hub, tmp_path: Path) -> None:
    _before(hub)
    _move_read_by_the_alerts_stream(hub)
    # ... and back again, then the target's own bump a while later.
    _commit(hub, alerts=(_alert("da2", "51", (3, 40), 70),))
    _commit(hub, alerts=(_alert("da2", "52", (3, 40), 80),))
    _commit(hub, _incident("52", 90, [DB1, _alert("da2", "52", (3, 40), 80)]))

    def published(name: str, batch_size: int, chunk_size: int) -> list[tuple[Any, ...]]:
        store = LogStore(tmp_path / f"{name}.duckdb")
        tables = LogTables(hub, store)
        tables.chunk_size = chunk_size
        DestinationRunner(hub, tables, batch_size=batch_size).publish()
        assert _owners(store) == {"da1": [51], "da2": [52], "db1": [52]}
        return store.sql(
            "SELECT _Seq, IncidentNumber, AlertIds, LastModifiedTime, LastActivityTime "
            f"FROM {INCIDENTS} ORDER BY _Seq, IncidentNumber"
        )

    whole = published("whole", 1000, 1000)
    # Each move shows both incidents again; the target's own bump, once.
    assert [(seq, number) for seq, number, *_ in whole][2:] == [
        (6, 51),
        (6, 52),
        (7, 51),
        (7, 52),
        (8, 51),
        (8, 52),
        (9, 52),
    ]
    assert published("single", 1, 1) == whole
    assert published("chunked", 1000, 1) == whole
