"""Turning mapped rows into the newline-delimited JSON DuckDB bulk-loads, column type by type."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, BinaryIO

from xdrsync import jsontext
from xdrsync.tables.schemas import Column

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def utc_naive(value: datetime) -> datetime:
    """A datetime as the naive UTC wall time the TIMESTAMP columns hold."""
    if value.tzinfo is None:
        return value  # already naive: by contract it is UTC
    return value.astimezone(UTC).replace(tzinfo=None)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot store {type(value).__name__} in a dynamic column")


def iso_z(value: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, the way Log Analytics writes datetimes inside JSON."""
    if type(value) is datetime and value.tzinfo is UTC:  # as parsed from Graph
        return value.isoformat(timespec="microseconds")[:-6] + "Z"  # without "+00:00"
    return utc_naive(value).isoformat(timespec="microseconds") + "Z"


def compact_json(value: Any) -> str:
    """JSON text as Sentinel stores it in string columns (no spaces after separators);
    datetimes inside are written by `iso_z`, with microseconds and a `Z`."""
    return jsontext.dumps(value, default=_json_default, replace_surrogates=True)


def json_bytes(value: Any) -> bytes:
    """`compact_json` as UTF-8. Graph JSON may carry lone UTF-16 surrogates (a "\\ud800"
    escape decodes to one); neither UTF-8 nor DuckDB's JSON reader accepts them, so they
    become U+FFFD (the hub keeps the exact text)."""
    return jsontext.dumps_utf8(value, default=_json_default, replace_surrogates=True)


def orjson_bytes(value: Any) -> bytes | None:
    """`json_bytes` when orjson writes it (the same bytes), else None: without the
    standard library's fallback (`jsontext.orjson_utf8`), for a caller that joins such texts."""
    return jsontext.orjson_utf8(value, default=_json_default)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Mapping | list | tuple):
        return compact_json(value)
    return str(value)


def _datetime(value: Any, name: str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"column {name}: expected a datetime, got {type(value).__name__}")
    return utc_naive(value).isoformat(sep=" ", timespec="microseconds")


def _integer(value: Any, name: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"column {name}: expected an integer, got {type(value).__name__}")
    number = int(value)
    if not bounds[0] <= number <= bounds[1]:
        raise ValueError(f"column {name}: {number} does not fit the column's integer type")
    return number


def _column_encoder(column: Column) -> Callable[[Any], Any] | None:
    """How a non-null value of `column` is made ready for DuckDB's `read_json` with the
    column's type; None when it is written as it is (`dynamic`: the Python value becomes the
    nested JSON). Nulls never get here (see `NdjsonWriter`)."""
    kind, name = column.kql_type, column.name
    if kind == "string":
        return _string
    if kind == "datetime":
        # The rows of one change share their TimeGenerated and _TimeReceived objects (an
        # alert's evidence rows, its Timestamp too), so the last text is kept for the next.
        last_value: object = None
        last_text = ""

        def datetime_text(value: Any) -> str:
            nonlocal last_value, last_text
            if value is not last_value:
                if type(value) is datetime and value.tzinfo is UTC:  # as parsed from Graph
                    last_text = value.isoformat(" ", "microseconds")[:-6]  # without "+00:00"
                else:
                    last_text = _datetime(value, name)
                last_value = value
            return last_text

        return datetime_text
    if kind in ("int", "long"):
        bounds = _INT32 if kind == "int" else _INT64
        low, high = bounds

        def integer(value: Any) -> int:
            if type(value) is int and low <= value <= high:  # the usual case, checked inline
                return value
            return _integer(value, name, bounds)

        return integer
    if kind == "real":
        return float
    if kind == "bool":
        return bool
    return None


class NdjsonWriter:
    """One table's rows as the newline-delimited JSON DuckDB's `read_json` bulk-loads, each
    row written to `out` as it comes (a batch's rows need not all be held at once).

    Null values are left out: the INSERT reads a missing key as NULL, and a string column's
    NULL as "" (`string_default`). Unknown keys are a mapping bug and are refused (``KeyError``,
    not a value error: no record is to blame).
    """

    def __init__(self, out: BinaryIO, columns: Sequence[Column], table: str) -> None:
        self._out = out
        self._table = table
        self._encoders = {c.name: _column_encoder(c) for c in columns}
        self._strings = frozenset(c.name for c in columns if c.kql_type == "string")
        self.rows = 0
        self.longest = 0  # the longest line's length in bytes

    def write(self, row: Mapping[str, Any]) -> None:
        self.write_line(self.encode(row))

    def encode(self, row: Mapping[str, Any]) -> bytes:
        """The row's line, without writing it; ``TypeError``/``ValueError`` for a value its
        column cannot hold."""
        encoders = self._encoders
        if not encoders.keys() >= row.keys():
            unknown = sorted(set(row) - encoders.keys())
            raise KeyError(f"{self._table} row {self.rows}: unknown columns {unknown}")
        strings = self._strings
        values: dict[str, Any] = {}
        for name, value in row.items():
            if value is None:
                continue
            if type(value) is str and name in strings:  # the common case by far
                values[name] = value
                continue
            encode = encoders[name]
            values[name] = value if encode is None else encode(value)
        return json_bytes(values)

    def write_line(self, line: bytes) -> None:
        """Write a line ``encode`` made."""
        self.longest = max(self.longest, len(line))
        self.rows += 1
        self._out.write(line)
        self._out.write(b"\n")


def string_default(column: Column, expression: str) -> str:
    """The SQL that reads `expression` (the column as loaded) into `column`. Kusto strings are
    never null: an absent string reads as "" (so `Classification == ""` and `count() by
    Classification` behave as in Log Analytics), so a string column's NULL (a key
    `NdjsonWriter` left out) is stored as ""."""
    return f"coalesce({expression}, '')" if column.kql_type == "string" else expression


__all__ = [
    "NdjsonWriter",
    "compact_json",
    "iso_z",
    "json_bytes",
    "orjson_bytes",
    "string_default",
    "utc_naive",
]
