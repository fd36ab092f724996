"""The files a workspace folder holds and who may read them (importing this costs nothing, so
commands that only read, such as ``xdrsync query``, need not load the sync machinery to find
them)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

LOG_FILE: Final = "logs.duckdb"
HUB_FILE: Final = "hub.sqlite3"
LOCK_FILE: Final = "sync.lock"
#: Translations of KQL queries already run (tables/translations.py).
KQL_CACHE: Final = "kql-cache"
#: The workspace's log tables as a destination: its name, and the hub cursor mirroring how
#: far they are filled.
TABLES_DESTINATION: Final = "tables"
#: The console's incident-queue index, kept in the hub like a destination (console/index.py).
QUEUE_DESTINATION: Final = "console"

FOLDER_MODE = 0o700
FILE_MODE = 0o600
# Only xdrsync's own files are tightened (with their -wal/-shm/-journal/.wal/.tmp siblings):
# a workspace configured as a shared folder must not have its other files changed.
_OWN_FILES = (HUB_FILE, LOG_FILE, LOCK_FILE)


def make_private(path: Path) -> list[str]:
    """Make the workspace folder 0700 and xdrsync's files in it 0600; returns what changed
    (``name 0644->0600``). Also sets the process umask so that files created later are
    private too (see below)."""
    # Why the process umask, not one scoped to the open: SQLite creates its -wal/-shm and
    # -journal files at the first write, DuckDB its .wal on every write and re-creates files
    # after a checkpoint, long after this call and from whichever thread writes. A umask
    # scoped to the open would miss those. xdrsync never writes anything meant for other
    # accounts, so a private umask for the whole process is the simple, complete answer; it
    # only ever adds bits (an operator's stricter umask is kept).
    previous = os.umask(0o077)
    os.umask(previous | 0o077)
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    targets = [(path, FOLDER_MODE, f"{path.name}/")]
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(_OWN_FILES) and entry.is_file() and not entry.is_symlink():
            targets.append((entry, FILE_MODE, entry.name))
    changed: list[str] = []
    for target, mode, name in targets:
        before = stat.S_IMODE(target.stat().st_mode)
        if before & ~mode:
            try:
                target.chmod(before & mode)
            except OSError as refused:  # not ours (a shared folder): say so, go on
                changed.append(f"{name} {before:04o} left as is ({refused.strerror})")
                continue
            changed.append(f"{name} {before:04o}->{before & mode:04o}")
    return changed
