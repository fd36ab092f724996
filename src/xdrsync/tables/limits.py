"""The limits every KQL query over the workspace runs under, and the clock that enforces time.

`QueryConfig` (config `[query]`) holds the operator's settings; the tables package takes anything
shaped like it (`QuerySettings`), so it does not import the configuration layer.

Time is enforced from outside the engine: a watchdog thread calls DuckDB's
`connection.interrupt()` once the deadline passes and keeps calling it until the query has
returned, because an interrupt that lands before DuckDB starts the statement is forgotten.
The same watchdog stops the query at Ctrl-C: DuckDB looks for a pending signal only between
its tasks, so a long join or scan could run on to its end (or to the time limit) after the
user pressed it. When the query runs on the main thread under Python's own SIGINT handler, the
signal also wakes the watchdog (`signal.set_wakeup_fd`), which interrupts the engine at once.
Memory and threads are DuckDB settings fixed when the query connection opens (see `sandbox`).
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Protocol

import duckdb

#: How often the watchdog repeats its interrupt after the deadline, until the query returns.
_REPEAT_SECONDS: Final = 0.05


class QuerySettings(Protocol):
    """What `QueryConfig` offers; read-only so frozen models satisfy it."""

    @property
    def timeout_seconds(self) -> float: ...

    @property
    def memory_limit_mb(self) -> int: ...

    @property
    def threads(self) -> int: ...

    @property
    def max_rows(self) -> int: ...


@dataclass(frozen=True)
class QueryLimits:
    """Limits for one query; the defaults are `QueryConfig`'s."""

    timeout_seconds: float = 30.0
    memory_limit_mb: int = 2048
    threads: int = 2
    max_rows: int = 100_000

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if self.memory_limit_mb < 1 or self.threads < 1 or self.max_rows < 1:
            raise ValueError("memory_limit_mb, threads and max_rows must be at least 1")

    @classmethod
    def of(cls, settings: QuerySettings | None) -> QueryLimits:
        if settings is None:
            return cls()
        if isinstance(settings, QueryLimits):
            return settings
        return cls(
            timeout_seconds=float(settings.timeout_seconds),
            memory_limit_mb=int(settings.memory_limit_mb),
            threads=int(settings.threads),
            max_rows=int(settings.max_rows),
        )


class Watchdog:
    """Whether the deadline passed (``fired``) or Ctrl-C came (``signalled``) while the
    guarded block ran."""

    def __init__(self) -> None:
        self.fired = False
        self.signalled = False


@contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[Watchdog]:
    """Interrupt whatever `con` runs once `seconds` have passed, or at Ctrl-C, until the
    block exits."""
    watchdog = Watchdog()
    done = threading.Event()
    with _sigint_wakeup() as wakeup:

        def watch() -> None:
            if not _wait(done, wakeup, seconds):
                return
            if wakeup is not None and wakeup.signalled:
                watchdog.signalled = True
            else:
                watchdog.fired = True
            while not done.is_set():
                try:
                    con.interrupt()
                except duckdb.ConnectionException:
                    # Closed under us: Ctrl-C ended the query, and the block its connection,
                    # between our look at ``done`` and the interrupt. Nothing is left to stop.
                    return
                done.wait(_REPEAT_SECONDS)

        thread = threading.Thread(target=watch, name="xdrsync-query-watchdog", daemon=True)
        thread.start()
        try:
            yield watchdog
        finally:
            done.set()
            if wakeup is not None:
                wakeup.nudge()
            thread.join()


class _Wakeup:
    """A socket pair Python's C-level signal handler writes signal numbers to."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.signalled = False

    def nudge(self) -> None:
        """Wake the watchdog (a zero byte: no signal's number)."""
        with contextlib.suppress(OSError):  # full: it is awake anyway
            self.writer.send(b"\0")

    def read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            if signal.SIGINT in self.reader.recv(64):
                self.signalled = True

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


@contextmanager
def _sigint_wakeup() -> Iterator[_Wakeup | None]:
    """A `_Wakeup` for SIGINT while the block runs, or None where Ctrl-C is not ours to
    handle: off the main thread (the console's queries), or under another SIGINT handler
    (the service's own stop)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield None
        return
    wakeup = _Wakeup()
    try:
        previous = signal.set_wakeup_fd(wakeup.writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        wakeup.close()
        yield None
        return
    try:
        yield wakeup
    finally:
        signal.set_wakeup_fd(previous)
        wakeup.close()


def _wait(done: threading.Event, wakeup: _Wakeup | None, seconds: float) -> bool:
    """Wait until the block is done (False), or the deadline passed or SIGINT came (True)."""
    if wakeup is None:
        return not done.wait(seconds)
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:  # not select(): any descriptor number
        selector.register(wakeup.reader, selectors.EVENT_READ)
        while not done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if selector.select(remaining):
                wakeup.read()
                if wakeup.signalled:
                    return not done.is_set()
    return False


__all__ = ["QueryLimits", "QuerySettings", "Watchdog", "time_limit"]
