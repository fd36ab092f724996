"""The sync service: every tenant on its own thread, the destinations fed behind them.

A tenant's failure (bad credentials, throttling, an outage) is recorded on its streams and
retried next cycle; it never stalls another tenant, and it never stops the fan-out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from xdrsync.errors import ConfigError, ThrottledError, XdrSyncError
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
) -> CycleReport:
    """The tenant's ``streams`` (both by default), one after the other; each failure is kept,
    not raised."""
    report = CycleReport(tenant=tenant.name, started=datetime.now(UTC))
    for stream in streams:
        began = time.monotonic()
        try:
            done = sync_stream(
                hub,
                tenant.source,
                tenant_id=tenant.tenant_id,
                stream=stream,
                settings=settings,
                on_window=on_window,
            )
            report.streams.append(done)
            log.info(
                "stream synced",
                tenant=tenant.name,
                stream=stream,
                read=done.records,
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
            report.errors[stream] = message
            if isinstance(failure, XdrSyncError):
                log.warning("stream failed", tenant=tenant.name, stream=stream, error=message)
            else:  # a bug or a hostile input we did not foresee: keep the traceback
                log.exception("stream crashed", tenant=tenant.name, stream=stream, error=message)
            try:
                hub.record_stream_error(tenant.tenant_id, stream, message, retry_at=retry_at)
            except Exception:
                log.exception("could not record the stream's error", tenant=tenant.name)
            if isinstance(failure, ConfigError):
                break  # the other stream would fail the same way
    return report


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
    """Runs ``publish`` on its own thread when woken and every ``interval`` seconds: the
    fan-out, so the log store fills while tenants sync (a backfill's pages are in the tables
    as they land), and the two-way pusher, so an edit leaves within ``interval``.

    ``stop()`` ends the thread without a last run: the caller drains with ``publish()`` on
    its own thread, where a failure is its to report.
    """

    def __init__(
        self, publish: Callable[[], object], *, interval: float, name: str = "fanout"
    ) -> None:
        self.publish = publish
        self.interval = interval
        self.name = name
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.publish()
            except Exception:  # logged and retried next time; the sync goes on
                log.exception(f"{self.name} failed")


class Publisher(Protocol):
    """The fan-out as the service drives it (``destinations.runner.Fanout``)."""

    def start(self) -> object: ...
    def wake(self) -> None: ...
    def stop(self, timeout: float = 30.0) -> None: ...
    def drain(self, seconds: float) -> object: ...


class SyncService:
    """Runs ``sync_tenant`` in a loop per tenant, the fan-out to destinations behind them
    (woken after each cycle), and ``push`` (the two-way pusher) every ``push_interval``
    seconds beside them."""

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
        push: Callable[[], object] | None = None,
        push_interval: float = 0.2,
        periodic: Sequence[tuple[str, Callable[[], object], float]] = (),
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
        self.on_report = on_report
        self.stopping = threading.Event()
        self._fanout = fanout
        self._pusher = (
            Background(push, interval=push_interval, name="pusher") if push is not None else None
        )
        # Other work beside the sync, each (name, function, seconds between runs): e.g.
        # reading a two-way destination back for its users' edits.
        self._periodic = [
            Background(function, interval=seconds, name=name)
            for name, function, seconds in periodic
        ]
        self._threads: list[threading.Thread] = []

    def wake_pusher(self) -> None:
        """Push queued edits now rather than at the pusher's next poll (the console calls
        this after queueing an edit)."""
        if self._pusher is not None:
            self._pusher.wake()

    def start(self) -> SyncService:
        for tenant in self.tenants:
            thread = threading.Thread(
                target=self._tenant_loop, args=(tenant,), name=f"sync-{tenant.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if self._fanout is not None:
            self._fanout.start()
        if self._pusher is not None:
            self._pusher.start()
        for job in self._periodic:
            job.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        for job in self._periodic:
            job.stop(timeout)
        if self._pusher is not None:
            self._pusher.stop(timeout)
        for thread in self._threads:
            thread.join(timeout=timeout)
        if self._fanout is not None:
            self._fanout.stop(timeout)
            # What the last cycles committed; a slow destination takes the rest after a restart.
            self._fanout.drain(DRAIN_SECONDS)

    def _tenant_loop(self, tenant: TenantSource) -> None:
        alerts_due = 0.0
        while not self.stopping.is_set():
            wait = self.poll_interval
            streams: tuple[str, ...] = STREAMS
            if time.monotonic() < alerts_due:
                streams = tuple(s for s in STREAMS if s != ALERTS)
            else:
                # Due again a little early, so a cycle that lands just short of the interval
                # does not push the read a whole poll later.
                alerts_due = time.monotonic() + self.alerts_interval - self.poll_interval / 2
            try:
                report = sync_tenant(self.hub, tenant, self.settings, streams=streams)
            except Exception:  # a bug must not kill the service silently: log and go on
                log.exception("cycle crashed", tenant=tenant.name)
            else:
                if self.on_report is not None:
                    self.on_report(report)
                if self._fanout is not None:
                    self._fanout.wake()
                if report.quiet:  # a quiet tenant is read less often; any change resets it
                    wait = self.idle_poll_interval
            self.stopping.wait(wait)
