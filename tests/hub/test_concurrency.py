"""Several writers on one database: seq stays gap-free in commit order, nothing is lost; and
one sync writer at a time on a SQLite hub that several workspace folders name."""

from __future__ import annotations

import re
import stat
import threading
from pathlib import Path

import pytest
from hubdata import TENANT, batch, page_of, stamp

from xdrsync.config import load_config
from xdrsync.errors import ConfigError
from xdrsync.hub import Hub
from xdrsync.sync.lock import WorkspaceLock


def test_concurrent_writers_get_gap_free_seqs(hub_url: str) -> None:
    hubs = [Hub.open(hub_url), Hub.open(hub_url)]
    errors: list[BaseException] = []
    ranges: list[range] = []
    lock = threading.Lock()

    def writer(worker: int) -> None:
        hub = hubs[worker % 2]
        try:
            for minute in range(5):
                pages = page_of(5, stamp(minute), start=worker * 100, alerts=2, evidence=2)
                result = hub.commit_batch(batch(*pages, state={"worker": worker, "m": minute}))
                with lock:
                    ranges.append(result.seqs)
                hub.get_incident(TENANT, pages[0]["id"])  # readers interleave with writers
        except BaseException as problem:  # pragma: no cover - reported below
            errors.append(problem)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        assigned = sorted(seq for r in ranges for seq in r)
        assert assigned == list(range(1, 4 * 5 * 15 + 1))
        # Each batch's range is contiguous: no other writer slipped a seq in between.
        assert all(len(r) == 15 for r in ranges)
        changes = hubs[0].changes_after(0, 10_000)
        assert [c.seq for c in changes] == assigned
        assert hubs[1].counts()[TENANT]["incidents"] == 20
    finally:
        for hub in hubs:
            hub.close()


def _config(folder: Path, database_url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "xdrsync.toml"
    file.write_text(
        f'[workspace]\npath = "ws"\ndatabase_url = "{database_url}"\n\n[[tenants]]\n'
        'name = "contoso"\ntenant_id = "00000000-0000-0000-0000-000000000001"\n'
        'client_id = "11111111-1111-1111-1111-111111111111"\nclient_secret = "env:UNSET_HERE"\n'
    )
    return file


def test_two_workspaces_on_one_sqlite_hub_never_sync_side_by_side(tmp_path: Path) -> None:
    """A SQLite `database_url` may name one file from several workspace folders (relative to
    each config's folder, or absolute): one writer syncs into it at a time, as on PostgreSQL,
    or both pushers would send the same outbox's edits to Defender."""
    hub = tmp_path / "shared" / "hub.db"
    first = load_config(_config(tmp_path / "a", "sqlite:///../shared/hub.db"))
    second = load_config(_config(tmp_path / "b", f"sqlite:///{hub}"))
    assert first.workspace.path != second.workspace.path
    held = WorkspaceLock.for_config(first).acquire()
    try:
        refused = f"another xdrsync process is syncing the hub at {hub.resolve()}"
        with pytest.raises(ConfigError, match=re.escape(refused)):
            WorkspaceLock.for_config(second).acquire()
        assert stat.S_IMODE((tmp_path / "shared" / "hub.db.lock").stat().st_mode) == 0o600
    finally:
        held.release()
    WorkspaceLock.for_config(second).acquire().release()  # free once the first stops


def test_a_workspace_whose_hub_another_names_is_locked_with_it(tmp_path: Path) -> None:
    """Another workspace's own hub, named by `database_url`, is locked by that workspace's
    `sync.lock`; a workspace naming its own hub takes its lock once."""
    own = load_config(_config(tmp_path / "a", "sqlite:///ws/hub.sqlite3"))
    hub = own.workspace.path / "hub.sqlite3"
    other = load_config(_config(tmp_path / "b", f"sqlite:///{hub}"))
    refused = pytest.raises(ConfigError, match="another xdrsync process is syncing the hub")
    with WorkspaceLock(own.workspace.path), refused:  # `run` there, without database_url
        WorkspaceLock.for_config(other).acquire()
    with WorkspaceLock.for_config(own), refused:
        WorkspaceLock.for_config(other).acquire()
