"""The retry table itself: classification, resolution, Retry-After parsing, jitter bounds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.errors import (
    ConfigError,
    ConflictError,
    FatalSyncError,
    RetriableError,
    SkippableError,
    ThrottledError,
)
from xdrsync.graph.errors import BadRequestError, ForbiddenError, NotFoundError
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

POLICY = RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=60.0, max_retry_after=300.0)


def half() -> float:
    return 0.5


@pytest.mark.parametrize(
    ("status", "condition"),
    [
        (200, Condition.OK),
        (201, Condition.OK),
        (204, Condition.OK),
        (206, Condition.OK),
        (400, Condition.BAD_REQUEST),
        (401, Condition.UNAUTHORIZED),
        (403, Condition.FORBIDDEN),
        (404, Condition.NOT_FOUND),
        (407, Condition.PROXY_REFUSED),  # a forward proxy wants (other) credentials
        (408, Condition.TIMEOUT),
        (409, Condition.CONFLICT),
        (429, Condition.THROTTLED),
        (500, Condition.SERVER_ERROR),
        (502, Condition.SERVER_ERROR),
        (503, Condition.SERVER_ERROR),
        (504, Condition.SERVER_ERROR),
        (507, Condition.SERVER_ERROR),
        (302, Condition.UNEXPECTED),
        (418, Condition.UNEXPECTED),
    ],
)
def test_status_codes_are_classified(status: int, condition: Condition) -> None:
    assert classify_status(status) is condition


@pytest.mark.parametrize(
    ("error", "condition"),
    [
        (httpx.ConnectError("refused"), Condition.NOT_SENT),
        (httpx.ConnectTimeout("slow connect"), Condition.NOT_SENT),
        (httpx.PoolTimeout("pool"), Condition.NOT_SENT),
        (httpx.ReadTimeout("slow read"), Condition.TIMEOUT),
        (httpx.WriteTimeout("slow write"), Condition.TIMEOUT),
        (httpx.RemoteProtocolError("peer closed connection mid-body"), Condition.CONNECTION_LOST),
        (httpx.ReadError("reset by peer"), Condition.CONNECTION_LOST),
        (httpx.DecodingError("bad gzip"), Condition.MALFORMED),
        # a CONNECT refused: for its credentials (said at once), or otherwise (not sent)
        (httpx.ProxyError("407 Proxy Authentication Required"), Condition.PROXY_REFUSED),
        (httpx.ProxyError("502 Bad Gateway"), Condition.NOT_SENT),
        (ValueError("a bug, not a transport failure"), None),
    ],
)
def test_transport_failures_are_classified(error: Exception, condition: Condition | None) -> None:
    assert classify_exception(error) is condition


def test_every_condition_has_a_rule() -> None:
    assert set(RULES) == set(Condition)


@pytest.mark.parametrize(
    ("condition", "action", "error"),
    [
        (Condition.OK, Action.RETURN, None),
        (Condition.THROTTLED, Action.RETRY, None),
        (Condition.SERVER_ERROR, Action.RETRY, None),
        (Condition.TIMEOUT, Action.RETRY, None),
        (Condition.NOT_SENT, Action.RETRY, None),
        (Condition.CONNECTION_LOST, Action.RETRY, None),
        (Condition.MALFORMED, Action.RETRY, None),
        (Condition.SIGN_IN_UNAVAILABLE, Action.RETRY, None),
        (Condition.UNAUTHORIZED, Action.REFRESH_TOKEN, None),
        (Condition.FORBIDDEN, Action.RAISE, ForbiddenError),
        (Condition.BAD_REQUEST, Action.RAISE, BadRequestError),
        (Condition.NOT_FOUND, Action.RAISE, NotFoundError),
        (Condition.CONFLICT, Action.RAISE, ConflictError),
        (Condition.UNEXPECTED, Action.RAISE, FatalSyncError),
        (Condition.PROXY_REFUSED, Action.RAISE, ConfigError),
    ],
)
def test_first_failure_of_each_condition(
    condition: Condition, action: Action, error: type[Exception] | None
) -> None:
    decision = decide(
        condition,
        attempt=1,
        policy=POLICY,
        idempotent=True,
        refreshed=False,
        retry_after=None,
        rng=half,
    )
    assert decision.action is action
    assert decision.error is error


def test_not_found_is_skippable() -> None:
    assert issubclass(NotFoundError, SkippableError)


def test_retry_after_is_waited_exactly_when_throttled() -> None:
    decision = decide(
        Condition.THROTTLED,
        attempt=3,
        policy=POLICY,
        idempotent=True,
        refreshed=False,
        retry_after=17.0,
        rng=half,
    )
    assert (decision.action, decision.delay) == (Action.RETRY, 17.0)


@pytest.mark.parametrize(
    ("draw", "expected"),
    [(1.0, [1.0, 2.0, 4.0, 8.0, 16.0]), (0.0, [0.5, 1.0, 2.0, 4.0, 8.0])],
    ids=["highest draw", "lowest draw"],
)
def test_throttled_without_retry_after_backs_off_exponentially_never_at_once(
    draw: float, expected: list[float]
) -> None:
    """Even the lowest jitter draw waits half the ceiling: a retry right after a 429 only
    prolongs the throttling (microsoft-apis.md §2.10: back off exponentially)."""
    delays = [
        decide(
            Condition.THROTTLED,
            attempt=attempt,
            policy=POLICY,
            idempotent=True,
            refreshed=False,
            retry_after=None,
            rng=lambda: draw,
        ).delay
        for attempt in range(1, 6)
    ]
    assert delays == expected


@pytest.mark.parametrize(
    ("condition", "action"),
    [
        (Condition.THROTTLED, Action.RETRY),  # the fallback would meet the same 429
        (Condition.SERVER_ERROR, Action.RAISE),  # maybe $expand's own: fall back now
        (Condition.TIMEOUT, Action.RAISE),
        (Condition.CONNECTION_LOST, Action.RAISE),
    ],
)
def test_a_lowered_budget_binds_every_condition_but_throttling(
    condition: Condition, action: Action
) -> None:
    decision = decide(
        condition,
        attempt=1,
        policy=replace(POLICY, fallback_attempts=1),
        idempotent=True,
        refreshed=False,
        retry_after=None,
        rng=half,
    )
    assert decision.action is action


def test_a_503_with_retry_after_waits_as_asked() -> None:
    decision = decide(
        Condition.SERVER_ERROR,
        attempt=1,
        policy=POLICY,
        idempotent=True,
        refreshed=False,
        retry_after=9.0,
        rng=half,
    )
    assert decision.delay == 9.0


def test_timeouts_ignore_retry_after_and_back_off() -> None:
    decision = decide(
        Condition.TIMEOUT,
        attempt=2,
        policy=POLICY,
        idempotent=True,
        refreshed=False,
        retry_after=None,
        rng=half,
    )
    assert (decision.action, decision.delay) == (Action.RETRY, 1.0)


@pytest.mark.parametrize(
    ("condition", "error"),
    [
        (Condition.THROTTLED, ThrottledError),
        (Condition.SERVER_ERROR, RetriableError),
        (Condition.CONNECTION_LOST, RetriableError),
        (Condition.TIMEOUT, RetriableError),
    ],
)
def test_attempts_are_bounded(condition: Condition, error: type[Exception]) -> None:
    last = decide(
        condition,
        attempt=POLICY.max_attempts,
        policy=POLICY,
        idempotent=True,
        refreshed=False,
        retry_after=4.0,
        rng=half,
    )
    assert last.action is Action.RAISE
    assert last.error is error


def test_exhausted_throttling_carries_retry_after() -> None:
    last = decide(
        Condition.THROTTLED,
        attempt=6,
        policy=POLICY,
        idempotent=True,
        refreshed=False,
        retry_after=42.0,
        rng=half,
    )
    assert last.retry_after == 42.0


def test_a_retry_after_beyond_the_ceiling_is_handed_to_the_caller() -> None:
    decision = decide(
        Condition.THROTTLED,
        attempt=1,
        policy=POLICY,
        idempotent=True,
        refreshed=False,
        retry_after=3600.0,
        rng=half,
    )
    assert (decision.action, decision.error, decision.retry_after) == (
        Action.RAISE,
        ThrottledError,
        3600.0,
    )


def test_unauthorized_refreshes_once_then_is_a_config_error() -> None:
    first = decide(
        Condition.UNAUTHORIZED,
        attempt=1,
        policy=POLICY,
        idempotent=True,
        refreshed=False,
        retry_after=None,
        rng=half,
    )
    second = decide(
        Condition.UNAUTHORIZED,
        attempt=2,
        policy=POLICY,
        idempotent=True,
        refreshed=True,
        retry_after=None,
        rng=half,
    )
    assert first.action is Action.REFRESH_TOKEN
    assert (second.action, second.error) == (Action.RAISE, ConfigError)


@pytest.mark.parametrize(
    ("condition", "resent"),
    [
        (Condition.THROTTLED, True),  # Graph did not act on it
        (Condition.NOT_SENT, True),  # never reached Graph
        (Condition.SIGN_IN_UNAVAILABLE, True),
        (Condition.SERVER_ERROR, False),  # may have been applied: a comment could double
        (Condition.TIMEOUT, False),
        (Condition.CONNECTION_LOST, False),
    ],
)
def test_non_idempotent_requests_are_resent_only_when_never_applied(
    condition: Condition, resent: bool
) -> None:
    decision = decide(
        condition,
        attempt=1,
        policy=POLICY,
        idempotent=False,
        refreshed=False,
        retry_after=None,
        rng=half,
    )
    assert (decision.action is Action.RETRY) is resent


NOW = datetime(2025, 2, 7, 19, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("Fri, 07 Feb 2025 19:00:30 GMT", 30.0),
        ("Fri, 07 Feb 2025 18:59:00 GMT", 0.0),  # already past: go now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("inf", None),
    ],
)
def test_retry_after_as_seconds_or_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=40),
    fraction=st.floats(min_value=0.0, max_value=1.0),
    base=st.floats(min_value=0.01, max_value=5.0),
    ceiling=st.floats(min_value=0.01, max_value=120.0),
)
def test_full_jitter_stays_within_its_bounds(
    attempt: int, fraction: float, base: float, ceiling: float
) -> None:
    policy = RetryPolicy(max_attempts=50, base_delay=base, max_delay=ceiling)
    delay = policy.backoff(attempt, lambda: fraction)
    assert 0.0 <= delay <= min(ceiling, base * 2 ** (attempt - 1)) + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=40),
    fraction=st.floats(min_value=-1.0, max_value=2.0),
    floor=st.floats(min_value=0.0, max_value=1.0),
)
def test_jitter_with_a_floor_stays_between_the_floor_and_the_ceiling(
    attempt: int, fraction: float, floor: float
) -> None:
    top = min(POLICY.max_delay, POLICY.base_delay * 2 ** (attempt - 1))
    delay = POLICY.backoff(attempt, lambda: fraction, floor)
    assert top * floor - 1e-9 <= delay <= top + 1e-9
