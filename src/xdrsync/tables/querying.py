"""One KQL query, from text to rows: made compatible, admitted, translated, checked, run.

The compatibility layer (`compat`) first rewrites Sentinel constructs duckdb-kql does not
translate as written; everything after it sees only the rewritten query. The order is the
protection: the allow-list (`guard.admit`) sees the parsed query before any
SQL exists; the SQL must be exactly one SELECT (`sandbox.check_sql`); it runs on a connection
with the file system off and its settings locked (`sandbox.query_config`); a watchdog stops it
at its time limit, DuckDB at its memory limit, and only `max_rows` rows are ever fetched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import duckdb

from xdrsync.tables.errors import (
    QueryError,
    QueryLimitError,
    QueryRefusedError,
    engine_message,
    one_line,
    too_large,
    unknown_column,
)
from xdrsync.tables.limits import QueryLimits, Watchdog, time_limit
from xdrsync.tables.rewritten import RewriteRefusedError, Rewritten, unchanged
from xdrsync.tables.sandbox import NUMBER_BY_TIMESPAN, check_sql
from xdrsync.tables.schemas import table_schema

if TYPE_CHECKING:
    import duckdb_kql


@dataclass(frozen=True)
class Translated:
    """The SQL for one admitted query and the values it binds."""

    sql: str
    parameters: Mapping[str, Any]
    #: The query as the compatibility layer rewrote it (internal names, positions).
    rewritten: Rewritten = field(default_factory=lambda: unchanged(""))

    @property
    def hidden(self) -> tuple[str, ...]:
        """The hidden standard columns the query names; its tables must show them."""
        return self.rewritten.hidden

    @property
    def implied(self) -> frozenset[str]:
        """Hidden columns only a function names (`ingestion_time()` reads `_IngestionTime`):
        they are not the user's to see in the result."""
        named = self.rewritten.hidden
        return frozenset(n for n in named if self.rewritten.locate(n) is None)

    def column_name(self, name: str) -> str:
        """A result column's name as the user's query spelled it."""
        return self.rewritten.restore(name)


@dataclass(frozen=True)
class Fetched:
    """What DuckDB returned: its column description and at most `max_rows` rows."""

    description: tuple[tuple[Any, ...], ...]
    rows: list[tuple[Any, ...]]
    truncated: bool


