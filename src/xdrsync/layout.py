"""The files a workspace folder holds (names only: importing this costs nothing, so commands
that only read, such as ``xdrsync query``, need not load the sync machinery to find them)."""

from __future__ import annotations

from typing import Final

LOG_FILE: Final = "logs.duckdb"
HUB_FILE: Final = "hub.sqlite3"
LOCK_FILE: Final = "sync.lock"
#: The hub cursor that records how far the log tables are filled.
LOGSTORE_CURSOR: Final = "logstore"
