"""The paging rules of ``sync.listing`` at their edges, on the scans themselves (no hub): which
records a scan reads, what each page proves read (``through``), and when it gives up.

Written to kill the mutants that survived the engine-level tests (docs/mutation.md)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakegraph import T0, FakeGraph, FakePage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdrsync.emulator.listing import INCIDENTS, list_page
from xdrsync.errors import FatalSyncError, RetriableError
from xdrsync.graph.security import ListPage, listing_params
from xdrsync.hub.payload import (
    datetime_from_ticks,
    ticks_from_datetime,
    ticks_from_text,
    version_text,
)
from xdrsync.sync.listing import (
    CHASE_PAGES,
    MAX_PASSES,
    MAX_SHUFFLED_PASSES,
    MAX_SKIP,
    STALLED_PASSES,
    PageQuery,
    Read,
    Unordered,
    Unsettled,
    keyset_scan,
    stamp_of,
    whole_scan,
    window_scan,
)

S = "incidents"
LOWER = ticks_from_datetime(T0 - timedelta(days=3))
SECOND = 10_000_000  # ticks


def ticks(record: dict[str, Any]) -> int:
    value = ticks_from_text(record["lastUpdateDateTime"])
    assert value is not None
    return value


@dataclass
class Recorder:
    """Wraps a fake's listing: records every (id, stamp) served and every query asked."""

    graph: FakeGraph
    served: set[tuple[str, int]] = field(default_factory=set)
    queries: list[PageQuery] = field(default_factory=list)

    def __call__(self, query: PageQuery) -> FakePage:
        assert 0 <= query.skip <= MAX_SKIP, "Graph answers 400 above $skip=500"
        self.queries.append(query)
        page = self.graph.incidents_page(query)
        self.served.update((r["id"], ticks(r)) for r in page.items)
        return page

    def unread_before(self, through: int, lower: int = LOWER) -> set[str]:
        """Records now stamped in ``[lower, through)`` whose current version was never served."""
        return {
            key
            for key, r in self.graph.records[S].items()
            if lower <= ticks(r) < through and (key, ticks(r)) not in self.served
        }


def tie(graph: FakeGraph, count: int, stamp_ticks: int, prefix: str = "g") -> None:
    for n in range(count):
        graph.put(S, f"{prefix}{n:04d}", datetime_from_ticks(stamp_ticks))


@dataclass
class Tie:
    """A cheap source holding only one run of ``size`` records stamped alike."""

    size: int
    page_size: int
    stamp: int
    queries: list[PageQuery] = field(default_factory=list)
    served: set[str] = field(default_factory=set)

    def __call__(self, query: PageQuery) -> FakePage:
        assert 0 <= query.skip <= MAX_SKIP, "Graph answers 400 above $skip=500"
        self.queries.append(query)
        listed = query.lower < self.stamp or (query.lower == self.stamp and query.lower_inclusive)
        total = self.size if listed else 0
        start = query.skip
        end = min(total, start + self.page_size)
        items = tuple(
            {"id": f"g{n:04d}", "lastUpdateDateTime": version_text(self.stamp)}
            for n in range(start, end)
        )
        self.served.update(item["id"] for item in items)
        return FakePage(items, T0, more=end < total, count=total if query.count else None)


# -- the invariant the watermark rests on, for any data and any edits ------------------------


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    page_size=st.integers(2, 5),
    stamps=st.lists(st.integers(0, 40), min_size=0, max_size=25),
    edits=st.lists(st.tuples(st.integers(1, 30), st.integers(0, 24)), max_size=6),
    bounded=st.booleans(),
)
def test_every_page_proves_only_what_has_been_read(
    page_size: int, stamps: list[int], edits: list[tuple[int, int]], bounded: bool
) -> None:
    """At every page, everything stamped before its ``through`` has been read at its current
    version; the last page says so for the whole range. Edits move records forward mid-scan."""
    graph = FakeGraph(page_size=page_size)
    for n, step in enumerate(stamps):
        graph.put(S, f"r{n:03d}", T0 - timedelta(minutes=7 * step))
    for page, index in edits:
        if stamps:
            key = f"r{index % len(stamps):03d}"

            def hook(
                g: FakeGraph, _s: str, _q: PageQuery, page: int = page, key: str = key
            ) -> None:
                if g.pages == page:
                    g.edit(S, key)

            graph.hooks.append(hook)
    fetch = Recorder(graph)
    upper = ticks_from_datetime(T0 - timedelta(minutes=100)) if bounded else None
    reads: list[Read] = []
    for read in keyset_scan(fetch, LOWER, upper):  # checked as each page arrives
        reads.append(read)
        if read.through is not None:
            assert not fetch.unread_before(read.through), "a page claimed unread records read"
    marks = [read.through for read in reads if read.through is not None]
    assert marks == sorted(marks), "the proven mark never moves back"
    assert reads[-1].done and all(not read.done for read in reads[:-1])
    # Read to the end: everything stamped before the fake's clock now has been read.
    assert reads[-1].through == upper
    end = upper if upper is not None else ticks_from_datetime(graph.now) + 1
    assert not fetch.unread_before(end), "a record in the range was never read"


