"""The engine's own loop (``sync_stream``/``backfill_stream``) at its edges: what a backfill
leaves alone, where a window-mode cycle leaves the watermark, what a dense window does, what
is quarantined, what the reports and progress say.

Written to kill the mutants that survived the existing tests (docs/mutation.md)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import structlog
from fakegraph import T0, Crash, FakeGraph, FakePage

from xdrsync.errors import RetriableError, UnreadableError
from xdrsync.hub import Hub, InboundBatch
from xdrsync.hub.payload import datetime_from_ticks, ticks_from_datetime, version_text
from xdrsync.jsontext import UnreadableItem
from xdrsync.sync.inbound import (
    ALERTS,
    INCIDENTS,
    InboundSettings,
    WindowDone,
    backfill_stream,
    sync_stream,
)
from xdrsync.sync.listing import PageQuery
from xdrsync.sync.window import StreamState

TENANT = "t"
SETTINGS = InboundSettings(
    lookback=timedelta(seconds=30),
    initial_backfill=timedelta(days=3),
    first_window=timedelta(hours=6),
    smallest_window=timedelta(minutes=1),
)


def state(hub: Hub, stream: str = INCIDENTS) -> StreamState:
    return StreamState.from_doc(hub.get_state(TENANT, stream))


def spread(graph: FakeGraph, stream: str, count: int, hours: float = 48) -> None:
    for n in range(count):
        graph.put(stream, f"{stream[0]}{n:03d}", T0 - timedelta(hours=hours * (1 - n / count)))


def cycle(hub: Hub, graph: FakeGraph, stream: str = INCIDENTS, **kwargs: Any) -> Any:
    return sync_stream(
        hub, graph, tenant_id=TENANT, stream=stream, settings=SETTINGS, clock=lambda: graph.now,
        **kwargs,
    )  # fmt: skip


def current(hub: Hub, graph: FakeGraph, stream: str = INCIDENTS) -> dict[str, str]:
    found: dict[str, str] = {}
    for key in graph.records[stream]:
        record = (
            hub.get_incident(TENANT, key) if stream == INCIDENTS else hub.get_alert(TENANT, key)
        )
        if record is not None:
            found[key] = record.to_graph()["lastUpdateDateTime"]
    return found


# -- backfill -----------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
def test_a_backfill_stores_its_range_and_leaves_the_streams_state_alone(
    hub: Hub, ordered: bool
) -> None:
    graph = FakeGraph(page_size=3, ordered=ordered)
    spread(graph, INCIDENTS, 12)
    cycle(hub, graph)
    before = hub.get_state(TENANT, INCIDENTS)
    graph.put(INCIDENTS, "old", T0 - timedelta(days=10))  # before the first cycle's reach
    graph.put(INCIDENTS, "older", T0 - timedelta(days=20))  # before the backfill's reach
    report = backfill_stream(
        hub, graph, tenant_id=TENANT, stream=INCIDENTS, lower=T0 - timedelta(days=15),
        upper=T0 - timedelta(days=5), settings=SETTINGS,
    )  # fmt: skip
    assert hub.get_incident(TENANT, "old") is not None
    assert hub.get_incident(TENANT, "older") is None
    assert report.tenant_id == TENANT and report.stream == INCIDENTS
    assert report.inserted == 1 and report.records >= 1
    after = hub.get_state(TENANT, INCIDENTS)
    assert after is not None and before is not None
    assert {k: v for k, v in after.items() if k != "ordered"} == {
        k: v for k, v in before.items() if k != "ordered"
    }
    # no query of a backfill reaches past its upper bound
    last = [q for s, q in graph.queries[-report.pages :] if s == INCIDENTS]
    assert all(q.upper is not None for q in last)


def test_a_first_backfill_writes_no_state(hub: Hub) -> None:
    graph = FakeGraph(page_size=3)
    spread(graph, ALERTS, 7)
    backfill_stream(
        hub, graph, tenant_id=TENANT, stream=ALERTS, lower=T0 - timedelta(days=3),
        upper=T0, settings=SETTINGS,
    )  # fmt: skip
    assert current(hub, graph, ALERTS) == graph.truth(ALERTS)
    assert state(hub, ALERTS).watermark is None and state(hub, ALERTS).cycles == 0


def test_a_backfill_of_a_stream_known_to_ignore_the_order_reads_windows_and_shows_progress(
    hub: Hub,
) -> None:
    graph = FakeGraph(page_size=3, ordered=False)
    spread(graph, INCIDENTS, 12, hours=20)
    learnt = StreamState(watermark=T0 - timedelta(days=2), ordered=False)
    hub.commit_batch(InboundBatch(TENANT, INCIDENTS, state=learnt.to_doc()))
    lower, upper = T0 - timedelta(days=1), T0
    seen: list[WindowDone] = []
    report = backfill_stream(
        hub, graph, tenant_id=TENANT, stream=INCIDENTS, lower=lower, upper=upper,
        settings=SETTINGS, on_window=seen.append,
    )  # fmt: skip
    assert current(hub, graph) == graph.truth(INCIDENTS)
    # what the stream's state says is used: no page is spent to find out the order again
    assert graph.queries and all(not q.ordered for _, q in graph.queries)
    assert report.pages == graph.pages and report.windows == len(seen) >= 2
    assert all(w.start == lower and w.end == upper and w.report is report for w in seen)
    assert [w.reached for w in seen] == sorted(w.reached for w in seen)
    assert seen[-1].reached == upper
    assert state(hub) == learnt


# -- the first cycle's reach --------------------------------------------------------------


def test_incidents_backfill_on_the_first_cycle_alerts_start_one_lookback_before_it(
    hub: Hub,
) -> None:
    graph = FakeGraph(page_size=5)
    cycle(hub, graph, INCIDENTS)
    cycle(hub, graph, ALERTS)
    lowers = {s: q.lower for s, q in graph.queries}
    assert lowers[INCIDENTS] == ticks_from_datetime(T0 - SETTINGS.initial_backfill)
    assert lowers[ALERTS] == ticks_from_datetime(T0 - SETTINGS.lookback)
    assert state(hub).began == T0


def test_an_alert_changed_during_a_long_incidents_backfill_is_read(hub: Hub) -> None:
    """Graph paces a 30-day backfill over many minutes. An alert changed meanwhile (after
    its incident was read, without bumping it) must be read by the alerts stream's first
    cycle, however long after the backfill's start that cycle comes."""
    graph = FakeGraph(page_size=2, tick=timedelta(seconds=30))  # 30 s a page
    for n in range(40):
        graph.put(INCIDENTS, f"i{n:02d}", T0 - timedelta(days=2) + timedelta(minutes=n))
    graph.put(ALERTS, "a0", T0 - timedelta(days=2))

    def analyst(g: FakeGraph, stream: str, _query: PageQuery) -> None:
        if stream == INCIDENTS and g.pages == 5:  # about 2 minutes into the backfill
            g.edit(ALERTS, "a0")

    graph.hooks.append(analyst)
    cycle(hub, graph, INCIDENTS)
    assert graph.now - T0 > 4 * SETTINGS.lookback  # the backfill took much longer
    cycle(hub, graph, ALERTS)
    assert current(hub, graph, ALERTS) == graph.truth(ALERTS)


