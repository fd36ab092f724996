"""The wire around Graph calls: our httpx client, bounded reads, the server's clock, bodies.

``build_http_client`` is the one HTTP policy of every outbound client (Graph, sign-in through
msal, Sentinel's ARM): TLS, timeouts, no redirects, and the configured proxy
(``requests_proxies`` gives the same proxy to the Logs Ingestion SDK's own transport).

Every answer (Graph's and the token endpoint's) is read by ``send``: streamed, with a byte cap
and a wall-clock deadline per attempt, so neither a 3 GB answer nor a server dripping one byte
at a time (of its body, its headers, or an endless run of ``1xx`` answers) can hold the
process. Graph listing bodies are parsed by ``parse_body``, which never
raises: a page whose JSON no parser can read as a whole is split into its ``value`` elements,
and only the unreadable ones are lost (handed over as ``UnreadableItem``).
"""

from __future__ import annotations

import base64
import html
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import httpcore
import httpx

from xdrsync import __version__
from xdrsync.config import AppCredentials, SyncConfig, check_ca_bundle, is_loopback_host
from xdrsync.errors import ConfigError
from xdrsync.graph.errors import DeadlineExceededError, ResponseTooLargeError
from xdrsync.jsontext import UnreadableItem, loads
from xdrsync.logs import clean, register_secrets

T = TypeVar("T")

USER_AGENT = f"xdrsync/{__version__}"
#: What a proxy's 407 means to the operator (Graph's, ARM's and sign-in's messages say it).
PROXY_REFUSED_HINT = (
    "the outbound proxy refused our credentials (407); check the user name in proxy and "
    "proxy_password, or the environment's HTTPS_PROXY/HTTP_PROXY"
)
DETAIL_LIMIT = 300  # characters of server text kept in an error message


def build_http_client(tenant: AppCredentials, sync: SyncConfig) -> httpx.Client:
    """The httpx client for one app registration: our timeout, our TLS settings, no
    redirects, and its ``proxy`` if one is set (else the environment's, as httpx reads it).

    A ``proxy_password`` is read at the first request through the proxy (``ProxyRoute``)."""
    owner = tenant.owner_label(tenant.name)
    verify: ssl.SSLContext | bool
    if isinstance(tenant.verify_tls, str):
        try:
            verify = check_ca_bundle(Path(tenant.verify_tls))
        except ValueError as problem:  # changed since the config loaded
            raise ConfigError(f"{owner}: verify_tls: {problem}") from None
    else:
        verify = tenant.verify_tls
    options: dict[str, Any] = {
        "timeout": httpx.Timeout(sync.request_timeout_seconds),
        "headers": {"User-Agent": USER_AGENT},
        "follow_redirects": False,  # a redirect would carry our bearer token somewhere else
    }
    if tenant.proxy is not None:
        # A transport of our own: httpx then reads no proxy from the environment.
        return httpx.Client(transport=ProxyRoute(tenant, tenant.proxy, verify), **options)
    try:
        client = httpx.Client(verify=verify, **options)
    except (ImportError, ValueError, httpx.InvalidURL) as problem:
        # httpx reads the proxies from the environment here: a malformed one, or a SOCKS
        # proxy without httpx[socks], is the operator's to fix, in one line.
        raise ConfigError(
            f"{owner}: the proxy set in the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY) "
            f"cannot be used: {clean(str(problem), limit=200)}"
        ) from None
    _bound_by_deadline(client)
    return client


# -- the configured proxy --------------------------------------------------------------------


def _proxy(tenant: AppCredentials, proxy: str, verify: ssl.SSLContext | bool) -> httpx.Proxy:
    """``proxy`` (``tenant.proxy``) with its password, read now (``ConfigError`` naming its
    owner if it cannot be) and hidden from every log line and message from then on."""
    url = httpx.URL(proxy)
    auth: tuple[str, str] | None = None
    if tenant.proxy_password is not None:
        password = tenant.proxy_password.get_secret_value()  # ConfigError: this tenant fails
        auth = (url.username, password)
        basic = base64.b64encode(f"{url.username}:{password}".encode()).decode()
        register_secrets([password, basic])  # the Proxy-Authorization a proxy might echo
    elif url.username:
        auth = (url.username, "")
    return httpx.Proxy(
        url.copy_with(username=None, password=None),
        auth=auth,
        # An https proxy is trusted as the endpoints are: a CA bundle in verify_tls (a
        # corporate CA) names the proxy's too; otherwise the system's store.
        ssl_context=verify if isinstance(verify, ssl.SSLContext) else None,
    )