@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    page_size=st.integers(2, 5),
    stamps=st.lists(st.integers(0, 40), min_size=0, max_size=20, unique=True),
    edit_pages=st.sets(st.integers(1, 20), max_size=3),
)
def test_a_window_read_in_any_order_reads_every_record(
    page_size: int, stamps: list[int], edit_pages: set[int]
) -> None:
    graph = FakeGraph(page_size=page_size, ordered=False)
    for n, step in enumerate(stamps):
        graph.put(S, f"r{n:03d}", T0 - timedelta(minutes=7 * step))
    for page in edit_pages:
        if stamps:

            def hook(g: FakeGraph, _s: str, _q: PageQuery, page: int = page) -> None:
                if g.pages == page:
                    g.edit(S, "r000")

            graph.hooks.append(hook)
    fetch = Recorder(graph)
    upper = ticks_from_datetime(T0 + timedelta(hours=1))
    try:
        reads = list(window_scan(fetch, LOWER, upper))
    except Unsettled:
        return  # kept changing for MAX_PASSES passes: nothing was proven, the engine splits it
    assert reads[-1].done and reads[-1].through == upper
    assert all(read.through is None and not read.done for read in reads[:-1])
    # An edit during the read is stamped after the read began, so the engine's watermark
    # (never past the first page's Date) leaves it to the next cycle: everything before is read.
    started = ticks_from_datetime(reads[0].page.server_date)
    assert not fetch.unread_before(min(upper, started))
    assert all(q.count and not q.ordered for q in fetch.queries)


def drain(reads: Iterator[Read], proven: list[int]) -> None:
    """Read a scan to its end (or its error), noting what each page proved read."""
    for read in reads:
        if read.through is not None:
            proven.append(read.through)


# -- ties longer than a page ---------------------------------------------------------------


def test_a_tie_that_ends_exactly_at_skip_500_is_read_whole() -> None:
    fetch = Tie(MAX_SKIP + 5, 5, LOWER + 60 * SECOND)
    reads = list(keyset_scan(fetch, LOWER))
    assert len(fetch.served) == MAX_SKIP + 5
    assert max(q.skip for q in fetch.queries) == MAX_SKIP
    assert reads[-1].done


@pytest.mark.parametrize(("size", "page_size"), [(MAX_SKIP + 6, 5), (MAX_SKIP + 2, 3)])
def test_a_tie_beyond_skip_500_that_no_filter_splits_fails_clearly_without_asking_beyond_it(
    size: int, page_size: int
) -> None:
    stamp = LOWER + 60 * SECOND
    fetch = Tie(size, page_size, stamp)  # no createdDateTime, severity or status to split by
    proven: list[int] = []
    # the message names the stamp, so an operator can find the records in Defender
    with pytest.raises(
        FatalSyncError, match=rf"share lastUpdateDateTime {version_text(stamp)}; .*\$skip=500"
    ):
        drain(keyset_scan(fetch, LOWER), proven)
    assert max(proven) == stamp  # nothing after the group was claimed read


TIE = "2025-01-01T00:00:00.0000000Z"


