"""Per-tenant pacing: the budget holds with a fake clock, threads share it, tenants do not."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from graph_fakes import FakeClock, Harness, graph_json
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.graph.pacing import Pacer, default_burst

Build = Callable[..., Harness]


def run(pacer: Pacer, clock: FakeClock, calls: int) -> list[float]:
    """Times at which ``calls`` back-to-back calls were let through."""
    times = []
    for _ in range(calls):
        pacer.acquire()
        times.append(clock.now)
    return times


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.integers(min_value=1, max_value=600),
    burst=st.integers(min_value=1, max_value=10),
    calls=st.integers(min_value=1, max_value=120),
)
def test_n_calls_take_at_least_the_budget_bound(per_minute: int, burst: int, calls: int) -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute, burst=burst, clock=clock, sleep=clock.sleep)
    start = clock.now
    times = run(pacer, clock, calls)
    interval = 60.0 / per_minute
    elapsed = times[-1] - start
    lower_bound = max(0, calls - burst) * interval
    assert elapsed >= lower_bound - 1e-6
    assert elapsed <= lower_bound + 1e-6  # and no slower than it has to be


@settings(max_examples=40, deadline=None)
@given(per_minute=st.integers(min_value=12, max_value=600), calls=st.integers(50, 300))
def test_no_sixty_second_window_exceeds_budget_plus_burst(per_minute: int, calls: int) -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute, clock=clock, sleep=clock.sleep)
    times = run(pacer, clock, calls)
    worst = max(sum(1 for t in times if first <= t < first + 60.0) for first in times)
    assert worst <= per_minute + pacer.burst


def test_default_budget_stays_below_graphs_150_per_minute() -> None:
    assert 120 + default_burst(120) < 150


def test_a_pause_holds_calls_then_resumes_at_the_steady_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(60, burst=5, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    pacer.pause(30.0)
    start = clock.now
    times = [t - start for t in run(pacer, clock, 3)]
    assert times == pytest.approx([30.0, 31.0, 32.0])  # no burst right after a 429


def test_two_tenants_pacers_are_independent() -> None:
    clock = FakeClock()
    slow = Pacer(1, clock=clock, sleep=clock.sleep)
    fast = Pacer(600, burst=1, clock=clock, sleep=clock.sleep)
    slow.acquire()
    slow.pause(600)
    assert fast.acquire() == 0.0  # the throttled tenant holds up nobody else
    assert slow.paused_for() == 600.0


def test_concurrent_callers_each_get_their_own_slot() -> None:
    # Frozen clock, sleeps only recorded: each thread's wait shows which slot it reserved.
    clock = FakeClock()
    waits: list[float] = []
    lock = threading.Lock()
    pacer = Pacer(120, burst=4, clock=clock, sleep=lambda seconds: None)

    def call() -> None:
        wait = pacer.acquire()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=call) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = [0.0] * 4 + [0.5 * k for k in range(1, 37)]
    assert sorted(waits) == pytest.approx(expected)


def test_graph_calls_are_paced_to_the_tenants_budget(harness_factory: Build) -> None:
    h = harness_factory(lambda request: graph_json({"value": []}), rate_limit=60)
    start = h.clock.now
    for _ in range(25):
        h.client.get("/security/incidents")
    burst = h.client.pacer.burst
    assert h.clock.now - start >= (25 - burst) * 1.0
    assert h.client.stats()["pacing_wait_seconds"] == pytest.approx(h.clock.now - start)
