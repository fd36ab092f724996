"""List-request semantics of ``/security/incidents`` and ``/security/alerts_v2``, as pure functions.

The server hands :func:`list_page` the listable records and the query string; it answers with the
page to serve or raises :class:`ListingError` carrying Graph's status, code and message.

Order. Results are ordered newest first by ``createdDateTime`` (ties: ``id`` descending), or by
``$orderby`` (``createdDateTime``/``lastUpdateDateTime``, ``asc``/``desc``; ties follow the
direction on ``id``).

Paging (``paging="offset"``, the default: Graph's behaviour). ``@odata.nextLink`` repeats the
query options as given and sets ``$skip`` to ``skip + top`` (``...&$top=50&$skip=50``). Every
request evaluates the listing again over the records as they are *now*, so paging is only as
stable as the data: when a record already served is updated meanwhile and leaves the rest of the
listing (under ``$orderby=lastUpdateDateTime asc`` it moves to the end; under a closed
``lastUpdateDateTime`` window it drops out), every record behind it moves one place forward and
the one at the next page boundary is never served; a record inserted ahead of the offset (a new
incident at the head of a newest-first list) makes one record be served twice. ``$count`` is the
count of each request's own evaluation. The ``$skip`` ceiling (500) applies to next links too:
the link that would skip past it is still handed out and the request for it is refused with 400,
so a client that only follows next links stalls after ``500 + top`` records, the stall third
parties report. ``$skiptoken`` is refused in this mode.

Paging (``paging="keyset"``, opt-in, not Graph). ``@odata.nextLink`` instead adds an opaque
``$skiptoken`` holding the sort key of the last record served. A key is not an offset: no record
shifts across a boundary and the ``$skip`` ceiling never stops a client that follows next links;
only a record whose own sort key moves across the cursor may be served twice or not at all. It
exists for measurements (a bare client paging through a large tenant), never for tests of loss.

Assumptions (not documented by Microsoft): system option names are matched case-insensitively;
only ``$``-prefixed names are system options (v1.0 drops the ``$`` only "for a subset of APIs",
not confirmed for these), other parameters are ignored as OData custom options; alerts_v2 serves
1000 records when ``$top`` is absent; the ``$skip`` ceiling of 500 (documented for alerts) also
applies to incidents and to the offsets in next links; record ids in one listing are unique.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import groupby
from typing import Any, Final, Literal
from urllib.parse import quote

from xdrsync.emulator.odata import FilterExpr, ODataError, instant_ticks, parse_filter


@dataclass(frozen=True)
class EntitySetSpec:
    """What differs between the two listable entity sets."""

    name: str  # entity set, as in the context URL: "security/incidents"
    entity_type: str
    max_top: int
    default_top: int  # page size when $top is absent
    max_skip: int
    filterable: frozenset[str]
    expandable: frozenset[str]


_COMMON_FILTERABLE: Final = (
    "assignedTo",
    "classification",
    "createdDateTime",
    "determination",
    "lastUpdateDateTime",
    "severity",
    "status",
)

INCIDENTS: Final = EntitySetSpec(
    name="security/incidents",
    entity_type="microsoft.graph.security.incident",
    max_top=50,
    default_top=50,
    max_skip=500,  # documented for alerts only; assumed for incidents too
    filterable=frozenset(_COMMON_FILTERABLE),
    expandable=frozenset({"alerts"}),
)

ALERTS: Final = EntitySetSpec(
    name="security/alerts_v2",
    entity_type="microsoft.graph.security.alert",
    max_top=1000,
    default_top=1000,  # undocumented; the $top ceiling is the most a page can hold
    max_skip=500,
    filterable=frozenset((*_COMMON_FILTERABLE, "serviceSource", "evidence")),
    expandable=frozenset(),
)

ORDERABLE: Final = ("createdDateTime", "lastUpdateDateTime")
_OPTIONS: Final = ("$filter", "$orderby", "$expand", "$count", "$top", "$skip", "$skiptoken")
_REPEATED: Final = _OPTIONS[:5]  # what a next link carries over from the request, in this order

Paging = Literal["offset", "keyset"]
PAGING_MODES: Final[tuple[Paging, ...]] = ("offset", "keyset")


class ListingError(ValueError):
    """A list request Graph would refuse: HTTP ``status``, Graph error ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad(message: str) -> ListingError:
    return ListingError(400, "BadRequest", message)


@dataclass(frozen=True)
class ListPage:
    """One page: ``items`` are the caller's own record objects (not copies)."""

    items: Sequence[Mapping[str, Any]]
    count: int | None
    next_link: str | None
    context: str


# -- sort keys -------------------------------------------------------------------------------------

