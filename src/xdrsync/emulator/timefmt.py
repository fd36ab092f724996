"""Graph's datetime wire format (seven fractional digits, ``Z``), shared by the emulator's parts."""

from __future__ import annotations

from datetime import UTC, datetime


def graph_time(moment: datetime) -> str:
    """Render an aware datetime the way Graph does: ``2024-05-01T10:00:00.1234560Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def utcnow() -> datetime:
    return datetime.now(UTC)
