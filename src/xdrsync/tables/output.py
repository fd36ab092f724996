"""Rendering a KQL query result for the terminal or a pipe: a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from xdrsync.tables.encode import compact_json, iso_z
from xdrsync.tables.queryresult import QueryResult

Format = Literal["table", "json", "csv"]
FORMATS: tuple[Format, ...] = ("table", "json", "csv")

#: Width used when the output is not a terminal: wide enough that rich never folds a cell,
#: since a pipe or a file has no screen to fit.
_PIPE_WIDTH = 100_000


def timespan(value: timedelta) -> str:
    """A timespan as KQL prints it: `[-][d.]hh:mm:ss[.fffffff]`."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    days, rest = divmod(value, timedelta(days=1))
    hours, rest = divmod(rest, timedelta(hours=1))
    minutes, rest = divmod(rest, timedelta(minutes=1))
    seconds = rest.seconds
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if rest.microseconds:
        text += f".{rest.microseconds * 10:07d}"
    return f"{sign}{days}.{text}" if days else f"{sign}{text}"


def real(value: float) -> float | str:
    """A real as JSON data: itself when finite, else `"NaN"`, `"Infinity"` or `"-Infinity"`,
    as KQL prints them (JSON has no such numbers, and `NaN` in a document is not JSON)."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _json_value(value: Any) -> Any:
    """A value as JSON data: dynamic stays structured, datetimes become ISO-8601 `Z` strings,
    non-finite reals KQL's words for them (`real`)."""
    if isinstance(value, float):
        return real(value)
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, timedelta):
        return timespan(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _cell(value: Any) -> str:
    """A value as one flat text cell (table and CSV)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return compact_json(_json_value(value))
    converted = _json_value(value)
    return converted if isinstance(converted, str) else str(converted)


def _table(result: QueryResult, color: bool, width: int | None) -> str:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, highlight=False)
    for name in result.columns:
        table.add_column(name, overflow="fold")
    for row in result.rows:
        # Text, not str: a cell holding "[bold]" must print as written, not as rich markup.
        table.add_row(*(Text(_cell(v)) for v in row))
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=width or _PIPE_WIDTH,
        highlight=False,
        soft_wrap=False,
    )
    console.print(table)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
    if result.truncation_note:
        # The table is for people: say it under the rows. JSON and CSV stay parseable, and
        # the CLI says it on stderr instead.
        lines.extend(["", result.truncation_note])
    return "\n".join(lines) + "\n"


def _csv(result: QueryResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()


def _json(result: QueryResult) -> str:
    records = [
        {name: _json_value(value) for name, value in zip(result.columns, row, strict=True)}
        for row in result.rows
    ]
    return json.dumps(records, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def format_result(
    result: QueryResult,
    fmt: Format,
    *,
    color: bool | None = None,
    width: int | None = None,
) -> str:
    """Render a result. `color` defaults to "stdout is a terminal"; `width` to the terminal's."""
    if fmt == "json":
        return _json(result)
    if fmt == "csv":
        return _csv(result)
    if fmt == "table":
        tty = sys.stdout.isatty()
        use_color = tty if color is None else color
        if width is None and tty:
            width = Console().width
        return _table(result, use_color, width)
    raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "Format", "format_result", "real", "timespan"]
