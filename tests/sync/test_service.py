"""The sync service's pace: a tenant whose cycle found nothing waits the idle interval, and
any change brings the poll interval back."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from xdrsync.hub import Hub
from xdrsync.hub.records import NewEdit
from xdrsync.sync import engine
from xdrsync.sync.engine import CycleReport, SyncService, TenantSource
from xdrsync.sync.inbound import StreamReport

POLL, IDLE = 0.02, 1.0


def _report(changed: bool, failed: bool = False) -> CycleReport:
    stream = StreamReport(tenant_id="t", stream="incidents", updated=1 if changed else 0)
    report = CycleReport(tenant="contoso", started=datetime.now(UTC), streams=[stream])
    if failed:
        report.errors["alerts"] = "TransientError: 503"
    return report


@pytest.mark.parametrize(
    ("script", "long_gaps"),
    [
        # changed, quiet, quiet, changed: only the waits after quiet cycles are long.
        ([(True, False), (False, False), (False, False), (True, False)], [False, True, True]),
        # A failed cycle is not quiet: the next try comes at the poll interval.
        ([(False, True), (False, False), (True, False)], [False, True]),
    ],
)
def test_quiet_cycles_wait_the_idle_interval(
    monkeypatch: pytest.MonkeyPatch, script: list[tuple[bool, bool]], long_gaps: list[bool]
) -> None:
    started: list[float] = []
    done = threading.Event()

    def cycle(*_: Any, **__: Any) -> CycleReport:
        started.append(time.monotonic())
        if len(started) > len(script):
            done.set()
            return _report(False)
        return _report(*script[len(started) - 1])

    monkeypatch.setattr(engine, "sync_tenant", cycle)
    tenant = TenantSource(name="contoso", tenant_id="t", source=None)  # type: ignore[arg-type]
    service = SyncService(
        None,  # type: ignore[arg-type]  # the scripted cycle never touches the hub
        [tenant],
        None,  # type: ignore[arg-type]
        poll_interval=POLL,
        idle_poll_interval=IDLE,
    ).start()
    try:
        assert done.wait(30)
    finally:
        service.stop()
    gaps = [b - a for a, b in itertools.pairwise(started)][: len(long_gaps)]
    assert [gap >= IDLE * 0.9 for gap in gaps] == long_gaps


def test_the_idle_interval_is_never_shorter_than_the_poll() -> None:
    service = SyncService(
        None,  # type: ignore[arg-type]
        [],
        None,  # type: ignore[arg-type]
        poll_interval=5,
        idle_poll_interval=2,
    )
    assert service.idle_poll_interval == 5


def test_alerts_are_read_at_most_every_alerts_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[float, tuple[str, ...]]] = []
    done = threading.Event()

    def cycle(*_: Any, streams: tuple[str, ...], **__: Any) -> CycleReport:
        reads.append((time.monotonic(), tuple(streams)))
        if len(reads) >= 40:
            done.set()
        return _report(True)  # busy: every cycle finds changes

    monkeypatch.setattr(engine, "sync_tenant", cycle)
    tenant = TenantSource(name="contoso", tenant_id="t", source=None)  # type: ignore[arg-type]
    service = SyncService(
        None,  # type: ignore[arg-type]
        [tenant],
        None,  # type: ignore[arg-type]
        poll_interval=0.02,
        alerts_interval=0.3,
    ).start()
    try:
        assert done.wait(30)
    finally:
        service.stop()
    assert all("incidents" in streams for _, streams in reads)  # every cycle reads incidents
    alerts = [at for at, streams in reads if "alerts" in streams]
    assert reads[0][1] == ("incidents", "alerts")  # the first cycle reads both
    assert 2 <= len(alerts) < len(reads) / 4
    assert all(b - a >= 0.3 - 0.02 for a, b in itertools.pairwise(alerts))


def test_the_pusher_reads_due_edits_only_when_an_edit_is_pending(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    due_edits = hub.due_edits

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return due_edits(*args, **kwargs)

    monkeypatch.setattr(hub, "due_edits", counted)
    monkeypatch.setattr(engine, "sync_tenant", lambda *_, **__: _report(False))
    pushes: list[str] = []
    pushed = threading.Event()

    def push(tenant_id: str) -> None:
        pushes.append(tenant_id)
        pushed.set()

    tenant = TenantSource(name="contoso", tenant_id="t", source=None)  # type: ignore[arg-type]
    service = SyncService(
        hub,
        [tenant],
        None,  # type: ignore[arg-type]
        poll_interval=60,
        push=push,
        push_interval=0.01,
    ).start()
    try:
        assert pushed.wait(5)  # once as the service starts (the tenant's sign-in, ``Pusher``)
        pushed.clear()
        time.sleep(0.3)  # about 30 looks at an empty outbox
        assert reads == [] and pushes == ["t"]
        hub.enqueue_edits([NewEdit("t", "incident", "1", "status", "active", "new", "ana", "cli")])
        assert pushed.wait(5)  # the tenant's pusher, woken within a look or two
        assert reads
    finally:
        service.stop()


def test_edits_of_a_tenant_no_longer_synced_wait_for_it_without_a_query_at_each_look(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edits of a tenant removed from the config stay pending: every look of the dispatcher
    (five a second) had found them and read the due edits, 40% of an idle service's CPU."""
    hub.enqueue_edits([NewEdit("gone", "incident", "1", "status", "active", "new", "ana", "cli")])
    monkeypatch.setattr(engine, "sync_tenant", lambda *_, **__: _report(False))
    reads: list[int] = []
    looks: list[int] = []
    looked = threading.Event()
    due_edits, edits_pending = hub.due_edits, hub.edits_pending

    def counted_reads(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return due_edits(*args, **kwargs)

    def counted_looks(*args: Any, **kwargs: Any) -> Any:
        looks.append(1)
        if len(looks) >= 30:
            looked.set()
        return edits_pending(*args, **kwargs)

    monkeypatch.setattr(hub, "due_edits", counted_reads)
    monkeypatch.setattr(hub, "edits_pending", counted_looks)
    pushes: list[str] = []

    def service(*tenant_ids: str) -> SyncService:
        tenants = [TenantSource(name=t, tenant_id=t, source=None) for t in tenant_ids]  # type: ignore[arg-type]
        return SyncService(
            hub,
            tenants,
            None,  # type: ignore[arg-type]
            poll_interval=60,
            push=pushes.append,
            push_interval=0.01,
        )

    running = service("t").start()
    try:
        assert looked.wait(10)  # 30 looks at an outbox holding only the other tenant's edit
    finally:
        running.stop()
    assert reads == [] and set(pushes) <= {"t"}  # "t" once as the service started, at most
    assert [r.state for r in hub.edits(tenant_id="gone")] == ["pending"]  # kept for it
    # The tenant back in the config: its edit is due, and its pusher is woken for it.
    pushes.clear()
    running = service("t", "gone").start()
    try:
        deadline = time.monotonic() + 10
        while pushes.count("gone") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        running.stop()
    assert pushes.count("gone") >= 3 and reads  # woken again and again: the edit is due


def test_state_show_says_the_edits_of_a_tenant_no_longer_configured_wait_for_it(
    hub: Hub,
) -> None:
    from rich.console import Console

    from xdrsync.views import edits_summary

    hub.enqueue_edits([NewEdit("gone", "incident", "1", "status", "active", "new", "ana", "cli")])
    hub.enqueue_edits([NewEdit("t", "incident", "2", "status", "active", "new", "ana", "cli")])
    console = Console(width=400, record=True)
    for part in edits_summary(hub, {"t": "contoso"}):
        console.print(part)
    text = console.export_text()
    assert "gone (not in config): 1 pending edit(s) wait for their tenant" in text, text
    assert "contoso:" not in text  # a synced tenant's edit goes as usual


def _logged_by_a_job(failures: list[Exception]) -> list[dict[str, Any]]:
    """What a background job logs that raises ``failures`` one run each, then succeeds."""
    import structlog

    left = iter(failures)
    done = threading.Event()

    def publish() -> None:
        failure = next(left, None)
        if failure is None:
            done.set()
            return
        raise failure

    with structlog.testing.capture_logs() as events:
        job = engine.Background(publish, interval=0.001, name="pusher").start()
        assert done.wait(10)
        time.sleep(0.05)
        job.stop(5)
    return events


def test_a_background_job_failing_the_same_way_logs_its_trace_once() -> None:
    """The hub down made the pusher's look fail five times a second, each with its trace: the
    same failure is logged once with it, a new one at once, and the recovery is said."""
    events = _logged_by_a_job([RuntimeError("hub down")] * 20 + [RuntimeError("other")])
    said = [(e["log_level"], e["event"]) for e in events]
    assert said == [
        ("error", "pusher failed"),  # hub down, once though it failed 20 times
        ("error", "pusher failed"),  # another failure, at once
        ("info", "pusher works again"),
    ], said


def test_a_background_job_still_failing_says_so_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "REPEAT_LOG_SECONDS", 0.0)  # every repeat is "now and then"
    events = _logged_by_a_job([RuntimeError("hub down")] * 3)
    said = [(e["event"], e.get("times")) for e in events]
    assert said == [
        ("pusher failed", None),
        ("pusher still failing", 1),
        ("pusher still failing", 1),
        ("pusher works again", None),
    ], said
