"""The DuckDB connection a KQL query runs on: read-only, no file system, settings locked.

The allow-list (`guard`) keeps queries to the workspace tables before any SQL exists; this is
the layer under it, for whatever the translator might emit anyway:

* `enable_external_access=false`: no file reads or writes from SQL (`read_csv`, `read_parquet`,
  `read_json`, `glob`, `'file.csv'` replacement scans, `ATTACH`, `COPY`, `INSTALL`), and no
  loading extensions from disk;
* `autoload_known_extensions` / `autoinstall_known_extensions` off: a function that lives in an
  extension is an error, not a download;
* no spilling (`temp_directory=''`): a query over its memory limit fails instead of writing
  gigabytes next to the workspace;
* `memory_limit` and `threads` from the query limits, then `lock_configuration=true`, so no
  statement can `SET`/`PRAGMA` its way out of any of the above.
"""

from __future__ import annotations

from typing import Final

import duckdb

from xdrsync.tables.errors import QueryRefusedError
from xdrsync.tables.limits import QueryLimits

#: Run once the zone is UTC (KQL datetimes are UTC; `access` sets it for the database, which
#: every query's cursor reads): nothing may change after it, on any connection to the database.
LOCK_STATEMENTS: Final[tuple[str, ...]] = ("SET lock_configuration=true",)

#: DuckDB's text of a real as .NET, and so Kusto, writes it (`sqlpatch._dotnet_reals` calls
#: it): `50` for 50.0, `1E+20`, `1E-07`, `Infinity`. The shortest digits that read back are
#: the same on both sides; .NET turns to an exponent from 1E+15, DuckDB from 1e+16. Only
#: text functions, so a call binds whatever type its argument was made from.
REAL_TEXT: Final = "__xdrsync_real_text"
_DIGITS = "rtrim(replace(ltrim(t, '-'), '.', ''), '0')"
#: Made on each query's own connection (a temporary macro, like its views).
SESSION_STATEMENTS: Final[tuple[str, ...]] = (
    f"CREATE OR REPLACE TEMP MACRO {REAL_TEXT}(t) AS CASE "
    "WHEN t IN ('nan', '-nan') THEN 'NaN' "
    "WHEN t = 'inf' THEN 'Infinity' WHEN t = '-inf' THEN '-Infinity' "
    "WHEN contains(t, 'e') THEN replace(replace(t, 'e+', 'E+'), 'e-', 'E-') "
    "WHEN regexp_matches(t, '^-?[0-9]{16}[.]') THEN "
    "CASE WHEN starts_with(t, '-') THEN '-' ELSE '' END || "
    f"left({_DIGITS}, 1) || "
    f"CASE WHEN length({_DIGITS}) > 1 THEN '.' || substr({_DIGITS}, 2) ELSE '' END || 'E+15' "
    "ELSE regexp_replace(t, '[.]0$', '') END",
)


def query_config(limits: QueryLimits) -> dict[str, str | int | bool]:
    """`duckdb.connect(config=...)` for a query connection under `limits`."""
    return {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        # DuckDB looks up Python variables named like a table otherwise.
        "python_enable_replacements": False,
        "temp_directory": "",
        "memory_limit": f"{limits.memory_limit_mb}MiB",
        "threads": limits.threads,
    }


def check_sql(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Refuse generated SQL that is not exactly one SELECT (defence in depth: the translator
    only emits SELECTs, and the locked connection refuses the rest anyway). Parsed on `con`
    when given: DuckDB's default connection, opened on first use, costs about 15 ms."""
    extract = con.extract_statements if con is not None else duckdb.extract_statements
    try:
        statements = extract(sql)
    except duckdb.Error as exc:
        raise QueryRefusedError("query refused: the translated query did not parse") from exc
    kinds = [statement.type for statement in statements]
    if kinds != [duckdb.StatementType.SELECT]:
        names = ", ".join(kind.name for kind in kinds) or "nothing"
        raise QueryRefusedError(f"query refused: it translated to {names}, not one SELECT")


__all__ = ["LOCK_STATEMENTS", "check_sql", "query_config"]
