"""Inbound sync of one (tenant, stream): Graph pages → models → the hub, losslessly.

The rules that make it lossless (design §3; tested in tests/sync and the chaos test):

* a cycle reads from ``watermark - lookback`` to the server's now, cut into windows;
* pages are committed as they arrive (memory stays flat however large the backlog; the next
  page is read meanwhile, see ``prefetch``), but the stream's state moves only in the same
  transaction as a window's *last* page — a window counts once it has been read to its end
  (or, for incidents read oldest first, with each page while that order holds);
* the new watermark is never later than the server's ``Date`` at the start of the window's
  read, so an update that becomes listable late is re-read by the next cycle's lookback;
* a record that cannot be parsed is quarantined with its reason; the stream goes on;
* the hub's version guard makes every re-read a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from xdrsync.errors import SkippableError
from xdrsync.hub import Hub, InboundBatch, Quarantined
from xdrsync.models import Alert, Incident
from xdrsync.models.wire import parse_datetime
from xdrsync.sync.prefetch import prefetched
from xdrsync.sync.window import (
    StreamState,
    Window,
    adapt_span,
    next_window,
    start_of_cycle,
)

log = structlog.get_logger(__name__)

INCIDENTS = "incidents"
ALERTS = "alerts"
STREAMS = (INCIDENTS, ALERTS)


class Page(Protocol):
    """One page of a Graph listing: raw records and the server's clock when it answered."""

    @property
    def items(self) -> Sequence[Mapping[str, Any]]: ...

    @property
    def server_date(self) -> datetime: ...


class DefenderSource(Protocol):
    """What inbound sync needs from Graph (implemented by ``xdrsync.graph``)."""

    def list_incidents(self, lower: datetime, upper: datetime | None) -> Iterator[Page]: ...

    def list_alerts(self, lower: datetime, upper: datetime | None) -> Iterator[Page]: ...


