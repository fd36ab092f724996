"""Hunting in the console: one KQL query over the workspace tables, as the API's JSON.

`run_query` runs the query through `LogStore.query` (the same allow-list, sandbox and limits as
`xdrsync query`), scoped to the user's tenants at the data layer, and answers
`POST /api/v1/query`'s body: typed columns, JSON-safe rows, whether the row cap cut it short,
how long it took, and a chart hint. `error_json` turns a refused, failed or stopped query into
the API's error body; `to_csv`/`to_json` are the download forms of an answer; `examples` are
the saved example queries (package data `examples.json`).

The chart hint comes from a trailing `render <kind> [with (...)]`, which duckdb-kql parses and
drops (it does not reach its IR), so it is read here from duckdb-kql's own tokens, never from
the raw text: a `| render` inside a string or a comment is not a render. Without one, a result
whose first column is a datetime from `summarize ... by bin(...)` with numeric columns is a
timechart.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Final
from uuid import UUID

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.encode import compact_json, iso_z
from xdrsync.tables.errors import QueryError, QueryLimitError, QueryRefusedError, StoreBusyError
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.output import real, timespan
from xdrsync.tables.querying import error_position
from xdrsync.tables.queryresult import QueryResult

#: Render kinds the console draws, by KQL name (lower case); `table` means no chart.
CHART_KINDS: Final = frozenset(
    {
        "timechart",
        "linechart",
        "areachart",
        "stackedareachart",
        "columnchart",
        "barchart",
        "piechart",
        "scatterchart",
        "card",
        "anomalychart",
        "ladderchart",
        "pivotchart",
        "timepivot",
        "treemap",
    }
)
#: Kinds whose x axis is time when the result has a datetime column.
_TIME_KINDS: Final = frozenset(
    {"timechart", "linechart", "areachart", "stackedareachart", "anomalychart", "timepivot"}
)
NUMERIC_TYPES: Final = frozenset({"int", "long", "real", "decimal"})
_BIN_FUNCTIONS: Final = frozenset({"bin", "bin_at", "floor"})
#: Spreadsheets run a cell that starts with one of these as a formula.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")

ErrorCode = str  # "refused" | "invalid" | "timeout" | "too_large" | "busy"


# -- running ------------------------------------------------------------------------------------


def run_query(
    logs: LogStore,
    kql: str,
    *,
    tenant_ids: Sequence[str] | None,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Run `kql` for a user who may see `tenant_ids` (None: every tenant) and answer the JSON
    of `POST /api/v1/query`::

        {"columns": [{"name", "type"}], "rows": [[...]], "rowCount", "truncated",
         "elapsedMs", "chart": null | {"kind", "x", "series", "splitBy"}}

    At most `max_rows` rows (the store's `query.max_rows` when None). Raises what
    `LogStore.query` raises (`QueryError` and its kinds, `StoreBusyError`); `error_json`
    turns those into the error body.
    """
    started = time.monotonic()
    result = logs.query(kql, tenant_ids=tenant_ids, max_rows=max_rows)
    elapsed = time.monotonic() - started
    return {
        "columns": [
            {"name": n, "type": t} for n, t in zip(result.columns, result.types, strict=True)
        ],
        "rows": [[json_value(v) for v in row] for row in result.rows],
        "rowCount": len(result.rows),
        "truncated": result.truncated,
        "elapsedMs": round(elapsed * 1000),
        "chart": chart_hint(kql, result),
    }


