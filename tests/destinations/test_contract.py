"""The destination contract (contract.py), run against every destination adapter: the
workspace log tables, and Microsoft Sentinel (on the Sentinel emulator) for all tenants and for
one of two."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from contract import CHECKS, Harness, Outage
from workload import TENANT_A, TENANT_NAMES, commit_workload

from xdrsync.config import Config, parse_config
from xdrsync.destinations.base import Destination
from xdrsync.destinations.runner import DestinationRunner, Fanout
from xdrsync.destinations.sentinel.destination import SentinelDestination
from xdrsync.destinations.sentinel.mapping import incident_name
from xdrsync.destinations.tables import LogTables
from xdrsync.emulator.sentinel import SentinelEmulatorServer, settings_for
from xdrsync.hub import Hub
from xdrsync.tables.logstore import LogStore, _storage


class TablesHarness:
    exactly_once_rows = True
    tenants = None

    def __init__(self, hub: Hub, path: Path) -> None:
        self.hub = hub
        self.store = LogStore(path / "logs.duckdb")

    def destination(self) -> Destination:
        return LogTables(self.hub, self.store)

    def incidents(self) -> dict[tuple[str, str], dict[str, str]]:
        result = self.store.query(
            "SecurityIncident | summarize arg_max(TimeGenerated, *) by TenantId, "
            "ProviderIncidentId | project TenantId, ProviderIncidentId, Title, Status"
        )
        return {(r[0], r[1]): {"title": r[2], "status": r[3]} for r in result.rows}

    def alert_seqs(self) -> list[int]:
        rows = self.store.sql(f"SELECT _Seq FROM {_storage('SecurityAlert')}")
        return [int(r[0]) for r in rows]


class SentinelHarness:
    exactly_once_rows = False  # at least once: rows carry XdrSeq to dedupe by

    def __init__(self, hub: Hub, server: SentinelEmulatorServer, tenants: tuple[str, ...]):
        self.hub = hub
        self.http = httpx.Client(base_url=server.base_url, timeout=10)
        entry = tomllib.loads(self.http.get("/_emulator/config").text)["destinations"][0]
        entry["tenants"] = [TENANT_NAMES[t] for t in tenants]
        entry["reads_per_minute"] = entry["writes_per_minute"] = (
            100_000  # pacing is not tested here
        )
        self.tenants = frozenset(tenants) if tenants else None
        self.config: Config = parse_config(
            {
                "tenants": [
                    {"name": name, "tenant_id": tenant, "client_id": tenant, "client_secret": "x"}
                    for tenant, name in TENANT_NAMES.items()
                ],
                "destinations": [entry],
            }
        )
        self.opened: list[SentinelDestination] = []
        self.names = {
            incident_name(tenant, str(n)): (tenant, str(n))
            for tenant in TENANT_NAMES
            for n in range(1, 40)
        }

    def destination(self) -> Destination:
        made = SentinelDestination.connect(self.config.destinations[0], self.config, self.hub)
        self.opened.append(made)
        return made

    def _truth(self) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get("/_emulator/truth").json()
        return body

    def incidents(self) -> dict[tuple[str, str], dict[str, str]]:
        held: dict[tuple[str, str], dict[str, str]] = {}
        for incident in self._truth()["incidents"]:
            key = self.names[incident["name"]]
            assert key not in held, f"incident {key} held twice"
            props = incident["properties"]
            held[key] = {"title": props["title"], "status": props["status"]}
        return held

    def alert_seqs(self) -> list[int]:
        return [int(row["XdrSeq"]) for row in self._truth()["logs"]["Custom-XdrSecurityAlert"]]

    def close(self) -> None:
        for made in self.opened:
            made.close()
        self.http.close()


@pytest.fixture(params=["tables", "sentinel", "sentinel-one-tenant"])
def harness(request: pytest.FixtureRequest, hub: Hub, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "tables":
        yield TablesHarness(hub, tmp_path)
        return
    server = SentinelEmulatorServer(settings_for()).start()
    made = SentinelHarness(hub, server, (TENANT_A,) if request.param.endswith("tenant") else ())
    try:
        yield made
    finally:
        made.close()
        server.stop()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_destination_contract(
    harness: Harness, check: Callable[[Harness, Hub], None], hub: Hub
) -> None:
    check(harness, hub)


def test_one_tenant_into_two_workspaces_each_at_its_own_pace(hub: Hub) -> None:
    """Two Sentinel workspaces (each its own emulator, app and cursor) take the same tenant;
    one being down holds back only itself, and both end with every incident once."""
    servers = [SentinelEmulatorServer(settings_for(seed=seed)).start() for seed in (1, 2)]
    harnesses = [SentinelHarness(hub, server, (TENANT_A,)) for server in servers]
    try:
        expected = commit_workload(hub)
        entries = [
            h.config.destinations[0].model_copy(update={"name": f"soc-{n}"})
            for n, h in enumerate(harnesses)
        ]
        flaky = Outage(SentinelDestination.connect(entries[1], harnesses[1].config, hub))
        runners = [
            DestinationRunner(
                hub, SentinelDestination.connect(entries[0], harnesses[0].config, hub)
            ),
            DestinationRunner(hub, flaky, retry_seconds=0.0),
        ]
        flaky.down = True
        Fanout(runners).drain(30)
        assert hub.get_cursor("soc-0") == hub.max_seq() and hub.get_cursor("soc-1") == 0
        flaky.down = False
        Fanout(runners).publish()
        wanted = {k: v for k, v in expected.items() if k[0] == TENANT_A}
        assert [h.incidents() for h in harnesses] == [wanted, wanted]
        for runner in runners:
            runner.destination.close()
    finally:
        for h, server in zip(harnesses, servers, strict=True):
            h.close()
            server.stop()
