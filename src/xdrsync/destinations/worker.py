"""The log tables' worker process: a backlog written beside the inbound sync, not after it.

Turning changes into log rows (each alert with its evidence and entities) and bulk-loading
them is the costliest part of the fan-out. On a thread it shares the interpreter lock with
the inbound sync, so a backfill ran at the pace of both added together: measured on 2,000
incidents, the inbound's commits took 16 s of wall time for 6 s of CPU. When the tables
run on a heavy flow of changes (``FLOW`` pending, or arriving within ``FLOW_SECONDS``: a
backfill, a catch-up), their runner hands over to this worker, a child process running the same
runner from the same position, and takes over again once the worker has caught up and left
(``IDLE_EXIT_SECONDS`` with fewer than ``FLOW`` changes, see ``Flow``).

Exactly once still holds, because the two never deliver at the same time and the position
is the log store's own:

- while a worker lives, the thread only wakes it; it delivers again only after the worker
  has exited, and then reads the position afresh from the store (``Fanout`` does this);
- the worker exits within 0.1 s of its parent's death (it watches its parent process), so
  a restarted service never meets an orphan writing the same tables;
- a batch is one DuckDB transaction, so a kill anywhere leaves it whole or absent.

The parent sends one JSON line of settings on the worker's standard input (the hub's URL
may hold a password: it never goes on a command line), then ``wake`` and ``drain`` lines;
SIGTERM, or the pipe closed without a drain, stops it after its current batch. The worker
answers one JSON line, ``{"delivered": N}``, on its standard output at exit (with its
``failures`` in a row and ``retry_in`` when it leaves failing: the thread backs off on).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import IO, Any, Final

#: Changes pending, or arriving within ``FLOW_SECONDS``, that send the log tables to a worker
#: process: a backfill or a catch-up (200 changes/s), not the steady trickle.
FLOW: Final = 1000
FLOW_SECONDS: Final = 5.0
#: A worker leaves after this long in which it delivered fewer than ``FLOW`` changes: the
#: thread keeps up from there.
IDLE_EXIT_SECONDS: Final = 10.0
#: After a worker that delivered nothing (it failed to start, or had nothing to do), the
#: thread keeps the tables this long before it tries another.
RESPAWN_SECONDS: Final = 60.0
#: How long a worker waits for a wake before it looks at the hub again.
POLL_SECONDS: Final = 1.0
#: How often the worker checks that its parent still lives.
WATCH_SECONDS: Final = 0.1


@dataclass(frozen=True)
class WorkerSettings:
    """What the worker needs to open the same hub and log store as its parent."""

    hub_url: str
    log_path: str
    query: dict[str, Any]  # the workspace's [query] settings (QueryConfig), as JSON
    batch_size: int
    log_level: str
    log_json: bool
    #: Also keep the console's queue index (``console.index``) while it runs: its thread in
    #: the parent holds the interpreter lock the inbound sync needs (see ``Offload``).
    queue_index: bool = False
    #: The parent's queue index's alerts listed under another incident, (tenant, alert,
    #: incident): the worker starts from them and hands its own back in its report.
    listed_elsewhere: tuple[tuple[str, str, str], ...] = ()


class TablesWorker:
    """The parent's handle on one worker process."""

    def __init__(self, settings: WorkerSettings, log_stream: IO[str] | None = None) -> None:
        self.settings = settings
        self.log_stream = log_stream  # where its log lines go: the parent's log (default stderr)
        self.returncode: int | None = None  # once it has exited and been waited for
        self.report: dict[str, Any] = {}  # its last line, once it has exited
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> TablesWorker:
        self._process = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "xdrsync.destinations.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=_file(self.log_stream),
            text=True,
            # Out of the terminal's process group: Ctrl-C is the parent's to handle; the
            # worker stops when told, or dies with the parent.
            start_new_session=True,
        )
        self._send(json.dumps({**asdict(self.settings), "parent": os.getpid()}))
        return self

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wake(self) -> None:
        self._send("wake")

    def drain(self) -> None:
        """Deliver to the end of the backlog, then exit (``wait`` for it)."""
        self._send("drain")

    def wait(self, timeout: float | None) -> int | None:
        """Wait for the worker's exit; how many changes it delivered, None if it is still at
        work after ``timeout`` seconds (``finish`` then stops it)."""
        process = self._process
        if process is None:
            return 0
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._process, self.returncode = None, process.returncode
        self.report = _report(out)
        return _delivered(self.report)

    def finish(self, timeout: float = 30.0) -> int:
        """Stop the worker after its current batch and return how many changes it delivered
        (a worker that has to be killed reports none: what it committed is in the store, and
        the position read afterwards says so)."""
        process = self._process
        if process is None:
            return 0
        process.terminate()
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            out = ""
        self._process, self.returncode = None, process.returncode
        self.report = _report(out)
        return _delivered(self.report)

    def _send(self, line: str) -> None:
        process = self._process
        if process is None or process.stdin is None or process.stdin.closed:
            return
        with contextlib.suppress(OSError, ValueError):  # it has left already
            process.stdin.write(line + "\n")
            process.stdin.flush()


