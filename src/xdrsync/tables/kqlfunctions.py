"""Kusto functions duckdb-kql has no mapping for (a rewrite of the compatibility layer).

duckdb-kql has no way to register a function, so the layer writes a call of one of these as
a mark (`sqlpatch.function_mark`): a property bag, `bag_pack("__xdrsync_fn_set_union", a,
"2", b)`, which duckdb-kql translates with each argument turned into JSON, and which
`sqlpatch` then makes the function's SQL. To duckdb-kql the mark is `dynamic`, so a
function whose Kusto type is another is written inside the conversion to that type
(`tolong`, `toguid`): the operators after it see the type Kusto gives. What each answers:

* `set_union(a, b, ...)`, `set_intersect(...)`, `set_difference(...)`: the distinct values,
  in the order they first appear, of all the arrays, of the first array found in all the
  others, of the first array found in none of them; null when an argument is not an array;
* `bag_merge(a, b, ...)`: one bag of all their keys, the leftmost bag's value winning (Kusto's
  rule); a value that is not a bag adds nothing;
* `bag_keys(bag)`: its keys as an array, in the bag's order; null when it is not a bag;
* `string_size(s)`: the bytes of `s` in UTF-8 (`strlen` counts characters);
* `new_guid()`: a random guid for each row;
* `unixtime_seconds_todatetime(x)` (and `_milliseconds_`, `_microseconds_`,
  `_nanoseconds_`): the datetime `x` units after 1970-01-01, to the nearest microsecond (as
  DuckDB keeps them); null outside Kusto's datetimes (years 1 to 9999). Written in KQL
  itself: `iff(..., datetime(1970-01-01) + todouble(x) * 1s, datetime(null))`.

`make_bag()` and `make_bag_if()` in `summarize` are `compat`'s aggregates, written with the
same mark. A query that defines a function of the same name (`let bag_keys = ...`) keeps its
own. Pure, like the rest of the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqltokens import Token
from xdrsync.tables.sqlpatch import MANY_ARGUMENTS, function_mark

#: Each function written as a mark: its arities, and the KQL around the mark that gives
#: Kusto's type (`{}` is the mark; None: the mark itself).
_MARKED: Final[dict[str, tuple[Sequence[int], str | None]]] = {
    "set_union": (MANY_ARGUMENTS, None),
    "set_intersect": (MANY_ARGUMENTS, None),
    "set_difference": (MANY_ARGUMENTS, None),
    "bag_merge": (MANY_ARGUMENTS, None),
    "bag_keys": ((1,), None),
    "string_size": ((1,), "tolong({})"),
    "new_guid": ((0,), "toguid(tostring({}))"),
}
#: unixtime_*_todatetime -> how many of its units make a second, and the KQL that turns a
#: number of them (a real, so that no integer type overflows) into a timespan; 1 nanosecond is
#: a thousandth of a microsecond (KQL's `1tick`, 100 ns, is no whole number of DuckDB's).
_UNIX_TIMES: Final = {
    "unixtime_seconds_todatetime": (1, "* 1s"),
    "unixtime_milliseconds_todatetime": (10**3, "* 1ms"),
    "unixtime_microseconds_todatetime": (10**6, "* 1microsecond"),
    "unixtime_nanoseconds_todatetime": (10**9, "/ 1000.0 * 1microsecond"),
}
#: Kusto's datetimes run from 0001-01-01 to 9999-12-31 (seconds from 1970); a Unix time
#: outside them is null, as in Kusto.
_FIRST_SECOND: Final = -62_135_596_800
_END_SECOND: Final = 253_402_300_800


def missing_functions(tokens: list[Token]) -> list[Token]:
    """Every call of the functions above that the query does not define itself, as a mark
    (or, for the Unix times, as the KQL it means)."""
    if not any(t.text in _MARKED or t.text in _UNIX_TIMES for t in tokens):
        return tokens  # most queries: no pass over them at all
    for name, (arities, wrap) in _MARKED.items():
        if kt.defines(tokens, name):
            continue

        def marked(
            origin: int,
            args: list[list[Token]],
            name: str = name,
            arities: Sequence[int] = arities,
            wrap: str | None = wrap,
        ) -> list[Token] | None:
            texts = [kt.render(arg).strip() for arg in args]
            if texts == [""]:
                texts = []  # `new_guid()`
            if len(texts) not in arities:
                return None  # duckdb-kql names it, as not supported
            if name == "string_size":
                texts = [f"tostring({texts[0]})"]
            made = function_mark(name, texts)
            return kt.fragment(wrap.format(made) if wrap else made, origin)

        tokens = kt.rewrite_calls(tokens, name, None, marked)
    for name, (per_second, unit) in _UNIX_TIMES.items():
        if kt.defines(tokens, name):
            continue

        def since_1970(
            origin: int, args: list[list[Token]], per_second: int = per_second, unit: str = unit
        ) -> list[Token]:
            value = f"todouble({kt.render(args[0]).strip()})"
            first, end = _FIRST_SECOND * per_second, _END_SECOND * per_second
            made = (
                f"iff({value} >= {first}.0 and {value} < {end}.0, "
                f"datetime(1970-01-01) + {value} {unit}, datetime(null))"
            )
            return kt.fragment(made, origin)

        tokens = kt.rewrite_calls(tokens, name, 1, since_1970)
    return tokens


__all__ = ["missing_functions"]