def test_an_unknown_stream_is_refused(hub: Hub) -> None:
    with pytest.raises(ValueError, match="unknown stream"):
        cycle(hub, FakeGraph(), "comments")


# -- window mode --------------------------------------------------------------------------


def test_a_window_mode_cycle_reads_each_record_once_and_moves_the_watermark(hub: Hub) -> None:
    graph = FakeGraph(page_size=3, ordered=False)
    spread(graph, INCIDENTS, 20)
    # Learnt from an earlier cycle: the source ignores the order.
    hub.commit_batch(InboundBatch(TENANT, INCIDENTS, state=StreamState(ordered=False).to_doc()))
    seen: list[WindowDone] = []
    report = cycle(hub, graph, on_window=seen.append)
    assert current(hub, graph) == graph.truth(INCIDENTS)
    assert report.records == 20  # each record once: windows do not overlap
    assert report.pages == graph.pages
    assert report.inserted == 20 and report.updated == 0 and report.quarantined == 0
    assert report.windows == len(seen) >= 2
    got = state(hub)
    assert got.watermark == T0 == report.watermark  # the cycle's end: never past the first Date
    assert got.ordered is False and got.cycles == report.windows
    assert got.last_success is not None and got.last_success > T0
    assert [w.reached for w in seen] == sorted(w.reached for w in seen)
    assert seen[-1].reached == seen[-1].end == T0
    assert all(w.start == T0 - SETTINGS.initial_backfill for w in seen)
    # the windows tile the cycle's range exactly: no gap, no overlap
    windows = sorted({(q.lower, q.upper) for _, q in graph.queries})
    assert windows[0][0] == ticks_from_datetime(T0 - SETTINGS.initial_backfill)
    assert windows[-1][1] == ticks_from_datetime(T0)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))


