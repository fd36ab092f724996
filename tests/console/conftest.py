"""Fixtures of the console tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from browser import chromium, chromium_available
from live import PASSWORD, LiveConsole, serve
from playwright.sync_api import Browser

from xdrsync.config import Config, SyncConfig, TwoWayConfig
from xdrsync.console.accounts import Accounts, grants
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.workspace import Workspace


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, one per test module (its tests open their own contexts). `make test`
    installs it; only a run outside it (no CI) may skip for want of it."""
    if not chromium_available() and not os.environ.get("CI"):
        pytest.skip("needs /usr/bin/chromium (make test installs it)")
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def live_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConsole]:
    """Two emulated tenants of 30 incidents, synced by a running service, and the console
    on a free port with four users: admin, responder, reader, and a responder scoped to the
    second tenant ("scoped")."""
    folder = tmp_path_factory.mktemp("console")
    server = EmulatorServer(settings_for(seed=5, incidents=30, tenants=2)).start()
    config = Config.for_emulator(
        server.base_url,
        server.emulator.settings.tenants,
        workspace_path=folder / "ws",
        sync=SyncConfig(poll_interval_seconds=0.5, lookback_seconds=60),
        rate_limit_per_minute=6000,
    ).model_copy(update={"two_way": TwoWayConfig(retry_seconds=0.1)})
    workspace = Workspace.open(config)
    service, console = serve(config, workspace)
    accounts = Accounts(workspace.hub)
    users = {
        "admin": ("ada", PASSWORD),
        "responder": ("rui", PASSWORD),
        "reader": ("rita", PASSWORD),
        "scoped": ("sam", PASSWORD),
    }
    for role, (name, password) in users.items():
        if role == "scoped":
            scope = grants(config, [config.tenants[1].name])
            accounts.add_user(name, password, "responder", scope)
        else:
            accounts.add_user(name, password, role, email=f"{name}@contoso.com")  # type: ignore[arg-type]
    live = LiveConsole(console.base_url, server.base_url, config, workspace, service, users)
    live.wait_for(lambda: len(live.hub.list_incidents(limit=100)) >= 50, 120, "the first sync")
    # The log tables (hunting) and the queue's index (the incident list) follow on their own
    # threads: tests that read them must not run before they have caught up with that sync.
    synced = len(live.hub.list_incidents(limit=100))
    live.wait_for(
        lambda: workspace.logs.query("SecurityIncident | count").rows[0][0] >= synced,
        120,
        "the log tables",
    )
    admin = live.client("admin")
    live.wait_for(
        lambda: len(admin.get("/api/v1/incidents", params={"top": 200}).json()["value"]) >= synced,
        120,
        "the queue's index",
    )
    try:
        yield live
    finally:
        for client in live.clients:
            client.close()
        console.stop()
        service.stop()
        workspace.close()
        server.stop()
