"""What only PostgreSQL can show, against a real server (``tests/pgserver.py``): the limits it
has and SQLite does not (index entry size, 32-bit ids), an upgrade, a missing driver. Every
other hub test runs on both databases (``conftest.hub``)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hubdata import (
    TENANT,
    alert_json,
    batch,
    incident_json,
    migrate,
    stamp,
)
from sqlalchemy import create_engine, text

from pgserver import PgServer
from xdrsync.console.entities import entities
from xdrsync.errors import ConfigError
from xdrsync.hub import Hub
from xdrsync.hub.database import HEAD_REVISION, create_hub_engine, current_revision
from xdrsync.sync.lock import WorkspaceLock
from xdrsync.twoway.edits import EditRequest, plan_edits


def _url_evidence(url: str) -> dict[str, object]:
    return {
        "@odata.type": "#microsoft.graph.security.urlEvidence",
        "createdDateTime": stamp(),
        "verdict": "malicious",
        "remediationStatus": "none",
        "roles": [],
        "detailedRoles": [],
        "tags": [],
        "url": url,
    }


def test_an_incident_with_a_long_url_is_stored_and_its_entity_found(pg_hub: Hub) -> None:
    """A phishing URL of thousands of characters is ordinary evidence. PostgreSQL refuses an
    index entry over about 2,700 bytes, and the whole incident was quarantined."""
    url = "https://phish.example/login?" + "&".join(f"p{n}=" + "x" * 40 for n in range(110))
    assert len(url) > 4000
    twin = url[:-1] + "y"  # the same first 200 characters: told apart by the whole key
    alerts = [
        alert_json("a1", "1", stamp(1), evidence=[_url_evidence(url)]),
        alert_json("a2", "2", stamp(1), evidence=[_url_evidence(twin)]),
    ]
    result = pg_hub.commit_batch(
        batch(
            incident_json("1", stamp(1), alerts=alerts[:1]),
            incident_json("2", stamp(1), alerts=alerts[1:]),
        )
    )
    assert (result.incidents.inserted, result.quarantined) == (2, 0)
    found = entities(pg_hub, [TENANT], "url", None, 10)
    assert sorted((e["key"], e["incidents"]) for e in found) == sorted(
        [(url, ["1"]), (twin, ["2"])]
    )


def test_the_ids_of_growing_tables_go_past_2_to_the_31(pg_hub: Hub) -> None:
    """An idle tenant audits thousands of pages a day; an ``integer`` id stopped every commit
    once its sequence reached 2^31."""
    with pg_hub.engine.begin() as conn:
        for table in ("audit", "quarantine", "dead_letter", "outbox"):
            conn.execute(text(f"ALTER SEQUENCE {table}_id_seq RESTART WITH {2**31 + 5}"))
    for minute in (1, 2, 3):
        pg_hub.commit_batch(batch(incident_json("1", stamp(minute), name=f"v{minute}")))
    assert all(row.id > 2**31 for row in pg_hub.audit_tail(3))
    current = pg_hub.get_incident(TENANT, "1")
    assert current is not None
    edits = plan_edits(
        "incident",
        TENANT,
        "1",
        current.to_graph(),
        EditRequest(status="inProgress"),
        author="ana@contoso.com",
        origin="cli",
    )
    (edit,) = pg_hub.enqueue_edits(edits)
    assert edit > 2**31 and [e.id for e in pg_hub.due_edits()] == [edit]


def test_an_upgrade_from_0006_keeps_the_data(pg: PgServer) -> None:
    url = pg.new_database()
    engine = create_engine(url)
    migrate(engine, "0006")
    engine.dispose()
    with Hub.open(url) as hub:  # upgrades to head
        assert current_revision(hub.engine) == HEAD_REVISION
        hub.commit_batch(batch(incident_json("1", stamp(1))))
        assert hub.get_incident(TENANT, "1") is not None
        with hub.engine.connect() as conn:
            kind = conn.execute(
                text(
                    "SELECT data_type FROM information_schema.sequences "
                    "WHERE sequence_name = 'audit_id_seq'"
                )
            ).scalar_one()
        assert kind == "bigint"


def test_a_missing_driver_is_a_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as on an install without the extra
    with pytest.raises(ConfigError, match=r"pip install 'xdrsync\[postgres\]'"):
        create_hub_engine("postgresql+psycopg://hub@127.0.0.1:1/xdrsync")


def test_two_workspaces_on_one_postgresql_hub_never_sync_side_by_side(
    pg: PgServer, tmp_path: Path
) -> None:
    url = pg.new_database()
    first = WorkspaceLock(tmp_path / "host-a", url).acquire()  # two machines, one hub
    try:
        with pytest.raises(ConfigError, match="another xdrsync process is syncing the hub"):
            WorkspaceLock(tmp_path / "host-b", url).acquire()
        assert not (tmp_path / "host-b" / "sync.lock").exists() or _unlocked(tmp_path / "host-b")
    finally:
        first.release()
    WorkspaceLock(tmp_path / "host-b", url).acquire().release()  # free once the first stops


def _unlocked(folder: Path) -> bool:
    """Whether the folder's file lock is free (the refused lock let go of it)."""
    try:
        WorkspaceLock(folder).acquire().release()
    except ConfigError:
        return False
    return True


