"""The fan-out runner: cursor, dead letters, backoff, health, and independence of destinations."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from workload import TENANT_A, TENANT_B, commit_workload

from xdrsync.config import parse_config
from xdrsync.destinations import runner as runner_module
from xdrsync.destinations.base import Rejection
from xdrsync.destinations.runner import (
    CONFIG_RETRY_SECONDS,
    GATHER_SECONDS,
    DestinationRunner,
    Fanout,
    Offload,
)
from xdrsync.destinations.status import destination_statuses
from xdrsync.destinations.worker import IDLE_EXIT_SECONDS, backoff_report
from xdrsync.errors import ConfigError, RetriableError, ThrottledError
from xdrsync.hub import ChangeRow, Hub


class Recorder:
    """A destination that keeps what it was given; it can reject, fail or block."""

    def __init__(self, name: str = "rec", tenants: set[str] | None = None) -> None:
        self.name = name
        self.tenants = tenants
        self.got: list[int] = []
        self.reject: set[int] = set()
        self.fail: Exception | None = None
        self.gate: threading.Event | None = None

    def position(self) -> int | None:
        return None

    def accepts(self, change: ChangeRow) -> bool:
        return self.tenants is None or change.tenant_id in self.tenants

    def deliver(self, changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        if self.gate is not None:
            self.gate.wait(30)
        if self.fail is not None:
            raise self.fail
        self.got.extend(c.seq for c in changes)
        return [
            Rejection(c.seq, "too large for the destination")
            for c in changes
            if c.seq in self.reject
        ]

    def replay_from(self, seq: int) -> None:
        return None

    def check(self) -> list[str]:
        return []

    def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rejected_changes_become_dead_letters_and_the_cursor_moves_past_them(hub: Hub) -> None:
    commit_workload(hub, incidents=2)
    dest = Recorder()
    dest.reject = {3, 5}
    runner = DestinationRunner(hub, dest, batch_size=4)
    assert runner.publish() == hub.max_seq()
    assert hub.get_cursor("rec") == hub.max_seq()
    letters = hub.list_dead_letters("rec")
    assert sorted(d.seq for d in letters) == [3, 5]
    assert {d.reason for d in letters} == {"too large for the destination"}
    assert all(d.tenant_id in (TENANT_A, TENANT_B) and d.entity_id for d in letters)
    assert hub.dead_letter_counts() == {"rec": 2}


def test_a_publish_asked_for_one_batch_delivers_one_and_the_next_goes_on_from_it(
    hub: Hub,
) -> None:
    commit_workload(hub, incidents=2)
    dest = Recorder()
    runner = DestinationRunner(hub, dest, batch_size=4)
    assert runner.publish(batches=1) == 4
    assert dest.got == [1, 2, 3, 4]
    assert hub.get_cursor("rec") == 4
    assert runner.publish(batches=2) == 8
    assert runner.publish() == hub.max_seq() - 12
    assert dest.got == list(range(1, hub.max_seq() + 1))


def test_a_flow_goes_in_whole_batches_and_a_remainder_waits_at_most_the_gather_time(
    hub: Hub,
) -> None:
    commit_workload(hub, incidents=2)
    total = hub.max_seq()
    batch = total // 2 + 1  # one whole batch, and a remainder
    clock = Clock()
    dest = Recorder()
    runner = DestinationRunner(hub, dest, batch_size=batch, monotonic=clock)
    assert runner.publish_whole() == batch
    assert hub.get_cursor("rec") == batch
    clock.now += GATHER_SECONDS / 2
    assert runner.publish_whole() == 0  # the remainder waits for more...
    clock.now += GATHER_SECONDS / 2
    assert runner.publish_whole() == total - batch  # ...but not longer than the gather time
    assert dest.got == list(range(1, total + 1))
    assert runner.publish_whole() == 0  # nothing pending: nothing to wait for


def test_a_quiet_runner_delivers_a_few_changes_at_once(hub: Hub) -> None:
    commit_workload(hub, incidents=2)
    clock = Clock()
    dest = Recorder()
    runner = DestinationRunner(hub, dest, batch_size=10_000, monotonic=clock)
    assert runner.publish_whole() == hub.max_seq()  # nothing delivered for long: no wait


def test_only_the_destinations_tenants_are_delivered_but_the_cursor_covers_all(hub: Hub) -> None:
    commit_workload(hub, incidents=2)
    dest = Recorder(tenants={TENANT_B})
    DestinationRunner(hub, dest).publish()
    routed = {c.seq for c in hub.changes_after(0, 1000) if c.tenant_id == TENANT_B}
    assert set(dest.got) == routed and routed
    assert hub.get_cursor("rec") == hub.max_seq()


def test_a_throttled_destination_waits_as_long_as_it_was_asked(hub: Hub) -> None:
    commit_workload(hub, incidents=1)
    clock = Clock()
    dest = Recorder()
    dest.fail = ThrottledError("429", retry_after=30)
    runner = DestinationRunner(hub, dest, monotonic=clock)
    with pytest.raises(ThrottledError):
        runner.publish()
    dest.fail = None
    clock.now += 29
    assert runner.publish() == 0 and dest.got == []  # not asked again before the time given
    clock.now += 2
    assert runner.publish() == hub.max_seq()


def test_failures_back_off_doubling_and_an_operator_problem_waits_longer(hub: Hub) -> None:
    commit_workload(hub, incidents=1)
    clock = Clock()
    dest = Recorder()
    runner = DestinationRunner(hub, dest, retry_seconds=2, max_retry_seconds=10, monotonic=clock)
    waits = []
    dest.fail = RetriableError("503")
    for _ in range(5):
        start = clock.now
        with pytest.raises(RetriableError):
            runner.publish(force=True)
        waits.append(runner._retry_at - start)
    assert waits == [2, 4, 8, 10, 10]
    dest.fail = ConfigError("the app lacks Microsoft Sentinel Responder")
    runner = DestinationRunner(hub, dest, monotonic=clock)
    with pytest.raises(ConfigError):
        runner.publish()
    assert runner._retry_at - clock.now == CONFIG_RETRY_SECONDS


def test_the_error_is_kept_until_a_delivery_succeeds_and_status_shows_it(
    hub: Hub, tmp_path: Path
) -> None:
    commit_workload(hub, incidents=2)
    dest = Recorder(name="sentinel-eu")
    dest.fail = RetriableError("sentinel-eu: connection refused")
    runner = DestinationRunner(hub, dest, retry_seconds=0)
    for _ in range(2):
        with pytest.raises(RetriableError):
            runner.publish()
    config = parse_config(_config_doc(tmp_path))
    (status,) = [s for s in destination_statuses(hub, config) if s.name == "sentinel-eu"]
    assert status.kind == "sentinel"
    assert status.behind == hub.max_seq() and status.position == 0
    assert status.oldest_pending_at is not None
    assert status.error is not None and "connection refused" in status.error
    first_failure = status.failing_since
    dest.fail = None
    runner.publish()
    (status,) = [s for s in destination_statuses(hub, config) if s.name == "sentinel-eu"]
    assert first_failure is not None
    assert (status.error, status.failing_since, status.behind) == (None, None, 0)
    assert status.oldest_pending_at is None and status.delivered_at is not None


def test_a_blocked_destination_does_not_hold_back_another(hub: Hub) -> None:
    commit_workload(hub, incidents=2)
    slow, fast = Recorder("slow"), Recorder("fast")
    slow.gate = threading.Event()
    fanout = Fanout(
        [DestinationRunner(hub, slow), DestinationRunner(hub, fast)], interval=0.05
    ).start()
    try:
        deadline = time.monotonic() + 10
        while len(fast.got) < hub.max_seq() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(fast.got) == hub.max_seq()
        assert slow.got == []  # still stuck in its delivery
    finally:
        slow.gate.set()
        fanout.stop()
    fanout.publish()
    assert len(slow.got) == hub.max_seq()


def test_replay_moves_the_cursor_back_and_delivers_again(hub: Hub) -> None:
    commit_workload(hub, incidents=2)
    dest = Recorder()
    runner = DestinationRunner(hub, dest)
    runner.publish()
    runner.replay_from(5)
    assert hub.get_cursor("rec") == 4
    dest.got.clear()
    runner.publish()
    assert dest.got == list(range(5, hub.max_seq() + 1))


def _config_doc(tmp_path: Path) -> dict[str, object]:
    app = {"client_id": "11111111-1111-1111-1111-111111111111", "client_secret": "x"}
    return {
        "workspace": {"path": str(tmp_path / "ws")},
        "tenants": [{"name": "contoso", "tenant_id": TENANT_A, **app}],
        "destinations": [
            {
                "name": "sentinel-eu",
                "type": "sentinel",
                "subscription_id": "22222222-2222-2222-2222-222222222222",
                "resource_group": "soc",
                "workspace": "soc-eu",
                "tenant_id": "33333333-3333-3333-3333-333333333333",
                **app,
            }
        ],
    }


def test_the_backoff_starts_anew_once_a_batch_goes_through(hub: Hub) -> None:
    commit_workload(hub, incidents=4)
    clock = Clock()

    class EveryOther(Recorder):
        calls = 0

        def deliver(self, changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
            self.calls += 1
            if self.calls % 2:
                raise RetriableError("503")
            return super().deliver(changes)

    runner = DestinationRunner(hub, EveryOther(), batch_size=5, retry_seconds=2, monotonic=clock)
    waits = []
    for _ in range(4):
        start = clock.now
        with pytest.raises(RetriableError):
            runner.publish(force=True)
        waits.append(runner._retry_at - start)
    assert waits == [2, 2, 2, 2]  # each failure follows a delivered batch: no doubling


class _Worker:
    """A stand-in for the log tables' worker process: alive from its start until drained."""

    def __init__(self, started: threading.Event) -> None:
        self.started = started
        self.alive = False

    def start(self) -> _Worker:
        self.alive = True
        self.started.set()
        return self

    def running(self) -> bool:
        return self.alive

    def wake(self) -> None:
        return None

    def drain(self) -> None:
        self.alive = False


