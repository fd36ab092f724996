"""Python's cyclic garbage collector, tuned for a process that parses JSON all day.

A page from Graph becomes tens of thousands of dicts, lists and models, and with CPython's
default thresholds (700, 10, 10) every 700 new containers start a collection that walks the
young ones; as the heap grows, the older generations are walked again and again. Nearly all
of these objects are acyclic and freed by reference counting, so those walks find nothing.
Measured on a 2,000-incident backfill (``bench/results.md``): about a fifth of the CPU of the
sync and of the log tables' worker went to them.

With a young generation of 200,000 objects, a collection still runs every few pages of a
backfill (cyclic garbage is reclaimed as before, and the pause stays in the milliseconds),
but no longer after every few hundred values parsed.

The oldest generation, though, is then hardly ever collected, and some garbage only becomes
garbage there: every SQLAlchemy statement is a small web of references (its bound
parameters hold the ids of an ``IN``), alive while it runs, so it survives the young
collections and is dropped later. A 10,000-incident backfill left about 90,000 such objects
behind, and at 20,000 incidents the sync process peaked at 301 MiB with them, 242 swept.

So a sweeper thread runs a full collection every ``SWEEP_SECONDS`` (0.15 s at the busiest,
under 1% of a backfill's CPU), and only once the process has used ``SWEEP_CPU_SECONDS`` of
CPU since the last: an idle service is swept once or twice a minute, and with its start-up
heap frozen (``freeze_startup``) a sweep costs a few milliseconds. A sweep walks every live
object, so on a large heap it stops the process for longer: the next one then waits until
sweeping stays within ``SWEEP_SHARE`` of the time.
(The emulator, whose seeded tenants filled such a heap, stopped for 1.5 s every 10 s before
this rule, and now keeps them out of the collector altogether: ``emulator/server.py``.)
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Final

#: (young, middle, old) thresholds; measured against (50,000, 20, 20) and the defaults.
THRESHOLDS: Final = (200_000, 50, 100)
#: The sweeper's period: a full collection at most this often,
SWEEP_SECONDS: Final = 10.0
#: and only after this much CPU (all threads) since the last. Young collections are no sign
#: of work: a process that frees what it parses keeps the young generation's count near zero.
SWEEP_CPU_SECONDS: Final = 1.0
#: At most this share of the process's time goes to sweeping.
SWEEP_SHARE: Final = 0.02

_sweeper: threading.Thread | None = None
_sweeper_lock = threading.Lock()


def tune(
    sweep_seconds: float = SWEEP_SECONDS, sweep_cpu_seconds: float = SWEEP_CPU_SECONDS
) -> None:
    """Set the thresholds and start the sweeper for this process (the command line and the
    worker process call it first thing; a library user's process is left as it is)."""
    global _sweeper
    gc.set_threshold(*THRESHOLDS)
    with _sweeper_lock:
        if _sweeper is None:
            _sweeper = threading.Thread(
                target=_sweep,
                args=(sweep_seconds, sweep_cpu_seconds),
                name="xdrsync-gc-sweeper",
                daemon=True,
            )
            _sweeper.start()


def freeze_startup() -> None:
    """Leave what a long-lived process made to start (modules, its configuration, the
    console's app) out of every later collection, so that a sweep walks only what its work
    made since: `xdrsync run` calls it once all is built, before its threads start. The
    sweeps of an idle 10-tenant service walked that heap again and again: 0.31 CPU-s a
    minute, a seventh of its CPU (its modules alone are 137,000 objects, 68 ms a walk).
    Reference counting still frees frozen objects; garbage in a cycle through one of them
    would stay, and at start-up nothing is in flight to make any."""
    gc.collect()
    gc.freeze()


def _sweep(period: float, cpu: float) -> None:
    used = time.process_time()
    wait = period
    while True:
        time.sleep(wait)
        if time.process_time() - used >= cpu:
            started = time.perf_counter()
            gc.collect()
            wait = max(period, (time.perf_counter() - started) / SWEEP_SHARE)
            used = time.process_time()


__all__ = [
    "SWEEP_CPU_SECONDS",
    "SWEEP_SECONDS",
    "SWEEP_SHARE",
    "THRESHOLDS",
    "freeze_startup",
    "tune",
]