def test_a_smallest_window_too_full_to_read_is_read_split_at_its_stamps(hub: Hub) -> None:
    """A bulk action stamps more records within seconds than ``$skip`` reaches: the
    smallest window holding them is read split at the stamps read in it, and the stream
    goes on; it used to fail that window every cycle, for good."""
    graph = FakeGraph(page_size=50, ordered=False)
    burst = T0 - timedelta(hours=2)
    for n in range(1100):  # 1,100 records within 11 seconds, one smallest window
        graph.put(INCIDENTS, f"b{n:04d}", burst + timedelta(milliseconds=10 * n))
    graph.put(INCIDENTS, "newer", T0 - timedelta(hours=1))
    graph.put(INCIDENTS, "oldest", T0 - timedelta(days=2))
    report = cycle(hub, graph)
    assert current(hub, graph) == graph.truth(INCIDENTS)
    got = state(hub)
    assert got.watermark == T0 and got.ordered is False
    assert max(q.skip for _, q in graph.queries) <= 500  # Graph refuses $skip above 500
    smallest = ticks_from_datetime(T0) - ticks_from_datetime(T0 - SETTINGS.smallest_window)
    assert min(q.upper - q.lower for _, q in graph.queries if q.upper is not None) < smallest
    assert report.pages < 60  # 42: the 1,102 records fill 23 pages; each was read once
    assert report.records == 1102
    assert report.quarantined == 0


def test_a_part_of_a_split_window_that_keeps_changing_is_split_until_it_settles(
    hub: Hub,
) -> None:
    """A window too full to read is split; in its parts a record shows up late and is
    updated out again on every page, so no part of more than a page ever reads the same
    twice. Parts are split on until each is read in one page, which cannot change while it
    is read: the cycle ends with every record, in a bounded number of requests (289 here),
    rather than failing there every cycle for as long as the tenant is busy."""
    graph = FakeGraph(page_size=50, ordered=False)
    burst = T0 - timedelta(hours=2)
    for n in range(1100):
        graph.put(INCIDENTS, f"b{n:04d}", burst + timedelta(milliseconds=10 * n))
    smallest = ticks_from_datetime(T0) - ticks_from_datetime(T0 - SETTINGS.smallest_window)
    pages = itertools.count()

    def flip(fake: FakeGraph, stream: str, query: PageQuery) -> None:
        if query.upper is not None and query.upper - query.lower < smallest:
            n = next(pages)
            when = datetime_from_ticks(query.lower) if n % 2 == 0 else fake.now
            fake.put(INCIDENTS, f"late{n // 2:04d}", when)

    graph.hooks.append(flip)
    cycle(hub, graph)
    graph.hooks.clear()
    assert graph.pages < 400, graph.pages
    assert state(hub).watermark == T0
    stored = current(hub, graph)
    assert all(
        stored.get(key) == when for key, when in graph.truth(INCIDENTS).items() if key[0] == "b"
    )
    cycle(hub, graph)  # the late records updated past the cycle's end arrive with the next
    assert current(hub, graph) == graph.truth(INCIDENTS)


