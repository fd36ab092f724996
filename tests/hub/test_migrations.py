"""Opening the hub: migrations to head, idempotent, safe with two processes at once."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from hubdata import (
    TENANT,
    alert_json,
    batch,
    evidence_json,
    incident_json,
    indexed_entity_key,
    migrate,
    schema_differences,
    stamp,
)
from sqlalchemy import inspect, text

from xdrsync.errors import ConfigError, ConflictError
from xdrsync.hub import Hub, default_url
from xdrsync.hub.database import (
    HEAD_REVISION,
    MIGRATIONS,
    PAGE_SIZE,
    VERSION_TABLE,
    WAL_SIZE_LIMIT,
    current_revision,
    head_revision,
)


def test_reopening_an_existing_file_keeps_the_data(hub_url: str) -> None:
    with Hub.open(hub_url) as hub:
        hub.commit_batch(batch(incident_json("1", stamp(1)), state={"w": 1}))
    for _ in range(2):
        with Hub.open(hub_url) as hub:
            assert current_revision(hub.engine) == head_revision() == HEAD_REVISION == "0014"
            assert hub.get_incident(TENANT, "1") is not None
            assert hub.get_state(TENANT, "incidents") == {"w": 1}
            assert hub.max_seq() == 1


def test_the_migrations_create_exactly_the_schema_the_code_uses(hub: Hub) -> None:
    assert schema_differences(hub) == []
    assert "substr(entity_key, 1, 200)" in indexed_entity_key(hub)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(hub_url: str) -> None:
    with Hub.open(hub_url) as hub, hub.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA page_size")).scalar() == PAGE_SIZE
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        # The write-ahead log shrinks back after its busiest moment (a soak's kept 92 MB).
        assert conn.execute(text("PRAGMA journal_size_limit")).scalar() == WAL_SIZE_LIMIT
    assert "tenant_id" in {c["name"] for c in inspect(hub.engine).get_columns("incident")}


def test_the_default_url_puts_the_hub_in_the_workspace(tmp_path: Path) -> None:
    url = default_url(tmp_path / "data")
    with Hub.open(url) as hub:
        assert hub.max_seq() == 0
    assert (tmp_path / "data" / "hub.sqlite3").exists()


def test_two_processes_opening_a_new_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    script = textwrap.dedent(
        f"""
        from xdrsync.hub import Hub
        hub = Hub.open({url!r})
        print(hub.max_seq())
        hub.close()
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outcomes
    assert [out.strip() for out, _ in outcomes] == ["0", "0"]
    with Hub.open(url) as hub:
        assert current_revision(hub.engine) == HEAD_REVISION


def test_the_migrations_render_for_postgresql() -> None:
    # No PostgreSQL server here: render the DDL offline to prove the schema is portable.
    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", "postgresql+psycopg://hub@localhost/xdrsync")
    command.upgrade(config, "head", sql=True)
    ddl = buffer.getvalue()
    assert "CREATE TABLE incident" in ddl
    assert "TIMESTAMP WITH TIME ZONE" in ddl
    assert "CREATE TABLE xdrsync_hub_version" in ddl
    assert "INSERT INTO counter" in ddl


