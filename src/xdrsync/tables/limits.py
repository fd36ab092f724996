"""The limits every KQL query over the workspace runs under, and the clock that enforces time.

`QueryConfig` (config `[query]`) holds the operator's settings; the tables package takes anything
shaped like it (`QuerySettings`), so it does not import the configuration layer.

Time is enforced from outside the engine: a watchdog thread calls DuckDB's
`connection.interrupt()` once the deadline passes and keeps calling it until the query has
returned, because an interrupt that lands before DuckDB starts the statement is forgotten.
Memory and threads are DuckDB settings fixed when the query connection opens (see `sandbox`).
"""

from __future__ import annotations

import threading
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
    """Whether the deadline passed while the guarded block ran."""

    def __init__(self) -> None:
        self.fired = False


@contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[Watchdog]:
    """Interrupt whatever `con` runs once `seconds` have passed, until the block exits."""
    watchdog = Watchdog()
    done = threading.Event()

    def watch() -> None:
        if done.wait(seconds):
            return
        watchdog.fired = True
        while not done.is_set():
            con.interrupt()
            done.wait(_REPEAT_SECONDS)

    thread = threading.Thread(target=watch, name="xdrsync-query-watchdog", daemon=True)
    thread.start()
    try:
        yield watchdog
    finally:
        done.set()
        thread.join()


__all__ = ["QueryLimits", "QuerySettings", "Watchdog", "time_limit"]
