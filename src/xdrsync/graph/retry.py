"""The HTTP retry policy as data: how each outcome of a Graph call is resolved.

Every outcome (a status code, a transport failure, a broken limit) is first *classified* into a
``Condition`` by two tables, then *resolved* by ``RULES``. ``decide`` is the only place that
reads the rules; the client just does what the returned ``Decision`` says. Sources:
architecture.md §4.9 (resolution table), microsoft-apis.md §2.10 (Retry-After).
"""

from __future__ import annotations

import enum
import math
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from xdrsync.errors import (
    AnswerTooLargeError,
    ConfigError,
    ConflictError,
    FatalSyncError,
    RetriableError,
    ThrottledError,
    XdrSyncError,
)
from xdrsync.graph.errors import (
    BadRequestError,
    DeadlineExceededError,
    ForbiddenError,
    NotFoundError,
    ResponseTooLargeError,
)


class Condition(enum.Enum):
    """What happened to one attempt, as far as recovery is concerned."""

    OK = "ok"
    THROTTLED = "throttled"  # 429
    SERVER_ERROR = "server error"  # 5xx
    TIMEOUT = "timeout"  # read/write timeout or 408: the server may have acted on it
    NOT_SENT = "not sent"  # connect failure or timeout: the server never saw the request
    UNTRUSTED = "TLS certificate not trusted"  # the server's certificate failed verification
    PROXY_REFUSED = "proxy refused our credentials"  # 407 from the outbound proxy
    CONNECTION_LOST = "connection lost"  # reset, or closed mid-response
    MALFORMED = "malformed body"  # 2xx whose body is not the JSON it should be
    PARTIAL = "partial answer"  # a listing's 206: a provider behind Graph failed (§2.10)
    TOO_LARGE = "response too large"  # body over max_response_bytes (declared or read)
    DEADLINE = "deadline exceeded"  # the answer took longer than request_deadline_seconds
    SIGN_IN_UNAVAILABLE = "sign-in unavailable"  # the token endpoint failed transiently
    UNAUTHORIZED = "unauthorized"  # 401
    FORBIDDEN = "forbidden"  # 403
    BAD_REQUEST = "bad request"  # 400
    NOT_FOUND = "not found"  # 404
    CONFLICT = "conflict"  # 409
    UNEXPECTED = "unexpected status"  # any other status


class Action(enum.Enum):
    RETURN = "return"
    RETRY = "retry"
    REFRESH_TOKEN = "refresh token"  # noqa: S105 - an action name, not a secret; drop the cached token, then retry once
    RAISE = "raise"


@dataclass(frozen=True)
class Rule:
    """How to resolve a condition.

    ``error`` is raised when the rule says so, or when retries run out. ``never_applied``
    marks conditions where the server certainly did not act on the request, so even a
    non-idempotent POST (a comment) may be resent; otherwise only idempotent requests are.
    ``backoff_floor``: the share of the backoff ceiling always waited when the server named
    no wait (0: full jitter). ``full_budget``: retried up to ``max_attempts`` even in a call
    that gives up sooner for a cheaper way out (``RetryPolicy.fallback_attempts``), because
    no way out gets around it.
    """

    action: Action
    error: type[XdrSyncError] | None = None
    honour_retry_after: bool = False
    never_applied: bool = False
    backoff_floor: float = 0.0
    full_budget: bool = False


