"""The error shapes of Graph and of the gateways in front of it that can hurt a client, end to
end over HTTP against the emulator: a 503/504 saying when to come back (``Retry-After``), a
429 without ``Retry-After``, and a gateway's own HTML 502/503/504 page instead of Graph's JSON
(microsoft-apis.md §2.10). Each shape at a substantial rate must cost nothing but time, and
the waits are checked on the wire: when an attempt came back, and when the next attempt of
the same call (its ``client-request-id``) went out.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from truth import assert_hub_matches_truth

from xdrsync.config import SyncConfig
from xdrsync.console.health import health
from xdrsync.emulator.service import settings_for
from xdrsync.graph.http import build_http_client
from xdrsync.graph.retry import RetryPolicy
from xdrsync.graph.security import DefenderApi
from xdrsync.sync.engine import CycleReport, TenantSource, sync_tenant
from xdrsync.workspace import inbound_settings

# Small pages, so that a few dozen incidents make enough Graph calls for the faults to bite.
SYNC = SyncConfig(
    poll_interval_seconds=0.5,
    lookback_seconds=60,
    max_attempts=8,
    page_size_incidents=5,
    page_size_alerts=25,
)


@dataclass(frozen=True)
class Attempt:
    """One Graph request as the client's socket saw it."""

    call: str  # the client-request-id: one per logical call, kept by its retries
    sent: float  # time.monotonic() when it went out
    answered: float | None = None  # when its answer's head came back
    status: int | None = None
    retry_after: str | None = None
    content_type: str = ""


@dataclass
class Wire:
    """Every Graph attempt of one client, in the order they went out."""

    attempts: list[Attempt] = field(default_factory=list)
    expand_calls: set[str] = field(default_factory=set)  # the calls asking $expand=alerts
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_request(self, request: httpx.Request) -> None:
        if "/v1.0/" in request.url.path:
            call = request.headers["client-request-id"]
            with self._lock:
                self.attempts.append(Attempt(call, time.monotonic()))
                if request.url.params.get("$expand"):
                    self.expand_calls.add(call)

    def on_response(self, response: httpx.Response) -> None:
        if "/v1.0/" not in response.request.url.path:
            return
        call = response.request.headers["client-request-id"]
        with self._lock:
            index = max(i for i, a in enumerate(self.attempts) if a.call == call)
            self.attempts[index] = Attempt(
                call,
                self.attempts[index].sent,
                time.monotonic(),
                response.status_code,
                response.headers.get("Retry-After"),
                response.headers.get("Content-Type", ""),
            )

    def retried(self, *statuses: int) -> list[tuple[Attempt, float]]:
        """Each answer with one of ``statuses`` that its call retried, with the seconds
        between that answer and the call's next attempt."""
        pairs = []
        for index, attempt in enumerate(self.attempts):
            if attempt.status not in statuses or attempt.answered is None:
                continue
            later = [a for a in self.attempts[index + 1 :] if a.call == attempt.call]
            if later:
                pairs.append((attempt, later[0].sent - attempt.answered))
        return pairs


@dataclass
class Watched:
    """The env's tenant as the workspace builds it (our HTTP client, our Graph client), with
    every Graph attempt on its wire recorded."""

    env: Any
    api: DefenderApi
    wire: Wire

    def sync_once(self) -> CycleReport:
        tenant = self.env.config.tenants[0]
        source = TenantSource(name=tenant.name, tenant_id=tenant.tenant_id, source=self.api)
        return sync_tenant(self.env.hub, source, inbound_settings(self.env.config))


@contextmanager
def watched(env: Any, **client_options: Any) -> Iterator[Watched]:
    tenant = env.config.tenants[0]
    wire = Wire()
    http = build_http_client(tenant, env.config.sync)
    http.event_hooks = {"request": [wire.on_request], "response": [wire.on_response]}
    api = DefenderApi.connect(tenant, env.config.sync, http=http, **client_options)
    try:
        yield Watched(env, api, wire)
    finally:
        api.close()
        http.close()


def assert_complete_and_healthy(env: Any, report: CycleReport) -> None:
    """Every incident and alert at its latest version, and no stream left in error."""
    tenant = env.config.tenants[0].tenant_id
    assert report.ok, report.errors
    assert_hub_matches_truth(env.hub, tenant, env.truth())
    streams = health(env.hub, env.config, [tenant])["tenants"][0]["streams"]
    assert {s["stream"]: (s["outcome"], s["lastError"]) for s in streams} == {
        "incidents": ("ok", None),
        "alerts": ("ok", None),
    }


def injected(env: Any, fault: str) -> int:
    return int(env.server.emulator.stats_snapshot()["faults"].get(fault, 0))


def test_503_and_504_with_retry_after_are_waited_out_as_asked_and_lose_nothing(
    make_env: Any,
) -> None:
    env = make_env(
        settings_for(seed=44, incidents=30, faults="retry_after_error_rate=0.25"), sync=SYNC
    )
    with watched(env) as tenant:
        report = tenant.sync_once()
    wire = tenant.wire
    assert_complete_and_healthy(env, report)
    assert injected(env, "retry_after_error") >= 3  # the run really was hostile
    retried = wire.retried(503, 504)
    assert len(retried) == injected(env, "retry_after_error")  # every one retried
    assert {a.status for a, _ in retried} == {503, 504}
    for answer, gap in retried:
        assert answer.retry_after == "1"
        # The next attempt of the call went out no sooner than Graph asked (with a few ms for
        # the clocks: the client sleeps 1 s between reading the answer and sending again).
        assert gap >= 1.0 - 0.02, (answer, gap)


