"""`evaluate pivot` as a `summarize` duckdb-kql translates (a rewrite of the compatibility
layer; duckdb-kql has no pivot plugin).

`T | evaluate pivot(C [, agg(x)] [, col1, ...])` turns each distinct value of C into a
column holding `agg(x)` over its rows (`count()` by default), by the given columns, or by
every column of T but C and x. Which columns that makes depends on the data, as in Kusto:
`pivot_probes` gives the query up to the pivot, which the caller runs to read C's values
(and, without given columns, T's columns: `querying.run`), and the rewrite runs
again with them:

    | extend v = tostring(C) | summarize ["v1"] = aggif(x, v == "v1"), ... by col1, ...

(`countif(...)` for `count()`). The value columns come in name order. A value that names no
column (empty, or with a character that is not printable) is refused, saying so; so is an
aggregate Kusto's pivot does not take, an output schema, and a pivot inside brackets (a
`join` or `union` argument), whose input is no query of its own to probe. Pure, like the
rest of the layer (`compat`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqlbags import PROBE_COLUMN
from xdrsync.tables.kqltokens import Token
from xdrsync.tables.rewritten import RewriteRefusedError

#: Keys of the probes' answers in `bags`: a pivot's values, and the columns of its input.
PIVOT_VALUES: Final = "pivot-values:"
PIVOT_COLUMNS: Final = "pivot-columns:"
#: The column the rewrite reads the pivot column's text from, once (dropped by the summarize).
_TEXT: Final = "__xdrsync_pivot"
#: The aggregates Kusto's pivot takes -> their conditional form (the predicate last).
_CONDITIONAL: Final = {
    "count": "countif",
    "sum": "sumif",
    "avg": "avgif",
    "min": "minif",
    "max": "maxif",
    "dcount": "dcountif",
    "take_any": "take_anyif",
    "stdev": "stdevif",
    "variance": "varianceif",
    "make_list": "make_list_if",
    "make_set": "make_set_if",
    "make_bag": "make_bag_if",
}


@dataclass(frozen=True)
class _Pivot:
    """One `evaluate pivot(...)`: where it is and what it names."""

    evaluate: int  # the `evaluate` token
    last: int  # its closing parenthesis
    column: str
    aggregate: str  # as Kusto names it: `count`, `sum`, ...
    argument: str  # the aggregate's argument ("" for `count()`)
    read: frozenset[str]  # the names the argument reads (kept out of the default columns)
    by: tuple[str, ...]
    where: str  # `evaluate pivot at L:C`, for messages


def _pivots(tokens: Sequence[Token], kql: str) -> list[_Pivot]:
    """Every `evaluate pivot(C [, agg(x)] [, col, ...])` at the end of an operator."""
    found: list[_Pivot] = []
    for s, sig in kt.plugin_calls(tokens, "pivot"):
        line, col = kt.line_col(kql, tokens[s].origin)
        where = f"evaluate pivot at {line}:{col}"
        if tokens[sig[1]].kind != kt.OPENPAREN or kt.closing(tokens, sig[1]) != sig[-1]:
            raise RewriteRefusedError(f"not supported yet: {where} with an output schema")
        args = [kt.trim(tokens[a:b]) for a, b in kt.split_top(tokens, sig[1] + 1, sig[-1])]
        names = [kt.render(arg).strip() for arg in args]
        if not names[0].isidentifier():
            raise RewriteRefusedError(f"{where}: name the column to pivot (extend it first)")
        aggregate, argument, rest = "count", "", names[1:]
        read: frozenset[str] = frozenset()
        if rest and kt.is_call(args[1], 0):
            aggregate = args[1][0].text
            close = kt.closing(args[1], 1)
            argument = kt.render(args[1][2:close]).strip()
            read = frozenset(t.text for t in args[1][2:close] if t.is_word)
            rest = rest[1:]
            if aggregate not in _CONDITIONAL or close != len(args[1]) - 1:
                raise RewriteRefusedError(
                    f"not supported yet: {where} with {names[1]} (it takes "
                    f"{', '.join(f'{a}()' for a in _CONDITIONAL)})"
                )
        if not all(name.isidentifier() for name in rest):
            raise RewriteRefusedError(f"{where}: the columns to keep must be names")
        found.append(_Pivot(s, sig[-1], names[0], aggregate, argument, read, tuple(rest), where))
    return found


def _key(pivot: _Pivot, before: str) -> str:
    """A pivot's identity among a query's (and its probes'): its column and the text of the
    query up to it, which is the same however often the query is rewritten."""
    return f"{pivot.column}:{hashlib.sha256(before.encode()).hexdigest()[:24]}"


def pivot_probes(
    tokens: Sequence[Token], known: Mapping[str, Sequence[tuple[str, str]]], kql: str
) -> list[tuple[str, str]]:
    """For each pivot at the top level of a statement whose values (or, without columns to
    keep, whose input's columns) are not known: (its key, the query up to it made to show
    them: its values as a bag's keys, under `PROBE_COLUMN`; or its input's columns)."""
    probes: list[tuple[str, str]] = []
    for pivot in _pivots(tokens, kql):
        before = kt.query_before(tokens, pivot.evaluate)
        if before is None:
            continue
        key = _key(pivot, before)
        if PIVOT_VALUES + key not in known:
            values = f"bag_pack(tostring({pivot.column}), 0)"
            probes.append((PIVOT_VALUES + key, f"{before}| project {PROBE_COLUMN} = {values}"))
        if not pivot.by and PIVOT_COLUMNS + key not in known:
            probes.append((PIVOT_COLUMNS + key, f"{before}| take 0"))
    return probes


def _name(column: str) -> str:
    """`column` as KQL names it anywhere: bare when it is an identifier, else `["..."]`."""
    return column if column.isidentifier() else f"[{json.dumps(column, ensure_ascii=False)}]"


def pivot(
    tokens: list[Token], known: Mapping[str, Sequence[tuple[str, str]]], kql: str
) -> list[Token]:
    """Each pivot whose values (and columns) are known, as the `summarize` it means."""
    edits: dict[int, tuple[int, list[Token]]] = {}
    for p in _pivots(tokens, kql):
        before = kt.query_before(tokens, p.evaluate)
        if before is None:
            continue
        values = known.get(PIVOT_VALUES + _key(p, before))
        columns = known.get(PIVOT_COLUMNS + _key(p, before))
        if values is None or (not p.by and columns is None):
            continue
        by = p.by or tuple(
            name for name, _ in columns or () if name != p.column and name not in p.read
        )
        items = []
        for value, _ in values:
            if not value or not value.isprintable():
                raise RewriteRefusedError(
                    f"{p.where}: {p.column} holds a value that names no column "
                    f"({value!r}); leave it out first (`where ...`)"
                )
            text = json.dumps(value, ensure_ascii=False)
            test = f"{_TEXT} == {text}"
            args = f"{p.argument}, {test}" if p.argument else test
            items.append(f"[{text}] = {_CONDITIONAL[p.aggregate]}({args})")
        keep = f" by {', '.join(_name(c) for c in by)}" if by else ""
        if not items:  # no rows: Kusto's pivot is the columns kept, without a row
            made = f"summarize{keep} | take 0" if by else "take 0"
        else:
            made = f"extend {_TEXT} = tostring({p.column}) | summarize {', '.join(items)}{keep}"
        edits[p.evaluate] = (p.last, kt.fragment(made, tokens[p.evaluate].origin))
    return kt.apply_edits(tokens, edits)


__all__ = ["PIVOT_COLUMNS", "PIVOT_VALUES", "pivot", "pivot_probes"]