@dataclass(frozen=True)
class InboundSettings:
    lookback: timedelta = timedelta(minutes=5)
    initial_backfill: timedelta = timedelta(days=30)
    # Windows adapt to the data (see ``window.adapt_span``): about ``window_target`` records
    # each, so a crash re-reads little and partial last pages cost little of the budget.
    first_window: timedelta = timedelta(days=1)
    window_target: int = 1000
    smallest_window: timedelta = timedelta(minutes=10)
    largest_window: timedelta = timedelta(days=365)

    def first_reach(self, stream: str) -> timedelta:
        """How far back a stream's first cycle reads.

        The incidents stream brings every alert with its incident (``$expand=alerts``, read
        after any change the alert had), so the alerts stream need not backfill: it starts
        one lookback back and from then on catches alert changes that do not bump their
        incident. This keeps a backfill's Graph budget for incidents.
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
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    watermark: datetime | None = None


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


def _reader(
    source: DefenderSource, stream: str
) -> Callable[[datetime, datetime | None], Iterator[Page]]:
    if stream == INCIDENTS:
        return source.list_incidents
    if stream == ALERTS:
        return source.list_alerts
    raise ValueError(f"unknown stream {stream!r}")


def _parse(
    stream: str, items: Sequence[Mapping[str, Any]]
) -> tuple[list[Incident], list[Alert], list[Quarantined]]:
    incidents: list[Incident] = []
    alerts: list[Alert] = []
    bad: list[Quarantined] = []
    for raw in items:
        try:
            if stream == INCIDENTS:
                incidents.append(Incident.from_graph(raw))
            else:
                alerts.append(Alert.from_graph(raw))
        except (SkippableError, ValueError, TypeError, KeyError) as problem:
            bad.append(Quarantined(raw=_dump(raw), reason=f"{type(problem).__name__}: {problem}"))
    return incidents, alerts, bad


def _dump(raw: Any) -> str:
    try:
        return json.dumps(raw, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(raw)


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
    """One cycle of one stream: read every window to its end, commit as described above."""
    state = StreamState.from_doc(hub.get_state(tenant_id, stream))
    local_now = clock()
    lower = start_of_cycle(
        state.watermark,
        lookback=settings.lookback,
        server_now=local_now,
        initial_backfill=settings.first_reach(stream),
    )
    report = StreamReport(tenant_id=tenant_id, stream=stream)
    start, span = lower, settings.first_window
    if stream == INCIDENTS and state.ordered is not False:
        span = local_now - lower  # one open window: ordered pages move the state themselves
    while True:
        window = next_window(lower, local_now, span)
        before = report.records
        state = _read_window(hub, source, tenant_id, stream, window, state, report, advance=True)
        if on_window is not None:
            on_window(WindowDone(report, start, local_now, window.upper or local_now))
        if window.upper is None:
            break
        lower = window.upper
        span = _adapt(span, report.records - before, settings)
    report.watermark = state.watermark
    return report


def _adapt(span: timedelta, records: int, settings: InboundSettings) -> timedelta:
    return adapt_span(
        span,
        records,
        target=settings.window_target,
        smallest=settings.smallest_window,
        largest=settings.largest_window,
    )


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
    start, span = lower, settings.first_window
    while lower < upper:
        window = Window(lower, min(lower + span, upper))
        before = report.records
        _read_window(hub, source, tenant_id, stream, window, state, report, advance=False)
        lower = min(lower + span, upper)
        if on_window is not None:
            on_window(WindowDone(report, start, upper, lower))
        span = _adapt(span, report.records - before, settings)
    return report


def _read_window(
    hub: Hub,
    source: DefenderSource,
    tenant_id: str,
    stream: str,
    window: Window,
    state: StreamState,
    report: StreamReport,
    *,
    advance: bool,
) -> StreamState:
    read = _reader(source, stream)
    started: datetime | None = None
    held: Page | None = None
    held_state: StreamState | None = None
    # Incidents are asked for oldest first. While the pages prove that order, everything up
    # to the last record of a page has been read, so the state may move with each page and
    # a crash costs one page; an unordered page ends that for this stream (see StreamState).
    checking = advance and stream == INCIDENTS and state.ordered is not False
    previous: datetime | None = None
    for page in prefetched(read(window.lower, window.upper)):
        if started is None:
            started = page.server_date
        report.pages += 1
        if held is not None:
            _commit(hub, tenant_id, stream, held, held_state, report)
            state = held_state or state
            held, held_state = None, None
        if checking:
            last = _last_if_ascending(page.items, previous)
            if last is None:
                checking = False
                # Saved with this page, so a crash-and-restart does not retry the open window.
                held_state = state = replace(state, ordered=False)
                log.warning(
                    "incidents arrive unordered; state now moves per window", tenant=tenant_id
                )
            elif last is not _EMPTY:
                previous = last
                state = replace(state.advanced(min(last, started), at=started), ordered=True)
                _commit(hub, tenant_id, stream, page, state, report)
                continue
        held = page
    report.windows += 1
    if started is None:  # a source that yields no page at all: nothing read, nothing proven
        return state
    new_state = state
    if advance:
        mark = started if window.upper is None else min(window.upper, started)
        new_state = state.advanced(mark, at=started)
        if checking:
            new_state = replace(new_state, ordered=True)
    _commit(hub, tenant_id, stream, held, new_state if advance else None, report)
    return new_state


_EMPTY: Any = object()


def _last_if_ascending(items: Sequence[Mapping[str, Any]], previous: datetime | None) -> Any:
    """The page's last ``lastUpdateDateTime`` if the page continues an ascending order
    (``_EMPTY`` for an empty page), else None."""
    last = previous
    for item in items:
        try:
            stamp = parse_datetime(item.get("lastUpdateDateTime"))
        except ValueError:
            return None
        if stamp is None or (last is not None and stamp < last):
            return None
        last = stamp
    return _EMPTY if not items else last


def _commit(
    hub: Hub,
    tenant_id: str,
    stream: str,
    page: Page | None,
    state: StreamState | None,
    report: StreamReport,
) -> None:
    items = page.items if page is not None else ()
    incidents, alerts, bad = _parse(stream, items)
    result = hub.commit_batch(
        InboundBatch(
            tenant_id=tenant_id,
            stream=stream,
            incidents=incidents,
            alerts=alerts,
            quarantined=bad,
            state=state.to_doc() if state is not None else None,
        )
    )
    report.records += len(items)
    report.quarantined += len(bad)
    report.inserted += result.inserted
    report.updated += result.updated
