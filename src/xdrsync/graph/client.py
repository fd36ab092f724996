"""One tenant's Microsoft Graph v1.0 client: sign-in, pacing, the retry table, paging.

Synchronous (the whole project is) and thread-safe: one ``GraphClient`` per tenant, shared
by every thread working on that tenant, so they share its token and its budget.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx
import structlog

from xdrsync.config import SyncConfig, TenantConfig
from xdrsync.errors import (
    FatalSyncError,
    RetriableError,
    ServerBusyError,
    ThrottledError,
    XdrSyncError,
)
from xdrsync.graph import calls
from xdrsync.graph.auth import TokenProvider
from xdrsync.graph.errors import BadRequestError, ResponseLimitError
from xdrsync.graph.http import (
    PROXY_REFUSED_HINT,
    USER_AGENT,
    Limits,
    build_http_client,
    graph_error_detail,
    parse_body,
    required_permission,
    send,
    server_date,
)
from xdrsync.graph.odata import is_collection_path, origin, with_query
from xdrsync.graph.pacing import Pacer, check_stop, wait
from xdrsync.graph.retry import (
    RULES,
    Action,
    Condition,
    Decision,
    RetryPolicy,
    classify_exception,
    classify_status,
    decide,
    parse_retry_after,
)
from xdrsync.logs import clean

log = structlog.get_logger(__name__)

API_VERSION = "v1.0"
#: What is sent again after an outcome that may have been applied (a timeout, a lost
#: connection, a 5xx): reads only. A PATCH sets absolute values, but between a try that
#: landed and its repeat someone may change the same field in the portal, and the repeat would
#: silently undo that later change. So a write that may have landed goes back to its caller
#: (the pusher), which reads the record and merges again before writing (``twoway.pusher``).
_RESENDABLE = frozenset({"GET", "HEAD"})
#: How long one call may wait in all for Retry-After (429, a 5xx that says when to come back)
#: before it gives up with the wait in its error: the stream is then parked until then between
#: cycles (``sync.engine``), and an edit waits in the outbox (``twoway.pusher``), instead of a
#: thread sleeping through minutes while the tenant's other work queues behind it.
INLINE_RETRY_AFTER = 60.0
#: The longest a throttled tenant's calls are held here (a Retry-After of a year is a server's
#: mistake; the engine parks a stream as long at most).
MAX_PAUSE = 3600.0

#: Set while the caller logs each failed call itself (``failures_reported``).
_REPORTED: ContextVar[bool] = ContextVar("graph_failures_reported", default=False)


@contextmanager
def failures_reported() -> Iterator[None]:
    """Run the block (and the threads it starts with its context, e.g. ``prefetch``) with
    the client saying its failed calls at debug only: the caller logs each failure it gets,
    with the same text. The sync engine does for its streams (``stream failed``), which an
    outage had made two warnings per failure, every cycle. Other callers (the pusher,
    ``check``, a backfill) get the client's warning."""
    token = _REPORTED.set(True)
    try:
        yield
    finally:
        _REPORTED.reset(token)


class Tokens(Protocol):
    """What the client needs from sign-in (``TokenProvider`` in production)."""

    def token(self) -> str: ...
    def invalidate(self) -> None: ...


@dataclass(frozen=True)
class GraphResponse:
    """One successful Graph answer: its JSON body and the server's clock when it answered.

    A collection answer always has a list ``value`` (the client checks; see ``get``), whose
    elements are handed over as they are: records, but also whatever else a broken server
    put there (strings, numbers, null, lists) and ``UnreadableItem`` for an element no
    parser can read, so the sync engine quarantines those with a trace and keeps the rest.
    """

    status: int
    json: dict[str, Any]
    server_date: datetime  # from the response's Date header: aware UTC, the server's time
    url: str
    request_id: str

    @property
    def items(self) -> list[Any]:
        """Every element of the ``value`` list, as served (empty for an entity)."""
        value = self.json.get("value")
        return list(value) if isinstance(value, list) else []

    @property
    def next_link(self) -> str | None:
        link = self.json.get("@odata.nextLink")
        return link if isinstance(link, str) and link else None


@dataclass(frozen=True)
class _Outcome:
    condition: Condition
    response: GraphResponse | None = None
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _page_problem(payload: dict[str, Any] | None) -> str:
    """Why a collection body breaks the page contract, or "" if it keeps it."""
    if payload is None:
        return "body is not a JSON object"
    value = payload.get("value")
    if not isinstance(value, list):
        shown = "missing" if "value" not in payload else f"a {type(value).__name__}"
        return f"listing without a list 'value' ({shown})"
    link = payload.get("@odata.nextLink")
    if link is not None and not (isinstance(link, str) and link):
        return f"listing with a @odata.nextLink that is not a link ({type(link).__name__})"
    return ""


