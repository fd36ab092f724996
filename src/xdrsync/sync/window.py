"""Window maths for inbound sync (pure): where a cycle starts reading, how wide the windows
of a source that ignores the order are, and the state a stream keeps between cycles.

A cycle reads ``lastUpdateDateTime`` from ``watermark - lookback`` up to the server's "now";
how it pages is ``sync.listing``'s concern.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any


def start_of_cycle(
    watermark: datetime | None,
    *,
    lookback: timedelta,
    server_now: datetime,
    initial_backfill: timedelta,
) -> datetime:
    """Where the next cycle starts reading.

    Before the first successful cycle the stream backfills ``initial_backfill``; afterwards it
    re-reads ``lookback`` before the watermark so that updates which became listable late
    (Graph indexes with a delay) are still caught. Never later than ``server_now``.
    """
    if watermark is None:
        return server_now - initial_backfill
    return min(watermark - lookback, server_now)


def cycle_lookback(
    last_sweep: datetime | None,
    now: datetime,
    *,
    lookback: timedelta,
    fresh: timedelta | None,
    sweep_every: timedelta,
) -> tuple[timedelta, bool]:
    """How far before the watermark this cycle reads, and whether it is a sweep to record.

    Most cycles read only ``fresh`` (enough for Graph's clock and a short indexing delay);
    every ``sweep_every`` — at most half the lookback, so each stamp is inside the lookback
    of at least one sweep after it became listable — a sweep re-reads the whole lookback for
    updates Graph made listable late. Without ``fresh`` (or with one as long as the lookback)
    every cycle reads the lookback, and there is nothing to record.
    """
    if fresh is None or fresh >= lookback:
        return lookback, False
    sweep = due(last_sweep, now, min(sweep_every, lookback / 2))
    return (lookback, True) if sweep else (fresh, False)


def due(last: datetime | None, now: datetime, every: timedelta) -> bool:
    """Whether a periodic read (a sweep, a reconcile) is due: ``every`` after the last one,
    or at once when there was none or the clock went back past it."""
    return last is None or not last <= now < last + every


def adapt_span(
    span: timedelta,
    records: int,
    *,
    target: int,
    smallest: timedelta,
    largest: timedelta,
) -> timedelta:
    """The next window's span, aiming at ``target`` records per window.

    Sparse history gets wide windows (few partial last pages, so the Graph budget goes to
    full pages), dense history narrow ones (a crash re-reads at most about ``target``
    records). Growth is capped at four times per step so one quiet day does not launch a
    window across a burst.
    """
    wanted = span * 4 if records <= 0 else span * min(target / records, 4.0)
    return max(smallest, min(largest, wanted))


@dataclass(frozen=True)
class StreamState:
    """What the hub keeps per (tenant, stream) between cycles; stored as a JSON document."""

    watermark: datetime | None = None
    last_success: datetime | None = None
    cycles: int = 0
    # Whether the source honours ``$orderby=lastUpdateDateTime asc`` (None: not known yet).
    # Graph does not document ``$orderby`` on incidents, so the engine checks every page.
    ordered: bool | None = None
    # Graph asked us to wait (429 with a long Retry-After): the stream is not read before then.
    retry_at: datetime | None = None
    # When a cycle last re-read the whole lookback (``cycle_lookback``), on the local clock.
    last_sweep: datetime | None = None
    # When a reconcile last read to its end (``due``), on the local clock; and
    # where the one under way has read to (None: none under way).
    last_reconcile: datetime | None = None
    reconcile_at: datetime | None = None
    # When the stream's first cycle began reading, on the local clock (kept with its first
    # page): the incidents backfill read each alert as it was then (``first_reach``).
    began: datetime | None = None
    version: int = 1

    def to_doc(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "watermark": _iso(self.watermark),
            "last_success": _iso(self.last_success),
            "cycles": self.cycles,
            "ordered": self.ordered,
            "retry_at": _iso(self.retry_at),
            "last_sweep": _iso(self.last_sweep),
            "last_reconcile": _iso(self.last_reconcile),
            "reconcile_at": _iso(self.reconcile_at),
            "began": _iso(self.began),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> StreamState:
        if not doc:
            return cls()
        return cls(
            watermark=_parse(doc.get("watermark")),
            last_success=_parse(doc.get("last_success")),
            cycles=int(doc.get("cycles", 0)),
            ordered=doc.get("ordered"),
            retry_at=_parse(doc.get("retry_at")),
            last_sweep=_parse(doc.get("last_sweep")),
            last_reconcile=_parse(doc.get("last_reconcile")),
            reconcile_at=_parse(doc.get("reconcile_at")),
            began=_parse(doc.get("began")),
        )

    def advanced(self, watermark: datetime, at: datetime) -> StreamState:
        """The state after a listing was read to its last page. The watermark never moves back."""
        return replace(self.moved(watermark), last_success=at, cycles=self.cycles + 1)

    def moved(self, watermark: datetime) -> StreamState:
        """The state after a page proved everything before ``watermark`` read (never back)."""
        new_mark = watermark if self.watermark is None else max(self.watermark, watermark)
        return replace(self, watermark=new_mark, retry_at=None)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _parse(text: Any) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