_MISSING: Final = -(1 << 62)  # a record without the sort field sorts as the oldest
SortKey = tuple[int, int, str]  # (ticks, numeric id or -1/-2, text id): flat, so sorting is quick
_ID_KEYS: dict[str, tuple[int, str]] = {}


def _id_key(raw: object) -> tuple[int, str]:
    """Numeric ids (incidents) compare as numbers, others (alerts) as text; all totally ordered."""
    if raw is None:
        return (-2, "")
    text = str(raw)
    known = _ID_KEYS.get(text)
    if known is None:
        numeric = text.isascii() and text.isdigit() and len(text) <= 18
        known = (int(text), "") if numeric else (-1, text)
        if len(_ID_KEYS) >= 200_000:
            _ID_KEYS.clear()
        _ID_KEYS[text] = known
    return known


def _sort_key(record: Mapping[str, Any], field: str) -> SortKey:
    ticks = instant_ticks(record.get(field))
    number, text = _id_key(record.get("id"))
    return (_MISSING if ticks is None else ticks, number, text)


@dataclass(frozen=True)
class _Ordered:
    keys: list[SortKey]  # ascending
    rows: list[Mapping[str, Any]]


class _IdentityMemo:
    """A small LRU keyed on the identity of the caller's sequence, so that a list served again
    unchanged (the store hands out the same list until something changes) is not re-sorted or
    re-counted per request. Contract: a sequence passed to list_page is never mutated afterwards;
    a changed listing arrives as a new sequence. Length is checked too, as a cheap guard."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, str], tuple[Sequence[Any], int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, records: Sequence[Any], sub: str, build: Callable[[], Any]) -> Any:
        key = (id(records), sub)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] is records and hit[1] == len(records):
                self._entries.move_to_end(key)
                return hit[2]
        value = build()
        with self._lock:
            self._entries[key] = (records, len(records), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value


_SORTED = _IdentityMemo(16)
_COUNTS = _IdentityMemo(64)


def _ordered(records: Sequence[Mapping[str, Any]], field: str) -> _Ordered:
    def build() -> _Ordered:
        keys = [_sort_key(r, field) for r in records]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        return _Ordered([keys[i] for i in order], [records[i] for i in order])

    result: _Ordered = _SORTED.get(records, field, build)
    return result


def _count(
    records: Sequence[Mapping[str, Any]], spec: EntitySetSpec, flt: FilterExpr | None
) -> int:
    if flt is None:
        return len(records)

    def build() -> int:
        return sum(1 for r in records if flt.matches(r))

    result: int = _COUNTS.get(records, f"{spec.name}\x1f{flt.text}", build)
    return result


@lru_cache(maxsize=256)
def _parse_cached(text: str, allowed: frozenset[str]) -> FilterExpr:
    return parse_filter(text, allowed=allowed)


# -- query options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Query:
    raw: Mapping[str, str]  # the system options as given, keyed by lower-case name
    filter: FilterExpr | None
    field: str
    descending: bool
    top: int
    skip: int
    count: bool
    after: SortKey | None


def _options(query: Mapping[str, str], paging: Paging) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in query.items():
        if not name.startswith("$"):
            continue  # custom query options: ignored, as OData prescribes
        key = name.lower()
        if key not in _OPTIONS or (key == "$skiptoken" and paging != "keyset"):
            raise _bad(f"The query parameter '{name}' is not supported.")
        if key in found:
            raise _bad(
                f"Query option '{key}' was specified more than once, "
                "but it must be specified at most once."
            )
        found[key] = value
    return found


def _non_negative(name: str, raw: str) -> int:
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise _bad(
            f"Invalid value '{raw}' for {name} query option found. "
            f"The {name} query option requires a non-negative integer value."
        )
    return int(text)


def _order(raw: str | None) -> tuple[str, bool]:
    if raw is None:
        return "createdDateTime", True
    items = [item.strip() for item in raw.split(",")]
    words = items[0].split()
    if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
        raise _bad(f"Syntax error at position {len(items[0])} in '{raw}'.")
    by_name = {f.lower(): f for f in ORDERABLE}
    for item in items:
        prop = item.split()[0] if item.split() else item
        if prop.lower() not in by_name:
            raise _bad(f"The property '{prop}' cannot be used in the $orderby query option.")
    if len(items) > 1:
        raise _bad("Only one property can be used in the $orderby query option.")
    return by_name[words[0].lower()], len(words) == 2 and words[1].lower() == "desc"


def _not_allowed(option: str) -> ListingError:
    """OData's (ASP.NET's) 400 for a query option the service does not allow."""
    return _bad(
        f"Query option '{option}' is not allowed. To allow it, set the 'AllowedQueryOptions' "
        "property on EnableQueryAttribute or QueryValidationSettings."
    )


def _check_expand(raw: str, spec: EntitySetSpec) -> None:
    if not spec.expandable:
        raise _not_allowed("Expand")
    allowed = {e.lower() for e in spec.expandable}
    for item in raw.split(","):
        if item.strip().lower() not in allowed:
            raise _bad(
                f"Could not find a property named '{item.strip()}' on type '{spec.entity_type}'."
            )


def _parse_query(query: Mapping[str, str], spec: EntitySetSpec, paging: Paging) -> _Query:
    opts = _options(query, paging)
    top = spec.default_top
    if "$top" in opts:
        top = _non_negative("$top", opts["$top"])
        if top > spec.max_top:
            raise _bad(
                f"The limit of '{spec.max_top}' for Top query has been exceeded. "
                f"The value from the incoming request is '{top}'."
            )
    skip = _non_negative("$skip", opts["$skip"]) if "$skip" in opts else 0
    if skip > spec.max_skip:
        raise _bad(
            f"The limit of '{spec.max_skip}' for Skip query has been exceeded. "
            f"The value from the incoming request is '{skip}'."
        )
    count = False
    if "$count" in opts:
        flag = opts["$count"].strip().lower()
        if flag not in ("true", "false"):
            raise _bad(f"'{opts['$count']}' is not a valid count option.")
        count = flag == "true"
    field, descending = _order(opts.get("$orderby"))
    if "$expand" in opts:
        _check_expand(opts["$expand"], spec)
    flt = None
    if "$filter" in opts:
        try:
            flt = _parse_cached(opts["$filter"], spec.filterable)
        except ODataError as bad:
            raise _bad(bad.message) from None
    after = (
        _read_token(opts["$skiptoken"], _fingerprint(spec, opts)) if "$skiptoken" in opts else None
    )
    return _Query(opts, flt, field, descending, top, skip, count, after)


# -- keyset mode's skip tokens: the last sort key served, bound to its query, tamper-evident --

_TOKEN_KEY: Final = b"xdrsync-emulator-skiptoken-v1"  # integrity, not secrecy
_MAC_BYTES: Final = 12


def _fingerprint(spec: EntitySetSpec, opts: Mapping[str, str]) -> str:
    basis = "\x1f".join((spec.name, opts.get("$orderby", ""), opts.get("$filter", "")))
    return hashlib.blake2b(basis.encode(), digest_size=8).hexdigest()


def _make_token(key: SortKey, fingerprint: str, last_id: object) -> str:
    ticks = key[0]  # the id part is rebuilt from the id itself
    payload = json.dumps(
        [1, fingerprint, ticks, None if last_id is None else str(last_id)], separators=(",", ":")
    ).encode()
    mac = hashlib.blake2b(payload, key=_TOKEN_KEY, digest_size=_MAC_BYTES).digest()
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()


def _read_token(token: str, fingerprint: str) -> SortKey:
    invalid = _bad("The value of the $skiptoken query option is not valid for this request.")
    try:
        blob = base64.urlsafe_b64decode(token.encode("ascii") + b"==")
    except (ValueError, binascii.Error):
        raise invalid from None
    # The decoder skips stray characters and slack bits; only our exact spelling is a token.
    if len(blob) <= _MAC_BYTES or base64.urlsafe_b64encode(blob).rstrip(b"=").decode() != token:
        raise invalid
    payload, mac = blob[:-_MAC_BYTES], blob[-_MAC_BYTES:]
    expected = hashlib.blake2b(payload, key=_TOKEN_KEY, digest_size=_MAC_BYTES).digest()
    if not hmac.compare_digest(mac, expected):
        raise invalid
    version, bound_to, ticks, last_id = json.loads(payload)
    if version != 1 or bound_to != fingerprint:
        raise invalid
    number, text = _id_key(last_id)
    return (ticks, number, text)


# -- the page ------------------------------------------------------------------------------------


def _select(
    ordered: _Ordered, q: _Query, ties: random.Random | None = None
) -> tuple[list[int], bool]:
    """Indices (into ordered.rows) of the page, and whether a later match exists; ``ties``:
    records sharing a stamp come in an order drawn from it, not by id."""
    if q.top == 0:
        return [], False
    if ties is not None:
        return _select_shuffled(ordered, q, ties)
    rows = ordered.rows
    positions = _positions(ordered, q)
    match = q.filter.matches if q.filter is not None else None
    skip = q.skip
    picked: list[int] = []
    for i in positions:
        if match is not None and not match(rows[i]):
            continue
        if skip:
            skip -= 1
            continue
        if len(picked) == q.top:
            return picked, True
        picked.append(i)
    return picked, False


def _positions(ordered: _Ordered, q: _Query) -> range:
    """The indices (into ordered.rows) a page may start from, in the requested order: after
    the keyset token's key, if any."""
    keys = ordered.keys
    if q.descending:
        start = len(keys) - 1 if q.after is None else bisect_left(keys, q.after) - 1
        return range(start, -1, -1)
    start = 0 if q.after is None else bisect_right(keys, q.after)
    return range(start, len(keys))


