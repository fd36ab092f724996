"""The log tables' worker process: a heavy flow goes to it, and the tables still hold every
change exactly once, whether it finishes, is killed, or loses its parent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO

import duckdb
import pytest
from sqlalchemy import select
from workload import TENANT_A, TENANT_B, alert_json, commit_workload, incident_json

from xdrsync.config import QueryConfig
from xdrsync.console.index import QueueIndex
from xdrsync.destinations.runner import DestinationRunner, Fanout, Offload
from xdrsync.destinations.tables import LogTables
from xdrsync.destinations.worker import (
    FLOW,
    IDLE_EXIT_SECONDS,
    Flow,
    TablesWorker,
    WorkerSettings,
    queue_index_report,
)
from xdrsync.hub import Hub, InboundBatch, default_url
from xdrsync.hub.schema import queue_entry
from xdrsync.layout import QUEUE_DESTINATION, TABLES_DESTINATION
from xdrsync.models import Incident
from xdrsync.tables.logstore import LogStore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")

BATCH = 200


class Worker(TablesWorker):
    """A worker that remembers its process and what it reported."""

    def __init__(self, settings: WorkerSettings, log_stream: IO[str] | None = None) -> None:
        super().__init__(settings, log_stream)
        self.pid = 0
        self.reported: list[int] = []

    def start(self) -> Worker:
        super().start()
        assert self._process is not None
        self.pid = self._process.pid
        return self

    def wait(self, timeout: float | None) -> int | None:
        found = super().wait(timeout)
        if found is not None:
            self.reported.append(found)
        return found

    def finish(self, timeout: float = 30.0) -> int:
        found = super().finish(timeout)
        self.reported.append(found)
        return found

    def kill(self) -> None:
        # The factory hands the worker over before it starts: wait for its process. (With
        # pid 0, os.kill would SIGKILL this whole process group, pytest and make included.)
        _until(lambda: self.pid > 0)
        os.kill(self.pid, signal.SIGKILL)


def _settings(tmp_path: Path) -> WorkerSettings:
    return WorkerSettings(
        hub_url=default_url(tmp_path),
        log_path=str(tmp_path / "logs.duckdb"),
        query=QueryConfig().model_dump(mode="json"),
        batch_size=BATCH,
        log_level="warning",
        log_json=False,
    )


def _fanout(
    hub: Hub,
    tmp_path: Path,
    spawned: list[Worker],
    *,
    flow: int = 300,
    settings: WorkerSettings | None = None,
    log: IO[str] | None = None,
) -> tuple[Fanout, DestinationRunner]:
    settings = settings or _settings(tmp_path)

    def spawn() -> Worker:
        worker = Worker(settings, log)
        spawned.append(worker)
        return worker

    store = LogStore(tmp_path / "logs.duckdb")
    runner = DestinationRunner(hub, LogTables(hub, store), batch_size=BATCH)
    offload = Offload(TABLES_DESTINATION, spawn, flow=flow)
    return Fanout([runner], interval=0.1, offload=offload), runner


def _until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _seqs(tmp_path: Path) -> dict[str, tuple[int, int]]:
    """Per table: (rows, distinct change seqs)."""
    with duckdb.connect(str(tmp_path / "logs.duckdb"), read_only=True) as con:
        return {
            table: con.execute(
                f'SELECT count(*), count(DISTINCT _Seq) FROM xdrsync_store."{table}_rows"'
            ).fetchone()
            for table in ("SecurityIncident", "SecurityAlert", "AlertInfo")
        }


def _expected(hub: Hub) -> dict[str, tuple[int, int]]:
    changes = hub.changes_after(0, 100_000)
    incidents = sum(c.entity_type == "incident" for c in changes)
    alerts = len(changes) - incidents
    return {
        "SecurityIncident": (incidents, incidents),
        "SecurityAlert": (alerts, alerts),
        "AlertInfo": (alerts, alerts),
    }


def test_a_heavy_flow_is_written_by_a_worker_process_each_change_once(
    hub: Hub, tmp_path: Path
) -> None:
    commit_workload(hub, incidents=300)  # about 2,700 changes
    spawned: list[Worker] = []
    fanout, runner = _fanout(hub, tmp_path, spawned)
    fanout.start()
    _until(lambda: bool(spawned))
    _until(lambda: hub.get_cursor(TABLES_DESTINATION) > 0)  # the worker is delivering
    # The thread that started it ends here; the worker finishes its backlog all the same.
    fanout.stop()
    fanout.publish()
    assert len(spawned) == 1
    assert spawned[0].returncode == 0
    assert spawned[0].reported[0] > BATCH  # it delivered, not the thread
    assert runner.delivered == hub.max_seq()
    assert hub.get_cursor(TABLES_DESTINATION) == hub.max_seq()
    assert _seqs(tmp_path) == _expected(hub)


def test_a_worker_killed_in_its_backlog_loses_and_repeats_nothing(hub: Hub, tmp_path: Path) -> None:
    commit_workload(hub, incidents=300)  # about 2,700 changes: several batches
    spawned: list[Worker] = []
    fanout, runner = _fanout(hub, tmp_path, spawned)
    fanout.start()
    _until(lambda: bool(spawned))
    _until(lambda: hub.get_cursor(TABLES_DESTINATION) > 0)  # a batch is in
    spawned[0].kill()  # anywhere: before, inside or after its next DuckDB transaction
    fanout.stop()
    fanout.publish()
    assert spawned[0].reported == [0]  # a killed worker reports nothing
    assert _seqs(tmp_path) == _expected(hub)
    assert hub.get_cursor(TABLES_DESTINATION) == hub.max_seq()
    assert runner.position() == hub.max_seq()


def test_a_worker_that_keeps_up_in_small_passes_stays_while_the_flow_is_heavy() -> None:
    flow = Flow(0.0)
    # A backfill at 1,500 changes a second, delivered 300 at a time as the sync commits pages:
    # no pass comes near a batch, and the worker stays for all of its 60 s.
    assert all(flow.still_heavy(300, 0.2 * step) for step in range(1, 301))
    # Then a trickle of 50 a second: it leaves once a whole IDLE_EXIT_SECONDS held fewer than
    # FLOW changes, not before.
    now, passes = 60.0, []
    while now < 60.0 + 3 * IDLE_EXIT_SECONDS:
        now += 1.0
        passes.append((now, flow.still_heavy(50, now)))
    left = next(at for at, heavy in passes if not heavy)
    assert 60.0 + IDLE_EXIT_SECONDS <= left <= 60.0 + 2 * IDLE_EXIT_SECONDS
    assert 50 * IDLE_EXIT_SECONDS < FLOW  # the trickle is below the flow that brought it


def test_a_steady_trickle_stays_on_the_thread(hub: Hub, tmp_path: Path) -> None:
    commit_workload(hub, incidents=5)
    spawned: list[Worker] = []
    fanout, runner = _fanout(hub, tmp_path, spawned, flow=1000)
    fanout.start()
    _until(lambda: runner.delivered == hub.max_seq())
    fanout.stop()
    fanout.publish()
    assert spawned == []
    assert _seqs(tmp_path) == _expected(hub)


def test_a_worker_that_cannot_start_leaves_the_tables_to_the_thread(
    hub: Hub, tmp_path: Path
) -> None:
    commit_workload(hub, incidents=120)
    broken = replace(_settings(tmp_path), hub_url="sqlite:////nonexistent/dir/\0/hub.sqlite3")
    spawned: list[Worker] = []
    with (tmp_path / "xdrsync.log").open("w") as log:
        fanout, runner = _fanout(hub, tmp_path, spawned, settings=broken, log=log)
        fanout.start()
        _until(lambda: runner.delivered == hub.max_seq())  # the thread, once the worker failed
        fanout.stop()
        fanout.publish()
    assert len(spawned) == 1  # not tried again at every pass
    assert spawned[0].returncode not in (None, 0)
    assert _seqs(tmp_path) == _expected(hub)
    assert "Traceback" in (tmp_path / "xdrsync.log").read_text()  # in the parent's log


PARENT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_worker import _fanout
    from workload import commit_workload
    from xdrsync.hub import Hub, default_url

    folder = Path({folder!r})
    hub = Hub.open(default_url(folder))
    commit_workload(hub, incidents=400)
    spawned = []
    fanout, _ = _fanout(hub, folder, spawned, flow=1)
    fanout.start()
    while not (spawned and spawned[0].pid):  # appended by spawn(), its pid set by start()
        time.sleep(0.05)
    # Marked: the fan-out thread logs to the same stream meanwhile, and its line can run
    # into this one (its text and its newline are two writes).
    sys.stdout.write(f"worker pid {{spawned[0].pid}}\\n")
    sys.stdout.flush()
    time.sleep(120)
    """
)


