"""The fan-out: every destination fed from the hub's change sequence by its own runner.

Each runner keeps its destination's position (the hub cursor named after it, or the
destination's own), delivers what follows in batches, acknowledges each batch with its dead
letters in one hub transaction, and on failure backs off and records the error for
``destinations status``. Runners live on their own threads: a slow, throttled or failing
destination never holds back inbound sync, the log tables or another destination, and it
resumes from its own position when it recovers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from xdrsync.destinations.base import Destination, KeepsRefusals, ReadsNoPayloads
from xdrsync.destinations.worker import (
    FLOW,
    FLOW_SECONDS,
    RESPAWN_SECONDS,
    TablesWorker,
    backoff_report,
    queue_index_report,
)
from xdrsync.errors import ConfigError, ThrottledError
from xdrsync.graph.pacing import Stopped, check_stop, stop_on
from xdrsync.hub import Hub
from xdrsync.logs import clean
from xdrsync.sync.engine import Background

log = structlog.get_logger(__name__)

#: The shortest span the flow's rate is measured over (``Fanout._offloaded``).
RATE_SECONDS = 1.0
#: A failing destination is tried again after this, doubling up to the maximum.
RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 300.0
#: An operator must act on a ConfigError (a role, a permission): no point asking every second.
CONFIG_RETRY_SECONDS = 60.0
#: The log tables' worker delivers a flow in whole batches: what is pending goes once a batch
#: is, or once this long has passed since its last delivery (``publish_whole``).
GATHER_SECONDS = 1.0


class DestinationRunner:
    """Delivers the hub's changes to one destination, from its acknowledged position."""

    def __init__(
        self,
        hub: Hub,
        destination: Destination,
        *,
        batch_size: int = 1000,
        retry_seconds: float = RETRY_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.destination = destination
        self.batch_size = batch_size
        self._payloads = not isinstance(destination, ReadsNoPayloads)
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self._monotonic = monotonic
        self._position: int | None = None
        self._delivered_at = float("-inf")  # monotonic time of the last delivery
        self._failures = 0
        self._retry_at = 0.0
        self.delivered = 0  # changes acknowledged by this runner, over all calls
        self.halt = threading.Event()  # set: a run stops after its current batch
        # One run at a time: a drain on the caller's thread may meet a background run that
        # outlived its stop timeout, and both would deliver the same changes.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.destination.name

    @property
    def failures(self) -> int:
        """Deliveries that failed in a row: backing off until one succeeds (0 then)."""
        return self._failures

    def retry_in(self) -> float:
        """Seconds before a failing destination is tried again (0: it is due)."""
        return max(0.0, self._retry_at - self._monotonic())

    def position(self) -> int:
        if self._position is None:
            own = self.destination.position()
            if own is not None:
                own = self._not_past_head(own)
                self._acknowledge_held(own)
            self._position = own if own is not None else self.hub.get_cursor(self.name)
        return self._position

    def held(self) -> int:
        """The position as the destination holds it (its own, else the hub's cursor), read
        without acknowledging or dropping anything (``position`` may do both)."""
        own = self.destination.position()
        return own if own is not None else self.hub.get_cursor(self.name)

    def _not_past_head(self, own: int) -> int:
        """A destination keeping its own position beyond the hub's last change holds
        changes this hub never made: the hub was restored from an older copy, and will
        number its next changes as those. They are dropped (their rows are another hub's),
        so that the changes made from here are delivered under their numbers; before, the
        acknowledgement failed at every delivery until the hub's numbers passed the
        destination's, which then skipped the changes between for good."""
        head = self.hub.max_seq()
        if own <= head:
            return own
        log.warning(
            "a destination holds changes past the hub's last (was the hub restored from an "
            "older copy?): they are dropped, and the hub's changes from here are delivered",
            destination=self.name,
            held=own,
            last_change=head,
        )
        self.destination.replay_from(head + 1)
        self.hub.reset_cursor(self.name, min(self.hub.get_cursor(self.name), head))
        return min(self.destination.position() or 0, head)

    def _acknowledge_held(self, own: int) -> None:
        """A destination keeping its own position may hold changes the hub never heard it
        took (the process died, or the hub failed, between its commit and the
        acknowledgement): acknowledged now, with the dead letters of those it rejected, so
        that the cursor passes none of them without a trace."""
        acknowledged = self.hub.get_cursor(self.name)
        if own <= acknowledged:
            return
        refused = (
            self.destination.refused_after(acknowledged)
            if isinstance(self.destination, KeepsRefusals)
            else {}
        )
        dead = [
            (seq, c.tenant_id, c.entity_type, c.entity_id, reason)
            for seq, reason in sorted(refused.items())
            for c in self.hub.changes_after(seq - 1, 1)
            if c.seq == seq
        ]
        self.hub.record_delivery(self.name, own, dead)

    def publish(
        self, *, force: bool = False, deadline: float | None = None, batches: int | None = None
    ) -> int:
        """Deliver everything after the position (no new batch after ``deadline``, a
        monotonic time, nor after ``batches`` of them); returns how many changes were
        acknowledged. A failure is recorded, backed off from (unless ``force``) and raised.

        With a ``deadline``, waiting for a run under way on another thread (one that outlived
        its stop timeout) ends there too, with nothing delivered. Run under ``stop_on``, the
        stop ends the run before its next batch, and the destination's own waits (pacing,
        ``Retry-After``) at once, with ``Stopped``: the batch under way is not acknowledged and
        is delivered again later, so nothing is lost."""
        if deadline is None:
            self._lock.acquire()
        elif not self._lock.acquire(timeout=max(0.0, deadline - self._monotonic())):
            log.warning("destination busy in another run; not delivered", destination=self.name)
            return 0
        try:
            return self._publish_locked(force, deadline, batches)
        finally:
            self._lock.release()

    def _publish_locked(self, force: bool, deadline: float | None, batches: int | None) -> int:
        if not force and self._monotonic() < self._retry_at:
            return 0
        done = count = 0
        try:
            while (
                not self.halt.is_set()
                and (deadline is None or self._monotonic() < deadline)
                and (batches is None or count < batches)
                and (
                    changes := self.hub.changes_after(
                        self.position(), self.batch_size, payloads=self._payloads
                    )
                )
            ):
                check_stop()  # a stopped thread starts no batch (``stop_on``)
                wanted = [c for c in changes if self.destination.accepts(c)]
                rejected = self.destination.deliver(wanted) if wanted else ()
                by_seq = {c.seq: c for c in wanted}
                dead = [
                    (r.seq, c.tenant_id, c.entity_type, c.entity_id, r.reason)
                    for r in rejected
                    if (c := by_seq.get(r.seq)) is not None
                ]
                self.hub.record_delivery(self.name, changes[-1].seq, dead)
                self._position = changes[-1].seq
                done += len(changes)
                count += 1
                if self._failures:  # progress: the next failure starts the backoff anew
                    log.info("destination recovered", destination=self.name)
                    self._failures = 0
                if dead:
                    log.warning(
                        "destination rejected changes for good (dead letters)",
                        destination=self.name,
                        count=len(dead),
                        first_reason=dead[0][4],
                    )
        except Exception as failure:
            # The destination may hold a batch the hub did not record (the hub failed after
            # the delivery): a destination that keeps its own position is asked for it again,
            # rather than given the batch twice.
            self._position = None
            self._back_off(failure)
            raise
        finally:
            self.delivered += done
        return done

    def publish_whole(self) -> int:
        """``publish`` in whole batches: a batch as soon as one is pending, and what is
        pending once ``GATHER_SECONDS`` have passed since the last delivery (at once when
        nothing was delivered for that long, so a quiet flow waits for nothing).

        The log tables' worker delivers so: woken at every commit of a backfill, it took what
        had come since its last batch (about 1,000 changes on average), and every batch costs
        a DuckDB transaction and a checkpoint besides its rows. Replaying a 4,000-incident
        backfill into an empty log file took 12.2 CPU-s in batches of 400 and 8.4 in batches
        of 3,000. The threads deliver at every wake instead: the console's queue is read
        straight after a sync cycle, and a second's lag behind the hub showed there."""
        done = 0
        while not self.halt.is_set():
            now = self._monotonic()
            pending = self.hub.max_seq() - self.position()
            due = now >= self._delivered_at + GATHER_SECONDS
            if pending < self.batch_size and not (pending > 0 and due):
                break
            delivered = self.publish(batches=1)
            self._delivered_at = self._monotonic()
            if not delivered:  # backing off, or halted
                break
            done += delivered
        return done

    def _back_off(self, failure: Exception) -> None:
        self._failures += 1
        backoff = self.retry_seconds * 2 ** min(self._failures - 1, 16)
        if isinstance(failure, ThrottledError) and failure.retry_after is not None:
            # As long as the server asked, and never less than a failure's backoff: a
            # `Retry-After: 0` (or a date already past) asked for a retry at every wake.
            delay = max(failure.retry_after, backoff)
        elif isinstance(failure, ConfigError):
            delay = CONFIG_RETRY_SECONDS
        else:
            delay = backoff
        delay = min(delay, self.max_retry_seconds)
        self._retry_at = self._monotonic() + delay
        text = clean(f"{type(failure).__name__}: {failure}")
        self.hub.record_delivery_failure(self.name, text)
        log.warning("destination failed", destination=self.name, error=text, retry_in=delay)

    def took_over(self, delivered: int, failures: int = 0, retry_in: float = 0.0) -> None:
        """A worker process delivered for this runner: count it, and read the position
        afresh before delivering again. A worker that left failing (``failures`` in a row,
        its next try due in ``retry_in`` seconds) hands its backoff over: it goes on here."""
        with self._lock:
            self.delivered += delivered
            self._position = None
            if failures:
                self._failures = max(self._failures, failures)
                self._retry_at = max(self._retry_at, self._monotonic() + retry_in)
            elif delivered:
                self._failures = 0

    def replay_from(self, seq: int) -> None:
        """Deliver again every change from ``seq`` on (the destination is told first)."""
        with self._lock:
            self.destination.replay_from(seq)
            self.hub.reset_cursor(self.name, max(seq - 1, 0))
            self._position = None


@dataclass(frozen=True)
class Offload:
    """The runner whose backlogs go to a worker process (``destinations.worker``).

    ``companion``: a runner whose thread rests while a worker lives, because the worker
    keeps that destination too: the console's queue index, which on its thread used about
    6 CPU-s of a 42 s backfill of 10,000 incidents under the sync process's interpreter lock
    (docs/fanout.md has the measurement). The worker reports what it delivered for it, and
    ``handed_back`` receives the alerts it found listed under another incident."""

    name: str
    spawn: Callable[[], TablesWorker]
    flow: int = FLOW  # changes pending, or arriving within `seconds`
    seconds: float = FLOW_SECONDS
    companion: str | None = None
    handed_back: Callable[[list[tuple[str, str, str]]], None] | None = None


class Fanout:
    """All destinations of a workspace, each on its own thread once started.

    ``publish()`` drains every destination on the caller's thread (``sync --once``, shutdown)
    and raises the first failure after all were tried; ``wake()`` nudges the threads after a
    sync cycle committed. With ``offload``, that runner's thread hands a backlog to a worker
    process and delivers again itself only once the worker has left.
    """

    def __init__(
        self,
        runners: Sequence[DestinationRunner],
        *,
        interval: float = 1.0,
        offload: Offload | None = None,
    ) -> None:
        self.runners = list(runners)
        self.interval = interval
        self.offload = offload
        self._threads: list[Background] = []
        self._worker: TablesWorker | None = None
        self._last_seen: tuple[float, int] | None = None  # (when, newest seq) at a pass
        self._no_worker_until = 0.0
        self._worker_lock = threading.Lock()

    def _quiet(self, runner: DestinationRunner) -> Callable[[], object]:
        offloaded = self.offload is not None and runner.name == self.offload.name
        companion = self.offload is not None and runner.name == self.offload.companion

        def run() -> object:
            try:
                if offloaded:
                    return self._offloaded(runner)
                return self._until_worker(runner) if companion else runner.publish()
            except Exception:  # recorded and backed off by the runner; the thread goes on
                return 0

        return run

    def _until_worker(self, runner: DestinationRunner) -> int:
        """The companion's pass: batch by batch while no worker lives, since a worker keeps
        it from its start until it leaves (`_hand_back`). A pass that ran on to the end of a
        backfill's stream of commits did, in the sync process, a third of the index's work
        that the worker had started for."""
        done = 0
        while self._worker is None and (delivered := runner.publish(batches=1)):
            done += delivered
        return done

    def _hand_back(self, worker: TablesWorker, delivered: int) -> None:
        """A worker has exited: its runners deliver again from the positions read afresh."""
        assert self.offload is not None
        failures, retry_in = backoff_report(worker.report)
        self.runner(self.offload.name).took_over(delivered, failures, retry_in)
        if self.offload.companion is None:
            return
        kept, listed = queue_index_report(worker.report)
        self.runner(self.offload.companion).took_over(kept)
        if self.offload.handed_back is not None:
            self.offload.handed_back(listed)

    def _offloaded(self, runner: DestinationRunner) -> int:
        assert self.offload is not None
        with self._worker_lock:
            worker = self._worker
            if worker is not None:
                if worker.running():
                    worker.wake()
                    return 0
                delivered = worker.finish()  # it has exited: this collects its count
                self._hand_back(worker, delivered)
                self._worker = None
                if not delivered:  # it failed (its error is in the log), or found nothing
                    self._no_worker_until = time.monotonic() + RESPAWN_SECONDS
            # A heavy flow: a backlog of `flow` changes, or changes arriving at that many
            # per `seconds` since the last pass (a pass may take long on a busy process).
            # The rate is measured over RATE_SECONDS at least: a commit's wake may bring a
            # pass 20 ms after the last, and one page of 40 changes then read as 2,000 a
            # second (a steady trickle of 17 a second started a worker every 45 s).
            now, top = time.monotonic(), runner.hub.max_seq()
            last = self._last_seen
            if last is None or now - last[0] >= RATE_SECONDS:
                self._last_seen = (now, top)
            pending = top - runner.position()
            span = max(now - last[0], RATE_SECONDS) if last is not None else 0.0
            rate = (top - last[1]) / span if last is not None else 0.0
            heavy = max(pending, rate * self.offload.seconds) >= self.offload.flow
            # Not for a destination that is failing: the thread tries it again when its
            # backoff ends, and a worker goes once a delivery succeeds. During a lasting
            # failure (a full disk) a worker started, failed, and left every 70 s, a few
            # CPU-seconds each.
            if heavy and now >= self._no_worker_until and not runner.failures:
                self._last_seen = None
                try:
                    self._worker = self.offload.spawn().start()
                except OSError as failure:  # e.g. a process limit: the thread goes on
                    self._no_worker_until = now + RESPAWN_SECONDS
                    log.warning("no worker process", destination=runner.name, error=str(failure))
                else:
                    log.info("a backlog goes to a worker process", destination=runner.name)
                    return 0
        # A bounded pass: the flow is looked at again before the next one.
        return runner.publish(deadline=time.monotonic() + self.interval)

    def _collect_worker(self, deadline: float | None) -> None:
        """Wait for the worker (until ``deadline``, then stop it: within what is left of the
        deadline, so in the middle of its batch, one DuckDB transaction, written again after
        a restart) and give its runner the position back."""
        with self._worker_lock:
            worker, self._worker = self._worker, None
        if worker is None or self.offload is None:
            return
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        delivered = worker.wait(left)
        if delivered is None:
            assert deadline is not None  # without one, `wait` returns at its exit
            delivered = worker.finish(max(deadline - time.monotonic(), 0.0))
        self._hand_back(worker, delivered)

    def start(self) -> Fanout:
        if self.offload is not None:  # the first pass then sees the flow since the start
            self._last_seen = (time.monotonic(), self.runner(self.offload.name).hub.max_seq())
        # Stoppable: a destination waiting out a throttle (ARM's Retry-After, its pacing)
        # ends the wait at ``stop``; the batch under way is delivered again after a restart.
        self._threads = [
            Background(
                self._quiet(r), interval=self.interval, name=f"fanout-{r.name}", stoppable=True
            ).start()
            for r in self.runners
        ]
        return self

    def wake(self) -> None:
        for thread in self._threads:
            thread.wake()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the threads (``timeout`` seconds in all, not per thread): each ends after the
        batch it is delivering, or at once from a wait (pacing, ``Retry-After``), leaving that
        batch unacknowledged (delivered again later). A thread still inside a request when
        ``timeout`` is over is left to end by itself; it starts no other batch."""
        deadline = time.monotonic() + timeout
        for runner in self.runners:
            runner.halt.set()
        for thread in self._threads:
            thread.halt()
        for thread in self._threads:
            thread.join(deadline - time.monotonic())
        self._threads = []
        for runner in self.runners:
            runner.halt.clear()
        with self._worker_lock:
            if self._worker is not None:
                self._worker.drain()  # its backlog, while `publish` or `drain` do the others

    def publish(self) -> int:
        """Deliver everything pending, on this thread; the first failure is raised after
        every destination was tried."""
        first: Exception | None = None

        def failed(runner: DestinationRunner, failure: Exception) -> None:
            nonlocal first
            first = first or failure

        done = self._deliver(None, failed)
        if first is not None:
            raise first
        return done

    def drain(self, seconds: float) -> int:
        """At shutdown: deliver what is pending for at most ``seconds`` in all (the log tables
        first, or last while their worker finishes), logging failures; what is left is
        delivered after the next start."""

        def failed(runner: DestinationRunner, failure: Exception) -> None:
            # recorded by the runner; nothing is lost, it resumes later
            log.warning("destination not drained at shutdown", destination=runner.name)

        return self._deliver(time.monotonic() + seconds, failed)

    @staticmethod
    @contextmanager
    def _until(deadline: float | None) -> Iterator[None]:
        """Run the block so that its waits (a destination's pacing, ``Retry-After``) end
        with ``Stopped`` at ``deadline``; a block without a deadline is not touched."""
        if deadline is None:
            yield
            return
        expired = threading.Event()
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), expired.set)
        timer.daemon = True
        timer.start()
        try:
            with stop_on(expired):
                yield
        finally:
            timer.cancel()

    def _deliver(
        self,
        deadline: float | None,
        failed: Callable[[DestinationRunner, Exception], None],
    ) -> int:
        offloaded = self.offload.name if self.offload is not None else None
        companion = self.offload.companion if self.offload is not None else None
        # A worker finishing the tables' backlog goes on meanwhile: the others come first,
        # but the runner it keeps beside the tables only after it has left.
        order = sorted(
            self.runners,
            key=lambda r: (
                self._worker is not None and r.name in (offloaded, companion),
                r.name == companion,
            ),
        )
        done = 0
        for runner in order:
            try:
                if runner.name == offloaded:
                    self._collect_worker(deadline)
                with self._until(deadline):
                    done += runner.publish(force=True, deadline=deadline)
            except Stopped:  # the deadline passed in a wait: the batch goes after a restart
                log.warning("destination not drained by the deadline", destination=runner.name)
            except Exception as failure:
                failed(runner, failure)
        return done

    def runner(self, name: str) -> DestinationRunner:
        for runner in self.runners:
            if runner.name.lower() == name.lower():
                return runner
        raise KeyError(name)

    def close(self) -> None:
        self._collect_worker(time.monotonic())  # a worker still alive stops now
        for runner in self.runners:
            runner.destination.close()