RULES: Mapping[Condition, Rule] = {
    Condition.OK: Rule(Action.RETURN),
    # Wait exactly as long as Graph asks, every time it asks (microsoft-apis.md §2.10). A 429
    # without Retry-After backs off exponentially, never less than half the ceiling: a retry
    # right after a 429 only prolongs it. The tenant's budget is spent, so a fallback (a read
    # without $expand) would meet the same 429: the call keeps its full retry budget.
    Condition.THROTTLED: Rule(
        Action.RETRY,
        ThrottledError,
        honour_retry_after=True,
        never_applied=True,
        backoff_floor=0.5,
        full_budget=True,
    ),
    Condition.SERVER_ERROR: Rule(Action.RETRY, RetriableError, honour_retry_after=True),
    Condition.TIMEOUT: Rule(Action.RETRY, RetriableError),
    Condition.NOT_SENT: Rule(Action.RETRY, RetriableError, never_applied=True),
    # Another try meets the same certificate (a TLS-inspecting proxy's, whose CA verify_tls
    # does not name): the operator must act, so it is said at once, not after six tries.
    Condition.UNTRUSTED: Rule(Action.RAISE, ConfigError),
    # The proxy wants (other) credentials: every try meets the same refusal, and the request
    # never reached the server. The operator's to fix, said at once.
    Condition.PROXY_REFUSED: Rule(Action.RAISE, ConfigError, never_applied=True),
    Condition.CONNECTION_LOST: Rule(Action.RETRY, RetriableError),
    Condition.MALFORMED: Rule(Action.RETRY, RetriableError),
    # A partial page may lack records, and one taken for whole ends the read and moves the
    # watermark past them: read again, and raised as RetriableError so the watermark stays.
    Condition.PARTIAL: Rule(Action.RETRY, RetriableError),
    # Our own limits (size, wall clock): a transient server state as far as we can tell,
    # so retried like a timeout; raised as RetriableError so the stream keeps its watermark.
    Condition.TOO_LARGE: Rule(Action.RETRY, AnswerTooLargeError),
    Condition.DEADLINE: Rule(Action.RETRY, RetriableError),
    # The token endpoint's own 429 carries its Retry-After (``auth.TokenProvider``): waited
    # as Graph's is, and a long one handed to the caller, whose stream is parked that long.
    Condition.SIGN_IN_UNAVAILABLE: Rule(
        Action.RETRY, RetriableError, honour_retry_after=True, never_applied=True
    ),
    Condition.UNAUTHORIZED: Rule(Action.REFRESH_TOKEN, ConfigError, never_applied=True),
    Condition.FORBIDDEN: Rule(Action.RAISE, ForbiddenError),
    Condition.BAD_REQUEST: Rule(Action.RAISE, BadRequestError),
    Condition.NOT_FOUND: Rule(Action.RAISE, NotFoundError),
    Condition.CONFLICT: Rule(Action.RAISE, ConflictError),
    Condition.UNEXPECTED: Rule(Action.RAISE, FatalSyncError),
}

STATUS_CONDITIONS: Mapping[int, Condition] = {
    400: Condition.BAD_REQUEST,
    401: Condition.UNAUTHORIZED,
    403: Condition.FORBIDDEN,
    404: Condition.NOT_FOUND,
    407: Condition.PROXY_REFUSED,  # a forward proxy's answer to a plain-http request
    408: Condition.TIMEOUT,
    409: Condition.CONFLICT,
    429: Condition.THROTTLED,
    500: Condition.SERVER_ERROR,
    502: Condition.SERVER_ERROR,
    503: Condition.SERVER_ERROR,
    504: Condition.SERVER_ERROR,
}

# Looked for along the failure's causes first: httpx wraps ssl's error (twice) in ConnectError.
CAUSE_CONDITIONS: tuple[tuple[type[Exception], Condition], ...] = (
    (ssl.SSLCertVerificationError, Condition.UNTRUSTED),
)

# Checked in order: the first matching exception type wins (subclasses before bases).
EXCEPTION_CONDITIONS: tuple[tuple[type[Exception], Condition], ...] = (
    (ResponseTooLargeError, Condition.TOO_LARGE),
    (DeadlineExceededError, Condition.DEADLINE),
    (httpx.ConnectTimeout, Condition.NOT_SENT),
    (httpx.PoolTimeout, Condition.NOT_SENT),
    (httpx.ConnectError, Condition.NOT_SENT),
    # The proxy refused the tunnel (CONNECT answered other than 2xx, its status first in the
    # text; 407 is ``PROXY_REFUSED``): the server never saw the request.
    (httpx.ProxyError, Condition.NOT_SENT),
    (httpx.TimeoutException, Condition.TIMEOUT),
    (httpx.TransportError, Condition.CONNECTION_LOST),  # incl. RemoteProtocolError, ReadError
    (httpx.DecodingError, Condition.MALFORMED),  # a body whose content-encoding is broken
)


