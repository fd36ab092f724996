"""Fixtures: a running emulator on 127.0.0.1 and a tiny Graph client for its tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.emulator.tenants import EmulatorSettings, TenantSpec


@dataclass
class Caller:
    """A bare Graph caller for one tenant: plain httpx, as ``curl`` would talk to it."""

    server: EmulatorServer
    tenant: TenantSpec
    http: httpx.Client

    def token(self) -> str:
        reply = self.http.post(
            f"{self.server.base_url}/{self.tenant.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.tenant.client_id,
                "client_secret": self.tenant.client_secret,
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = path if path.startswith("http") else f"{self.server.base_url}/v1.0/security{path}"
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return self.http.request(method, url, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def all_pages(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        token = self.token()
        url: str | None = f"{self.server.base_url}/v1.0/security{path}"
        items: list[dict[str, Any]] = []
        params = kwargs.pop("params", None)
        while url:
            reply = self.http.get(url, headers={"Authorization": f"Bearer {token}"}, params=params)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            items.extend(body["value"])
            url, params = body.get("@odata.nextLink"), None
        return items

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"{self.server.base_url}/_emulator{path}", **kwargs)


def start(settings: EmulatorSettings) -> EmulatorServer:
    return EmulatorServer(settings).start()


@pytest.fixture
def run_emulator() -> Iterator[Any]:
    """Start emulators with given settings; all are stopped at the end of the test."""
    servers: list[EmulatorServer] = []
    clients: list[httpx.Client] = []

    def _run(settings: EmulatorSettings | None = None, **kwargs: Any) -> list[Caller]:
        server = start(settings or settings_for(**kwargs))
        servers.append(server)
        http = httpx.Client(timeout=30)
        clients.append(http)
        return [Caller(server, t, http) for t in server.emulator.settings.tenants]

    yield _run
    for http in clients:
        http.close()
    for server in servers:
        server.stop()
