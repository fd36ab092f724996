"""An MSSP's console while one customer's Graph hangs: a user scoped to another tenant works
as usual — the queue fills and stays fresh, an edit reaches that tenant's Defender, health,
hunting and ``/metrics`` show their tenant only — and the hung tenant shows nowhere for them.
Real emulator, real service, a socket that accepts connections and never answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from live import PASSWORD, serve

from xdrsync.config import Config, SyncConfig, TwoWayConfig
from xdrsync.console.accounts import Accounts, grants
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.workspace import Workspace


def _wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def _truth(server: EmulatorServer, tenant: str) -> dict[str, dict[str, object]]:
    """The incidents the emulator holds for this tenant (by name), by Defender id."""
    reply = httpx.get(f"{server.base_url}/_emulator/truth", params={"tenant": tenant}, timeout=30)
    reply.raise_for_status()
    return {str(i["id"]): i for i in reply.json()["value"]}


@pytest.fixture
def hung_graph() -> Iterator[str]:
    """The address of a Graph (and token endpoint) that takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_scoped_users_console_works_while_another_tenants_graph_hangs(
    tmp_path: Path, hung_graph: str
) -> None:
    with EmulatorServer(settings_for(seed=29, incidents=6, tenants=2)) as server:
        config = Config.for_emulator(
            server.base_url,
            server.emulator.settings.tenants,
            workspace_path=tmp_path / "ws",
            sync=SyncConfig(poll_interval_seconds=0.5, max_attempts=2, request_timeout_seconds=3),
            rate_limit_per_minute=6000,
        )
        sick, healthy = config.tenants
        hung = sick.model_copy(update={"graph_url": hung_graph, "authority_url": hung_graph})
        config = config.model_copy(
            update={"tenants": (hung, healthy), "two_way": TwoWayConfig(retry_seconds=0.2)}
        )
        with Workspace.open(config) as workspace:
            service, console = serve(config, workspace)
            accounts = Accounts(workspace.hub)
            scope = grants(config, [healthy.name])
            accounts.add_user("sam", PASSWORD, "responder", scope, email="sam@x.com")
            token, _ = accounts.create_token("sam", "tests")
            client = httpx.Client(
                base_url=console.base_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            try:
                truth = _truth(server, healthy.name)
                _wait_for(
                    lambda: (
                        len(client.get("/api/v1/incidents", params={"top": 100}).json()["value"])
                        == len(truth)
                    ),
                    60,
                    "the healthy tenant's queue",
                )
                listed = client.get("/api/v1/incidents", params={"top": 100}).json()["value"]
                assert {i["tenant"] for i in listed} == {healthy.name}
                target = next(i for i in listed if i["status"] == "active" and not i["mergedInto"])

                # An edit of the scoped user reaches the healthy tenant's Defender.
                reply = client.patch(
                    f"/api/v1/incidents/{target['id']}", json={"assignedTo": "sam@x.com"}
                )
                assert reply.status_code == 202, reply.text
                _wait_for(
                    lambda: (
                        _truth(server, healthy.name)[target["incidentId"]].get("assignedTo")
                        == "sam@x.com"
                    ),
                    20,
                    "the edit in Defender",
                )

                # Health, hunting and metrics: their tenant, synced; the hung one nowhere.
                health = client.get("/api/v1/health").json()
                assert [t["tenant"] for t in health["tenants"]] == [healthy.name]
                assert not health["tenants"][0]["neverSynced"]
                assert hung.tenant_id not in str(health) and hung.name not in str(health)
                rows = client.post(
                    "/api/v1/query",
                    json={"query": "SecurityIncident | summarize count() by TenantId"},
                ).json()["rows"]
                assert [r[0] for r in rows] == [healthy.tenant_id]
                metrics = client.get("/metrics").text
                assert healthy.name in metrics and f'"{hung.name}"' not in metrics
                # ...while the other tenant is still hung: nothing of it was ever read.
                assert workspace.hub.list_incidents(hung.tenant_id, limit=1) == []
            finally:
                client.close()
                console.stop()
                assert service.stop(timeout=15)