@dataclass
class Emulated:
    """The emulator's listing over ``records`` (pages of ``top``, the order among equal
    stamps by id, or none honoured at all): the queries asked and the ids served."""

    records: list[dict[str, Any]]
    top: int = 50
    order_ignored: bool = False
    queries: list[PageQuery] = field(default_factory=list)
    served: set[str] = field(default_factory=set)

    def __call__(self, query: PageQuery) -> ListPage:
        assert 0 <= query.skip <= MAX_SKIP, "Graph answers 400 above $skip=500"
        self.queries.append(query)
        params = {k: str(v) for k, v in listing_params(query, self.top).items()}
        page = list_page(
            self.records,
            params,
            spec=INCIDENTS,
            base_url="http://x/v1.0/security",
            order_ignored=self.order_ignored,
        )
        self.served.update(item["id"] for item in page.items)
        return ListPage(
            tuple(page.items),
            datetime(2025, 1, 2, tzinfo=UTC),
            more=page.next_link is not None,
            full=len(page.items) >= self.top,
            count=page.count,
        )


def tied(n: int, created: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"t{n:05d}", "lastUpdateDateTime": TIE, "createdDateTime": created, **fields}


@pytest.mark.parametrize("scan", ["keyset", "whole", "whole-unordered", "whole-order-refused"])
def test_a_tie_beyond_skip_500_is_read_whole_in_parts_by_created_date(scan: str) -> None:
    """1,700 records stamped alike (an incident resolved with all its alerts) would stop the
    stream at their stamp for good: they are read in parts by createdDateTime instead. A
    source that refuses ``$orderby`` is never asked for it again once it has refused."""
    records = [
        tied(n, version_text(ticks_from_text("2024-12-01T00:00:00Z") + n * SECOND))  # type: ignore[operator]
        for n in range(1700)
    ]
    records.append({"id": "later", "lastUpdateDateTime": "2025-01-01T00:00:01Z"})
    fetch = Emulated(records, order_ignored=scan == "whole-unordered")
    lower = ticks_from_text("2024-12-31T00:00:00Z")
    assert lower is not None
    if scan == "keyset":
        reads = list(keyset_scan(fetch, lower))
        assert reads[-1].done  # the stream goes on past the tie, to its end
        assert {read.through for read in reads} == {ticks_from_text(TIE), None}
    elif scan == "whole-order-refused":

        def refusing(query: PageQuery) -> ListPage:
            if query.ordered:
                raise Unordered("Query option 'OrderBy' is not allowed.")
            return fetch(query)

        list(whole_scan(refusing))
    else:
        list(whole_scan(fetch))
    assert fetch.served == {r["id"] for r in records}
    assert any("createdDateTime" in q.filter_text for q in fetch.queries)
    assert len(fetch.queries) < 200  # parts of about half of what $skip reaches, not pages


def test_records_sharing_both_stamps_beyond_reach_are_split_by_severity_then_status() -> None:
    created = "2024-12-01T00:00:00Z"
    records = [
        *(
            tied(n, created, severity="high", status=("active", "resolved")[n % 2])
            for n in range(800)
        ),
        *(tied(n, created, severity="medium", status="active") for n in range(800, 1200)),
        *(tied(n, created, severity="low", status="active") for n in range(1200, 1300)),
        *(tied(n, created, status="active") for n in range(1300, 1310)),  # no severity
    ]
    fetch = Emulated(records)
    lower = ticks_from_text("2024-12-31T00:00:00Z")
    assert lower is not None
    proven: list[int] = []
    drain(keyset_scan(fetch, lower), proven)
    assert fetch.served == {r["id"] for r in records}
    filters = {q.filter_text for q in fetch.queries}
    assert any("severity eq 'high' and status eq 'resolved'" in f for f in filters)
    assert any("not (severity eq 'high')" in f for f in filters)  # the other values


def test_a_tie_no_filter_tells_apart_beyond_reach_fails_clearly_asking_no_deeper() -> None:
    records = [tied(n, "2024-12-01T00:00:00Z", severity="low", status="new") for n in range(600)]
    fetch = Emulated(records)
    lower = ticks_from_text("2024-12-31T00:00:00Z")
    assert lower is not None
    with pytest.raises(FatalSyncError, match=rf"share lastUpdateDateTime {TIE} .*\$skip=500"):
        drain(keyset_scan(fetch, lower), [])
    assert max(q.skip for q in fetch.queries) <= MAX_SKIP  # Emulated asserts it of each


