"""duckdb-kql's SQL, patched where it answers otherwise than Kusto and the right answer depends
on a type only DuckDB knows.

The compatibility layer (`compat`) rewrites the KQL before translation, but KQL text carries
no types, and these differences turn on one: a string column is never null in Kusto, a
timespan averages to a timespan, a `dynamic` array in an `in (...)` list is its elements. Each
patch turns one shape duckdb-kql emits into SQL that asks `typeof(...)`, which DuckDB answers
when it binds the query, so the branch for the actual type is the only one that runs while
every branch still binds (duckdb-kql's own way with `toscalar`). The patches read the SQL with
the inside of every string literal and quoted name masked, so text in them is never taken for
structure; a shape that is not there leaves the SQL as it is.

* after an outer `join` or `lookup`, and in an outer `union`, a string column a row has no
  value for is `""`, not null (Kusto has no null string; `== ""` and `by` must see it);
* `avg()` and `avgif()` of a timespan are timespans (duckdb-kql's NaN default for an empty
  average is a real, which did not bind against an interval);
* `x in (T)` with T's first column `dynamic` compares `x` with the elements of its arrays
  (and its scalars), as Kusto flattens them (`in (T | summarize make_set(y))`), where DuckDB
  read `x` as JSON, or compared it with a whole list, and failed;
* `make_set()` of text that reads as a JSON array keeps it as one string, where duckdb-kql
  spread it (and failed);
* `NULL_MARK`, the name `compat` writes where KQL has no untyped null (`maxif(x, p)` is
  `max(iff(p, x, NULL_MARK))`), is `NULL`, which takes the type of the other branch;
* `ROW_NUMBER_MARK`, the name `compat` writes for `row_number()`, is the rows' number in
  the order of the `sort` (or `top`) before it, through the steps that keep the rows' order
  (`where`, `extend`, `project`, `take`); without one it is an error, as Kusto's
  `row_number()` wants serialized rows. The names `prev_mark` makes (for `prev(x, n)` and
  `next(x, n)`) are the column's value `n` rows before or after, in the same order.

* a `real` made text (`tostring`, `strcat`) reads as .NET writes it, as Kusto does: a
  whole number without `.0` (`round(50.0, 1)` is "50"), exponents as `E+20` and `E-07`,
  `Infinity` (DuckDB writes "50.0", "1e+20", "inf"; `sandbox.REAL_TEXT`).

* `make_list()` and `make_set()` hold each datetime and timespan as the text Kusto keeps in
  a `dynamic` (`sandbox.DYNAMIC_VALUE`, as duckdb-kql's `pack_array` writes it), where DuckDB's
  lists held its own values, which its JSON writes `2021-09-20 16:00:00`, `1 day 03:25:00`;
* `a / b`: a timespan divided by a number is a timespan, two timespans a real, a number divided
  by a timespan refused (`sandbox.DIVIDE`, which picks its branch by type as DuckDB binds);
* `round(x, digits)` rounds `x` scaled by the power of ten (`sandbox.ROUND`): `round(2.15, 1)`
  is 2.2, as Kusto documents, where DuckDB's answer was 2.1.

One patch is a bound, not a difference: `strrep`'s `repeat()` fails the query with a clear
error, where it would make a string longer than `generators.MAX_STRREP_BYTES`, before it
makes it (DuckDB can neither interrupt nor account for one value; see `generators`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from xdrsync.tables.errors import TOO_LARGE
from xdrsync.tables.functionsql import FUNCTIONS
from xdrsync.tables.generators import MAX_STRREP_BYTES
from xdrsync.tables.sandbox import DIVIDE, DYNAMIC_VALUE, REAL_TEXT, ROUND, VALUE_TEXT

#: A name no query means: `compat` writes it for a null of whatever type its context needs.
NULL_MARK: Final = "__xdrsync_null"
#: Another: `compat` writes it for `row_number()`, numbered here in the order of the rows.
ROW_NUMBER_MARK: Final = "__xdrsync_row_number"
#: The names of the marks read in the rows' order: `row_number()`, and `prev(x, n)` and
#: `next(x, n)` (`prev_mark`) of a column `x`.
_ORDER_MARK: Final = re.compile(
    rf'"(?:{ROW_NUMBER_MARK}|__xdrsync_(prev|next)_(\d+)_([A-Za-z_][A-Za-z0-9_]*))"'
)


def prev_mark(function: str, column: str, offset: int) -> str:
    """The name `compat` writes for `prev(column, offset)` (or `next`), read here."""
    return f"__xdrsync_{function}_{offset}_{column}"


#: The key of the property bag `compat` writes for a call of a function duckdb-kql lacks
#: (`function_mark`); the function's name follows it.
FUNCTION_MARK: Final = "__xdrsync_fn_"


def function_mark(name: str, args: Sequence[str]) -> str:
    """The KQL `compat` writes for `name(args)`: `bag_pack("__xdrsync_fn_<name>", "", "1",
    a1, "2", a2, ...)`, which duckdb-kql translates as `json_object(...)` with each argument
    as JSON, and which `patch` makes the function's SQL (`functionsql`)."""
    pairs = [f'"{FUNCTION_MARK}{name}", ""']
    pairs.extend(f'"{n}", {arg}' for n, arg in enumerate(args, start=1))
    return f"bag_pack({', '.join(pairs)})"


