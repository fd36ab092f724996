"""List query options of the Sentinel API: ``$filter``, ``$orderby``, ``$top``, ``$skipToken``.

``$filter`` text is parsed by the Defender emulator's OData parser; this module accepts only the
subset the Sentinel emulator evaluates and answers 400 for the rest:

- comparisons ``properties/<field> <op> <literal>`` (either side), joined by ``and`` / ``or``,
  with parentheses; ``not``, lambdas and functions are refused;
- date-time fields (``createdTimeUtc``, ``lastModifiedTimeUtc``, ...) take ``eq ne gt ge lt le``
  against an instant, bare (``2025-01-01T00:00:00Z``) or quoted;
- ``incidentNumber`` takes the six operators against an integer;
- text fields (``status``, ``severity``, ...) take ``eq`` / ``ne`` against a quoted string,
  compared case-insensitively.

``$skipToken`` is an opaque encoding of an **offset**: every page evaluates the query again over
the records as they are then, so an edit while a client pages shifts records across pages (the
conservative assumption; Microsoft does not document what the token holds).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote, urlencode

from xdrsync.emulator.odata import (
    Compare,
    Logical,
    Node,
    ODataError,
    Path,
    instant_ticks,
    parse_filter,
)
from xdrsync.emulator.odata import Literal as ODataLiteral
from xdrsync.emulator.sentinel.errors import ArmError, bad_request

FieldKind = Literal["time", "int", "text"]
Test = Callable[[Mapping[str, Any]], bool]
T = TypeVar("T")

MAX_TOP: Final = 1000
DEFAULT_TOP: Final = 50  # assumed: Microsoft documents the maximum, not the default
_ORDERED_OPS: Final = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_MIRROR: Final = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}


@dataclass(frozen=True)
class ListSpec:
    """What one collection can be filtered and ordered by (property names under ``properties``)."""

    fields: Mapping[str, FieldKind]
    orderable: frozenset[str]
    default_order: tuple[str, bool]  # (field, descending)

    def canonical(self, name: str) -> str | None:
        folded = name.casefold()
        return next((f for f in self.fields if f.casefold() == folded), None)


INCIDENTS = ListSpec(
    fields={
        "createdTimeUtc": "time",
        "lastModifiedTimeUtc": "time",
        "firstActivityTimeUtc": "time",
        "lastActivityTimeUtc": "time",
        "incidentNumber": "int",
        "status": "text",
        "severity": "text",
        "classification": "text",
        "title": "text",
        "providerName": "text",
        "providerIncidentId": "text",
    },
    orderable=frozenset({"createdTimeUtc", "lastModifiedTimeUtc", "incidentNumber"}),
    default_order=("createdTimeUtc", False),
)
COMMENTS = ListSpec(
    fields={"createdTimeUtc": "time", "lastModifiedTimeUtc": "time"},
    orderable=frozenset({"createdTimeUtc", "lastModifiedTimeUtc"}),
    default_order=("createdTimeUtc", False),
)


@dataclass(frozen=True)
class ListQuery:
    test: Test | None
    order_by: str
    descending: bool
    top: int
    offset: int


# -- $filter -------------------------------------------------------------------------------------


def _unsupported(text: str, what: str) -> ArmError:
    return bad_request(f"Invalid $filter '{text}': {what} is not supported.")


def _field_of(node: Node, spec: ListSpec, text: str) -> tuple[str, FieldKind] | None:
    if not isinstance(node, Path):
        return None
    if node.var is not None or len(node.segments) != 2:
        raise _unsupported(text, "a property other than 'properties/<name>'")
    name = spec.canonical(node.segments[1])
    if name is None:
        raise _unsupported(text, f"filtering on '{'/'.join(node.segments)}'")
    return name, spec.fields[name]


def _compile_compare(node: Compare, spec: ListSpec, text: str) -> Test:
    op, left, right = node.op, node.left, node.right
    target = _field_of(left, spec, text)
    if target is None:
        target, op, right = _field_of(right, spec, text), _MIRROR[op], left
    if target is None or not isinstance(right, ODataLiteral):
        raise _unsupported(text, "a comparison that is not between a property and a literal")
    name, kind = target
    value = right.value
    if kind == "time":
        ticks = value if right.instant else instant_ticks(value) if isinstance(value, str) else None
        if not isinstance(ticks, int):
            raise bad_request(f"Invalid $filter '{text}': '{name}' needs a date-time value.")
        return _ordered(name, op, ticks, instant_ticks)
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or right.instant:
            raise bad_request(f"Invalid $filter '{text}': '{name}' needs an integer value.")
        return _ordered(name, op, value, lambda v: v if isinstance(v, int) else None)
    if not isinstance(value, str) or right.instant:
        raise bad_request(f"Invalid $filter '{text}': '{name}' needs a quoted string value.")
    if op not in ("eq", "ne"):
        raise _unsupported(text, f"operator '{op}' on '{name}'")
    folded = value.casefold()
    equal = op == "eq"

    def text_test(props: Mapping[str, Any]) -> bool:
        current = props.get(name)
        same = isinstance(current, str) and current.casefold() == folded
        return same if equal else not same

    return text_test


def _ordered(name: str, op: str, constant: int, convert: Callable[[Any], int | None]) -> Test:
    def test(props: Mapping[str, Any]) -> bool:
        value = convert(props.get(name))
        if value is None:
            return op == "ne"
        return {
            "eq": value == constant,
            "ne": value != constant,
            "gt": value > constant,
            "ge": value >= constant,
            "lt": value < constant,
            "le": value <= constant,
        }[op]

    return test


def _compile(node: Node, spec: ListSpec, text: str) -> Test:
    if isinstance(node, Logical):
        tests = [_compile(item, spec, text) for item in node.items]
        if node.op == "and":
            return lambda props: all(t(props) for t in tests)
        return lambda props: any(t(props) for t in tests)
    if isinstance(node, Compare) and node.op in _ORDERED_OPS:
        return _compile_compare(node, spec, text)
    raise _unsupported(text, f"the expression {type(node).__name__.lower()}")


def parse_filter_option(text: str, spec: ListSpec) -> Test:
    try:
        root = parse_filter(text, allowed={"properties"}).root
    except ODataError as bad:
        raise bad_request(f"Invalid $filter '{text}': {bad.message}") from None
    return _compile(root, spec, text)


# -- $orderby, $top, $skipToken ------------------------------------------------------------------


def parse_orderby(text: str, spec: ListSpec) -> tuple[str, bool]:
    words = text.split()
    if not words or len(words) > 2 or "," in text:
        raise bad_request(f"Invalid $orderby '{text}': one property and an optional direction.")
    path = words[0]
    direction = words[1].lower() if len(words) == 2 else "asc"
    prefix, _, name = path.partition("/")
    field = spec.canonical(name) if prefix.casefold() == "properties" else None
    if field is None or field not in spec.orderable or direction not in ("asc", "desc"):
        allowed = ", ".join(f"properties/{f}" for f in sorted(spec.orderable))
        raise bad_request(f"Invalid $orderby '{text}': order by one of {allowed}, asc or desc.")
    return field, direction == "desc"


def parse_top(text: str) -> int:
    try:
        top = int(text.strip())
    except ValueError:
        raise bad_request(f"The $top value '{text}' is not a valid integer.") from None
    if top < 1 or top > MAX_TOP:
        raise bad_request(f"The $top value '{text}' is out of range: it must be 1 to {MAX_TOP}.")
    return top


def skip_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def read_skip_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = raw.partition(":")
        offset = int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request(f"The $skipToken '{token}' is not valid.") from None
    if kind != "offset" or offset < 0:
        raise bad_request(f"The $skipToken '{token}' is not valid.")
    return offset


def parse_list_query(params: Mapping[str, str], spec: ListSpec) -> ListQuery:
    """Read the list options from query parameters whose names are already lower-cased."""
    raw_filter = params.get("$filter")
    test = parse_filter_option(raw_filter, spec) if raw_filter and raw_filter.strip() else None
    raw_order = params.get("$orderby")
    order_by, descending = (
        parse_orderby(raw_order, spec) if raw_order and raw_order.strip() else spec.default_order
    )
    top = parse_top(params["$top"]) if "$top" in params else DEFAULT_TOP
    token = params.get("$skiptoken")
    offset = read_skip_token(token) if token else 0
    return ListQuery(test, order_by, descending, top, offset)


# -- evaluation ----------------------------------------------------------------------------------


def select_page(
    records: Iterable[T],
    query: ListQuery,
    spec: ListSpec,
    props: Callable[[T], Mapping[str, Any]],
    sequence: Callable[[T], int],
) -> tuple[list[T], int | None]:
    """One page of ``records`` under ``query``; the offset of the next page, or None if last.

    Ties on the sort property fall back to ``sequence`` (creation order), so the order is total
    and a listing that nothing changes serves every record exactly once across its pages.
    """
    kind = spec.fields[query.order_by]
    field = query.order_by

    def sort_key(record: T) -> tuple[int, int]:
        value = props(record).get(field)
        key = instant_ticks(value) if kind == "time" else value
        return (key if isinstance(key, int) else -1, sequence(record))

    chosen = [r for r in records if query.test is None or query.test(props(r))]
    chosen.sort(key=sort_key, reverse=query.descending)
    page = chosen[query.offset : query.offset + query.top]
    after = query.offset + query.top
    return page, (after if after < len(chosen) else None)


def next_link(base_url: str, params: Sequence[tuple[str, str]], offset: int) -> str:
    """The request's own query options with ``$skipToken`` set for the page at ``offset``."""
    kept = [(k, v) for k, v in params if k.lower() != "$skiptoken"]
    kept.append(("$skipToken", skip_token(offset)))
    return f"{base_url}?{urlencode(kept, quote_via=quote, safe='$/:')}"
