"""The one exception tree of xdrsync, ordered by what the caller should do about it.

XdrSyncError
├── ConfigError         the operator must fix something (config, credentials, permissions)
│   └── EditRefusedError  an edit Defender would not accept: refused before it is queued
├── FatalSyncError      a bug or a broken contract: stop this stream, keep its state
│   └── UnreadableError  a listing Graph will not let us read whole: quarantine its record
├── RetriableError      transient: back off and try again (5xx, timeouts, resets)
│   ├── ThrottledError  the server asked us to wait (429 + Retry-After)
│   │   └── ServerBusyError  a 5xx that said when to come back (Retry-After)
│   └── AnswerTooLargeError  every answer was over max_response_bytes: ask for less
├── SkippableError      one record is bad: quarantine it, the stream goes on
└── ConflictError       a write-back conflict: route it by the field's policy
"""

from __future__ import annotations


class XdrSyncError(Exception):
    """Base of every error xdrsync raises on purpose."""


class ConfigError(XdrSyncError):
    """Configuration, credentials or permissions are wrong; retrying will not help."""


class EditRefusedError(ConfigError):
    """A workspace edit Defender would not accept (unknown incident, read-only field or
    tenant, a value outside Defender's vocabulary); nothing was queued."""


class FatalSyncError(XdrSyncError):
    """A contract was broken (e.g. the server rejected our own query); stop the stream."""


class UnreadableError(FatalSyncError):
    """A listing Graph will not let us read whole (more records on one stamp than ``$skip``
    reaches, a filter its route refuses). Stopping at it would stop its stream at that
    place for good: the record it belongs to (an incident, for its alerts) is quarantined
    instead, and the stream goes on."""


class RetriableError(XdrSyncError):
    """A transient failure; the same request may succeed later. ``unsent``: the request is
    known never to have reached the server (no connection, no sign-in), so nothing of it can
    have been applied."""

    unsent: bool = False


class ThrottledError(RetriableError):
    """The server throttled us; ``retry_after`` is how long it asked us to wait, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerBusyError(ThrottledError):
    """A 5xx that said when to come back (``Retry-After``): the wait is honoured as a 429's
    is, but it says nothing about our pace (it may be the failure a fallback gets around)."""


class AnswerTooLargeError(RetriableError):
    """Every attempt's answer was larger than ``max_response_bytes``: the same request will
    most likely be as large again, a smaller page may not be."""


class SkippableError(XdrSyncError):
    """One record cannot be processed; quarantine it with this reason and continue."""


class ConflictError(XdrSyncError):
    """Local and remote edits of the same field disagree."""


__all__ = [
    "AnswerTooLargeError",
    "ConfigError",
    "ConflictError",
    "EditRefusedError",
    "FatalSyncError",
    "RetriableError",
    "ServerBusyError",
    "SkippableError",
    "ThrottledError",
    "UnreadableError",
    "XdrSyncError",
]
