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
#: A value as a `dynamic` holds it (`sqlpatch._dynamic_lists`): a datetime or timespan as
#: Kusto writes it (`2021-09-20T16:00:00.0000000Z`, `1.03:25:00`), as duckdb-kql's
#: `pack_array` writes each of its values; any other value as DuckDB's JSON of it.
DYNAMIC_VALUE: Final = "__xdrsync_dynamic_value"
#: Any other value's text, as `tostring` and `strcat` write it (`sqlpatch._dotnet_reals` calls
#: it): a list or a struct (a bag) as compact JSON, as Kusto writes a `dynamic`; the rest as
#: DuckDB writes it.
VALUE_TEXT: Final = "__xdrsync_value_text"
_US = "abs(_us)"
_TIMESPAN_TEXT = (
    "list_transform([epoch_us(CAST(v AS INTERVAL))], lambda _us: "
    "CASE WHEN _us < 0 THEN '-' ELSE '' END"
    f" || CASE WHEN {_US} >= 86400000000 THEN CAST({_US} // 86400000000 AS VARCHAR) || '.'"
    " ELSE '' END"
    f" || lpad(CAST({_US} // 3600000000 % 24 AS VARCHAR), 2, '0')"
    f" || ':' || lpad(CAST({_US} // 60000000 % 60 AS VARCHAR), 2, '0')"
    f" || ':' || lpad(CAST({_US} // 1000000 % 60 AS VARCHAR), 2, '0')"
    f" || CASE WHEN {_US} % 1000000 <> 0"
    f" THEN '.' || lpad(CAST({_US} % 1000000 AS VARCHAR), 6, '0') || '0' ELSE '' END)[1]"
)
#: `a / b` where either may be a timespan (`sqlpatch._timespan_divisions` calls it): a timespan
#: divided by a number is a timespan (microseconds, rounded as .NET rounds a tick count), by a
#: timespan a real, and numbers divide as duckdb-kql divides them. The branch is chosen by the
#: operands' types when DuckDB binds the query (a struct's member named by a constant), so each
#: result keeps its own type, which no `CASE` could. A number divided by a timespan names no
#: member, and the query fails to bind with `NUMBER_BY_TIMESPAN` in DuckDB's message, as Kusto
#: refuses it when it compiles the query.
DIVIDE: Final = "__xdrsync_divide"
NUMBER_BY_TIMESPAN: Final = "a number divided by a timespan"


def _typed(v: str, kept: str, other: str) -> str:
    """`v` when its type is (`kept` 'INTERVAL') or is not ('NUMBER') a timespan, else `other`."""
    test = "=" if kept == "INTERVAL" else "<>"
    return (
        f"{{'v': {v}, 'o': {other}}}[CASE WHEN typeof({v}) {test} 'INTERVAL' THEN 'v' ELSE 'o' END]"
    )


_NUMBER_L, _NUMBER_R = _typed("l", "NUMBER", "0"), _typed("r", "NUMBER", "0")
_SPAN_L, _SPAN_R = (_typed(v, "INTERVAL", "INTERVAL 0 SECONDS") for v in "lr")
_DIVISION = (
    f"{{'n': {_NUMBER_L} // NULLIF({_NUMBER_R}, 0), "
    f"'s': to_microseconds(CAST(round(epoch_us({_SPAN_L}) / NULLIF({_NUMBER_R}, 0)) AS BIGINT)), "
    f"'r': epoch({_SPAN_L}) / epoch({_SPAN_R})}}"
    "[CASE WHEN typeof(r) = 'INTERVAL' THEN CASE WHEN typeof(l) = 'INTERVAL' THEN 'r' "
    f"ELSE '{NUMBER_BY_TIMESPAN}' END WHEN typeof(l) = 'INTERVAL' THEN 's' ELSE 'n' END]"
)
#: `round(x, digits)` as Kusto answers it (`sqlpatch._scaled_rounds` calls it): `x` scaled by
#: the power of ten, rounded half away from zero, scaled back, so `round(2.15, 1)` is 2.2, where
#: DuckDB rounds the double 2.1499999... to 2.1 (and `round(1.005, 2)` stays 1.0, the double
#: being 1.00499...). A negative `digits` rounds to tens, hundreds; a number the scale would take
#: past a double's whole digits (2^52) has no digit to round at `digits`, and is kept.
ROUND: Final = "__xdrsync_round"
_ROUNDING = (
    "CASE WHEN x IS NULL OR d IS NULL THEN NULL WHEN isnan(x) OR isinf(x) THEN x "
    "WHEN d >= 0 THEN CASE WHEN abs(x) * pow(10, d) >= 4503599627370496 THEN x "
    "ELSE round(x * pow(10, d)) / pow(10, d) END "
    "ELSE round(x / pow(10, -d)) * pow(10, -d) END"
)
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
    f"CREATE OR REPLACE TEMP MACRO {DYNAMIC_VALUE}(v) AS CASE typeof(v) "
    "WHEN 'TIMESTAMP' THEN "
    "to_json(strftime(CAST(v AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%f') || '0Z') "
    f"WHEN 'INTERVAL' THEN to_json({_TIMESPAN_TEXT}) ELSE to_json(v) END",
    f"CREATE OR REPLACE TEMP MACRO {VALUE_TEXT}(v) AS CASE "
    "WHEN ends_with(typeof(v), '[]') OR starts_with(typeof(v), 'STRUCT(') "
    "THEN CAST(to_json(v) AS VARCHAR) ELSE CAST(v AS VARCHAR) END",
    f"CREATE OR REPLACE TEMP MACRO {DIVIDE}(l, r) AS {_DIVISION}",
    f"CREATE OR REPLACE TEMP MACRO {ROUND}(x, d) AS {_ROUNDING}",
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