def _select_shuffled(ordered: _Ordered, q: _Query, ties: random.Random) -> tuple[list[int], bool]:
    """``_select`` with each run of equal stamps in a new order: what OData allows for
    records its ``$orderby`` does not tell apart, so offset pages over a run overlap."""
    keys, rows = ordered.keys, ordered.rows
    match = q.filter.matches if q.filter is not None else None
    matching = [i for i in _positions(ordered, q) if match is None or match(rows[i])]
    shuffled: list[int] = []
    for _, run in groupby(matching, key=lambda i: keys[i][0]):
        members = list(run)
        ties.shuffle(members)
        shuffled.extend(members)
    end = q.skip + q.top
    return shuffled[q.skip : end], len(shuffled) > end


def _context(base_url: str, spec: EntitySetSpec) -> str:
    base = base_url.split("?", 1)[0].rstrip("/")
    suffix = "/" + spec.name
    root = base[: -len(suffix)] if base.endswith(suffix) else base.rsplit("/security/", 1)[0]
    return f"{root}/$metadata#{spec.name}"


_READABLE: Final = "'(),:/"  # left unescaped in next links, as Graph does; all else is quoted


def _next_link(base_url: str, q: _Query, position: tuple[str, str]) -> str:
    """The request's own options (as given, in a fixed order) and the next page's position."""
    params = [(name, q.raw[name]) for name in _REPEATED if name in q.raw]
    params.append(position)
    encoded = "&".join(f"{name}={quote(value, safe=_READABLE)}" for name, value in params)
    return f"{base_url}{'&' if '?' in base_url else '?'}{encoded}"


