"""The Microsoft Sentinel incidents and comments API (Microsoft.SecurityInsights) over httpx.

The wire policy is the Graph client's, reused rather than copied: ``send`` with its byte cap
and deadline, the retry table (``classify_status``/``classify_exception``/``decide``),
``Retry-After`` from the server's own clock, a ``Pacer`` per app. What differs is what an
answer *means* here, so errors are mapped in this module (microsoft-apis.md §3):

=====================  ==================================================================
403                    ``ConfigError`` naming the role: Microsoft Sentinel Responder on W
401                    the cached token is dropped once, then ``ConfigError``
404 of the workspace   ``ConfigError`` (a missing incident on GET is just ``None``)
409 / 412 on incident  ``EtagConflictError`` (a ``RetriableError``): re-read and merge again
404 of the incident    ``IncidentMissingError`` (a ``RetriableError``) on its comments and on a
                       PUT with an etag: deleted in Sentinel, to be created again
400 on a write         ``IncidentRejectedError`` with ARM's reason: that incident only
429                    retried in-line as Graph's are, then ``ThrottledError(retry_after)``
5xx, transport         retried in-line, then ``RetriableError``
=====================  ==================================================================

The waits (pacing, ``Retry-After``, backoff) are ``pacing.wait``: under ``pacing.stop_on`` (the
fan-out's threads, a drain's deadline) a stop ends them at once with ``Stopped``, and no call
starts after it.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import quote, urlsplit

import httpx
import structlog

from xdrsync.config import SentinelDestinationConfig, SyncConfig
from xdrsync.errors import (
    ConfigError,
    RetriableError,
    SkippableError,
    ThrottledError,
    XdrSyncError,
)
from xdrsync.graph.auth import TokenProvider
from xdrsync.graph.errors import ResponseLimitError
from xdrsync.graph.http import (
    USER_AGENT,
    Answer,
    Limits,
    build_http_client,
    graph_error_detail,
    parse_body,
    send,
    server_date,
)
from xdrsync.graph.odata import origin
from xdrsync.graph.pacing import Pacer, check_stop, wait
from xdrsync.graph.retry import (
    RULES,
    Action,
    Condition,
    RetryPolicy,
    classify_exception,
    classify_status,
    decide,
    parse_retry_after,
)
from xdrsync.hub.payload import ticks_from_text
from xdrsync.jsontext import dumps_utf8, loads
from xdrsync.logs import clean

log = structlog.get_logger(__name__)

API_VERSION: Final = "2025-09-01"
SENTINEL_ROLE: Final = "Microsoft Sentinel Responder"
#: ARM error codes that say the workspace (or what holds it) is not there (§3; ARM's own).
WORKSPACE_MISSING: Final = frozenset(
    {
        "resourcenotfound",
        "resourcegroupnotfound",
        "subscriptionnotfound",
        "workspacenotfound",
        "parentresourcenotfound",
        "invalidsubscriptionid",
    }
)
_MAX_PAGES: Final = 50  # a comment listing never needs more (100 comments per incident)


class EtagConflictError(RetriableError):
    """409: the incident changed since it was read (a stale etag); read it again."""


class IncidentMissingError(RetriableError):
    """404 for an incident xdrsync wrote before (its comments, or a PUT with its etag): someone
    deleted it in Sentinel. The destination forgets its copy and creates the incident again."""


class CreatedMeanwhileError(RetriableError):
    """A PUT creating the incident had landed, its answer lost: the incident is there now.
    Read it and write with its etag (an analyst may have saved on it since)."""


class IncidentRejectedError(SkippableError):
    """400 on a write: Sentinel refuses this incident or comment; ``reason`` is ARM's text."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Tokens(Protocol):
    def token(self) -> str: ...
    def invalidate(self) -> None: ...


@dataclass(frozen=True)
class SentinelComment:
    """A comment the Sentinel incident holds."""

    name: str
    message: str
    author: str = ""  # as Sentinel names the author (a user's name, or the app)