@pytest.mark.parametrize("changing", [False, True])
def test_a_smallest_window_that_cannot_be_read_fails_the_cycle_without_moving_the_watermark(
    hub: Hub, changing: bool
) -> None:
    """Records no filter tells apart (one stamp, one createdDateTime, severity and status)
    beyond ``$skip``, or a window whose records keep changing while it is read: the cycle
    fails there, clearly, the watermark stays before the window and the next cycle reads it
    again."""
    graph = FakeGraph(page_size=5, ordered=False)
    stamp = T0 - timedelta(hours=2)
    for n in range(20 if changing else 520):
        graph.put(INCIDENTS, f"g{n:03d}", stamp)
    graph.put(INCIDENTS, "newer", T0 - timedelta(hours=1))
    graph.put(INCIDENTS, "oldest", T0 - timedelta(days=2))
    if changing:  # a record shows up late in the window, then is updated out of it, again
        pages = itertools.count()

        def join(fake: FakeGraph, stream: str, query: PageQuery) -> None:
            if query.lower <= ticks_from_datetime(stamp) < (query.upper or 0):
                n = next(pages)
                key = f"late{n // 2:04d}"
                fake.put(INCIDENTS, key, stamp if n % 2 == 0 else fake.now)

        graph.hooks.append(join)
        expected = r"cannot be read reliably \(the window's records kept changing"
        failure: type[Exception] = RetriableError
    else:
        expected = r"more than 5\d\d records share lastUpdateDateTime .*cannot all be read"
        failure = UnreadableError
    with pytest.raises(failure, match=expected):
        cycle(hub, graph)
    got = state(hub)
    assert got.ordered is False  # remembered even though the cycle failed
    assert got.watermark is None or got.watermark <= stamp
    assert hub.get_incident(TENANT, "oldest") is not None  # windows before it were kept
    spans = [q.upper - q.lower for _, q in graph.queries if q.upper is not None]
    smallest = ticks_from_datetime(T0) - ticks_from_datetime(T0 - SETTINGS.smallest_window)
    assert min(spans) == (smallest if changing else 0)  # the tie is asked for as one tick


# -- keyset mode: reports, progress, state ---------------------------------------------------


def test_a_keyset_cycle_reports_what_it_did_and_shows_progress(hub: Hub) -> None:
    graph = FakeGraph(page_size=4)
    spread(graph, INCIDENTS, 10)
    seen: list[WindowDone] = []
    report = cycle(hub, graph, on_window=seen.append)
    assert (report.pages, report.inserted, report.updated, report.windows) == (
        graph.pages,
        10,
        0,
        1,
    )
    assert report.records == 12  # 10 records, 2 read twice at page boundaries
    got = state(hub)
    assert got.ordered is True and got.cycles == 1 and got.watermark == T0 + graph.tick
    assert got.last_success == T0 + graph.tick  # the first page's Date, shown by `state show`
    assert report.watermark == got.watermark
    reached = [w.reached for w in seen]
    assert reached == sorted(reached) and reached[-1] == T0 and len(reached) >= 3
    assert all(w.end == T0 and w.report is report for w in seen)
    graph.edit(INCIDENTS, "i004")
    again = cycle(hub, graph)
    assert again.updated == 1 and again.inserted == 0
    assert state(hub).cycles == 2


def test_a_quiet_cycle_reads_its_one_page_without_a_read_ahead_thread(
    hub: Hub, read_aheads: list[int]
) -> None:
    started = read_aheads
    graph = FakeGraph(page_size=4)
    spread(graph, INCIDENTS, 10)
    first = cycle(hub, graph)  # the backfill's pages: each read ahead of its commit
    assert first.pages > 1 and started
    started.clear()
    quiet = cycle(hub, graph)
    assert (quiet.pages, quiet.inserted, quiet.updated) == (1, 0, 0)
    assert started == []  # its one page, known as the scan's last, read on this thread


def test_a_throttled_stream_waits_until_exactly_the_time_graph_gave(hub: Hub) -> None:
    graph = FakeGraph(page_size=3)
    spread(graph, INCIDENTS, 3)
    until = T0 + timedelta(minutes=5)
    hub.commit_batch(InboundBatch(TENANT, INCIDENTS, state=StreamState(retry_at=until).to_doc()))
    graph.now = until
    report = cycle(hub, graph)
    assert report.waiting_until is None and graph.pages > 0
    assert state(hub).retry_at is None


