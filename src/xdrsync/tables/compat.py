"""Sentinel KQL that duckdb-kql does not translate as written, rewritten into a form it does.

Pure: text in, `Rewritten` out, no connection and no catalog. It runs before the allow-list
(`guard`), which then checks the rewritten query - and the bodies of the functions lifted out
of it - exactly as it checks any other, so nothing here widens what a query may read.

Every rewrite keeps Kusto's meaning; each is one pass over the tokens (`kqltokens`):

* `h"..."`, `H@'...'` (obfuscated literals) -> the literal without the `h` (the value is
  the same; Kusto only keeps it out of its logs), a multi-line ```...``` literal -> a quoted
  literal holding the same text;
* `datetime_diff('week', a, b)` -> `datetime_diff('day', startofweek(a), startofweek(b)) / 7`:
  Kusto counts the week boundaries (Sundays) between the two, not whole 7-day spans;
* `| serialize` -> nothing, `| serialize x = ...` -> `| extend x = ...` (it only marks the
  rows as ordered, which every operator here keeps);
* `| sample n` -> `| extend key = rand() | top n by key | project-away key`, and
  `| sample-distinct n of C` -> `| summarize by C | ` and the same;
* `strcat_array(make_set(x), ",")` inside `summarize` -> `strcat("", strcat_array(...))`,
  which duckdb-kql takes around an aggregate;
* `percentiles_array(x, 5, 50)` (or `dynamic([5, 50])`) -> `pack_array(percentile(x, 5),
  percentile(x, 50))`, named `percentiles_x`;
* `let n = 10; ... | take n` -> `| take 10` (and `limit`, `top`), for a name bound to a
  number;
* `row_number()`, `row_number(n)` -> `ROW_NUMBER_MARK` (plus `n - 1`), which `sqlpatch`
  numbers in the order of the `sort` before it, and `prev(x, n)`, `next(x, n)` -> a mark
  it reads there as the value `n` rows before or after;
* `pack_all()` -> `bag_pack("A", A, ...)` over the input's columns (`kqlcolumns`);
* `search "x"` -> `union (T | where ... | project $table = "T", ...), ...`, `T | search
  "x*"` and `where * has "x"` -> `where`, one test per column of the input (`kqlsearch`);
* `x has "1"` (and the other string operators) with `x` a non-string column of a table the
  query reads -> `tostring(x) has "1"`, as Kusto converts it;
* `maxif`, `minif`, `take_anyif`, `make_list_if`, `make_set_if` -> `max`, `min`, `take_any`,
  `make_list`, `make_set` of `iff(predicate, x, NULL_MARK)` (`sqlpatch` makes `NULL_MARK` an
  untyped SQL null), `count_distinct(if)` -> `dcount(if)`, `make_list(x, n)` and
  `make_set(x, n)` -> `array_slice(make_list(x), 0, n - 1)` (duckdb-kql ignored `n`),
  `make_bag(x [, n])`, `make_bag_if(x, p [, n])` -> the mark of a merge of `make_list(x)`'s
  bags (`sqlpatch.function_mark`), each named as Kusto names it;
* `set_union`, `bag_keys`, `string_size`, `datetime_utc_to_local` and the other functions
  `functionsql` lists -> a mark `sqlpatch` makes DuckDB's SQL, `unixtime_seconds_todatetime(x)`
  and its kin -> `datetime(1970-01-01) + todouble(x) * 1s` (`kqlfunctions`);
* `ipv4_compare`, `ipv4_is_match`, `ipv4_is_in_range`, `ipv4_is_private`,
  `parse_ipv4_mask`, `ipv4_netmask_suffix` -> comparisons of `parse_ipv4` under the
  combined prefix, as Kusto documents them (`kqlipv4`);
* `percentiles(x, 5, 99.5)` -> `percentile_x_5 = percentile(x, 5), percentile_x_99_5 =
  percentile(x, 99.5)`, `(a, b) = percentiles(x, 5, 50)` -> `a = percentile(x, 5), b = ...`;
* `union isfuzzy=true T, Missing, (Other | ...)` -> `union isfuzzy=true T`: the legs whose
  tables do not resolve are left out, as Kusto leaves them out;
* `mv-apply e = E on (where ... | extend ... | project ...)`, a subquery that works row by
  row, -> `mv-expand e = E | where ... | ...`, its `project` keeping the record's columns
  (`kqlmvapply`);
* `project-keep A, B*`, `project-reorder B, A*` -> `project` of those columns in the
  input's order, or of the named ones first and the rest after (`kqlcolumns`);
* `x.[3]` path steps -> `x[3]`;
* `parsejson(...)`, `makelist(...)`, `makeset(...)`, `columnifexists(...)`, deprecated
  spellings -> `parse_json(...)`, `make_list(...)`, `make_set(...)`, `column_ifexists(...)`;
* `ingestion_time()` -> `_IngestionTime`, the hidden column the log store fills when it writes
  the row (hidden columns a query names are listed in `Rewritten.hidden`);
* `column_ifexists("C", d)` -> `C` when a table the query reads (or a name it assigns) has the
  column, `(d)` otherwise;
* `count(C)` inside `summarize` -> `count_C = countif(isnotnull(C))`; `count(predicate)`, the
  obsolete spelling of `countif`, -> `countif(predicate)`;
* `bin_at(v, size, fixed)` -> `bin(v - shift, size) + shift`, `shift = fixed - bin(fixed,
  size)`, named after `v` in a `by` clause;
* `evaluate bag_unpack(C [, 'prefix'])` -> `extend key = tostring(C['key']), ... |
  project-away C`, each key with its type, the keys from the schema or read from the data
  (`kqlbags`);
* `evaluate pivot(C [, agg(x)] [, col, ...])` -> `summarize ['v'] = aggif(x, tostring(C) ==
  "v"), ... by col, ...`, C's values (and the input's columns) read from the data
  (`kqlpivot`);
* `make-series ... on A from F to T step S [by G]` -> `range`, joins and `make_list` in bin
  order (`kqlseries`);
* tabular `let` functions with tabular parameters -> their bodies, expanded at each call;
* `mv-expand todynamic(C)` without a name -> `mv-expand C = todynamic(C)` (Kusto names the
  result after the one column the expression reads);
* a parenthesised source, `(range x from 1 to 3 step 1) | ...` -> without the parentheses;
* names differing only in case from a table column (`extend owner = Owner.assignedTo`) ->
  renamed internally; `restore` gives the user's names back in results and messages;
* tabular `let` functions with parameters -> duckdb-kql stored functions (`functions=`),
  expanded at the call site as Kusto expands them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqlbags import bag_probes, bag_unpack
from xdrsync.tables.kqlcolumns import pack_all, project_keep
from xdrsync.tables.kqlfunctions import missing_functions
from xdrsync.tables.kqlipv4 import ipv4_functions
from xdrsync.tables.kqlmvapply import mv_apply
from xdrsync.tables.kqlpivot import pivot, pivot_probes
from xdrsync.tables.kqlsearch import search
from xdrsync.tables.kqlseries import make_series
from xdrsync.tables.kqltokens import KqlLexer, Token
from xdrsync.tables.rewritten import RewriteRefusedError, Rewritten, unchanged
from xdrsync.tables.schemas import HIDDEN_COLUMNS
from xdrsync.tables.sqlpatch import (
    NULL_MARK,
    POSITION_MARK,
    ROW_NUMBER_MARK,
    function_mark,
    prev_mark,
)

_PREDICATE_KINDS: Final = frozenset(
    getattr(KqlLexer, name)
    for name in KqlLexer.symbolicNames
    if name
    and name != "EQUAL_GREATERTHAN"
    and name.startswith(
        (
            "EQUALEQUAL", "EQUALTILDE", "EXCLAIMATIONPOINT", "GREATERTHAN", "LESSTHAN",
            "AND", "OR", "BETWEEN", "NOT_", "NOTCONTAINS", "NOTLIKE", "CONTAINS", "ENDSWITH",
            "HAS", "IN", "LIKE", "MATCHES_REGEX", "STARTSWITH",
        )
    )
    and name not in ("ORDER", "INTO", "INVOKE", "INT", "INT8", "INT16", "INT32", "INT64")
    and not name.endswith("LITERAL")
)  # fmt: skip
_PREDICATE_FUNCTIONS: Final = frozenset(
    {"isempty", "isnotempty", "isnull", "isnotnull", "not", "isnan", "isinf", "isfinite"}
)
#: Tokens that begin a tabular expression. `database()`, `cluster()` and `externaldata` are
#: here so a function reading them is lifted, and then refused by the allow-list.
_SOURCE_KINDS: Final = frozenset(
    {
        KqlLexer.RANGE, KqlLexer.DATATABLE, KqlLexer.PRINT, KqlLexer.UNION, KqlLexer.FIND,
        KqlLexer.SEARCH, KqlLexer.DATABASE, KqlLexer.CLUSTER, KqlLexer.EXTERNALDATA,
        KqlLexer.EXTERNAL_DATA,
    }
)  # fmt: skip
_MV_EXPAND: Final = frozenset({KqlLexer.MV_EXPAND, KqlLexer.MVEXPAND})
_MV_EXPAND_PARAMS: Final = frozenset({"bagexpansion", "with_itemindex", "kind"})
#: Deprecated spellings Kusto still accepts -> the current names (same meaning, and the same
#: result column names: `makelist(x)` is `list_x` either way).
_ALIASES: Final = {
    "parsejson": "parse_json",
    "makelist": "make_list",
    "makeset": "make_set",
    "columnifexists": "column_ifexists",
}
_JOIN_SIDES: Final = frozenset({"$left", "$right"})
#: A suffix no Sentinel column carries, so an internal name is never mistaken for a real one.
_RENAME_MARK: Final = "__ci"
#: The starts of the names the layer writes (marks, helper columns, the SQL's lambda
#: parameters, `functionsql`): a query of the user's may not name anything so.
RESERVED_PREFIXES: Final = ("__xdrsync", "__xf_")


def rewrite(
    kql: str,
    columns: Mapping[str, Sequence[str]],
    bags: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    types: Mapping[str, Mapping[str, str]] | None = None,
) -> Rewritten:
    """Rewrite `kql` for duckdb-kql; `columns` maps each workspace table to its columns,
    `bags` each `dynamic` column whose keys are known to its (key, KQL type) pairs, and
    `types` each table to its columns' KQL types (when known).

    Text that does not lex is returned unchanged: the parser reports it with its position.
    """
    try:
        tokens = kt.tokenize(kql)
    except kt.LexError:
        return unchanged(kql)
    for i, token in enumerate(tokens):
        name = token.text if token.is_word else kt.bracketed_string(tokens, i)
        if name is not None and name.startswith(RESERVED_PREFIXES):
            raise RewriteRefusedError(
                f"'{name}': names starting with {' or '.join(RESERVED_PREFIXES)} are "
                "xdrsync's own (the layer writes them); name it otherwise"
            )
    applied: list[str] = []

    def run(name: str, new: list[Token]) -> list[Token]:
        # A pass that changes nothing mostly hands back its input: no need to render both.
        if new is not tokens and kt.render(new) != kt.render(tokens):
            applied.append(name)
        return new

    tokens = run("string-literal", _string_literals(tokens))
    tokens = run("path-step", _path_steps(tokens))
    tokens = run("alias", _aliases(tokens))
    tokens = run("fuzzy-union", _fuzzy_unions(tokens, columns))
    tokens = run("mv-apply", mv_apply(tokens))
    tokens = run("replace", _replace(tokens))
    tokens = run("ingestion_time", _ingestion_time(tokens))
    probes = (*bag_probes(tokens, bags or {}), *pivot_probes(tokens, bags or {}, kql))
    tokens = run("pivot", pivot(tokens, bags or {}, kql))  # keyed by the same text as its probes
    tokens = run("bag_unpack", bag_unpack(tokens, bags or {}))
    tokens = run("column_ifexists", _column_ifexists(tokens, columns))
    tokens = run("count-column", _count_column(tokens))
    tokens = run("make-series", make_series(tokens))
    tokens = run("bin_at", _bin_at(tokens))
    tokens = run("aggregate", _aggregates(tokens))
    tokens = run("summarized-strcat_array", _summarized_strcat_arrays(tokens))
    tokens = run("percentiles_array", _percentiles_arrays(tokens))
    tokens = run("percentiles", _percentiles(tokens, kql))
    tokens = run("week-diff", _week_diffs(tokens))
    tokens = run("ipv4", ipv4_functions(tokens, _text_columns(types or {}), kql))
    tokens = run("serialize", _serialize(tokens))
    tokens = run("sample", _samples(tokens))
    tokens = run("function", missing_functions(tokens))
    tokens = run("count-let", _count_lets(tokens))
    tokens = run("row_number", _row_numbers(tokens))
    tokens = run("search", search(tokens, columns, types or {}))
    tokens = run("pack_all", pack_all(tokens, columns, types or {}))
    tokens = run("project-keep", project_keep(tokens, columns, types or {}))
    tokens = run("string-operand", _string_operands(tokens, columns, types or {}))
    tokens = run("mv-expand-name", _mv_expand_names(tokens))
    tokens = run("tabular-parameter", _tabular_parameters(tokens))
    tokens = run("paren-source", _paren_sources(tokens, columns))
    renamed, renames = _case_renames(tokens, columns)
    tokens = run("case-rename", renamed)
    tokens = run("prev-next", _neighbours(tokens))
    lifted, functions = _let_functions(tokens, columns)
    tokens = run("let-function", lifted)
    words = {t.text for t in tokens if t.is_word}
    hidden = tuple(c.name for c in HIDDEN_COLUMNS if c.name in words)
    if not applied:
        return replace(unchanged(kql), hidden=hidden, probes=probes)
    starts: list[int] = []
    origins: list[int] = []
    exact: list[bool] = []
    at = 0
    for token in tokens:
        starts.append(at)
        origins.append(token.origin)
        exact.append(not token.synthetic)
        at += len(token.text)
    return Rewritten(
        original=kql,
        text=kt.render(tokens),
        functions=tuple(functions),
        renames=renames,
        applied=tuple(applied),
        starts=tuple(starts),
        origins=tuple(origins),
        exact=tuple(exact),
        hidden=hidden,
        probes=probes,
    )


def _text_columns(types: Mapping[str, Mapping[str, str]]) -> set[str]:
    """The columns that are `string` in every table that has them."""
    kinds = [(c, kind) for columns in types.values() for c, kind in columns.items()]
    other = {c for c, kind in kinds if kind != "string"}
    return {c for c, kind in kinds if kind == "string" and c not in other}


# -- small rewrites ---------------------------------------------------------------------------


#: What a character of a triple-backtick literal is written as in a quoted one.
_ESCAPES: Final = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string_literals(tokens: list[Token]) -> list[Token]:
    """`h"..."` / `H@'...'` -> `"..."` / `@'...'`; ```` ```...``` ```` -> `'...'`.

    An `h` only asks Kusto to keep the literal out of its logs: the value is the literal's. A
    triple-backtick literal is its text as written, across lines and with no escapes: the
    same text in quotes, its backslashes, quotes and line breaks escaped (a quoted literal
    holds no line break). duckdb-kql read both as text with the `h` or the backticks in it
    (`has h"spray"` looked for `h"spray"`).
    """
    out = list(tokens)
    for i, token in enumerate(tokens):
        if token.kind != kt.STRING:
            continue
        text = token.text[1:] if token.text[:1] in "hH" else token.text
        if len(text) >= 6 and text.startswith("```") and text.endswith("```"):
            text = "'" + "".join(_ESCAPES.get(ch, ch) for ch in text[3:-3]) + "'"
        if text != token.text and _one_string(text):
            out[i] = Token(kt.STRING, text, token.origin, synthetic=True)
    return out


def _one_string(text: str) -> bool:
    """Whether `text` lexes as one string literal (what `_string_literals` writes always
    does; checked, so that no literal's text can ever become query structure)."""
    try:
        tokens = kt.tokenize(text)
    except kt.LexError:
        return False
    return len(tokens) == 1 and tokens[0].kind == kt.STRING


def _path_steps(tokens: list[Token]) -> list[Token]:
    """`x.[3]` -> `x[3]`: the dot before a bracket adds nothing in Kusto."""
    out: list[Token] = []
    for i, token in enumerate(tokens):
        after = kt.next_sig(tokens, i)
        if token.kind == kt.DOT and after is not None and tokens[after].kind == kt.OPENBRACKET:
            continue
        out.append(token)
    return out


def _aliases(tokens: list[Token]) -> list[Token]:
    """Deprecated function spellings Kusto still accepts -> the current ones."""
    out = list(tokens)
    for i, token in enumerate(tokens):
        name = _ALIASES.get(token.text)
        if name and token.kind == kt.IDENTIFIER and kt.is_call(tokens, i):
            out[i] = Token(kt.IDENTIFIER, name, token.origin, synthetic=True)
    return out


def _replace(tokens: list[Token]) -> list[Token]:
    """`replace(regex, rewrite, text)` -> `replace_regex(text, regex, rewrite)`: Kusto's
    deprecated `replace` is `replace_regex` with the text last (duckdb-kql reads it as
    `replace_string`, whose text comes first, and matches no regex)."""

    def swapped(origin: int, args: list[list[Token]]) -> list[Token]:
        regex, rewrite, text = args
        comma = kt.fragment(", ", origin)
        return [
            *kt.fragment("replace_regex(", origin),
            *text, *comma, *regex, *comma, *rewrite,
            *kt.fragment(")", origin),
        ]  # fmt: skip

    return kt.rewrite_calls(tokens, "replace", 3, swapped)


def _ingestion_time(tokens: list[Token]) -> list[Token]:
    """`ingestion_time()` -> `_IngestionTime`, the hidden column behind it in Log Analytics."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.text == "ingestion_time" and not kt.after_dot(tokens, i) and kt.is_call(tokens, i):
            open_ = kt.next_sig(tokens, i)
            assert open_ is not None  # _is_call
            close = kt.closing(tokens, open_)
            if close < len(tokens) and not kt.sig_indices(tokens, open_ + 1, close):
                out.append(Token(kt.IDENTIFIER, "_IngestionTime", token.origin, synthetic=True))
                i = close + 1
                continue
        out.append(token)
        i += 1
    return out


def _tables_read(tokens: Sequence[Token], columns: Mapping[str, Sequence[str]]) -> set[str]:
    return {t.text for t in tokens if t.kind == kt.IDENTIFIER and t.text in columns}


def _assigned_names(tokens: Sequence[Token], before: int) -> set[str]:
    """Names assigned (`Name = ...`) in the operators before the one holding `before`."""
    bars = [j for j in range(before) if tokens[j].kind in (kt.BAR, kt.SEMICOLON)]
    end = bars[-1] if bars else 0
    names: set[str] = set()
    for i in range(end):
        after = kt.next_sig(tokens, i)
        if tokens[i].is_word and after is not None and tokens[after].kind == kt.EQUAL:
            names.add(tokens[i].text)
    return names


def _column_ifexists(tokens: list[Token], columns: Mapping[str, Sequence[str]]) -> list[Token]:
    """`column_ifexists("C", default)` -> `C` if the query can see a column C, else `(default)`.

    "Can see": a column of a table the query reads, or a name an earlier operator assigns.
    Kusto decides on the operator's actual input; the two differ only for a name one branch of
    a join or union has and the other lacks, or one a `project` dropped.
    """
    tables = {c for table in _tables_read(tokens, columns) for c in columns[table]}
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if (
            token.text == "column_ifexists"
            and kt.is_call(tokens, i)
            and not kt.after_dot(tokens, i)
        ):
            open_ = kt.next_sig(tokens, i)
            assert open_ is not None
            close = kt.closing(tokens, open_)
            args = kt.split_top(tokens, open_ + 1, close)
            first = kt.sig_indices(tokens, *args[0])
            name = kt.string_value(tokens[first[0]]) if len(first) == 1 else None
            if close < len(tokens) and len(args) == 2 and name is not None:
                if name in tables or name in _assigned_names(tokens, i):
                    text = name if Token(kt.IDENTIFIER, name, 0).is_word else f"['{name}']"
                    out.extend(kt.fragment(text, token.origin))
                else:
                    out.extend(kt.fragment("(", token.origin))
                    out.extend(kt.trim(tokens[args[1][0] : args[1][1]]))
                    out.extend(kt.fragment(")", token.origin))
                i = close + 1
                continue
        out.append(token)
        i += 1
    return out


# -- summarize: count(C), bin_at ----------------------------------------------------------------


def _is_predicate(tokens: Sequence[Token], start: int, end: int) -> bool:
    sig = kt.sig_indices(tokens, start, end)
    if not sig:
        return False
    depth = 0
    for j in sig:
        kind = tokens[j].kind
        if kind in (kt.OPENPAREN, kt.OPENBRACKET):
            depth += 1
        elif kind in (kt.CLOSEPAREN, kt.CLOSEBRACKET):
            depth -= 1
        elif depth == 0 and kind in _PREDICATE_KINDS:
            return True
    head = tokens[sig[0]]
    if head.lower() in ("true", "false") and len(sig) == 1:
        return True
    return (
        head.lower() in _PREDICATE_FUNCTIONS
        and tokens[sig[1]].kind == kt.OPENPAREN
        and kt.closing(tokens, sig[1]) == sig[-1]
    )


def _count_column(tokens: list[Token]) -> list[Token]:
    """`count(C)` in `summarize`: Kusto counts the rows where C is not null, as `count_C`;
    `count(predicate)` is the obsolete spelling of `countif(predicate)`."""
    edits: dict[int, tuple[int, list[Token]]] = {}
    for s, token in enumerate(tokens):
        if token.kind != KqlLexer.SUMMARIZE:
            continue
        end = kt.segment_end(tokens, s + 1)
        for i in range(s + 1, end):
            if tokens[i].kind != KqlLexer.COUNT or not kt.is_call(tokens, i):
                continue
            open_ = kt.next_sig(tokens, i)
            assert open_ is not None
            close = kt.closing(tokens, open_)
            args = kt.sig_indices(tokens, open_ + 1, close)
            if not args or close >= end:
                continue
            inner = tokens[open_ + 1 : close]
            before = kt.prev_sig(tokens, i)
            named = before is not None and tokens[before].kind == kt.EQUAL
            origin = tokens[i].origin
            if _is_predicate(tokens, open_ + 1, close):
                new = [*kt.fragment("countif(", origin), *inner, *kt.fragment(")", origin)]
                name = "count_"
            else:
                new = [
                    *kt.fragment("countif(isnotnull(", origin),
                    *inner,
                    *kt.fragment("))", origin),
                ]
                single = len(args) == 1 and tokens[args[0]].is_word
                name = f"count_{tokens[args[0]].text}" if single else "count_"
            if not named:
                new = [*kt.fragment(f"{name} = ", origin), *new]
            edits[i] = (close, new)
    return kt.apply_edits(tokens, edits)


def _in_by_clause(tokens: Sequence[Token], i: int) -> bool:
    """Whether the expression starting at `i` is an unnamed item of a `summarize ... by`."""
    before = kt.prev_sig(tokens, i)
    if before is None:
        return False
    if tokens[before].kind == KqlLexer.BY:
        return True
    if tokens[before].kind != kt.COMMA:
        return False
    depth = 0
    for j in range(before - 1, -1, -1):
        kind = tokens[j].kind
        if kind in (kt.CLOSEPAREN, kt.CLOSEBRACKET, kt.CLOSEBRACE):
            depth += 1
        elif kind in (kt.OPENPAREN, kt.OPENBRACKET, kt.OPENBRACE):
            if depth == 0:
                return False
            depth -= 1
        elif depth == 0 and kind in (kt.BAR, kt.SEMICOLON):
            return False
        elif depth == 0 and kind == KqlLexer.BY:
            return True
    return False


def _bin_at(tokens: list[Token]) -> list[Token]:
    """`bin_at(v, size, fixed)` -> `bin(v - shift, size) + shift` with
    `shift = fixed - bin(fixed, size)`: the bin of `size` holding `v`, bins aligned on `fixed`
    (Kusto's `fixed + floor((v - fixed) / size) * size`)."""
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, close, (value, size, fixed) in kt.calls(tokens, "bin_at", 3):
        o = tokens[i].origin

        def f(text: str, o: int = o) -> list[Token]:
            return kt.fragment(text, o)

        # The offset of `fixed` from the bins `bin` aligns at the epoch, as a timespan (or a
        # number); bins aligned at `fixed` are those bins moved by it. Written so that both
        # datetimes and numbers keep their types: datetime - timespan is a datetime.
        shift = [*f("(("), *fixed, *f(") - bin(("), *fixed, *f("), "), *size, *f("))")]
        new = [
            *f("(bin(("), *value, *f(") - "), *shift, *f(", "), *size, *f(") + "), *shift,
            *f(")"),
        ]  # fmt: skip
        words = [t for t in value if not t.hidden]
        if _in_by_clause(tokens, i) and len(words) == 1 and words[0].is_word:
            new = [*kt.fragment(f"{words[0].text} = ", o), *new]
        edits[i] = (close, new)
    return kt.apply_edits(tokens, edits)


#: Kusto's conditional aggregates duckdb-kql has no mapping for -> (the aggregate that takes
#: `iff(predicate, x, null)` instead, the prefix of the name Kusto gives the result; None when
#: Kusto names it after `x` itself, as `take_anyif(x, p)` is named `x`).
_CONDITIONAL: Final[dict[str, tuple[str, str | None]]] = {
    "maxif": ("max", "maxif"),
    "minif": ("min", "minif"),
    "take_anyif": ("take_any", None),
    "make_list_if": ("make_list", "list"),
    "make_set_if": ("make_set", "set"),
    "make_bag_if": ("make_bag", "bag"),
}
#: Aggregates with a maximum size duckdb-kql ignores (or lacks, `make_bag`) -> the prefix of
#: their name.
_SIZED: Final = {"make_list": "list", "make_set": "set", "make_bag": "bag"}
#: Exact distinct counts -> duckdb-kql's `dcount`, which counts exactly.
_DISTINCT_COUNTS: Final = {"count_distinct": "dcount", "count_distinctif": "dcountif"}
#: Conversions Kusto names after their argument (`maxif(tostring(x), p)` is `maxif_x`).
_NAME_PRESERVING: Final = frozenset(
    {"tostring", "toint", "tolong", "toreal", "todouble", "todatetime", "totimespan", "tobool"}
)


def _argument_name(arg: Sequence[Token]) -> str | None:
    """The name Kusto derives from an aggregate's argument: a column (`x`), a path (`a.b`
    -> `a_b`) or either in a conversion; None for anything else (a positional name)."""
    sig = [t for t in arg if not t.hidden]
    if (
        len(sig) >= 4
        and sig[0].lower() in _NAME_PRESERVING
        and sig[1].kind == kt.OPENPAREN
        and sig[-1].kind == kt.CLOSEPAREN
    ):
        return _argument_name(sig[2:-1])
    words = sig[::2]
    if not sig or len(sig) % 2 == 0 or not all(t.is_word for t in words):
        return None
    if not all(t.kind == kt.DOT for t in sig[1::2]):
        return None
    return "_".join(t.text for t in words)


def _before_item(tokens: Sequence[Token], i: int) -> int | None:
    """The token before the item starting at `i`, past the `hint.x = y` parameters of a
    `summarize` (so `summarize` itself, for its first item)."""
    before = kt.prev_sig(tokens, i)
    while before is not None and (equal := kt.prev_sig(tokens, before)) is not None:
        hint = kt.prev_sig(tokens, equal)
        if tokens[equal].kind != kt.EQUAL or hint is None:
            break
        if not tokens[hint].text.lower().startswith("hint."):
            break
        before = kt.prev_sig(tokens, hint)
    return before


def _whole_item(tokens: Sequence[Token], i: int, close: int) -> bool:
    """Whether the call from `i` to `close` is a whole unnamed `summarize` item (after the
    operator's `hint.x = y` parameters; ending the clause, or the bracket or `let` body the
    `summarize` is in)."""
    before = _before_item(tokens, i)
    after = kt.next_sig(tokens, close)
    ends = (kt.COMMA, KqlLexer.BY, kt.BAR, kt.SEMICOLON, kt.CLOSEPAREN, kt.CLOSEBRACE)
    return (
        before is not None
        and tokens[before].kind in (KqlLexer.SUMMARIZE, kt.COMMA)
        and (after is None or tokens[after].kind in ends)
        and _summarize_at(tokens, i) >= 0
    )


def _free_name(tokens: Sequence[Token], i: int, name: str, given: dict[int, set[str]]) -> str:
    """`name` for the unnamed `summarize` item at `i`, or `name1`, `name2`, ... when the
    clause already names a column so (or an earlier item got `name` here), as Kusto
    numbers a repeated name; `given` collects the names handed out, by clause."""
    clause = _summarize_at(tokens, i)
    taken = given.setdefault(clause, set())
    if not taken and clause >= 0:
        end = kt.segment_end(tokens, clause + 1)
        for j in kt.sig_indices(tokens, clause + 1, end):
            after = kt.next_sig(tokens, j)
            if tokens[j].is_word and after is not None and tokens[after].kind == kt.EQUAL:
                taken.add(tokens[j].text)
    free, n = name, 0
    while free in taken:
        n += 1
        free = f"{name}{n}"
    taken.add(free)
    return free


def _summarize_at(tokens: Sequence[Token], i: int) -> int:
    """The index of the `summarize` whose clause holds `i`, or -1."""
    depth = 0
    for j in range(i - 1, -1, -1):
        kind = tokens[j].kind
        if kind in (kt.CLOSEPAREN, kt.CLOSEBRACKET, kt.CLOSEBRACE):
            depth += 1
        elif kind in (kt.OPENPAREN, kt.OPENBRACKET, kt.OPENBRACE):
            if depth == 0:
                return -1
            depth -= 1
        elif depth == 0 and kind in (kt.BAR, kt.SEMICOLON):
            return -1
        elif depth == 0 and kind == KqlLexer.SUMMARIZE:
            return j
    return -1


def _aggregates(tokens: list[Token]) -> list[Token]:
    """Aggregates duckdb-kql lacks or reads otherwise, as ones it has, named as Kusto names
    them (`maxif_x`, `list_x`, and `list_x1` for a second one):

    * `maxif(x, p)` -> `max(iff(p, x, NULL_MARK))`, and so `minif`, `take_anyif`,
      `make_list_if`, `make_set_if`: each aggregate skips nulls, so it sees `x` on exactly the
      rows where `p` holds. KQL has no untyped null to write for the other rows: `NULL_MARK`
      stands for one until the SQL is made (`sqlpatch`), where it becomes a null of `x`'s type;
    * `make_list(x, n)`, `make_set(x, n)` (and the `_if` forms) -> `array_slice(make_list(x),
      0, (n) - 1)`: at most `n` values, as Kusto returns (duckdb-kql returned every value);
    * `make_bag(x [, n])` (and `make_bag_if`) -> a mark `sqlpatch` makes the merge of the
      bags in `make_list(x)`, at most `n` keys (`function_mark`);
    * `count_distinct(x)`, `count_distinctif(x, p)` -> `dcount`, `dcountif`, which duckdb-kql
      counts exactly.
    """
    for _ in range(8):  # a call inside another's arguments is rewritten on the next pass
        edits: dict[int, tuple[int, list[Token]]] = {}
        given: dict[int, set[str]] = {}
        for i, token in enumerate(tokens):
            if any(first <= i <= last for first, (last, _) in edits.items()):
                continue
            found = _aggregate(tokens, i)
            if found is None:
                continue
            close, call, label = found
            if label is not None and _whole_item(tokens, i, close):
                o = token.origin
                call = [*kt.fragment(f"{_free_name(tokens, i, label, given)} = ", o), *call]
            edits[i] = (close, call)
        if not edits:
            break
        tokens = kt.apply_edits(tokens, edits)
    return tokens


def _aggregate(tokens: Sequence[Token], i: int) -> tuple[int, list[Token], str | None] | None:
    """For a call at `i` that `_aggregates` rewrites: the index of its closing parenthesis,
    what replaces it, and the name Kusto gives it unnamed (None: duckdb-kql's own)."""
    name = tokens[i].text  # KQL's function names are case-sensitive
    if (
        (name not in _CONDITIONAL and name not in _DISTINCT_COUNTS and name not in _SIZED)
        or not kt.is_call(tokens, i)
        or kt.after_dot(tokens, i)
    ):
        return None
    open_ = kt.next_sig(tokens, i)
    assert open_ is not None
    close = kt.closing(tokens, open_)
    args = [kt.trim(tokens[a:b]) for a, b in kt.split_top(tokens, open_ + 1, close)]
    if close >= len(tokens) or not all(args):
        return None
    o = tokens[i].origin

    def f(text: str) -> list[Token]:
        return kt.fragment(text, o)

    derived = _argument_name(args[0]) or ""
    if name in _DISTINCT_COUNTS:
        if len(args) != (1 if name == "count_distinct" else 2):
            return None
        call = [*f(f"{_DISTINCT_COUNTS[name]}("), *args[0]]
        for arg in args[1:]:
            call.extend([*f(", "), *arg])
        return close, [*call, *f(")")], f"{name}_{derived}"
    prefix: str | None
    if name in _SIZED:
        if len(args) != 2 and not (name == "make_bag" and len(args) == 1):
            return None
        value, size = args[0], args[1] if len(args) == 2 else []
        target, prefix = name, _SIZED[name]
    else:
        target, prefix = _CONDITIONAL[name]
        sized = target in _SIZED
        if len(args) not in ((2, 3) if sized else (2,)):
            return None
        value = [*f("iff("), *args[1], *f(", "), *args[0], *f(f", {NULL_MARK})")]
        size = args[2] if len(args) == 3 else []
    if target == "make_bag":  # duckdb-kql has none: a merge of the list of the group's values
        texts = [f"make_list({kt.render(value)})", *([kt.render(size)] if size else [])]
        call = f(function_mark("make_bag", texts))
    else:
        call = [*f(f"{target}("), *value, *f(")")]
        if size:
            call = [*f("array_slice("), *call, *f(", 0, ("), *size, *f(") - 1)")]
    label = (derived or None) if prefix is None else f"{prefix}_{derived}"
    return close, call, label


def _summarized_strcat_arrays(tokens: list[Token]) -> list[Token]:
    """`strcat_array(make_set(x), ",")` in a `summarize` -> `strcat("", strcat_array(...))`:
    the same text, in a function duckdb-kql takes around an aggregate (it read a
    `strcat_array` there as an aggregate it lacks)."""
    if "strcat_array" not in {t.text for t in tokens} or kt.defines(tokens, "strcat_array"):
        return tokens
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, token in enumerate(tokens):
        if (
            token.text != "strcat_array"
            or not kt.is_call(tokens, i)
            or kt.after_dot(tokens, i)
            or _summarize_at(tokens, i) < 0
            or any(first <= i <= last for first, (last, _) in edits.items())
        ):
            continue
        open_ = kt.next_sig(tokens, i)
        assert open_ is not None
        close = kt.closing(tokens, open_)
        if close >= len(tokens):
            continue
        o = token.origin
        made = [*kt.fragment('strcat("", ', o), *tokens[i : close + 1], *kt.fragment(")", o)]
        edits[i] = (close, made)
    return kt.apply_edits(tokens, edits) if edits else tokens


def _percentiles_arrays(tokens: list[Token]) -> list[Token]:
    """`percentiles_array(x, 5, 50)` and `percentiles_array(x, dynamic([5, 50]))` ->
    `pack_array(percentile(x, 5), percentile(x, 50))`, named `percentiles_x` unnamed, as
    Kusto names it (duckdb-kql has no `percentiles_array`)."""
    if kt.defines(tokens, "percentiles_array"):
        return tokens
    given: dict[int, set[str]] = {}
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, close, args in kt.calls(tokens, "percentiles_array", None):
        if len(args) < 2 or not args[0]:
            continue
        levels = [kt.render(arg).strip() for arg in args[1:]]
        listed = _listed(args[1]) if len(args) == 2 else None
        if listed is not None:
            levels = listed
        value = kt.render(args[0]).strip()
        made = "pack_array({})".format(", ".join(f"percentile({value}, {p})" for p in levels))
        if _whole_item(tokens, i, close):
            name = _free_name(tokens, i, f"percentiles_{_argument_name(args[0]) or ''}", given)
            made = f"{name} = {made}"
        edits[i] = (close, kt.fragment(made, tokens[i].origin))
    return kt.apply_edits(tokens, edits)


def _listed(arg: Sequence[Token]) -> list[str] | None:
    """The items of a `dynamic([a, b])` literal as written, or None for anything else."""
    sig = [t for t in arg if not t.hidden]
    if len(sig) < 5 or sig[0].lower() != "dynamic" or sig[1].kind != kt.OPENPAREN:
        return None
    if sig[2].kind != kt.OPENBRACKET or sig[-2].kind != kt.CLOSEBRACKET:
        return None
    inside = arg[arg.index(sig[2]) + 1 : arg.index(sig[-2])]
    items = [kt.render(inside[a:b]).strip() for a, b in kt.split_top(inside, 0, len(inside))]
    return items if all(items) else None


_PERCENT: Final = re.compile(r"\d+(\.\d+)?")


def _percentiles(tokens: list[Token], kql: str) -> list[Token]:
    """`percentiles(x, 5, 99.5)` -> `percentile_x_5 = percentile(x, 5), percentile_x_99_5 =
    percentile(x, 99.5)`, and `(p5, p99) = percentiles(x, 5, 99)` -> `p5 = percentile(x, 5),
    p99 = percentile(x, 99)`: a column per percentile, named as Kusto names them (a dot in the
    percentile becomes `_`, `50.0` is `50`). An unnamed `percentile(x, 99.5)` is named so too
    (duckdb-kql kept the dot). A percentile that is not a number as written (`p`, bound by
    `let`) is kept where the columns are named, and refused where its name would make one's;
    several percentiles under one name are refused saying so (Kusto wants a name each)."""
    if not any(t.text in ("percentiles", "percentile") for t in tokens):
        return tokens
    if kt.defines(tokens, "percentiles") or kt.defines(tokens, "percentile"):
        return tokens
    edits: dict[int, tuple[int, list[Token]]] = {}
    given: dict[int, set[str]] = {}
    lets = _let_numbers(tokens)
    for i, token in enumerate(tokens):
        if token.text not in ("percentiles", "percentile") or not kt.is_call(tokens, i):
            continue
        if kt.after_dot(tokens, i):
            continue
        open_ = kt.next_sig(tokens, i)
        assert open_ is not None  # is_call
        close = kt.closing(tokens, open_)
        args = [kt.trim(tokens[a:b]) for a, b in kt.split_top(tokens, open_ + 1, close)]
        if close >= len(tokens) or len(args) < 2 or not args[0]:
            continue
        levels = [kt.render(arg).strip() for arg in args[1:]]
        numbers = [_percent(arg, lets) for arg in args[1:]]
        where = "{}() at {}:{}".format(token.text, *kt.line_col(kql, token.origin))
        before = kt.prev_sig(tokens, i)
        named = _tuple_names(tokens, i)
        names: list[str | None]
        if named is not None:  # `(p5, p50) = percentiles(x, 5, 50)`
            start, names = named[0], list(named[1])
            if len(names) != len(levels):
                raise RewriteRefusedError(
                    f"{where}: {len(names)} name(s) for {len(levels)} percentile(s); give one each"
                )
        elif before is not None and tokens[before].kind == kt.EQUAL:  # `p = percentiles(x, 5)`
            if token.text == "percentile":
                continue
            if len(levels) != 1:
                raise RewriteRefusedError(
                    f"{where}: one name for {len(levels)} percentiles; name each, as in "
                    "`(p50, p90) = percentiles(x, 50, 90)`, or none"
                )
            start, names = i, [None]
        elif _whole_item(tokens, i, close):
            if token.text == "percentile" and (numbers[0] is None or "_" not in numbers[0]):
                continue  # duckdb-kql names it as Kusto does
            if None in numbers:
                raise RewriteRefusedError(
                    f"{where}: a percentile that is not a number as written gives no column "
                    "name; name the columns, as in `(p50, p90) = percentiles(x, 50, p)`"
                )
            derived = _argument_name(args[0]) or ""
            start, names = (
                i,
                [
                    _free_name(tokens, i, f"percentile_{derived}_{number}", given)
                    for number in numbers
                ],
            )
        else:
            continue
        o = token.origin
        items: list[Token] = []
        for name, level in zip(names, levels, strict=True):
            if items:
                items.extend(kt.fragment(", ", o))
            head = "percentile(" if name is None else f"{name} = percentile("
            items.extend([*kt.fragment(head, o), *args[0], *kt.fragment(f", {level})", o)])
        edits[start] = (close, items)
    return kt.apply_edits(tokens, edits)


def _percent(arg: Sequence[Token], lets: Mapping[str, str]) -> str | None:
    """A percentile written as a number (or a name `lets` binds to one), as its column's name
    ends (`99.5` -> `99_5`, `50.0` -> `50`, `05.50` -> `5_5`); None for anything else."""
    sig = [t for t in arg if not t.hidden]
    text = lets.get(sig[0].text, sig[0].text) if len(sig) == 1 else ""
    if not _PERCENT.fullmatch(text):
        return None
    return format(Decimal(text).normalize(), "f").replace(".", "_")


def _let_values(tokens: Sequence[Token]) -> list[tuple[int, str, Token | None]]:
    """Each top-level `let` of the query, in order: where its value starts, the name it
    binds, and the value when it is a single token (a number, a string, a name)."""
    found: list[tuple[int, str, Token | None]] = []
    for start in kt.statement_starts(tokens):
        binding = kt.let_binding(tokens, start)
        if binding is None:
            continue
        value = kt.sig_indices(tokens, start, kt.segment_end(tokens, start))
        found.append(
            (start, tokens[binding[1]].text, tokens[value[0]] if len(value) == 1 else None)
        )
    return found


def _let_numbers(tokens: Sequence[Token]) -> dict[str, str]:
    """The names bound once, by a `let` of the query's own, to a number as written."""
    found: dict[str, str | None] = {}
    for _, name, value in _let_values(tokens):
        number = value.text if value is not None else ""
        found[name] = number if name not in found and _PERCENT.fullmatch(number) else None
    return {name: number for name, number in found.items() if number is not None}


def _tuple_names(tokens: Sequence[Token], i: int) -> tuple[int, list[str]] | None:
    """For the call at `i` named by a tuple, `(a, b) = percentiles(...)` as a whole
    `summarize` item: where the tuple starts, and its names."""
    equal = kt.prev_sig(tokens, i)
    if equal is None or tokens[equal].kind != kt.EQUAL:
        return None
    close = kt.prev_sig(tokens, equal)
    if close is None or tokens[close].kind != kt.CLOSEPAREN:
        return None
    names: list[str] = []
    j = kt.prev_sig(tokens, close)
    while j is not None and tokens[j].is_word:
        names.append(tokens[j].text)
        j = kt.prev_sig(tokens, j)
        if j is not None and tokens[j].kind == kt.COMMA:
            j = kt.prev_sig(tokens, j)
            continue
        break
    if j is None or tokens[j].kind != kt.OPENPAREN or not names:
        return None
    before = _before_item(tokens, j)
    if before is None or tokens[before].kind not in (KqlLexer.SUMMARIZE, kt.COMMA):
        return None
    return j, names[::-1]


def _week_diffs(tokens: list[Token]) -> list[Token]:
    """`datetime_diff('week', a, b)` -> `(datetime_diff('day', startofweek(a),
    startofweek(b)) / 7)`: Kusto counts the week boundaries between the two (a week starts on
    Sunday), where DuckDB's `date_diff` counts whole 7-day spans; two Sundays at midnight are
    a whole number of days apart, so the division is exact."""

    def in_days(origin: int, args: list[list[Token]]) -> list[Token] | None:
        period, first, second = args
        sig = [t for t in period if not t.hidden]
        value = kt.string_value(sig[0]) if len(sig) == 1 else None
        if value is None or value.lower() != "week":
            return None
        return [
            *kt.fragment("(datetime_diff('day', startofweek(", origin), *first,
            *kt.fragment("), startofweek(", origin), *second,
            *kt.fragment(")) / 7)", origin),
        ]  # fmt: skip

    return kt.rewrite_calls(tokens, "datetime_diff", 3, in_days)


def _serialize(tokens: list[Token]) -> list[Token]:
    """`| serialize` -> nothing; `| serialize x = ...` -> `| extend x = ...`.

    `serialize` only marks the rows as ordered so that `row_number()`, `prev()` and `next()`
    may read them; duckdb-kql reads them in order wherever it can, so the operator has nothing
    left to do but the columns it may add, which is `extend`.
    """
    out = list(tokens)
    for i, token in enumerate(tokens):
        bar = kt.prev_sig(tokens, i)
        if token.kind != KqlLexer.SERIALIZE or bar is None or tokens[bar].kind != kt.BAR:
            continue
        end = kt.segment_end(tokens, i + 1)
        if kt.sig_indices(tokens, i + 1, end):
            out[i] = Token(KqlLexer.EXTEND, "extend", token.origin, synthetic=True)
        else:
            out[bar : i + 1] = kt.blank(tokens[bar : i + 1])
    return out


#: The column `_samples` draws its random order in (dropped before the user sees the rows).
_SAMPLE_KEY: Final = "__xdrsync_sample"


def _samples(tokens: list[Token]) -> list[Token]:
    """`| sample n` -> `| extend key = rand() | top n by key | project-away key`: `n` rows
    drawn at random, as Kusto's `sample` draws them (duckdb-kql has no `sample`);
    `| sample-distinct n of C` -> `| summarize by C | ` and the same: `n` of C's values."""
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, token in enumerate(tokens):
        if token.kind not in (KqlLexer.SAMPLE, KqlLexer.SAMPLE_DISTINCT):
            continue
        bar = kt.prev_sig(tokens, i)
        if bar is None or tokens[bar].kind != kt.BAR:
            continue
        end = kt.segment_end(tokens, i + 1)
        text = kt.render(tokens[i + 1 : end]).strip()
        if token.kind == KqlLexer.SAMPLE:
            count, distinct = text, None
        else:
            count, of, column = text.partition(" of ")
            if not of:
                continue
            count, distinct = count.strip(), column.strip()
        if not count:
            continue
        drawn = (
            f"extend {_SAMPLE_KEY} = rand() | top {count} by {_SAMPLE_KEY} "
            f"| project-away {_SAMPLE_KEY}"
        )
        if distinct is not None:
            drawn = f"summarize by {distinct} | {drawn}"
        edits[i] = (end - 1, kt.fragment(f"{drawn} ", token.origin))
    return kt.apply_edits(tokens, edits)


def _row_numbers(tokens: list[Token]) -> list[Token]:
    """`row_number()` -> `ROW_NUMBER_MARK`, `row_number(10)` -> `(ROW_NUMBER_MARK + 9)`:
    `sqlpatch` numbers the rows there in the order of the `sort` before them. Restarting
    (`row_number(1, predicate)`) is left as written: duckdb-kql says it is not supported."""

    def numbered(origin: int, args: list[list[Token]]) -> list[Token] | None:
        start = kt.render(args[0])
        if start == "":
            return kt.fragment(ROW_NUMBER_MARK, origin)
        if start.lstrip("-").isdigit():
            return kt.fragment(f"({ROW_NUMBER_MARK} + {int(start) - 1})", origin)
        return None

    if kt.defines(tokens, "row_number"):
        return tokens  # the query's own function of that name
    return kt.rewrite_calls(tokens, "row_number", 1, numbered)


def _neighbours(tokens: list[Token]) -> list[Token]:
    """`prev(x)`, `prev(x, 2)`, `next(x)`, `next(x, 2)` of a column `x` -> a mark naming it
    (`prev_mark`), which `sqlpatch` reads `2` rows before or after in the order of the `sort`
    before it; `prev(x, 2, d)` -> `iff(isnull(<the mark of the rows' place 2 rows before>),
    d, <the mark>)`: the default only past the first (or last) row, as Kusto gives it, not
    where `x` is null. An expression is left as written: duckdb-kql says it is not
    supported. After the case renames, so `x` is named as the translation names it."""

    def marked(function: str) -> Callable[[int, list[list[Token]]], list[Token] | None]:
        def mark(origin: int, args: list[list[Token]]) -> list[Token] | None:
            column = args[0]
            offset = kt.render(args[1]).strip() if len(args) > 1 else "1"
            if len(column) != 1 or not column[0].is_word or not offset.isdigit():
                return None
            if column[0].text.startswith("__xdrsync_"):
                return None  # `prev(prev(x))`: the inner call's mark, not a column
            read = prev_mark(function, column[0].text, int(offset))
            if len(args) == 3 and args[2]:
                beyond = prev_mark(function, POSITION_MARK, int(offset))
                read = f"iff(isnull({beyond}), {kt.render(args[2]).strip()}, {read})"
            return kt.fragment(read, origin)

        return mark

    for function in ("prev", "next"):
        if kt.defines(tokens, function):
            continue  # the query's own function of that name
        for arity in (1, 2, 3):
            tokens = kt.rewrite_calls(tokens, function, arity, marked(function))
    return tokens


#: The operators whose row count Kusto takes as any constant, duckdb-kql as a number only.
_COUNTED: Final = frozenset({KqlLexer.TAKE, KqlLexer.LIMIT, KqlLexer.TOP})


def _count_lets(tokens: list[Token]) -> list[Token]:
    """`let n = 10; ... | take n` -> `| take 10` (and `limit`, `top`): the count as the
    number the name was last bound to by a top-level `let` before it. Not inside a function
    body (`{...}`), where a parameter or a `let` of its own may bind the same name; not when
    the last binding is anything but a number."""
    bindings = [  # (where, name, the number or None)
        (
            start,
            name,
            value.text if value is not None and value.kind == KqlLexer.LONGLITERAL else None,
        )
        for start, name, value in _let_values(tokens)
    ]
    if not any(number for _, _, number in bindings):
        return tokens
    out = list(tokens)
    depth = 0
    for i, token in enumerate(tokens):
        if token.kind == kt.OPENBRACE:
            depth += 1
        elif token.kind == kt.CLOSEBRACE:
            depth -= 1
        if depth or token.kind not in _COUNTED or not kt.prev_sig(tokens, i):
            continue
        name = kt.next_sig(tokens, i)
        if name is None or not tokens[name].is_word or kt.is_call(tokens, name):
            continue
        wanted = tokens[name].text
        bound = [number for at, bound_name, number in bindings if at < i and bound_name == wanted]
        if bound and bound[-1] is not None:
            out[name] = Token(KqlLexer.LONGLITERAL, bound[-1], tokens[name].origin, synthetic=True)
    return out


#: Kusto's string operators: a non-string left operand is converted to its text first.
_STRING_OPERATORS: Final = frozenset(
    getattr(KqlLexer, name)
    for name in KqlLexer.symbolicNames
    if name
    and name.removeprefix("NOT")
    .removeprefix("_")
    .startswith(("HAS", "CONTAINS", "STARTSWITH", "ENDSWITH", "MATCHES_REGEX"))
)
#: The KQL types a string operator reads as text (`tostring`); `dynamic` duckdb-kql reads.
_NON_STRING_TYPES: Final = frozenset({"int", "long", "real", "datetime", "bool", "timespan"})
#: Tokens that can stand right before an operand that is a whole left operand.
_OPERAND_STARTS: Final = frozenset(
    {
        KqlLexer.WHERE, KqlLexer.AND, KqlLexer.OR, kt.OPENPAREN, kt.COMMA, kt.EQUAL,
        KqlLexer.FILTER, KqlLexer.BY,
    }
)  # fmt: skip


def _string_operands(
    tokens: list[Token],
    columns: Mapping[str, Sequence[str]],
    types: Mapping[str, Mapping[str, str]],
) -> list[Token]:
    """`IncidentNumber contains "1"` -> `tostring(IncidentNumber) contains "1"`.

    Kusto applies `has`, `contains`, `startswith`, `matches regex` and the rest to the text of
    a number or a datetime; DuckDB's string functions refuse them. Done for a column, written
    alone on the left, that a table the query reads holds as a non-string type; for a string
    (or a name that shadows the column with one) `tostring` changes nothing.
    """
    read = _tables_read(tokens, columns)
    typed = {
        column
        for table in read
        for column, kind in types.get(table, {}).items()
        if kind in _NON_STRING_TYPES
    }
    if not typed:
        return tokens
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, token in enumerate(tokens):
        if token.kind not in _STRING_OPERATORS:
            continue
        left = kt.prev_sig(tokens, i)
        if left is None or tokens[left].kind != kt.IDENTIFIER or tokens[left].text not in typed:
            continue
        before = kt.prev_sig(tokens, left)
        if before is None or tokens[before].kind not in _OPERAND_STARTS:
            continue
        o = tokens[left].origin
        edits[left] = (
            left,
            [*kt.fragment("tostring(", o), tokens[left], *kt.fragment(")", o)],
        )
    return kt.apply_edits(tokens, edits)


def _columns_read(tokens: Sequence[Token], start: int, end: int) -> list[str]:
    """The distinct column names an expression reads: identifiers that are not a function
    being called and not a property after a dot."""
    names: list[str] = []
    for j in kt.sig_indices(tokens, start, end):
        token = tokens[j]
        if token.kind != kt.IDENTIFIER or kt.is_call(tokens, j) or kt.after_dot(tokens, j):
            continue
        if token.text not in names:
            names.append(token.text)
    return names


def _mv_expand_names(tokens: list[Token]) -> list[Token]:
    """`mv-expand todynamic(C)` -> `mv-expand C = todynamic(C)`."""
    inserts: dict[int, list[Token]] = {}
    for s, token in enumerate(tokens):
        if token.kind not in _MV_EXPAND:
            continue
        end = kt.segment_end(tokens, s + 1)
        sig = kt.sig_indices(tokens, s + 1, end)
        # Leading `name=value` parameters.
        k = 0
        while (
            k + 2 < len(sig)
            and tokens[sig[k]].lower() in _MV_EXPAND_PARAMS
            and tokens[sig[k + 1]].kind == kt.EQUAL
        ):
            k += 3
        if k >= len(sig):
            continue
        items_end = end
        depth = 0
        for j in range(sig[k], end):
            kind = tokens[j].kind
            if kind in (kt.OPENPAREN, kt.OPENBRACKET):
                depth += 1
            elif kind in (kt.CLOSEPAREN, kt.CLOSEBRACKET):
                depth -= 1
            elif depth == 0 and kind == KqlLexer.LIMIT:
                items_end = j
                break
        for a, b in kt.split_top(tokens, sig[k], items_end):
            item = kt.sig_indices(tokens, a, b)
            stop = next((j for j in item if tokens[j].kind == KqlLexer.TO), b)
            item = [j for j in item if j < stop]
            if len(item) < 2 or tokens[item[1]].kind == kt.EQUAL:
                continue
            if not any(tokens[j].kind == kt.OPENPAREN for j in item):
                continue  # a column or a path: duckdb-kql names those itself
            read = _columns_read(tokens, item[0], stop)
            if len(read) == 1:
                inserts[item[0]] = kt.fragment(f"{read[0]} = ", tokens[item[0]].origin)
    if not inserts:
        return tokens
    out: list[Token] = []
    for i, token in enumerate(tokens):
        out.extend(inserts.get(i, ()))
        out.append(token)
    return out


# -- statements: parenthesised sources, tabular let functions ---------------------------------


def _is_tabular(tokens: Sequence[Token], start: int, end: int, tabular: set[str]) -> bool:
    """Whether the expression in `[start, end)` is tabular: a pipeline, or a source."""
    sig = kt.sig_indices(tokens, start, end)
    if not sig:
        return False
    depth = 0
    for j in sig:
        kind = tokens[j].kind
        if kind in (kt.OPENPAREN, kt.OPENBRACKET, kt.OPENBRACE):
            depth += 1
        elif kind in (kt.CLOSEPAREN, kt.CLOSEBRACKET, kt.CLOSEBRACE):
            depth -= 1
        elif depth == 0 and kind == kt.BAR:
            return True
    head = tokens[sig[0]]
    if head.kind in _SOURCE_KINDS:
        return True
    if head.kind == kt.OPENPAREN:
        return _is_tabular(tokens, sig[0] + 1, kt.closing(tokens, sig[0]), tabular)
    return head.kind == kt.IDENTIFIER and head.text in tabular


def _fuzzy_unions(tokens: list[Token], columns: Mapping[str, Sequence[str]]) -> list[Token]:
    """`union isfuzzy=true SecurityAlert, DeviceEvents, (SigninLogs | where ...)` ->
    `union isfuzzy=true SecurityAlert`: Kusto leaves out the legs whose table does not
    resolve and runs the rest (Sentinel's content unions tables a workspace may lack). A leg
    is left out when it is a table name, or a bracketed pipeline reading one, that is neither
    a workspace table nor a name the query binds (`let`); wildcards, calls and other sources
    stay. With no leg left, `T | union isfuzzy=true Missing` is `T`, and a `union` of missing
    tables alone stays as it is, to fail as in Kusto."""
    out = list(tokens)
    for i, token in enumerate(tokens):
        if token.kind != KqlLexer.UNION:
            continue
        end = kt.segment_end(tokens, i + 1)
        sig = kt.sig_indices(tokens, i + 1, end)
        first, fuzzy = _union_parameters(tokens, sig)
        if not fuzzy or first >= len(sig):
            continue
        legs = kt.split_top(tokens, sig[first], end)
        kept = [not _missing_leg(tokens, a, b, columns) for a, b in legs]
        if all(kept):
            continue
        bar = kt.prev_sig(tokens, i)
        if not any(kept):
            if bar is not None and tokens[bar].kind == kt.BAR:  # `T | union` of nothing: T
                out[bar:end] = kt.blank(tokens[bar:end])
            continue
        for n, ((a, b), keep) in enumerate(zip(legs, kept, strict=True)):
            # The comma before a leg stays only between two legs that stay.
            comma = a - 1 if n else None
            if not keep:
                out[a:b] = kt.blank(tokens[a:b])
            if comma is not None and not (keep and any(kept[:n])):
                out[comma] = kt.blank([tokens[comma]])[0]
    return out


#: A `union` parameter's name (`kind`, `withsource`, `isfuzzy`, `hint.concurrency`).
_PARAMETER: Final = re.compile(r"[a-z_][\w.]*")


def _union_parameters(tokens: Sequence[Token], sig: Sequence[int]) -> tuple[int, bool]:
    """Where a `union`'s legs start among its significant tokens `sig` (after `kind=...`,
    `withsource=...`, `hint.x=...`), and whether it says `isfuzzy=true`."""
    k, fuzzy = 0, False
    while k + 2 < len(sig) and tokens[sig[k + 1]].kind == kt.EQUAL:
        name = tokens[sig[k]].text.lower()  # `hint.concurrency` is one token
        if not _PARAMETER.fullmatch(name):
            break
        fuzzy = fuzzy or (name == "isfuzzy" and tokens[sig[k + 2]].text.lower() == "true")
        k += 3
    return k, fuzzy


def _missing_leg(
    tokens: Sequence[Token], a: int, b: int, columns: Mapping[str, Sequence[str]]
) -> bool:
    """Whether the union leg `[a, b)` reads a table that does not resolve."""
    sig = kt.sig_indices(tokens, a, b)
    if sig and tokens[sig[0]].kind == kt.OPENPAREN and kt.closing(tokens, sig[0]) == sig[-1]:
        inner = kt.sig_indices(tokens, sig[0] + 1, sig[-1])
        head = inner[:2]
        sig = head[:1] if len(head) == 1 or tokens[head[1]].kind == kt.BAR else []
    if len(sig) != 1 or tokens[sig[0]].kind != kt.IDENTIFIER:
        return False
    name = tokens[sig[0]].text
    return name not in columns and not kt.defines(tokens, name)


def _paren_sources(tokens: list[Token], columns: Mapping[str, Sequence[str]]) -> list[Token]:
    """`(range ...) | ...` -> `range ... | ...`: a parenthesised source of a pipeline is the
    same pipeline without the parentheses; `((T | where ...))` loses every pair."""
    while (unwrapped := _unwrap_sources(tokens, columns)) is not tokens:
        tokens = unwrapped
    return tokens


def _unwrap_sources(tokens: list[Token], columns: Mapping[str, Sequence[str]]) -> list[Token]:
    """One round of `_paren_sources`: the outermost pair of each statement's source."""
    drop: set[int] = set()
    tabular = set(columns) | _tabular_lets(tokens, columns)
    for start in kt.statement_starts(tokens):
        if tokens[start].kind != kt.OPENPAREN:
            continue
        close = kt.closing(tokens, start)
        if close >= len(tokens):
            continue
        after = kt.next_sig(tokens, close)
        if after is not None and tokens[after].kind not in (kt.BAR, kt.SEMICOLON):
            continue
        if _is_tabular(tokens, start + 1, close, tabular):
            drop |= {start, close}
    if not drop:
        return tokens
    return [kt.blank([t])[0] if i in drop else t for i, t in enumerate(tokens)]


def _tabular_lets(tokens: Sequence[Token], columns: Mapping[str, Sequence[str]]) -> set[str]:
    """Names top-level `let`s bind to tabular values (or to tabular functions)."""
    tabular = set(columns)
    found: set[str] = set()
    for start in kt.statement_starts(tokens):
        binding = kt.let_binding(tokens, start)
        if binding is None:
            continue
        name = binding[1]
        end = kt.segment_end(tokens, start)
        while end < len(tokens) and tokens[end].kind == kt.BAR:
            end = kt.segment_end(tokens, end + 1)
        if tokens[start].kind == kt.OPENPAREN:
            close = kt.closing(tokens, start)
            brace = kt.next_sig(tokens, close)
            if brace is not None and tokens[brace].kind == kt.OPENBRACE:
                body_end = kt.closing(tokens, brace)
                if _function_is_tabular(tokens, brace + 1, body_end, tabular | found):
                    found.add(tokens[name].text)
                continue
        if _is_tabular(tokens, start, end, tabular | found):
            found.add(tokens[name].text)
    return found


def _function_is_tabular(tokens: Sequence[Token], start: int, end: int, tabular: set[str]) -> bool:
    """Whether a function body `{ ...; expr }` ends in a tabular expression."""
    parts = kt.split_top(tokens, start, end, kt.SEMICOLON)
    last = [p for p in parts if kt.sig_indices(tokens, *p)]
    return bool(last) and _is_tabular(tokens, *last[-1], tabular)


#: Nested calls of functions with tabular parameters are expanded at most this deep.
_MAX_EXPANSIONS: Final = 32


@dataclass(frozen=True)
class _Macro:
    """A `let` function with a tabular parameter: its parameter names and its body."""

    params: tuple[str, ...]
    body: tuple[Token, ...]


def _tabular_parameters(tokens: list[Token]) -> list[Token]:
    """`let F = (T:(RuleId:string), S:(*)) { T | join S on RuleId };` and its calls
    `F(a, b)` -> each call replaced by `(a | join (b) on RuleId)`: the body with every
    parameter replaced by its argument, as Kusto evaluates such a function. Bodies with
    their own `let` statements are left alone."""
    macros: dict[str, _Macro] = {}
    removed: set[int] = set()
    for start in kt.statement_starts(tokens):
        binding = kt.let_binding(tokens, start)
        if binding is None or tokens[start].kind != kt.OPENPAREN:
            continue
        let, name = binding
        close = kt.closing(tokens, start)
        brace = kt.next_sig(tokens, close) if close < len(tokens) else None
        if brace is None or tokens[brace].kind != kt.OPENBRACE:
            continue
        params = [kt.sig_indices(tokens, a, b) for a, b in kt.split_top(tokens, start + 1, close)]
        if not any(len(p) > 2 and tokens[p[2]].kind == kt.OPENPAREN for p in params):
            continue  # scalar parameters only: a stored function (`_let_functions`)
        body_end = kt.closing(tokens, brace)
        if body_end >= len(tokens) or any(
            tokens[j].kind == kt.SEMICOLON for j in range(brace + 1, body_end)
        ):
            continue
        semi = kt.next_sig(tokens, body_end)
        last = semi if semi is not None and tokens[semi].kind == kt.SEMICOLON else body_end
        names = tuple(tokens[p[0]].text for p in params if p)
        macros[tokens[name].text] = _Macro(names, tuple(kt.trim(tokens[brace + 1 : body_end])))
        removed |= set(range(let, last + 1))
    if not macros:
        return tokens
    out = [kt.blank([t])[0] if i in removed else t for i, t in enumerate(tokens)]
    for _ in range(_MAX_EXPANSIONS):
        expanded = _expand_calls(out, macros)
        if expanded is out:
            break
        out = expanded
    return out


def _expand_calls(tokens: list[Token], macros: Mapping[str, _Macro]) -> list[Token]:
    """One round: every call of a macro whose arguments call no macro, expanded."""
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, token in enumerate(tokens):
        macro = macros.get(token.text)
        if (
            macro is None
            or not token.is_word
            or kt.after_dot(tokens, i)
            or not kt.is_call(tokens, i)
        ):
            continue
        open_ = kt.next_sig(tokens, i)
        assert open_ is not None  # _is_call
        close = kt.closing(tokens, open_)
        if close >= len(tokens):
            continue
        inner = range(open_ + 1, close)
        if any(tokens[j].text in macros and kt.is_call(tokens, j) for j in inner):
            continue  # its arguments first
        args = [kt.trim(tokens[a:b]) for a, b in kt.split_top(tokens, open_ + 1, close)]
        if len(args) != len(macro.params) or not all(args):
            continue  # left for the parser to report
        bound = dict(zip(macro.params, args, strict=True))
        body: list[Token] = []
        for k, part in enumerate(macro.body):
            value = bound.get(part.text) if part.is_word else None
            if value is None or kt.after_dot(macro.body, k):
                body.append(Token(part.kind, part.text, token.origin, synthetic=True))
            else:
                body.extend(kt.fragment("(", token.origin))
                body.extend(value)
                body.extend(kt.fragment(")", token.origin))
        edits[i] = (
            close,
            [*kt.fragment("(", token.origin), *body, *kt.fragment(")", token.origin)],
        )
    return kt.apply_edits(tokens, edits) if edits else tokens


def _let_functions(
    tokens: list[Token], columns: Mapping[str, Sequence[str]]
) -> tuple[list[Token], list[str]]:
    """Tabular `let F = (a:string) { T | where ... };` -> a stored function `F`, which
    duckdb-kql expands where it is called (as Kusto does); the `let` becomes whitespace so the
    rest of the query keeps its lines and columns."""
    tabular = set(columns)
    definitions: list[str] = []
    removed: set[int] = set()
    for start in kt.statement_starts(tokens):
        binding = kt.let_binding(tokens, start)
        if binding is None:
            continue
        let, name = binding
        if tokens[start].kind != kt.OPENPAREN:
            end = kt.segment_end(tokens, start)
            while end < len(tokens) and tokens[end].kind == kt.BAR:
                end = kt.segment_end(tokens, end + 1)
            if _is_tabular(tokens, start, end, tabular):
                tabular.add(tokens[name].text)
            continue
        close = kt.closing(tokens, start)
        brace = kt.next_sig(tokens, close) if close < len(tokens) else None
        if brace is None or tokens[brace].kind != kt.OPENBRACE:
            continue
        if any(tokens[j].kind == kt.OPENPAREN for j in range(start + 1, close)):
            continue  # a tabular parameter, `(T:(*))`: not a stored function's shape
        body_end = kt.closing(tokens, brace)
        if body_end >= len(tokens) or not _function_is_tabular(
            tokens, brace + 1, body_end, tabular
        ):
            continue
        semi = kt.next_sig(tokens, body_end)
        last = semi if semi is not None and tokens[semi].kind == kt.SEMICOLON else body_end
        params = kt.render(tokens[start : close + 1])
        body = kt.render(tokens[brace : body_end + 1])
        definitions.append(f"function {tokens[name].text}{params} {body}")
        tabular.add(tokens[name].text)
        removed |= set(range(let, last + 1))
    if not removed:
        return tokens, []
    out = [kt.blank([t])[0] if i in removed else t for i, t in enumerate(tokens)]
    return out, definitions


# -- names that differ only in case -------------------------------------------------------------


def _name_candidates(tokens: Sequence[Token]) -> list[int]:
    """Indices of tokens that name a column or a `let` value (not a function, not a property
    after a dot, not a `render` property)."""
    functions = {
        tokens[name].text
        for start in kt.statement_starts(tokens)
        if tokens[start].kind == kt.OPENPAREN
        and (eq := kt.prev_sig(tokens, start)) is not None
        and tokens[eq].kind == kt.EQUAL
        and (name := kt.prev_sig(tokens, eq)) is not None
    }
    render_until = -1
    found: list[int] = []
    for i, token in enumerate(tokens):
        if token.kind == KqlLexer.RENDER:
            render_until = kt.segment_end(tokens, i + 1)
        if i < render_until or token.kind not in (kt.IDENTIFIER, KqlLexer.TITLE):
            continue
        if kt.is_call(tokens, i) or token.text in functions:
            continue
        if kt.after_dot(tokens, i):
            dot = kt.prev_sig(tokens, i)
            side = kt.prev_sig(tokens, dot) if dot is not None else None
            if side is None or tokens[side].text not in _JOIN_SIDES:
                continue
        found.append(i)
    return found


def _case_renames(
    tokens: list[Token], columns: Mapping[str, Sequence[str]]
) -> tuple[list[Token], dict[str, str]]:
    """Rename names that differ only in case from a column (or from each other).

    KQL keeps `Owner` and `owner` apart; DuckDB folds them together. The table's own spelling
    stays; every other spelling becomes `<name>__ci<n>` throughout the query.
    """
    real = {c for cols in columns.values() for c in cols}
    tables = set(columns)
    spellings: dict[str, list[str]] = {}
    candidates = _name_candidates(tokens)
    for i in candidates:
        text = tokens[i].text
        if text in tables:
            continue
        group = spellings.setdefault(text.lower(), [])
        if text not in group:
            group.append(text)
    rename: dict[str, str] = {}
    for group in spellings.values():
        if len(group) < 2:
            continue
        keep = [s for s in group if s in real] or group[:1]
        for spelling in group:
            if spelling not in keep:
                rename[spelling] = f"{spelling}{_RENAME_MARK}{len(rename) + 1}_"
    if not rename:
        return tokens, {}
    out = list(tokens)
    for i in candidates:
        new = rename.get(tokens[i].text)
        if new:
            out[i] = Token(kt.IDENTIFIER, new, tokens[i].origin, synthetic=True)
    return out, {internal: name for name, internal in rename.items()}


# -- errors in the user's terms ---------------------------------------------------------------


def _construct(construct: str, rewritten: Rewritten, where: tuple[int, int] | None) -> str:
    """What a duckdb-kql construct name means in the query the user wrote."""
    kind, _, name = construct.partition(":")
    if kind == "function" and name:
        return f"{name}()"
    if kind == "aggregate" and name:
        return f"{name}() in summarize"
    if kind == "source" and name == "ParenthesizedExpression":
        return "a parenthesised source"
    if kind == "expression" and name == "StringStarOperatorExpression":
        return "* has"  # where the layer does not know the input's columns (`kqlsearch`)
    if construct.endswith("Operator") and where is not None:
        try:
            tokens = kt.tokenize(rewritten.original)
        except kt.LexError:
            return construct
        offset = kt.offset_of(rewritten.original, *where)
        sig = [t for t in tokens if not t.hidden and t.origin >= offset][:3]
        if sig:
            words = [sig[0].text]
            if sig[0].kind == KqlLexer.EVALUATE and len(sig) > 1:
                words.append(sig[1].text)
            return " ".join(words)
    return construct


def explain_unsupported(
    construct: str, line: int | None, column: int | None, rewritten: Rewritten
) -> str:
    """`not supported yet: <construct> at L:C`, the position in the user's query."""
    where = rewritten.position(line, column) if line is not None and column is not None else None
    what = rewritten.restore(_construct(construct, rewritten, where))
    at = f" at {where[0]}:{where[1]}" if where else ""
    return f"not supported yet: {what}{at}"


__all__ = ["Rewritten", "explain_unsupported", "rewrite", "unchanged"]