class GraphClient:
    """Graph v1.0 for one tenant. Paths are relative to ``{graph_url}/v1.0``."""

    def __init__(
        self,
        tenant: TenantConfig,
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
        self.tenant = tenant
        self._owns_http = http is None
        self._http = http if http is not None else build_http_client(tenant, sync)
        self._base = f"{tenant.graph_url}/{API_VERSION}"
        self._origin = origin(tenant.graph_url)
        self.limits = Limits.of(sync)
        self.tokens: Tokens = (
            tokens if tokens is not None else TokenProvider(tenant, self._http, self.limits)
        )
        self.pacer = pacer or Pacer(tenant.rate_limit_per_minute, clock=clock, sleep=sleep)
        self.policy = policy or RetryPolicy(max_attempts=sync.max_attempts)
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._log = log.bind(tenant=tenant.name)

    # -- public surface -------------------------------------------------------------------

    def get(
        self,
        path_or_url: str,
        params: Mapping[str, str | int] | None = None,
        *,
        max_attempts: int | None = None,
        collection: bool | None = None,
    ) -> GraphResponse:
        """GET a path or a Graph link. ``max_attempts`` lowers the retry budget for a call
        that has a cheaper way out than retrying (the ``$expand`` fallback); a 429 keeps the
        full budget, since no way out gets around it (``retry.Rule.full_budget``).

        ``collection``: the caller expects a listing (default: inferred from the path, see
        ``odata.is_collection_path``). A listing whose body lacks a list ``value`` (or has
        a ``@odata.nextLink`` that is not a link) is ``MALFORMED``: retried, then raised as
        ``RetriableError``, never read as an empty page.
        """
        policy = self.policy
        if max_attempts is not None:
            policy = replace(policy, fallback_attempts=max(1, max_attempts))
        url = self.url_for(path_or_url, params)
        listing = is_collection_path(url) if collection is None else collection
        return self._call("GET", url, policy=policy, collection=listing)

    def patch(self, path: str, body: Mapping[str, Any]) -> GraphResponse:
        return self._call("PATCH", self.url_for(path), dict(body))

    def post(self, path: str, body: Mapping[str, Any]) -> GraphResponse:
        """POST is not idempotent: it is resent only when Graph certainly did not act on it
        (429, connection refused); otherwise the caller must check before trying again."""
        return self._call("POST", self.url_for(path), dict(body))

    def paginate(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        fetch: Callable[[str], GraphResponse] | None = None,
    ) -> Iterator[GraphResponse]:
        """Every page of a collection, following ``@odata.nextLink`` to the end.

        Never computes ``$skip`` itself (Graph caps it and stalls on deep offsets). A link
        served twice would loop forever, so it is a broken contract: ``FatalSyncError``.
        ``fetch`` replaces the plain GET of one page (used for the ``$expand`` fallback).
        """
        url: str | None = self.url_for(path, params)
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise FatalSyncError(
                    f"tenant {self.tenant.name!r}: Graph served the same nextLink twice "
                    f"while paging {path}; stopping instead of looping"
                )
            seen.add(url)
            page = fetch(url) if fetch is not None else self.get(url, collection=True)
            yield page
            link = page.next_link
            url = self.url_for(self._resolve_link(link)) if link is not None else None

    def _resolve_link(self, link: str) -> str:
        """A next link as an absolute URL. OData lets a server write it relative to the
        service root (``security/incidents?...``), as an absolute path (``/v1.0/...``) or as a
        network path (``//host/...``): each is resolved as a browser would, so an absolute
        path is not put under ``/v1.0`` twice and a network path to another host is refused
        by ``url_for`` like any link off the Graph origin."""
        if link.startswith(("http://", "https://")):
            return link
        return urljoin(f"{self._base}/", link)

    def url_for(self, path_or_url: str, params: Mapping[str, str | int] | None = None) -> str:
        """An absolute URL on this tenant's Graph origin; anything else is refused, since
        our bearer token must never be sent elsewhere (e.g. by a forged nextLink). A link
        that cannot be parsed or sent (bad port, control characters) is ``FatalSyncError``."""
        where = f"tenant {self.tenant.name!r}"
        if path_or_url.startswith(("http://", "https://")):
            try:
                found = origin(path_or_url)
            except FatalSyncError as bad:
                raise FatalSyncError(f"{where}: {bad}") from None
            if found != self._origin:
                raise FatalSyncError(
                    f"{where}: refusing to follow a link off the Graph "
                    f"origin ({clean(found, limit=160)} is not {self._origin})"
                )
            url = path_or_url
        else:
            url = f"{self._base}/{path_or_url.lstrip('/')}"
        url = with_query(url, params)
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
            shown = clean(url, limit=160)
            raise FatalSyncError(f"{where}: unusable link {shown!r} (control characters)")
        try:
            httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as bad:
            raise FatalSyncError(
                f"{where}: unusable link {clean(url, limit=160)!r}: {clean(str(bad), limit=160)}"
            ) from None
        return url

    def record(self, counter: str, amount: int = 1) -> None:
        """Count an event for ``stats()`` (also used by the typed operations)."""
        with self._counts_lock:
            self._counts[counter] += amount
        calls.record(self.tenant.tenant_id, counter, amount)  # the process-wide tally

    def stats(self) -> dict[str, float]:
        """Counters for metrics: requests, retries, throttled, token refreshes, fallbacks..."""
        with self._counts_lock:
            counts: dict[str, float] = {
                name: float(self._counts[name])
                for name in ("requests", "retries", "throttled", "failures", "token_refreshes")
            }
            counts.update({name: float(value) for name, value in self._counts.items()})
        counts["pacing_wait_seconds"] = self.pacer.waited_seconds
        token_requests = getattr(self.tokens, "token_requests", None)
        if isinstance(token_requests, int):
            counts["token_requests"] = float(token_requests)
        return counts

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- the retry loop -------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        *,
        policy: RetryPolicy | None = None,
        collection: bool = False,
    ) -> GraphResponse:
        policy = policy or self.policy
        request_id = str(uuid.uuid4())  # one id per logical call: retries correlate in logs
        attempt, refreshed, waited = 0, False, 0.0
        while True:
            attempt += 1
            check_stop()  # no call starts once the service is stopping
            # What is left of the call's Retry-After allowance: a longer wait is raised.
            allowed = max(0.0, min(policy.max_retry_after, INLINE_RETRY_AFTER - waited))
            paused = self.pacer.paused_for()
            if paused > allowed:
                # Graph told this tenant to wait (another call's 429) longer than this call
                # may: it fails as throttled at once, without a request.
                outcome = _Outcome(
                    Condition.THROTTLED,
                    retry_after=paused,
                    detail="not sent: Graph asked this tenant to wait (Retry-After)",
                )
            else:
                outcome = self._attempt(method, url, body, request_id, collection)
            decision = decide(
                outcome.condition,
                attempt=attempt,
                policy=replace(policy, max_retry_after=allowed),
                idempotent=method in _RESENDABLE,
                refreshed=refreshed,
                retry_after=outcome.retry_after,
                rng=self._rng,
            )
            if decision.action is Action.RETURN:
                assert outcome.response is not None  # only OK resolves to RETURN
                return outcome.response
            if decision.action is Action.REFRESH_TOKEN:
                self.record("token_refreshes")
                self.tokens.invalidate()
                refreshed = True
                continue
            if decision.action is Action.RAISE:
                self.record("failures")
                if outcome.condition is Condition.THROTTLED and decision.retry_after:
                    # The tenant's next call, whichever stream or edit makes it, waits too.
                    self.pacer.pause(min(decision.retry_after, MAX_PAUSE))
                raise self._error(decision, outcome, method, url, attempt, policy)
            self.record("retries")
            if decision.retry_after is not None and RULES[outcome.condition].honour_retry_after:
                waited += decision.delay
            if outcome.condition is Condition.THROTTLED:
                self.record("throttled")
                self.pacer.pause(decision.delay)  # every thread of this tenant waits
            self._log.info(
                "graph call retried",
                method=method,
                path=urlsplit(url).path,
                condition=outcome.condition.value,
                detail=outcome.detail,
                attempt=attempt,
                delay=round(decision.delay, 3),
                request_id=request_id,
            )
            self._sleep(decision.delay)

    def _attempt(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None,
        request_id: str,
        collection: bool,
    ) -> _Outcome:
        """One try, always ending in a classified outcome (a bug aside, it never raises)."""
        try:
            token = self.tokens.token()
        except RetriableError as unavailable:
            retry_after = (
                unavailable.retry_after if isinstance(unavailable, ThrottledError) else None
            )
            return _Outcome(
                Condition.SIGN_IN_UNAVAILABLE, retry_after=retry_after, detail=str(unavailable)
            )
        self.pacer.acquire()
        self.record("requests")
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            # Graph answers enum members added after unknownFutureValue (an incident
            # awaitingAction, an alert from microsoftSentinel) as unknownFutureValue without
            # it; the models keep unknown members, and the tables map the real ones.
            "Prefer": "include-unknown-enum-members",
            "client-request-id": request_id,
            "User-Agent": USER_AGENT,
        }
        try:
            # The body is read here, streamed within our limits, so a connection dropped
            # mid-body, an oversized body or a late one surfaces here, not while parsing.
            answer = send(self._http, method, url, limits=self.limits, headers=headers, json=body)
        except (httpx.TransportError, httpx.DecodingError, ResponseLimitError) as failure:
            condition = classify_exception(failure)
            if condition is None:  # pragma: no cover - every TransportError is classified
                raise
            detail = (
                str(failure)
                if isinstance(failure, ResponseLimitError)
                else (f"{type(failure).__name__}: {failure}")
            )
            return _Outcome(condition, detail=clean(detail, limit=300))
        status = answer.status
        condition = classify_status(status)
        date = server_date(answer, self._wall_clock)
        if condition is not Condition.OK:
            retry_after = parse_retry_after(answer.headers.get("Retry-After"), now=date)
            return _Outcome(
                condition,
                status=status,
                retry_after=retry_after,
                detail=graph_error_detail(answer),
            )
        parsed = parse_body(answer.content)
        problem = parsed.problem or (_page_problem(parsed.payload) if collection else "")
        if parsed.payload is None or problem:
            return _Outcome(Condition.MALFORMED, status=status, detail=f"{status} {problem}")
        if status == 206:  # federated security providers answered partially (§2.10)
            warning = clean(answer.headers.get("Warning") or "", limit=300)
            if collection:  # a listing page missing records is never taken for whole
                return _Outcome(Condition.PARTIAL, status=status, detail=f"206 {warning}")
            self._log.warning("graph answered partially", warning=warning)
        return _Outcome(
            Condition.OK,
            response=GraphResponse(status, parsed.payload, date, url, request_id),
            status=status,
        )

    def _error(
        self,
        decision: Decision,
        outcome: _Outcome,
        method: str,
        url: str,
        attempts: int,
        policy: RetryPolicy,
    ) -> XdrSyncError:
        parts = urlsplit(url)
        where = f"tenant {self.tenant.name!r}: {method} {parts.path}"
        kind = decision.error or FatalSyncError
        condition, detail = outcome.condition, outcome.detail
        if condition is Condition.FORBIDDEN:
            permission = required_permission(method, parts.path)
            text = (
                f"{where} refused ({detail}); grant the app the application permission "
                f"{permission} (with admin consent) in Entra ID"
            )
        elif condition is Condition.UNAUTHORIZED:
            text = (
                f"{where} rejected a fresh access token ({detail}); check that the app "
                f"registration {self.tenant.client_id} exists in tenant {self.tenant.tenant_id}"
            )
        elif condition is Condition.UNTRUSTED:
            text = (
                f"{where}: the server's TLS certificate is not trusted ({detail}); if a proxy "
                "inspects TLS, set verify_tls to its CA bundle"
            )
        elif condition is Condition.PROXY_REFUSED:
            text = f"{where}: {PROXY_REFUSED_HINT} ({detail})"
        elif condition is Condition.BAD_REQUEST:
            query = f"?{parts.query}" if parts.query else ""
            text = f"{where}{query} was rejected by Graph ({detail})"
        elif decision.action is Action.RAISE and condition in (
            Condition.NOT_FOUND,
            Condition.CONFLICT,
            Condition.UNEXPECTED,
        ):
            text = f"{where}: {detail}"
        elif method not in _RESENDABLE and attempts < policy.attempts_for(RULES[condition]):
            text = (
                f"{where} ended in {condition.value} ({detail}); "
                "not resent at once, as Graph may have applied it: it is looked for before "
                "another try"
            )
        else:
            text = f"{where} failed after {attempts} attempt(s): {condition.value} ({detail})"
        text = clean(text)  # server text (details, link paths) never carries secrets or escapes
        # A 404 is an answer (deleted, merged), not a malfunction: keep it out of warnings;
        # so is a failure the caller logs itself (``failures_reported``).
        quiet = condition is Condition.NOT_FOUND or _REPORTED.get()
        level = self._log.debug if quiet else self._log.warning
        level("graph call failed", method=method, path=parts.path, error=text)
        if issubclass(kind, ThrottledError):
            return ThrottledError(text, retry_after=decision.retry_after)
        if condition is Condition.SIGN_IN_UNAVAILABLE and decision.retry_after is not None:
            # The token endpoint throttled us (only its 429 names a wait): nothing was sent.
            throttled = ThrottledError(text, retry_after=decision.retry_after)
            throttled.unsent = True
            return throttled
        if decision.retry_after is not None and RULES[condition].honour_retry_after:
            # A 5xx that says when to come back (an outage asking for ten minutes) is kept
            # across cycles as a 429 is, not answered with a request every poll.
            return ServerBusyError(text, retry_after=decision.retry_after)
        if issubclass(kind, BadRequestError):
            return BadRequestError(text, detail=detail)
        error = kind(text)
        if isinstance(error, RetriableError):
            error.unsent = condition in (Condition.NOT_SENT, Condition.SIGN_IN_UNAVAILABLE)
        return error


__all__ = ["API_VERSION", "GraphClient", "GraphResponse", "Tokens", "failures_reported"]
