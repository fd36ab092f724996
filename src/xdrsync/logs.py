"""Logging for the long-running commands: structlog to stderr, with secrets scrubbed.

Every configured secret (client secrets, database URL) is registered here and replaced by
``***`` in any event value before it is rendered: a last line of defence, since no code path
is meant to log one in the first place.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

_SECRETS: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    _SECRETS.update(v for v in values if v and len(v) >= 6)


def scrub(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _scrub_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = scrub(value)
        elif value is not None and not isinstance(value, int | float | bool):
            event[key] = scrub(str(value))
    return event


def configure(level: str = "info", *, json: bool = False, file: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``file`` (default stderr) at ``level``."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    stream = file or sys.stderr
    logging.basicConfig(stream=stream, level=numeric, format="%(message)s", force=True)
    for noisy in ("httpx", "httpcore", "msal", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