def test_a_stream_told_to_wait_reports_the_wait_and_reads_nothing(hub: Hub) -> None:
    graph = FakeGraph(page_size=3)
    spread(graph, INCIDENTS, 3)
    mark, until = T0 - timedelta(hours=1), T0 + timedelta(minutes=5)
    stored = StreamState(watermark=mark, retry_at=until)
    hub.commit_batch(InboundBatch(TENANT, INCIDENTS, state=stored.to_doc()))
    report = cycle(hub, graph)
    assert (report.tenant_id, report.stream) == (TENANT, INCIDENTS)
    assert report.waiting_until == until and report.watermark == mark
    assert report.pages == report.records == 0 and graph.pages == 0
    assert state(hub) == stored


def test_a_source_that_stops_honouring_the_order_mid_read_is_read_on_in_windows(
    hub: Hub,
) -> None:
    graph = FakeGraph(page_size=3)
    spread(graph, INCIDENTS, 12)

    def disorder(g: FakeGraph, _s: str, _q: PageQuery) -> None:
        if g.pages == 3:
            g.ordered = False

    graph.hooks.append(disorder)
    with structlog.testing.capture_logs() as events:
        report = cycle(hub, graph)
    assert current(hub, graph) == graph.truth(INCIDENTS)
    assert report.pages == graph.pages - 1 > 3  # the page out of order is read again in windows
    got = state(hub)
    assert got.ordered is False and got.watermark == T0 == report.watermark
    assert got.cycles >= 1
    (warning,) = [e for e in events if e["log_level"] == "warning"]
    assert warning["event"] == "Graph ignores $orderby; reading in windows from now on"
    assert (warning["tenant"], warning["stream"]) == (TENANT, INCIDENTS)
    assert warning["detail"].startswith("a page under lastUpdateDateTime ge ")
    assert warning["detail"].endswith(" is not in ascending order")


def test_an_order_lost_mid_read_is_remembered_even_when_the_first_window_fails(
    hub: Hub,
) -> None:
    graph = FakeGraph(page_size=3, fail_at={4})  # page 4: the first window's first page
    spread(graph, INCIDENTS, 12)

    def disorder(g: FakeGraph, _s: str, _q: PageQuery) -> None:
        if g.pages == 3:
            g.ordered = False

    graph.hooks.append(disorder)
    with pytest.raises(Crash):
        cycle(hub, graph)
    got = state(hub)
    assert got.ordered is False  # the next cycle does not spend a page to find out again
    assert got.watermark is not None and got.watermark < T0  # what the ordered pages proved
    assert got.cycles == 0
    asked = len(graph.queries)
    report = cycle(hub, graph)
    assert all(not q.ordered for _, q in graph.queries[asked:])
    assert current(hub, graph) == graph.truth(INCIDENTS)
    assert report.pages == len(graph.queries) - asked


def test_a_cycle_of_many_pages_reports_the_sum_of_its_pages(hub: Hub) -> None:
    graph = FakeGraph(page_size=3)
    spread(graph, INCIDENTS, 12)
    for key in ("i001", "i007"):  # the model refuses them (it wants a string)
        graph.records[INCIDENTS][key]["severity"] = 5
    first = cycle(hub, graph)
    assert first.quarantined == 2 == len(hub.list_quarantine(tenant_id=TENANT))
    assert first.inserted == 10 and first.pages >= 4
    for key in ("i002", "i004", "i005", "i008", "i010"):
        graph.now += timedelta(seconds=1)
        graph.edit(INCIDENTS, key)
    again = cycle(hub, graph)
    assert again.pages >= 2 and again.updated == 5 and again.inserted == 0


# -- containment --------------------------------------------------------------------------


def incident(key: str, minutes: int) -> dict[str, Any]:
    stamp = version_text(ticks_from_datetime(T0 - timedelta(minutes=minutes)))
    return {
        "id": key,
        "displayName": key,
        "status": "active",
        "severity": "low",
        "createdDateTime": stamp,
        "lastUpdateDateTime": stamp,
        "alerts": [],
    }