def test_records_of_a_split_tie_in_no_part_are_not_skipped_unseen() -> None:
    """Records without a createdDateTime fall in no part by it: the tie's count tells, and
    the tie is read again rather than passed."""
    stamped = "2024-12-01T00:00:00Z"
    records = [tied(n, version_text(ticks_from_text(stamped) + n * SECOND)) for n in range(600)]  # type: ignore[operator]
    records += [{"id": f"u{n}", "lastUpdateDateTime": TIE} for n in range(3)]
    fetch = Emulated(records)
    lower = ticks_from_text("2024-12-31T00:00:00Z")
    assert lower is not None
    proven: list[int] = []
    with pytest.raises(RetriableError, match=r"603 records share .* hold 600; .*again"):
        drain(keyset_scan(fetch, lower), proven)
    assert max(proven) == ticks_from_text(TIE)  # nothing past the tie was claimed read


def test_a_tie_that_keeps_changing_is_given_up_after_four_passes_proving_nothing_after_it() -> None:
    graph = FakeGraph(page_size=3)
    stamp = LOWER + 60 * SECOND
    tie(graph, 10, stamp)
    graph.put(S, "later", T0 - timedelta(hours=1))
    state = {"n": 0}

    def shrink(g: FakeGraph, _s: str, query: PageQuery) -> None:
        if query.count and query.skip > 0:  # a member leaves on every group page
            state["n"] += 1
            g.edit(S, f"g{state['n']:04d}")

    graph.hooks.append(shrink)
    fetch = Recorder(graph)
    proven: list[int] = []
    with pytest.raises(
        RetriableError, match=rf"^records stamped {version_text(stamp)} kept changing .*4 passes"
    ):
        drain(keyset_scan(fetch, LOWER), proven)
    passes = [q for q in fetch.queries if q.count and q.skip == 0]
    assert len(passes) == MAX_PASSES == 4
    assert max(proven) == stamp


def test_a_tie_whose_count_is_missing_is_a_broken_contract() -> None:
    graph = FakeGraph(page_size=3)
    tie(graph, 7, LOWER + 60 * SECOND)

    def no_count(query: PageQuery) -> FakePage:
        page = graph.incidents_page(query)
        return FakePage(page.items, page.server_date, page.more, None)

    with pytest.raises(
        FatalSyncError, match=r"^Graph answered \$count=true without @odata\.count$"
    ):
        list(keyset_scan(no_count, LOWER))


def test_a_tie_read_whole_is_followed_by_the_records_after_it() -> None:
    graph = FakeGraph(page_size=3)
    stamp = LOWER + 60 * SECOND
    tie(graph, 8, stamp)
    graph.put(S, "x1", T0 - timedelta(hours=2))
    graph.put(S, "x2", T0 - timedelta(hours=1))
    fetch = Recorder(graph)
    reads = list(keyset_scan(fetch, LOWER))
    assert not fetch.unread_before(ticks_from_datetime(graph.now))
    after = [q for q in fetch.queries if not q.count and q.lower == stamp]
    assert after and all(not q.lower_inclusive for q in after[1:])  # strictly after the group
    assert reads[-1].done
    assert reads[-1].through is None
    group = [read for read in reads if read.page.count is not None]
    assert group and all(read.through == stamp and not read.done for read in group)


# -- an open scan on a tenant busier than the read ---------------------------------------------


@dataclass
class Busy:
    """A tenant edited faster than it is read: before every page (one second apart on its
    clock) three records are stamped just now, so the listing never runs dry."""

    backlog: int
    clock: int = ticks_from_datetime(T0)
    stamps: dict[str, int] = field(default_factory=dict)
    served: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for n in range(self.backlog):
            self.stamps[f"old{n}"] = self.clock - (self.backlog - n) * SECOND

    def __call__(self, query: PageQuery) -> FakePage:
        self.clock += SECOND
        for n in range(3):
            self.stamps[f"new{self.clock}-{n}"] = self.clock - (2 - n)  # ticks apart
        rows = sorted(
            (stamp, key)
            for key, stamp in self.stamps.items()
            if stamp > query.lower or (stamp == query.lower and query.lower_inclusive)
        )
        page = rows[query.skip : query.skip + 3]
        self.served.update((key, stamp) for stamp, key in page)
        items = tuple({"id": key, "lastUpdateDateTime": version_text(s)} for s, key in page)
        return FakePage(items, datetime_from_ticks(self.clock), more=len(rows) > len(page))