def _direct_for() -> Callable[[str, str], bool]:
    """Whether a request to a host goes around the configured proxy, given the proxy's host.

    ``NO_PROXY`` (or ``no_proxy``) is honoured as for the environment's proxies. A loopback
    address (the local emulator) goes through the proxy only if the proxy is on this machine
    too: a proxy elsewhere would reach its own loopback, not ours, and the plain http that
    loopback is allowed would cross the network."""
    # Read once per client, as httpx reads the environment's proxies once per client; the
    # standard library matches the names as curl does (`*`, a name and its subdomains):
    # `proxy_bypass_environment` is what `urllib.request.proxy_bypass` uses, unlisted in
    # typeshed.
    proxies = urllib.request.getproxies_environment()
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]

    def direct(host: str, proxy_host: str) -> bool:
        if is_loopback_host(host) and not is_loopback_host(proxy_host):
            return True
        return bool(proxies.get("no")) and bypass(host.strip("[]"), proxies)

    return direct


class ProxyRoute(httpx.BaseTransport):
    """Every request through the configured proxy, but those ``_direct_for`` keeps off it.
    Both ways out keep the per-attempt deadline on every socket wait (``_bound``)."""

    def __init__(self, tenant: AppCredentials, proxy: str, verify: ssl.SSLContext | bool) -> None:
        self._tenant, self._url, self._verify = tenant, proxy, verify
        self.proxy_host = httpx.URL(proxy).host
        self.direct = _bound(httpx.HTTPTransport(verify=verify))
        self._proxied: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()
        self._direct = _direct_for()

    @property
    def proxied(self) -> httpx.HTTPTransport:
        """The way through the proxy, built at its first request: a Defender tenant's
        ``proxy_password`` is read then, not as the service starts, so one that cannot be
        read fails that tenant's calls alone (its streams say why), as a ``client_secret``
        does, and is read again at the next request until it can be."""
        with self._lock:
            if self._proxied is None:
                proxy = _proxy(self._tenant, self._url, self._verify)
                self._proxied = _bound(httpx.HTTPTransport(verify=self._verify, proxy=proxy))
            return self._proxied

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        direct = self._direct(request.url.host, self.proxy_host)
        return (self.direct if direct else self.proxied).handle_request(request)

    def close(self) -> None:
        with self._lock:
            if self._proxied is not None:
                self._proxied.close()
        self.direct.close()


def requests_proxies(tenant: AppCredentials, url: str) -> dict[str, str]:
    """The configured proxy as the ``proxies`` of a requests-based SDK (azure-core's, for
    Logs Ingestion) calling ``url``: empty when no proxy is set (the environment's apply, as
    before) or when ``url`` goes around it (``_direct_for``). requests takes the credentials
    in the URL only; the password is registered as a secret first."""
    if tenant.proxy is None:
        return {}
    proxy = httpx.URL(tenant.proxy)
    if _direct_for()(httpx.URL(url).host, proxy.host):
        return {}
    if tenant.proxy_password is not None:
        password = tenant.proxy_password.get_secret_value()
        proxy = proxy.copy_with(username=proxy.username, password=password)
        register_secrets([password, proxy.userinfo.decode().partition(":")[2]])  # as written
    return {"http": str(proxy), "https": str(proxy)}


# -- the deadline on every socket wait ------------------------------------------------------

#: When the attempt under way must end (``time.monotonic``), set by ``send`` for its thread.
_DEADLINE: ContextVar[float | None] = ContextVar("xdrsync_http_deadline", default=None)


@contextmanager
def _deadline_at(moment: float) -> Iterator[None]:
    token = _DEADLINE.set(moment)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """The socket wait allowed now: ``timeout``, cut to what is left of the attempt's
    deadline; ``expired`` is raised once nothing is left."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("request deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every wait ends by the deadline of the attempt using it.

    httpx's timeouts bound each socket wait, and httpcore fixes the read timeout once for a
    whole response head: a server sending a header byte, or a ``102 Processing``, every few
    seconds never trips it. Cutting each wait to the time left bounds the whole attempt."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, each wrapped in ``_DeadlineStream``."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._backend.connect_tcp(host, port, wait, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        wait = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, wait, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _bound_by_deadline(client: httpx.Client) -> None:
    """Give every connection pool of ``client`` (its own, and those httpx made for proxies
    from the environment) the deadline-bound backend.

    httpx takes no network backend, so it goes on the pools it built; tests of the hostile
    server (a dripped head, a run of 1xx answers) fail if it ever stops reaching them."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        _bound(transport)