_MASK: Final = "\x01"


#: SQL longer than this is not patched: a patch copies a subquery (`in`), so nested ones
#: would double it at each level, and each patch reads the whole text. A query that needs a
#: patch then (a function mark, which means nothing unpatched, or any other place a patch
#: would change) is refused (`SqlTooLargeError`); one that needs none runs as it is.
MAX_PATCHED_SQL: Final = 1_000_000


class PatchError(ValueError):
    """The SQL cannot be made to answer as Kusto does; the message says why, in KQL's terms."""


class SqlTooLargeError(PatchError):
    """The SQL needs a patch and is longer than `MAX_PATCHED_SQL`."""

    def __init__(self) -> None:
        super().__init__(
            f"the query's SQL is longer than {MAX_PATCHED_SQL:,} characters once translated; "
            "make it shorter, or name a nested call's result first (`extend x = ...`)"
        )


def patch(sql: str) -> str:
    """`sql` with every patch applied; `PatchError` where one must be and cannot
    (`SqlTooLargeError`: a patch would rewrite SQL longer than `MAX_PATCHED_SQL`)."""
    if f"'{FUNCTION_MARK}" in sql:
        sql = _functions(sql)
    if f'"{NULL_MARK}"' in sql:
        sql = _replace_name(sql, f'"{NULL_MARK}"', "NULL")
    if _ORDER_MARK.search(sql):
        sql = _row_numbers(sql)
    for one in (
        _bounded_repeats,
        _dotnet_reals,
        _timespan_divisions,
        _scaled_rounds,
        _string_sets,
        _dynamic_lists,
        _outer_joins,
        _outer_unions,
        _interval_averages,
        _dynamic_in_subqueries,
    ):
        sql = one(sql)
    return sql


# -- reading SQL ------------------------------------------------------------------------------


_QUOTED: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def _mask(sql: str) -> str:
    """`sql` with the inside of each string literal and quoted name replaced by `_MASK`, so
    offsets stay and brackets and keywords in them are not seen."""
    return _QUOTED.sub(lambda m: m[0][0] + _MASK * (len(m[0]) - 2) + m[0][-1], sql)


