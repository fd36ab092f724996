"""`search` and `where * has` as the `union` and `where` duckdb-kql translates (a rewrite of
the compatibility layer, `compat`).

Kusto's `search` looks for a term in every column of the tables it reads, and `* has "x"` in
every column of its input. duckdb-kql has neither, so the layer writes the columns out: each
term becomes one test per column joined by `or`. A term's asterisks choose the test, as
Kusto's search predicate syntax does: `"x"` is `has`, `"x*"` `hasprefix`, `"*x"`
`hassuffix`, `"*x*"` `contains`, an asterisk inside (`"x*y"`) `matches regex @"\\bx.*y\\b"`,
and `*` alone every row; `kind=case_sensitive` makes each the `_cs` test (and the regex
case-sensitive). `Column:"x"` tests that column alone; every other predicate (`C == "x"`,
`C > 10`, `and`, `or`, `not(...)`, brackets) is kept as written.

A search of tables (`search "x"`, `search in (T1, Security*) "x"`) is a `union` of one
pipeline per table, `T | where ... | project $table = "T", ...`: each table is tested on its
own columns (a column the predicate names that the table lacks is empty there, as a `union`
leaves it), and `$table`, the table each row comes from, comes first, as in Kusto; `T |
search "x"` with T a table's name gives it too. The input's columns otherwise are those
`kqlcolumns` follows; where it cannot, the query is left for duckdb-kql to report as not
supported. Pure, like the rest of the layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqlcolumns import TEXT_TYPES, Columns, columns_before, table_columns
from xdrsync.tables.kqltokens import KqlLexer, Token

#: The column naming each row's table, as Kusto names it.
SOURCE_COLUMN: Final = "$table"
_REGEX_SPECIAL: Final = frozenset("\\.^$|?*+()[]{}")
_REGEX_CONTROLS: Final = {"\n": r"\n", "\r": r"\r", "\t": r"\t"}
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
#: The escapes a term's literal is read with (as duckdb-kql reads them); any other is not
#: read, and the term is tested as written.
_ESCAPED: Final = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


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
        # the operator where a pipeline starts or goes on; elsewhere a column's name
        before = kt.prev_sig(tokens, i)
        if before is not None and tokens[before].kind == kt.BAR:
            _piped_search(tokens, i, starts, columns, types, edits)
        elif i in starts or (
            before is not None and tokens[before].kind in (kt.OPENPAREN, kt.OPENBRACE)
        ):
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
        known = columns_before(tokens, i, starts, columns, types)
        if not known:
            continue
        test = _any_column(known, "has", tokens[value].text)
        edits[i] = (value, kt.fragment(test, token.origin))
    return kt.apply_edits(tokens, edits)


def _piped_search(
    tokens: list[Token],
    i: int,
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
    known = columns_before(tokens, i, starts, columns, types)
    if not known:
        return
    predicate = _predicate(tokens, begin, end, known, sensitive)
    if predicate is None:
        return
    text = f"where {predicate}"
    bar = kt.prev_sig(tokens, i)
    assert bar is not None  # a piped search
    start, _ = kt.pipeline_start(tokens, bar, starts)
    source = kt.sig_indices(tokens, start, bar)
    if len(source) == 1 and tokens[source[0]].text in columns:
        table = tokens[source[0]].text
        text += f" | {_labelled(table, columns[table], known)}"
    edits[i] = (end - 1, kt.fragment(f"{text} ", tokens[i].origin))


def _table_search(
    tokens: list[Token],
    i: int,
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
    edits: dict[int, tuple[int, list[Token]]],
) -> None:
    """`search [in (T, ...)] P` -> `union (T | where P' | project $table = "T", ...), ...`
    over every table of the workspace without `in`. Each table is tested on its own columns:
    duckdb-kql refuses a `where` after a `union` of tables whose columns differ only in case
    (`ResourceId`, `ResourceID`), so each table's pipeline projects them under one spelling,
    and the union's result takes further operators."""
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
    every = table_columns(tables, columns, types)
    spellings: dict[str, set[str]] = {}
    for table in tables:
        for column in columns[table]:
            spellings.setdefault(column.lower(), set()).add(column)
    named = _names_read(tokens, begin, end, spellings)
    if any(len(spellings[name.lower()]) > 1 for name in named):
        return  # `ResourceId` and `ResourceID` are one column to DuckDB: not searched apart
    branches: list[str] = []
    for table in tables:
        known = table_columns([table], columns, types)
        # A column the predicate names that this table lacks is empty here, as a `union`
        # leaves it: "" for a string (Kusto has no null string), null of its type otherwise.
        missing = [name for name in named if name not in known]
        predicate = _predicate(tokens, begin, end, known, sensitive)
        if predicate is None:
            return
        empty = ", ".join(f"{m} = {_empty(every.get(m))}" for m in missing)
        nulls = f"extend {empty} | " if missing else ""
        labelled = _labelled(table, columns[table], every)
        branches.append(f"{table} | {nulls}where {predicate} | {labelled}")
    text = branches[0] if len(branches) == 1 else "union " + ", ".join(f"({b})" for b in branches)
    edits[i] = (end - 1, kt.fragment(f"{text} ", tokens[i].origin))