def _bound(transport: T) -> T:
    """``transport`` with its connection pool (if it has one) on the deadline-bound backend."""
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = _DeadlineBackend()
    return transport


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
    **options: Any,
) -> Answer:
    """One request, its body read in full within ``limits``.

    ``ResponseTooLargeError`` if the body is announced (Content-Length) or turns out larger than
    ``max_bytes`` (counted after content decoding, so a compressed bomb is caught too);
    ``DeadlineExceededError`` if the answer is not complete ``deadline_seconds`` after sending.
    On a client from ``build_http_client`` every socket wait (connecting, the head, the body)
    is cut to the time left, so an attempt ends at its deadline however the server dribbles;
    memory is bounded by ``max_bytes`` plus one chunk. httpx errors pass through.
    """
    deadline = time.monotonic() + limits.deadline_seconds
    timeout = httpx.Timeout(min(limits.read_timeout, limits.deadline_seconds))
    try:
        with (
            _deadline_at(deadline),
            http.stream(method, url, timeout=timeout, **options) as response,
        ):
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise ResponseTooLargeError(limits.max_bytes)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limits.max_bytes:
                    raise ResponseTooLargeError(limits.max_bytes)
                if time.monotonic() > deadline:
                    raise DeadlineExceededError(limits.deadline_seconds)
            if time.monotonic() > deadline:
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
        if time.monotonic() >= deadline - 0.05:
            raise DeadlineExceededError(limits.deadline_seconds) from None
        raise


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
    server text, cleaned (no secrets, no control bytes) and capped: it goes into messages.

    A body that is not JSON (a gateway's or proxy's own 502/503/504 page) never raises; an
    HTML page is given as its text, without markup, styles or scripts."""
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
    elif _is_html(answer.headers.get("Content-Type", ""), content):
        text = _page_text(content, skip={detail, f"{status} {detail}"})
        detail = f"{detail} (HTML page){': ' + text if text else ''}"
    elif content.strip():
        detail = f"{detail}: {content[: DETAIL_LIMIT * 4].decode('utf-8', 'replace')}"
    return clean(" ".join(f"{status} {detail}".split()), limit=DETAIL_LIMIT)


#: How much of an HTML error page is read for its text (a styled page puts its words last).
_PAGE_TEXT_BYTES = 64 * 1024


def _is_html(content_type: str, content: bytes) -> bool:
    return "html" in content_type.lower() or content.lstrip()[:1] == b"<"


# Linear-time on any input (html.parser is quadratic on some hostile ones, e.g. "<a " repeated).
_HIDDEN_OPEN = re.compile(r"<!--|<(script|style)\b", re.IGNORECASE)
_HIDDEN_CLOSE = {
    None: re.compile(r"-->"),
    "script": re.compile(r"</script\s*>", re.IGNORECASE),
    "style": re.compile(r"</style\s*>", re.IGNORECASE),
}
_TAG = re.compile(r"<[^<>]*>")


def _page_text(content: bytes | bytearray, *, skip: set[str]) -> str:
    """The words of an HTML page (no tags, comments, scripts or styles), each chunk once,
    without those in ``skip`` (the status line a page repeats as its title and heading)."""
    page = bytes(content[:_PAGE_TEXT_BYTES]).decode("utf-8", "replace")
    shown: list[str] = []
    at = 0
    while (opened := _HIDDEN_OPEN.search(page, at)) is not None:
        shown.append(page[at : opened.start()])
        kind = opened.group(1)
        closed = _HIDDEN_CLOSE[kind.lower() if kind else None].search(page, opened.end())
        if closed is None:
            at = len(page)
            break
        at = closed.end()
    shown.append(page[at:])
    seen = set(skip)
    kept: list[str] = []
    for part in _TAG.split("".join(shown)):
        chunk = " ".join(html.unescape(part).split())
        if chunk and chunk not in seen:
            seen.add(chunk)
            kept.append(chunk)
    return " ".join(kept)


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
    "PROXY_REFUSED_HINT",
    "USER_AGENT",
    "Answer",
    "Body",
    "Limits",
    "ProxyRoute",
    "build_http_client",
    "graph_error_detail",
    "parse_body",
    "requests_proxies",
    "required_permission",
    "send",
    "server_date",
    "split_listing",
]