class OnePage:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def incidents_page(self, query: PageQuery) -> FakePage:
        return FakePage(tuple(self.items), T0, count=len(self.items) if query.count else None)

    def alerts_page(self, query: PageQuery) -> FakePage:
        return FakePage(tuple(self.items), T0, count=len(self.items) if query.count else None)


def test_bad_records_are_quarantined_with_their_reason_and_text_and_the_rest_kept(
    hub: Hub,
) -> None:
    loop: list[Any] = []
    loop.append(loop)  # cannot be written as JSON
    page: list[Any] = [
        incident("a", 30),
        None,
        ["x"],
        {"displayName": "no id"},
        UnreadableItem(raw='{"id":"deep"', reason="nested too deeply"),
        loop,
        incident("b", 20),
    ]
    report = sync_stream(
        hub, OnePage(page), tenant_id=TENANT, stream=INCIDENTS, settings=SETTINGS,
        clock=lambda: T0,
    )  # fmt: skip
    assert hub.get_incident(TENANT, "a") is not None and hub.get_incident(TENANT, "b") is not None
    assert report.records == len(page) and report.inserted == 2
    assert report.quarantined == 5
    rows = sorted((row.reason, row.raw) for row in hub.list_quarantine(tenant_id=TENANT))
    assert rows[:4] == [
        ("incident without an id", '{"displayName":"no id"}'),
        ("nested too deeply", '{"id":"deep"'),
        ("not a JSON object: list", '["x"]'),
        ("not a JSON object: list", "[[...]]"),  # not JSON: its text all the same
    ]
    assert rows[4] == ("not a JSON object: null", "null")
    assert state(hub).watermark == T0


class Picky:
    """A hub whose store refuses one record (as a database refuses a value it cannot hold)."""

    def __init__(self, hub: Hub, refused: str) -> None:
        self.hub, self.refused, self.batches = hub, refused, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hub, name)

    def commit_batch(self, batch: InboundBatch) -> Any:
        self.batches += 1
        if any(record.id == self.refused for record in [*batch.incidents, *batch.alerts]):
            raise ValueError(f"the store refuses {self.refused}")
        return self.hub.commit_batch(batch)


@pytest.mark.parametrize("stream", [INCIDENTS, ALERTS])
def test_a_record_the_store_refuses_is_quarantined_alone_and_the_state_still_moves(
    hub: Hub, stream: str
) -> None:
    good = incident("a", 30)
    bad = incident("bad", 25)
    later = incident("c", 20)
    if stream == ALERTS:
        for record in (good, bad, later):
            record.pop("displayName")
            record.pop("alerts")
            record["title"] = record["id"]
            record["status"] = "new"
    picky = Picky(hub, "bad")
    report = sync_stream(
        picky, OnePage([good, bad, None, later]), tenant_id=TENANT, stream=stream,  # type: ignore[arg-type]
        settings=SETTINGS, clock=lambda: T0,
    )  # fmt: skip
    get = hub.get_incident if stream == INCIDENTS else hub.get_alert
    assert get(TENANT, "a") is not None and get(TENANT, "c") is not None
    assert get(TENANT, "bad") is None
    assert report.inserted == 2 and report.quarantined == 2
    rows = hub.list_quarantine(tenant_id=TENANT)
    refused = [row for row in rows if "refuses" in row.reason]
    assert len(refused) == 1
    assert refused[0].reason == "ValueError: the store refuses bad"
    assert '"id": "bad"' in refused[0].raw and refused[0].stream == stream
    assert any(row.reason == "not a JSON object: null" for row in rows)
    assert state(hub, stream).watermark == T0


def test_a_failing_store_fails_the_page_instead_of_quarantining_good_records(hub: Hub) -> None:
    from sqlalchemy.exc import OperationalError

    class Down(Picky):
        def commit_batch(self, batch: InboundBatch) -> Any:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    with pytest.raises(OperationalError):
        sync_stream(
            Down(hub, ""), OnePage([incident("a", 30)]), tenant_id=TENANT,  # type: ignore[arg-type]
            stream=INCIDENTS, settings=SETTINGS, clock=lambda: T0,
        )  # fmt: skip
    assert hub.list_quarantine(tenant_id=TENANT) == []