# -- the pieces -------------------------------------------------------------------------------


def _labelled(table: str, own: Sequence[str], spelled: Columns) -> str:
    """The `project` that puts `$table` first, as Kusto's `search` does, and names each of
    the table's columns as `spelled` does (one spelling for names differing only in case)."""
    names = {name.lower(): name for name in spelled}
    listed = [
        column
        if names.get(column.lower(), column) == column
        else f"{names[column.lower()]} = {column}"
        for column in own
    ]
    return f'project {SOURCE_COLUMN} = "{table}", {", ".join(listed)}'


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
    """`in (T1, Security*)`: the workspace tables it names (`*` the only wildcard), and where
    the predicate begins."""
    opening = kt.next_sig(tokens, at)
    if opening is None or tokens[opening].kind != kt.OPENPAREN:
        return None
    closing = kt.closing(tokens, opening)
    tables: list[str] = []
    for a, b in kt.split_top(tokens, opening + 1, closing):
        name = kt.render(kt.trim(tokens[a:b]))
        pattern = re.compile(".*".join(re.escape(part) for part in name.split("*")))
        matched = [t for t in columns if pattern.fullmatch(t)]
        if not matched:
            return None  # not a workspace table: duckdb-kql says so
        tables.extend(t for t in matched if t not in tables)
    rest = kt.next_sig(tokens, closing)
    return (tables, rest) if rest is not None and rest < end else None


def _predicate(
    tokens: Sequence[Token], start: int, end: int, known: Columns, sensitive: bool
) -> str | None:
    """The search predicate `[start, end)` as a `where` predicate over the `known` columns."""
    out: list[str] = []
    grouping: set[int] = set()
    i = start
    while i < end:
        token = tokens[i]
        if token.hidden:
            out.append(" " if token.kind == kt.COMMENT else token.text)
            i += 1
            continue
        before = kt.prev_sig(tokens, i)
        before = before if before is not None and before >= start else None
        after = kt.next_sig(tokens, i)
        after = after if after is not None and after < end else None
        alone = after is None or tokens[after].kind in (KqlLexer.AND, KqlLexer.OR, kt.CLOSEPAREN)
        term = _term_position(tokens, before, grouping)
        if token.kind == kt.OPENPAREN and (term or _after_not(tokens, before, start, grouping)):
            grouping.add(i)
        if term and alone and token.kind in (kt.STRING, KqlLexer.ASTERISK):
            test = (
                "true" if token.kind == KqlLexer.ASTERISK else _term(token.text, sensitive, known)
            )
            out.append(test)
            i += 1
            continue
        if term and token.is_word and after is not None and tokens[after].kind == kt.COLON:
            value = kt.next_sig(tokens, after)
            if value is None or value >= end or tokens[value].kind != kt.STRING:
                return None
            out.append(_term(tokens[value].text, sensitive, {token.text: known.get(token.text)}))
            i = value + 1
            continue
        out.append(token.text)
        i += 1
    return "".join(out).strip()


