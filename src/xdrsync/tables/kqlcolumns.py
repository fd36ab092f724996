"""What the compatibility layer (`compat`) knows of the columns an operator reads, and the
rewrite that lists them: `pack_all()` -> `bag_pack("A", A, "B", B, ...)`.

duckdb-kql has no `pack_all()`, `search` or `* has`; each needs the input's columns written
out. They are followed from the table schemas through the operators that keep or name them
(`where`, `take`, `sort`, `top`, `extend a = ...`, `project`, `project-away`, `-keep`,
`-rename`, `-reorder`); after any other (`summarize`, `join`, `mv-expand`, a `let` table) they
are not known here and the query is left for duckdb-kql to report as not supported. Pure,
like the rest of the layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqltokens import KqlLexer, Token

#: Operators whose output has their input's columns.
_KEEPS_COLUMNS: Final = frozenset(
    {
        KqlLexer.WHERE, KqlLexer.FILTER, KqlLexer.TAKE, KqlLexer.LIMIT, KqlLexer.SORT,
        KqlLexer.ORDER, KqlLexer.TOP, KqlLexer.SAMPLE, KqlLexer.SERIALIZE,
        KqlLexer.PROJECTREORDER, KqlLexer.SEARCH,
    }
)  # fmt: skip
#: Types a string test reads as they are; any other is tested on its text.
TEXT_TYPES: Final = frozenset({"string", "dynamic"})
#: A column as `project-away` names it: a name with `*` wildcards, or `['Name']`.
_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_*]+")
_BRACKETED: Final = re.compile(r"\[\s*(['\"])(.*)\1\s*\]", re.DOTALL)

#: Column name -> KQL type (None: computed, type not known).
Columns = dict[str, str | None]


def pack_all(
    tokens: list[Token],
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
) -> list[Token]:
    """`extend p = pack_all()` -> `extend p = bag_pack("A", A, ...)` over the columns of the
    operator's input, nulls and empty values included as Kusto includes them (its
    `pack_all(true)`, which leaves them out, is left as written)."""
    if kt.defines(tokens, "pack_all"):
        return tokens  # the query's own function of that name
    starts = set(kt.statement_starts(tokens))
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, closing, (argument,) in kt.calls(tokens, "pack_all", 1):
        if kt.render(argument).lower() not in ("", "false"):
            continue
        known = columns_before(tokens, i, starts, columns, types)
        if not known:
            continue
        pairs = ", ".join(f"{json.dumps(name)}, {name}" for name in known)
        edits[i] = (closing, kt.fragment(f"bag_pack({pairs})", tokens[i].origin))
    return kt.apply_edits(tokens, edits)


def project_keep(
    tokens: list[Token],
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
) -> list[Token]:
    """`project-keep A, B*` -> `project` of the input's columns it names, in the input's
    order; `project-reorder B, A*` -> `project` of the columns it names first (a wildcard's in
    the input's order), then the others as they were. Where the input's columns are followed
    here; a `project-reorder` sorting what a wildcard matches (`asc`, `desc`, ...) is left as
    written."""
    starts = set(kt.statement_starts(tokens))
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, token in enumerate(tokens):
        if token.kind not in (KqlLexer.PROJECTKEEP, KqlLexer.PROJECTREORDER):
            continue
        known = columns_before(tokens, i, starts, columns, types)
        end = kt.segment_end(tokens, i + 1)
        if not known:
            continue
        if token.kind == KqlLexer.PROJECTKEEP:
            kept = _after(tokens, i, end, known)
            order = list(kept or ())
        else:
            order = _reordered(tokens, i, end, list(known))
        if not order:
            continue
        last = kt.sig_indices(tokens, i, end)[-1]
        edits[i] = (last, kt.fragment("project " + ", ".join(order), token.origin))
    return kt.apply_edits(tokens, edits)


def _reordered(tokens: Sequence[Token], i: int, end: int, names: list[str]) -> list[str]:
    """The columns in `project-reorder`'s order; [] when it cannot be followed."""
    first: list[str] = []
    for a, b in kt.split_top(tokens, i + 1, end):
        pattern = _name_pattern(kt.render(kt.trim(tokens[a:b])))
        if pattern is None:
            return []  # `asc`/`desc` after a wildcard, or not a name
        first.extend(n for n in names if pattern.fullmatch(n) and n not in first)
    return [*first, *(n for n in names if n not in first)]


def columns_before(
    tokens: Sequence[Token],
    i: int,
    starts: set[int],
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
) -> Columns | None:
    """The columns of the input of the operator holding token `i` (`starts`: the query's
    `statement_starts`), or None when they are not followed here."""
    bar = kt.operator_bar(tokens, i)
    if bar is None:
        return None
    start, _ = kt.pipeline_start(tokens, bar, starts)
    segments = kt.split_top(tokens, start, bar, kt.BAR)
    known = _source_columns(tokens, *segments[0], columns, types)
    for a, b in segments[1:]:
        if known is None:
            return None
        known = _after(tokens, a, b, known)
    return known


def table_columns(
    tables: Sequence[str],
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
) -> Columns:
    """The columns of `tables` together (a `union`): a name of a text type in one table and
    of another type in another is tested on its text, and names that differ only in case
    (`ResourceId`, `ResourceID`) are one column, as DuckDB reads them, under the first
    table's spelling."""
    known: Columns = {}
    spelled: dict[str, str] = {}
    for table in tables:
        for column in columns[table]:
            name = spelled.setdefault(column.lower(), column)
            kind = types.get(table, {}).get(column)
            if name not in known or (kind not in TEXT_TYPES and kind is not None):
                known[name] = kind
    return known


def _source_columns(
    tokens: Sequence[Token],
    start: int,
    end: int,
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
) -> Columns | None:
    sig = kt.sig_indices(tokens, start, end)
    if len(sig) == 1 and tokens[sig[0]].text in columns:
        return table_columns([tokens[sig[0]].text], columns, types)
    if sig and tokens[sig[0]].kind == KqlLexer.UNION:
        tables = [tokens[t].text for t in sig[1:] if tokens[t].kind != kt.COMMA]
        if tables and all(t in columns for t in tables):
            return table_columns(tables, columns, types)
    return None  # `withsource=`, `kind=`, bracketed pipelines, `let` tables: not followed


def _after(tokens: Sequence[Token], start: int, end: int, known: Columns) -> Columns | None:
    """The columns after the operator `[start, end)`, given those before it."""
    first = kt.first_sig(tokens, start, end)
    if first is None:
        return None
    kind = tokens[first].kind
    if kind in _KEEPS_COLUMNS:
        return known
    items = [kt.sig_indices(tokens, a, b) for a, b in kt.split_top(tokens, first + 1, end)]
    if kind in (KqlLexer.EXTEND, KqlLexer.PROJECT):
        named: Columns = {} if kind == KqlLexer.PROJECT else dict(known)
        for item in items:
            name = _item_name(tokens, item)
            if name is None:
                return None
            # a bare column keeps its type; anything computed is tested on its text
            named[name] = known.get(name) if len(item) == 1 else None
        return named
    if kind == KqlLexer.PROJECTRENAME:
        renamed = dict(known)
        for item in items:
            if len(item) != 3 or tokens[item[1]].kind != kt.EQUAL:
                return None
            new, old = tokens[item[0]].text, tokens[item[2]].text
            if old not in renamed or not tokens[item[0]].is_word:
                return None
            renamed = {new if k == old else k: v for k, v in renamed.items()}
        return renamed
    if kind in (KqlLexer.PROJECTAWAY, KqlLexer.PROJECTKEEP):
        patterns = [_name_pattern(kt.render(tokens[i] for i in item)) for item in items]
        if any(p is None for p in patterns):
            return None
        keep = kind == KqlLexer.PROJECTKEEP
        return {
            k: v
            for k, v in known.items()
            if any(p.fullmatch(k) for p in patterns if p is not None) == keep
        }
    return None


def _name_pattern(text: str) -> re.Pattern[str] | None:
    """A `project-away`/`-keep` item as a pattern: `*` is its only wildcard."""
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed is not None:
        return re.compile(re.escape(bracketed.group(2)))
    if not _NAME_PATTERN.fullmatch(text):
        return None
    return re.compile(".*".join(re.escape(part) for part in text.split("*")))


def _item_name(tokens: Sequence[Token], item: Sequence[int]) -> str | None:
    """The column an `extend`/`project` item makes: `Name` or `Name = ...` (`$table`, which a
    rewritten `search` projects, included)."""
    if not item or not (tokens[item[0]].is_word or tokens[item[0]].text == "$table"):
        return None
    if len(item) == 1 or tokens[item[1]].kind == kt.EQUAL:
        return tokens[item[0]].text
    return None


__all__ = [
    "TEXT_TYPES",
    "Columns",
    "columns_before",
    "pack_all",
    "project_keep",
    "table_columns",
]
