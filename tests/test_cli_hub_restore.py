"""A hub restored from a copy older than the log tables: the tables then hold changes past
the hub's last, and the restored hub numbers its next changes as those."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from xdrsync.config import load_config
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.hub import Hub, configured_url
from xdrsync.tables.logstore import LogStore


def xdrsync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdrsync", *args], capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(settings_for(seed=41, incidents=5, tenants=1)) as server:
        yield server


def _restored(emulator: EmulatorServer, folder: Path) -> tuple[Path, int, int]:
    """A synced workspace whose hub is put back to a copy taken before two more versions were
    synced and delivered: (its config, the restored hub's last change, the tables' last)."""
    config = write_client_config(
        folder, emulator.base_url, emulator.emulator.settings.tenants, workspace="ws"
    )
    assert xdrsync("sync", "--once", "--config", str(config)).returncode == 0
    workspace = load_config(config).workspace
    hub_file = workspace.path / "hub.sqlite3"
    backup = folder / "hub.backup"
    shutil.copy(hub_file, backup)  # no process holds it: its WAL was checkpointed at close
    # Two versions of incident 1 after the copy, each synced and delivered: the restored
    # hub reads only the latest again, and numbers its next changes as the tables hold these.
    for text in ("first", "second"):
        done = xdrsync("incidents", "update", "1", "--comment", text, "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert xdrsync("sync", "--once", "--config", str(config)).returncode == 0
    for suffix in ("-wal", "-shm"):
        Path(f"{hub_file}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, hub_file)  # the operator restores the hub
    with Hub.open(configured_url(workspace)) as hub:
        head = hub.max_seq()
    held = LogStore(workspace.path / "logs.duckdb").max_seq() or 0
    assert held > head
    return config, head, held


def test_the_replay_the_docs_name_after_a_restore_puts_the_tables_right(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """docs/operations.md: after restoring the hub, replay the log tables from the restored
    hub's last change + 1 before anything else runs. Reading the position for the replay's
    check acknowledged it first, which failed with a traceback ("seq N was never assigned");
    without the replay, the tables kept the rows an earlier hub had numbered as the changes
    the restored hub makes next, and never took those."""
    config, head, _ = _restored(emulator, tmp_path)
    replay = xdrsync("destinations", "replay", "tables", "--from-seq", str(head + 1), "--config", str(config))  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert f"past change {head} is dropped" in replay.stdout
    done = xdrsync("incidents", "update", "3", "--comment", "after the restore", "--config", str(config))  # fmt: skip
    assert done.returncode == 0, done.stderr
    synced = xdrsync("sync", "--once", "--config", str(config))
    assert synced.returncode == 0, synced.stderr
    workspace = load_config(config).workspace
    with Hub.open(configured_url(workspace)) as hub:
        last = hub.max_seq()
        assert hub.get_cursor("tables") == last > head
        made = {(c.seq, c.entity_id) for c in hub.changes_after(head, 1000)}
    assert LogStore(workspace.path / "logs.duckdb").max_seq() == last
    # Every change the restored hub made is in the tables under its number: the change's
    # own rows, not those an earlier hub numbered so.
    assert made <= _rows_held(workspace.path / "logs.duckdb")


def _rows_held(log_file: Path) -> set[tuple[int, str]]:
    """(change number, incident or alert id) of every incident and alert row stored."""
    with duckdb.connect(str(log_file), read_only=True) as con:
        held = con.execute(
            "SELECT _Seq, ProviderIncidentId FROM xdrsync_store.SecurityIncident_rows"
            " UNION SELECT _Seq, SystemAlertId FROM xdrsync_store.SecurityAlert_rows"
        ).fetchall()
    return {(seq, entity) for seq, entity in held}


@pytest.mark.parametrize("back", [0, 2], ids=["past-the-last", "before-the-last"])
def test_a_replay_after_a_restore_drops_what_the_tables_held_past_the_hub(
    emulator: EmulatorServer, tmp_path: Path, back: int
) -> None:
    """Reading the position to check the replay acknowledged it first, which failed with a
    traceback ("seq N was never assigned")."""
    config, head, _ = _restored(emulator, tmp_path)
    start = head + 1 - back
    replay = xdrsync("destinations", "replay", "tables", "--from-seq", str(start), "--config", str(config))  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    workspace = load_config(config).workspace
    assert LogStore(workspace.path / "logs.duckdb").max_seq() == start - 1
