"""Logging for the long-running commands: structlog to stderr, with secrets scrubbed.

Every configured secret (client secrets, database URL) and every access token msal issues is
registered here. ``clean`` is the one gate for text that may carry a secret or a hostile
server's bytes (error details, exception messages, log values): it hides registered secrets
and anything shaped like a bearer token or a JWT, removes terminal escape sequences, makes
control characters visible and caps the length. The structlog processor applies it to every
event value, and the sync engine to every error it stores: a last line of defence, since no
code path is meant to log a secret in the first place.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

_SECRETS: set[str] = set()
# Access tokens change every hour or so: keep the recent ones only (a token that old has
# expired and is worthless), so scrubbing does not slow down over months of uptime.
_EPHEMERAL: OrderedDict[str, None] = OrderedDict()
_EPHEMERAL_MAX = 256
_LOCK = threading.Lock()

_MASK = "***"
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), nF (ESC ( B ...), two-character ESC
# sequences and a bare ESC.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]+[0-~]|\x1b[@-_]?"
)
# C0 (but tab and newline), DEL, C1, lone surrogates, bidi overrides and zero-width marks.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
)
_ELLIPSIS = "…"
EVENT_LIMIT = 20_000  # log values (tracebacks included) are capped more loosely than errors


def register_secrets(values: Iterable[str | None], *, ephemeral: bool = False) -> None:
    """Hide these values from every log line and ``clean`` text. ``ephemeral`` values (access
    tokens) are kept in a bounded most-recent set; the others for the life of the process."""
    found = [v for v in values if v and len(v) >= 6]
    with _LOCK:
        if not ephemeral:
            _SECRETS.update(found)
            return
        for value in found:
            _EPHEMERAL[value] = None
            _EPHEMERAL.move_to_end(value)
        while len(_EPHEMERAL) > _EPHEMERAL_MAX:
            _EPHEMERAL.popitem(last=False)


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (nothing else changed)."""
    with _LOCK:
        secrets = [*_SECRETS, *_EPHEMERAL]
    # Longest first, so a secret that contains another is hidden whole.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(text: str, *, limit: int = 2000) -> str:
    """``text`` made safe to show, log or store: terminal escape sequences removed, control
    characters (but newline and tab), lone surrogates and bidi marks shown as ``\\xNN`` /
    ``\\uNNNN``, registered secrets, ``Bearer ...`` tokens and JWT-shaped strings replaced by
    ``***``, and at most ``limit`` characters (``…`` marks a cut)."""
    text = _ANSI.sub("", text)
    text = _CONTROL.sub(_visible, text)
    text = scrub(text)
    text = _BEARER.sub(lambda found: f"{found.group(1)} {_MASK}", text)
    text = _JWT.sub(_MASK, text)
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + _ELLIPSIS
    return text


def _scrub_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = clean(value, limit=EVENT_LIMIT)
        elif value is not None and not isinstance(value, int | float | bool):
            event[key] = clean(str(value), limit=EVENT_LIMIT)
    return event


class _CleanRecords(logging.Filter):
    """The same gate for stdlib logging (httpx, msal, alembic records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = clean(record.getMessage(), limit=EVENT_LIMIT)
        record.args = None
        return True


#: The level, format and stream `configure` set last (a worker process logs the same way).
_CONFIGURED: dict[str, Any] = {"level": "warning", "json": False, "file": None}


def configured() -> tuple[str, bool, TextIO]:
    """The level, whether JSON, and the stream, as `configure` set them last."""
    return (
        str(_CONFIGURED["level"]),
        bool(_CONFIGURED["json"]),
        _CONFIGURED["file"] or sys.stderr,
    )


def configure(level: str = "info", *, json: bool = False, file: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``file`` (default stderr) at ``level``."""
    import structlog  # here: the scrubbing above is all that commands which only read need

    _CONFIGURED.update(level=level, json=json, file=file)

    numeric = getattr(logging, level.upper(), logging.INFO)
    stream = file or sys.stderr
    logging.basicConfig(stream=stream, level=numeric, format="%(message)s", force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_CleanRecords())
    for noisy in ("httpx", "httpcore", "msal", "urllib3", "alembic", "azure"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    if json:
        # The standard library's records (httpx, msal, alembic, the config's warnings) as
        # JSON lines too: a log shipper reading `--log-json` gets no line it cannot parse.
        records = structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _scrub_event,
                renderer,
            ],
        )
        for handler in logging.getLogger().handlers:
            handler.setFormatter(records)
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


__all__ = ["EVENT_LIMIT", "clean", "configure", "configured", "register_secrets", "scrub"]