def classify_status(status: int) -> Condition:
    """The condition of an HTTP answer, by exact status first, then by class."""
    if status in STATUS_CONDITIONS:
        return STATUS_CONDITIONS[status]
    if 200 <= status < 300:
        return Condition.OK
    if 500 <= status < 600:
        return Condition.SERVER_ERROR
    return Condition.UNEXPECTED


def classify_exception(error: Exception) -> Condition | None:
    """The condition of a transport failure, or None if it is not one (a bug: let it raise)."""
    cause: BaseException | None = error
    for _ in range(8):  # a chain is short; a cycle must not hold us
        if cause is None:
            break
        for kind, condition in CAUSE_CONDITIONS:
            if isinstance(cause, kind):
                return condition
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, httpx.ProxyError) and str(error).startswith("407"):
        return Condition.PROXY_REFUSED  # a CONNECT answered 407 (for an https server)
    for kind, condition in EXCEPTION_CONDITIONS:
        if isinstance(error, kind):
            return condition
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop. Backoff is exponential with jitter (full unless a rule
    sets a floor)."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    # A Retry-After longer than this is not slept through in-line: the caller gets a
    # ThrottledError carrying it, and its stream retries next cycle.
    max_retry_after: float = 300.0
    # A call with a cheaper way out than retrying (the $expand fallback) gives up after this
    # many attempts, except on conditions no way out gets around (``Rule.full_budget``).
    fallback_attempts: int | None = None

    def backoff(self, attempt: int, rng: Callable[[], float], floor: float = 0.0) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): a random share
        of the exponential ceiling, never below ``floor`` (0 to 1) of it."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        fraction = min(1.0, max(0.0, rng()))
        floor = min(1.0, max(0.0, floor))
        return ceiling * (floor + (1.0 - floor) * fraction)

    def attempts_for(self, rule: Rule) -> int:
        """How many attempts a call makes when it keeps ending as ``rule`` says."""
        if self.fallback_attempts is None or rule.full_budget:
            return self.max_attempts
        return max(1, min(self.fallback_attempts, self.max_attempts))


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    error: type[XdrSyncError] | None = None
    retry_after: float | None = None


def decide(
    condition: Condition,
    *,
    attempt: int,
    policy: RetryPolicy,
    idempotent: bool,
    refreshed: bool,
    retry_after: float | None,
    rng: Callable[[], float],
) -> Decision:
    """What to do after attempt number ``attempt`` ended in ``condition``."""
    rule = RULES[condition]
    if rule.action is Action.RETURN:
        return Decision(Action.RETURN)
    if rule.action is Action.RAISE:
        return Decision(Action.RAISE, error=rule.error)
    if rule.action is Action.REFRESH_TOKEN:
        # One fresh token is worth one more try; a second refusal is a credentials problem.
        if refreshed:
            return Decision(Action.RAISE, error=rule.error)
        return Decision(Action.REFRESH_TOKEN)
    if not (idempotent or rule.never_applied):
        # The server may have acted: resending could duplicate (a comment). The caller
        # checks what happened before trying again.
        return Decision(Action.RAISE, error=rule.error, retry_after=retry_after)
    wait = retry_after if rule.honour_retry_after else None
    if attempt >= policy.attempts_for(rule) or (wait is not None and wait > policy.max_retry_after):
        return Decision(Action.RAISE, error=rule.error, retry_after=retry_after)
    if wait is None:
        wait = policy.backoff(attempt, rng, rule.backoff_floor)
    return Decision(Action.RETRY, delay=wait, retry_after=retry_after)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    An HTTP-date is measured against ``now`` — pass the response's own ``Date`` so the
    server's clock, not ours, decides. Unparseable values count as absent.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


__all__ = [
    "CAUSE_CONDITIONS",
    "EXCEPTION_CONDITIONS",
    "RULES",
    "STATUS_CONDITIONS",
    "Action",
    "Condition",
    "Decision",
    "RetryPolicy",
    "Rule",
    "classify_exception",
    "classify_status",
    "decide",
    "parse_retry_after",
]
