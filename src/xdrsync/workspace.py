"""A configured workspace, opened: the hub, the log store and a Graph source per tenant."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType

from xdrsync.config import Config
from xdrsync.graph import DefenderApi
from xdrsync.hub import Hub, default_url
from xdrsync.sync.engine import TenantSource
from xdrsync.sync.fanout import LogPublisher
from xdrsync.sync.inbound import InboundSettings
from xdrsync.tables.logstore import LogStore

LOG_FILE = "logs.duckdb"


def inbound_settings(config: Config) -> InboundSettings:
    from datetime import timedelta

    return InboundSettings(
        lookback=timedelta(seconds=config.sync.lookback_seconds),
        initial_backfill=timedelta(days=config.sync.initial_backfill_days),
    )


@dataclass
class Workspace:
    config: Config
    hub: Hub
    logs: LogStore
    _apis: list[DefenderApi] = field(default_factory=list)

    @classmethod
    def open(cls, config: Config) -> Workspace:
        path = config.workspace.path
        path.mkdir(parents=True, exist_ok=True)
        url = (
            config.workspace.database_url.get_secret_value()
            if config.workspace.database_url is not None
            else default_url(path)
        )
        return cls(config=config, hub=Hub.open(url), logs=LogStore(path / LOG_FILE))

    def sources(self) -> list[TenantSource]:
        """One Graph source per configured tenant (created once, closed with the workspace)."""
        if not self._apis:
            self._apis = [DefenderApi.connect(t, self.config.sync) for t in self.config.tenants]
        return [
            TenantSource(name=t.name, tenant_id=t.tenant_id, source=api)
            for t, api in zip(self.config.tenants, self._apis, strict=True)
        ]

    def publisher(self) -> LogPublisher:
        return LogPublisher(self.hub, self.logs)

    def close(self) -> None:
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
