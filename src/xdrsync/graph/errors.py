"""Errors specific to Graph calls, placed in the project's one exception tree."""

from __future__ import annotations

from xdrsync.errors import SkippableError


class NotFoundError(SkippableError):
    """Graph answered 404: the record was deleted, merged away or is out of retention."""


__all__ = ["NotFoundError"]
