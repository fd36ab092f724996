"""Window maths for inbound sync (pure): where a cycle starts reading and how it is split.

A cycle reads ``lastUpdateDateTime`` from ``watermark - lookback`` up to the server's "now".
The span is cut into contiguous windows, sized to the data, so that a crash costs at most one
window of re-reading; the last window is open-ended (no upper bound in the ``$filter``),
because anything updated while we read it must not fall between two windows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True, order=True)
class Window:
    """``lower <= lastUpdateDateTime < upper``; ``upper is None`` means "up to now"."""

    lower: datetime
    upper: datetime | None

    def __post_init__(self) -> None:
        if self.lower.tzinfo is None or (self.upper is not None and self.upper.tzinfo is None):
            raise ValueError("window bounds must be timezone-aware")
        if self.upper is not None and self.upper <= self.lower:
            raise ValueError(f"empty window {self.lower} .. {self.upper}")

    @property
    def open_ended(self) -> bool:
        return self.upper is None

    def contains(self, moment: datetime) -> bool:
        return moment >= self.lower and (self.upper is None or moment < self.upper)


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


def next_window(lower: datetime, server_now: datetime, span: timedelta) -> Window:
    """The window starting at ``lower``: closed after ``span``, or open if that reaches now."""
    if server_now - lower <= span:
        return Window(lower, None)
    return Window(lower, lower + span)


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
    version: int = 1

    def to_doc(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "watermark": _iso(self.watermark),
            "last_success": _iso(self.last_success),
            "cycles": self.cycles,
            "ordered": self.ordered,
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
        )

    def advanced(self, watermark: datetime, at: datetime) -> StreamState:
        """The state after a window was read to its last page. The watermark never moves back."""
        new_mark = watermark if self.watermark is None else max(self.watermark, watermark)
        return replace(self, watermark=new_mark, last_success=at, cycles=self.cycles + 1)


def graph_literal(moment: datetime) -> str:
    """A ``$filter`` datetime literal: unquoted ISO-8601, UTC, seven fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _parse(text: Any) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