def test_an_open_scan_chases_a_busy_tenant_five_pages_past_its_first_date_then_stops() -> None:
    """The chase is bounded by the first page's Date plus one second (its resolution): the
    scan ends on the sixth page that reaches that horizon, and that page still proves
    everything before its last stamp read, so the watermark follows the chase."""
    fetch = Busy(backlog=5)
    reads = list(keyset_scan(fetch, LOWER))  # ends, although every page links a next one
    horizon = ticks_from_datetime(reads[0].page.server_date) + SECOND
    lasts = [max(ticks(item) for item in read.page.items) for read in reads]
    assert horizon in lasts  # a page ending exactly at the horizon counts
    assert any(horizon - 2 * SECOND <= last < horizon for last in lasts)  # and one just before
    chase = [n for n, last in enumerate(lasts) if last >= horizon]
    assert len(chase) == CHASE_PAGES + 1 == 6
    assert chase[-1] == len(reads) - 1  # the sixth such page is the last one read
    final = reads[-1]
    assert final.done is True and all(read.done is False for read in reads[:-1])
    assert final.page.more  # ended by the bound, not by the source
    assert final.through == lasts[-1]
    assert len({ticks(item) for item in final.page.items}) == 3
    unread = {
        key
        for key, stamp in fetch.stamps.items()
        if stamp < final.through and (key, stamp) not in fetch.served
    }
    assert not unread


# -- pages that break the rules -------------------------------------------------------------


def test_records_outside_the_filter_are_kept_but_never_steer_the_cursor() -> None:
    """A source that slips in a record older than the lower bound (last on the page) or newer
    than the upper bound must neither look unordered nor move the cursor past unread ones."""
    graph = FakeGraph(page_size=3)
    for n in range(12):
        graph.put(S, f"r{n:03d}", T0 - timedelta(hours=40 - n))
    upper = ticks_from_datetime(T0 - timedelta(hours=30))
    stale = {"id": "stale", "lastUpdateDateTime": version_text(LOWER - SECOND)}
    future = {"id": "future", "lastUpdateDateTime": version_text(upper + 3600 * SECOND)}
    at_upper = {"id": "edge", "lastUpdateDateTime": version_text(upper)}

    for extra in (stale, future, at_upper):
        fetch = Recorder(graph)

        def sloppy(
            query: PageQuery, extra: dict[str, Any] = extra, fetch: Recorder = fetch
        ) -> FakePage:
            page = fetch(query)
            return FakePage((*page.items, extra), page.server_date, page.more or False, page.count)

        reads = list(keyset_scan(sloppy, LOWER, upper))
        assert not fetch.unread_before(upper)
        assert all(r.through is None or r.through <= upper for r in reads)
        assert any(extra in read.page.items for read in reads)  # handed over, to be stored


def test_a_source_that_ignores_the_order_is_told_at_once() -> None:
    graph = FakeGraph(page_size=3, ordered=False)
    for n in range(6):
        graph.put(S, f"r{n:03d}", T0 - timedelta(hours=10 - n))
    with pytest.raises(Unordered, match=r"lastUpdateDateTime ge \d{4}-.*Z"):
        list(keyset_scan(graph.incidents_page, LOWER))


def test_equal_neighbours_are_in_order() -> None:
    graph = FakeGraph(page_size=4, ordered=False)
    tie(graph, 3, LOWER + SECOND)  # one stamp: no order to ignore
    assert list(keyset_scan(graph.incidents_page, LOWER))[-1].done


def test_a_next_link_after_a_page_without_dated_records_fails_the_read() -> None:
    def undated(query: PageQuery) -> FakePage:
        return FakePage(({"id": "x"}, "not a record"), T0, more=True)

    with pytest.raises(
        RetriableError, match=r"no dated record \(lastUpdateDateTime ge .*Z and lt .*Z\)"
    ):
        list(keyset_scan(undated, LOWER, LOWER + SECOND))
    with pytest.raises(RetriableError):
        list(
            keyset_scan(
                lambda q: FakePage(({"id": "x"},), T0, more=True),
                LOWER,
            )
        )


def test_an_empty_page_ends_the_scan_whatever_its_link_says() -> None:
    reads = list(keyset_scan(lambda q: FakePage((), T0, more=True), LOWER, LOWER + SECOND))
    assert len(reads) == 1 and reads[0].done and reads[0].through == LOWER + SECOND


