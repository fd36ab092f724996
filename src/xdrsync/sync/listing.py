"""How a stream's records are read from Graph so that paging can never lose one (pure logic).

Graph's ``@odata.nextLink`` pages by offset (``$skip``) and evaluates the listing again for
every page. When a record on an earlier page is updated while a client pages, it leaves its
place (it moves to the end of a ``lastUpdateDateTime`` order, or out of a closed window) and
every record behind it moves one place forward: the record at the page boundary is never
served, and its old ``lastUpdateDateTime`` is behind the watermark the listing leaves. Graph
also refuses ``$skip`` above 500. So listings are never read by following next links.

**Keyset** (Graph honours ``$orderby=lastUpdateDateTime asc``; every page is checked): each
page is asked for as ``lastUpdateDateTime ge C``, where ``C`` is the last stamp read so far.
An update can only move a record *ahead* of the cursor, where the scan reads it again, so no
record is skipped; the records at ``C`` itself are read again (a few duplicates per page,
which the hub's version guard absorbs). Everything older than ``C`` has been read, so the
watermark may follow ``C`` page by page and a crash costs one page. When more records share
one stamp than a page holds, that run is read as a group with ``$skip`` (bounded by Graph's
ceiling) and ``$count``: a pass during which the count stayed the same saw the whole group (a
member leaving is the only way a group changes), otherwise the group is read again. A group
beyond the ceiling is read in parts narrowed by ``createdDateTime`` (then ``severity``,
``status``), each read whole the same way.

**Windows** (the order is not honoured): closed windows ``[lower, upper)`` read by offsets
with ``$count``. A window whose count changed while it was read may have lost a record to a
shift, so it is read again; one holding more than the ``$skip`` ceiling can reach is split,
down to one tick read as a group (``split_scan``). The stream's state moves only when a
window has been read to its end.

**Whole** (one incident's alerts, which may be more than one page): the same keyset read from
the oldest stamp, or, for a source that ignores the order, ``split_scan`` over all time
(``whole_scan``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise
from typing import Any, Final, Protocol

from xdrsync.errors import FatalSyncError, RetriableError, UnreadableError
from xdrsync.hub.payload import (
    TICKS_PER_SECOND,
    ticks_from_datetime,
    ticks_from_text,
    version_text,
)

#: Graph answers 400 for ``$skip`` above this (documented for alerts_v2, seen on incidents).
MAX_SKIP: Final = 500
#: Pages an open scan reads past the server's clock at its start, chasing updates, at most.
CHASE_PAGES: Final = 5
#: Passes over a group or window whose membership changed while it was read, before giving up
#: for this cycle (the state does not move; the next cycle reads it again).
MAX_PASSES: Final = 4
#: Passes over a group or window that held still but whose records Graph served in another
#: order on each request (the order among equal stamps is unspecified), so that no pass saw
#: them all: the passes' records are pooled until every one counted has been seen.
MAX_SHUFFLED_PASSES: Final = 16
#: Passes in a row, all with the same count, that add no record before the count is taken to
#: include records Graph does not list. A pass over a group in a new random order serves
#: about two thirds of it, so a record still missing escapes eight more in about 1 case of
#: 3,000; a stable order re-serves the same records, and stalls at once.
STALLED_PASSES: Final = 8
#: The span a whole listing is read over (``whole_scan``): 1970 to 9999-01-01.
EARLIEST: Final = 0
LATEST: Final = 2_533_707_648_000_000_000


@dataclass(frozen=True)
class PageQuery:
    """One page to ask for: ``lower <(=) lastUpdateDateTime <(=) upper``, bounds in 100-ns
    ticks (Graph's precision); ``upper=None`` reads up to now."""

    lower: int
    upper: int | None = None
    lower_inclusive: bool = True
    upper_inclusive: bool = False
    ordered: bool = True  # ask for lastUpdateDateTime ascending
    skip: int = 0
    count: bool = False
    narrow: str = ""  # further ``$filter`` clauses: one part of a tie (``_group``)

    def __post_init__(self) -> None:
        if self.skip < 0 or self.skip > MAX_SKIP:
            raise ValueError(f"$skip {self.skip} is outside 0..{MAX_SKIP}")

    @property
    def filter_text(self) -> str:
        """The bounds as Graph's ``$filter``, with its seven fractional digits, so a cursor at
        a record's exact stamp neither skips nor repeats a tick."""
        text = f"lastUpdateDateTime {'ge' if self.lower_inclusive else 'gt'} "
        text += str(version_text(self.lower))
        if self.upper is not None:
            text += f" and lastUpdateDateTime {'le' if self.upper_inclusive else 'lt'} "
            text += str(version_text(self.upper))
        if self.narrow:
            text += f" and {self.narrow}"
        return text


class Page(Protocol):
    """One page as a source hands it over."""

    @property
    def items(self) -> Sequence[Any]: ...  # raw records; anything else is quarantined

    @property
    def server_date(self) -> datetime: ...  # the server's clock when it answered

    @property
    def more(self) -> bool: ...  # Graph linked a next page

    @property
    def full(self) -> bool: ...  # it held as many records as asked for: maybe more, link or not

    @property
    def count(self) -> int | None: ...  # ``@odata.count``, when asked for


Fetch = Callable[[PageQuery], Page]


@dataclass(frozen=True)
class Read:
    """A page read by a scan. ``through``: every record stamped before it has been read
    (None: nothing new is proven by this page, e.g. mid-window). ``done``: the scan's last
    page; everything in its range has been read."""

    page: Page
    through: int | None
    done: bool = False


class Unordered(Exception):  # noqa: N818 - a signal to the engine, not an error for users
    """The source does not serve ``lastUpdateDateTime`` ascending: keyset paging is unsound."""


class Unsettled(Exception):  # noqa: N818
    """A window cannot be read reliably as it is (too many records, or membership kept
    changing): read it in smaller windows."""


class Overfull(Unsettled):
    """A window holds more records than ``$skip`` can reach: however long it stays still,
    it can only be read split (``split_scan``)."""


def stamp_of(item: Any) -> int | None:
    """A record's ``lastUpdateDateTime`` in ticks, or None for anything without a readable one
    (such records are quarantined or stored, but never steer paging)."""
    if not isinstance(item, Mapping):
        return None
    text = item.get("lastUpdateDateTime")
    return ticks_from_text(text) if isinstance(text, str) else None


def _stamps(items: Sequence[Any]) -> list[int]:
    return [stamp for stamp in map(stamp_of, items) if stamp is not None]


def _within(stamps: Sequence[int], query: PageQuery) -> list[int]:
    """The stamps within the query's bounds: only they steer paging. A record outside them
    broke the filter's contract; it is still stored (the version guard places it), but a
    cursor it moved could skip records, so it is left out here."""
    return [
        stamp
        for stamp in stamps
        if (stamp > query.lower or (stamp == query.lower and query.lower_inclusive))
        and (
            query.upper is None
            or stamp < query.upper
            or (stamp == query.upper and query.upper_inclusive)
        )
    ]


def _describe(query: PageQuery) -> str:
    """The bounds for a message: the ``$filter``, the second field name dropped."""
    return query.filter_text.replace(" and lastUpdateDateTime ", " and ")


def keyset_scan(fetch: Fetch, lower: int, upper: int | None = None) -> Iterator[Read]:
    """Every record stamped in ``[lower, upper)``, oldest first, by time-boundary paging
    (``upper=None``: to the end, chasing what is updated meanwhile for ``CHASE_PAGES`` at most).

    Raises ``Unordered`` at the first page that is not in ascending order (the pages before
    it were sound and may stay committed).
    """
    cursor, inclusive = lower, True
    # An open read follows records updated while it pages (they move ahead of the cursor),
    # but once the cursor is past the server's clock at the first page (plus its Date's one
    # second of resolution) everything older has been read: on a busy tenant the chase could
    # go on for ever, so it stops after CHASE_PAGES more pages. The watermark stays at or
    # before the first page's clock, so the next cycle reads what is left.
    horizon: int | None = None
    chased = 0
    while True:
        query = PageQuery(cursor, upper, lower_inclusive=inclusive)
        page = fetch(query)
        if upper is None and horizon is None:
            horizon = ticks_from_datetime(page.server_date) + TICKS_PER_SECOND
        stamps = _within(_stamps(page.items), query)
        if any(later < earlier for earlier, later in pairwise(stamps)):
            raise Unordered(f"a page under {_describe(query)} is not in ascending order")
        # An empty page ends it, whatever a link says; a full one does not, link or not (a
        # link left off by a proxy or by Graph must not end the read before its records).
        if not (page.more or page.full) or not page.items:
            yield Read(page, through=upper, done=True)
            return
        if horizon is not None and stamps and stamps[-1] >= horizon:
            chased += 1
            if chased > CHASE_PAGES:
                yield Read(page, through=stamps[-1], done=True)
                return
        if not stamps:
            raise RetriableError(
                f"Graph linked a next page after a page with no dated record "
                f"({_describe(query)}); the window is read again next cycle"
            )
        last = stamps[-1]
        if last > cursor or not inclusive:
            yield Read(page, through=last)
            cursor, inclusive = last, True
            continue
        # A page stamped only ``cursor``, with more to come: more records share the stamp than
        # this page held (Graph may serve short pages), so the run is read as a group.
        yield Read(page, through=cursor)
        yield from _group(fetch, cursor)
        inclusive = False  # the group is read: go on strictly after it


def _group(fetch: Fetch, stamp: int, *, ordered: bool = True) -> Iterator[Read]:
    """Every record stamped exactly ``stamp``, by ``$skip`` passes checked with ``$count``.

    More records may share a stamp than ``$skip`` can reach (Defender may stamp every alert
    of an incident resolved at once alike); failing there would stop the stream at that stamp
    for good. So a part too big to read is split by another property Graph filters on
    (``_Part.split``) until each part is read whole, and the parts' counts are checked to
    cover the whole tie: no record is skipped unseen. Only records that no filter tells apart
    fail (``UnreadableError``), as clearly as before, without asking beyond ``$skip=500``.
    ``ordered``: ask for the order (not of a source that ignores or refuses it).
    """
    parts, counts, split = [_Part()], list[int](), False
    while parts:
        part = parts.pop()
        try:
            counts.append((yield from _read_part(fetch, stamp, part, ordered)))
        except _TooMany as many:
            children = part.split(many.items)
            if not children:
                raise UnreadableError(
                    f"more than {many.read} records share lastUpdateDateTime "
                    f"{version_text(stamp)}{part.described}; Graph cannot page past "
                    f"$skip={MAX_SKIP}, so they cannot all be read"
                ) from None
            parts += reversed(children)
            split = True
    if not split:
        return
    # Every part was read whole; a record in none of them (one without a createdDateTime)
    # would be skipped unseen. Records only leave a past stamp (a late one may still join),
    # so a count above the parts' sum means some were in no part: the tie is read again.
    page = fetch(PageQuery(stamp, stamp, upper_inclusive=True, ordered=ordered, count=True))
    yield Read(page, through=stamp)
    if page.count is None:
        raise FatalSyncError("Graph answered $count=true without @odata.count")
    if page.count > sum(counts):
        raise RetriableError(
            f"{page.count} records share lastUpdateDateTime {version_text(stamp)}, but the "
            f"parts they were read in hold {sum(counts)}; they are read again next cycle"
        )


def _read_part(fetch: Fetch, stamp: int, part: _Part, ordered: bool) -> Generator[Read, None, int]:
    """The records stamped ``stamp`` within ``part``, read whole; returns their count.
    Raises ``_TooMany`` when a pass would need ``$skip`` past Graph's ceiling."""
    passes = _Passes(f"records stamped {version_text(stamp)}{part.described}")
    while True:
        skip, counts, items = 0, set[int | None](), list[Any]()
        while True:
            query = PageQuery(
                stamp,
                stamp,
                upper_inclusive=True,
                ordered=ordered,
                skip=skip,
                count=True,
                narrow=part.narrow,
            )
            page = fetch(query)
            counts.add(page.count)
            passes.saw(page.items)
            items += page.items
            yield Read(page, through=stamp)
            skip += len(page.items)
            if not page.items or not (page.more or (page.full and _short_of_count(page, skip))):
                break
            if skip > MAX_SKIP:
                raise _TooMany(skip, items)
        if None in counts:
            raise FatalSyncError("Graph answered $count=true without @odata.count")
        try:
            if passes.settled(counts):
                (count,) = counts
                assert count is not None  # settled only on one count
                return count
        except Unsettled as unsettled:
            raise RetriableError(f"{unsettled}; they are read again next cycle") from None


class _TooMany(Exception):  # noqa: N818 - a signal to _group
    """A part holds more records than ``$skip`` can reach: ``items``, those a pass read."""

    def __init__(self, read: int, items: Sequence[Any]) -> None:
        super().__init__(read)
        self.read, self.items = read, items


#: Properties Graph filters on for incidents and alerts alike (reference §2.8) whose values
#: are a few enum members: what splits records that share ``createdDateTime`` as well.
_ENUMERABLE: Final = ("severity", "status")


@dataclass(frozen=True)
class _Part:
    """One part of a tie: ``createdDateTime`` in ``[after, before)`` (None: unbounded) and
    ``clauses`` on the ``_ENUMERABLE`` properties in ``split_by``."""

    after: int | None = None
    before: int | None = None
    clauses: tuple[str, ...] = ()
    split_by: tuple[str, ...] = ()

    @property
    def narrow(self) -> str:
        bounds = []
        if self.after is not None:
            bounds.append(f"createdDateTime ge {version_text(self.after)}")
        if self.before is not None:
            bounds.append(f"createdDateTime lt {version_text(self.before)}")
        return " and ".join((*bounds, *self.clauses))

    @property
    def described(self) -> str:
        return f" ({self.narrow})" if self.narrow else ""

    def split(self, items: Sequence[Any]) -> list[_Part]:
        """Parts that together hold exactly this part's records, each smaller; none when no
        property splits it further. By ``createdDateTime`` first, around the median of those
        read (the tick at the median is a part of its own, so every split makes progress);
        a single tick by each enumerable property's values read (``eq`` each, and a part
        for every other value: ``not (... or ...)``, which also holds nulls)."""
        created = sorted(
            tick
            for tick in map(_created, items)
            if tick is not None
            and (self.after is None or tick >= self.after)
            and (self.before is None or tick < self.before)
        )
        if created and (self.after is None or self.before is None or self.before - self.after > 1):
            middle = created[len(created) // 2]
            parts = [
                replace(self, before=middle),
                replace(self, after=middle, before=middle + 1),
                replace(self, after=middle + 1),
            ]
            return [p for p in parts if p.after is None or p.before is None or p.after < p.before]
        for name in _ENUMERABLE:
            values = sorted(
                {
                    value
                    for item in items
                    if isinstance(item, Mapping) and isinstance(value := item.get(name), str)
                }
            )
            if name in self.split_by or not values:
                continue
            each = [f"{name} eq '{value.replace(chr(39), chr(39) * 2)}'" for value in values]
            return [
                replace(self, clauses=(*self.clauses, clause), split_by=(*self.split_by, name))
                for clause in (*each, f"not ({' or '.join(each)})")
            ]
        return []


def _created(item: Any) -> int | None:
    """A record's ``createdDateTime`` in ticks (None: it has no readable one)."""
    text = item.get("createdDateTime") if isinstance(item, Mapping) else None
    return ticks_from_text(text) if isinstance(text, str) else None


class _Passes:
    """The passes of a ``$skip`` read over one group or window: whether they have now seen
    every record the count says there is.

    A pass whose count held and that served that many distinct records settles it. When
    Graph serves equal stamps in another order on each request, a pass sees some records
    twice and others never; the records of passes with the same count are then pooled until
    they make up the count. A count that changes starts the pool again (membership changed:
    what left was read, what joined was not yet). When ``STALLED_PASSES`` passes in a row
    with the same count add no record, Graph lists no more than these and the count is
    taken to include records it does not list (a pass with a steady count was all that was
    asked before this pooling)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._pass: set[str] = set()
        self._unnamed: Counter[str] = Counter()  # this pass's records without an id
        self._pool: set[str] = set()
        self._count: int | None = None
        self._changed = 0
        self._stalled = 0
        self._passes = 0

    def saw(self, items: Sequence[Any]) -> None:
        for item in items:
            key = _identity(item)
            if key is None:  # no id: told apart by content, and identical ones by number
                text = repr(item)
                self._unnamed[text] += 1
                key = f"{self._unnamed[text]}:{text}"
            self._pass.add(key)

    def settled(self, counts: set[int | None]) -> bool:
        """After a pass whose pages gave ``counts``: whether every record is read; raises
        ``Unsettled`` when the passes are spent."""
        self._passes += 1
        seen, self._pass = self._pass, set()
        self._unnamed.clear()
        (count,) = counts if len(counts) == 1 else (None,)
        if count is None or count != self._count:
            if self._count is not None or count is None:
                self._changed += 1
            self._pool, self._count, self._stalled = seen, count, 0
        else:
            before = len(self._pool)
            self._pool |= seen
            self._stalled = 0 if len(self._pool) > before else self._stalled + 1
        if count is not None and (len(self._pool) >= count or self._stalled >= STALLED_PASSES):
            return True
        if self._changed >= MAX_PASSES:
            raise Unsettled(
                f"{self._what} kept changing while they were read ({MAX_PASSES} passes)"
            )
        if self._passes >= MAX_SHUFFLED_PASSES:
            raise Unsettled(
                f"{self._what}: {len(self._pool)} of {count} seen in {self._passes} passes "
                "(Graph served them in another order on each request)"
            )
        return False


def _identity(item: Any) -> str | None:
    """A record's id, which tells it from the others in a pass (None: it has none)."""
    if isinstance(item, Mapping) and isinstance(item.get("id"), str | int):
        return f"id:{item['id']}"
    return None


def _short_of_count(page: Page, skip: int) -> bool:
    """Whether a pass has read fewer records than its page's ``$count`` says there are: after
    a full page without a next link the pass goes on then (the link may have been left off),
    and ends once the count is read (the next ``$skip`` may be past Graph's ceiling)."""
    return page.count is not None and skip < page.count


def window_scan(fetch: Fetch, lower: int, upper: int) -> Iterator[Read]:
    """Every record stamped in ``[lower, upper)`` in any order, by ``$skip`` passes checked
    with ``$count`` (for sources that ignore ``$orderby``). ``through`` is ``upper`` only on
    the page that ends a settled pass. Raises ``Unsettled`` when the window holds more than
    ``$skip`` can reach or keeps changing."""
    passes = _Passes("the window's records")
    while True:
        skip, counts = 0, set[int | None]()
        held: Page | None = None
        while True:
            query = PageQuery(lower, upper, ordered=False, skip=skip, count=True)
            page = fetch(query)
            if page.count is None:
                raise FatalSyncError("Graph answered $count=true without @odata.count")
            if page.count > MAX_SKIP + max(len(page.items), 1):
                raise Overfull(f"{page.count} records: more than $skip can reach")
            counts.add(page.count)
            passes.saw(page.items)
            if held is not None:
                yield Read(held, through=None)
            held = page
            skip += len(page.items)
            if not page.items or not (page.more or (page.full and _short_of_count(page, skip))):
                break
            if skip > MAX_SKIP:
                raise Overfull(f"more than {MAX_SKIP} records")
        settled = passes.settled(counts)
        yield Read(held, through=upper if settled else None, done=settled)
        if settled:
            return


def whole_scan(fetch: Fetch) -> Iterator[Page]:
    """Every page of a listing, however many records it holds (an incident's alerts): by
    time boundary from the oldest stamp (``keyset_scan``); from a source that ignores the
    order, by ``split_scan`` over all time.

    Pages overlap (a record at a page boundary, or in a window read again, comes twice), so
    the caller keeps each record once. Raises ``RetriableError`` when a window keeps
    changing, ``FatalSyncError`` when records of one tick cannot be told apart (``_group``):
    never a partial listing.
    """
    seen: list[int] = []  # every stamp read: where a window too full to read is split first

    def watched(query: PageQuery) -> Page:
        page = fetch(query)
        seen.extend(_within(_stamps(page.items), query))
        return page

    try:
        for read in keyset_scan(watched, EARLIEST):
            yield read.page
            if read.done and read.page.items and (read.page.more or read.page.full):
                # The chase after records updated meanwhile gave up (``CHASE_PAGES``): a
                # stream reads the rest next cycle, but a whole listing would be a part.
                raise RetriableError(
                    "the records kept changing while they were read (an incident's alerts "
                    "updated together, say); they are read again next cycle"
                )
        return
    except Unordered:
        pass  # what was read stays read; the windows read everything again
    for read in split_scan(fetch, EARLIEST, LATEST, seen):
        yield read.page


def split_scan(fetch: Fetch, lower: int, upper: int, seen: Sequence[int] = ()) -> Iterator[Read]:
    """Every record stamped in ``[lower, upper)`` from a source that ignores the order,
    however many share the span (a bulk action stamps hundreds within a second): closed
    windows (``window_scan``), each too full to read, or changing while read, split at the
    middle stamp read in it (``_middle``; ``seen``: stamps read in the span before) until
    ``$skip`` reaches its end, and a single tick read as a group, in parts if need be
    (``_group``). Only the last read is ``done``, with ``through=upper``.

    Raises ``RetriableError`` when a tick keeps changing while it is read and
    ``UnreadableError`` when records of one tick cannot be told apart: never a part of the
    span taken for the whole."""
    held: Read | None = None
    for read in _split_reads(fetch, lower, upper, list(seen)):
        if held is not None:
            yield replace(held, through=None, done=False)
        held = read
    if held is not None:
        yield replace(held, through=upper, done=True)


def _split_reads(fetch: Fetch, lower: int, upper: int, seen: list[int]) -> Iterator[Read]:
    def watched(query: PageQuery) -> Page:
        page = fetch(query)
        seen.extend(_within(_stamps(page.items), query))
        return page

    pending = [(lower, upper)]  # popped from the end: oldest first
    while pending:
        low, high = pending.pop()
        try:
            yield from window_scan(watched, low, high)
        except Unsettled:
            if high - low <= 1:  # one tick: a tie, read in parts if need be
                # Asked without $orderby, as the windows are: this source ignores or refuses it.
                yield from _group(watched, low, ordered=False)
                continue
            middle = _middle(low, high, seen)
            pending += [(middle, high), (low, middle)]


def _middle(lower: int, upper: int, seen: Sequence[int]) -> int:
    """Where to split ``[lower, upper)``: at the median of the stamps read inside it, so each
    half holds about half its records (the midpoint when none was read). A median on
    ``lower`` splits that tick off, to be read as a tie, rather than halving the window
    towards it request by request."""
    inside = sorted(stamp for stamp in seen if lower <= stamp < upper)
    if not inside:
        return (lower + upper) // 2
    return max(inside[len(inside) // 2], lower + 1)


__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_PASSES",
    "MAX_SKIP",
    "Fetch",
    "Overfull",
    "Page",
    "PageQuery",
    "Read",
    "Unordered",
    "Unsettled",
    "keyset_scan",
    "split_scan",
    "stamp_of",
    "whole_scan",
    "window_scan",
]
