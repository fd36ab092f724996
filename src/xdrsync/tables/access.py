"""Short, fair access to one DuckDB file shared by a writer process and reader processes.

DuckDB lets one process open a database file read-write, or several open it read-only, never
both. So nobody keeps the file open: each operation opens, works and closes, and whoever finds
it locked retries with a short jittered backoff inside a bounded budget.

Retrying alone starves the writer: with two readers polling, one of them almost always holds a
shared lock (measured: 4 appends in 3 s). So a writer that finds the file busy announces itself
by touching `<file>.write-pending`, and readers do not open the file while that marker is fresh;
in-flight readers finish, and the writer gets in within a query's time limit (`limits`: a
query holds the file for at most that long, and the writer's budget outlasts it). The marker
is refreshed on every retry, so one left behind by a crashed writer goes stale and is ignored.

Within one process, DuckDB refuses a read-only and a read-write connection to the same file side
by side, so a lock per file also serialises opens across threads.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

import duckdb

from xdrsync.tables.errors import StoreBusyError

_LOCK_MESSAGES: Final = ("could not set lock", "conflicting lock", "different configuration")
#: A marker younger than this means a writer is waiting right now (it re-touches it every
#: retry, at most `_MAX_DELAY` apart).
_MARKER_FRESH_SECONDS: Final = 1.0
_MAX_DELAY: Final = 0.1

_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _process_locks_guard:
        return _process_locks.setdefault(key, threading.Lock())


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and any(m in str(exc).lower() for m in _LOCK_MESSAGES)


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".write-pending")


def _writer_waiting(marker: Path) -> bool:
    try:
        return time.time() - marker.stat().st_mtime < _MARKER_FRESH_SECONDS
    except FileNotFoundError:
        return False


def _announce_writer(marker: Path) -> None:
    with suppress(OSError):  # best effort: without it we only lose fairness, not correctness
        marker.touch()
        os.utime(marker)


def _open(
    path: Path, *, read_only: bool, config: Mapping[str, Any], setup: Sequence[str]
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=read_only, config=dict(config))
    try:
        # KQL datetimes are UTC, and DuckDB reads the session zone when it casts.
        con.execute("SET TimeZone='UTC'")
        for statement in setup:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def _busy(path: Path, timeout: float) -> StoreBusyError:
    return StoreBusyError(
        f"log store {path} is locked by another xdrsync process; gave up after {timeout:g} s"
    )


@contextmanager
def open_store(
    path: Path,
    *,
    read_only: bool,
    timeout: float,
    config: Mapping[str, Any] | None = None,
    setup: Sequence[str] = (),
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to `path` for the length of the `with` block; StoreBusyError on timeout.

    `config` goes to `duckdb.connect`, and `setup` runs after the session zone is set (the
    query sandbox locks the configuration there)."""
    deadline = time.monotonic() + timeout
    lock = _process_lock(path)
    if not lock.acquire(timeout=timeout):
        raise _busy(path, timeout)
    marker = _marker(path)
    try:
        con = _open_retrying(
            path,
            marker,
            read_only=read_only,
            deadline=deadline,
            timeout=timeout,
            config=config or {},
            setup=setup,
        )
        try:
            yield con
        finally:
            con.close()
            if not read_only:
                marker.unlink(missing_ok=True)
    finally:
        lock.release()


def _open_retrying(
    path: Path,
    marker: Path,
    *,
    read_only: bool,
    deadline: float,
    timeout: float,
    config: Mapping[str, Any],
    setup: Sequence[str],
) -> duckdb.DuckDBPyConnection:
    delay = 0.005
    while True:
        if not (read_only and _writer_waiting(marker)):
            try:
                return _open(path, read_only=read_only, config=config, setup=setup)
            except duckdb.Error as exc:
                if not is_lock_error(exc):
                    raise
                if not read_only:
                    _announce_writer(marker)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if not read_only:
                marker.unlink(missing_ok=True)
            raise _busy(path, timeout)
        # Jitter, so processes polling at the same cadence do not keep colliding; the cap
        # keeps a waiting user's latency low.
        time.sleep(min(remaining, delay * (0.5 + random.random())))
        delay = min(delay * 2, _MAX_DELAY)


__all__ = ["is_lock_error", "open_store"]
