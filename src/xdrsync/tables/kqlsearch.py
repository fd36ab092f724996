"""`search` and `where * has` as the `union` and `where` duckdb-kql translates (a rewrite of
the compatibility layer, `compat`).

Kusto's `search` looks for a term in every column of the tables it reads, and `* has "x"` in
every column of its input. duckdb-kql has neither, so the layer writes the columns out: each
term becomes one test per column joined by `or`, over the columns the input is known to have.
A term's asterisks choose the test, as Kusto's search predicate syntax does: `"x"` is `has`,
`"x*"` `hasprefix`, `"*x"` `hassuffix`, `"*x*"` `contains`, and an asterisk inside (`"x*y"`)
a case-insensitive `matches regex`; `kind=case_sensitive` makes each the `_cs` test (and the
regex case-sensitive). `Column:"x"` tests that column alone; every other predicate (`C ==
"x"`, `C > 10`, `and`, `or`, brackets) is kept as written.

The input's columns are those `kqlcolumns` follows; where it cannot, the query is left for
duckdb-kql to report as not supported. Searching tables (`search "x"`,
`search in (T1, T2) "x"`, `T | search "x"`) gives the `$table` column, the name of the table
each row comes from, as Kusto does. Pure, like the rest of the layer.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqlcolumns import TEXT_TYPES, input_columns, operator_bar, table_columns
from xdrsync.tables.kqltokens import KqlLexer, Token

#: The column naming each row's table, as Kusto names it.
SOURCE_COLUMN: Final = "$table"
_REGEX_SPECIAL: Final = frozenset("\\.^$|?*+()[]{}")


def search(
    tokens: list[Token],
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
) -> list[Token]:
    """`where * has "x"` and every form of `search`, rewritten where the columns are known."""
    tokens = _star_has(tokens, columns, types)
    starts = set(kt.statement_starts(tokens))
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, token in enumerate(tokens):
        if token.kind != KqlLexer.SEARCH or any(a <= i <= b for a, (b, _) in edits.items()):
            continue
        bar = kt.prev_sig(tokens, i)
        if bar is not None and tokens[bar].kind == kt.BAR:
            _piped_search(tokens, i, bar, starts, columns, types, edits)
        else:
            _table_search(tokens, i, columns, types, edits)
    return kt.apply_edits(tokens, edits)


# -- the forms --------------------------------------------------------------------------------


def _star_has(
    tokens: list[Token],
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
) -> list[Token]:
    """`where * has "x"` -> `where (A has "x" or tostring(B) has "x" ...)`."""
    starts = set(kt.statement_starts(tokens))
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, token in enumerate(tokens):
        if token.kind != KqlLexer.ASTERISK:
            continue
        op = kt.next_sig(tokens, i)
        value = kt.next_sig(tokens, op) if op is not None else None
        before = kt.prev_sig(tokens, i)
        if (
            op is None
            or value is None
            or tokens[op].kind != KqlLexer.HAS
            or tokens[value].kind != kt.STRING
            or before is None
            or tokens[before].kind
            not in (KqlLexer.WHERE, KqlLexer.FILTER, KqlLexer.AND, KqlLexer.OR, kt.OPENPAREN)
        ):
            continue
        bar = operator_bar(tokens, i)
        if bar is None:
            continue
        start, _ = kt.pipeline_start(tokens, bar, starts)
        known = input_columns(tokens, start, bar, columns, types)
        if known is None:
            continue
        test = _any_column(known, "has", tokens[value].text)
        edits[i] = (value, kt.fragment(test, token.origin))
    return kt.apply_edits(tokens, edits)


def _piped_search(
    tokens: list[Token],
    i: int,
    bar: int,
    starts: set[int],
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
    edits: dict[int, tuple[int, list[Token]]],
) -> None:
    """`T | search P` -> `T | where P'`, and `$table` first when T is a table's name."""
    end = kt.segment_end(tokens, i + 1)
    begin, sensitive = _kind(tokens, i + 1, end)
    if begin is None or tokens[begin].kind == KqlLexer.IN:  # `in` goes with no input
        return
    start, _ = kt.pipeline_start(tokens, bar, starts)
    known = input_columns(tokens, start, bar, columns, types)
    if not known:
        return
    predicate = _predicate(tokens, begin, end, known, sensitive)
    if predicate is None:
        return
    text = f"where {predicate}"
    source = kt.sig_indices(tokens, start, bar)
    if len(source) == 1 and tokens[source[0]].text in columns:
        text += f" | {_labelled(tokens[source[0]].text, list(known))}"
    edits[i] = (end - 1, kt.fragment(f"{text} ", tokens[i].origin))


