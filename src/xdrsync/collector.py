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
"""

from __future__ import annotations

import gc
from typing import Final

#: (young, middle, old) thresholds; measured against (50,000, 20, 20) and the defaults.
THRESHOLDS: Final = (200_000, 50, 100)


def tune() -> None:
    """Set the thresholds for this process (the command line and the worker process call it
    first thing; a library user's process is left as it is)."""
    gc.set_threshold(*THRESHOLDS)


__all__ = ["THRESHOLDS", "tune"]
