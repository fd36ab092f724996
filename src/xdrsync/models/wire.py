"""Graph wire formats: DateTimeOffset parsing/formatting and JSON value copying."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from xdrsync.models.errors import describe


@lru_cache(maxsize=65536)
def _parse(text: str) -> datetime:
    # Cached because one alert's evidence usually repeats the same few timestamps, and the
    # same strings are parsed again when serialising back (to detect unchanged fields).
    # Graph writes up to 7 fractional digits (.NET ticks); datetime keeps 6, and since
    # Python 3.11 `fromisoformat` drops the rest itself (and reads a `Z`): the original
    # string survives in `raw` for exact round trips.
    if text[-1:] == "Z":
        # Graph's own shape, `2021-08-13T08:43:35.5533333Z`, is UTC already: 0.46 µs instead
        # of 0.76 (a backfill's evidence holds tens of thousands of distinct instants).
        # test_models_properties holds it to the general path below.
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is UTC:
                return parsed
    return _parse_general(text)


def _parse_general(text: str) -> datetime:
    cleaned = text.strip()
    if cleaned[-1:] == "z":
        cleaned = cleaned[:-1] + "Z"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError("expected an ISO 8601 date-time string") from None
    if parsed.tzinfo is None:
        # DateTimeOffset values always carry an offset; a bare one is taken as UTC (Graph's zone).
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


#: The parser of DateTimeOffset text (cached; ValueError for anything else).
parse_datetime_text = _parse


def parse_datetime(value: object) -> datetime | None:
    """A Graph DateTimeOffset (string) or an aware datetime -> aware UTC datetime.

    Raises ValueError for anything else, including naive datetimes built in code (their
    zone is unknowable; Graph strings without an offset are taken as UTC instead).
    """
    if value is None:
        return None
    if isinstance(value, str):
        return _parse(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("expected a timezone-aware datetime, got a naive one")
        return value.astimezone(UTC)
    raise ValueError(f"expected an ISO 8601 date-time string, got {describe(value)}")


def format_datetime(value: datetime) -> str:
    """UTC ISO 8601 with a `Z`, microseconds only when present: `2021-08-13T08:43:35.553333Z`."""
    utc = value.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-like value (dicts and lists copied, scalars shared)."""
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {k: copy_json(v) for k, v in value.items()}
    if kind is list or isinstance(value, list | tuple):
        return [copy_json(v) for v in value]
    return value


__all__ = ["copy_json", "format_datetime", "parse_datetime", "parse_datetime_text"]