def _file(stream: IO[str] | None) -> IO[str] | None:
    """``stream`` when it is a real file the worker can inherit, else None (stderr)."""
    try:
        return stream if stream is not None and stream.fileno() >= 0 else None
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def _report(out: str | None) -> dict[str, Any]:
    try:
        found = json.loads((out or "").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    return found if isinstance(found, dict) else {}


def _delivered(report: Mapping[str, Any], name: str = "delivered") -> int:
    try:
        return int(report[name])
    except (ValueError, KeyError, TypeError):
        return 0


def backoff_report(report: Mapping[str, Any]) -> tuple[int, float]:
    """From a worker's report: the deliveries that failed in a row when it left (0: the
    last succeeded), and the seconds until its next try was due."""
    try:
        retry_in = max(0.0, float(report.get("retry_in") or 0.0))
    except (TypeError, ValueError):
        retry_in = 0.0
    return _delivered(report, "failures"), retry_in


def queue_index_report(report: Mapping[str, Any]) -> tuple[int, list[tuple[str, str, str]]]:
    """From a worker's report: the changes it delivered to the console's queue index, and the
    alerts it found listed under another incident."""
    listed = report.get("listed_elsewhere")
    triples = [
        (str(t[0]), str(t[1]), str(t[2]))
        for t in (listed if isinstance(listed, list) else [])
        if isinstance(t, list) and len(t) == 3
    ]
    return _delivered(report, "queue_index"), triples


# -- the child ---------------------------------------------------------------------------------


class Flow:
    """Whether a worker's flow is still heavy: ``FLOW`` changes delivered within every
    ``IDLE_EXIT_SECONDS`` (in passes of any size: a worker that keeps up delivers a little
    at each wake, far less than a batch)."""

    def __init__(self, now: float) -> None:
        self._until = now + IDLE_EXIT_SECONDS
        self._delivered = 0

    def still_heavy(self, delivered: int, now: float) -> bool:
        self._delivered += delivered
        if self._delivered >= FLOW:
            self._delivered = 0
            self._until = now + IDLE_EXIT_SECONDS
        return now < self._until


def _die_with(parent: int) -> None:
    """Exit at once when the parent dies (the worker is then another process's child).

    Not Linux's parent-death signal: it follows the *thread* that started the worker, and
    the fan-out's threads end at every stop. Leaving in the middle of a batch is safe: the
    DuckDB transaction is rolled back, and a restarted service finds no orphan writing."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _listen(
    stream: IO[str], wake: threading.Event, drain: threading.Event, stop: threading.Event
) -> None:
    for line in stream:
        if line.strip() == "drain":
            drain.set()
        wake.set()
    if not drain.is_set():
        stop.set()  # the parent closed the pipe without asking for a drain: it is leaving
    wake.set()


def serve(stream: IO[str], out: IO[str]) -> int:
    """The worker's body: deliver until told to stop or caught up and idle (an orphan
    leaves at once, see `_die_with`)."""
    from pathlib import Path

    from xdrsync import collector
    from xdrsync.config import QueryConfig
    from xdrsync.console.index import QueueIndex
    from xdrsync.destinations.runner import DestinationRunner
    from xdrsync.destinations.tables import LogTables
    from xdrsync.hub import Hub
    from xdrsync.logs import configure, register_secrets
    from xdrsync.tables.logstore import LogStore

    collector.tune()
    init = json.loads(stream.readline())
    parent = int(init["parent"])
    _die_with(parent)
    register_secrets([init["hub_url"]])
    configure(init["log_level"], json=init["log_json"])
    wake, drain, stop = threading.Event(), threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # `finish`: after the current batch
    threading.Thread(target=_listen, args=(stream, wake, drain, stop), daemon=True).start()
    hub = Hub.open(init["hub_url"])
    store = LogStore(Path(init["log_path"]), limits=QueryConfig.model_validate(init["query"]))
    runner = DestinationRunner(hub, LogTables(hub, store), batch_size=int(init["batch_size"]))
    index = QueueIndex(hub) if init.get("queue_index") else None
    queue: DestinationRunner | None = None
    if index is not None:
        index.remember_listed(tuple(t) for t in init.get("listed_elsewhere") or ())
        queue = DestinationRunner(hub, index, batch_size=index.batch_size)

    def halt_on_stop() -> None:  # the parent's stop ends the run after the current batch
        stop.wait()
        runner.halt.set()
        if queue is not None:
            queue.halt.set()

    threading.Thread(target=halt_on_stop, daemon=True).start()
    flow = Flow(time.monotonic())
    try:
        while not stop.is_set():
            wake.clear()
            draining = drain.is_set()
            drained = False
            try:
                done = runner.publish() if draining else runner.publish_whole()
            except Exception:  # recorded and backed off by the runner, as on a thread
                done = 0
            else:
                drained = draining and not runner.halt.is_set()
            if queue is not None:  # at every pass, as its thread in the parent did
                with contextlib.suppress(Exception):  # recorded and backed off likewise
                    queue.publish()
            if drained:
                break  # to the end of the backlog, as asked
            if not flow.still_heavy(done, time.monotonic()):
                break  # caught up for a while: the thread keeps up from here
            wake.wait(POLL_SECONDS)
    finally:
        hub.close()
    report: dict[str, Any] = {"delivered": runner.delivered}
    if runner.failures:  # leaving failing: its backoff goes on in the parent
        report |= {"failures": runner.failures, "retry_in": round(runner.retry_in(), 3)}
    if index is not None and queue is not None:
        report |= {"queue_index": queue.delivered, "listed_elsewhere": index.listed_elsewhere()}
    out.write(json.dumps(report) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.stdin, sys.stdout))
