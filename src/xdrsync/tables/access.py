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

Within one process (the console runs each analyst's query on a thread of its own), DuckDB keeps
one database per file: it refuses a read-only and a read-write connection to the same file side
by side, and a second read-only connection joins the database the first opened, with its
configuration. So the threads of a process share a reader/writer lock per file (`_File`):

* readers run side by side. The first opens the file (with the retries above) and runs
  `setup` there (the query sandbox locks the configuration); each reader, the first too, gets
  a connection of its own on that database (`cursor()`), whose temporary views (a tenant's
  scope) and interrupts (the time limit) are its own. The last one out closes the file. A
  reader whose `config` or `setup` differ (other limits, one thread for `make-series`)
  waits for those readers to finish, and no more of them join meanwhile;
* a writer has the file alone: it waits for the readers in flight, and no reader joins while
  it waits, so a busy console never starves the sync; nor does a writer of another process:
  no reader joins while its marker is fresh.

Readers that share the database share its memory and thread limits (DuckDB's settings are
the database's): the queries running at once in one process hold at most `memory_limit` and
`threads` together.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb

from xdrsync.tables.errors import StoreBusyError

_LOCK_MESSAGES: Final = ("could not set lock", "conflicting lock", "different configuration")
#: A marker younger than this means a writer is waiting right now (it re-touches it every
#: retry, at most `_MAX_DELAY` apart).
_MARKER_FRESH_SECONDS: Final = 1.0
_MAX_DELAY: Final = 0.1


@dataclass(eq=False)
class _File:
    """What the threads of this process are doing with one file; every field is read and
    changed under `changed`."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    #: Readers on `shared`, or waiting for the first of them to open it.
    readers: int = 0
    writing: bool = False
    writers_waiting: int = 0
    #: Readers waiting for the readers of another configuration to finish.
    others_waiting: int = 0
    #: The readers' connection to the file (each reader has a cursor of it), and its
    #: configuration; None while nobody reads or while the first reader opens it.
    shared: duckdb.DuckDBPyConnection | None = None
    key: Hashable = None


_files: dict[str, _File] = {}
_files_guard = threading.Lock()


def _file(path: Path) -> _File:
    key = str(path.resolve())
    with _files_guard:
        return _files.setdefault(key, _File())


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
        # DuckDB prints a progress bar on stdout for a statement over 2 s, into a pipe too:
        # a long load in the worker process filled its stdout, read by its parent at its exit.
        con.execute("SET enable_progress_bar = false")
        # KQL datetimes are UTC, and DuckDB reads the session zone when it casts: set for the
        # database, so every reader's cursor starts with it.
        con.execute("SET GLOBAL TimeZone='UTC'")
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


def _busy_here(path: Path, timeout: float) -> StoreBusyError:
    return StoreBusyError(
        f"log store {path} is busy with other queries or an append of this process; "
        f"gave up after {timeout:g} s"
    )


@contextmanager
def open_store(
    path: Path,
    *,
    read_only: bool,
    timeout: float,
    config: Mapping[str, Any] | None = None,
    setup: Sequence[str] = (),
    session: Sequence[str] = (),
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to `path` for the length of the `with` block; StoreBusyError on timeout.

    `config` goes to `duckdb.connect`, and `setup` runs once the zone is set, on the file's
    connection: for readers, the one they share (the query sandbox locks the configuration
    there). `session` runs on the connection handed out (a query's temporary views)."""
    deadline = time.monotonic() + timeout
    state = _file(path)
    options = dict(config or {})
    if read_only:
        with _reading(path, state, options, tuple(setup), deadline, timeout) as con:
            for statement in session:
                con.execute(statement)
            yield con
        return
    with _writing(path, state, deadline, timeout):
        con = _open_retrying(
            path,
            _marker(path),
            read_only=False,
            deadline=deadline,
            timeout=timeout,
            config=options,
            setup=(*setup, *session),
        )
        try:
            yield con
        finally:
            con.close()
            _marker(path).unlink(missing_ok=True)


@contextmanager
def _reading(
    path: Path,
    state: _File,
    config: Mapping[str, Any],
    setup: tuple[str, ...],
    deadline: float,
    timeout: float,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of the connection this process's readers of `path` share, opened by the first
    of them (see the module's docstring)."""
    key = (tuple(sorted(config.items())), setup)
    marker = _marker(path)
    with state.changed:
        first = _join(path, state, key, marker, deadline, timeout)
    if first:
        try:
            shared = _open_retrying(
                path,
                marker,
                read_only=True,
                deadline=deadline,
                timeout=timeout,
                config=config,
                setup=setup,
            )
        except BaseException:
            with state.changed:
                _leave(state)
            raise
        with state.changed:
            state.shared = shared
            state.changed.notify_all()
    try:
        with state.changed:  # cursors are made and closed one at a time
            assert state.shared is not None
            con = state.shared.cursor()
    except BaseException:
        with state.changed:
            _leave(state)
        raise
    try:
        yield con
    finally:
        with state.changed:
            try:
                con.close()
            finally:
                _leave(state)  # whatever the close does, or the count would stay up for good


def _join(
    path: Path, state: _File, key: Hashable, marker: Path, deadline: float, timeout: float
) -> bool:
    """Count one more reader of `state` (under its lock) once it may read; True when it is the
    first, which opens the file."""
    other = False  # counted in `others_waiting`
    try:
        while True:
            if other and state.key == key:  # our configuration's turn: no longer in the way
                state.others_waiting -= 1
                other = False
            if not state.writing and not state.writers_waiting:
                if state.readers == 0:
                    state.readers, state.key = 1, key
                    return True
                joinable = state.shared is not None and not state.others_waiting
                # A writer of another process waiting: the readers in flight finish first.
                if state.key == key and joinable and not _writer_waiting(marker):
                    state.readers += 1
                    return False
            if state.key != key and not other:
                state.others_waiting += 1
                other = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _busy_here(path, timeout)
            # Woken when anything changes; the wait's cap rereads the marker.
            state.changed.wait(min(remaining, _MAX_DELAY))
    finally:
        if other:
            state.others_waiting -= 1
            state.changed.notify_all()


def _leave(state: _File) -> None:
    """One reader fewer (under `state`'s lock); the last closes the shared connection."""
    state.readers -= 1
    if state.readers == 0:
        if state.shared is not None:
            state.shared.close()
        state.shared, state.key = None, None
    state.changed.notify_all()


@contextmanager
def _writing(path: Path, state: _File, deadline: float, timeout: float) -> Iterator[None]:
    """Hold `path` alone among this process's threads; readers that come meanwhile wait."""
    with state.changed:
        state.writers_waiting += 1
        try:
            while state.writing or state.readers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _busy_here(path, timeout)
                state.changed.wait(remaining)
            state.writing = True
        finally:
            state.writers_waiting -= 1
            state.changed.notify_all()
    try:
        yield
    finally:
        with state.changed:
            state.writing = False
            state.changed.notify_all()


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