def _table_search(
    tokens: list[Token],
    i: int,
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
    edits: dict[int, tuple[int, list[Token]]],
) -> None:
    """`search [in (T, ...)] P` -> `union (T | where P' | project $table = "T", ...), ...`
    over every table of the workspace without `in`. Each table is searched on its own
    columns: a `where` after a `union` of tables whose columns differ only in case
    (`ResourceId`, `ResourceID`) is refused by duckdb-kql."""
    end = kt.segment_end(tokens, i + 1)
    begin, sensitive = _kind(tokens, i + 1, end)
    if begin is None:
        return
    tables: list[str] = list(columns)
    if tokens[begin].kind == KqlLexer.IN:
        listed = _table_list(tokens, begin, end, columns)
        if listed is None:
            return
        tables, begin = listed
    # Across tables, a table without a column the predicate names cannot match it: it is
    # left out (unless every table is, when the query's error names the column).
    named = _names_read(tokens, begin, end, {c for t in tables for c in columns[t]})
    tables = [t for t in tables if named <= set(columns[t])] or tables
    branches: list[str] = []
    for table in tables:
        known = table_columns([table], columns, types)
        predicate = _predicate(tokens, begin, end, known, sensitive)
        if predicate is None:
            return
        branches.append(f"{table} | where {predicate} | {_labelled(table, list(known))}")
    text = branches[0] if len(branches) == 1 else "union " + ", ".join(f"({b})" for b in branches)
    edits[i] = (end - 1, kt.fragment(f"{text} ", tokens[i].origin))


def _labelled(table: str, names: Sequence[str]) -> str:
    """The `project` that puts `$table` first, as Kusto's `search` does."""
    return f'project {SOURCE_COLUMN} = "{table}", {", ".join(names)}'


# -- the pieces -------------------------------------------------------------------------------


def _kind(tokens: Sequence[Token], start: int, end: int) -> tuple[int | None, bool]:
    """After `search`: where the rest begins, past `kind=...`, and whether it asks for case."""
    first = kt.first_sig(tokens, start, end)
    if first is None or tokens[first].kind != KqlLexer.KIND:
        return first, False
    equal = kt.next_sig(tokens, first)
    value = kt.next_sig(tokens, equal) if equal is not None else None
    if equal is None or value is None or tokens[equal].kind != kt.EQUAL:
        return None, False
    kind = tokens[value].text.lower()
    if kind not in ("default", "case_insensitive", "case_sensitive"):
        return None, False
    rest = kt.next_sig(tokens, value)
    return (rest if rest is not None and rest < end else None), kind == "case_sensitive"


def _table_list(
    tokens: Sequence[Token], at: int, end: int, columns: Mapping[str, Sequence[str]]
) -> tuple[list[str], int] | None:
    """`in (T1, Security*)`: the workspace tables it names, and where the predicate begins."""
    opening = kt.next_sig(tokens, at)
    if opening is None or tokens[opening].kind != kt.OPENPAREN:
        return None
    closing = kt.closing(tokens, opening)
    tables: list[str] = []
    for a, b in kt.split_top(tokens, opening + 1, closing):
        name = kt.render(kt.trim(tokens[a:b]))
        matched = [t for t in columns if fnmatch.fnmatchcase(t, name)]
        if not matched:
            return None  # not a workspace table: duckdb-kql says so
        tables.extend(t for t in matched if t not in tables)
    rest = kt.next_sig(tokens, closing)
    return (tables, rest) if rest is not None and rest < end else None