@dataclass(frozen=True)
class ListedPage:
    """A page of the incidents list: the raw resources, the server's clock, a next link?"""

    items: list[dict[str, Any]]
    server_date: datetime
    more: bool
    # As many as asked for: perhaps more, link or not (a link left off by a proxy, or a
    # server's page cut at exactly `top`, would otherwise end the read there, and the
    # read-back's watermark would pass what it never listed; `sync.listing.keyset_scan`).
    full: bool = False


def modified_before(read: Mapping[str, Any], known: Mapping[str, Any]) -> bool:
    """Whether ``read`` (incident properties as listed or fetched) is an older state than
    ``known`` by Sentinel's own ``lastModifiedTimeUtc``: a read that lags behind a write
    already answered. False when either stamp is missing or unreadable."""
    then, now = read.get("lastModifiedTimeUtc"), known.get("lastModifiedTimeUtc")
    if not isinstance(then, str) or not isinstance(now, str):
        return False
    read_ticks, known_ticks = ticks_from_text(then), ticks_from_text(now)
    return read_ticks is not None and known_ticks is not None and read_ticks < known_ticks


@dataclass(frozen=True)
class _Outcome:
    condition: Condition
    answer: Answer | None = None
    payload: dict[str, Any] | None = None
    retry_after: float | None = None
    detail: str = ""
    code: str = ""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def encode_body(body: Mapping[str, Any]) -> bytes:
    """A request body as compact UTF-8 JSON. A lone UTF-16 surrogate in Defender's text (a
    ``\\ud800`` Graph's JSON may carry) cannot be UTF-8 and would fail every attempt of the same
    batch: it is sent as U+FFFD, as the mapping shows it too (``text.sendable``)."""
    return dumps_utf8(body, replace_surrogates=True)


