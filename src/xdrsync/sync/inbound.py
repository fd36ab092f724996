"""Inbound sync of one (tenant, stream): Graph pages → models → the hub, losslessly.

The rules that make it lossless (design §3; ``docs/guarantees.md``; tested in tests/sync):

* a cycle reads from ``watermark - lookback`` to the server's now;
* listings are read by time boundary, never by following Graph's offset next links, so an
  update during the read cannot shift a record out of sight (``sync.listing``);
* pages are committed as they arrive (memory stays flat however large the backlog; the next
  page is read meanwhile, see ``prefetch``), each in the same transaction as the state it
  proves: everything stamped before its cursor has been read (or, for a source that ignores
  the order, only a window read to its end moves the state);
* the new watermark is never later than the server's ``Date`` at the start of the read, so
  an update that becomes listable late is re-read by the next cycle's lookback;
* a record that cannot be parsed or stored is quarantined with its reason and raw text, and
  every other record of its page is committed; the hub's version guard makes re-reads no-ops;
  an evidence item that does not fit its type costs nothing: the models keep it whole
  (``UnparsedEvidence``), its alert is stored, a warning says so once per process, and the
  hub counts such items per stream for ``state show`` (``hub.unparsed``);
* a read run under ``graph.pacing.stop_on`` (the service's) ends between pages once a stop
  is asked for (``Stopped``), after committing the page in hand: never half a page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from xdrsync.errors import RetriableError
from xdrsync.graph.pacing import check_stop
from xdrsync.hub import ApplyResult, Hub, InboundBatch, Quarantined
from xdrsync.hub.payload import datetime_from_ticks, ticks_from_datetime
from xdrsync.jsontext import UnreadableItem, UnreadableRecord
from xdrsync.models import Alert, Incident, UnparsedEvidence
from xdrsync.sync.listing import (
    Fetch,
    Overfull,
    Page,
    PageQuery,
    Read,
    Unordered,
    Unsettled,
    keyset_scan,
    split_scan,
    window_scan,
)
from xdrsync.sync.prefetch import prefetched
from xdrsync.sync.window import (
    StreamState,
    adapt_span,
    cycle_lookback,
    due,
    start_of_cycle,
)

log = structlog.get_logger(__name__)

INCIDENTS = "incidents"
ALERTS = "alerts"
STREAMS = (INCIDENTS, ALERTS)
#: How far Graph's ``Date`` may run ahead of this machine's clock before a warning says so.
CLOCK_WARNING = timedelta(minutes=1)


class DefenderSource(Protocol):
    """What inbound sync needs from Graph (implemented by ``xdrsync.graph.DefenderApi``):
    one page of a listing as ``query`` describes it, never following next links."""

    def incidents_page(self, query: PageQuery) -> Page: ...

    def alerts_page(self, query: PageQuery) -> Page: ...


@dataclass(frozen=True)
class InboundSettings:
    lookback: timedelta = timedelta(minutes=5)
    # Most cycles read only this far back; a sweep re-reads the whole lookback every
    # ``sweep_every`` (``window.cycle_lookback``). None: every cycle reads the lookback.
    fresh_lookback: timedelta | None = None
    sweep_every: timedelta = timedelta(minutes=1)
    # Every ``reconcile_every`` a cycle re-reads this far before the watermark (None: never):
    # what Defender changed without moving ``lastUpdateDateTime`` (whether a comment, a merge
    # or an alert moving moves it is undocumented) arrives within that time, for records
    # updated within the window.
    reconcile: timedelta | None = None
    reconcile_every: timedelta = timedelta(hours=6)
    # Pages of the reconcile read per cycle at most: it goes on at the next cycle, so the
    # cycles stay short and fresh (``_reconcile``).
    reconcile_pages: int = 10
    initial_backfill: timedelta = timedelta(days=30)
    # Only for a source that ignores the order (see ``sync.listing``): windows adapt to the
    # data (``window.adapt_span``), about ``window_target`` records each — below what
    # ``$skip`` can reach (500 + a page), so few windows need splitting.
    first_window: timedelta = timedelta(days=1)
    window_target: int = 400
    smallest_window: timedelta = timedelta(minutes=10)
    largest_window: timedelta = timedelta(days=365)

    def first_reach(self, stream: str) -> timedelta:
        """How far back a stream's first cycle reads, at least (see ``first_lower``).

        The incidents stream brings every alert with its incident (``$expand=alerts``, read
        after any change the alert had), so the alerts stream need not backfill: it starts
        one lookback before the incidents stream first began reading, and from then on
        catches alert changes that do not bump their incident. This keeps a backfill's Graph
        budget for incidents.
        """
        return self.initial_backfill if stream == INCIDENTS else self.lookback


@dataclass
class StreamReport:
    """What one cycle of one stream did (for logs, ``state show`` and the demo)."""

    tenant_id: str
    stream: str
    windows: int = 0
    pages: int = 0
    records: int = 0
    #: The alerts read within the incidents read (`$expand=alerts`): `inserted` and `updated`
    #: count them too, as records of their own.
    alerts_within: int = 0
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    watermark: datetime | None = None
    waiting_until: datetime | None = None  # skipped: Graph asked us to wait until then


@dataclass(frozen=True)
class WindowDone:
    """Progress of a cycle or backfill: ``start..end`` is its span, ``reached`` how far it got."""

    report: StreamReport
    start: datetime
    end: datetime
    reached: datetime


Clock = Callable[[], datetime]
OnWindow = Callable[[WindowDone], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _fetcher(source: DefenderSource, stream: str) -> Fetch:
    if stream == INCIDENTS:
        return source.incidents_page
    if stream == ALERTS:
        return source.alerts_page
    raise ValueError(f"unknown stream {stream!r}")


def _parse(
    stream: str, items: Sequence[Any]
) -> tuple[list[Incident], list[Alert], list[Quarantined]]:
    incidents: list[Incident] = []
    alerts: list[Alert] = []
    bad: list[Quarantined] = []
    for raw in items:
        if isinstance(raw, UnreadableItem):
            bad.append(Quarantined(raw=raw.raw, reason=raw.reason))
            continue
        if isinstance(raw, UnreadableRecord):
            bad.append(Quarantined(raw=_dump(dict(raw)), reason=raw.reason))
            continue
        if not isinstance(raw, Mapping):
            bad.append(Quarantined(raw=_dump(raw), reason=f"not a JSON object: {_kind(raw)}"))
            continue
        try:
            if stream == INCIDENTS:
                incidents.append(Incident.from_graph(raw))
            else:
                alerts.append(Alert.from_graph(raw))
        except Exception as problem:  # whatever one record does, it is that record's alone
            bad.append(Quarantined(raw=_dump(raw), reason=_reason(problem)))
    return incidents, alerts, bad


#: Evidence problems already warned about, by (tenant, @odata.type, reason): each is said
#: once per process, not for every item, alert and cycle that reads it again (lookback,
#: reconcile). Bounded: when full it starts over, so that no new problem goes unsaid.
_told: set[tuple[str, str, str]] = set()
_TOLD_LIMIT = 1000


def _warn_unparsed(
    tenant_id: str, stream: str, incidents: Sequence[Incident], alerts: Sequence[Alert]
) -> None:
    """A warning for each new kind of evidence item the models kept unparsed: Graph changed
    the shape of a property, which an operator wants to hear of (its rows and console show
    less of the item than of one that fits)."""
    for alert in (*alerts, *(a for incident in incidents for a in incident.alerts)):
        for item in alert.evidence:
            if not isinstance(item, UnparsedEvidence):
                continue
            reason = item.problem
            told = (tenant_id, item.odata_type or "", reason)
            if told in _told:
                continue
            if len(_told) >= _TOLD_LIMIT:
                _told.clear()
            _told.add(told)
            log.warning(
                "an evidence item does not fit its type: kept whole and unparsed, its alert "
                "stored; other items with this problem are not logged again by this process "
                "(`xdrsync state show` counts them all)",
                tenant=tenant_id,
                stream=stream,
                alert=alert.id,
                incident=alert.incident_id,
                evidence_type=item.odata_type,
                reason=reason,
            )


def _kind(raw: Any) -> str:
    return "null" if raw is None else type(raw).__name__


def _reason(problem: BaseException) -> str:
    return f"{type(problem).__name__}: {problem}"[:2000]


def _dump(raw: Any) -> str:
    """The record's JSON text, escaped to ASCII so that any text survives every store."""
    try:
        return json.dumps(raw, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        try:
            return repr(raw)[:1_000_000]
        except RecursionError:
            return f"<a {_kind(raw)} nested too deeply to print>"


@dataclass
class _Cycle:
    """What one read of one stream works with (a cycle or a backfill)."""

    hub: Hub
    fetch: Fetch
    tenant_id: str
    stream: str
    report: StreamReport
    settings: InboundSettings
    start: datetime
    end: datetime
    advance: bool
    on_window: OnWindow | None
    state: StreamState = field(default_factory=StreamState)  # as last committed by this read
    started: datetime | None = None  # the server's Date on the read's first page
    clock: Clock = _utcnow

    def see(self, page: Page) -> datetime:
        """The read's start on the server's clock (its first page's ``Date``), never later
        than our own clock when that page came: a ``Date`` from the future (a proxy or front
        end with a wrong clock) would carry the watermark there, and every record updated
        before the real time caught up would fall behind it unread. A server clock ahead of
        ours only makes the next cycle read again what a few seconds more hold."""
        if self.started is None:
            local = self.clock()
            self.started = min(page.server_date, local)
            if page.server_date - local > CLOCK_WARNING:
                log.warning(
                    "Graph's Date is ahead of this machine's clock; reading by our clock",
                    tenant=self.tenant_id,
                    stream=self.stream,
                    server_date=page.server_date.isoformat(),
                    local=local.isoformat(),
                )
        return self.started

    def progress(self, reached: datetime) -> None:
        if self.on_window is not None:
            self.on_window(WindowDone(self.report, self.start, self.end, min(reached, self.end)))

    def commit(self, page: Page | None, state: StreamState | None) -> None:
        _commit(self.hub, self.tenant_id, self.stream, page, state, self.report)


def sync_stream(
    hub: Hub,
    source: DefenderSource,
    *,
    tenant_id: str,
    stream: str,
    settings: InboundSettings,
    clock: Clock = _utcnow,
    on_window: OnWindow | None = None,
) -> StreamReport:
    """One cycle of one stream: read from ``watermark - lookback`` to now, as described above."""
    state = StreamState.from_doc(hub.get_state(tenant_id, stream))
    local_now = clock()
    report = StreamReport(tenant_id=tenant_id, stream=stream, watermark=state.watermark)
    if state.retry_at is not None and local_now < state.retry_at:
        report.waiting_until = state.retry_at  # Graph asked us to wait; not before then
        return report
    lookback, sweep = cycle_lookback(
        state.last_sweep,
        local_now,
        lookback=settings.lookback,
        fresh=settings.fresh_lookback,
        sweep_every=settings.sweep_every,
    )
    lower = start_of_cycle(
        state.watermark,
        lookback=lookback,
        server_now=local_now,
        initial_backfill=settings.first_reach(stream),
    )
    if state.watermark is None:
        lower = first_lower(hub, tenant_id, stream, lower, settings)
        # The first cycle reads the whole history: the next reconcile is one interval away.
        state = replace(state, began=state.began or local_now, last_reconcile=local_now)
    cycle = _Cycle(
        hub, _fetcher(source, stream), tenant_id, stream, report, settings,
        lower, local_now, True, on_window, clock=clock,
    )  # fmt: skip
    state = _read(cycle, lower, None, replace(state, retry_at=None))
    if sweep:  # read to the end: the lookback is covered until the next sweep is due
        state = replace(state, last_sweep=local_now)
        cycle.commit(None, state)
    if settings.reconcile is not None and (
        state.reconcile_at is not None
        or due(state.last_reconcile, local_now, settings.reconcile_every)
    ):
        state = _reconcile(cycle, lower, state, local_now)
    report.watermark = state.watermark
    return report


def _reconcile(cycle: _Cycle, upper: datetime, state: StreamState, now: datetime) -> StreamState:
    """A slice of the reconcile, after the cycle's own read: about ``reconcile_pages`` pages
    of ``[now - reconcile, upper)`` (``upper``: where the cycle began reading), oldest first,
    from where the last slice stopped (``reconcile_at``, kept with each page or window, so a
    failure or a stop costs one). Records read again that changed without moving their
    ``lastUpdateDateTime`` are new versions; the watermark is not touched. Never further
    back than the stream's first cycle reached (``initial_backfill_days``)."""
    settings = cycle.settings
    assert settings.reconcile is not None
    lower = state.reconcile_at or now - settings.reconcile
    if state.began is not None:
        lower = max(lower, state.began - settings.first_reach(cycle.stream))
    done = lower >= upper
    if not done and state.ordered is False:
        reread = replace(cycle, start=lower, end=upper, advance=False)
        budget = settings.reconcile_pages

        def settled(window_end: datetime) -> bool:
            nonlocal state, budget
            state = replace(state, reconcile_at=window_end)
            cycle.commit(None, state)
            budget -= 1
            return budget > 0

        _read_windows(reread, lower, upper, state, settled)
        done = state.reconcile_at is not None and state.reconcile_at >= upper
    elif not done:
        start = ticks_from_datetime(lower)
        scan = keyset_scan(cycle.fetch, start, ticks_from_datetime(upper))
        try:
            for read in prefetched(_slice(scan, start, settings.reconcile_pages), last=_done):
                cycle.report.pages += 1
                done = read.done
                if read.through is not None and not done:
                    state = replace(state, reconcile_at=datetime_from_ticks(read.through))
                cycle.commit(read.page, state)
                check_stop()
        except Unordered:  # found here first: the next slice reads in windows
            state = replace(state, ordered=False)
            cycle.commit(None, state)
    if done:
        state = replace(state, reconcile_at=None, last_reconcile=now)
        cycle.commit(None, state)
    elif state.reconcile_at is None:  # nothing proven yet: the next slice starts from lower
        state = replace(state, reconcile_at=lower)
        cycle.commit(None, state)
    return state


def _done(read: Read) -> bool:
    """Whether a scan's read is its last (nothing more to read ahead)."""
    return read.done


def _slice(scan: Iterator[Read], start: int, pages: int) -> Iterator[Read]:
    """``scan``'s pages until its end, or until ``pages`` have been read and a page proves a
    mark past ``start`` and past the page before it: a run of one stamp is read whole, since
    the next slice would start it again at its stamp (so every slice gets further)."""
    last = start
    for count, read in enumerate(scan, start=1):
        yield read
        if read.done:
            return
        if read.through is not None:
            if count >= pages and read.through > last and read.through > start:
                return
            last = read.through


def first_lower(
    hub: Hub, tenant_id: str, stream: str, lower: datetime, settings: InboundSettings
) -> datetime:
    """Where a stream's first cycle starts: for alerts, no later than one lookback before
    the incidents stream first began reading. An alert changed after its incident was read
    by the backfill, without bumping the incident, is then read by the alerts stream however
    long the backfill took (a 30-day backfill paced at Graph's limit takes many minutes)."""
    if stream != ALERTS:
        return lower
    incidents = StreamState.from_doc(hub.get_state(tenant_id, INCIDENTS))
    if incidents.began is None:
        return lower
    return min(lower, incidents.began - settings.lookback)


def backfill_stream(
    hub: Hub,
    source: DefenderSource,
    *,
    tenant_id: str,
    stream: str,
    lower: datetime,
    upper: datetime,
    settings: InboundSettings,
    on_window: OnWindow | None = None,
) -> StreamReport:
    """Re-read ``[lower, upper)`` without touching the stream's watermark."""
    report = StreamReport(tenant_id=tenant_id, stream=stream)
    state = StreamState.from_doc(hub.get_state(tenant_id, stream))
    cycle = _Cycle(
        hub, _fetcher(source, stream), tenant_id, stream, report, settings,
        lower, upper, False, on_window,
    )  # fmt: skip
    _read(cycle, lower, upper, state)
    return report


def _read(
    cycle: _Cycle, lower: datetime, upper: datetime | None, state: StreamState
) -> StreamState:
    """Read ``[lower, upper)`` (``None``: up to now) by time boundary, or in windows when the
    source turns out not to honour the order."""
    cycle.state = state
    if state.ordered is not False:
        try:
            return _read_keyset(cycle, lower, upper)
        except Unordered as why:
            log.warning(
                "Graph ignores $orderby; reading in windows from now on",
                tenant=cycle.tenant_id,
                stream=cycle.stream,
                detail=str(why),
            )
            cycle.state = replace(cycle.state, ordered=False)  # with what the pages proved
            if cycle.advance:
                cycle.commit(None, cycle.state)  # remembered, so no later cycle tries again
    return _read_windows(cycle, lower, upper or cycle.end, cycle.state)


def _read_keyset(cycle: _Cycle, lower: datetime, upper: datetime | None) -> StreamState:
    state = cycle.state
    upper_ticks = None if upper is None else ticks_from_datetime(upper)
    for read in prefetched(
        keyset_scan(cycle.fetch, ticks_from_datetime(lower), upper_ticks), last=_done
    ):
        started = cycle.see(read.page)
        cycle.report.pages += 1
        moved: StreamState | None = None
        if cycle.advance:
            if read.done:
                end = started if upper is None else min(upper, started)
                state = replace(state.advanced(end, at=started), ordered=True)
                moved = state
            elif read.through is not None:
                mark = min(datetime_from_ticks(read.through), started)
                state = replace(state.moved(mark), ordered=True)
                moved = state
        cycle.commit(read.page, moved)
        cycle.state = state
        if read.done:
            cycle.report.windows += 1
        elif read.through is not None:
            cycle.progress(datetime_from_ticks(read.through))
        check_stop()
    cycle.progress(cycle.end)
    return state


def _read_windows(
    cycle: _Cycle,
    lower: datetime,
    upper: datetime,
    state: StreamState,
    settled: Callable[[datetime], bool] | None = None,
) -> StreamState:
    """Closed windows from ``lower`` to ``upper``, sized to the data; a window that cannot be
    read as it is (too dense, or changing while read) is read again at half the span, and
    one of the smallest span still too full to read is read split at the stamps in it
    (``split_scan``): a bulk action can stamp more records within seconds than ``$skip``
    reaches, and failing there would stop the stream at that window for good.
    ``settled``: told each window's end once it is read; the read ends when it says False."""
    settings = cycle.settings
    span = settings.first_window
    while lower < upper:
        window_end = min(lower + span, upper)
        before = cycle.report.records
        try:
            state = _read_window(cycle, lower, window_end, state, window_scan)
        except Unsettled as why:
            if span > settings.smallest_window:
                span = max(settings.smallest_window, span / 2)
                continue
            if not isinstance(why, Overfull):
                raise RetriableError(
                    f"the {cycle.stream} window {lower.isoformat()} .. {window_end.isoformat()} "
                    f"cannot be read reliably ({why}); it is read again next cycle"
                ) from None
            state = _read_window(cycle, lower, window_end, state, split_scan)
        lower = window_end
        cycle.progress(lower)
        span = _adapt(span, cycle.report.records - before, settings)
        if settled is not None and not settled(lower):
            break
    return state


def _read_window(
    cycle: _Cycle,
    lower: datetime,
    upper: datetime,
    state: StreamState,
    scan: Callable[[Fetch, int, int], Iterator[Read]],
) -> StreamState:
    reads = scan(cycle.fetch, ticks_from_datetime(lower), ticks_from_datetime(upper))
    for read in prefetched(reads, last=_done):
        # Never past the server's clock at the start of the whole read (windows reach the
        # local clock, which may be ahead of Graph's).
        started = cycle.see(read.page)
        cycle.report.pages += 1
        moved: StreamState | None = None
        if cycle.advance and read.done:
            state = replace(state.advanced(min(upper, started), at=started), ordered=False)
            moved = state
        cycle.commit(read.page, moved)
        check_stop()
    cycle.report.windows += 1
    return state


def _adapt(span: timedelta, records: int, settings: InboundSettings) -> timedelta:
    return adapt_span(
        span,
        records,
        target=settings.window_target,
        smallest=settings.smallest_window,
        largest=settings.largest_window,
    )


_DATA_ERRORS = (ValueError, TypeError, OverflowError, UnicodeError, RecursionError, KeyError)
# SQLSTATE classes about the data, not the store: 22 data exception (e.g. a NUL or an
# invalid byte sequence), 23 integrity, 54 program limit (e.g. an index key too long).
_DATA_STATES = ("22", "23", "54")


def _is_record_problem(problem: BaseException) -> bool:
    """Whether a failed commit may be one record's data (then the record is found and
    quarantined) rather than the store or the code (then the page fails and is retried, and
    nothing is quarantined that a working store would take)."""
    if isinstance(problem, DBAPIError):
        state = getattr(problem.orig, "sqlstate", None) or getattr(problem.orig, "pgcode", None)
        if isinstance(state, str):
            return state[:2] in _DATA_STATES
        return isinstance(problem, DataError | IntegrityError)
    if isinstance(problem, StatementError):  # raised while binding a value: an encoding
        return isinstance(problem.orig, _DATA_ERRORS)
    return isinstance(problem, _DATA_ERRORS)


def _commit(
    hub: Hub,
    tenant_id: str,
    stream: str,
    page: Page | None,
    state: StreamState | None,
    report: StreamReport,
) -> None:
    items: Sequence[Any] = page.items if page is not None else ()
    incidents, alerts, bad = _parse(stream, items)
    _warn_unparsed(tenant_id, stream, incidents, alerts)
    batch = InboundBatch(
        tenant_id=tenant_id,
        stream=stream,
        incidents=incidents,
        alerts=alerts,
        quarantined=bad,
        state=state.to_doc() if state is not None else None,
    )
    try:
        results = [hub.commit_batch(batch)]
    except Exception as problem:
        if not _is_record_problem(problem):
            raise
        # Perhaps one record the store cannot take: find it, keep the rest.
        log.warning(
            "a page failed to commit; committing its records one by one",
            tenant=tenant_id,
            stream=stream,
            error=_reason(problem),
        )
        results = _commit_each(hub, batch)
    report.records += len(items)
    report.alerts_within += sum(len(incident.alerts) for incident in incidents)
    report.quarantined += sum(result.quarantined for result in results)
    report.inserted += sum(result.inserted for result in results)
    report.updated += sum(result.updated for result in results)


def _commit_each(hub: Hub, batch: InboundBatch) -> list[ApplyResult]:
    """Commit each record of ``batch`` alone; quarantine those that fail; then the state."""
    results: list[ApplyResult] = []
    bad = list(batch.quarantined)
    one = replace(batch, incidents=(), alerts=(), quarantined=(), state=None)
    records: list[Incident | Alert] = [*batch.incidents, *batch.alerts]
    failed: list[Exception] = []
    for record in records:
        single = (
            replace(one, incidents=(record,))
            if isinstance(record, Incident)
            else replace(one, alerts=(record,))
        )
        try:
            results.append(hub.commit_batch(single))
        except Exception as problem:
            if not _is_record_problem(problem):
                raise
            failed.append(problem)
            bad.append(Quarantined(raw=_dump(record.to_graph()), reason=_reason(problem)))
    if len(failed) == len(records) > 1:
        # Every record of the page failed: more likely the store or the code than the data.
        # Nothing was committed; the page fails and is read again.
        raise failed[0]
    results.append(hub.commit_batch(replace(one, quarantined=bad, state=batch.state)))
    return results
