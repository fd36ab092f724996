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


def _threads_seen(items: list[int], *, last_at: int | None) -> list[str]:
    names: list[str] = []

    def pages() -> Iterator[int]:
        for item in items:
            names.append(threading.current_thread().name)
            yield item

    got = list(prefetched(pages(), last=lambda item: item == last_at))
    assert got == items
    return names


def test_a_read_whose_first_page_is_its_last_starts_no_thread() -> None:
    # A quiet tenant's cycle: one page, marked as the scan's last.
    assert _threads_seen([7], last_at=7) == [threading.current_thread().name]


def test_the_pages_after_the_first_are_read_ahead_on_the_worker() -> None:
    here = threading.current_thread().name
    assert _threads_seen([1, 2, 3], last_at=3) == [here, "prefetch", "prefetch"]


def test_a_failure_of_the_first_page_is_raised_as_it_was() -> None:
    def pages() -> Iterator[int]:
        raise ConnectionError("refused")
        yield 1  # pragma: no cover - a generator that fails at once

    with pytest.raises(ConnectionError, match="refused"):
        list(prefetched(pages(), last=lambda _: True))
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]