def test_429_without_retry_after_is_retried_with_backoff_not_at_once(make_env: Any) -> None:
    env = make_env(settings_for(seed=43, incidents=30, faults="bare_throttle_rate=0.3"), sync=SYNC)
    # The unluckiest jitter draw every time: the smallest wait the client can choose.
    with watched(env, rng=lambda: 0.0) as tenant:
        report = tenant.sync_once()
    wire = tenant.wire
    assert_complete_and_healthy(env, report)  # not fatal, not even for the cycle
    assert injected(env, "bare_throttle") >= 3
    retried = wire.retried(429)
    assert len(retried) == injected(env, "bare_throttle")  # every 429 retried
    for answer, gap in retried:
        assert answer.retry_after is None
        # Exponential backoff from 1 s, never less than half of it (0.5 s, 1 s, 2 s ...).
        assert gap >= 0.5 - 0.02, (answer, gap)


def test_html_gateway_pages_are_retried_and_lose_nothing(make_env: Any) -> None:
    env = make_env(settings_for(seed=43, incidents=30, faults="html_error_rate=0.3"), sync=SYNC)
    with watched(env) as tenant:
        report = tenant.sync_once()
    wire = tenant.wire
    assert_complete_and_healthy(env, report)
    assert injected(env, "html_error") >= 3
    pages = [a for a in wire.attempts if a.status in (502, 503, 504)]
    assert len(pages) == injected(env, "html_error")
    assert all(a.content_type.startswith("text/html") for a in pages)
    assert len(wire.retried(502, 503, 504)) == len(pages)  # each retried, none fatal


def test_every_shape_at_once_loses_nothing(make_env: Any) -> None:
    """With ``$expand`` failing too, the incidents stream gives it three attempts a page, then
    one after a first fallback: a 429 among them must still be ridden out with the full retry
    budget (the fallback would meet the same 429), not fail the stream for the cycle."""
    faults = (
        "expand_error_rate=0.05,retry_after_error_rate=0.1,bare_throttle_rate=0.15,"
        "html_error_rate=0.1"
    )
    env = make_env(settings_for(seed=51, incidents=30, faults=faults), sync=SYNC)
    # Backoff from 0.25 s instead of 1 s: the same policy, a shorter test.
    with watched(env, policy=RetryPolicy(max_attempts=8, base_delay=0.25)) as tenant:
        report = tenant.sync_once()
    assert_complete_and_healthy(env, report)
    assert tenant.api.client.stats().get("expand_fallbacks", 0) >= 1
    for fault in ("expand", "retry_after_error", "bare_throttle", "html_error"):
        assert injected(env, fault) >= 1, fault
    expand_429s = [
        (answer, gap)
        for answer, gap in tenant.wire.retried(429)
        if answer.call in tenant.wire.expand_calls
    ]
    assert expand_429s  # a 429 on an $expand page, retried
    assert all(gap >= 0.25 * 0.5 - 0.02 for _, gap in tenant.wire.retried(429))


def test_a_gateway_page_that_persists_is_reported_readably(make_env: Any) -> None:
    env = make_env(
        settings_for(seed=35, incidents=5, faults="html_error_rate=1"),
        sync=SYNC.model_copy(update={"max_attempts": 2}),
    )
    with watched(env) as tenant:
        report = tenant.sync_once()
    assert set(report.errors) == {"incidents", "alerts"}  # failed, each on its own
    states = {s.stream: s.last_error for s in env.hub.list_states()}
    page_text = (
        "Microsoft-Azure-Application-Gateway/v2",  # 502
        "HTTP Error 503. The service is unavailable.",
        "Our services aren't available right now",  # 504
    )
    for stream, message in report.errors.items():
        assert states[stream] == message  # what `state show` and the console show
        assert message.startswith("RetriableError: "), message
        assert re.search(r"failed after 2 attempt\(s\): server error \(50[234] \w", message)
        assert "(HTML page): " in message and any(text in message for text in page_text)
        for noise in ("<", "JSON", "Expecting value", "Traceback", "font-family", "dataLayer"):
            assert noise not in message, (noise, message)
    assert env.hub.list_incidents(limit=10) == []


@pytest.mark.parametrize(
    ("shape", "kind"),
    [
        ("retry_after_error", "ServerBusyError"),  # transient, with the wait Graph asked for
        ("bare_throttle", "ThrottledError"),
        ("html_error", "RetriableError"),
    ],
)
def test_a_shape_that_outlasts_the_retries_fails_the_cycle_not_the_stream(
    make_env: Any, shape: str, kind: str
) -> None:
    """Raised as transient (never as a broken contract or a configuration problem), and the
    next cycle after it clears reads everything."""
    env = make_env(
        settings_for(seed=36, incidents=12, faults=f"{shape}_rate=1"),
        sync=SYNC.model_copy(update={"max_attempts": 2}),
    )
    with watched(env) as tenant:
        failed = tenant.sync_once()
        assert failed.errors and not failed.misconfigured
        assert {m.split(":")[0] for m in failed.errors.values()} == {kind}, failed.errors
        assert all(s.last_error for s in env.hub.list_states())
        env.control("POST", "/faults", content="")
        time.sleep(1.1)  # a 503/504's Retry-After (1 s) parks its stream until then
        report = tenant.sync_once()
    assert_complete_and_healthy(env, report)