def test_the_queue_index_rests_from_its_next_batch_once_a_worker_keeps_it(hub: Hub) -> None:
    commit_workload(hub, incidents=20)  # 180 changes: 18 batches of 10
    tables, queue = Recorder("tables"), Recorder("queue")
    queue.gate = threading.Event()  # its first batch waits until the worker lives
    entered, started = threading.Event(), threading.Event()
    original = queue.deliver

    def deliver(changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        entered.set()
        return original(changes)

    queue.deliver = deliver  # type: ignore[method-assign]

    def spawn() -> _Worker:
        assert entered.wait(10)  # the worker starts while the index delivers its first batch
        return _Worker(started)

    offload = Offload("tables", spawn, flow=1, companion="queue")  # type: ignore[arg-type]
    fanout = Fanout(
        [DestinationRunner(hub, tables), DestinationRunner(hub, queue, batch_size=10)],
        interval=0.05,
        offload=offload,
    ).start()
    try:
        assert started.wait(10)
        deadline = time.monotonic() + 10
        while fanout._worker is None and time.monotonic() < deadline:
            time.sleep(0.005)  # the fan-out takes the worker in hand
        queue.gate.set()
        time.sleep(0.5)  # several passes of the index's thread
        assert len(queue.got) == 10  # the batch under way, and no other: the worker keeps it
        assert tables.got == []  # the tables went to the worker whole
    finally:
        fanout.stop()


# -- when a worker process is started: a steady trickle never starts one --------------------


class _TrickleHub:
    def __init__(self) -> None:
        self.top = 0

    def max_seq(self) -> int:
        return self.top


class _CaughtUpRunner:
    """The log tables' runner, caught up at every pass (a steady trickle)."""

    name = "tables"

    failures = 0  # it never fails

    def __init__(self, hub: _TrickleHub) -> None:
        self.hub = hub
        self.position_ = 0

    def position(self) -> int:
        return self.position_

    def publish(self, **_: Any) -> int:
        delivered = self.hub.top - self.position_
        self.position_ = self.hub.top
        return delivered


class _IdleWorker:
    def start(self) -> _IdleWorker:
        return self

    def running(self) -> bool:
        return True

    def wake(self) -> None:
        return None


def test_a_steady_trickle_never_spawns_a_worker_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """3 tenants at 120 changes/min each made about 17 changes/s in the hub (a page of an
    incident with its alerts commits 30-50 changes at once), far below FLOW (1,000 in 5 s,
    i.e. 200/s). The rate in `Fanout._offloaded` is measured between two passes of the
    tables' thread, which a commit's wake may bring 20 ms apart: one commit of 40 changes
    then reads as 2,000 changes/s, and a worker process (a fresh interpreter, ~120 MiB,
    1-3 CPU-s to start) is spawned every 15-40 s of a steady trickle."""
    clock = [1000.0]
    monkeypatch.setattr(runner_module.time, "monotonic", lambda: clock[0])
    spawned: list[_IdleWorker] = []

    def spawn() -> _IdleWorker:
        worker = _IdleWorker()
        spawned.append(worker)
        return worker

    hub = _TrickleHub()
    runner = _CaughtUpRunner(hub)
    fanout = Fanout([runner], interval=1.0, offload=Offload("tables", spawn))  # type: ignore[list-item]
    # 60 s of 17 changes/s, committed as a page of 40 changes every ~2.35 s; the thread
    # passes once a second and once more 20 ms after each commit's wake.
    for second in range(60):
        clock[0] += 1.0
        fanout._offloaded(runner)  # type: ignore[arg-type]
        if second % 2 == 0:
            hub.top += 40
            clock[0] += 0.02
            fanout._offloaded(runner)  # type: ignore[arg-type]
        if spawned:
            break
    assert spawned == [], "a worker process was spawned for a trickle of ~20 changes/s"


class _FailingWorker:
    """The log tables' worker on a full disk: its batches fail, so after ``IDLE_EXIT_SECONDS``
    without a delivery it leaves, having delivered nothing, backing off."""

    def __init__(self, clock: list[float], destination: Recorder) -> None:
        self.clock, self.destination = clock, destination
        self.report: dict[str, Any] = {}
        self.until = 0.0

    def start(self) -> _FailingWorker:
        self.until = self.clock[0] + IDLE_EXIT_SECONDS
        return self

    def running(self) -> bool:
        return self.clock[0] < self.until

    def wake(self) -> None:
        return None

    def finish(self, timeout: float = 30.0) -> int:
        failing = self.destination.fail is not None
        self.report = {"delivered": 0, **({"failures": 3, "retry_in": 4.0} if failing else {})}
        return 0


def test_a_destination_that_keeps_failing_is_not_given_worker_after_worker(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lasting failure of the log tables (a full disk) with a backlog: a worker process
    (a few CPU-seconds to start) was started, failed, left, and another came every 70 s.
    The thread tries the destination again at the end of each backoff, and a worker goes
    once a delivery has succeeded."""
    commit_workload(hub, incidents=20)
    clock = [1000.0]
    monkeypatch.setattr(runner_module.time, "monotonic", lambda: clock[0])
    tables = Recorder("tables")
    tables.fail = RetriableError("IO Error: No space left on device")
    tried: list[float] = []
    deliver = tables.deliver

    def counted(changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        tried.append(clock[0])
        clock[0] += 0.3  # a batch takes time: a pass on the thread ends after a few
        return deliver(changes)

    tables.deliver = counted  # type: ignore[method-assign]
    spawned: list[_FailingWorker] = []

    def spawn() -> _FailingWorker:
        spawned.append(_FailingWorker(clock, tables))
        return spawned[-1]

    runner = DestinationRunner(hub, tables, batch_size=10, monotonic=lambda: clock[0])
    fanout = Fanout([runner], offload=Offload("tables", spawn, flow=10))  # type: ignore[arg-type]
    passes = fanout._quiet(runner)
    for _ in range(3600):  # an hour, a pass each second
        clock[0] += 1.0
        passes()
    assert len(spawned) == 1, f"{len(spawned)} workers started for a failing destination"
    assert 5 <= len(tried) <= 20  # tried by the thread, less and less often
    tables.fail = None  # the disk has room again
    for _ in range(310):  # within the longest backoff
        clock[0] += 1.0
        passes()
        if len(spawned) == 2:
            break
    assert len(spawned) == 2 and tables.got  # a pass on the thread, then a worker


def test_a_worker_leaving_failing_hands_its_backoff_to_the_thread(hub: Hub) -> None:
    commit_workload(hub, incidents=2)
    clock = Clock()
    tables = Recorder("tables")
    runner = DestinationRunner(hub, tables, monotonic=clock)
    failures, retry_in = backoff_report({"delivered": 0, "failures": 3, "retry_in": 4.0})
    runner.took_over(0, failures, retry_in)
    assert (runner.failures, runner.retry_in()) == (3, 4.0)
    assert runner.publish() == 0 and tables.got == []  # its next try is not due yet
    clock.now += 4
    assert runner.publish() == hub.max_seq() and runner.failures == 0
    assert backoff_report({"delivered": 5}) == (0, 0.0)  # it left healthy


class _BusyWorker:
    """The log tables' worker still inside a long batch when the drain's deadline comes."""

    def __init__(self) -> None:
        self.report: dict[str, Any] = {}
        self.waited: list[float | None] = []
        self.finished: list[float] = []

    def running(self) -> bool:
        return True

    def drain(self) -> None:
        return None

    def wait(self, timeout: float | None) -> int | None:
        self.waited.append(timeout)
        return None  # still at work

    def finish(self, timeout: float = 30.0) -> int:
        self.finished.append(timeout)
        return 0


def test_a_drain_waits_for_a_busy_worker_no_longer_than_its_deadline(hub: Hub) -> None:
    """At shutdown the drain has 10 s for what the last cycles committed; the worker still in
    a batch at that deadline is then stopped at once (its batch is one DuckDB transaction:
    it is written again after the restart), not given 30 s more to end it, which carried the
    service's stop past its documented bound."""
    commit_workload(hub, incidents=2)
    worker = _BusyWorker()
    offload = Offload("tables", lambda: worker)  # type: ignore[arg-type, return-value]
    fanout = Fanout([DestinationRunner(hub, Recorder("tables"))], offload=offload)
    fanout._worker = worker  # type: ignore[assignment]
    fanout.drain(0.5)
    assert len(worker.waited) == 1 and worker.waited[0] is not None
    assert worker.waited[0] <= 0.5
    assert len(worker.finished) == 1 and worker.finished[0] <= 0.5


def test_a_destination_throttled_with_no_wait_backs_off_all_the_same(hub: Hub) -> None:
    """A server that throttles with `Retry-After: 0`, or with an HTTP-date already past (its
    clock behind ours), asks for no wait at all: the runner must not try again at every wake
    (after every sync cycle and every second), each time with a warning in the log and a
    write to the hub, for as long as the server throttles. It waits at least as a failure
    does, doubling, and at least as long as a server asks."""
    commit_workload(hub, incidents=1)
    clock = Clock()
    dest = Recorder()
    dest.fail = ThrottledError("429", retry_after=0.0)
    runner = DestinationRunner(hub, dest, retry_seconds=2, monotonic=clock)
    waits = []
    for _ in range(4):
        start = clock.now
        with pytest.raises(ThrottledError):
            runner.publish(force=True)
        waits.append(runner._retry_at - start)
    assert waits == [2, 4, 8, 16]
    dest.fail = ThrottledError("429", retry_after=300)
    with pytest.raises(ThrottledError):
        runner.publish(force=True)
    assert runner._retry_at - clock.now == 300


class _Ahead(Recorder):
    """A destination keeping its own position, which holds changes up to ``held``."""

    def __init__(self, held: int) -> None:
        super().__init__("tables")
        self.held = held
        self.dropped_from: int | None = None

    def position(self) -> int | None:
        return self.held

    def replay_from(self, seq: int) -> None:
        self.dropped_from = seq
        self.held = min(self.held, seq - 1)


def test_a_destination_holding_changes_past_the_hubs_last_drops_them_and_takes_the_hubs(
    hub: Hub,
) -> None:
    """A hub restored from a copy older than the log tables: the tables held changes the
    hub never made, and the acknowledgement failed ("seq N was never assigned") at every
    delivery until the hub's numbers passed the tables', which then skipped the changes
    between for good."""
    commit_workload(hub, incidents=2)
    head = hub.max_seq()
    dest = _Ahead(held=head + 5)
    runner = DestinationRunner(hub, dest)
    assert runner.held() == head + 5  # read without dropping anything
    assert dest.dropped_from is None
    assert runner.position() == head
    assert dest.dropped_from == head + 1
    assert hub.get_cursor("tables") == head
    commit_workload(hub, incidents=3)  # more changes after the restore
    assert hub.max_seq() > head
    runner.publish()
    assert dest.got == list(range(head + 1, hub.max_seq() + 1))  # none skipped
