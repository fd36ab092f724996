"""Several writers on one database: seq stays gap-free in commit order, nothing is lost."""

from __future__ import annotations

import threading

from hubdata import TENANT, batch, page_of, stamp

from xdrsync.hub import Hub


def test_concurrent_writers_get_gap_free_seqs(hub_url: str) -> None:
    hubs = [Hub.open(hub_url), Hub.open(hub_url)]
    errors: list[BaseException] = []
    ranges: list[range] = []
    lock = threading.Lock()

    def writer(worker: int) -> None:
        hub = hubs[worker % 2]
        try:
            for minute in range(5):
                pages = page_of(5, stamp(minute), start=worker * 100, alerts=2, evidence=2)
                result = hub.commit_batch(batch(*pages, state={"worker": worker, "m": minute}))
                with lock:
                    ranges.append(result.seqs)
                hub.get_incident(TENANT, pages[0]["id"])  # readers interleave with writers
        except BaseException as problem:  # pragma: no cover - reported below
            errors.append(problem)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        assigned = sorted(seq for r in ranges for seq in r)
        assert assigned == list(range(1, 4 * 5 * 15 + 1))
        # Each batch's range is contiguous: no other writer slipped a seq in between.
        assert all(len(r) == 15 for r in ranges)
        changes = hubs[0].changes_after(0, 10_000)
        assert [c.seq for c in changes] == assigned
        assert hubs[1].counts()[TENANT]["incidents"] == 20
    finally:
        for hub in hubs:
            hub.close()
