"""`each_tenant`: how `sync --once` and `backfill` read several tenants at once. Every wait
here is bounded; a test that needed the tenants one after another would time out."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from xdrsync.graph import pacing
from xdrsync.sync.engine import Interrupted, TenantSource, each_tenant, still_at_work


@pytest.fixture(autouse=True)
def _no_thread_left_at_work() -> Iterator[None]:
    """A test that abandons a tenant's thread releases it at its end; the thread still has
    to wake and leave `still_at_work`, which a loaded machine can delay past the start of the
    next test (CI once saw a released `t1` there)."""
    yield
    deadline = time.monotonic() + 30
    while still_at_work() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert still_at_work() == []


def _tenants(n: int) -> list[TenantSource]:
    return [TenantSource(f"t{i}", f"id-{i}", source=Any) for i in range(n)]


def _until_stopped(tenant: TenantSource, stopped: list[str] | None = None) -> None:
    """A tenant between Graph calls until the stop ends its wait; its name then goes to
    ``stopped``."""
    try:
        while True:
            pacing.wait(0.05)  # between Graph calls: ends at once on a stop
    except pacing.Stopped:
        if stopped is not None:
            stopped.append(tenant.name)
        raise


def test_the_tenants_run_at_once_at_most_threads_at_a_time_results_in_order() -> None:
    running, most = 0, 0
    lock = threading.Lock()
    # The first three meet before any ends: read one after another, the first would wait
    # for the others for ever (bounded here by the barrier's timeout).
    met = threading.Barrier(3, timeout=10)

    def work(tenant: TenantSource) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if tenant.name in ("t0", "t1", "t2"):
            met.wait()
        time.sleep(0.01)
        with lock:
            running -= 1
        return tenant.tenant_id

    assert each_tenant(_tenants(7), work, threads=3) == [f"id-{i}" for i in range(7)]
    assert most == 3


def test_a_bug_in_one_tenant_stops_the_others_and_is_raised() -> None:
    stopped: list[str] = []

    def work(tenant: TenantSource) -> None:
        if tenant.name == "t1":
            time.sleep(0.1)
            raise RuntimeError("a bug")
        _until_stopped(tenant, stopped)

    with pytest.raises(RuntimeError, match="a bug"):
        each_tenant(_tenants(3), work, threads=3)
    assert sorted(stopped) == ["t0", "t2"]


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own Ctrl-C handler (a test runner's worker may ignore SIGINT), the one
    before put back after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def ctrl_c(python_sigint: None) -> Iterator[None]:
    """``python_sigint``, and a SIGINT to this process a moment after the test starts
    waiting."""
    timer = threading.Timer(0.3, signal.raise_signal, (signal.SIGINT,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.mark.usefixtures("ctrl_c")
@pytest.mark.parametrize("tenants", [1, 4])
def test_ctrl_c_stops_every_tenant_before_its_next_call(tenants: int) -> None:
    stopped: list[str] = []
    told: list[str] = []
    began = time.monotonic()
    with pytest.raises(Interrupted) as interrupted:
        each_tenant(
            _tenants(tenants),
            lambda tenant: _until_stopped(tenant, stopped),
            threads=4,
            interrupt_seconds=10,
            on_interrupt=lambda: told.append("stopping"),
        )
    assert time.monotonic() - began < 5
    assert interrupted.value.abandoned == []
    assert sorted(stopped) == [f"t{i}" for i in range(tenants)]
    assert told == ["stopping"]


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_names_the_tenants_still_inside_a_request_at_the_deadline() -> None:
    release = threading.Event()

    def work(tenant: TenantSource) -> None:
        if tenant.name == "t1":
            release.wait(30)  # a request on the wire: no stop reaches it
            return
        _until_stopped(tenant)

    try:
        with pytest.raises(Interrupted) as interrupted:
            each_tenant(_tenants(3), work, threads=3, interrupt_seconds=0.5)
    finally:
        release.set()
    assert interrupted.value.abandoned == ["t1"]


@pytest.mark.usefixtures("ctrl_c")
def test_a_second_ctrl_c_leaves_at_once_naming_the_tenants_still_at_work() -> None:
    release = threading.Event()

    def work(tenant: TenantSource) -> None:
        if tenant.name == "t1":
            release.wait(30)
            return
        _until_stopped(tenant)

    def again() -> None:  # the user presses Ctrl-C again while the tenants stop
        threading.Timer(0.2, signal.raise_signal, (signal.SIGINT,)).start()

    began = time.monotonic()
    try:
        with pytest.raises(Interrupted) as interrupted:
            each_tenant(_tenants(3), work, threads=3, interrupt_seconds=20, on_interrupt=again)
    finally:
        release.set()
    assert time.monotonic() - began < 10  # not the 20 s the tenants were given
    assert interrupted.value.abandoned == ["t1"]


@pytest.mark.usefixtures("python_sigint")
def test_a_ctrl_c_whose_handler_runs_where_its_exception_is_swallowed_still_stops() -> None:
    """Python runs the Ctrl-C handler wherever the main thread is, inside a garbage
    collector's callback too, which swallows what it raises (CI once saw a test wait its
    whole timeout so). Here the handler is run where its exception would be swallowed."""

    def work(tenant: TenantSource) -> None:
        if tenant.name == "t0":
            time.sleep(0.3)
            handler = signal.getsignal(signal.SIGINT)
            assert callable(handler)
            # as a callback the collector runs: what the handler raises goes nowhere
            with contextlib.suppress(BaseException):
                handler(signal.SIGINT, None)
        deadline = time.monotonic() + 5  # bounded: a Ctrl-C lost, the tenants end by then
        while time.monotonic() < deadline:
            pacing.wait(0.05)

    began = time.monotonic()
    with pytest.raises(Interrupted) as interrupted:
        each_tenant(_tenants(2), work, threads=2, interrupt_seconds=10)
    assert time.monotonic() - began < 4
    assert interrupted.value.abandoned == []
    # Python's own handler is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("python_sigint")
def test_a_ctrl_c_as_the_last_tenant_ends_still_interrupts() -> None:
    """Pressed while the last tenant finishes, Ctrl-C is not lost with the wait it ended:
    the command stops there (its delivery after the read can be long)."""

    def work(tenant: TenantSource) -> str:
        time.sleep(0.05)
        signal.raise_signal(signal.SIGINT)
        time.sleep(0.05)  # ends before the caller's next look at the presses
        return tenant.name

    with pytest.raises(Interrupted):
        each_tenant(_tenants(1), work, interrupt_seconds=5)


def test_a_thread_that_cannot_start_stops_the_ones_that_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopped: list[str] = []
    real_start = threading.Thread.start
    starts = 0

    def start(thread: threading.Thread) -> None:
        nonlocal starts
        # Only the tenants' threads are counted: another test's server in this process
        # may start a thread of its own meanwhile, which had taken the count's second place.
        if thread.name.startswith("tenant-"):
            starts += 1
            if starts == 2:
                raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="can't start"):
        each_tenant(
            _tenants(3), lambda tenant: _until_stopped(tenant, stopped), interrupt_seconds=10
        )
    assert stopped == ["t0"]
    assert still_at_work() == []
