"""What the two-way tests against the emulator share: one emulator, a workspace synced from
it and its pusher, driven one cycle at a time as ``sync --once`` runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from xdrsync.config import Config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.hub import Hub
from xdrsync.sync.engine import sync_tenant
from xdrsync.twoway.edits import EditRequest
from xdrsync.twoway.pusher import Pusher
from xdrsync.twoway.submit import Tenant, submit
from xdrsync.workspace import Workspace, inbound_settings


@dataclass
class Env:
    server: EmulatorServer
    config: Config
    workspace: Workspace
    pusher: Pusher

    @property
    def hub(self) -> Hub:
        return self.workspace.hub

    @property
    def tenant(self) -> Tenant:
        t = self.config.tenants[0]
        return Tenant(t.name, t.tenant_id, self.config.writes_to(t))

    def cycle(self) -> None:
        """One full cycle as ``sync --once`` runs it: push, inbound, log tables."""
        self.pusher.push_due()
        settings = inbound_settings(self.config)
        for source in self.workspace.sources():
            report = sync_tenant(self.hub, source, settings)
            assert report.ok, report.errors
        self.workspace.fanout().publish()

    def edit(self, incident_id: str, author: str = "alice@contoso.com", **fields: Any) -> list[int]:
        request = EditRequest(**fields)
        return submit(
            self.hub, self.tenant, "incident", incident_id, request, author=author, origin="test"
        )

    def truth(self, incident_id: str) -> dict[str, Any]:
        """The incident as Defender holds it now."""
        reply = httpx.get(f"{self.server.base_url}/_emulator/truth", timeout=30)
        return next(i for i in reply.json()["value"] if i["id"] == incident_id)

    def open_incident(self) -> str:
        """An incident that is open and not merged."""
        for summary in self.hub.list_incidents(limit=200):
            if summary.status in ("active", "inProgress") and not summary.merged_into:
                return summary.id
        raise AssertionError("no open incident")

    def close(self) -> None:
        self.workspace.close()
        self.server.stop()