def test_a_writer_whose_hub_lock_is_lost_is_stopped(pg: PgServer, tmp_path: Path) -> None:
    """A session lock ends with its connection (a restart, a failover, an idle timeout): the
    writer must stop, or a second machine would take the lock and write beside it."""
    url = pg.new_database()
    lost = threading.Event()
    held = WorkspaceLock(tmp_path / "a", url, on_lost=lost.set, check_seconds=0.1).acquire()
    try:
        assert not lost.wait(0.5)  # held, and checked, without a false alarm
        admin = create_engine(url)
        try:
            with admin.connect() as session:  # the server ends the writer's session
                session.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                    )
                )
        finally:
            admin.dispose()
        assert lost.wait(10)
        assert held.lost  # said before the stop, which asks why it came
    finally:
        held.release()


def test_a_service_that_lost_its_hub_lock_exits_with_a_failure(
    pg: PgServer, tmp_path: Path
) -> None:
    """The watchdog stops `run` with the SIGTERM an operator's stop sends; a clean exit 0
    would leave a service restarted on failure only (systemd `Restart=on-failure`, Docker's
    `on-failure`) down, with no exit status saying why."""
    url = pg.new_database()
    config = tmp_path / "xdrsync.toml"
    config.write_text(
        f'[workspace]\npath = "ws"\ndatabase_url = "{url}"\n\n[console]\nenabled = false\n\n'
        '[[tenants]]\nname = "contoso"\ntenant_id = "00000000-0000-0000-0000-000000000001"\n'
        'client_id = "11111111-1111-1111-1111-111111111111"\nclient_secret = "env:UNSET_HERE"\n'
        # never Microsoft's: the tenant fails (its secret is unset), is tried again, runs on
        'graph_url = "http://127.0.0.1:9"\nauthority_url = "http://127.0.0.1:9"\n'
    )
    said = tmp_path / "run.err"
    with said.open("w") as err:
        service = subprocess.Popen(
            [sys.executable, "-m", "xdrsync", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while "syncing 1 tenant" not in said.read_text():
            assert service.poll() is None and time.monotonic() < deadline, said.read_text()
            time.sleep(0.2)
        admin = create_engine(url)
        try:
            with admin.connect() as session:  # the server ends the writer's lock session
                ended = session.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                    )
                ).scalar()
        finally:
            admin.dispose()
        assert ended == 1
        code = service.wait(timeout=90)  # the watchdog checks every 15 s
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
    errors = [line for line in said.read_text().splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "writer lock was lost" in errors[0], said.read_text()


def _as_administrator(pg: PgServer, *statements: str) -> None:
    """``statements`` run on the server's own database, as its administrator would."""
    admin = create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        admin.dispose()


def _database_in_zone(pg: PgServer, zone: str) -> str:
    """A new database whose sessions default to ``zone``, as a server set up in that zone
    (postgresql.conf's timezone comes from the host at initdb) has them."""
    url = pg.new_database()
    _as_administrator(pg, f"ALTER DATABASE \"{url.rsplit('/', 1)[1]}\" SET timezone = '{zone}'")
    return url


@pytest.mark.parametrize(
    ("zone", "when"),
    [("America/New_York", "0001-01-01T00:00:00Z"), ("Europe/Berlin", "9999-12-31T23:59:59Z")],
)
def test_dates_at_the_ends_of_time_read_back_whatever_the_servers_zone(
    pg: PgServer, zone: str, when: str
) -> None:
    """Graph writes "never" as 0001-01-01T00:00:00Z. Read in a zone west of UTC that is a
    date in 1 BC, and 9999-12-31 late in the evening is in the year 10000 east of it: the
    driver refuses both, so every read of the row failed, and the console's queue index,
    retrying it for ever, stopped for every incident after it."""
    from xdrsync.console.index import QueueIndex
    from xdrsync.console.queue import QueueFilter, list_queue
    from xdrsync.destinations.runner import DestinationRunner

    with Hub.open(_database_in_zone(pg, zone)) as hub:
        edge = incident_json("1", stamp(1))
        edge["createdDateTime"] = when
        hub.commit_batch(batch(edge, incident_json("2", stamp(1))))
        stored = hub.get_incident(TENANT, "1")
        assert stored is not None
        assert stored.to_graph()["createdDateTime"] == when
        index = DestinationRunner(hub, QueueIndex(hub), batch_size=500)
        index.publish()
        assert index.position() == hub.max_seq(), "the queue index is stuck on the row"
        page = list_queue(hub, QueueFilter(), [TENANT], top=10)
        assert sorted(item.incident_id for item in page.items) == ["1", "2"]


def test_names_fold_in_any_case_on_a_database_made_with_the_c_locale(pg: PgServer) -> None:
    """PostgreSQL's ``lower()`` folds by the database's LC_CTYPE: under C (``initdb
    --no-locale``, a common choice) ASCII letters only, so the queue's owner filter for
    ``éva@contoso.com`` missed ``Éva@Contoso.com`` and entity search for ``sébastien`` missed
    ``SÉBASTIEN Müller``. The hub folds in a collation of the server that folds them."""
    from xdrsync.console.index import QueueIndex
    from xdrsync.console.queue import QueueFilter, list_queue
    from xdrsync.destinations.runner import DestinationRunner

    name = pg.new_database().rsplit("/", 1)[1] + "_c"
    _as_administrator(
        pg, f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE 'C' ENCODING 'UTF8'"
    )
    user = {
        "@odata.type": "#microsoft.graph.security.userEvidence",
        "createdDateTime": stamp(),
        "verdict": "unknown",
        "remediationStatus": "none",
        "roles": [],
        "detailedRoles": [],
        "tags": [],
        "userAccount": {
            "accountName": "SÉBASTIEN",
            "azureAdUserId": "aad-7",
            "displayName": "SÉBASTIEN Müller",
        },
    }
    with Hub.open(pg.url(name)) as hub:
        owned = incident_json(
            "1", stamp(1), alerts=[alert_json("a1", "1", stamp(1), evidence=[user])]
        )
        owned["assignedTo"] = "Éva@Contoso.com"
        hub.commit_batch(batch(owned, incident_json("2", stamp(1))))
        DestinationRunner(hub, QueueIndex(hub), batch_size=500).publish()
        page = list_queue(hub, QueueFilter(owner="éva@contoso.com"), [TENANT], top=10)
        assert [item.incident_id for item in page.items] == ["1"]
        found = entities(hub, [TENANT], None, "sébastien", 10)
        assert [e["incidents"] for e in found] == [["1"]]


def test_the_queue_search_finds_an_incident_by_its_id_or_an_alerts(pg_hub: Hub) -> None:
    """The search's id match (an incident's id, or its alert's, looked up tenant by tenant
    with a row-value ``IN`` over a subquery) on PostgreSQL as on SQLite."""
    from xdrsync.console.index import QueueIndex
    from xdrsync.console.queue import QueueFilter, list_queue
    from xdrsync.destinations.runner import DestinationRunner

    pg_hub.commit_batch(
        batch(incident_json("4512", stamp(1), alerts=[alert_json("da63_15", "4512", stamp(1))]))
    )
    pg_hub.commit_batch(batch(incident_json("2", stamp(2))))
    DestinationRunner(pg_hub, QueueIndex(pg_hub), batch_size=500).publish()
    for pasted in ("4512", "da63_15"):
        page = list_queue(pg_hub, QueueFilter(search=pasted), [TENANT], top=10)
        assert [item.incident_id for item in page.items] == ["4512"], pasted
    assert list_queue(pg_hub, QueueFilter(search="da63"), [TENANT], top=10).items == []


def test_an_incident_with_an_oversized_owner_does_not_stop_the_queue_index(
    pg_hub: Hub,
) -> None:
    """PostgreSQL refuses an index entry over about 2,700 bytes, and the queue's indexes hold
    the owner, status and severity: one incident whose `assignedTo` (Graph's text) was 3,000
    characters failed every batch of the console's queue index, for every tenant, for ever."""
    from xdrsync.console.index import INDEXED_TEXT, QueueIndex
    from xdrsync.console.queue import QueueFilter, list_queue
    from xdrsync.destinations.runner import DestinationRunner

    owner = "".join(chr(ord("a") + (i * 7919) % 26) for i in range(3000)) + "@contoso.com"
    long = incident_json("1", stamp(1))
    long["assignedTo"] = owner
    pg_hub.commit_batch(batch(long))
    pg_hub.commit_batch(batch(incident_json("2", stamp(2))))
    index = DestinationRunner(pg_hub, QueueIndex(pg_hub), batch_size=500)
    index.publish()
    assert index.position() == pg_hub.max_seq(), "the queue index is stuck on the row"
    page = list_queue(pg_hub, QueueFilter(), [TENANT], top=10)
    assert sorted(item.incident_id for item in page.items) == ["1", "2"]
    listed = {item.incident_id: item for item in page.items}
    assert listed["1"].assigned_to == owner[:INDEXED_TEXT]