def _predicate(
    tokens: Sequence[Token],
    start: int,
    end: int,
    known: Mapping[str, str | None],
    sensitive: bool,
) -> str | None:
    """The search predicate `[start, end)` as a `where` predicate over the `known` columns."""
    out: list[str] = []
    grouping: set[int] = set()
    i = start
    while i < end:
        token = tokens[i]
        before = kt.prev_sig(tokens, i)
        before = before if before is not None and before >= start else None
        after = kt.next_sig(tokens, i)
        after = after if after is not None and after < end else None
        if token.kind == kt.OPENPAREN and _term_position(tokens, before, grouping):
            grouping.add(i)
        if (
            token.kind == kt.STRING
            and _term_position(tokens, before, grouping)
            and (after is None or tokens[after].kind in (KqlLexer.AND, KqlLexer.OR, kt.CLOSEPAREN))
        ):
            test = _term(token.text, sensitive, known)
            if test is None:
                return None
            out.append(test)
            i += 1
            continue
        if (
            token.kind != kt.STRING
            and token.is_word
            and after is not None
            and tokens[after].kind == kt.COLON
            and _term_position(tokens, before, grouping)
        ):
            value = kt.next_sig(tokens, after)
            if value is None or value >= end or tokens[value].kind != kt.STRING:
                return None
            test = _term(tokens[value].text, sensitive, {token.text: known.get(token.text)})
            if test is None:
                return None
            out.append(test)
            i = value + 1
            continue
        out.append(token.text)
        i += 1
    return "".join(out).strip()


def _names_read(tokens: Sequence[Token], start: int, end: int, column_names: set[str]) -> set[str]:
    """The names a predicate reads as columns: identifiers (and keywords spelled as a
    column, `Type`) that are not calls or members."""
    return {
        tokens[j].text
        for j in kt.sig_indices(tokens, start, end)
        if (
            tokens[j].kind == kt.IDENTIFIER
            or (tokens[j].is_word and tokens[j].text in column_names)
        )
        and not kt.is_call(tokens, j)
        and not kt.after_dot(tokens, j)
    }


def _term_position(tokens: Sequence[Token], before: int | None, grouping: set[int]) -> bool:
    """Whether a term may stand here: first, or after `and`, `or`, or a grouping bracket."""
    return (
        before is None or tokens[before].kind in (KqlLexer.AND, KqlLexer.OR) or before in grouping
    )


def _term(literal: str, sensitive: bool, known: Mapping[str, str | None]) -> str | None:
    """One search term over the `known` columns, its test chosen by its asterisks."""
    value = kt.string_value(Token(kt.STRING, literal, 0))
    if value is None:  # escapes or a verbatim literal: tested as written
        return _any_column(known, "has_cs" if sensitive else "has", literal)
    core = value.strip("*")
    if not core:
        return "true"
    cs = "_cs" if sensitive else ""
    if "*" in core:
        pattern = ".*".join(_regex_escaped(part) for part in core.split("*"))
        pattern = pattern if sensitive else f"(?i){pattern}"
        return _any_column(known, "matches regex", '@"' + pattern.replace('"', '""') + '"')
    quoted = json.dumps(core, ensure_ascii=False)
    if value.startswith("*") and value.endswith("*"):
        return _any_column(known, f"contains{cs}", quoted)
    if value.startswith("*"):
        return _any_column(known, f"hassuffix{cs}", quoted)
    if value.endswith("*"):
        return _any_column(known, f"hasprefix{cs}", quoted)
    return _any_column(known, f"has{cs}", quoted)


def _regex_escaped(text: str) -> str:
    return "".join(f"\\{ch}" if ch in _REGEX_SPECIAL else ch for ch in text)


def _any_column(known: Mapping[str, str | None], op: str, literal: str) -> str:
    """`(A op literal or tostring(B) op literal ...)`: a column not of a text type (or of
    a type not known) is tested on its text, as Kusto tests it."""
    if not known:
        return "false"
    # Names that differ only in case (`ResourceId`, `ResourceID` of two tables) are one
    # column to DuckDB, holding both tables' values: one test reads them all.
    folded: dict[str, str] = {}
    for name, kind in known.items():
        folded.setdefault(name.lower(), name if kind in TEXT_TYPES else f"tostring({name})")
    tests = [f"{operand} {op} {literal}" for operand in folded.values()]
    return "(" + " or ".join(tests) + ")"


__all__ = ["SOURCE_COLUMN", "search"]