def test_a_short_page_of_only_the_cursors_stamp_with_a_link_is_read_as_a_group() -> None:
    """Graph may serve fewer than $top and still link a next page: a page holding only records
    at the cursor is never taken for the end; the run is read as a group, then past it."""
    stamp = LOWER + SECOND
    at = [{"id": f"b{n}", "lastUpdateDateTime": version_text(stamp)} for n in range(3)]
    later = {"id": "c", "lastUpdateDateTime": version_text(stamp + SECOND)}
    asked: list[PageQuery] = []

    def fetch(query: PageQuery) -> FakePage:
        asked.append(query)
        if len(asked) == 1:  # oldest first, the run at ``stamp`` cut short, a link
            return FakePage(({"id": "a", "lastUpdateDateTime": version_text(LOWER)}, *at), T0, True)
        if query.count:  # the group: everything at ``stamp``
            return FakePage(tuple(at[query.skip :]), T0, False, count=len(at))
        if not query.lower_inclusive:  # past the group
            return FakePage((later,), T0, False)
        return FakePage(tuple(at[:1]), T0, more=True)  # short, only the cursor's stamp

    reads = list(keyset_scan(fetch, LOWER))
    assert reads[-1].done
    assert any(q.count for q in asked)  # the group was read
    assert "c" in {item["id"] for read in reads for item in read.page.items}


# -- windows at the $skip ceiling -------------------------------------------------------------


def _counted(total: int, page_size: int) -> Any:
    def fetch(query: PageQuery) -> FakePage:
        size = max(0, min(page_size, total - query.skip))
        items = tuple(
            {"id": f"w{query.skip + n}", "lastUpdateDateTime": version_text(LOWER + 1)}
            for n in range(size)
        )
        return FakePage(items, T0, more=query.skip + size < total, count=total)

    return fetch


def test_a_window_that_skip_can_just_reach_is_read_whole() -> None:
    reads = list(window_scan(_counted(MAX_SKIP + 5, 5), LOWER, LOWER + SECOND))
    assert sum(len(r.page.items) for r in reads) == MAX_SKIP + 5
    assert reads[-1].done and reads[-1].through == LOWER + SECOND


@pytest.mark.parametrize(("total", "page_size"), [(MAX_SKIP + 6, 5), (MAX_SKIP + 2, 3)])
def test_a_window_beyond_skip_500_is_split_not_read(total: int, page_size: int) -> None:
    with pytest.raises(Unsettled):
        list(window_scan(_counted(total, page_size), LOWER, LOWER + SECOND))


def test_a_window_whose_pages_lie_about_more_is_split_before_skip_500() -> None:
    # A count that fits, but links that go on: the ceiling still holds.
    def fetch(query: PageQuery) -> FakePage:
        items = tuple({"id": f"w{query.skip + n}"} for n in range(5))
        return FakePage(items, T0, more=True, count=10)

    with pytest.raises(Unsettled, match="more than 500"):
        list(window_scan(fetch, LOWER, LOWER + SECOND))


def test_a_window_without_count_is_a_broken_contract() -> None:
    with pytest.raises(
        FatalSyncError, match=r"^Graph answered \$count=true without @odata\.count$"
    ):
        list(window_scan(lambda q: FakePage((), T0), LOWER, LOWER + SECOND))


def test_a_window_that_keeps_changing_is_given_up_after_four_passes() -> None:
    passes = {"n": 0}

    def fetch(query: PageQuery) -> FakePage:
        if query.skip == 0:
            passes["n"] += 1
        count = 6 + passes["n"] + query.skip  # changes between the pages of every pass
        more = query.skip == 0
        return FakePage(({"id": f"w{query.skip}"},) * 3, T0, more=more, count=count)

    proven: list[int] = []
    with pytest.raises(Unsettled, match="4 passes"):
        drain(window_scan(fetch, LOWER, LOWER + SECOND), proven)
    assert passes["n"] == MAX_PASSES
    assert proven == []  # no pass ended settled: no page claims the window read


def test_an_empty_window_is_read_at_once() -> None:
    reads = list(window_scan(lambda q: FakePage((), T0, count=0), LOWER, LOWER + SECOND))
    assert len(reads) == 1 and reads[0].done and reads[0].through == LOWER + SECOND


# -- the query contract ---------------------------------------------------------------------


def test_no_query_asks_for_skip_beyond_what_graph_serves() -> None:
    PageQuery(0, skip=MAX_SKIP)
    PageQuery(0, skip=0)
    for skip in (-1, MAX_SKIP + 1):
        with pytest.raises(ValueError, match=r"outside 0\.\.500"):
            PageQuery(0, skip=skip)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"lastUpdateDateTime": "2026-11-01T00:00:00.0000001Z"}, True),
        ({"lastUpdateDateTime": 5}, False),
        ({"id": "x"}, False),
        (["lastUpdateDateTime"], False),
        ("lastUpdateDateTime", False),
    ],
)
def test_only_a_readable_stamp_steers_paging(item: Any, expected: bool) -> None:
    assert (stamp_of(item) is not None) is expected


