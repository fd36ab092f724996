"""The destination contract (contract.py), run against every destination adapter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from contract import CHECKS, Harness

from xdrsync.destinations.base import Destination
from xdrsync.destinations.tables import LogTables
from xdrsync.hub import Hub, default_url
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


HARNESSES: dict[str, Callable[[Hub, Path], Harness]] = {"tables": TablesHarness}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    opened = Hub.open(default_url(tmp_path))
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("kind", sorted(HARNESSES))
def test_destination_contract(
    kind: str, check: Callable[[Harness, Hub], None], hub: Hub, tmp_path: Path
) -> None:
    check(HARNESSES[kind](hub, tmp_path), hub)