def _error_code(answer: Answer) -> str:
    try:
        body = loads(bytes(answer.content)) if answer.content.strip() else None
    except (ValueError, RecursionError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else ""


class ArmClient:
    """Incidents and comments of one Sentinel workspace. Thread-safe; counts its calls."""

    def __init__(
        self,
        entry: SentinelDestinationConfig,
        sync: SyncConfig,
        *,
        http: httpx.Client | None = None,
        tokens: Tokens | None = None,
        pacer: Pacer | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = wait,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utcnow,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.entry = entry
        self._owns_http = http is None
        self._http = http if http is not None else build_http_client(entry, sync)
        self.limits = Limits.of(sync)
        if tokens is None:
            tokens = TokenProvider(
                entry, self._http, self.limits, scope=f"{entry.arm_url}/.default"
            )
        self.tokens = tokens
        # ARM throttles reads and writes in separate buckets.
        self.pacer = pacer or Pacer(entry.reads_per_minute, clock=clock, sleep=sleep)
        self.write_pacer = (
            pacer if pacer is not None else Pacer(entry.writes_per_minute, clock=clock, sleep=sleep)
        )
        self.policy = policy or RetryPolicy(max_attempts=sync.max_attempts)
        self._base = f"{entry.arm_url}{entry.workspace_path}"  # .../Microsoft.SecurityInsights
        self._origin = origin(entry.arm_url)
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng
        self._lock = threading.Lock()
        self.calls = 0  # requests sent, retries included
        self.throttled = 0

    # -- incidents --------------------------------------------------------------------------

    def get(self, name: str) -> tuple[str | None, dict[str, Any]] | None:
        """(etag, properties) of the incident, or None when there is none by that name."""
        outcome = self._call("GET", self._incident_url(name), what=f"incident {name}")
        if outcome is None:
            return None
        payload = outcome.payload or {}
        properties = payload.get("properties")
        etag = payload.get("etag")
        return (
            etag if isinstance(etag, str) and etag else None,
            dict(properties) if isinstance(properties, dict) else {},
        )

    def put(
        self, name: str, properties: dict[str, Any], etag: str | None
    ) -> tuple[str | None, dict[str, Any]]:
        """Create (``etag`` None) or replace the incident; (the new etag, the properties
        Sentinel answered with). ``EtagConflictError`` when ``etag`` is stale,
        ``IncidentRejectedError`` on a 400.

        A PUT with an etag sent again meets a 409 if anything changed since. One without
        is taken over whatever is stored: after an attempt that may have landed (its answer
        lost, a 5xx) it is sent again only once a GET finds no incident, and
        ``CreatedMeanwhileError`` when the GET finds one; a resend would have replaced what
        an analyst saved on the new incident meanwhile."""
        body: dict[str, Any] = {"properties": properties}
        if etag is not None:
            body["etag"] = etag

        def landed() -> None:
            if self.get(name) is not None:
                raise CreatedMeanwhileError(
                    f"destination {self.entry.name!r}: incident {name} was created by a PUT "
                    "whose answer was lost"
                )

        outcome = self._call(
            "PUT",
            self._incident_url(name),
            body,
            what=f"incident {name}",
            conflict=True,
            gone=etag is not None,
            before_resend=None if etag is not None else landed,
        )
        payload = (outcome.payload if outcome is not None else None) or {}
        new, answered = payload.get("etag"), payload.get("properties")
        return (
            new if isinstance(new, str) and new else None,
            dict(answered) if isinstance(answered, dict) else {},
        )

    # -- comments ---------------------------------------------------------------------------

    def list_comments(self, name: str) -> list[SentinelComment]:
        """Every comment of the incident (all pages)."""
        url: str | None = (
            f"{self._incident_url(name, api=False)}/comments?api-version={API_VERSION}"
        )
        found: list[SentinelComment] = []
        seen: set[str] = set()
        while url is not None and len(seen) < _MAX_PAGES:
            seen.add(url)
            outcome = self._call("GET", url, what=f"comments of incident {name}", gone=True)
            payload = (outcome.payload if outcome is not None else None) or {}
            for item in payload.get("value") or []:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    continue
                props = item.get("properties")
                props = props if isinstance(props, dict) else {}
                message, author = props.get("message"), props.get("author")
                author = author if isinstance(author, dict) else {}
                who = author.get("name") or author.get("userPrincipalName") or author.get("email")
                found.append(
                    SentinelComment(
                        item["name"],
                        message if isinstance(message, str) else "",
                        who if isinstance(who, str) else "",
                    )
                )
            link = payload.get("nextLink")
            url = self._follow(link) if isinstance(link, str) and link else None
            if url in seen:
                url = None
        return found

    def put_comment(self, name: str, comment_name: str, message: str) -> None:
        """Create (or rewrite) the comment ``comment_name``; idempotent by its name."""
        url = (
            f"{self._incident_url(name, api=False)}/comments/{quote(comment_name, safe='')}"
            f"?api-version={API_VERSION}"
        )
        self._call(
            "PUT", url, {"properties": {"message": message}}, what=f"comment of {name}", gone=True
        )

    # -- reading back (two-way) ---------------------------------------------------------------

    def list_page(self, filter_text: str, top: int) -> ListedPage:
        """One page of incidents matching ``filter_text`` (ARM's ``$filter`` syntax), oldest
        ``lastModifiedTimeUtc`` first; the caller pages by time, never by ``nextLink``."""
        query = (
            f"api-version={API_VERSION}&$filter={quote(filter_text)}"
            f"&$orderby={quote('properties/lastModifiedTimeUtc asc')}&$top={top}"
        )
        outcome = self._call(
            "GET", f"{self._base}/incidents?{query}", what="incidents", listing=True
        )
        payload = (outcome.payload if outcome is not None else None) or {}
        items = [item for item in payload.get("value") or [] if isinstance(item, dict)]
        answer = outcome.answer if outcome is not None else None
        date = server_date(answer, self._wall_clock) if answer is not None else self._wall_clock()
        return ListedPage(
            items=items,
            server_date=date,
            more=bool(payload.get("nextLink")),
            full=len(items) >= top,
        )

    # -- health -----------------------------------------------------------------------------

    def check(self) -> None:
        """One cheap call (the first incident of the list): signs in and proves the workspace
        and read access. A missing workspace is a ``ConfigError`` here too."""
        url = f"{self._base}/incidents?api-version={API_VERSION}&$top=1"
        self._call("GET", url, what="incidents", listing=True)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- the retry loop ---------------------------------------------------------------------

    def _incident_url(self, name: str, *, api: bool = True) -> str:
        url = f"{self._base}/incidents/{quote(name, safe='')}"
        return f"{url}?api-version={API_VERSION}" if api else url

    def _follow(self, link: str) -> str:
        try:
            found = origin(link)
        except XdrSyncError:
            found = ""
        if found != self._origin:
            raise RetriableError(self._where(f"refusing to follow a nextLink off {self._origin}"))
        return link

    def _call(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        *,
        what: str,
        conflict: bool = False,
        listing: bool = False,
        gone: bool = False,
        before_resend: Callable[[], None] | None = None,
    ) -> _Outcome | None:
        """One logical call; None for a GET of something that is not there. ``gone``: the
        call is about an incident that exists, so a 404 (not of the workspace) means someone
        deleted it (``IncidentMissingError``). Every call is sent again as an idempotent one
        (a GET; a PUT with an etag, or of a named comment); ``before_resend`` is called
        before sending again one whose last attempt may have landed, and raises to stop."""
        request_id = str(uuid.uuid4())
        content = encode_body(body) if body is not None else None
        attempt, refreshed = 0, False
        policy = self.policy
        while True:
            attempt += 1
            check_stop()  # no call starts once a stop was asked for (``pacing.stop_on``)
            outcome = self._attempt(method, url, content, request_id)
            decision = decide(
                outcome.condition,
                attempt=attempt,
                policy=policy,
                idempotent=True,
                refreshed=refreshed,
                retry_after=outcome.retry_after,
                rng=self._rng,
            )
            if decision.action is Action.RETURN:
                return outcome
            if decision.action is Action.REFRESH_TOKEN:
                self.tokens.invalidate()
                refreshed = True
                continue
            if decision.action is Action.RAISE:
                if (
                    outcome.condition is Condition.NOT_FOUND
                    and outcome.code.lower() not in WORKSPACE_MISSING
                ):
                    if gone:
                        raise self._missing(url, outcome, what)
                    if method == "GET" and not listing:
                        return None
                raise self._error(
                    method, url, outcome, attempt, what, conflict, decision.retry_after
                )
            if outcome.condition is Condition.THROTTLED:
                with self._lock:
                    self.throttled += 1
                self._pacer(method).pause(decision.delay)
            log.info(
                "sentinel call retried",
                destination=self.entry.name,
                method=method,
                path=urlsplit(url).path,
                condition=outcome.condition.value,
                detail=outcome.detail,
                attempt=attempt,
                delay=round(decision.delay, 3),
            )
            self._sleep(decision.delay)
            if before_resend is not None and not RULES[outcome.condition].never_applied:
                before_resend()

    def _pacer(self, method: str) -> Pacer:
        return self.pacer if method == "GET" else self.write_pacer

    def _attempt(self, method: str, url: str, content: bytes | None, request_id: str) -> _Outcome:
        try:
            token = self.tokens.token()
        except RetriableError as unavailable:
            wait = unavailable.retry_after if isinstance(unavailable, ThrottledError) else None
            return _Outcome(
                Condition.SIGN_IN_UNAVAILABLE, retry_after=wait, detail=str(unavailable)
            )
        self._pacer(method).acquire()
        with self._lock:
            self.calls += 1
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "x-ms-client-request-id": request_id,
            "User-Agent": USER_AGENT,
        }
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            answer = send(
                self._http, method, url, limits=self.limits, headers=headers, content=content
            )
        except (httpx.TransportError, httpx.DecodingError, ResponseLimitError) as failure:
            condition = classify_exception(failure)
            if condition is None:  # pragma: no cover - every TransportError is classified
                raise
            detail = f"{type(failure).__name__}: {failure}"
            return _Outcome(condition, detail=clean(detail, limit=300))
        # ARM documents 409 for a stale etag; a 412 (If-Match's own status) means the same.
        condition = Condition.CONFLICT if answer.status == 412 else classify_status(answer.status)
        if condition is not Condition.OK:
            date = server_date(answer, self._wall_clock)
            return _Outcome(
                condition,
                answer,
                retry_after=parse_retry_after(answer.headers.get("Retry-After"), now=date),
                detail=graph_error_detail(answer),
                code=_error_code(answer),
            )
        parsed = parse_body(answer.content)
        if parsed.payload is None:
            return _Outcome(Condition.MALFORMED, answer, detail=f"{answer.status} {parsed.problem}")
        return _Outcome(Condition.OK, answer, parsed.payload)

    def _where(self, text: str) -> str:
        return f"destination {self.entry.name!r}: {text}"

    def _missing(self, url: str, outcome: _Outcome, what: str) -> IncidentMissingError:
        error = IncidentMissingError(
            self._where(f"{what}: the incident is gone from Sentinel ({outcome.detail})")
        )
        log.warning(
            "sentinel incident deleted outside xdrsync",
            destination=self.entry.name,
            path=urlsplit(url).path,
            error=clean(str(error)),
        )
        return error

    def _error(
        self,
        method: str,
        url: str,
        outcome: _Outcome,
        attempts: int,
        what: str,
        conflict: bool,
        retry_after: float | None,
    ) -> XdrSyncError:
        entry, condition, detail = self.entry, outcome.condition, outcome.detail
        call = f"{method} {what}"
        workspace = (
            f"workspace {entry.workspace} (resource group {entry.resource_group}, "
            f"subscription {entry.subscription_id})"
        )
        error: XdrSyncError
        if condition is Condition.FORBIDDEN:
            error = ConfigError(
                self._where(
                    f"{call} refused ({detail}); give the app registration {entry.client_id} "
                    f"the role {SENTINEL_ROLE} on {workspace}"
                )
            )
        elif condition is Condition.UNAUTHORIZED:
            error = ConfigError(
                self._where(
                    f"{call}: ARM rejected a fresh access token ({detail}); check that the app "
                    f"registration {entry.client_id} exists in tenant {entry.tenant_id} and that "
                    f"arm_url ({entry.arm_url}) is the cloud of the workspace"
                )
            )
        elif condition is Condition.NOT_FOUND and (
            outcome.code.lower() in WORKSPACE_MISSING or method == "GET"
        ):
            error = ConfigError(
                self._where(f"{call}: {workspace} not found ({detail}); check the destination")
            )
        elif condition is Condition.CONFLICT and conflict:
            error = EtagConflictError(self._where(f"{call}: changed since it was read ({detail})"))
        elif condition is Condition.BAD_REQUEST and method == "PUT":
            reason = detail.removeprefix("400 ")
            error = IncidentRejectedError(self._where(f"{call} rejected ({detail})"), reason)
        elif condition is Condition.BAD_REQUEST:
            error = ConfigError(self._where(f"{call} rejected ({detail})"))
        elif condition is Condition.UNTRUSTED:
            error = ConfigError(
                self._where(
                    f"{call}: the server's TLS certificate is not trusted ({detail}); if a "
                    "proxy inspects TLS, set verify_tls to its CA bundle"
                )
            )
        elif condition is Condition.THROTTLED:
            error = ThrottledError(
                self._where(f"{call} throttled after {attempts} attempt(s) ({detail})"),
                retry_after=retry_after,
            )
        else:
            error = RetriableError(
                self._where(
                    f"{call} failed after {attempts} attempt(s): {condition.value} ({detail})"
                )
            )
        text = clean(str(error))
        log.warning(
            "sentinel call failed", destination=entry.name, path=urlsplit(url).path, error=text
        )
        return error


__all__ = [
    "API_VERSION",
    "SENTINEL_ROLE",
    "ArmClient",
    "EtagConflictError",
    "IncidentMissingError",
    "IncidentRejectedError",
    "SentinelComment",
]
