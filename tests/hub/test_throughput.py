"""Backfill pages of 50 incidents (~200 alerts, ~1,250 evidence items) per commit, on every
hub backend: each page committed whole, and read again, nothing committed.

The rates are printed, not asserted: a wall-clock floor failed on a loaded machine (48.7
incidents/s on PostgreSQL under a full parallel run). The throughput figures are `bench/`'s,
measured side by side.
"""

from __future__ import annotations

import time

from hubdata import batch, page_of, stamp

from xdrsync.hub import Hub
from xdrsync.hub.records import InboundBatch


def _pages(count: int, minute: int) -> list[InboundBatch]:
    return [
        batch(*page_of(50, stamp(minute), start=n * 50, alerts=4, evidence=6)) for n in range(count)
    ]


def test_backfill_pages_commit_whole_and_read_again_commit_nothing(hub: Hub) -> None:
    pages = _pages(4, 1)  # parsing is the engine's cost, not the hub's: done before timing
    started = time.perf_counter()
    for page in pages:
        result = hub.commit_batch(page)
        assert result.incidents.inserted == 50
    fresh = 200 / (time.perf_counter() - started)

    started = time.perf_counter()
    for page in pages:
        assert hub.commit_batch(page).first_seq is None
    reread = 200 / (time.perf_counter() - started)

    print(f"hub commit rate: {fresh:.0f} new incidents/s, {reread:.0f} re-read incidents/s")
    assert hub.counts()["00000000-0000-0000-0000-00000000000a"]["evidence"] == 200 * 4 * 6
