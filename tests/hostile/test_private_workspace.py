"""The workspace is private to the account running xdrsync: folder 0700, files 0600, also for
files SQLite and DuckDB create later, and an existing workspace is tightened on open."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hostile_server import HostileGraph

from xdrsync.layout import make_private
from xdrsync.workspace import Workspace


@pytest.fixture(autouse=True)
def keep_umask() -> Iterator[None]:
    """Workspace.open sets the process umask; give the other tests theirs back."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_workspace_and_every_file_in_it_are_private(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    os.umask(0o022)  # a usual default: files 0644, folders 0755
    folder = tmp_path / "ws"
    with Workspace.open(hostile.config(folder)) as workspace:
        workspace.logs.initialize()  # creates the DuckDB file (and its .wal) now
        (folder / "made-later.txt").write_text("x")  # anything created later, by anyone here
    assert mode(folder) == 0o700
    files = sorted(p for p in folder.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"hub.sqlite3", "logs.duckdb"}
    assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o600) for p in files}


def test_an_existing_workspace_is_tightened_with_one_log_line(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    folder = tmp_path / "ws"
    with Workspace.open(hostile.config(folder)):
        pass
    folder.chmod(0o755)
    (folder / "hub.sqlite3").chmod(0o644)
    (folder / "sync.lock").write_text("1")
    (folder / "sync.lock").chmod(0o664)
    (folder / "notes.txt").write_text("not ours")
    (folder / "notes.txt").chmod(0o644)
    with structlog.testing.capture_logs() as events, Workspace.open(hostile.config(folder)):
        pass
    tightened = [e for e in events if "permissions tightened" in e["event"]]
    assert len(tightened) == 1
    assert tightened[0]["changed"] == (
        "ws/ 0755->0700, hub.sqlite3 0644->0600, sync.lock 0664->0600"
    )
    assert mode(folder) == 0o700
    assert mode(folder / "hub.sqlite3") == mode(folder / "sync.lock") == 0o600
    assert mode(folder / "notes.txt") == 0o644  # not xdrsync's: left alone
    with structlog.testing.capture_logs() as again, Workspace.open(hostile.config(folder)):
        pass
    assert not [e for e in again if "permissions tightened" in e["event"]]


def test_make_private_only_ever_adds_umask_bits(tmp_path: Path) -> None:
    os.umask(0o027)
    make_private(tmp_path / "ws")
    assert os.umask(0o022) == 0o077
    os.umask(0o177)
    make_private(tmp_path / "ws")
    assert os.umask(0o022) == 0o177


def test_a_command_that_only_reads_creates_the_workspace_private(
    hostile: HostileGraph, tmp_path: Path
) -> None:
    """`incidents list` refuses a workspace without a hub and `query` a workspace folder that
    does not exist, and both make nothing (a mistyped path gets no new workspace); `query` in
    an empty folder makes an empty, private log file there."""
    os.umask(0o022)  # what the command inherits: a usual default (files 0644, folders 0755)
    folder = tmp_path / "ws"
    config = hostile.config(folder)
    path = tmp_path / "xdrsync.toml"
    path.write_text(
        f'[workspace]\npath = "{folder}"\n\n[[tenants]]\nname = "t"\n'
        f'tenant_id = "{config.tenants[0].tenant_id}"\nclient_id = "{config.tenants[0].client_id}"\n'
        'client_secret = "file:secret"\n'
    )
    (tmp_path / "secret").write_text("s")
    (tmp_path / "secret").chmod(0o600)

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xdrsync", *command, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = run("incidents", "list")
    assert refused.returncode == 2 and "no hub at" in refused.stderr
    assert not folder.exists()
    mistyped = run("query", "SecurityIncident | count")
    assert mistyped.returncode == 2 and "no workspace at" in mistyped.stderr
    assert not folder.exists()
    folder.mkdir(mode=0o755)
    done = run("query", "SecurityIncident | count")
    assert done.returncode == 0, done.stderr
    assert mode(folder) == 0o700
    files = [p for p in folder.iterdir() if p.is_file()]
    assert files and all(mode(p) == 0o600 for p in files)