def list_page(
    records: Sequence[Mapping[str, Any]],
    query: Mapping[str, str],
    *,
    spec: EntitySetSpec,
    base_url: str,
    paging: Paging = "offset",
    ties: random.Random | None = None,
    order_ignored: bool = False,
    order_refused: bool = False,
) -> ListPage:
    """The page a Graph list request answers, or ListingError with Graph's status and message.

    ``records``: every listable record of the entity set (Graph JSON, never mutated after being
    passed); ``query``: the decoded query parameters; ``base_url``: scheme, host and path of the
    request (``http://127.0.0.1:8000/v1.0/security/incidents``), the stem of next links;
    ``paging``: ``"offset"`` (Graph's ``$skip`` next links) or ``"keyset"`` (``$skiptoken``);
    ``ties``: serve records that share a stamp in an order drawn from it (offset paging);
    ``order_ignored``: serve the default order whatever ``$orderby`` asks (offset paging), as
    a service that does not support it may (Microsoft documents no ``$orderby`` for these
    lists, reference §2.8); ``order_refused``: answer a request with ``$orderby`` with
    OData's 400 for an option not allowed, as such a service may instead.
    """
    if paging not in PAGING_MODES:
        raise ValueError(f"unknown paging mode {paging!r}; known: {', '.join(PAGING_MODES)}")
    q = _parse_query(query, spec, paging)
    if order_refused and "$orderby" in q.raw:
        raise _not_allowed("OrderBy")
    if order_ignored and paging == "offset":
        field, descending = _order(None)
        q = replace(q, field=field, descending=descending)
    ordered = _ordered(records, q.field)
    picked, more = _select(ordered, q, ties if paging == "offset" else None)
    items = tuple(ordered.rows[i] for i in picked)
    next_link = None
    if more and picked:
        if paging == "offset":
            # Handed out even past the $skip ceiling: the request for it then answers 400.
            next_link = _next_link(base_url, q, ("$skip", str(q.skip + q.top)))
        else:
            last = picked[-1]
            token = _make_token(ordered.keys[last], _fingerprint(spec, q.raw), items[-1].get("id"))
            next_link = _next_link(base_url, q, ("$skiptoken", token))
    return ListPage(
        items=items,
        count=_count(records, spec, q.filter) if q.count else None,
        next_link=next_link,
        context=_context(base_url, spec),
    )


__all__ = [
    "ALERTS",
    "INCIDENTS",
    "ORDERABLE",
    "PAGING_MODES",
    "EntitySetSpec",
    "ListPage",
    "ListingError",
    "Paging",
    "list_page",
]
