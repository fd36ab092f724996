"""The sync service: every tenant on its own thread, the destinations fed behind them.

A tenant's failure (bad credentials, throttling, an outage) is recorded on its streams and
retried later; it never stalls another tenant, and it never stops the fan-out. Each tenant
pushes its workspace edits on a thread of its own too, so a tenant whose Graph hangs delays
only its own edits.

How soon a failed tenant is tried again depends on the failure: an outage at the next poll;
a 429 once the Retry-After has passed (the tenant's other stream is not read meanwhile); a
failure only the operator can fix (a wrong secret, a missing permission) after a wait that
doubles with each failed cycle up to ``MAX_BACKOFF`` (and is said in the stream's error).

``stop()`` ends every thread against one deadline: the waits between Graph calls end at
once (``graph.pacing.stop_on``), a read stops between pages (each page is committed whole,
with the state it proves), and only a request already on the wire is waited for.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType
from typing import Protocol, TypeVar

import structlog

from xdrsync.errors import ConfigError, ServerBusyError, ThrottledError, XdrSyncError
from xdrsync.graph.pacing import Stopped, stop_on
from xdrsync.hub import Hub
from xdrsync.logs import clean
from xdrsync.sync.inbound import (
    ALERTS,
    STREAMS,
    DefenderSource,
    InboundSettings,
    OnWindow,
    StreamReport,
    sync_stream,
)

log = structlog.get_logger(__name__)

#: At shutdown the destinations get this long to take what the last cycles committed.
DRAIN_SECONDS = 10.0
#: At shutdown every thread (tenants, pushers, read-backs) gets this long in all to end.
STOP_SECONDS = 20.0
#: The longest wait before a tenant that failed for configuration is tried again.
MAX_BACKOFF = 900.0
#: A parked tenant wakes this much after the Retry-After, so that its stream is due by then.
_PARK_MARGIN = 0.1
#: Due edits read at once to find the tenants that have some (``SyncService._dispatch``).
_DISPATCH_BATCH = 500
#: Tenants that ``each_tenant`` (``sync --once``, ``backfill``) reads at once. Each mostly
#: waits on Graph, for its answers and for its pace under the tenant's rate limit, so tenants
#: read one after another took the sum of their times, and one slow or throttled tenant held
#: up all the others. (The service gives each tenant a thread of its own.)
ONCE_THREADS = 8
#: After Ctrl-C, the tenants under way get this long to stop (before their next Graph call,
#: or after the page they are committing); one still inside a request is abandoned.
INTERRUPT_SECONDS = 5.0
#: How often a background job failing the same way says so again (its first failure is
#: logged with its trace, a new failure at once).
REPEAT_LOG_SECONDS = 60.0

T = TypeVar("T")

#: The tenants ``each_tenant``'s threads are working on (thread ident -> tenant name), kept
#: under ``_AT_WORK_LOCK``: what ``still_at_work`` tells.
_AT_WORK: dict[int, str] = {}
_AT_WORK_LOCK = threading.Lock()


@dataclass(frozen=True)
class TenantSource:
    """A tenant and the Graph source that reads it."""

    name: str
    tenant_id: str
    source: DefenderSource


@dataclass
class CycleReport:
    """One cycle of one tenant: what each stream did, or why it failed."""

    tenant: str
    started: datetime
    streams: list[StreamReport] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    # A stream failed for configuration (credentials, permissions): only the operator can fix it.
    misconfigured: bool = False
    # Graph throttled the tenant (429) and asked it to wait until then: no call before.
    retry_at: datetime | None = None
    # Streams not started after a failure that the next would share (left for a later cycle).
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def quiet(self) -> bool:
        """Nothing new or changed in any stream, and no failure."""
        return self.ok and not any(s.inserted or s.updated for s in self.streams)


def sync_tenant(
    hub: Hub,
    tenant: TenantSource,
    settings: InboundSettings,
    *,
    on_window: OnWindow | None = None,
    streams: Sequence[str] = STREAMS,
    retry_in: timedelta | None = None,
) -> CycleReport:
    """The tenant's ``streams`` (both by default), one after the other; each failure is kept,
    not raised.

    After a failure for configuration or a 429, the tenant's next stream is not started: it
    would fail the same way, or spend the wait Graph asked for. ``retry_in``: when the caller
    tries again after a failure for configuration, said in the stream's error."""
    # Here, not at the top: the log tables' worker imports this module without Graph's stack.
    from xdrsync.graph.client import failures_reported

    report = CycleReport(tenant=tenant.name, started=datetime.now(UTC))
    for index, stream in enumerate(streams):
        began = time.monotonic()
        try:
            # A failed Graph call is said once, below ("stream failed"), not by the client too.
            with failures_reported():
                done = sync_stream(
                    hub,
                    tenant.source,
                    tenant_id=tenant.tenant_id,
                    stream=stream,
                    settings=settings,
                    on_window=on_window,
                )
            report.streams.append(done)
            # A quiet cycle is said at debug: at info, an idle tenant's two streams wrote
            # about 11 lines a minute (3 MB a day), every one of them "read=0".
            said = log.info if done.records or done.quarantined else log.debug
            said(
                "stream synced",
                tenant=tenant.name,
                stream=stream,
                read=done.records,
                alerts_within=done.alerts_within,
                new=done.inserted,
                updated=done.updated,
                quarantined=done.quarantined,
                pages=done.pages,
                watermark=done.watermark.isoformat() if done.watermark else None,
                seconds=round(time.monotonic() - began, 3),
            )
        except Exception as failure:  # one stream's failure, whatever it is, stays its own
            message = clean(f"{type(failure).__name__}: {failure}")
            retry_at = _retry_at(failure)
            if retry_at is not None:
                message += f" (Graph asked us to wait: not read before {retry_at:%H:%M:%S} UTC)"
            elif retry_in is not None and isinstance(failure, ConfigError):
                message += f" (next attempt at {datetime.now(UTC) + retry_in:%H:%M:%S} UTC)"
            report.errors[stream] = message
            if isinstance(failure, XdrSyncError):
                log.warning("stream failed", tenant=tenant.name, stream=stream, error=message)
            else:  # a bug or a hostile input we did not foresee: keep the traceback
                log.exception("stream crashed", tenant=tenant.name, stream=stream, error=message)
            _record_error(hub, tenant, stream, message, retry_at)
            if isinstance(failure, ConfigError):
                report.misconfigured = True
            elif _throttled(failure):
                report.retry_at = retry_at  # Graph's limit is the tenant's, not the stream's
            else:
                continue
            report.skipped = list(streams[index + 1 :])
            why = f"not read: {stream} failed first: {message}"
            for skipped in report.skipped:  # said on each: `state show` lists every stream
                _record_error(hub, tenant, skipped, why, retry_at)
            break  # the other stream would fail the same way, or spend Graph's wait
    return report


