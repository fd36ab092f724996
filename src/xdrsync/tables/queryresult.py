"""The result of one KQL query: column names, KQL types and rows of plain Python values."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any


@dataclass(frozen=True)
class QueryResult:
    """Rows as Python values: `dynamic` decoded from JSON, `datetime` timezone-aware UTC."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    #: True when the query produced more rows than `rows` holds (the `max_rows` cap).
    truncated: bool = False

    @property
    def truncation_note(self) -> str | None:
        """One line saying the rows were cut short, or None when they were not."""
        if not self.truncated:
            return None
        return (
            f"result truncated: showing the first {len(self.rows)} rows "
            "(query.max_rows); narrow the query or raise the limit"
        )

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        """Every value of one column, in row order."""
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def _decode(kql_type: str, value: Any) -> Any:
    if value is None:
        return None
    if kql_type == "dynamic" and isinstance(value, str):
        # DuckDB hands JSON back as its text; callers want the structure KQL shows.
        return json.loads(value)
    if isinstance(value, datetime):
        # TIMESTAMP columns hold UTC wall time; make that explicit so nobody reads it as local.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=UTC)
    return value


def _decode_list(engine_type: str, value: Any) -> Any:
    """A `dynamic` list DuckDB returns as a list (not as JSON text), element by element:
    JSON texts decoded (`make_list` of a dynamic value), times made UTC-aware."""
    if not isinstance(value, list):
        return _decode("dynamic", value)
    element = engine_type[:-2]
    if element == "JSON":
        return [json.loads(v) if isinstance(v, str) else v for v in value]
    if element.endswith("[]"):
        return [_decode_list(element, v) for v in value]
    return [_decode("", v) for v in value]


def decode_rows(
    types: Sequence[str],
    rows: Iterable[Sequence[Any]],
    engine_types: Sequence[str] | None = None,
) -> tuple[tuple[Any, ...], ...]:
    """Rows as Python values; `engine_types` (DuckDB's, e.g. `JSON[]`) tell how to read a
    list's elements."""
    if engine_types is None or not any(t.endswith("[]") for t in engine_types):
        return tuple(tuple(_decode(t, v) for t, v in zip(types, row, strict=True)) for row in rows)
    lists = [e.endswith("[]") for e in engine_types]
    return tuple(
        tuple(
            _decode_list(e, v) if is_list else _decode(t, v)
            for t, e, v, is_list in zip(types, engine_types, row, lists, strict=True)
        )
        for row in rows
    )


__all__ = ["QueryResult", "decode_rows"]