@pytest.mark.parametrize("scan", ["keyset", "window"])
def test_a_run_of_exactly_the_skip_ceiling_and_a_page_is_read_whole(scan: str) -> None:
    """550 records with one stamp, pages of 50: the last page at $skip=500 is full, and a full
    page reads as "more" even without a link; its $count ends the pass before $skip=550,
    which Graph would refuse."""
    top, stamp = 50, "2025-01-01T00:00:00.0000000Z"
    records = [{"id": str(n), "lastUpdateDateTime": stamp} for n in range(MAX_SKIP + top)]
    skips: list[int] = []

    def fetch(query: PageQuery) -> ListPage:
        params = {k: str(v) for k, v in listing_params(query, top).items()}
        skips.append(query.skip)
        page = list_page(records, params, spec=INCIDENTS, base_url="http://x/v1.0/security")
        return ListPage(
            tuple(page.items),
            datetime(2025, 1, 2, tzinfo=UTC),
            more=page.next_link is not None,
            full=len(page.items) >= top,  # as DefenderApi says it
            count=page.count,
        )

    lower = ticks_from_text("2024-12-31T00:00:00Z")
    upper = ticks_from_text("2025-01-01T00:00:01Z")
    assert lower is not None and upper is not None
    reads = (
        keyset_scan(fetch, lower, upper) if scan == "keyset" else window_scan(fetch, lower, upper)
    )
    ids = {item["id"] for read in reads for item in read.page.items}
    assert ids == {r["id"] for r in records}
    assert max(skips) <= MAX_SKIP


# -- equal stamps served in another order on each request ----------------------------------


@settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    page_size=st.integers(2, 12),
    size=st.integers(1, 60),
    others=st.integers(0, 6),
)
def test_a_tie_served_in_a_new_order_on_each_request_is_read_whole(
    seed: int, page_size: int, size: int, others: int
) -> None:
    """Which of equal stamps comes first is unspecified: a `$skip` pass then serves some of
    a group twice and others never, while `$count` holds. Passes are pooled until every
    counted record has been served, or the read fails and proves nothing past the group."""
    graph = FakeGraph(page_size=page_size, shuffle_ties=random.Random(seed))
    stamp = LOWER + 60 * SECOND
    tie(graph, size, stamp)
    for n in range(others):
        graph.put(S, f"x{n}", T0 - timedelta(hours=1 + n))
    fetch = Recorder(graph)
    proven: list[int] = []
    try:
        drain(keyset_scan(fetch, LOWER), proven)
    except RetriableError:
        assert not proven or max(proven) <= stamp
        assert size > page_size  # a group a page holds is served whole by any order
        return
    assert not fetch.unread_before(ticks_from_datetime(graph.now))


def test_the_reviewers_tie_of_forty_in_pages_of_ten_is_read_whole() -> None:
    # The order among ties changes per request: one pass read 42 of the 48 records before.
    graph = FakeGraph(page_size=10, shuffle_ties=random.Random(1))
    stamp = LOWER + 60 * SECOND
    tie(graph, 40, stamp)
    for n in range(8):
        graph.put(S, f"x{n}", T0 - timedelta(hours=1 + n))
    fetch = Recorder(graph)
    reads = list(keyset_scan(fetch, LOWER))
    assert reads[-1].done
    assert {key for key, _ in fetch.served} == set(graph.records[S])
    passes = [q for q in fetch.queries if q.count and q.skip == 0]
    assert 1 < len(passes) <= MAX_SHUFFLED_PASSES


def test_a_window_served_in_a_new_order_on_each_request_is_read_whole() -> None:
    graph = FakeGraph(page_size=4, ordered=False, shuffle_ties=random.Random(3))
    for n in range(30):
        graph.put(S, f"r{n:03d}", T0 - timedelta(minutes=n % 3))  # three stamps, ten each
    fetch = Recorder(graph)
    upper = ticks_from_datetime(T0 + timedelta(hours=1))
    reads = list(window_scan(fetch, LOWER, upper))
    assert reads[-1].done and reads[-1].through == upper
    assert {key for key, _ in fetch.served} == set(graph.records[S])


