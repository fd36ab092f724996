"""A console over fixed data: a workspace whose hub holds incidents from consoledata (indexed),
served on a free loopback port, with no emulator and no sync service. For tests that need the
pages or the API on known records (``seeded_console``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from consoledata import TENANT_A, TENANT_B, index

from xdrsync.config import Config, TwoWayConfig
from xdrsync.console.accounts import Accounts
from xdrsync.console.server import console_server
from xdrsync.hub import Hub
from xdrsync.workspace import Workspace

PASSWORD = "correct horse battery staple"
#: role → (user name, role, address). The responder's address is spelled as Entra ID may
#: spell it, not as Defender keeps owners.
USERS = {
    "admin": ("ada", "admin", "ada@contoso.com"),
    "responder": ("rui", "responder", "Rui@Contoso.com"),
    "reader": ("rita", "reader", "rita@contoso.com"),
}


@dataclass
class SeededConsole:
    url: str
    workspace: Workspace
    # role → (user name, password), as the browser helpers' ``login`` wants it
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def hub(self) -> Hub:
        return self.workspace.hub

    def client(self, role: str) -> httpx.Client:
        """An httpx client with a bearer token of ``role`` (closed with the console)."""
        token, _ = Accounts(self.hub).create_token(self.users[role][0], "tests")
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.clients.append(client)
        return client

    def index(self) -> int:
        """Bring the queue's index up to the hub (as the sync service's fan-out would)."""
        return index(self.hub)


def listed_ids(client: httpx.Client, **params: object) -> set[str]:
    """The ids the queue lists with ``params`` (one page of up to 100)."""
    reply = client.get("/api/v1/incidents", params={"top": 100, **params})
    assert reply.status_code == 200, reply.text
    return {item["id"] for item in reply.json()["value"]}


@contextmanager
def seeded_console(
    folder: Path,
    populate: Callable[[Hub], None],
    more_tenants: Sequence[tuple[str, str]] = (),
) -> Iterator[SeededConsole]:
    """The console over a workspace in ``folder`` that ``populate`` filled (then indexed);
    tenants ``contoso`` (TENANT_A) and ``fabrikam`` (TENANT_B), then ``more_tenants`` (name,
    tenant id) in the config."""
    extra = [(name, tenant_id, f"c-{name}", "x") for name, tenant_id in more_tenants]
    config = Config.for_emulator(
        "http://127.0.0.1:9",  # never called: nothing syncs or pushes
        [("contoso", TENANT_A, "c-a", "x"), ("fabrikam", TENANT_B, "c-b", "x"), *extra],
        workspace_path=folder,
    ).model_copy(update={"two_way": TwoWayConfig(enabled=True)})
    workspace = Workspace.open(config)
    try:
        populate(workspace.hub)
        index(workspace.hub)
        accounts = Accounts(workspace.hub)
        users: dict[str, tuple[str, str]] = {}
        for role, (name, kind, address) in USERS.items():
            accounts.add_user(name, PASSWORD, kind, email=address)  # type: ignore[arg-type]
            users[role] = (name, PASSWORD)
        server = console_server(config, workspace.hub, workspace.logs, port=0).start()
        seeded = SeededConsole(server.base_url, workspace, users)
        try:
            yield seeded
        finally:
            for client in seeded.clients:
                client.close()
            server.stop()
    finally:
        workspace.close()


__all__ = ["PASSWORD", "USERS", "SeededConsole", "seeded_console"]
