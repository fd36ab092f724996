"""A fake Graph for the sync engine's own loop: pages as Graph pages, in memory, in fake time.

What makes it bite (issue 9): it honours ``[lower, upper)`` and the query's inclusive/exclusive
bounds to the tick; every page is evaluated again from the current records, so an edit made
between two pages shifts records across the boundary exactly as Graph's offset ``$skip`` does;
its clock moves forward with every page; an edited record can stay invisible to listings for
a while (Graph's indexing delay); it can ignore ``$orderby`` (newest created first, as Graph's
default order) to drive the engine's window mode; it can serve equal stamps in a new order
on every request; and it can fail on any page (a crash).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from xdrsync.hub.payload import ticks_from_datetime, version_text
from xdrsync.sync.listing import PageQuery

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FakePage:
    items: tuple[Any, ...]
    server_date: datetime
    more: bool = False
    count: int | None = None
    full: bool = False


class Crash(Exception):  # noqa: N818 - what the test injects
    """An injected failure of one page (a dropped connection, a kill)."""


Hook = Callable[["FakeGraph", str, PageQuery], None]


@dataclass
class FakeGraph:
    """Incidents and alerts keyed by id; ``now`` moves ``tick`` per page served."""

    page_size: int = 3
    ordered: bool = True
    # Records with equal stamps in a new order on every request (None: by id, always the same):
    # their order is unspecified in OData, and nothing says Graph keeps it.
    shuffle_ties: random.Random | None = None
    tick: timedelta = timedelta(seconds=1)
    late: timedelta = timedelta(0)  # how long an edit stays invisible to listings
    now: datetime = T0
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"incidents": {}, "alerts": {}}
    )
    visible_at: dict[tuple[str, str], datetime] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    fail_at: set[int] = field(default_factory=set)  # page numbers (1-based) that fail
    pages: int = 0
    queries: list[tuple[str, PageQuery]] = field(default_factory=list)
    served: dict[str, set[str]] = field(
        default_factory=lambda: {"incidents": set(), "alerts": set()}
    )

    # -- data ---------------------------------------------------------------------------

    def put(self, stream: str, record_id: str, stamp: datetime, *, version: int = 0) -> None:
        text = version_text(ticks_from_datetime(stamp))
        record: dict[str, Any] = {
            "id": record_id,
            "createdDateTime": self.records[stream].get(record_id, {}).get("createdDateTime", text),
            "lastUpdateDateTime": text,
            "status": "active" if stream == "incidents" else "new",
            "severity": "low",
            "displayName" if stream == "incidents" else "title": f"{record_id} v{version}",
        }
        if stream == "incidents":
            record["alerts"] = []
        self.records[stream][record_id] = record

    def edit(self, stream: str, record_id: str) -> None:
        """An analyst's edit: a new version stamped now, listable after ``late``."""
        old = self.records[stream][record_id]
        version = int(str(old.get("displayName", old.get("title"))).rsplit("v", 1)[1]) + 1
        self.put(stream, record_id, self.now, version=version)
        self.visible_at[(stream, record_id)] = self.now + self.late

    def truth(self, stream: str) -> dict[str, str]:
        """id → lastUpdateDateTime of every record, visible or not."""
        return {key: r["lastUpdateDateTime"] for key, r in self.records[stream].items()}

    # -- the source (satisfies sync.inbound.DefenderSource) --------------------------------

    def incidents_page(self, query: PageQuery) -> FakePage:
        return self._page("incidents", query)

    def alerts_page(self, query: PageQuery) -> FakePage:
        return self._page("alerts", query)

    def _page(self, stream: str, query: PageQuery) -> FakePage:
        self.pages += 1
        self.queries.append((stream, query))
        for hook in list(self.hooks):
            hook(self, stream, query)
        self.now += self.tick
        if self.pages in self.fail_at:
            raise Crash(f"page {self.pages} failed")
        rows = [r for r in self.records[stream].values() if self._listed(stream, r, query)]
        rows.sort(key=lambda r: r["id"])
        if self.shuffle_ties is not None:
            self.shuffle_ties.shuffle(rows)
        if self.ordered and query.ordered:
            rows.sort(key=_ticks)  # stable: equal stamps keep the order above
        else:  # the order ignored: newest first (a page of two stamps shows it at once)
            rows.sort(key=_ticks, reverse=True)
        page = rows[query.skip : query.skip + self.page_size]
        self.served[stream].update(r["id"] for r in page)
        return FakePage(
            items=tuple(dict(r) for r in page),
            server_date=self.now,
            more=len(rows) > query.skip + self.page_size,
            count=len(rows) if query.count else None,
        )

    def _listed(self, stream: str, record: dict[str, Any], query: PageQuery) -> bool:
        if self.visible_at.get((stream, record["id"]), self.now) > self.now:
            return False
        ticks = _ticks(record)
        if ticks < query.lower or (ticks == query.lower and not query.lower_inclusive):
            return False
        if query.upper is None:
            return True
        return ticks < query.upper or (ticks == query.upper and query.upper_inclusive)


def _ticks(record: dict[str, Any]) -> int:
    from xdrsync.hub.payload import ticks_from_text

    ticks = ticks_from_text(record["lastUpdateDateTime"])
    assert ticks is not None
    return ticks
