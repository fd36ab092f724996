"""The page prefetcher: same items, same errors, and no worker left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from xdrsync.sync.prefetch import prefetched


def test_yields_every_item_in_order() -> None:
    assert list(prefetched(iter(range(100)))) == list(range(100))
    assert list(prefetched(iter([]))) == []


def test_an_error_arrives_after_the_items_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("dropped")

    seen: list[int] = []

    def read_all() -> None:
        for item in prefetched(pages()):
            seen.append(item)

    with pytest.raises(ConnectionError, match="dropped"):
        read_all()
    assert seen == [1, 2]


def test_reads_ahead_while_the_reader_works() -> None:
    """Five 0.1 s fetches and five 0.1 s commits take ~0.6 s overlapped, ~1 s in turn."""

    def slow_pages() -> Iterator[int]:
        for n in range(5):
            time.sleep(0.1)
            yield n

    started = time.perf_counter()
    for _ in prefetched(slow_pages()):
        time.sleep(0.1)
    assert time.perf_counter() - started < 0.9


def test_a_reader_that_stops_early_stops_and_closes_the_source() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                produced.append(n)
                yield n
                n += 1
        finally:
            closed.set()

    def commit_until_failure() -> None:
        for item in prefetched(endless(), depth=2):
            if item == 3:
                raise RuntimeError("commit failed")

    with pytest.raises(RuntimeError, match="commit failed"):
        commit_until_failure()
    assert closed.is_set()  # closed before prefetched() returned: nothing runs on
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count <= 3 + 4
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]


def _read(items: list[int], *, last_at: int | None, read_aheads: list[int]) -> int:
    """Read ``items`` through ``prefetched`` (``last_at``: the item ``last`` calls the last);
    returns how many read-ahead threads were started."""
    before = len(read_aheads)
    assert list(prefetched(iter(items), last=lambda item: item == last_at)) == items
    return len(read_aheads) - before


def test_a_read_whose_first_page_is_its_last_starts_no_thread(read_aheads: list[int]) -> None:
    # A quiet tenant's cycle: one page, marked as the scan's last.
    assert _read([7], last_at=7, read_aheads=read_aheads) == 0
    assert _read([7], last_at=None, read_aheads=read_aheads) == 1  # not known to be the last


def test_the_pages_after_the_first_are_read_ahead_on_the_worker() -> None:
    names: list[str] = []

    def pages() -> Iterator[int]:
        for item in (1, 2, 3):
            names.append(threading.current_thread().name)
            yield item

    assert list(prefetched(pages(), last=lambda item: item == 3)) == [1, 2, 3]
    assert names == [threading.current_thread().name, "prefetch", "prefetch"]


def test_what_follows_an_item_called_the_last_is_still_read(read_aheads: list[int]) -> None:
    # No page is lost if a scan ever yielded after the read it marked as its last.
    assert _read([1, 2, 3], last_at=1, read_aheads=read_aheads) == 0


def test_a_reader_that_stops_at_the_only_page_closes_the_source() -> None:
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            yield 1
            yield 2  # pragma: no cover - never asked for
        finally:
            closed.set()

    reader = prefetched(pages(), last=lambda _: True)
    assert next(reader) == 1
    reader.close()
    assert closed.is_set()