def _record_error(
    hub: Hub, tenant: TenantSource, stream: str, message: str, retry_at: datetime | None
) -> None:
    """The stream's state says why it was not read: it failed, or it was left unread after
    the tenant's other one failed (without a word of its own, `state show` listed it as never
    synced with no error, as a hung first request would be). A hub that cannot take it is
    logged, never raised: the cycle's report still says it."""
    try:
        hub.record_stream_error(tenant.tenant_id, stream, message, retry_at=retry_at)
    except Exception:
        log.exception("could not record the stream's error", tenant=tenant.name)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while ``each_tenant`` ran: every tenant was asked to stop. ``abandoned`` names
    those still at work at the deadline (inside a Graph request, or waiting for the hub)."""

    def __init__(self, abandoned: Sequence[str]) -> None:
        super().__init__()
        self.abandoned = list(abandoned)


def still_at_work() -> list[str]:
    """The tenants ``each_tenant``'s threads are still working on. After Ctrl-C, while any
    is, the caller should end the process without releasing the workspace (``os._exit``),
    as ``run`` does, so that no other writer starts while such a thread might still commit
    its page."""
    with _AT_WORK_LOCK:
        return sorted(_AT_WORK.values())


@dataclass
class _CtrlC:
    """The Ctrl-Cs pressed while ``_counting_ctrl_c`` runs."""

    presses: int = 0

    def press(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1


@contextmanager
def _counting_ctrl_c() -> Iterator[_CtrlC]:
    """Ctrl-C counted instead of raised, on the main thread under Python's own handler.

    Python runs a signal's handler in the main thread wherever that thread is, inside a
    garbage collector's callback too, which swallows what the handler raises ("Exception
    ignored in ..."): a ``KeyboardInterrupt`` raised there was lost, and ``each_tenant`` went
    on waiting for tenants that nothing had asked to stop. A count is never lost. Elsewhere
    (off the main thread, or under another handler) Ctrl-C is left as it is, and counts 0."""
    pressed = _CtrlC()
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield pressed
        return
    previous = signal.signal(signal.SIGINT, pressed.press)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def each_tenant(
    tenants: Sequence[TenantSource],
    work: Callable[[TenantSource], T],
    *,
    threads: int = ONCE_THREADS,
    interrupt_seconds: float = INTERRUPT_SECONDS,
    on_interrupt: Callable[[], object] | None = None,
) -> list[T]:
    """``work(tenant)`` for every tenant, ``threads`` tenants at a time, each on a thread of
    its own under ``graph.pacing.stop_on``; the results in the tenants' order.

    Ctrl-C (counted by ``_counting_ctrl_c``, or ``KeyboardInterrupt`` in the calling thread)
    asks every tenant to stop, calls ``on_interrupt``, and is raised again as ``Interrupted``
    once they have, after ``interrupt_seconds``, or at a second Ctrl-C. An exception ``work``
    lets out (a bug: ``sync_tenant`` keeps its failures) stops the other tenants the same way
    and is raised."""
    results: dict[int, T] = {}
    failures: list[BaseException] = []
    stop = threading.Event()
    queue = iter(list(enumerate(tenants)))
    count = min(len(tenants), max(1, threads))
    running = [count]
    ended = threading.Event()  # set by the last thread to end
    if not count:
        return []

    def run() -> None:
        me = threading.get_ident()
        with stop_on(stop):
            try:
                while True:
                    with _AT_WORK_LOCK:
                        index, tenant = next(queue, (-1, None)) if not stop.is_set() else (-1, None)
                        if tenant is None:
                            return
                        _AT_WORK[me] = tenant.name
                    results[index] = work(tenant)
                    with _AT_WORK_LOCK:
                        del _AT_WORK[me]
            except Stopped:
                return
            except BaseException as failure:  # raised again on the calling thread
                failures.append(failure)
                stop.set()
            finally:
                _ended(me)

    def _ended(me: int | None, threads: int = 1) -> None:
        with _AT_WORK_LOCK:
            if me is not None:
                _AT_WORK.pop(me, None)
            running[0] -= threads
            if running[0] <= 0:
                ended.set()

    def stop_all(seconds: float, ctrl_c: _CtrlC, leave_at: int) -> None:
        """Ask every tenant to stop and wait ``seconds`` at most; Ctrl-C's ``leave_at``-th
        press cuts it short."""
        stop.set()
        deadline = time.monotonic() + seconds
        try:
            while not ended.wait(max(0.0, min(0.2, deadline - time.monotonic()))):
                if time.monotonic() >= deadline or ctrl_c.presses >= leave_at:
                    return
        except KeyboardInterrupt:  # a second Ctrl-C: leave whoever is still at work
            return

    # Waits on an event in short steps, never in ``Thread.join``: Python runs the Ctrl-C
    # handler in this thread only when it wakes, and a join that Ctrl-C interrupts can take
    # a live thread for ended (Python 3.11).
    started = 0
    with _counting_ctrl_c() as ctrl_c:
        try:
            for index in range(count):
                if ctrl_c.presses:
                    raise KeyboardInterrupt
                threading.Thread(target=run, name=f"tenant-{index}", daemon=True).start()
                started += 1
            while not ended.wait(0.2) and not ctrl_c.presses:
                pass
            if ctrl_c.presses:  # as the last tenant ended, too: an interruption
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            _ended(None, count - started)
            stop.set()
            try:
                if on_interrupt is not None:
                    on_interrupt()
            finally:
                stop_all(interrupt_seconds, ctrl_c, leave_at=2)
                raise Interrupted(still_at_work()) from (failures[0] if failures else None)
        except BaseException:  # a thread that could not start
            _ended(None, count - started)
            stop_all(interrupt_seconds, ctrl_c, leave_at=ctrl_c.presses + 1)
            raise
    if failures:
        raise failures[0]
    return [results[index] for index in range(len(tenants))]


def _throttled(failure: BaseException) -> bool:
    """A 429: the tenant's budget is spent. (A 5xx that says when to come back is one
    endpoint's trouble, which the other stream may not share.)"""
    return isinstance(failure, ThrottledError) and not isinstance(failure, ServerBusyError)


