"""Calls of Kusto functions duckdb-kql has no mapping for, rewritten (a rewrite of the
compatibility layer, pure like the rest of it).

* each scalar function `functionsql` lists (`set_union`, `bag_keys`, `string_size`, ...) ->
  its mark (`sqlpatch.function_mark`), typed for duckdb-kql as `iff(true, <mark>,
  long(null))` when Kusto's type is not `dynamic`; `sqlpatch` makes the mark the function's
  SQL after translation. (`make_bag()` and `make_bag_if()`, aggregates, are
  `compat`'s: they are named as Kusto names them.) A call with a number of arguments Kusto
  does not take is left as written, for duckdb-kql to name;
* `unixtime_seconds_todatetime(x)` (and `_milliseconds_`, `_microseconds_`,
  `_nanoseconds_`) -> `iff(..., datetime(1970-01-01) + todouble(x) * 1s, datetime(null))`:
  the datetime `x` units after 1970, to the nearest microsecond (as DuckDB keeps them), null
  outside Kusto's datetimes (years 1 to 9999);
* `make_datetime(y, m, d, h, mi)` -> `make_datetime(y, m, d, h, mi, 0)` (duckdb-kql takes three
  or six parts; Kusto's five-part form has no seconds).

A query that defines a function of the same name (`let bag_keys = ...`) keeps its own.
"""

from __future__ import annotations

from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.functionsql import FUNCTIONS, Function
from xdrsync.tables.kqltokens import Token
from xdrsync.tables.sqlpatch import function_mark

#: The functions written as a mark here (not the aggregates).
_MARKED: Final = {name: f for name, f in FUNCTIONS.items() if f.scalar}
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
    named = {t.text for t in tokens if t.is_word}
    if "make_datetime" in named and not kt.defines(tokens, "make_datetime"):

        def with_seconds(origin: int, args: list[list[Token]]) -> list[Token]:
            parts = [kt.render(arg).strip() for arg in args]
            return kt.fragment(f"make_datetime({', '.join([*parts, '0'])})", origin)

        tokens = kt.rewrite_calls(tokens, "make_datetime", 5, with_seconds)
    if named.isdisjoint(_MARKED) and named.isdisjoint(_UNIX_TIMES):
        return tokens  # most queries: no pass over them at all
    for name, function in _MARKED.items():
        if name not in named or kt.defines(tokens, name):
            continue  # a pass over the tokens only for the functions the query names

        def marked(
            origin: int, args: list[list[Token]], name: str = name, function: Function = function
        ) -> list[Token] | None:
            texts = [kt.render(arg).strip() for arg in args]
            if texts == [""]:
                texts = []  # `new_guid()`
            if len(texts) not in function.arities:
                return None  # duckdb-kql names it, as not supported
            made = function_mark(name, texts)
            returns = function.returns
            if returns is not None:  # typed for duckdb-kql, the mark written once
                # KQL has no null string: its empty one types the `iff` as well.
                other = '""' if returns == "string" else f"{returns}(null)"
                made = f"iff(true, {made}, {other})"
            return kt.fragment(made, origin)

        tokens = kt.rewrite_calls(tokens, name, None, marked)
    for name, (per_second, unit) in _UNIX_TIMES.items():
        if name not in named or kt.defines(tokens, name):
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