def test_a_worker_dies_with_its_parent(tmp_path: Path) -> None:
    code = PARENT.format(tests=str(Path(__file__).parent), folder=str(tmp_path))
    errors = tmp_path / "parent.stderr"
    with (
        errors.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=stderr, text=True
        ) as parent,
    ):
        try:
            assert parent.stdout is not None
            found = None
            while found is None:  # its log lines come first, and may share the pid's line
                line = parent.stdout.readline()
                if not line:
                    status = parent.wait(10)
                    raise AssertionError(
                        f"the parent ended (status {status}) before it started a worker; "
                        f"its stderr: {errors.read_text()[-2000:]!r}"
                    )
                found = re.search(r"worker pid (\d+)", line)
            worker = int(found[1])
            assert _alive(worker)
            parent.kill()  # SIGKILL: no cleanup of its own runs
            parent.wait(10)
            _until(lambda: not _alive(worker), seconds=10)
        finally:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited (nobody reaped it yet)


def _with_queue_index(
    hub: Hub, tmp_path: Path, spawned: list[Worker], listed: tuple[tuple[str, str, str], ...]
) -> tuple[Fanout, DestinationRunner, QueueIndex, list[list[tuple[str, str, str]]]]:
    """The tables and the console's queue index, the worker keeping both (as `Workspace`)."""
    index = QueueIndex(hub)
    handed: list[list[tuple[str, str, str]]] = []
    settings = replace(_settings(tmp_path), queue_index=True, listed_elsewhere=listed)

    def spawn() -> Worker:
        worker = Worker(settings)
        spawned.append(worker)
        return worker

    def handed_back(listed: list[tuple[str, str, str]]) -> None:
        handed.append(listed)
        index.remember_listed(listed)

    store = LogStore(tmp_path / "logs.duckdb")
    queue = DestinationRunner(hub, index, batch_size=index.batch_size)
    offload = Offload(
        TABLES_DESTINATION, spawn, flow=300, companion=QUEUE_DESTINATION, handed_back=handed_back
    )
    runners = [DestinationRunner(hub, LogTables(hub, store), batch_size=BATCH), queue]
    return Fanout(runners, interval=0.1, offload=offload), queue, index, handed