def translate(
    kql: str,
    tables: tuple[str, ...],
    *,
    compatible: bool = True,
    bags: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> Translated:
    """Rewrite `kql` for duckdb-kql (unless `compatible` is False), admit it (reading only
    `tables`) and translate it; needs no connection. `bags` adds the keys of bags the data
    showed (`run`) to those the schemas know."""
    try:
        return _translate(kql, tables, compatible=compatible, bags=bags)
    except RecursionError:
        # duckdb-kql's parser descends once per nested expression, and each `or` of a chain
        # nests one deeper: past Python's recursion limit the query is refused, not a crash.
        raise QueryRefusedError(
            "query refused: it nests too deeply to translate (a long chain of `or`"
            " comparisons with one column reads as `in (...)` or `has_any (...)`)"
        ) from None


def _translate(
    kql: str,
    tables: tuple[str, ...],
    *,
    compatible: bool,
    bags: Mapping[str, Sequence[tuple[str, str]]] | None,
) -> Translated:
    # The parser loads here, on the first query a process translates: a query run before
    # skips it (`translations`), and so does a process that only writes the tables.
    import duckdb_kql

    from xdrsync.tables.compat import rewrite
    from xdrsync.tables.guard import MAX_KQL_CHARS, NO_CLUSTERS, NO_ENTITY_GROUPS, admit
    from xdrsync.tables.sqlpatch import PatchError, patch

    if len(kql) > MAX_KQL_CHARS:
        raise QueryRefusedError(f"query refused: longer than {MAX_KQL_CHARS} characters")
    # The schema comes from the packaged table definitions, which are also what the views
    # are created from: translation never consults the catalog, and `union *` expands to
    # the workspace tables only.
    schema = {name: [c.name for c in table_schema(name).columns] for name in tables}
    known = {
        column.name: [(key.name, key.kql_type) for key in column.keys]
        for name in tables
        for column in table_schema(name).columns
        if column.keys
    }
    types = {name: {c.name: c.kql_type for c in table_schema(name).columns} for name in tables}
    try:
        rewritten = (
            rewrite(kql, schema, {**known, **(bags or {})}, types) if compatible else unchanged(kql)
        )
    except RewriteRefusedError as why:
        raise QueryError(f"KQL error: {why}") from None
    if rewritten.probes:
        # Pending: which columns `bag_unpack` makes depends on the data (`run`
        # translates it again, and admits it then; each probe is admitted before it runs).
        return Translated(sql="", parameters={}, rewritten=rewritten)
    if rewritten.hidden:  # shown only to a query that names them, as in Log Analytics
        schema = {name: [*columns, *rewritten.hidden] for name, columns in schema.items()}
    functions = list(rewritten.functions)
    try:
        admitted = admit(rewritten.text, tables, functions)
        result = duckdb_kql.to_sql(
            admitted,
            schema=schema,
            allow_write=False,
            clusters=NO_CLUSTERS,
            entity_groups=NO_ENTITY_GROUPS,
            functions=functions,
        )
    except QueryError as exc:
        cause = exc.__cause__
        if isinstance(cause, duckdb_kql.KqlUnsupportedError):  # the guard's parse refused it
            raise _unsupported(cause, rewritten) from cause
        raise type(exc)(_kql_message(str(exc), rewritten)) from exc
    except duckdb_kql.KqlUnsupportedError as exc:
        raise _unsupported(exc, rewritten) from exc
    except duckdb_kql.KqlError as exc:
        raise QueryError(_kql_message(f"KQL error: {one_line(str(exc))}", rewritten)) from exc
    if result.unbound:
        names = ", ".join(result.unbound)
        raise QueryError(f"KQL error: declared query parameter with no value: {names}")
    try:
        sql = patch(str(result)) if compatible else str(result)
    except PatchError as why:
        raise QueryError(f"KQL error: {why}") from None
    return Translated(sql=sql, parameters=dict(result.parameters), rewritten=rewritten)


#: JSON value type (DuckDB's `json_type`) -> the KQL type of a column `bag_unpack` makes.
_JSON_KQL_TYPES: Final = {
    "VARCHAR": "string",
    "BIGINT": "long",
    "UBIGINT": "long",
    "DOUBLE": "real",
    "BOOLEAN": "bool",
}
MAX_BAG_KEYS: Final = 1000
_MAX_PROBE_DEPTH: Final = 4


def run(
    con: duckdb.DuckDBPyConnection,
    query: Translated,
    limits: QueryLimits,
    tables: tuple[str, ...],
) -> tuple[Translated, Fetched]:
    """Run `query` on a sandboxed `con` under `limits`: first the probes that read what its
    `bag_unpack` and `pivot` need from the data (`_with_bag_keys`), then the query as that
    made it. One time limit covers all of it, so probes cannot stretch a query past
    `timeout_seconds`. Limit hits become `QueryLimitError`; SQL that is not exactly one
    SELECT (`check_sql`, parsed on `con`), `QueryRefusedError`."""
    with time_limit(con, limits.timeout_seconds) as watchdog:
        translated = _with_bag_keys(con, query, tables, limits, watchdog)
        return translated, _fetch(con, translated, limits, tables, watchdog)


def _with_bag_keys(
    con: duckdb.DuckDBPyConnection,
    query: Translated,
    tables: tuple[str, ...],
    limits: QueryLimits,
    watchdog: Watchdog,
    bags: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    depth: int = 0,
) -> Translated:
    """`query` translated again once the keys of each `bag_unpack` whose keys the schemas do
    not know have been read from the data, as Kusto decides the columns `bag_unpack` makes
    (one per key any row has, in name order, typed by the values)."""
    if not query.rewritten.probes:
        return query
    if depth >= _MAX_PROBE_DEPTH:
        raise QueryError(
            "KQL error: not supported yet: evaluate bag_unpack or pivot nested this deep"
        )
    from xdrsync.tables.kqlpivot import PIVOT_COLUMNS

    keys = dict(bags or {})
    for column, probe in query.rewritten.probes:
        inner = translate(probe, tables, bags=keys)
        inner = _with_bag_keys(con, inner, tables, limits, watchdog, keys, depth + 1)
        if column.startswith(PIVOT_COLUMNS):
            keys[column] = _columns(con, inner, tables, limits, watchdog)
        else:
            keys[column] = _bag_keys(con, inner, tables, limits, watchdog)
    return translate(query.rewritten.original, tables, bags=keys)


def _columns(
    con: duckdb.DuckDBPyConnection,
    probe: Translated,
    tables: tuple[str, ...],
    limits: QueryLimits,
    watchdog: Watchdog,
) -> list[tuple[str, str]]:
    """The columns `probe` answers with, by the names the user's query gives them."""
    check_sql(probe.sql, con)  # a SELECT by itself, before it is wrapped in another
    sql = f"SELECT * FROM ({probe.sql}) AS p LIMIT 0"  # noqa: S608
    found = _fetch(con, replace(probe, sql=sql), limits, tables, watchdog)
    return [(probe.rewritten.restore(str(d[0])), "") for d in found.description]


def _bag_keys(
    con: duckdb.DuckDBPyConnection,
    probe: Translated,
    tables: tuple[str, ...],
    limits: QueryLimits,
    watchdog: Watchdog,
) -> list[tuple[str, str]]:
    from xdrsync.tables.kqlbags import PROBE_COLUMN

    check_sql(probe.sql, con)  # a SELECT by itself, before it is wrapped in another
    bag = f'p."{PROBE_COLUMN}"'
    sql = (
        f"SELECT j.key, list(DISTINCT json_type(j.value)) FROM ({probe.sql}) AS p, "  # noqa: S608
        f"json_each({bag}) AS j WHERE json_type({bag}) = 'OBJECT' GROUP BY j.key ORDER BY j.key"
    )
    few = replace(limits, max_rows=MAX_BAG_KEYS)
    found = _fetch(con, replace(probe, sql=sql), few, tables, watchdog)
    if found.truncated:
        raise QueryError(
            f"KQL error: evaluate bag_unpack or pivot: more than {MAX_BAG_KEYS} keys or values"
        )
    keys: list[tuple[str, str]] = []
    for key, kinds in found.rows:
        types = {_JSON_KQL_TYPES.get(str(kind), "dynamic") for kind in kinds if kind != "NULL"}
        keys.append((str(key), types.pop() if len(types) == 1 else "dynamic"))
    return keys


def _unsupported(exc: duckdb_kql.KqlUnsupportedError, rewritten: Rewritten) -> QueryError:
    """A construct duckdb-kql does not translate, named as the user wrote it."""
    from xdrsync.tables.compat import explain_unsupported

    kind, _, name = exc.construct.partition(":")
    if name and "SEM0100" in (exc.hint or ""):
        return QueryError(f"KQL error: {_same_clause(kind, rewritten.restore(name), rewritten)}")
    if kind == "function" and any(f.startswith(f"function {name}(") for f in rewritten.functions):
        # The call of a `let` function the layer lifted: what failed is inside its body.
        body = one_line(exc.hint or "").removeprefix("in its body: ")
        body = body.replace("unsupported KQL construct ", "not supported yet: ")
        return QueryError(f"KQL error: in the body of let function {name}: {body}")
    line, column = (exc.span.line, exc.span.column) if exc.span else (None, None)
    return QueryError(f"KQL error: {explain_unsupported(exc.construct, line, column, rewritten)}")


def _same_clause(operator: str, name: str, rewritten: Rewritten) -> str:
    """`extend a = 1, b = a + 1`: Kusto resolves every item of one clause against the
    operator's input, where `a` is not a column yet, and refuses it (SEM0100); so does this,
    saying how to write it."""
    where = _read_position(name, rewritten)
    at = f" at {where[0]}:{where[1]}" if where else ""
    return (
        f"'{name}'{at} is assigned in the same {operator} that reads it and is not an input "
        f"column: Kusto cannot resolve it either (SEM0100); assign it first, in an extend of "
        f"its own (`extend {name} = ... | {operator} ... {name} ...`)"
    )


def _read_position(name: str, rewritten: Rewritten) -> tuple[int, int] | None:
    """Where the user's query first reads `name`, rather than assigns it (`name = ...`)."""
    from xdrsync.tables import kqltokens as kt

    try:
        tokens = kt.tokenize(rewritten.original)
    except kt.LexError:
        return None
    for i, token in enumerate(tokens):
        after = kt.next_sig(tokens, i)
        if (
            token.is_word
            and token.text == name
            and (after is None or tokens[after].kind != kt.EQUAL)
        ):
            return kt.line_col(rewritten.original, token.origin)
    return None


def _kql_message(message: str, rewritten: Rewritten) -> str:
    """`message` with positions and names in terms of the query the user wrote."""
    if rewritten.text == rewritten.original:
        return message
    out: list[str] = []
    rest = message
    # Positions are written `at L:C`; each is mapped from the rewritten text to the user's.
    while (found := _next_position(rest)) is not None:
        start, end, line, column = found
        mapped = rewritten.position(line, column)
        out.append(f"{rest[:start]}at {mapped[0]}:{mapped[1]}")
        rest = rest[end:]
    return rewritten.restore("".join(out) + rest)


def _next_position(text: str) -> tuple[int, int, int, int] | None:
    """The first `at L:C` in an error message: (start, end, line, column)."""
    at = text.find("at ")
    while at >= 0:
        head = text[at + 3 :]
        line, _, tail = head.partition(":")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        if line.isdigit() and digits:
            end = at + 3 + len(line) + 1 + digits
            return at, end, int(line), int(tail[:digits])
        at = text.find("at ", at + 1)
    return None


def error_position(message: str) -> tuple[int, int] | None:
    """The place a query error message names (`at L:C`: 1-based line, 0-based column, in
    the query as the user wrote it), or None when it names none."""
    found = _next_position(message)
    return (found[2], found[3]) if found is not None else None


def _fetch(
    con: duckdb.DuckDBPyConnection,
    query: Translated,
    limits: QueryLimits,
    tables: tuple[str, ...],
    watchdog: Watchdog,
) -> Fetched:
    """One statement of `run`, under its time limit (`watchdog`)."""
    if not query.sql:
        raise QueryError(
            "KQL error: the query is not translated yet (an evaluate bag_unpack or pivot's "
            "keys, values or columns unread)"
        )
    check_sql(query.sql, con)
    try:
        if watchdog.fired:  # spent on the statements before this one
            raise duckdb.InterruptException("the time limit passed between statements")
        params = dict(query.parameters)
        cursor = con.execute(query.sql, params) if params else con.execute(query.sql)
        description = tuple(tuple(d) for d in cursor.description or ())
        rows = cursor.fetchmany(limits.max_rows + 1)
    except duckdb.Error as exc:
        if watchdog.signalled:  # Ctrl-C: the watchdog interrupted the engine for it
            raise KeyboardInterrupt from None
        raise _engine_error(exc, watchdog.fired, limits, tables, query.rewritten) from exc
    except RuntimeError as exc:  # Ctrl-C: DuckDB stops the query and raises this instead
        if str(exc) == "Query interrupted":
            raise KeyboardInterrupt from None
        raise
    truncated = len(rows) > limits.max_rows
    return Fetched(description=description, rows=rows[: limits.max_rows], truncated=truncated)


def _engine_error(
    exc: duckdb.Error,
    timed_out: bool,
    limits: QueryLimits,
    tables: tuple[str, ...],
    rewritten: Rewritten,
) -> QueryError:
    if timed_out or isinstance(exc, duckdb.InterruptException):
        return QueryLimitError(
            f"query stopped: it ran longer than its {limits.timeout_seconds:g} s time limit "
            "(query.timeout_seconds)"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryLimitError(
            f"query stopped: it needed more than its {limits.memory_limit_mb} MiB memory limit "
            "(query.memory_limit_mb)"
        )
    bound = too_large(str(exc))
    if bound is not None:  # a bound of the layer's own (`sqlpatch`), hit before it ran away
        return QueryLimitError(f"query stopped: {bound}")
    if isinstance(exc, duckdb.PermissionException):
        # Only reachable if something got past the allow-list; say no more than that.
        return QueryRefusedError("query refused: it tried to use the file system or a setting")
    if "configuration has been locked" in str(exc):
        return QueryRefusedError("query refused: it tried to change a setting")
    hint = _engine_hint(str(exc))
    if hint is not None:
        return QueryError(f"query failed: {hint}")
    message, name = engine_message(str(exc), tables), unknown_column(str(exc))
    if name is None and message.startswith(("Binder Error", "Catalog Error")):
        message = _bind_message(message)
    if name is not None:
        name = rewritten.restore(name)
        where = rewritten.locate(name)
        at = f" at {where[0]}:{where[1]}" if where else ""
        message = f"unknown column '{name}'{at}"
    return QueryError(f"query failed: {rewritten.restore(message)}")


#: DuckDB's type names -> KQL's, for what a query's values were when they did not bind.
_KQL_TYPE_NAMES: Final = (
    (
        re.compile(
            r"\b(?:TINY|SMALL|BIG|HUGE|U?)INT(?:EGER)?(?:_LITERAL)?\b|\bU(?:TINY|SMALL|BIG|HUGE)INT\b"
        ),
        "long",
    ),
    (re.compile(r"\b(?:DOUBLE|FLOAT|DECIMAL(?:\(\d+,\s*\d+\))?)\b"), "real"),
    (re.compile(r"\b(?:VARCHAR|STRING_LITERAL)\b"), "string"),
    (re.compile(r"\bINTERVAL\b"), "timespan"),
    (re.compile(r"\bTIMESTAMP(?: WITH TIME ZONE)?\b"), "datetime"),
    (re.compile(r"\bBOOLEAN\b"), "bool"),
    (re.compile(r"\bJSON\b|\b\w+\[\]"), "dynamic"),
)
_NO_MATCH: Final = re.compile(r"argument types '([^'(]*)\(([^']*)\)'")
_MIXED: Final = re.compile(r"Cannot mix values of type (\S+) and (\S+)")
_NO_FUNCTION: Final = re.compile(
    r"(?:Scalar|Aggregate|Table) Function with name \"?([^\s\"]+)\"? does"
)


def _kql_types(text: str) -> str:
    for pattern, name in _KQL_TYPE_NAMES:
        text = pattern.sub(name, text)
    return text


def _bind_message(message: str) -> str:
    """A DuckDB binder or catalog error the layer has no better word for, in KQL's terms:
    which operator or function was given which types (never DuckDB's own SQL or names)."""
    found = _NO_MATCH.search(message)
    if found is not None:
        function = found[1].strip('"')
        function = "/" if function == "//" else function
        what = f"the operator {function}" if not function[:1].isalpha() else f"{function}()"
        return (
            f"{what} does not take values of types ({_kql_types(found[2])}): convert them "
            "first (tolong(), todouble(), totimespan(), tostring(), ...)"
        )
    found = _MIXED.search(message)
    if found is not None:
        kinds = f"{_kql_types(found[1])} and {_kql_types(found[2])}"
        return (
            f"values of types {kinds} are mixed where one type is needed (the branches of "
            "iff(), case(), coalesce(), or a list): convert them to one type"
        )
    found = _NO_FUNCTION.search(message)
    if found is not None:
        return f"unknown function '{found[1]}'"
    said = re.sub(r"^(?:Binder|Catalog) Error: ", "", message)
    if re.search(r"SELECT|Candidate|LINE \d", said):  # SQL, or DuckDB's own catalogue
        return "the query's values do not fit the operators and functions it applies to them"
    return said


#: DuckDB's string functions behind KQL's string operators (`has`, `contains`, `=~`, ...).
_STRING_FUNCTIONS: Final = re.compile(
    r"argument types '(?:i?like_escape|regexp_matches|lower|upper|starts_with|ends_with|"
    r"contains|prefix|suffix|strpos|instr)\((?!VARCHAR|STRING_LITERAL|JSON)"
)


def _engine_hint(text: str) -> str | None:
    """What a DuckDB error that a KQL construct xdrsync does not handle yet leads to means in
    KQL, with what to write instead; None for any other error."""
    if NUMBER_BY_TIMESPAN in text:
        return (
            "a number cannot be divided by a timespan (Kusto refuses it too): divide two "
            "timespans for a real (`x / 1h`), or a timespan by a number (`x / 2`)"
        )
    if "argument types 'sum(INTERVAL)'" in text:
        return (
            "not supported yet: sum() of a timespan; sum it as a number of seconds and "
            "convert back: `Total = sum(x / 1s) * 1s` (avg() of a timespan works)"
        )
    if _STRING_FUNCTIONS.search(text):
        return (
            "a string operator or function (has, contains, startswith, =~, in~, tolower, ...) "
            "was given a number, datetime, timespan or bool that xdrsync could not convert: "
            "write tostring(x), as Kusto converts it"
        )
    if "Malformed JSON" in text and "Conversion Error" in text:
        return (
            "not supported yet: comparing a string with a dynamic column of the same row "
            "(`x in (DynamicCol)`, `x == DynamicCol`): for membership write "
            "set_has_element(DynamicCol, x) (or mv-expand the column first), else "
            "tostring(DynamicCol)"
        )
    return None


__all__ = ["Fetched", "Translated", "error_position", "run", "translate"]
