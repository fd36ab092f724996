"""End-to-end fixtures: a running emulator and a workspace configured for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from xdrsync.config import Config, SyncConfig
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.tenants import EmulatorSettings
from xdrsync.hub import Hub
from xdrsync.sync import prefetch
from xdrsync.sync.engine import CycleReport, sync_tenant
from xdrsync.workspace import Workspace, inbound_settings


@dataclass
class Env:
    server: EmulatorServer
    config: Config
    workspace: Workspace

    @property
    def hub(self) -> Hub:
        return self.workspace.hub

    def cycle(self) -> list[CycleReport]:
        """One inbound cycle for every tenant, then the log tables."""
        settings = inbound_settings(self.config)
        reports = [sync_tenant(self.hub, s, settings) for s in self.workspace.sources()]
        self.workspace.fanout().publish()
        return reports

    def truth(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        params = {"tenant": tenant_id} if tenant_id else {}
        reply = httpx.get(f"{self.server.base_url}/_emulator/truth", params=params, timeout=60)
        reply.raise_for_status()
        return list(reply.json()["value"])

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.server.base_url}/_emulator{path}", timeout=30, **kwargs
        )


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Any]:
    made: list[Env] = []

    def _make(
        settings: EmulatorSettings,
        *,
        sync: SyncConfig | None = None,
        rate_limit_per_minute: int = 6000,
        secrets: dict[str, str] | None = None,
    ) -> Env:
        server = EmulatorServer(settings).start()
        tenants = [
            (t.name, t.tenant_id, t.client_id, (secrets or {}).get(t.name, t.client_secret))
            for t in settings.tenants
        ]
        config = Config.for_emulator(
            server.base_url,
            tenants,
            workspace_path=tmp_path / f"ws{len(made)}",
            sync=sync or SyncConfig(poll_interval_seconds=0.5, lookback_seconds=60, max_attempts=8),
            rate_limit_per_minute=rate_limit_per_minute,
        )
        env = Env(server, config, Workspace.open(config))
        made.append(env)
        return env

    yield _make
    for env in made:
        env.workspace.close()
        env.server.stop()


@pytest.fixture
def read_aheads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Grows by one for each read-ahead thread `prefetched` starts."""
    started: list[int] = []
    ahead = prefetch._Ahead

    def counted(*args: Any) -> Any:
        started.append(1)
        return ahead(*args)

    monkeypatch.setattr(prefetch, "_Ahead", counted)
    return started