def test_one_by_one_commits_move_the_state_only_after_every_record(hub: Hub) -> None:
    """When a page falls back to one-by-one commits and the store then goes down, the
    stream's state must not have moved: the records not yet committed would be lost."""
    from sqlalchemy.exc import OperationalError

    class FailsLate(Picky):
        def commit_batch(self, batch: InboundBatch) -> Any:
            if [r.id for r in batch.incidents] == ["c"]:
                raise OperationalError("INSERT", {}, Exception("disk I/O error"))
            return super().commit_batch(batch)

    with pytest.raises(OperationalError):
        sync_stream(
            FailsLate(hub, "bad"),  # type: ignore[arg-type]
            OnePage([incident("a", 30), incident("bad", 25), incident("c", 20)]),
            tenant_id=TENANT, stream=INCIDENTS, settings=SETTINGS, clock=lambda: T0,
        )  # fmt: skip
    assert hub.get_incident(TENANT, "a") is not None
    assert state(hub).watermark is None


class Refuses(Picky):
    """A store that refuses several records, each with its own error."""

    def __init__(self, hub: Hub, *refused: str, message: str = "") -> None:
        super().__init__(hub, "")
        self.refused_ids, self.message = set(refused), message

    def commit_batch(self, batch: InboundBatch) -> Any:
        for record in [*batch.incidents, *batch.alerts]:
            if record.id in self.refused_ids:
                raise ValueError(f"the store refuses {record.id}{self.message}")
        return self.hub.commit_batch(batch)


def one_cycle(hub: Any, items: list[Any]) -> Any:
    return sync_stream(
        hub, OnePage(items), tenant_id=TENANT, stream=INCIDENTS, settings=SETTINGS,
        clock=lambda: T0,
    )  # fmt: skip


def test_a_page_of_one_record_the_store_refuses_quarantines_it_and_moves_on(hub: Hub) -> None:
    with structlog.testing.capture_logs() as events:
        report = one_cycle(Refuses(hub, "bad"), [incident("bad", 25)])
    assert report.quarantined == 1 and report.inserted == 0
    rows = hub.list_quarantine(tenant_id=TENANT)
    assert [row.reason for row in rows] == ["ValueError: the store refuses bad"]
    assert state(hub).watermark == T0
    (warning,) = [e for e in events if e["log_level"] == "warning"]
    assert warning == {
        "event": "a page failed to commit; committing its records one by one",
        "log_level": "warning",
        "tenant": TENANT,
        "stream": INCIDENTS,
        "error": "ValueError: the store refuses bad",
    }


def test_a_page_whose_every_record_the_store_refuses_fails_with_the_first_error(
    hub: Hub,
) -> None:
    """Two records, both refused: more likely the store than the data. Nothing is
    quarantined, nothing moves; the page is read again."""
    with pytest.raises(ValueError, match=r"^the store refuses a$"):
        one_cycle(Refuses(hub, "a", "b"), [incident("a", 30), incident("b", 20)])
    assert hub.list_quarantine(tenant_id=TENANT) == []
    assert state(hub).watermark is None


def test_a_quarantine_reason_is_cut_at_2000_characters(hub: Hub) -> None:
    one_cycle(Refuses(hub, "bad", message="!" * 5000), [incident("a", 30), incident("bad", 25)])
    (row,) = hub.list_quarantine(tenant_id=TENANT)
    assert len(row.reason) == 2000
    assert row.reason.startswith("ValueError: the store refuses bad!!!")


def test_a_refused_record_read_again_with_its_keys_reordered_is_quarantined_once(
    hub: Hub,
) -> None:
    bad = {**incident("bad", 25), "severity": 5}  # the model wants a string
    reordered = dict(reversed(list(bad.items())))
    for items in ([incident("a", 30), bad], [reordered, incident("a", 30)]):
        one_cycle(hub, items)
    rows = hub.list_quarantine(tenant_id=TENANT)
    assert len(rows) == 1 and "'severity'" in rows[0].reason