def test_a_count_above_what_graph_lists_ends_after_the_stalled_passes_not_never() -> None:
    # Graph counts one record it never lists: the same records come back pass after pass.
    stamp = LOWER + 60 * SECOND
    listed = Tie(12, 5, stamp)

    def overcounted(query: PageQuery) -> FakePage:
        page = listed(query)
        count = None if page.count is None else page.count + 1
        return FakePage(page.items, page.server_date, page.more, count)

    reads = list(keyset_scan(overcounted, LOWER))
    assert reads[-1].done
    passes = [q for q in listed.queries if q.count and q.skip == 0]
    assert len(passes) == 1 + STALLED_PASSES
    assert len(listed.served) == 12


def test_records_without_an_id_are_told_apart_by_content_and_number() -> None:
    # Two identical records without an id are two records: a pass serving both settles.
    stamp = LOWER + 60 * SECOND
    item = {"lastUpdateDateTime": version_text(stamp)}
    queries: list[PageQuery] = []

    def twins(query: PageQuery) -> FakePage:
        queries.append(query)
        if not query.count and query.lower_inclusive:  # a short page of the stamp, more to come
            return FakePage((item,), T0, more=True)
        if query.count:  # the group, a record a page
            return FakePage((item, item)[query.skip : query.skip + 1], T0, query.skip < 1, 2)
        return FakePage((), T0)  # past the group

    reads = list(keyset_scan(twins, LOWER))
    assert reads[-1].done
    assert len([q for q in queries if q.count and q.skip == 0]) == 1


# -- a whole listing (one incident's alerts) -------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "order ignored"])
def test_a_listing_far_beyond_skip_500_is_read_whole_with_its_edits(ordered: bool) -> None:
    """An incident of 1,700 alerts, two of them edited while it is read: every alert at its
    newest version, and never a ``$skip`` Graph refuses (the Recorder checks each query)."""
    graph = FakeGraph(page_size=100, ordered=ordered)
    for n in range(1700):
        graph.put(S, f"a{n:04d}", T0 - timedelta(hours=30) + n * timedelta(seconds=7))

    def edit(g: FakeGraph, _s: str, _q: PageQuery) -> None:
        if g.pages in (3, 9):
            g.edit(S, f"a{g.pages:04d}")

    graph.hooks.append(edit)
    fetch = Recorder(graph)
    read = {item["id"] for page in whole_scan(fetch) for item in page.items}
    assert read == set(graph.records[S])
    assert not fetch.unread_before(ticks_from_datetime(graph.now) + 1, lower=0)
    assert all(query.ordered is ordered for query in fetch.queries[1:])


def test_a_whole_listing_whose_records_all_change_while_it_is_read_is_never_taken_part_read() -> (
    None
):
    """The incident is resolved while its 1,700 alerts are read: every alert moves ahead of
    the cursor. A stream chases them a few pages and reads the rest next cycle; a whole
    listing cut there would be an incident stored with part of its alerts (595 of 1,700),
    so it fails and is read again."""
    graph = FakeGraph(page_size=100, ordered=True)
    for n in range(1700):
        graph.put(S, f"a{n:04d}", T0 - timedelta(hours=30) + n * timedelta(seconds=7))

    def resolve(g: FakeGraph, _s: str, _q: PageQuery) -> None:
        if g.pages == 3:
            for i, key in enumerate(sorted(g.records[S])):
                g.put(S, key, g.now + i * timedelta(microseconds=1), version=1)

    graph.hooks.append(resolve)
    with pytest.raises(RetriableError, match="kept changing"):
        list(whole_scan(graph.incidents_page))


def test_a_tick_holding_more_than_skip_can_reach_fails_clearly_and_asks_no_deeper() -> None:
    graph = FakeGraph(page_size=100, ordered=False)  # ignores createdDateTime, severity, status
    tie(graph, 700, ticks_from_datetime(T0 - timedelta(hours=1)))
    graph.put(S, "newer", T0 - timedelta(minutes=30))  # the first page shows the disorder
    fetch = Recorder(graph)
    with pytest.raises(FatalSyncError, match="cannot all be read"):
        list(whole_scan(fetch))
    # The window holding the tick is split at the tick, not halved towards it request by
    # request (63 requests before).
    assert len(fetch.queries) <= 30, len(fetch.queries)