def test_a_hub_made_before_two_way_sync_upgrades_with_its_data(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    url = default_url(tmp_path)
    engine = create_engine(url)
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO change_log (seq, tenant_id, entity_type, entity_id, version,"
                " content_hash, kind, origin, at) VALUES (7, 't', 'incident', '1', 1, 'h',"
                " 'insert', 'graph', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    assert current_revision(create_engine(url)) == "0001"
    with Hub.open(url) as hub:  # upgrades to head
        assert current_revision(hub.engine) == HEAD_REVISION
        with hub.engine.connect() as conn:
            kept = conn.execute(text("SELECT seq, origin, modified_by FROM change_log")).all()
        assert [tuple(row) for row in kept] == [(7, "graph", None)]
        assert hub.edits() == []


def test_the_head_named_in_code_is_alembics_head() -> None:
    # Opening a hub at HEAD_REVISION skips alembic altogether; a new migration must move it.
    assert head_revision() == HEAD_REVISION


def test_alerts_stored_before_0005_get_their_summary_columns_on_upgrade(hub_url: str) -> None:
    from sqlalchemy import create_engine

    from xdrsync.console.index import compute_rows, decode_list

    alert = alert_json("a1", "1", stamp(1))
    alert.update(
        category="Execution",
        categories=["Persistence", "Execution"],
        firstActivityDateTime="2026-03-01T10:00:00.1234567Z",
        lastActivityDateTime="2026-03-01T11:30:00Z",
    )
    with Hub.open(hub_url) as hub:
        hub.commit_batch(batch(incident_json("1", stamp(1), alerts=[alert])))
    # Take the hub back to 0004 (the columns go) and let the next open upgrade it again.
    engine = create_engine(hub_url)
    migrate(engine, "0004", down=True)
    assert "categories" not in {c["name"] for c in inspect(engine).get_columns("alert")}
    engine.dispose()
    with Hub.open(hub_url) as hub, hub.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT categories, first_activity, last_activity FROM alert")
        ).one()
        (row,) = compute_rows(conn, [(TENANT, "1")], 0)
    assert tuple(stored) == ('["Persistence","Execution"]', 17723592001234567, 17723646000000000)
    assert decode_list(row["tactics"]) == ["Persistence", "Execution"]
    assert row["first_activity_at"].isoformat() == "2026-03-01T10:00:00.123456+00:00"
    assert row["last_activity_at"].isoformat() == "2026-03-01T11:30:00+00:00"


def test_evidence_keeps_its_json_across_0006_both_ways(hub_url: str) -> None:
    from sqlalchemy import create_engine

    items = [evidence_json(1), evidence_json(2, "user")]
    with Hub.open(hub_url) as hub:
        hub.commit_batch(
            batch(
                incident_json(
                    "1", stamp(1), alerts=[alert_json("a1", "1", stamp(1), evidence=items)]
                )
            )
        )
    engine = create_engine(hub_url)
    migrate(engine, "0005", down=True)  # back to 0005: each row gets its item's JSON again
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT payload FROM evidence ORDER BY ordinal")).scalars()
        assert [json.loads(text) for text in stored] == items
    assert not next(c for c in inspect(engine).get_columns("evidence") if c["name"] == "payload")[
        "nullable"
    ]
    engine.dispose()
    with Hub.open(hub_url) as hub:  # and up again: the copies go, the rows read their alert's
        assert "payload" not in {c["name"] for c in inspect(hub.engine).get_columns("evidence")}
        assert [row.payload for row in hub.list_evidence(TENANT, "1")] == items


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, hub_url: str) -> str:
    """A new hub's URL on each backend (the hub itself is made by the test)."""
    return hub_url if request.param == "sqlite" else request.getfixturevalue("pg").new_database()


def _three_versions(url: str) -> tuple[object, object]:
    """An incident and its alert in three versions, each with evidence of its own, the
    current one neither the first nor the last written; how the hub reads them then."""
    moments = iter(datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in (12, 11, 13))

    def page(updated: str, name: str, item: int) -> dict[str, object]:
        alert = alert_json("a1", "1", updated, title=name, evidence=[evidence_json(item)])
        return incident_json("1", updated, name=name, alerts=[alert])

    with Hub.open(url, clock=lambda: next(moments)) as hub:
        hub.commit_batch(batch(page(stamp(2), "first", 1)))
        hub.commit_batch(batch(page(stamp(2), "current", 2)))  # same version, clock back
        hub.commit_batch(batch(page(stamp(1), "late", 3)))
    return _stored(url)


def _stored(url: str) -> tuple[object, object]:
    with Hub.open(url) as hub:
        incident = hub.get_incident(TENANT, "1")
        assert incident is not None and incident.display_name == "current"
        evidence = [row.payload for row in hub.list_evidence(TENANT, "1")]
        assert evidence == [evidence_json(2)]
        return incident.to_graph(), evidence


def test_payloads_move_to_the_history_across_0008_both_ways(any_url: str) -> None:
    from sqlalchemy import create_engine

    before = _three_versions(any_url)
    engine = create_engine(any_url)
    migrate(engine, "0007", down=True)  # back to 0007: the current rows get their copy again
    with engine.connect() as conn:
        copies = {
            table: json.loads(conn.execute(text(f"SELECT payload FROM {table}")).scalar_one())
            for table in ("alert", "incident")
        }
    assert (copies["incident"]["displayName"], copies["alert"]["title"]) == ("current", "current")
    assert copies["alert"]["evidence"] == [evidence_json(2)]
    engine.dispose()
    with Hub.open(any_url) as hub, hub.engine.connect() as conn:  # and up: the copies go
        for table in ("alert", "incident"):
            assert conn.execute(text(f"SELECT payload FROM {table}")).scalar_one() == ""
    assert _stored(any_url) == before  # the reads take the history's