def json_value(value: Any) -> Any:
    """A result value as JSON data, written as KQL prints it: datetimes ISO-8601 with `Z`,
    timespans `[-][d.]hh:mm:ss[.fffffff]`, decimals and guids as text, `dynamic` as
    structure; a non-finite real as `"NaN"`, `"Infinity"` or `"-Infinity"` (JSON has none)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return real(value)
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, timedelta):
        return timespan(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


# -- downloads ----------------------------------------------------------------------------------


def to_csv(result: Mapping[str, Any], *, spreadsheet_safe: bool = True) -> str:
    """An answer of `run_query` as CSV: a header of column names, then one line per row;
    `dynamic` values as compact JSON, null as an empty cell, bools `true`/`false`.

    With `spreadsheet_safe`, a text cell that a spreadsheet would run as a formula (starting
    with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`, so a hostile value in
    the logs (a command line, an email subject) cannot run when the download is opened.
    """
    columns = [str(c["name"]) for c in result["columns"]]
    types = [str(c["type"]) for c in result["columns"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_safe_cell(n, spreadsheet_safe) for n in columns])
    for row in result["rows"]:
        writer.writerow(
            [_csv_cell(v, t, spreadsheet_safe) for v, t in zip(row, types, strict=True)]
        )
    return buffer.getvalue()


def _csv_cell(value: Any, kql_type: str, spreadsheet_safe: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _safe_cell(compact_json(value), spreadsheet_safe)
    text = str(value)
    if kql_type in NUMERIC_TYPES and not isinstance(value, str):
        return text  # a negative number is a number, not a formula
    return _safe_cell(text, spreadsheet_safe)


def _safe_cell(text: str, spreadsheet_safe: bool) -> str:
    return "'" + text if spreadsheet_safe and text.startswith(_FORMULA_START) else text


def to_json(result: Mapping[str, Any]) -> str:
    """An answer of `run_query` as `xdrsync query --format json` writes it: a list of
    records, column name -> value."""
    columns = [str(c["name"]) for c in result["columns"]]
    records = [dict(zip(columns, row, strict=True)) for row in result["rows"]]
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


# -- errors -------------------------------------------------------------------------------------


def error_code(exc: BaseException) -> ErrorCode:
    """The API's error code for an exception `run_query` raised."""
    if isinstance(exc, StoreBusyError):
        return "busy"
    message = str(exc)
    if isinstance(exc, QueryLimitError):
        return "timeout" if "time limit" in message else "too_large"
    if isinstance(exc, QueryRefusedError):
        # Refused for its size, not for what it reads: a huge `range`/`strrep`, a long text.
        sized = ("range would generate", "strrep needs", "strrep would make", "longer than")
        return "too_large" if any(s in message for s in sized) else "refused"
    return "invalid"


def error_json(exc: BaseException) -> dict[str, Any] | None:
    """The API's error body for a query that failed, or None when `exc` is not a query's
    failure (a bug, to be raised on, never described to the client)::

        {"error": {"code", "message", "line", "column"}}

    `code` is `refused` (it reads something other than the workspace tables, or a command
    that is not `.show tables`), `invalid` (KQL or engine error), `timeout` (stopped at the
    time limit), `too_large` (memory limit, or a generator or text over its bound) or `busy`
    (the log store stayed locked by the writer, or by queries this one cannot run beside;
    worth retrying). `message` is one line.
    `line` and `column` (both 1-based, for an editor's marker) point into the query when the
    message names a place (`at L:C`, where duckdb-kql counts columns from 0), else null.
    """
    if not isinstance(exc, QueryError | StoreBusyError):
        return None
    # The busy error names the log file, for the command line and the logs; a reader of
    # the console (perhaps a customer's, scoped to one tenant) is not told where it lives.
    busy = isinstance(exc, StoreBusyError)
    message = (
        "the log store is busy (being written, or running queries); try again" if busy else str(exc)
    )
    where = error_position(message)
    return {
        "error": {
            "code": error_code(exc),
            "message": message,
            "line": where[0] if where else None,
            "column": where[1] + 1 if where else None,
        }
    }


# -- charts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Render:
    """A query's trailing `render`: its kind and the properties that pick columns."""

    kind: str
    xcolumn: str | None = None
    ycolumns: tuple[str, ...] = ()
    series: tuple[str, ...] = ()


def chart_hint(kql: str, result: QueryResult) -> dict[str, Any] | None:
    """The chart the console draws for `result` of `kql`, or None for a table."""
    try:
        tokens = kt.tokenize(kql)
    except kt.LexError:
        return None
    segments = _pipeline(tokens, _last_statement(tokens))
    render = _render(tokens, segments[-1]) if segments else None
    if render is not None:
        return _chart(render, result) if render.kind in CHART_KINDS else None
    if _summarizes_by_bin(tokens, segments) and _is_time_series(result):
        return _chart(Render("timechart"), result)
    return None


def find_render(kql: str) -> Render | None:
    """The `render` that ends `kql` (its last statement's last operator), if any."""
    try:
        tokens = kt.tokenize(kql)
    except kt.LexError:
        return None
    segments = _pipeline(tokens, _last_statement(tokens))
    return _render(tokens, segments[-1]) if segments else None


def _last_statement(tokens: Sequence[kt.Token]) -> tuple[int, int]:
    """`[start, end)` of the last non-empty top-level statement (after the last `;`)."""
    for start, end in reversed(kt.split_top(tokens, 0, len(tokens), kt.SEMICOLON)):
        if kt.first_sig(tokens, start, end) is not None:
            return start, end
    return 0, 0


def _pipeline(tokens: Sequence[kt.Token], bounds: tuple[int, int]) -> list[tuple[int, int]]:
    """The top-level `|` segments of a statement, each as `[start, end)` of `tokens`."""
    parts = kt.split_top(tokens, *bounds, kt.BAR)
    return [(a, b) for a, b in parts if kt.first_sig(tokens, a, b) is not None]


def _render(tokens: Sequence[kt.Token], segment: tuple[int, int]) -> Render | None:
    sig = kt.sig_indices(tokens, *segment)
    if not sig or tokens[sig[0]].kind != kt.KqlLexer.RENDER or len(sig) < 2:
        return None
    kind_token = tokens[sig[1]]
    if not kind_token.is_word:
        return None
    render = Render(kind_token.lower())
    rest = sig[2:]
    if not rest or tokens[rest[0]].lower() != "with" or len(rest) < 2:
        return render
    if tokens[rest[1]].kind != kt.OPENPAREN:
        return render
    close = kt.closing(tokens, rest[1])
    properties = _properties(tokens, rest[1] + 1, min(close, segment[1]))
    x = properties.get("xcolumn", ())
    return Render(
        kind=render.kind,
        xcolumn=x[0] if x else None,
        ycolumns=properties.get("ycolumns", ()),
        series=properties.get("series", ()),
    )


def _properties(tokens: Sequence[kt.Token], start: int, end: int) -> dict[str, tuple[str, ...]]:
    """`name = value[, value...]` pairs inside `with (...)`; values as names (a bracketed
    `['name']` gives its string) or literal text."""
    sig = kt.sig_indices(tokens, start, end)
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    i = 0
    while i < len(sig):
        token = tokens[sig[i]]
        following = tokens[sig[i + 1]] if i + 1 < len(sig) else None
        if token.is_word and following is not None and following.kind == kt.EQUAL:
            current = found.setdefault(token.lower(), [])
            i += 2
            continue
        if current is not None:
            if token.kind == kt.OPENBRACKET and i + 2 < len(sig):
                inner = kt.string_value(tokens[sig[i + 1]])
                if inner is not None:
                    current.append(inner)
                i += 3
                continue
            if token.is_word:
                current.append(token.text)
            elif token.kind == kt.STRING:
                literal = kt.string_value(token)
                if literal is not None:
                    current.append(literal)
        i += 1
    return {name: tuple(values) for name, values in found.items()}


def _summarizes_by_bin(tokens: Sequence[kt.Token], segments: Sequence[tuple[int, int]]) -> bool:
    """Whether a top-level `summarize ... by` of the last statement groups by `bin(...)`."""
    for start, end in segments:
        sig = kt.sig_indices(tokens, start, end)
        if not sig or tokens[sig[0]].lower() != "summarize":
            continue
        by = next((j for j in sig if tokens[j].kind == kt.KqlLexer.BY), None)
        if by is None:
            continue
        for j in sig:
            if j > by and tokens[j].lower() in _BIN_FUNCTIONS and kt.is_call(tokens, j):
                return True
    return False


def _is_time_series(result: QueryResult) -> bool:
    return (
        bool(result.types)
        and result.types[0] == "datetime"
        and any(t in NUMERIC_TYPES for t in result.types[1:])
    )


def _chart(render: Render, result: QueryResult) -> dict[str, Any] | None:
    columns = list(result.columns)
    types = dict(zip(result.columns, result.types, strict=True))
    if not columns:
        return None
    x = render.xcolumn if render.xcolumn in types else None
    if x is None:
        times = [c for c in columns if types[c] == "datetime"]
        labels = [c for c in columns if types[c] not in NUMERIC_TYPES]
        if render.kind in _TIME_KINDS and times:
            x = times[0]
        else:
            x = labels[0] if labels else columns[0]
    series = [c for c in render.ycolumns if c in types and c != x]
    if not series:
        series = [c for c in columns if c != x and types[c] in NUMERIC_TYPES]
    if not series and render.kind == "card" and types[x] in NUMERIC_TYPES:
        series = [x]  # a card shows one number: `print n = 1 | render card`
    if not series:
        return None
    split: str | None = next((c for c in render.series if c in types and c != x), None)
    if split is None and render.kind not in ("piechart", "card"):
        split = next(
            (
                c
                for c in columns
                if c != x and c not in series and types[c] in ("string", "bool", "guid")
            ),
            None,
        )
    if render.kind == "piechart":
        series = series[:1]
    return {"kind": render.kind, "x": x, "series": series, "splitBy": split}


# -- examples -----------------------------------------------------------------------------------


@cache
def _example_data() -> tuple[tuple[str, str, str], ...]:
    text = resources.files("xdrsync.console").joinpath("examples.json").read_text("utf-8")
    doc = json.loads(text)
    return tuple((str(e["name"]), str(e["description"]), str(e["query"])) for e in doc["examples"])


def examples() -> list[dict[str, str]]:
    """The saved example queries: `{"name", "description", "query"}` each."""
    return [{"name": n, "description": d, "query": q} for n, d, q in _example_data()]


__all__ = [
    "CHART_KINDS",
    "Render",
    "chart_hint",
    "error_code",
    "error_json",
    "examples",
    "find_render",
    "json_value",
    "run_query",
    "to_csv",
    "to_json",
]
