"""One KQL query, from text to rows: admitted, translated, checked, run under its limits.

The order is the protection: the allow-list (`guard.admit`) sees the parsed query before any
SQL exists; the SQL must be exactly one SELECT (`sandbox.check_sql`); it runs on a connection
with the file system off and its settings locked (`sandbox.query_config`); a watchdog stops it
at its time limit, DuckDB at its memory limit, and only `max_rows` rows are ever fetched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import duckdb_kql

from xdrsync.tables.errors import (
    QueryError,
    QueryLimitError,
    QueryRefusedError,
    engine_message,
    one_line,
)
from xdrsync.tables.guard import NO_CLUSTERS, NO_ENTITY_GROUPS, NO_FUNCTIONS, admit
from xdrsync.tables.limits import QueryLimits, time_limit
from xdrsync.tables.sandbox import check_sql
from xdrsync.tables.schemas import table_schema


@dataclass(frozen=True)
class Translated:
    """The SQL for one admitted query and the values it binds."""

    sql: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class Fetched:
    """What DuckDB returned: its column description and at most `max_rows` rows."""

    description: tuple[tuple[Any, ...], ...]
    rows: list[tuple[Any, ...]]
    truncated: bool


def translate(kql: str, tables: tuple[str, ...]) -> Translated:
    """Admit `kql` (reading only `tables`) and translate it; needs no connection."""
    admitted = admit(kql, tables)
    # The schema comes from the packaged table definitions, which are also what the views
    # are created from: translation never consults the catalog, and `union *` expands to
    # the workspace tables only.
    schema = {name: [c.name for c in table_schema(name).columns] for name in tables}
    try:
        result = duckdb_kql.to_sql(
            admitted,
            schema=schema,
            allow_write=False,
            clusters=NO_CLUSTERS,
            entity_groups=NO_ENTITY_GROUPS,
            functions=NO_FUNCTIONS,
        )
    except duckdb_kql.KqlError as exc:
        raise QueryError(f"KQL error: {one_line(str(exc))}") from exc
    if result.unbound:
        names = ", ".join(result.unbound)
        raise QueryError(f"KQL error: declared query parameter with no value: {names}")
    sql = str(result)
    check_sql(sql)
    return Translated(sql=sql, parameters=dict(result.parameters))


def fetch(
    con: duckdb.DuckDBPyConnection,
    query: Translated,
    limits: QueryLimits,
    tables: tuple[str, ...],
) -> Fetched:
    """Run `query` on a sandboxed `con` under `limits`; limit hits become `QueryLimitError`."""
    with time_limit(con, limits.timeout_seconds) as watchdog:
        try:
            params = dict(query.parameters)
            cursor = con.execute(query.sql, params) if params else con.execute(query.sql)
            description = tuple(tuple(d) for d in cursor.description or ())
            rows = cursor.fetchmany(limits.max_rows + 1)
        except duckdb.Error as exc:
            raise _engine_error(exc, watchdog.fired, limits, tables) from exc
    truncated = len(rows) > limits.max_rows
    return Fetched(description=description, rows=rows[: limits.max_rows], truncated=truncated)


def _engine_error(
    exc: duckdb.Error, timed_out: bool, limits: QueryLimits, tables: tuple[str, ...]
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
    if isinstance(exc, duckdb.PermissionException):
        # Only reachable if something got past the allow-list; say no more than that.
        return QueryRefusedError("query refused: it tried to use the file system or a setting")
    if "configuration has been locked" in str(exc):
        return QueryRefusedError("query refused: it tried to change a setting")
    return QueryError(f"query failed: {engine_message(str(exc), tables)}")


__all__ = ["Fetched", "Translated", "fetch", "translate"]