def test_a_current_row_whose_version_has_no_history_keeps_its_json_on_0008(any_url: str) -> None:
    """The upgrade drops the current rows' copies only once each is in the history: a row
    made without its history row (none is, by any xdrsync version) gets one from its copy."""
    from sqlalchemy import create_engine

    before = _three_versions(any_url)
    engine = create_engine(any_url)
    migrate(engine, "0007", down=True)
    with engine.begin() as conn:
        seqs = conn.execute(text("SELECT seq FROM alert UNION ALL SELECT seq FROM incident"))
        expected = sorted(seqs.scalars())
        for table, key in (("alert", "alert_id"), ("incident", "incident_id")):
            conn.execute(  # only the current version's row: the other two stay
                text(
                    f"DELETE FROM {table}_version WHERE EXISTS (SELECT 1 FROM {table} c "
                    f"WHERE c.id = {table}_version.{key} AND c.version = {table}_version.version "
                    f"AND c.content_hash = {table}_version.content_hash)"
                )
            )
    engine.dispose()
    assert _stored(any_url) == before
    with Hub.open(any_url) as hub, hub.engine.connect() as conn:
        kept = conn.execute(
            text("SELECT seq FROM alert_version UNION ALL SELECT seq FROM incident_version")
        )
        restored = sorted(seq for seq in kept.scalars() if seq in expected)
        assert restored == expected  # the log tables find them by seq
        assert len(hub.incident_history(TENANT, "1")) == 3


def test_a_newer_severity_indexed_before_0009_is_ranked_high_on_upgrade(any_url: str) -> None:
    """The queue's index ranked a severity newer than this version (``critical``) with the
    missing ones, so the queue counted and filtered it as "unknown": 0009 ranks such rows as
    High, as the index now does, and its downgrade as the older code did."""
    from sqlalchemy import create_engine

    from xdrsync.console.index import QueueIndex
    from xdrsync.console.queue import QueueFilter, list_queue

    severities = {"1": "critical", "2": "unknownFutureValue", "3": "low", "4": None}
    with Hub.open(any_url) as hub:
        payloads = []
        for incident_id, severity in severities.items():
            payload = incident_json(incident_id, stamp(int(incident_id)))
            payload["severity"] = severity
            payloads.append(payload)
        hub.commit_batch(batch(*payloads))
        QueueIndex(hub).deliver(hub.changes_after(0, 100))

    def ranks() -> dict[str, int]:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT incident_id, severity_rank FROM queue_entry"))
            return {str(key): int(rank) for key, rank in found}

    engine = create_engine(any_url)
    assert ranks() == {"1": 3, "2": -1, "3": 1, "4": -1}
    migrate(engine, "0008", down=True)
    assert ranks() == {"1": -1, "2": -1, "3": 1, "4": -1}  # as an older version left it
    migrate(engine, "0009")
    assert ranks() == {"1": 3, "2": -1, "3": 1, "4": -1}
    engine.dispose()
    with Hub.open(any_url) as hub:
        listed = list_queue(hub, QueueFilter(severities=("high",)), [TENANT]).items
        assert [item.incident_id for item in listed] == ["1"]