#: The longest wait a Retry-After can impose on a stream; a larger (or absurd) value is read
#: as this, so a server cannot park a stream for years.
MAX_RETRY_AFTER = timedelta(hours=1)


def _retry_at(failure: BaseException) -> datetime | None:
    """When a throttled stream may be read again, if Graph asked for a wait."""
    if not isinstance(failure, ThrottledError) or not failure.retry_after:
        return None
    seconds = failure.retry_after
    wait = (
        MAX_RETRY_AFTER
        if not 0 < seconds < MAX_RETRY_AFTER.total_seconds()  # also NaN and infinity
        else timedelta(seconds=seconds)
    )
    return datetime.now(UTC) + wait


class Background:
    """Runs ``publish`` on its own thread when woken and every ``interval`` seconds (None:
    only when woken): the fan-out, so the log store fills while tenants sync (a backfill's
    pages are in the tables as they land), the two-way pushers, so an edit leaves soon, and
    the read-backs of two-way destinations.

    ``stoppable``: ``publish`` runs under ``graph.pacing.stop_on``, so that ``halt()`` ends
    its waits between Graph calls at once (``Stopped`` ends the run, nothing is logged).

    ``stop()`` ends the thread without a last run: the caller drains with ``publish()`` on
    its own thread, where a failure is its to report.
    """

    def __init__(
        self,
        publish: Callable[[], object],
        *,
        interval: float | None,
        name: str = "fanout",
        stoppable: bool = False,
    ) -> None:
        self.publish = publish
        self.interval = interval
        self.name = name
        self.stoppable = stoppable
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def halt(self) -> None:
        """Ask the thread to end (after the run under way); ``join`` waits for it."""
        self._stopping.set()
        self._wake.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread; True once it has ended."""
        if self._thread.is_alive():
            self._thread.join(timeout=max(0.0, timeout))
        return not self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        self.halt()
        self.join(timeout)

    def _loop(self) -> None:
        if not self.stoppable:
            self._runs()
            return
        with stop_on(self._stopping):
            try:
                self._runs()
            except Stopped:
                return

    def _runs(self) -> None:
        # The failure repeating since it was logged with its trace, how often, and when it
        # was last said: a hub that is down fails the pusher's look five times a second, and
        # the same trace each time would drown the log.
        failing, repeats, said = "", 0, 0.0
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.publish()
            except Exception as failure:  # logged and retried next time; the sync goes on
                what = f"{type(failure).__name__}: {failure}"
                if what != failing:
                    log.exception(f"{self.name} failed")
                    failing, repeats, said = what, 0, time.monotonic()
                    continue
                repeats += 1
                if time.monotonic() - said >= REPEAT_LOG_SECONDS:
                    log.warning(f"{self.name} still failing", error=what, times=repeats)
                    repeats, said = 0, time.monotonic()
            else:
                if failing:
                    log.info(f"{self.name} works again")
                    failing, repeats = "", 0


class Publisher(Protocol):
    """The fan-out as the service drives it (``destinations.runner.Fanout``)."""

    def start(self) -> object: ...
    def wake(self) -> None: ...
    def stop(self, timeout: float = 30.0) -> None: ...
    def drain(self, seconds: float) -> object: ...


class SyncService:
    """Runs ``sync_tenant`` in a loop per tenant, the fan-out to destinations behind them
    (woken after each cycle), and ``push(tenant_id)`` (the two-way pusher) beside them: one
    thread per tenant, woken when an edit of the tenant is due (looked for every
    ``push_interval`` seconds), so that a tenant's pushes never wait for another's."""

    def __init__(
        self,
        hub: Hub,
        tenants: Sequence[TenantSource],
        settings: InboundSettings,
        *,
        poll_interval: float,
        idle_poll_interval: float | None = None,
        alerts_interval: float | None = None,
        fanout: Publisher | None = None,
        on_report: Callable[[CycleReport], None] | None = None,
        push: Callable[[str], object] | None = None,
        push_interval: float = 0.2,
        periodic: Sequence[tuple[str, Callable[[], object], float]] = (),
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.hub = hub
        self.tenants = tenants
        self.settings = settings
        self.poll_interval = poll_interval
        # After a quiet cycle a tenant waits this long instead (never less than the poll).
        self.idle_poll_interval = max(poll_interval, idle_poll_interval or poll_interval)
        # alerts_v2 is read at most this often: the incidents stream brings, with $expand,
        # every alert whose change reaches its incident; this stream is for the rest.
        self.alerts_interval = max(poll_interval, alerts_interval or poll_interval)
        self.max_backoff = max(poll_interval, max_backoff)
        self.on_report = on_report
        self.stopping = threading.Event()
        self._fanout = fanout
        # Each tenant's pusher runs when the dispatcher finds an edit of the tenant due.
        self._pushers = (
            {
                t.tenant_id: Background(
                    partial(push, t.tenant_id),
                    interval=None,
                    name=f"pusher-{t.name}",
                    stoppable=True,
                )
                for t in tenants
            }
            if push is not None
            else {}
        )
        self._dispatcher = (
            Background(self._dispatch, interval=push_interval, name="pusher")
            if push is not None
            else None
        )
        # Other work beside the sync, each (name, function, seconds between runs): e.g.
        # reading a two-way destination back for its users' edits. Stoppable as the pushers
        # are: a stop ends its waits (ARM's pacing, a Retry-After) at once, not after them.
        self._periodic = [
            Background(function, interval=seconds, name=name, stoppable=True)
            for name, function, seconds in periodic
        ]
        self._threads: list[threading.Thread] = []

    def wake_pusher(self) -> None:
        """Push queued edits now rather than at the pusher's next poll (the console calls
        this after queueing an edit)."""
        if self._dispatcher is not None:
            self._dispatcher.wake()

    def start(self) -> SyncService:
        for tenant in self.tenants:
            thread = threading.Thread(
                target=self._tenant_loop, args=(tenant,), name=f"sync-{tenant.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if self._fanout is not None:
            self._fanout.start()
        for job in self._jobs():
            job.start()
        # Each tenant's pusher pushes once at the start, on its own thread: what was left
        # due goes out, and it signs the tenant in for its app's permissions (``Pusher``).
        for pusher in self._pushers.values():
            pusher.wake()
        return self

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Stop every thread, waiting ``timeout`` seconds in all (not per thread), then let the
        destinations take what was committed. True when every thread has ended; False when
        one is still inside a Graph request (bounded by ``request_timeout_seconds``): it
        will neither start another call nor commit another page, yet the caller must not
        hand the workspace to another writer before this process is gone."""
        deadline = time.monotonic() + timeout
        self.stopping.set()
        jobs = self._jobs()
        for job in jobs:
            job.halt()
        left = [t.name for t in self._threads if not _joined(t, deadline)]
        left += [job.name for job in jobs if not job.join(deadline - time.monotonic())]
        if left:
            log.warning("threads still busy at the stop deadline", threads=left)
        if self._fanout is not None:
            self._fanout.stop(max(0.0, deadline - time.monotonic()))  # within the same timeout
            # What the last cycles committed; a slow destination takes the rest after a restart.
            self._fanout.drain(DRAIN_SECONDS)
        return not left

    def _jobs(self) -> list[Background]:
        dispatcher = [self._dispatcher] if self._dispatcher is not None else []
        return [*dispatcher, *self._pushers.values(), *self._periodic]

    def _dispatch(self) -> None:
        """Wake the pusher of every tenant with an edit due (one read of the outbox for all;
        a backlog larger than one read wakes every tenant's, each looking for its own).

        An empty outbox, the steady state, costs one look at its state index: the whole
        query five times a second was 40% of an idle service's CPU (10 tenants). Only the
        edits of the tenants this service syncs count: those of a tenant removed from the
        config wait in the outbox for it (re-added, it pushes them) without making every
        look a whole query."""
        synced = list(self._pushers)
        if not self.hub.edits_pending(synced):
            return
        due = self.hub.due_edits(_DISPATCH_BATCH, tenant_ids=synced)
        tenants = (
            set(self._pushers) if len(due) >= _DISPATCH_BATCH else {row.tenant_id for row in due}
        )
        for tenant_id in tenants:
            pusher = self._pushers.get(tenant_id)
            if pusher is not None:
                pusher.wake()

    def backoff(self, failures: int) -> float:
        """Seconds before a tenant is tried again after ``failures`` cycles in a row failed
        for configuration: twice the poll interval, doubling up to ``max_backoff``."""
        return min(self.poll_interval * 2.0 ** min(failures, 32), self.max_backoff)

    def _tenant_loop(self, tenant: TenantSource) -> None:
        with stop_on(self.stopping):
            try:
                self._cycles(tenant)
            except Stopped:  # between pages or Graph calls: what was committed stays whole
                log.info("tenant stopped", tenant=tenant.name)

    def _cycles(self, tenant: TenantSource) -> None:
        alerts_due = 0.0
        refused = 0  # cycles in a row that failed for configuration
        while not self.stopping.is_set():
            wait = self.poll_interval
            streams: tuple[str, ...] = STREAMS
            if time.monotonic() < alerts_due:
                streams = tuple(s for s in STREAMS if s != ALERTS)
            else:
                # Due again a little early, so a cycle that lands just short of the interval
                # does not push the read a whole poll later.
                alerts_due = time.monotonic() + self.alerts_interval - self.poll_interval / 2
            retry_in = self.backoff(refused + 1)
            try:
                report = sync_tenant(
                    self.hub,
                    tenant,
                    self.settings,
                    streams=streams,
                    retry_in=timedelta(seconds=retry_in),
                )
            except Exception:  # a bug must not kill the service silently: log and go on
                log.exception("cycle crashed", tenant=tenant.name)
            else:
                if self.on_report is not None:
                    self.on_report(report)
                if self._fanout is not None:
                    self._fanout.wake()
                if report.quiet:  # a quiet tenant is read less often; any change resets it
                    wait = self.idle_poll_interval
                if ALERTS in report.skipped:
                    alerts_due = 0.0  # left out of this cycle: read at the next one
                refused = refused + 1 if report.misconfigured else 0
                if report.misconfigured:
                    wait = retry_in
                if report.retry_at is not None:  # parked until Graph's wait has passed
                    left = (report.retry_at - datetime.now(UTC)).total_seconds()
                    wait = max(wait, left + _PARK_MARGIN)
            self.stopping.wait(wait)


def _joined(thread: threading.Thread, deadline: float) -> bool:
    thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return not thread.is_alive()
