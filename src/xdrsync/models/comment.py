"""Comment: an alertComment on an incident or alert (reference §2.7)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from xdrsync.models.base import GraphModel


class Comment(GraphModel):
    """`{comment, createdByDisplayName, createdDateTime}`; the legacy shape some documentation
    examples show, `{comment, createdBy, createdTime}`, is read into the same fields and
    written back under the names it came with."""

    LEGACY_KEYS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "created_by_display_name": ("createdBy",),
        "created_date_time": ("createdTime",),
    }

    comment: str | None = None
    created_by_display_name: str | None = None
    created_date_time: datetime | None = None


__all__ = ["Comment"]