def _term_position(tokens: Sequence[Token], before: int | None, grouping: set[int]) -> bool:
    """Whether a term may stand here: first, or after `and`, `or`, or a grouping bracket."""
    return (
        before is None or tokens[before].kind in (KqlLexer.AND, KqlLexer.OR) or before in grouping
    )


def _after_not(tokens: Sequence[Token], before: int | None, start: int, grouping: set[int]) -> bool:
    """Whether a bracket opens `not(...)` where a term may stand (its inside holds terms)."""
    if before is None or tokens[before].lower() != "not":
        return False
    earlier = kt.prev_sig(tokens, before)
    return _term_position(
        tokens, earlier if earlier is not None and earlier >= start else None, grouping
    )


def _empty(kind: str | None) -> str:
    """The value of a column a table lacks, as a `union` gives it."""
    if kind == "string":
        return '""'
    return (
        f"{kind}(null)" if kind in ("int", "long", "real", "bool", "datetime") else "dynamic(null)"
    )


def _names_read(
    tokens: Sequence[Token], start: int, end: int, spellings: Mapping[str, set[str]]
) -> list[str]:
    """The columns a predicate names, as it spells them (`spellings`: the tables' columns by
    their lower-case name; a `let` name or a function is not one)."""
    names: list[str] = []
    for j in kt.sig_indices(tokens, start, end):
        text = tokens[j].text
        if (
            tokens[j].is_word
            and text.lower() in spellings
            and text not in names
            and not kt.is_call(tokens, j)
            and not kt.after_dot(tokens, j)
        ):
            names.append(text)
    return names


def _term(literal: str, sensitive: bool, known: Columns) -> str:
    """One search term over the `known` columns, its test chosen by its asterisks."""
    value = _literal_value(literal)
    if value is None:  # an escape this does not read: tested as written
        return _any_column(known, "has_cs" if sensitive else "has", literal)
    core = value.strip("*")
    if not core:
        return "true"
    cs = "_cs" if sensitive else ""
    if "*" in core:
        # Kusto's own rewrite: `"Lab*PC"` is `matches regex @"\bLab.*PC\b"`
        lead = "" if value.startswith("*") else r"\b"
        trail = "" if value.endswith("*") else r"\b"
        pattern = lead + ".*".join(_regex_escaped(part) for part in core.split("*")) + trail
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


def _literal_value(text: str) -> str | None:
    """The value of a KQL string literal (`"x"`, `'it\\'s'`, `@"C:\\x"`, `h"x"`), or None
    for one this does not read."""
    if text[:1] in "hH":
        text = text[1:]
    verbatim = text.startswith("@")
    if verbatim:
        text = text[1:]
    quote = text[:1]
    if quote not in ("'", '"') or len(text) < 2 or text[-1] != quote:
        return None
    body = text[1:-1]
    if verbatim:
        return body.replace(quote * 2, quote)

    def unescaped(match: re.Match[str]) -> str:
        if match.group(1) not in _ESCAPED:
            raise ValueError(match.group(1))
        return _ESCAPED[match.group(1)]

    try:
        return _ESCAPE.sub(unescaped, body)
    except ValueError:
        return None


def _regex_escaped(text: str) -> str:
    """`text` matched literally by RE2, written so a verbatim literal can hold it (one holds
    no line break)."""
    return "".join(
        _REGEX_CONTROLS.get(ch) or (f"\\{ch}" if ch in _REGEX_SPECIAL else ch) for ch in text
    )


def _any_column(known: Columns, op: str, literal: str) -> str:
    """`(A op literal or tostring(B) op literal ...)`: a column not of a text type (or of
    a type not known) is tested on its text, as Kusto tests it."""
    if not known:
        return "false"
    tests = [
        f"{name if kind in TEXT_TYPES else f'tostring({name})'} {op} {literal}"
        for name, kind in known.items()
    ]
    return "(" + " or ".join(tests) + ")"


__all__ = ["SOURCE_COLUMN", "search"]
