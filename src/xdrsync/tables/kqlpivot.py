"""`evaluate pivot` as a `summarize` duckdb-kql translates (a rewrite of the compatibility
layer; duckdb-kql has no pivot plugin).

`T | evaluate pivot(C [, agg(x)] [, col1, ...])` turns each distinct value of C into a
column holding `agg(x)` over its rows (`count()` by default), by the given columns, or by
every column of T but C and x. Which columns that makes depends on the data, as in Kusto:
`pivot_probes` gives the query up to the pivot, which the caller runs to read C's values
(and, without given columns, T's columns: `querying.with_bag_keys`), and the rewrite runs
again with them:

    | summarize ['v1'] = aggif(x, tostring(C) == "v1"), ... by col1, ...

(`countif(...)` for `count()`). The value columns come in name order. A value that names no
column (empty) is refused, saying to filter it out first; so is an aggregate Kusto's pivot
does not take, and an output schema. Pure, like the rest of the layer (`compat`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqlbags import PROBE_COLUMN
from xdrsync.tables.kqltokens import KqlLexer, Token
from xdrsync.tables.rewritten import RewriteRefusedError

#: Keys of the probes' answers in `bags`: a pivot's values, and the columns of its input.
PIVOT_VALUES: Final = "pivot-values:"
PIVOT_COLUMNS: Final = "pivot-columns:"
_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
    by: tuple[str, ...]
    where: str  # `evaluate pivot at L:C`, for messages

    @property
    def key(self) -> str:
        """Its identity among the query's pivots (the query is rewritten again, whole)."""
        return f"{self.where}:{self.column}"


def _pivots(tokens: Sequence[Token], kql: str) -> list[_Pivot]:
    """Every `evaluate pivot(C [, agg(x)] [, col, ...])` at the end of an operator."""
    found: list[_Pivot] = []
    for s, token in enumerate(tokens):
        if token.kind != KqlLexer.EVALUATE:
            continue
        end = kt.segment_end(tokens, s + 1)
        sig = kt.sig_indices(tokens, s + 1, end)
        if len(sig) < 4 or tokens[sig[0]].text != "pivot":
            continue
        line, col = kt.line_col(kql, token.origin)
        where = f"evaluate pivot at {line}:{col}"
        if tokens[sig[1]].kind != kt.OPENPAREN or kt.closing(tokens, sig[1]) != sig[-1]:
            raise RewriteRefusedError(f"not supported yet: {where} with an output schema")
        args = [kt.trim(tokens[a:b]) for a, b in kt.split_top(tokens, sig[1] + 1, sig[-1])]
        names = [kt.render(arg).strip() for arg in args]
        if not names[0].isidentifier():
            raise RewriteRefusedError(f"{where}: name the column to pivot (extend it first)")
        aggregate, argument, rest = "count", "", names[1:]
        if rest and kt.is_call(args[1], 0):
            aggregate = args[1][0].text
            close = kt.closing(args[1], 1)
            argument = kt.render(args[1][2:close]).strip()
            rest = rest[1:]
            if aggregate not in _CONDITIONAL or close != len(args[1]) - 1:
                raise RewriteRefusedError(
                    f"not supported yet: {where} with {names[1]} (it takes "
                    f"{', '.join(f'{a}()' for a in _CONDITIONAL)})"
                )
        if not all(name.isidentifier() for name in rest):
            raise RewriteRefusedError(f"{where}: the columns to keep must be names")
        found.append(_Pivot(s, sig[-1], names[0], aggregate, argument, tuple(rest), where))
    return found


def pivot_probes(
    tokens: Sequence[Token], known: Mapping[str, Sequence[tuple[str, str]]], kql: str
) -> list[tuple[str, str]]:
    """For each pivot at the top level of a statement whose values (or, without columns to
    keep, whose input's columns) are not known: (its key, the query up to it made to show
    them: its values as a bag's keys, under `PROBE_COLUMN`; or its input's columns)."""
    pivots = _pivots(tokens, kql)
    starts = kt.statement_starts(tokens) if pivots else []
    probes: list[tuple[str, str]] = []
    for pivot in pivots:
        bar = kt.prev_sig(tokens, pivot.evaluate)
        start = max((s for s in starts if s <= pivot.evaluate), default=None)
        if bar is None or start is None or tokens[bar].kind != kt.BAR:
            continue
        if kt.open_depth(tokens, start, bar) != 0:
            continue  # inside brackets: the query up to it is no query of its own
        binding = kt.let_binding(tokens, start)
        head = kt.render(tokens[: binding[0] if binding else start])
        body = kt.render(tokens[start:bar])
        if PIVOT_VALUES + pivot.key not in known:
            values = f"bag_pack(tostring({pivot.column}), 0)"
            probes.append(
                (PIVOT_VALUES + pivot.key, f"{head}{body}| project {PROBE_COLUMN} = {values}")
            )
        if not pivot.by and PIVOT_COLUMNS + pivot.key not in known:
            probes.append((PIVOT_COLUMNS + pivot.key, f"{head}{body}| take 0"))
    return probes


def pivot(
    tokens: list[Token], known: Mapping[str, Sequence[tuple[str, str]]], kql: str
) -> list[Token]:
    """Each pivot whose values (and columns) are known, as the `summarize` it means."""
    edits: dict[int, tuple[int, list[Token]]] = {}
    for p in _pivots(tokens, kql):
        values = known.get(PIVOT_VALUES + p.key)
        columns = known.get(PIVOT_COLUMNS + p.key)
        if values is None or (not p.by and columns is None):
            continue
        read = {p.column, *_WORD.findall(p.argument)}  # the columns the values come from
        by = p.by or tuple(name for name, _ in columns or () if name not in read)
        items = []
        for value, _ in values:
            if not value or not value.isprintable() or any(ch in value for ch in "'\\"):
                raise RewriteRefusedError(
                    f"{p.where}: {p.column} holds a value that names no column "
                    f"({value!r}); filter it out first (`where isnotempty({p.column})`)"
                )
            test = f'tostring({p.column}) == "{value}"'
            call = _CONDITIONAL[p.aggregate]
            args = f"{p.argument}, {test}" if p.argument else test
            items.append(f"['{value}'] = {call}({args})")
        if not items:  # no rows: Kusto's pivot is the columns kept, without a row
            text = f"summarize by {', '.join(by)} | take 0" if by else "take 0"
        else:
            text = f"summarize {', '.join(items)}" + (f" by {', '.join(by)}" if by else "")
        edits[p.evaluate] = (p.last, kt.fragment(text, tokens[p.evaluate].origin))
    return kt.apply_edits(tokens, edits)


__all__ = ["PIVOT_COLUMNS", "PIVOT_VALUES", "pivot", "pivot_probes"]