def test_an_index_made_before_0010_finds_what_the_entity_cards_show_on_upgrade(
    any_url: str,
) -> None:
    """The queue's search knew each entity's key and one name only: 0010 keeps the identifying
    attributes of each alert's evidence in a column (filled from the stored payloads) and moves
    the index's cursor back, so that every row is recomputed with them; the rows indexed
    before stay listed meanwhile."""
    from sqlalchemy import create_engine

    from xdrsync.console.index import QueueIndex
    from xdrsync.console.queue import QueueFilter, list_queue
    from xdrsync.layout import QUEUE_DESTINATION

    alert = alert_json("a1", "1", stamp(1), evidence=[evidence_json(7)])
    with Hub.open(any_url) as hub:
        hub.commit_batch(batch(incident_json("1", stamp(1), alerts=[alert])))
        QueueIndex(hub).deliver(hub.changes_after(0, 100))
    engine = create_engine(any_url)
    migrate(engine, "0009", down=True)
    with engine.begin() as conn:  # the row as 0009's index wrote it
        conn.execute(text("UPDATE queue_entry SET search = 'pc0007'"))
    migrate(engine, "0010")
    with engine.connect() as conn:
        terms = conn.execute(text("SELECT evidence_terms FROM alert")).scalar_one()
        cursor = conn.execute(
            text("SELECT seq FROM cursor WHERE name = :n"), {"n": QUEUE_DESTINATION}
        ).scalar_one()
    engine.dispose()
    assert terms.split("\n") == ["pc0007.contoso.com", "mde-0007", "pc0007"]
    assert cursor == 0

    def found(hub: Hub, term: str) -> list[str]:
        listed = list_queue(hub, QueueFilter(search=term), [TENANT]).items
        return [item.incident_id for item in listed]

    with Hub.open(any_url) as hub:
        assert found(hub, "pc0007") == ["1"]  # listed while the index catches up
        assert found(hub, "pc0007.contoso.com") == []
        index = QueueIndex(hub)
        index.deliver(hub.changes_after(0, 100))
        assert found(hub, "pc0007.contoso.com") == ["1"]


