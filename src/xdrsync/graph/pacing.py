"""Per-tenant pacing of Graph calls: stay under the budget instead of bouncing off 429s.

Graph limits are per app *and tenant* (microsoft-apis.md §2.10), so each tenant gets its own
``Pacer`` and one slow or throttled tenant never holds up another. Retrying early into a 429
only prolongs it (peers.md §4, item 8), so a 429 pauses every thread of that tenant.

The waits between calls (pacing, Retry-After, backoff) end early at shutdown: work run under
``stop_on(event)`` (the sync service's threads) raises ``Stopped`` from ``wait`` or
``check_stop`` once ``event`` is set, so no Graph call starts after a stop was asked for; a
wait for a lock another thread holds (``holding``) ends so too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: The stop event of the work running in this context (None: nothing stops it).
_STOP: ContextVar[threading.Event | None] = ContextVar("xdrsync_stop", default=None)


class Stopped(BaseException):
    """A stop was asked for: the work under way ends before its next Graph call or wait.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that no handler of failures (which
    would record an error, or count an edit's try) takes a shutdown for one; whoever called
    ``stop_on`` catches it."""


@contextmanager
def stop_on(event: threading.Event) -> Iterator[None]:
    """Run the block (and the threads it starts with its context, e.g. ``prefetch``) so that
    ``wait`` and ``check_stop`` raise ``Stopped`` once ``event`` is set."""
    token = _STOP.set(event)
    try:
        yield
    finally:
        _STOP.reset(token)


def check_stop() -> None:
    """Raise ``Stopped`` if the stop of this context was asked for."""
    event = _STOP.get()
    if event is not None and event.is_set():
        raise Stopped


def wait(seconds: float) -> None:
    """``time.sleep``, cut short by this context's stop (then ``Stopped``)."""
    event = _STOP.get()
    if event is None:
        if seconds > 0:
            time.sleep(seconds)
        return
    if event.wait(max(0.0, seconds)):
        raise Stopped


#: How often a wait for a lock (``holding``) looks whether the stop was asked for: a lock
#: cannot be waited for together with an event.
LOCK_POLL_SECONDS = 0.1


@contextmanager
def holding(lock: threading.Lock) -> Iterator[None]:
    """``with lock``, the wait for it cut short by this context's stop (then ``Stopped``), as
    ``wait`` is: the thread holding it may be inside a request on the wire, which no stop
    cuts short, and a stopped thread, or a drain at its deadline, must not wait for that."""
    stop = _STOP.get()
    if stop is None:
        lock.acquire()
    else:
        while not lock.acquire(timeout=LOCK_POLL_SECONDS):
            if stop.is_set():
                raise Stopped
    try:
        yield
    finally:
        lock.release()


def default_burst(per_minute: int) -> int:
    """A small burst (≤ 5) so a cycle's first calls go out at once (a quiet cycle makes two, a
    busy one a few more), yet a minute's total (budget + burst) stays below Graph's 150/min.
    The smaller the burst, the larger the budget a user can set under a hard limit: 144 under
    150 (a burst of 10 allowed only 139), which a backfill turns into incidents per second."""
    return max(1, min(5, per_minute // 24))


class Pacer:
    """A token bucket (in its GCRA form): ``burst`` calls at once, then one per interval.

    Thread-safe: each caller reserves its slot under the lock and sleeps outside it, so
    concurrent callers are spaced rather than released together.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = wait,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute
        self.burst = burst if burst is not None else default_burst(per_minute)
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        self._tolerance = (self.burst - 1) * self.interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat: float | None = None  # theoretical arrival time of the next call
        self._paused_until = float("-inf")
        self.waited_seconds = 0.0

    def acquire(self) -> float:
        """Block until this call may go out; returns how long it waited."""
        with self._lock:
            now = self._clock()
            earliest = now if self._tat is None else self._tat - self._tolerance
            start = max(now, self._paused_until, earliest)
            self._tat = max(self._tat if self._tat is not None else start, start) + self.interval
            wait = start - now
            self.waited_seconds += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """Hold every call of this tenant for ``seconds`` (Graph said Retry-After)."""
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            self._paused_until = max(self._paused_until, until)
            # Resume at the steady rate, not with a burst that would trip the limit again.
            floor = self._paused_until + self._tolerance
            self._tat = floor if self._tat is None else max(self._tat, floor)

    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())


__all__ = ["Pacer", "Stopped", "check_stop", "default_burst", "holding", "stop_on", "wait"]
