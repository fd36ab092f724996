"""A configured workspace, opened: the hub, the log store and a Graph source per tenant.

The workspace holds every incident, alert and comment read from Defender: it is private to
the account running xdrsync. Its folder is 0700 and its files 0600, tightened on every open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING

import structlog

from xdrsync.config import Config
from xdrsync.destinations.runner import DestinationRunner, Fanout, Offload
from xdrsync.destinations.tables import LogTables
from xdrsync.destinations.worker import TablesWorker, WorkerSettings
from xdrsync.graph.security import DefenderApi
from xdrsync.hub import Hub, configured_url
from xdrsync.hub.database import in_memory
from xdrsync.layout import LOG_FILE, QUEUE_DESTINATION, TABLES_DESTINATION, make_private
from xdrsync.logs import configured
from xdrsync.sync.engine import TenantSource
from xdrsync.sync.inbound import InboundSettings
from xdrsync.tables.logstore import LogStore
from xdrsync.twoway.pusher import Pusher, PushTarget

if TYPE_CHECKING:
    from xdrsync.console.index import QueueIndex

log = structlog.get_logger(__name__)


def inbound_settings(config: Config) -> InboundSettings:
    from datetime import timedelta

    return InboundSettings(
        lookback=timedelta(seconds=config.sync.lookback_seconds),
        fresh_lookback=timedelta(seconds=config.sync.fresh_lookback_seconds),
        sweep_every=timedelta(seconds=config.sync.sweep_interval_seconds),
        reconcile=timedelta(days=days) if (days := config.sync.reconcile_days) else None,
        reconcile_every=timedelta(seconds=config.sync.reconcile_interval_seconds),
        initial_backfill=timedelta(days=config.sync.initial_backfill_days),
    )


@dataclass
class Workspace:
    config: Config
    hub: Hub
    logs: LogStore
    _apis: list[DefenderApi] = field(default_factory=list)
    _fanout: Fanout | None = None

    @classmethod
    def open(cls, config: Config) -> Workspace:
        path = config.workspace.path
        changed = make_private(path)
        if changed:
            log.info(
                "workspace permissions tightened (private to this account)",
                workspace=str(path),
                changed=", ".join(changed),
            )
        return cls(
            config=config,
            hub=Hub.open(configured_url(config.workspace)),
            logs=LogStore(path / LOG_FILE, limits=config.query),
        )

    def sources(self) -> list[TenantSource]:
        """One Graph source per configured tenant (created once, closed with the workspace)."""
        if not self._apis:
            self._apis = [DefenderApi.connect(t, self.config.sync) for t in self.config.tenants]
        return [
            TenantSource(name=t.name, tenant_id=t.tenant_id, source=api)
            for t, api in zip(self.config.tenants, self._apis, strict=True)
        ]

    def fanout(self) -> Fanout:
        """Every destination of the workspace — its log tables first, the console's queue
        index, then the configured ones — each with its runner (created once, closed with the
        workspace)."""
        if self._fanout is None:
            from xdrsync.console.index import QueueIndex
            from xdrsync.destinations.base import Destination
            from xdrsync.destinations.factory import build_destination

            index = QueueIndex(self.hub)
            destinations: list[Destination] = [
                LogTables(self.hub, self.logs),
                index,  # the console's queue index, right after the tables
                *(build_destination(d, self.config, self.hub) for d in self.config.destinations),
            ]
            self._fanout = Fanout(
                [DestinationRunner(self.hub, d, batch_size=d.batch_size) for d in destinations],
                offload=self._tables_offload(index),
            )
        return self._fanout

    def _tables_offload(self, index: QueueIndex) -> Offload | None:
        """A large backlog of the log tables goes to a worker process (``destinations.worker``),
        unless the hub lives in this process's memory, where no other process can read it.
        The worker keeps the console's queue ``index`` meanwhile (see ``Offload``)."""
        url = configured_url(self.config.workspace)
        if in_memory(url):
            return None
        level, json, stream = configured()
        settings = WorkerSettings(
            hub_url=url,
            log_path=str(self.logs.path),
            query=self.config.query.model_dump(mode="json"),
            batch_size=LogTables.backlog_batch_size,
            log_level=level,
            log_json=json,
            queue_index=True,
        )

        def spawn() -> TablesWorker:
            listed = tuple(index.listed_elsewhere())
            return TablesWorker(replace(settings, listed_elsewhere=listed), log_stream=stream)

        return Offload(
            TABLES_DESTINATION,
            spawn,
            companion=QUEUE_DESTINATION,
            handed_back=index.remember_listed,
        )

    def readbacks(self) -> list[tuple[str, Callable[[], object], float]]:
        """For each destination with ``two_way = true``: (name, poll, seconds) — reading it
        back for its users' edits, which go to Defender through the outbox."""
        if not any(entry.two_way for entry in self.config.destinations):
            return []  # and the Sentinel client is not loaded for nothing
        from xdrsync.destinations.sentinel.destination import SentinelDestination
        from xdrsync.destinations.sentinel.readback import SentinelReadback

        jobs: list[tuple[str, Callable[[], object], float]] = []
        for runner in self.fanout().runners:
            destination = runner.destination
            if isinstance(destination, SentinelDestination) and destination.entry.two_way:
                reader = SentinelReadback(destination, self.config, self.hub)
                jobs.append(
                    (
                        f"readback-{destination.name}",
                        reader.poll,
                        destination.entry.readback_interval_seconds,
                    )
                )
        return jobs

    def pusher(self, *, sign_in: bool = True) -> Pusher:
        """The two-way pusher over every configured tenant. With ``sign_in``, the pusher reads
        each tenant's token for the permissions its app was granted at its first push of the
        tenant (``Pusher._sign_in``), not here: building it signs no tenant in, so that one
        whose sign-in hangs holds up neither the others nor the service's start. What was
        found is kept in the hub, where ``update`` and the pusher, at each push, read it to
        refuse edits up front (a tenant whose token names none is left to what was recorded
        before, or to Graph)."""
        targets = []
        for tenant, source in zip(self.config.tenants, self.sources(), strict=True):
            api = source.source
            assert isinstance(api, DefenderApi)
            enabled = self.config.writes_to(tenant)
            targets.append(
                PushTarget(
                    name=tenant.name,
                    tenant_id=tenant.tenant_id,
                    api=api,
                    writes=enabled,
                    app_id=tenant.client_id,
                    sign_in_again=api.client.tokens.invalidate,
                    granted_roles=api.granted_roles if enabled and sign_in else None,
                )
            )
        two_way = self.config.two_way
        return Pusher(
            self.hub,
            targets,
            two_way.policy,
            retry_seconds=two_way.retry_seconds,
            max_retry_seconds=two_way.max_retry_seconds,
        )

    def close(self) -> None:
        if self._fanout is not None:
            self._fanout.close()
            self._fanout = None
        for api in self._apis:
            api.close()
        self._apis.clear()
        self.hub.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