def test_dead_letters_rejected_twice_before_0011_are_one_each_on_upgrade(any_url: str) -> None:
    """Before 0011 a change rejected again after a replay had a second dead letter: the
    upgrade keeps the newest row of each destination and change, and makes that the rule."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import IntegrityError

    with Hub.open(any_url) as hub:
        hub.commit_batch(batch(incident_json("1", stamp(1)), incident_json("2", stamp(2))))
    engine = create_engine(any_url)
    migrate(engine, "0010", down=True)
    insert = text(
        "INSERT INTO dead_letter (destination, seq, tenant_id, entity_type, entity_id, "
        "reason, at) VALUES (:d, :seq, :t, 'incident', :e, :r, :at)"
    )
    at = datetime(2026, 12, 7, tzinfo=UTC)
    rows = [
        ("splunk", 1, "first"),
        ("splunk", 1, "again"),
        ("splunk", 2, "other"),
        ("elastic", 1, "elsewhere"),
        ("splunk", 1, "latest"),
    ]
    with engine.begin() as conn:  # as a replay left them
        for destination, seq, reason in rows:
            conn.execute(
                insert,
                {"d": destination, "seq": seq, "t": TENANT, "e": str(seq), "r": reason, "at": at},
            )
    migrate(engine, "0011")
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT destination, seq, reason FROM dead_letter"))
        assert sorted(tuple(row) for row in kept) == [
            ("elastic", 1, "elsewhere"),
            ("splunk", 1, "latest"),
            ("splunk", 2, "other"),
        ]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert, {"d": "splunk", "seq": 2, "t": TENANT, "e": "2", "r": "twice", "at": at}
        )
    migrate(engine, "0010", down=True)  # and down: the index is plain again
    with engine.begin() as conn:
        conn.execute(
            insert, {"d": "splunk", "seq": 2, "t": TENANT, "e": "2", "r": "twice", "at": at}
        )
    engine.dispose()


class AlwaysRacing:
    """Defender for the pusher: one incident whose every PATCH Graph answers 409 Conflict."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.patches = 0

    def get_incident(self, incident_id: str, *, expand_alerts: bool = True) -> dict[str, Any]:
        return dict(self.record)

    def patch_incident(self, incident_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        self.patches += 1
        raise ConflictError(f"PATCH incident {incident_id}: Newer version of resource exists")

    def add_incident_comment(self, incident_id: str, text: str) -> list[dict[str, Any]]:
        raise AssertionError("no comments here")

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        raise AssertionError("no alerts here")

    def patch_alert(self, alert_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        raise AssertionError("no alerts here")

    def add_alert_comment(self, alert_id: str, text: str) -> list[dict[str, Any]]:
        raise AssertionError("no alerts here")


def test_an_edit_midway_through_its_409s_keeps_its_count_across_0012(any_url: str) -> None:
    """Before 0012 an edit's 409 answers in a row were counted in its outcome's text; 0012
    keeps the count in ``outbox.conflicts``, read from that text once. An edit Defender had
    answered 409 twice gives up after two more 409s, as it would have; an edit whose last try
    failed otherwise starts from none."""
    from sqlalchemy import create_engine

    from xdrsync.config import ConflictPolicies
    from xdrsync.hub.records import NewEdit
    from xdrsync.twoway.pusher import MAX_CONFLICT_TRIES, Pusher, PushTarget

    record = incident_json("1", stamp(1))
    with Hub.open(any_url) as hub:
        hub.commit_batch(batch(record, incident_json("2", stamp(2))))
        racing, outage = hub.enqueue_edits(
            [
                NewEdit(
                    TENANT, "incident", entity, "assignedTo", None, "bob@contoso.com", "ana", "cli"
                )
                for entity in ("1", "2")
            ]
        )
    engine = create_engine(any_url)
    migrate(engine, "0011", down=True)
    race = "tenant 'contoso': Newer version of resource exists (409 answer 2 of 4)"
    busy = "tenant 'contoso': failed after 1 attempt(s): 503 (Service Unavailable)"
    with engine.begin() as conn:  # as the pusher before 0012 left them
        for edit_id, outcome in ((racing, race), (outage, busy)):
            conn.execute(
                text("UPDATE outbox SET outcome = :o, attempts = 2 WHERE id = :i"),
                {"o": outcome, "i": edit_id},
            )
    engine.dispose()
    with Hub.open(any_url) as hub:  # upgrades to head
        assert {r.id: r.conflicts for r in hub.edits()} == {racing: 2, outage: 0}
        assert hub.edits(ids=[racing])[0].outcome == race  # the message is left as it was
        defender = AlwaysRacing(record)
        pusher = Pusher(hub, [PushTarget("contoso", TENANT, defender)], ConflictPolicies())
        pusher.push_due()
        (row,) = hub.edits(ids=[racing])
        assert (row.state, row.conflicts) == ("pending", 3)
        assert row.outcome is not None and row.outcome.endswith("(409 answer 3 of 4)")
        with hub.engine.begin() as conn:  # the retry's time comes
            conn.execute(text("UPDATE outbox SET next_attempt_at = NULL"))
        pusher.push_due()
        (row,) = hub.edits(ids=[racing])
        assert (row.state, row.conflicts) == ("failed", MAX_CONFLICT_TRIES)
        assert f"after {MAX_CONFLICT_TRIES} tries" in (row.outcome or "")
        (other,) = hub.edits(ids=[outage])
        assert (other.state, other.conflicts) == ("pending", 2)
    engine = create_engine(any_url)
    migrate(engine, "0011", down=True)  # and down: the column goes
    assert "conflicts" not in {c["name"] for c in inspect(engine).get_columns("outbox")}
    engine.dispose()


def test_opening_waits_for_a_writer_that_holds_a_new_file(tmp_path: Path) -> None:
    """Turning a new file to WAL needs a lock that SQLite refuses at once, without its busy
    timeout, while another connection writes; two processes opening a new hub at the same
    moment failed that way about one time in ten. Opening now waits as any write does."""
    path = tmp_path / "hub.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a process creating the file holds for a moment
    script = f"from xdrsync.hub import Hub\nhub = Hub.open('sqlite:///{path}')\nhub.close()\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()  # still waiting, not failed
    finally:
        holder.execute("COMMIT")
        holder.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with Hub.open(f"sqlite:///{path}") as hub:
        assert current_revision(hub.engine) == HEAD_REVISION


def test_a_hub_written_by_a_newer_xdrsync_is_refused_with_what_to_do(hub_url: str) -> None:
    with Hub.open(hub_url) as hub, hub.engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    with pytest.raises(ConfigError, match="revision 0099, written by a newer xdrsync"):
        Hub.open(hub_url)


def test_a_tenant_keyed_in_capitals_before_0013_is_the_configs_tenant_after_it(
    any_url: str,
) -> None:
    """A config that wrote the tenant's GUID in capitals keyed the hub so; the config now
    writes every tenant id in lower case, and 0013 brings the stored ids to it: the same
    incidents, evidence, history, comments, changes and sync state, under one tenant. A record
    the hub held under both spellings (the config's spelling changed once) is kept once."""
    from sqlalchemy import create_engine

    from xdrsync.config import TenantConfig

    capitals = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"
    configured = TenantConfig(
        name="contoso", tenant_id=capitals, client_id=TENANT, client_secret="x"
    ).tenant_id
    assert configured == capitals.lower()

    def page(incident_id: str, minute: float) -> dict[str, object]:
        alert = alert_json(
            f"a{incident_id}", incident_id, stamp(minute), evidence=[evidence_json(1)]
        )
        return incident_json(incident_id, stamp(minute), alerts=[alert])

    with Hub.open(any_url) as hub:
        hub.commit_batch(batch(page("1", 1), page("2", 1), tenant=capitals, state={"at": "upper"}))
        hub.commit_batch(batch(page("1", 2), tenant=capitals))
        # ...and, after the config's spelling changed, incident 2 read again in lower case.
        hub.commit_batch(batch(page("2", 1), tenant=configured, state={"at": "lower"}))
        before = hub.incident_history(capitals, "1")
    engine = create_engine(any_url)
    migrate(engine, "0011", down=True)  # as the last xdrsync left it
    migrate(engine, "0013")
    engine.dispose()
    with Hub.open(any_url) as hub:
        assert sorted(i.id for i in hub.list_incidents(configured, limit=10)) == ["1", "2"]
        assert hub.list_incidents(capitals, limit=10) == []
        assert hub.incident_history(configured, "1") == [
            replace(v, tenant_id=configured) for v in before
        ]
        assert {row.entity_key for row in hub.list_evidence(configured, "1")}
        assert {c.tenant_id for c in hub.changes_after(0)} == {configured}
        assert {(r.tenant_id, r.stream) for r in hub.list_states()} == {(configured, "incidents")}
        assert hub.get_state(configured, "incidents") == {"at": "lower"}
        assert hub.counts()[configured]["incidents"] == 2
        # Synced on: the next version of 1 is a new version of the same incident.
        hub.commit_batch(batch(page("1", 3), tenant=configured))
        assert len(hub.incident_history(configured, "1")) == 3


def test_0013_keeps_the_newer_version_whichever_spelling_holds_it(any_url: str) -> None:
    """A config whose spelling went the other way (lower case, then capitals) left the newer
    version under the capitals: 0013 keeps it current. It had kept the older lower-case row
    while the history held the newer, so reading the newer again failed its insert and the
    incident was quarantined every cycle. A Sentinel read-back's watermark, kept under
    "destination:" and the destination's name, is no tenant and keeps its spelling."""
    from sqlalchemy import create_engine

    capitals = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"
    lower = capitals.lower()

    def page(minute: float) -> dict[str, object]:
        alert = alert_json("a1", "1", stamp(minute), evidence=[evidence_json(1)])
        return incident_json("1", stamp(minute), alerts=[alert])

    with Hub.open(any_url) as hub:
        hub.commit_batch(batch(page(1), tenant=lower, state={"at": "lower"}))
        hub.commit_batch(batch(page(2), tenant=capitals, state={"at": "upper"}))
        hub.save_state("destination:Sentinel-Prod", "readback", {"watermark": "w"})
    engine = create_engine(any_url)
    migrate(engine, "0011", down=True)
    migrate(engine, "0013")
    engine.dispose()
    with Hub.open(any_url) as hub:
        current = hub.get_incident(lower, "1")
        newer = datetime(2024, 5, 1, 10, 2, tzinfo=UTC)  # stamp(2)
        assert current is not None and current.last_update_date_time == newer
        assert len(hub.incident_history(lower, "1")) == 2
        assert {row.entity_key for row in hub.list_evidence(lower, "1")}
        result = hub.commit_batch(batch(page(2), tenant=lower))  # read again: nothing new
        assert result.first_seq is None and result.unchanged == 2
        assert len(hub.incident_history(lower, "1")) == 2
        assert hub.get_state("destination:Sentinel-Prod", "readback") == {"watermark": "w"}


def test_0013_lowers_the_tenant_of_every_table_that_holds_one() -> None:
    """A table added later with a tenant id needs its own care when it is older than 0013."""
    import importlib.util

    from xdrsync.hub import schema

    path = MIGRATIONS / "versions" / "0013_tenant_ids_lower_case.py"
    spec = importlib.util.spec_from_file_location("m0013", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handled = {*module._CURRENT, *module._FOLLOWING, *module._SAME, *module._CARRIED}
    holding = {t.name for t in schema.metadata.sorted_tables if "tenant_id" in t.c}
    assert handled == holding


def test_scopes_kept_by_name_before_0014_follow_the_tenant_and_a_lost_name_gives_none(
    any_url: str,
) -> None:
    """Before 0014 a console user's tenants were names. 0014 has no config: every tenant stays
    every tenant, and a scope by names gives no tenant until the first start with a config
    resolves it, once, to tenant ids. A name that config no longer has gives that user no
    access — never every tenant — with one warning naming the user; a tenant that takes the
    name later is not theirs."""
    from sqlalchemy import create_engine

    from xdrsync.config import Config
    from xdrsync.console.accounts import Accounts, Grant

    acme, other = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000b2"
    with Hub.open(any_url) as hub:
        pass
    engine = create_engine(any_url)
    migrate(engine, "0013", down=True)  # as the last xdrsync left it
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for name, tenants in (
            ("kept", '["acme"]'),
            ("lost", '["gone"]'),
            ("half", '["acme","gone"]'),
            ("all", "[]"),
        ):
            conn.execute(
                text(
                    "INSERT INTO console_user (name, password_hash, role, tenants, created_at, "
                    "changed_at) VALUES (:n, 'x', 'reader', :t, :at, :at)"
                ),
                {"n": name, "t": tenants, "at": now},
            )
    engine.dispose()
    before = Config.for_emulator("http://127.0.0.1:9", [("acme", acme, "c", "s")]).tenants
    later = Config.for_emulator("http://127.0.0.1:9", [("acme", other, "c", "s")]).tenants
    with Hub.open(any_url) as hub:  # upgrades to head
        accounts = Accounts(hub)
        users = {u.name: u for u in accounts.users()}
        assert not users["all"].scoped and users["all"].sees(acme)
        # Not settled yet: scoped users see nothing meanwhile.
        assert all(users[n].scoped and not users[n].sees(acme) for n in ("kept", "lost", "half"))
        warnings = accounts.settle_scopes(before)
        assert len(warnings) == 2
        assert any("'lost'" in w and "'gone'" in w for w in warnings)
        assert any("'half'" in w and "'gone'" in w for w in warnings)
        assert accounts.settle_scopes(before) == []  # once
        assert accounts.settle_scopes(later) == []  # settled: a later config changes nothing
        users = {u.name: u for u in accounts.users()}
        assert users["kept"].scope == (Grant(acme, "acme"),)
        assert users["half"].scope == (Grant(acme, "acme"), Grant(None, "gone"))
        assert users["lost"].scoped and users["lost"].tenant_ids == frozenset()
        assert not users["lost"].sees(acme) and not users["lost"].sees(other)
        assert not users["kept"].sees(other)  # the tenant that takes the name later
        assert not users["all"].scoped
    engine = create_engine(any_url)
    migrate(engine, "0013", down=True)  # and down: the names stay, the ids go
    assert "scope" not in {c["name"] for c in inspect(engine).get_columns("console_user")}
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT name, tenants FROM console_user")).all())
    assert rows == {"kept": '["acme"]', "lost": '["gone"]', "half": '["acme","gone"]', "all": "[]"}
    engine.dispose()


def test_the_shell_warns_once_of_a_scope_whose_tenant_name_is_gone_after_0014(
    tmp_path: Path,
) -> None:
    """The first command with a config after the upgrade settles the scopes kept by name:
    ``users list`` names the user whose tenant name the config no longer has, once, and
    shows that tenant as giving no access."""
    from sqlalchemy import create_engine

    config = tmp_path / "xdrsync.toml"
    config.write_text(
        '[workspace]\npath = "ws"\n\n[[tenants]]\nname = "acme"\n'
        'tenant_id = "00000000-0000-0000-0000-0000000000a1"\n'
        'client_id = "00000000-0000-0000-0000-000000000002"\nclient_secret = "x"\n',
        encoding="utf-8",
    )
    url = default_url(tmp_path / "ws")
    with Hub.open(url):
        pass
    engine = create_engine(url)
    migrate(engine, "0013", down=True)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO console_user (name, password_hash, role, tenants, created_at, "
                "changed_at) VALUES ('lost', 'x', 'reader', '[\"gone\"]', :at, :at)"
            ),
            {"at": datetime.now(UTC)},
        )
    engine.dispose()

    def users_list() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xdrsync", "users", "list", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    first = users_list()
    assert first.returncode == 0, first.stderr
    (warning,) = [line for line in first.stderr.splitlines() if line.startswith("warning:")]
    assert "'lost'" in warning and "'gone'" in warning
    assert "gone (no longer in the config: no access)" in " ".join(first.stdout.split())
    again = users_list()
    assert again.returncode == 0 and "warning" not in again.stderr
    assert "every tenant" not in again.stdout
