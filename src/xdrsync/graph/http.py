"""The wire around Graph calls: our httpx client, bounded reads, the server's clock, bodies.

Every answer (Graph's and the token endpoint's) is read by ``send``: streamed, with a byte cap
and a wall-clock deadline per attempt, so neither a 3 GB answer nor a server dripping one byte
at a time can hold the process. Graph listing bodies are parsed by ``parse_body``, which never
raises: a page whose JSON no parser can read as a whole is split into its ``value`` elements,
and only the unreadable ones are lost (handed over as ``UnreadableItem``).
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, cast

import httpx

from xdrsync import __version__
from xdrsync.config import AppCredentials, SyncConfig
from xdrsync.graph.errors import DeadlineExceededError, ResponseTooLargeError
from xdrsync.jsontext import UnreadableItem, loads
from xdrsync.logs import clean

USER_AGENT = f"xdrsync/{__version__}"
DETAIL_LIMIT = 300  # characters of server text kept in an error message


def build_http_client(tenant: AppCredentials, sync: SyncConfig) -> httpx.Client:
    """The httpx client for one app registration: our timeout, our TLS settings, no redirects."""
    verify: ssl.SSLContext | bool
    if isinstance(tenant.verify_tls, str):
        bundle = Path(tenant.verify_tls)
        verify = (
            ssl.create_default_context(capath=str(bundle))
            if bundle.is_dir()
            else ssl.create_default_context(cafile=str(bundle))
        )
    else:
        verify = tenant.verify_tls
    return httpx.Client(
        timeout=httpx.Timeout(sync.request_timeout_seconds),
        verify=verify,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,  # a redirect would carry our bearer token somewhere else
    )


# -- bounded reads --------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What one attempt may cost: bytes read, wall-clock seconds, seconds per socket read."""

    max_bytes: int = 64 * 1024 * 1024
    deadline_seconds: float = 120.0
    read_timeout: float = 30.0

    @classmethod
    def of(cls, sync: SyncConfig) -> Limits:
        return cls(
            sync.max_response_bytes, sync.request_deadline_seconds, sync.request_timeout_seconds
        )


@dataclass(frozen=True)
class Answer:
    """A fully read answer. ``content`` stays a bytearray: no second copy of a big body."""

    status: int
    reason: str
    headers: httpx.Headers
    content: bytearray
    request: httpx.Request

    def as_response(self) -> httpx.Response:
        """An ``httpx.Response`` holding the (already decoded) body, for msal."""
        headers = [
            (name, value)
            for name, value in self.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            self.status, headers=headers, content=bytes(self.content), request=self.request
        )


def send(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    limits: Limits,
    clock: Callable[[], float] = time.monotonic,
    **options: Any,
) -> Answer:
    """One request, its body read in full within ``limits``.

    ``ResponseTooLargeError`` if the body is announced (Content-Length) or turns out larger than
    ``max_bytes`` (counted after content decoding, so a compressed bomb is caught too);
    ``DeadlineExceededError`` if the answer is not complete ``deadline_seconds`` after sending.
    Each socket wait is capped by the time left, so an attempt ends within about
    ``deadline_seconds`` plus one read (at most twice the deadline for a server that stalls
    mid-body); memory is bounded by ``max_bytes`` plus one chunk. httpx errors pass through.
    """
    deadline = clock() + limits.deadline_seconds
    timeout = httpx.Timeout(min(limits.read_timeout, limits.deadline_seconds))
    try:
        with http.stream(method, url, timeout=timeout, **options) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise ResponseTooLargeError(limits.max_bytes)
            _cap_body_reads(response, deadline - clock(), limits.read_timeout)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limits.max_bytes:
                    raise ResponseTooLargeError(limits.max_bytes)
                if clock() > deadline:
                    raise DeadlineExceededError(limits.deadline_seconds)
            if clock() > deadline:
                raise DeadlineExceededError(limits.deadline_seconds)
            return Answer(
                response.status_code,
                response.reason_phrase,
                response.headers,
                body,
                response.request,
            )
    except httpx.TimeoutException:
        # A wait cut short by the deadline, not by the per-read timeout: say which limit.
        if clock() >= deadline - 0.05:
            raise DeadlineExceededError(limits.deadline_seconds) from None
        raise


def _cap_body_reads(response: httpx.Response, remaining: float, read_timeout: float) -> None:
    """Lower the read timeout of the body to the time left before the deadline.

    httpx fixes timeouts when the request is sent; httpcore reads the request's ``timeout``
    extension again when the body starts, so the body's reads get what is left.
    """
    current = response.request.extensions.get("timeout")
    if isinstance(current, dict):
        left = max(0.01, min(read_timeout, remaining))
        response.request.extensions["timeout"] = {**current, "read": left}


# -- the server's clock and its error bodies ------------------------------------------------


def server_date(response: httpx.Response | Answer, fallback: Callable[[], datetime]) -> datetime:
    """The response's ``Date`` as aware UTC; our own clock only if the header is missing."""
    header = response.headers.get("Date")
    if header:
        try:
            parsed = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    return fallback()


def graph_error_detail(answer: httpx.Response | Answer) -> str:
    """``status code: message`` from Graph's error body, or the status text; one line of
    server text, cleaned (no secrets, no control bytes) and capped: it goes into messages."""
    if isinstance(answer, Answer):
        status, reason, content = answer.status, answer.reason, bytes(answer.content)
    else:
        status, reason, content = answer.status_code, answer.reason_phrase, answer.content
    detail = reason or "error"
    try:
        body = loads(content) if content.strip() else None
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code, message = error.get("code"), error.get("message")
        detail = ": ".join(str(part) for part in (code, message) if part) or detail
    elif content.strip():
        detail = f"{detail}: {content[: DETAIL_LIMIT * 4].decode('utf-8', 'replace')}"
    return clean(" ".join(f"{status} {detail}".split()), limit=DETAIL_LIMIT)