def test_an_item_nested_too_deeply_to_print_is_quarantined_as_what_it_is(hub: Hub) -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    report = one_cycle(hub, [incident("a", 30), deep])
    assert report.quarantined == 1 and hub.get_incident(TENANT, "a") is not None
    (row,) = hub.list_quarantine(tenant_id=TENANT)
    assert (row.reason, row.raw) == (
        "not a JSON object: list",
        "<a list nested too deeply to print>",
    )


# -- reconcile ----------------------------------------------------------------------------


def _reconciling(hub: Hub, graph: FakeGraph, pages: int) -> Any:
    """One cycle at a time with a reconcile of ``pages`` pages a cycle; the state after it."""
    settings = replace(
        SETTINGS,
        reconcile=timedelta(days=3),
        reconcile_every=timedelta(hours=1),
        reconcile_pages=pages,
    )

    def run() -> StreamState:
        asked = graph.pages
        report = sync_stream(
            hub, graph, tenant_id=TENANT, stream=INCIDENTS, settings=settings,
            clock=lambda: graph.now,
        )  # fmt: skip
        assert report.watermark is not None
        wasted.append(graph.pages - asked - report.pages)  # pages asked for and not read
        return state(hub)

    wasted: list[int] = []
    run.wasted = wasted  # type: ignore[attr-defined]
    return run


def _until_reconciled(run: Any, graph: FakeGraph) -> list[StreamState]:
    graph.now += timedelta(hours=2)  # a reconcile is due
    slices: list[StreamState] = []
    while not slices or slices[-1].reconcile_at is not None:
        slices.append(run())
        assert len(slices) < 20, "the reconcile never ends"
    return slices


@pytest.mark.parametrize("ordered", [True, False])
def test_a_reconcile_gets_past_a_run_of_one_stamp_longer_than_its_pages(
    hub: Hub, ordered: bool
) -> None:
    """Twelve records of one stamp, three a page, two pages a slice: a slice reads the run
    whole (the next would start it again at its stamp), and asks Graph for no page it does
    not use. Without the order, windows are the slices."""
    graph = FakeGraph(page_size=3, ordered=ordered)
    spread(graph, INCIDENTS, 9)
    for n in range(12):
        graph.put(INCIDENTS, f"tie{n:02d}", T0 - timedelta(hours=12))
    run = _reconciling(hub, graph, pages=2)
    run()
    graph.records[INCIDENTS]["tie07"]["severity"] = "high"
    slices = _until_reconciled(run, graph)
    assert hub.get_incident(TENANT, "tie07").to_graph()["severity"] == "high"  # type: ignore[union-attr]
    if ordered:
        assert len(slices) >= 2
        assert run.wasted == [0] * len(run.wasted)  # no page asked for that was not read


def test_a_reconcile_reads_a_few_pages_a_cycle_and_brings_changes_that_moved_no_stamp(
    hub: Hub,
) -> None:
    """A change that does not move ``lastUpdateDateTime`` is invisible to a listing from the
    watermark; the reconcile finds it. It reads ``reconcile_pages`` pages after each cycle's
    own read, goes on where it stopped (kept in the state), never moves the watermark, and
    is recorded once it reached where the cycle began reading."""
    graph = FakeGraph(page_size=3)
    spread(graph, INCIDENTS, 30)
    run = _reconciling(hub, graph, pages=2)

    first = run()
    assert first.last_reconcile is not None and first.reconcile_at is None
    graph.records[INCIDENTS]["i025"]["severity"] = "high"  # same stamp, new content
    again = run()  # within the hour: no reconcile
    assert again.reconcile_at is None
    assert hub.get_incident(TENANT, "i025").to_graph()["severity"] == "low"  # type: ignore[union-attr]
    slices = _until_reconciled(run, graph)
    assert len(slices) >= 3  # 30 records, 3 a page, 2 pages a cycle
    marks = [s.reconcile_at for s in slices[:-1]]
    assert all(m is not None for m in marks) and marks == sorted(marks)  # type: ignore[type-var]
    assert [s.watermark for s in slices] == sorted(s.watermark for s in slices)  # type: ignore[type-var]
    assert (
        slices[-1].last_reconcile is not None and slices[-1].last_reconcile > first.last_reconcile
    )
    assert hub.get_incident(TENANT, "i025").to_graph()["severity"] == "high"  # type: ignore[union-attr]