def _commit_more(hub: Hub, first: int, count: int) -> None:
    """``count`` new incidents per tenant (ids from ``first``), two alerts each."""
    for tenant in (TENANT_A, TENANT_B):
        batch = []
        for n in range(first, first + count):
            alerts = [alert_json(tenant, f"more{n}-{k}", str(n), n % 500) for k in (1, 2)]
            batch.append(
                Incident.from_graph(incident_json(tenant, str(n), n % 500, "active", alerts))
            )
        hub.commit_batch(InboundBatch(tenant_id=tenant, stream="incidents", incidents=batch))


def _idle(hub: Hub, runner: DestinationRunner) -> int:
    """What ``runner`` has delivered once the console's cursor is at the end and its thread's
    pass is over (a pass counts its changes when it ends)."""
    _until(lambda: hub.get_cursor(QUEUE_DESTINATION) == hub.max_seq())
    time.sleep(0.5)
    return runner.delivered


def test_the_worker_keeps_the_console_queue_index_while_it_lives(hub: Hub, tmp_path: Path) -> None:
    commit_workload(hub, incidents=300)  # about 2,700 changes: a worker is started
    spawned: list[Worker] = []
    # An alert remembered as listed under another incident goes to the worker and back.
    listed = (("tenant-x", "alert-1", "incident-9"),)
    fanout, queue, index, handed = _with_queue_index(hub, tmp_path, spawned, listed)
    fanout.start()
    _until(lambda: bool(spawned))
    before = _idle(hub, queue)  # the thread may have taken the first backlog
    _commit_more(hub, 1000, 300)  # 1,800 more while the worker lives
    assert _idle(hub, queue) == before  # the worker kept the index: the thread rested
    assert spawned[0].running()
    fanout.stop()
    fanout.publish()
    assert len(spawned) == 1 and spawned[0].returncode == 0
    delivered, back = queue_index_report(spawned[0].report)
    assert handed == [back]  # what the worker reported, given to the parent's index
    assert delivered >= 1800 and listed[0] in back
    assert queue.delivered == before + delivered  # its count, handed to the runner
    assert hub.get_cursor(QUEUE_DESTINATION) == hub.max_seq()
    incidents = {(c.tenant_id, c.entity_id) for c in hub.changes_after(0, 100_000)}
    with hub.reading() as conn:
        rows = conn.execute(select(queue_entry.c.tenant_id, queue_entry.c.incident_id)).all()
    assert {tuple(r) for r in rows} == {k for k in incidents if not k[1].startswith(("da", "more"))}
    assert listed[0] in index.listed_elsewhere()
    assert _seqs(tmp_path) == _expected(hub)  # the tables as before, each change once


def test_the_queue_index_thread_takes_over_when_the_worker_leaves(hub: Hub, tmp_path: Path) -> None:
    commit_workload(hub, incidents=300)
    spawned: list[Worker] = []
    fanout, queue, _, _ = _with_queue_index(hub, tmp_path, spawned, ())
    fanout.start()
    _until(lambda: bool(spawned))
    spawned[0].kill()  # gone without a report: the thread reads the cursor afresh
    _until(lambda: not spawned[0].running())
    before = _idle(hub, queue)
    _commit_more(hub, 1000, 20)  # a trickle after it: the thread delivers it
    assert _idle(hub, queue) == before + 120
    fanout.stop()
    fanout.publish()
    assert spawned[0].reported == [0]
