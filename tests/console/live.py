"""A live console for the API and browser tests: two emulated Defender tenants, the sync
service running against them, and the console served on a free loopback port
(the ``live_console`` fixture in conftest.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from xdrsync.config import Config
from xdrsync.console.accounts import Accounts
from xdrsync.console.server import console_server
from xdrsync.hub import Hub
from xdrsync.serving import ServerThread
from xdrsync.sync.engine import SyncService
from xdrsync.workspace import Workspace, inbound_settings

PASSWORD = "correct horse battery staple"


def serve(config: Config, workspace: Workspace) -> tuple[SyncService, ServerThread]:
    """The sync service started on ``workspace`` (quick polls and pushes), and the console
    served beside it on a free loopback port; the caller stops both."""
    service = SyncService(
        workspace.hub,
        workspace.sources(),
        inbound_settings(config),
        poll_interval=0.5,
        fanout=workspace.fanout(),
        push=workspace.pusher().push_due,
        push_interval=0.2,
    ).start()
    console = console_server(
        config, workspace.hub, workspace.logs, wake_pusher=service.wake_pusher, port=0
    ).start()
    return service, console


@dataclass
class LiveConsole:
    url: str
    emulator_url: str
    config: Config
    workspace: Workspace
    service: SyncService
    # role → (user name, password); "scoped" is a responder who sees the second tenant only
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def hub(self) -> Hub:
        return self.workspace.hub

    @property
    def tenants(self) -> list[str]:
        return [t.name for t in self.config.tenants]

    def client(self, role: str) -> httpx.Client:
        """An httpx client signed in as ``role`` (session cookie, CSRF header set)."""
        name, password = self.users[role]
        client = httpx.Client(base_url=self.url, timeout=30)
        self.clients.append(client)  # closed with the fixture
        reply = client.post("/login", data={"username": name, "password": password})
        assert reply.status_code == 303, reply.text
        me = client.get("/api/v1/me").json()
        client.headers["X-CSRF-Token"] = me["csrfToken"]
        return client

    def token(self, role: str) -> str:
        token, _ = Accounts(self.hub).create_token(self.users[role][0], "tests")
        return token

    def truth(self, tenant: str) -> dict[str, dict[str, Any]]:
        """The incidents the emulator holds for this tenant (by name), by Defender id."""
        reply = httpx.get(
            f"{self.emulator_url}/_emulator/truth", params={"tenant": tenant}, timeout=30
        )
        reply.raise_for_status()
        return {str(i["id"]): i for i in reply.json()["value"]}

    def portal(self, tenant: str, incident_id: str, **changes: Any) -> None:
        """An analyst's edit in the Defender portal of this tenant (by name)."""
        reply = httpx.post(
            f"{self.emulator_url}/_emulator/incidents/{incident_id}",
            params={"tenant": tenant},
            json=changes,
            timeout=30,
        )
        reply.raise_for_status()

    def wait_for(self, condition: Any, timeout: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = condition()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or condition}")
            time.sleep(0.2)
