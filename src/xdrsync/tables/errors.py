"""Errors of the log store and its KQL layer, placed in xdrsync's one exception tree."""

from __future__ import annotations

import re
from typing import Final

from xdrsync.errors import RetriableError, XdrSyncError

_UNKNOWN_TABLE = re.compile(r'Table with name "?([^"\s!]+)"? does not exist')
#: A column DuckDB does not find: not at all, or only as one the same SELECT makes (a
#: hidden column's name in another case, `_ItemID`).
_UNKNOWN_COLUMN = re.compile(
    r'(?:Referenced column|Column) "([^"]+)" (?:not found|referenced that exists in the SELECT)'
)
_UNKNOWN_ZONE = re.compile(r"Unknown TimeZone '([^']*)'")
#: What the SQL of a function the layer writes (`functionsql`) says when it refuses a value.
REFUSAL: Final = "not supported yet: "
#: What the SQL of a bound the layer writes (`sqlpatch`: `strrep`'s) says when a value would
#: pass it: the query stopped at a limit.
TOO_LARGE: Final = "too large: "
#: How DuckDB words what SQL's `error()` raises.
_RAISED: Final = "Invalid Input Error: "


class QueryError(XdrSyncError):
    """A KQL query could not be translated or run; the message is one line fit for a terminal."""


class QueryRefusedError(QueryError):
    """The query reaches past the workspace tables (a file, another database, a control
    command); it was refused before anything ran."""


class QueryLimitError(QueryError):
    """The query hit one of its limits (time, memory) and was stopped."""


class StoreBusyError(RetriableError):
    """The log store stayed taken for longer than we were willing to wait: by a writer of
    another process, or in this one by an append or queries of other settings."""


def one_line(text: str, limit: int = 400) -> str:
    """Collapse a multi-line engine message into one line a CLI can print."""
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def unknown_column(text: str) -> str | None:
    """The column a DuckDB binder error says it cannot find, if that is what it says."""
    column = _UNKNOWN_COLUMN.search(text)
    return column.group(1) if column else None


def too_large(text: str) -> str | None:
    """What a bound the layer writes (`TOO_LARGE`) says in a DuckDB error; None for any other."""
    head = f"{_RAISED}{TOO_LARGE}"
    if head not in text:
        return None
    said = text.split(head, 1)[1]
    return one_line(re.split(r"\n\s*LINE \d+:", said, maxsplit=1)[0])


def engine_message(text: str, tables: tuple[str, ...]) -> str:
    """DuckDB's message for a failed translated query, in the terms of the KQL the user wrote.

    The generated SQL (DuckDB quotes it after `LINE n:`) means nothing to someone who wrote
    KQL, and DuckDB's "did you mean" suggests its own catalog tables, so both are dropped.
    """
    table = _UNKNOWN_TABLE.search(text)
    if table:
        return f"unknown table '{table.group(1)}'; tables: {', '.join(tables)}"
    column = _UNKNOWN_COLUMN.search(text)
    if column:
        return f"unknown column '{column.group(1)}'"
    zone = _UNKNOWN_ZONE.search(text)
    if zone:
        return f"unknown time zone '{zone.group(1)}' (write an IANA name, such as Europe/Paris)"
    text = re.split(r"\n\s*LINE \d+:", text, maxsplit=1)[0]
    if text.startswith(f"{_RAISED}{REFUSAL}"):  # by a function the layer writes (`error()`)
        text = text.removeprefix(_RAISED)
    return one_line(text)


__all__ = [
    "REFUSAL",
    "TOO_LARGE",
    "QueryError",
    "QueryLimitError",
    "QueryRefusedError",
    "StoreBusyError",
    "engine_message",
    "one_line",
    "too_large",
    "unknown_column",
]
