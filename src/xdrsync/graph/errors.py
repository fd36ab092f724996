"""Errors specific to Graph calls, placed in the project's one exception tree."""

from __future__ import annotations

from xdrsync.errors import ConfigError, FatalSyncError, SkippableError


class BadRequestError(FatalSyncError):
    """Graph answered 400: it refuses the request as asked. ``detail`` is Graph's own
    ``status code: message``, which tells what it refused (``$skip`` past 500, ``$top``
    past 50, ``$orderby``...); the message also names the request."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ForbiddenError(ConfigError):
    """Graph answered 403: the app lacks a permission for this call (the message names it)."""


class NotFoundError(SkippableError):
    """Graph answered 404: the record was deleted, merged away or is out of retention."""


class ResponseLimitError(Exception):
    """An answer broke one of our limits while it was being read (internal to the wire
    layer: the retry table turns it into a condition, callers never see it)."""


class ResponseTooLargeError(ResponseLimitError):
    """The answer is (or announces itself as) larger than ``max_response_bytes``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than max_response_bytes = {limit} bytes; not read")
        self.limit = limit


class DeadlineExceededError(ResponseLimitError):
    """The answer did not arrive completely within ``request_deadline_seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"answer not complete within request_deadline_seconds = {seconds:g} s; abandoned"
        )
        self.seconds = seconds


__all__ = [
    "BadRequestError",
    "DeadlineExceededError",
    "NotFoundError",
    "ResponseLimitError",
    "ResponseTooLargeError",
]