def required_permission(method: str, path: str) -> str:
    """The Graph application permission a call on ``path`` needs (microsoft-apis.md §2.1)."""
    access = "Read" if method in ("GET", "HEAD") else "ReadWrite"
    if "/security/alerts" in path:
        return f"SecurityAlert.{access}.All"
    if "/security/incidents" in path and path.rstrip("/").endswith("/alerts"):
        return f"SecurityIncident.{access}.All and SecurityAlert.{access}.All"
    return f"SecurityIncident.{access}.All"


# -- bodies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """A parsed 2xx body: the JSON object, or why there is none (``problem``)."""

    payload: dict[str, Any] | None
    problem: str = ""


_WHITESPACE = b" \t\r\n"
_STRUCTURAL = re.compile(rb'["\[\]{},]')
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # after the opening quote
_OPENERS, _CLOSERS = b"[{", b"]}"


def parse_body(content: bytes | bytearray) -> Body:
    """The JSON object of a 2xx body (``{}`` when empty). Never raises.

    The fast path parses the whole body. If that fails, the top-level ``value`` array is split
    into its elements' exact text by ``split_listing`` and each is parsed on its own, so one
    record nested deeper than any parser allows (or otherwise unreadable) becomes an
    ``UnreadableItem`` and every other record of the page is kept. A body that is not a JSON
    object at all is a problem.
    """
    if not content.strip():
        return Body({})
    try:
        # orjson and json read a bytearray as they read bytes: no copy of a big body.
        whole = loads(cast("bytes", content))
    except (ValueError, RecursionError) as failure:
        return _parse_split(content, _reason(failure))
    if not isinstance(whole, dict):
        return Body(None, f"body is JSON but not an object ({type(whole).__name__})")
    return Body(whole)


def _reason(failure: BaseException) -> str:
    if isinstance(failure, RecursionError):
        return "nested deeper than the JSON parser allows"
    return clean(f"not valid JSON ({' '.join(str(failure).split())})", limit=200)


def _parse_split(content: bytes | bytearray, why: str) -> Body:
    parts = split_listing(bytes(content))
    if parts is None:
        return Body(None, f"body is not a JSON object: {why}")
    envelope_text, elements = parts
    try:
        envelope = loads(envelope_text)
    except (ValueError, RecursionError) as failure:
        return Body(None, f"body is not a JSON object: {_reason(failure)}")
    if not isinstance(envelope, dict):  # pragma: no cover - split_listing saw an object
        return Body(None, "body is not a JSON object")
    items: list[Any] = []
    for raw in elements:
        try:
            items.append(loads(raw))
        except (ValueError, RecursionError) as failure:
            items.append(UnreadableItem(raw.decode("utf-8", "replace"), _reason(failure)))
    envelope["value"] = items
    return Body(envelope)


def _skip_space(text: bytes, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def _members(text: bytes, start: int) -> tuple[list[tuple[int, int]], int] | None:
    """The comma-separated members of the ``[`` or ``{`` at ``text[start]``, as (begin, end)
    spans of their exact text, and the index after its closing bracket. Iterative and
    string-aware: nesting depth is a counter, not recursion. None if it never closes."""
    closer = _CLOSERS[_OPENERS.index(text[start])]
    spans: list[tuple[int, int]] = []
    depth, begin, at = 0, start + 1, start + 1
    while True:
        found = _STRUCTURAL.search(text, at)
        if found is None:
            return None
        char, at = text[found.start()], found.end()
        if char == ord('"'):
            rest = _STRING_REST.match(text, at)
            if rest is None:
                return None
            at = rest.end()
        elif char in _OPENERS:
            depth += 1
        elif char in _CLOSERS and depth > 0:
            depth -= 1
        elif char in _CLOSERS:
            if char != closer:
                return None
            spans.append((begin, found.start()))
            return spans, at
        elif char == ord(",") and depth == 0:
            spans.append((begin, found.start()))
            begin = at


def split_listing(text: bytes) -> tuple[bytes, list[bytes]] | None:
    """``(envelope, elements)`` of a listing body: the top-level object with its ``value``
    array emptied, and the exact text of each element of that array; None if the body is
    not an object with a ``value`` array (then it is malformed as a whole)."""
    start = _skip_space(text, 0)
    if start >= len(text) or text[start] != ord("{"):
        return None
    top = _members(text, start)
    if top is None or text[_skip_space(text, top[1]) :].strip():
        return None
    for begin, end in top[0]:
        key_at = _skip_space(text, begin)
        if key_at >= end or text[key_at] != ord('"'):
            continue
        key_end = _STRING_REST.match(text, key_at + 1)
        if key_end is None or text[key_at : key_end.end()] != b'"value"':
            continue
        colon = _skip_space(text, key_end.end())
        array_at = _skip_space(text, colon + 1)
        if colon >= end or text[colon] != ord(":") or array_at >= end:
            return None
        if text[array_at] != ord("["):
            return None
        array = _members(text, array_at)
        if array is None:
            return None
        elements = [text[b:e].strip(_WHITESPACE) for b, e in array[0]]
        if elements == [b""]:
            elements = []  # an empty array
        envelope = text[:array_at] + b"[]" + text[array[1] :]
        return envelope, elements
    return None


__all__ = [
    "DETAIL_LIMIT",
    "USER_AGENT",
    "Answer",
    "Body",
    "Limits",
    "build_http_client",
    "graph_error_detail",
    "parse_body",
    "required_permission",
    "send",
    "server_date",
    "split_listing",
]