def _replace_name(sql: str, name: str, new: str) -> str:
    """`sql` with each quoted name `name` (outside string literals) replaced by `new`."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        quote = sql[i]
        if quote not in "'\"":
            out.append(quote)
            i += 1
            continue
        j = i + 1
        while j < n and not (sql[j] == quote and sql[j + 1 : j + 2] != quote):
            j += 2 if sql[j] == quote else 1
        text = sql[i : j + 1]
        out.append(new if quote == '"' and text == name else text)
        i = j + 1
    return "".join(out)


def _close(masked: str, i: int) -> int:
    """The index of the bracket closing the one at `i`, or -1."""
    depth = 0
    for j in range(i, len(masked)):
        if masked[j] == "(":
            depth += 1
        elif masked[j] == ")":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _open_before(masked: str, i: int) -> int:
    """The index of the innermost bracket still open at `i`, or -1."""
    depth = 0
    for j in range(i - 1, -1, -1):
        if masked[j] == ")":
            depth += 1
        elif masked[j] == "(":
            if depth == 0:
                return j
            depth -= 1
    return -1


def _each(sql: str, find: re.Pattern[str], edit: Callable[[str, str, int], str | None]) -> str:
    """Apply `edit(sql, masked, start)` at each match of `find` in the masked SQL, last first
    (an edit never moves what comes before it); `edit` returns the new SQL or None."""
    masked = _mask(sql)
    starts = [m.start() for m in find.finditer(masked)]
    for start in reversed(starts):
        changed = edit(sql, masked, start)
        if changed is None:
            continue
        if len(sql) > MAX_PATCHED_SQL:  # it would answer otherwise than Kusto unpatched
            raise SqlTooLargeError
        sql = changed
        masked = _mask(sql)
    return sql


# -- rows in their order: row_number(), prev(), next() -----------------------------------------

#: A step of duckdb-kql's pipeline: `_s3 AS (` (the name, then the bracket). Every nested
#: `WITH` (a `let`, a `union` or `join` argument, `toscalar`) names its steps `_s0`, `_s1`, ...
#: again, so a step is known by its name and the bracket it sits in.
_STEP: Final = re.compile(r"\b(_s\d+) AS \(")
#: A step that keeps its source's row order, read at depth 0 (brackets' insides blanked):
#: `SELECT <list> FROM _s2` then perhaps a `WHERE`, an `ORDER BY` (a sort) or a `LIMIT`.
_ORDERED_STEP: Final = re.compile(
    r"SELECT (.+?) FROM (_s\d+)(?: WHERE .+| ORDER BY (.+?)(?: LIMIT \d+)?| LIMIT \d+)?",
    re.DOTALL,
)
_REORDERS: Final = re.compile(r"\b(?:GROUP BY|JOIN|UNION|DISTINCT|HAVING|QUALIFY)\b")
#: The rows' place in the sort, carried from the sort's step to the numbering one (never shown);
#: `prev(POSITION_MARK, n)` is null exactly past the first rows (`compat`'s default values).
POSITION_MARK: Final = "__xdrsync_position"
_POSITION: Final = f'"{POSITION_MARK}"'


class RowOrderError(PatchError):
    """`row_number()`, `prev()` or `next()` where this cannot read the rows in their order;
    the message says why."""


@dataclass(frozen=True)
class _Step:
    name: str
    scope: int  # the bracket its `WITH` sits in (-1: the query's own)
    start: int  # its body, inside the brackets
    end: int


def _depth0(masked: str) -> str:
    """`masked` with the inside of every bracket blanked (offsets kept)."""
    out: list[str] = []
    depth = 0
    for ch in masked:
        if ch == ")":
            depth -= 1
        out.append(ch if depth == 0 else " ")
        if ch == "(":
            depth += 1
    return "".join(out)


def _row_numbers(sql: str) -> str:
    """Each `ROW_NUMBER_MARK` -> the rows' number in the order of the sort before it, and
    each `prev_mark` -> the column's value that many rows before (`lag`) or after (`lead`).

    The sort's step gets the place of each row in its order (`row_number() OVER (ORDER BY
    <its clause>)`, over the columns it sorted, before any later step changes them); the
    steps after it carry that place; the marked step reads its rows in that order. So a
    filter in between leaves no gaps, and every mark of the query agrees on ties."""
    masked = _mask(sql)
    steps: dict[tuple[int, str], _Step] = {}
    openings: dict[int, _Step] = {}
    for m in _STEP.finditer(masked):
        opening = m.end() - 1
        step = _Step(m[1], _open_before(masked, m.start()), opening + 1, _close(masked, opening))
        steps[(step.scope, step.name)] = openings[opening] = step

    def shape(step: _Step) -> re.Match[str] | None:
        body = _depth0(masked[step.start : step.end])
        if _REORDERS.search(body):
            return None
        return _ORDERED_STEP.fullmatch(body)

    def step_of(i: int) -> _Step | None:
        j = _open_before(masked, i)
        while j >= 0 and j not in openings:
            j = _open_before(masked, j)
        return openings.get(j)

    edits: dict[int, tuple[int, str]] = {}  # offset -> (length replaced, new text)
    for found in _ORDER_MARK.finditer(sql):
        at = found.start()
        if masked[at] != '"' or masked[at + 1] != _MASK:
            continue  # inside a string literal
        marked = step_of(at)
        own = shape(marked) if marked is not None else None
        if marked is None or own is None:
            raise RowOrderError(_NO_ORDER)
        if at - marked.start > own.end(1) or own[1].startswith("*"):
            # not among the columns an `extend` or `project` makes: a `where`, a `sort`
            raise RowOrderError(
                "row_number(), prev() or next() in a `where` or `sort by`: make a column of "
                "it first, `| extend n = row_number() | where n ...`"
            )
        between: list[tuple[_Step, re.Match[str]]] = []
        step, source = marked, own
        while True:
            earlier = steps.get((step.scope, source[2]))
            read = shape(earlier) if earlier is not None else None
            if earlier is None or read is None:
                raise RowOrderError(_NO_ORDER)
            step, source = earlier, read
            if source[3] is not None:
                break
            between.append((step, source))
        if source[1] != "*":
            raise RowOrderError(_NO_ORDER)
        clause = sql[step.start + source.start(3) : step.start + source.end(3)]
        place = f", row_number() OVER (ORDER BY {clause}) AS {_POSITION}"
        edits[step.start + source.end(1)] = (0, place)
        for carrier, listed in between:
            if listed[1] != "*":
                edits[carrier.start + listed.end(1)] = (0, f", {_POSITION}")
        if sql[max(at - 4, 0) : at] == " AS ":
            raise RowOrderError(  # duckdb-kql named the column after the mark
                "row_number(), prev() and next() need a column name: "
                "`| extend n = row_number()`, `| extend p = prev(x)`"
            )
        if found[1] is None:
            window = f"row_number() OVER (ORDER BY {_POSITION})"
        else:
            function = "lag" if found[1] == "prev" else "lead"
            # past either end: "" for a string, as Kusto has no null string
            window = _not_null_string(
                f'{function}("{found[3]}", {found[2]}) OVER (ORDER BY {_POSITION})'
            )
        edits[at] = (len(found[0]), window)
    for at in sorted(edits, reverse=True):  # an edit never moves what comes before it
        length, text = edits[at]
        sql = sql[:at] + text + sql[at + length :]
    return sql


_NO_ORDER: Final = (
    "row_number(), prev() and next() read rows in an order: put a `sort by` (or `top`) "
    "before them, with only "
    "operators that keep the rows' order between (`where`, `extend`, `project`, `take`; "
    "none of them with a `toscalar()`)"
)


# -- functions duckdb-kql lacks (`kqlfunctions`, and `compat`'s make_bag) ----------------------

_FUNCTION_SQL: Final = re.compile(rf"json_object\('{FUNCTION_MARK}([a-z_]+)', ")


def _functions(sql: str) -> str:
    """Each `function_mark` made the SQL of its function (`functionsql`), innermost (last)
    first, in one pass. A mark whose shape is not one `function_mark` writes (a user's own
    `bag_pack` of such a key) is left as it is; one inside a string literal is no mark."""
    masked = _mask(sql)
    starts = [
        m.start()
        for m in _FUNCTION_SQL.finditer(sql)
        if masked.startswith("json_object('", m.start())
    ]
    for start in reversed(starts):  # a mark's arguments come after it: edited already
        if len(sql) > MAX_PATCHED_SQL:
            raise SqlTooLargeError
        found = _FUNCTION_SQL.match(sql, start)
        assert found is not None
        opening = start + len("json_object")
        end = _close(masked, opening)
        function = FUNCTIONS.get(found[1])
        if end < 0 or function is None:
            continue
        parts = _split(sql, masked, opening + 1, end)
        args = parts[3::2]
        numbered = parts[2::2] == [f"'{n}'" for n in range(1, len(args) + 1)]
        if len(parts) % 2 or not numbered or len(args) not in function.arities:
            continue
        made = f"({function.sql(args)})"
        sql = sql[:start] + made + sql[end + 1 :]
        masked = masked[:start] + _mask(made) + masked[end + 1 :]  # what comes before stays
    return sql


def _split(sql: str, masked: str, start: int, end: int) -> list[str]:
    """`sql[start:end]` split at the commas outside any bracket (read in `masked`)."""
    parts: list[str] = []
    depth, at = 0, start
    for i in range(start, end):
        ch = masked[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(sql[at:i].strip())
            at = i + 1
    parts.append(sql[at:end].strip())
    return parts


# -- a real's text ----------------------------------------------------------------------------

#: duckdb-kql's `tostring` of a DOUBLE (also inside `strcat`), read masked: `CASE CAST(x AS
#: VARCHAR) WHEN 'nan' THEN 'NaN' WHEN '-nan' THEN 'NaN' ELSE CAST(x AS VARCHAR) END`.
_DOUBLE_TEXT: Final = re.compile(f"WHEN '{_MASK}{{6}}' THEN (CASE CAST)\\(")
_DOUBLE_TAIL: Final = " WHEN 'nan' THEN 'NaN' WHEN '-nan' THEN 'NaN' ELSE CAST("


def _dotnet_reals(sql: str) -> str:
    """duckdb-kql's text of a DOUBLE -> `sandbox.REAL_TEXT` of it, the macro each query's
    connection makes (`sandbox.SESSION_STATEMENTS`); `x` is written once, not twice. The
    branch after it, any other type's text, -> `sandbox.VALUE_TEXT`: a list (`make_list`'s,
    `split`'s) as Kusto writes a dynamic array, `[1,2]` and `["a","b"]`, not DuckDB's `[1, 2]`
    and `[a, b]`."""
    if "'DOUBLE' THEN CASE CAST(" not in sql:
        return sql  # most queries: no pass over a masked copy

    def edit(sql: str, masked: str, start: int) -> str | None:
        found = _DOUBLE_TEXT.match(masked, start)
        if found is None or sql[start + 6 : start + 12] != "DOUBLE":  # another masked literal
            return None
        opening = found.end() - 1
        end = _close(masked, opening)
        inner = sql[opening + 1 : end]
        if end < 0 or not inner.endswith(" AS VARCHAR"):
            return None
        tail = f"{_DOUBLE_TAIL}{inner}) END"
        if not sql.startswith(tail, end + 1):
            return None
        rest = end + 1 + len(tail)
        real = f"{REAL_TEXT}(CAST({inner}))"
        other = f" ELSE CAST({inner}) END"
        if not sql.startswith(other, rest):
            return f"{sql[: found.start(1)]}{real}{sql[rest:]}"
        value = inner.removesuffix(" AS VARCHAR")
        after = rest + len(other)
        return f"{sql[: found.start(1)]}{real} ELSE {VALUE_TEXT}({value}) END{sql[after:]}"

    return _each(sql, _DOUBLE_TEXT, edit)


# -- round(x, digits) --------------------------------------------------------------------------

_ROUND: Final = re.compile(r"(?<![\w.\x01\"])round\(CAST\(")


def _scaled_rounds(sql: str) -> str:
    """duckdb-kql's `round(CAST(x AS DOUBLE), CAST(d AS INTEGER))` -> `sandbox.ROUND` of the
    same: `round(2.15, 1)` is 2.2, as Kusto documents, where DuckDB's answer was 2.1. The
    one-argument `round(x)` already rounds half away from zero; the result stays a real."""
    if "round(CAST(" not in sql:
        return sql  # most queries: no pass over a masked copy

    def edit(sql: str, masked: str, start: int) -> str | None:
        opening = start + len("round")
        end = _close(masked, opening)
        if end < 0:
            return None
        parts = _split(sql, masked, opening + 1, end)
        if len(parts) != 2 or not parts[1].endswith(" AS INTEGER)"):
            return None
        return f"{sql[:start]}{ROUND}({parts[0]}, {parts[1]}){sql[end + 1 :]}"

    return _each(sql, _ROUND, edit)


# -- a timespan divided ----------------------------------------------------------------------

#: duckdb-kql's `a / b`, read masked: `(epoch(a) / epoch(b))` when it sees a timespan on either
#: side (a literal, `1h`), `(a // NULLIF(b, 0))` when it sees no type (columns).
_DIVISION: Final = re.compile(r"(?<![\w.\x01\"])\(epoch\(| // NULLIF\(")


def _timespan_divisions(sql: str) -> str:
    """`a / b` -> `sandbox.DIVIDE(a, b)`: a timespan divided by a number is a timespan, as in
    Kusto (`1h / 2` is `00:30:00`), where DuckDB had no such division (`epoch(2)`, `interval //
    bigint` failed to bind); two timespans still divide to a real, and numbers as before."""
    if "epoch(" not in sql and " // NULLIF(" not in sql:
        return sql  # most queries: no pass over a masked copy

    def division(sql: str, masked: str, start: int) -> tuple[int, str] | None:
        """(where the division's bracket opens, its new SQL up to the end), or None."""
        epoch = masked.startswith("(epoch(", start)
        if epoch:
            outer = start
            left_end = _close(masked, start + len("(epoch"))
            if left_end < 0 or not masked.startswith(") / epoch(", left_end):
                return None
            left = sql[start + len("(epoch(") : left_end]
            right_open = left_end + len(") / epoch")
        else:
            outer = _open_before(masked, start)
            left = sql[outer + 1 : start]
            right_open = start + len(" // NULLIF")
            if outer < 0 or left.startswith("_bin."):  # `bin()`'s own: numbers only
                return None
        right_end = _close(masked, right_open)
        right = sql[right_open + 1 : right_end]
        if right_end < 0 or not (epoch or right.endswith(", 0")):
            return None
        end = right_end + 1
        if masked[end : end + 1] != ")" or _close(masked, outer) != end:
            return None
        right = right if epoch else right.removesuffix(", 0")
        return outer, f"{sql[:outer]}{DIVIDE}({left}, {right}){sql[end + 1 :]}"

    # Innermost (last-opened) first; an edit changes the text from its division's bracket on,
    # which may hold the operator of one opened before it: so each round reads the SQL anew.
    bound = len(sql)
    while True:
        masked = _mask(sql)
        found = [d for m in _DIVISION.finditer(masked) if (d := division(sql, masked, m.start()))]
        found = [d for d in found if d[0] < bound]
        if not found:
            return sql
        bound, changed = max(found)
        if len(changed) > MAX_PATCHED_SQL:
            raise SqlTooLargeError
        sql = changed


# -- strrep's bound ---------------------------------------------------------------------------

_REPEAT: Final = re.compile(r"\brepeat\(")
#: What the query fails with when a `strrep` would pass its bound (`errors.TOO_LARGE` first,
#: so the store reports it as a limit hit).
_REPEAT_TOO_LONG: Final = (
    f"{TOO_LARGE}strrep would make a string longer than {MAX_STRREP_BYTES:,} bytes"
)


def _bounded_repeats(sql: str) -> str:
    """`repeat(s, n)` (duckdb-kql's `strrep`) -> an error when `s` is longer than the bound
    allows for `n` copies, else the same `repeat`. `s` is written once, bound to a lambda's
    parameter, so nested calls cost no more SQL than before; `n` is a constant (`guard`),
    written twice."""
    if "repeat(" not in sql:
        return sql  # most queries: no pass over a masked copy

    def edit(sql: str, masked: str, start: int) -> str | None:
        opening = start + len("repeat")
        end = _close(masked, opening)
        if end < 0:
            return None
        parts = _split(sql, masked, opening + 1, end)
        if len(parts) != 2:
            return None
        value, count = parts
        s = "__xdrsync_s"
        too_long = f"strlen(CAST({s} AS VARCHAR)) * CAST({count} AS DOUBLE) > {MAX_STRREP_BYTES}"
        checked = (
            f"CASE WHEN {too_long} THEN error('{_REPEAT_TOO_LONG}') ELSE repeat({s}, {count}) END"
        )
        return f"{sql[:start]}list_transform([{value}], lambda {s}: {checked})[1]{sql[end + 1 :]}"

    return _each(sql, _REPEAT, edit)


# -- a set of strings ---------------------------------------------------------------------------

#: duckdb-kql's `make_set(x)` spreads each value that reads as a JSON array into its elements;
#: so for a string, `to_json` of which is a JSON string, the `CAST(... AS JSON[])` failed.
_SPREAD: Final = re.compile(r"CASE WHEN json_type\(TRY_CAST\(")


def _string_sets(sql: str) -> str:
    """`make_set()` of text that looks like a JSON array (`"[1,2]"`) keeps the text as one
    value, as Kusto does: only a `dynamic` array is spread."""
    if "CASE WHEN json_type(TRY_CAST(" not in sql:
        return sql  # most queries: no pass over a masked copy

    def edit(sql: str, masked: str, start: int) -> str | None:
        opening = start + len("CASE WHEN json_type(TRY_CAST")
        end = _close(masked, opening)
        inside = sql[opening + 1 : end]
        tail = f" = 'ARRAY' THEN CAST(to_json({inside.removesuffix(' AS JSON')}) AS JSON[])"
        if end < 0 or not inside.endswith(" AS JSON") or not sql.startswith(tail, end + 2):
            return None
        at = start + len("CASE WHEN ")
        value = inside.removesuffix(" AS JSON")
        return f"{sql[:at]}typeof({value}) <> 'VARCHAR' AND {sql[at:]}"

    return _each(sql, _SPREAD, edit)


# -- datetimes and timespans in a list or set ----------------------------------------------

#: duckdb-kql's `make_list(x)`, read masked: `coalesce(list(x) FILTER (WHERE x IS NOT NULL), [])`,
#: and the element of its `make_set(x)`: `ELSE [to_json(x)] END) FILTER (WHERE x IS NOT NULL)`.
_LIST: Final = re.compile(r"coalesce\(list\(|ELSE \[to_json\(")


def _dynamic_lists(sql: str) -> str:
    """The values `make_list()` and `make_set()` collect -> `sandbox.DYNAMIC_VALUE` of each:
    a datetime or timespan as the text Kusto keeps in a `dynamic` (`2021-09-20T16:00:00.0000000Z`,
    `1.03:25:00`), as `pack_array` writes it, where DuckDB's list held its own values (which its
    JSON writes `2021-09-20 16:00:00`, `1 day 03:25:00`). A list is then a list of JSON values
    whatever it collects, as a `dynamic` array is in Kusto."""
    if "coalesce(list(" not in sql and "ELSE [to_json(" not in sql:
        return sql  # most queries: no pass over a masked copy

    def edit(sql: str, masked: str, start: int) -> str | None:
        listed = sql.startswith("coalesce(list(", start)
        opening = start + (len("coalesce(list") if listed else len("ELSE [to_json"))
        end = _close(masked, opening)
        if end < 0:
            return None
        value = sql[opening + 1 : end]
        if listed:
            tail, head, rest = f") FILTER (WHERE {value} IS NOT NULL), [])", "coalesce(list(", end
        else:
            tail, head, rest = f")] END) FILTER (WHERE {value} IS NOT NULL)", "ELSE [", end + 1
        if not sql.startswith(tail, end):
            return None
        return f"{sql[:start]}{head}{DYNAMIC_VALUE}({value}){sql[rest:]}"

    return _each(sql, _LIST, edit)


# -- strings are never null -------------------------------------------------------------------


def _not_null_string(value: str) -> str:
    """`value`, with a null made `""` when its type is VARCHAR; other types untouched."""
    return f"CASE WHEN typeof({value}) = 'VARCHAR' AND {value} IS NULL THEN '' ELSE {value} END"


_NAME: Final = r'"[^"]*"'
_ITEM: Final = rf"_[lr]\.{_NAME} AS {_NAME}"
# Patterns of the SQL duckdb-kql writes, not SQL being built (and so for the rest of the file:
# what the patches write is that SQL rearranged, and `sandbox.check_sql` checks it after them).
_JOIN: Final = re.compile(
    rf"SELECT ((?:{_ITEM}, )*{_ITEM}) FROM \S+ AS _l (LEFT|RIGHT|FULL OUTER) JOIN \("  # noqa: S608
)
_JOIN_ITEM: Final = re.compile(rf"(_[lr])\.({_NAME}) AS ({_NAME})")
_OUTER_SIDES: Final = {"LEFT": ("_r",), "RIGHT": ("_l",), "FULL OUTER": ("_l", "_r")}


def _outer_joins(sql: str) -> str:
    """An outer `join`/`lookup`: the other side's string columns of an unmatched row -> `""`."""

    def edit(sql: str, masked: str, start: int) -> str | None:
        found = _JOIN.match(masked, start)
        if found is None:
            return None
        sides = _OUTER_SIDES[found.group(2)]
        begin, end = found.span(1)
        items: list[str] = []
        for item in _JOIN_ITEM.finditer(masked, begin, end):
            side = item.group(1)
            source = sql[item.start(2) : item.end(2)]
            target = sql[item.start(3) : item.end(3)]
            value = f"{side}.{source}"
            items.append(f"{_not_null_string(value) if side in sides else value} AS {target}")
        return sql[:begin] + ", ".join(items) + sql[end:]

    return _each(sql, re.compile(r"SELECT _[lr]\."), edit)


_UNION: Final = re.compile(rf"SELECT ((?:{_NAME}, )*{_NAME}) FROM \(")  # noqa: S608
_UNION_ARM: Final = "\nUNION ALL BY NAME "


def _outer_unions(sql: str) -> str:
    """An outer `union`: a string column a branch does not have -> `""` in its rows."""

    def edit(sql: str, masked: str, start: int) -> str | None:
        found = _UNION.match(masked, start)
        if found is None:
            return None
        open_ = found.end() - 1
        close = _close(masked, open_)
        if close < 0 or not _at_depth(masked, open_ + 1, close, _UNION_ARM):
            return None
        begin, end = found.span(1)
        names = [sql[m.start() : m.end()] for m in re.compile(_NAME).finditer(masked, begin, end)]
        items = [f"{_not_null_string(name)} AS {name}" for name in names]
        return sql[:begin] + ", ".join(items) + sql[end:]

    return _each(sql, re.compile(r"SELECT \""), edit)


def _at_depth(masked: str, start: int, end: int, text: str) -> bool:
    """Whether `text` occurs in `masked[start:end]` outside every bracket opened there."""
    depth = 0
    for j in range(start, end):
        if masked[j] == "(":
            depth += 1
        elif masked[j] == ")":
            depth -= 1
        elif depth == 0 and masked.startswith(text, j):
            return True
    return False


# -- the average of timespans -----------------------------------------------------------------

_NAN_DEFAULT: Final = ", CAST('NaN' AS DOUBLE))"
_AVERAGE: Final = re.compile(r"coalesce\(avg\(")


def _interval_averages(sql: str) -> str:
    """`coalesce(avg(x) [FILTER (...)], NaN)` -> the average itself when `x` is a timespan
    (an interval; null for no rows), the coalesced real otherwise."""

    def edit(sql: str, masked: str, start: int) -> str | None:
        avg = start + len("coalesce(")
        close = _close(masked, avg + len("avg"))
        if close < 0:
            return None
        end = close + 1
        if masked.startswith(" FILTER (", end):
            end = _close(masked, end + len(" FILTER ")) + 1
            if end <= 0:
                return None
        if not sql.startswith(_NAN_DEFAULT, end) or _AVERAGE.search(masked, avg, end):
            return None  # the average is written three times: only the innermost is patched
        aggregate = sql[avg:end]
        new = (
            f"CASE WHEN typeof({aggregate}) = 'INTERVAL' THEN {aggregate} "
            f"ELSE coalesce({aggregate}, 'NaN') END"
        )
        return sql[:start] + new + sql[end + len(_NAN_DEFAULT) :]

    return _each(sql, _AVERAGE, edit)


# -- `in` over a tabular expression of dynamic values -------------------------------------------

_IN_SUBQUERY: Final = re.compile(r" IN \(SELECT (_c1|lower\(CAST\(_c1 AS VARCHAR\)\)) FROM \(")
_ALIAS: Final = ") AS _q(_c1))"


def _flattened(body: str, lower: bool) -> str:
    """The elements of the `dynamic` first column of `body`'s rows, as one list of text: an
    array's elements, a scalar's value."""
    json = "to_json(_c1)"
    values = (
        f"CASE WHEN json_type({json}) = 'ARRAY' THEN CAST({json} AS VARCHAR[]) "
        f"ELSE [json_extract_string({json}, '$')] END"
    )
    if lower:
        values = f"list_transform({values}, lambda v: lower(v))"
    return (
        f"(SELECT flatten(list({values})) FROM ({body}) AS _q(_c1) "  # noqa: S608
        "WHERE typeof(_c1) IN ('JSON', 'JSON[]'))"
    )


def _dynamic_in_subqueries(sql: str) -> str:
    """`(x IN (SELECT _c1 FROM (T) AS _q(_c1)))` -> the same test over the elements of T's
    first column when it is a typed value or a DuckDB list (`make_list`'s: `unnest` of `[v]`,
    recursively, is `v` itself or the elements of a list, nested ones too), or membership of
    `x`'s text in the flattened values when it is JSON (`make_set`'s). Which one T has is its
    type, so one side is always empty, and DuckDB drops it before running anything (the JSON
    side's `x IN` would otherwise read `x` as JSON, and fail). T is written twice, so a T that
    holds another `in (...)` of its own keeps duckdb-kql's SQL (nesting would double it at
    every level); the innermost is patched."""

    def edit(sql: str, masked: str, start: int) -> str | None:
        found = _IN_SUBQUERY.match(masked, start)
        if found is None:
            return None
        group = _open_before(masked, start)
        body_open = found.end() - 1
        body_close = _close(masked, body_open)
        if group < 0 or body_close < 0 or not sql.startswith(_ALIAS, body_close):
            return None
        end = body_close + len(_ALIAS)
        if masked[end : end + 1] != ")" or _close(masked, group) != end:
            return None
        if _IN_SUBQUERY.search(masked, body_open, body_close):
            return None  # the body is copied: only the innermost, so nesting cannot multiply it
        value = sql[group + 1 : start]
        selected = sql[found.start(1) : found.end(1)]
        body = sql[body_open + 1 : body_close]
        lower = selected != "_c1"
        elements = (
            f"SELECT unnest([_c1], recursive := true) AS _c1 FROM ({body}) AS _q(_c1) "  # noqa: S608
            "WHERE typeof(_c1) NOT IN ('JSON', 'JSON[]')"
        )
        typed = f"({value} IN (SELECT {selected} FROM ({elements}) AS _q(_c1)))"  # noqa: S608
        flat = (
            f"coalesce(list_contains({_flattened(body, lower)}, CAST({value} AS VARCHAR)), FALSE)"
        )
        return sql[:group] + f"({typed} OR {flat})" + sql[end + 1 :]

    return _each(sql, _IN_SUBQUERY, edit)


__all__ = [
    "NULL_MARK",
    "ROW_NUMBER_MARK",
    "PatchError",
    "RowOrderError",
    "SqlTooLargeError",
    "patch",
    "prev_mark",
]
