"""`make-series` as operators duckdb-kql translates (a rewrite of the compatibility layer).

Kusto's `make-series` builds, per group, one array per aggregate over the bins from `from` to
`to`, `default` where a bin has no rows, and the axis array of bin starts. duckdb-kql has no
such operator, so the layer writes it out: a `range` of bins crossed with the groups the input
has, joined to the aggregates of the rows in range, then `make_list` in bin order. Pure, like
the rest of the layer (`compat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqltokens import KqlLexer, Token

#: Names the make-series rewrite introduces; no Sentinel column starts with `__xdrsync`.
_BIN: Final = "__xdrsync_bin"
_KEY: Final = "__xdrsync_key"
_SERIES_SOURCE: Final = "__xdrsync_series_"


@dataclass(frozen=True)
class _Series:
    """One `make-series` the layer can rewrite, as text pieces of the user's query."""

    aggregates: tuple[tuple[str, str, str], ...]  # (name, aggregation, default)
    axis: str
    start: str
    end: str
    step: str
    groups: tuple[str, ...]


def _parse_series(tokens: Sequence[Token], first: int, end: int) -> _Series | None:
    """`make-series [N =] agg [default = d], ... on A from F to T step S [by G, ...]`, or
    None for any other shape (parameters, a missing bound, computed groups)."""
    sig = kt.sig_indices(tokens, first, end)
    marks: dict[int, int] = {}
    depth = 0
    for j in sig:
        kind = tokens[j].kind
        if kind in (kt.OPENPAREN, kt.OPENBRACKET, kt.OPENBRACE):
            depth += 1
        elif kind in (kt.CLOSEPAREN, kt.CLOSEBRACKET, kt.CLOSEBRACE):
            depth -= 1
        elif depth == 0 and kind in (
            KqlLexer.ON,
            KqlLexer.FROM,
            KqlLexer.TO,
            KqlLexer.STEP,
            KqlLexer.BY,
        ):
            if kind in marks:
                return None
            marks[kind] = j
    order = [KqlLexer.ON, KqlLexer.FROM, KqlLexer.TO, KqlLexer.STEP, KqlLexer.BY]
    if any(k not in marks for k in order[:4]):
        return None
    places = [marks[k] for k in order if k in marks]
    if places != sorted(places):
        return None

    def text(a: int, b: int) -> str:
        return kt.render(kt.trim(tokens[a:b]))

    aggregates: list[tuple[str, str, str]] = []
    for a, b in kt.split_top(tokens, first, marks[KqlLexer.ON]):
        item = kt.sig_indices(tokens, a, b)
        if (
            not item
            or tokens[item[0]].kind == KqlLexer.KIND
            or tokens[item[0]].text.startswith("hint")
        ):
            return None
        name = ""
        if len(item) > 2 and tokens[item[0]].is_word and tokens[item[1]].kind == kt.EQUAL:
            name, item = tokens[item[0]].text, item[2:]
        default = "0"
        cut = next((k for k, j in enumerate(item) if tokens[j].kind == KqlLexer.DEFAULT), None)
        if cut is not None:
            rest = item[cut + 1 :]
            if len(rest) < 2 or tokens[rest[0]].kind != kt.EQUAL:
                return None
            default = text(rest[1], rest[-1] + 1)
            item = item[:cut]
        if not item or not kt.is_call(tokens, item[0]):
            return None
        if not name:
            inner = [tokens[j] for j in item[2:-1]]
            if inner and not (len(inner) == 1 and inner[0].is_word):
                return None  # Kusto's derived name for an expression: write it explicitly
            name = f"{tokens[item[0]].text}_{inner[0].text if inner else ''}"
        aggregates.append((name, text(item[0], item[-1] + 1), default))
    axis = kt.sig_indices(tokens, marks[KqlLexer.ON] + 1, marks[KqlLexer.FROM])
    if len(axis) != 1 or not tokens[axis[0]].is_word:
        return None
    groups: list[str] = []
    if KqlLexer.BY in marks:
        for a, b in kt.split_top(tokens, marks[KqlLexer.BY] + 1, end):
            group = kt.sig_indices(tokens, a, b)
            if len(group) != 1 or not tokens[group[0]].is_word:
                return None
            groups.append(tokens[group[0]].text)
    step_end = marks.get(KqlLexer.BY, end)
    return _Series(
        aggregates=tuple(aggregates),
        axis=tokens[axis[0]].text,
        start=text(marks[KqlLexer.FROM] + 1, marks[KqlLexer.TO]),
        end=text(marks[KqlLexer.TO] + 1, marks[KqlLexer.STEP]),
        step=text(marks[KqlLexer.STEP] + 1, step_end),
        groups=tuple(groups),
    )


def _series_pipeline(source: str, series: _Series) -> str:
    """The pipeline that builds `series` from the table named `source`: every bin from start
    to end for every group the input has, joined to the aggregates of the rows in range,
    absent values replaced by their defaults, then each column listed in bin order."""
    s = series
    lo, hi, step = f"({s.start})", f"({s.end})", f"({s.step})"
    groups = ", ".join(s.groups)
    by = f"{groups}, " if s.groups else ""
    # `range` takes its bounds bare: the query guard accepts constant bounds only.
    grid = f"range {_BIN} from {s.start} to {s.end} step {s.step} | where {_BIN} < {hi}"
    if s.groups:
        grid += (
            f" | extend {_KEY} = 1 | join kind=inner ({source} | distinct {groups}"
            f" | extend {_KEY} = 1) on {_KEY} | project {groups}, {_BIN}"
        )
    values = ", ".join(f"{name} = {aggregate}" for name, aggregate, _ in s.aggregates)
    rows = (
        f"{source} | where {s.axis} >= {lo} and {s.axis} < {hi}"
        f" | summarize {values} by {by}{_BIN} = bin_at({s.axis}, {step}, {lo})"
    )
    filled = ", ".join(f"{name} = coalesce({name}, {default})" for name, _, default in s.aggregates)
    lists = ", ".join(f"{name} = make_list({name})" for name, _, _ in s.aggregates)
    tail = f" by {groups}" if s.groups else ""
    return (
        f"{grid} | join kind=leftouter ({rows}) on {by}{_BIN}"
        f" | project {by}{_BIN}, {filled} | order by {_BIN} asc"
        f" | summarize {lists}, {s.axis} = make_list({_BIN}){tail}"
    )


def make_series(tokens: list[Token]) -> list[Token]:
    """`T | make-series ...` -> a pipeline of operators duckdb-kql translates
    (`_series_pipeline`). A source that is more than one name is first bound by a `let`
    placed before the statement, so the pipeline can read it twice."""
    starts = set(kt.statement_starts(tokens))
    edits: dict[int, tuple[int, list[Token]]] = {}
    lets: dict[int, list[str]] = {}
    for i, token in enumerate(tokens):
        if token.kind != KqlLexer.MAKESERIES:
            continue
        bar = kt.prev_sig(tokens, i)
        if bar is None or tokens[bar].kind != kt.BAR:
            continue
        end = kt.segment_end(tokens, i + 1)
        series = _parse_series(tokens, i + 1, end)
        start, in_body = kt.pipeline_start(tokens, bar, starts)
        if series is None or any(start <= e <= end for e in edits):
            continue
        source = kt.sig_indices(tokens, start, bar)
        if len(source) == 1 and tokens[source[0]].is_word:
            name = tokens[source[0]].text
        else:
            if in_body:
                continue
            statement = max((s for s in starts if s <= start), default=0)
            binding = kt.let_binding(tokens, statement)
            statement = binding[0] if binding else statement
            name = f"{_SERIES_SOURCE}{len(edits)}"
            lets.setdefault(statement, []).append(
                f"let {name} = {kt.render(kt.trim(tokens[start:bar]))};\n"
            )
        edits[start] = (end - 1, kt.fragment(_series_pipeline(name, series), token.origin))
    for at, texts in lets.items():
        lifted = [f for text in texts for f in kt.fragment(text, tokens[at].origin)]
        last, new = edits.get(at, (at, [tokens[at]]))
        edits[at] = (last, [*lifted, *new])
    return kt.apply_edits(tokens, edits)


# -- mv-expand of an unnamed expression ---------------------------------------------------------


__all__ = ["make_series"]
