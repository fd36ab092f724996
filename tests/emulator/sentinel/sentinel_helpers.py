"""Helpers for the Sentinel emulator tests: a bare httpx caller and request bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from xdrsync.emulator.sentinel import SentinelEmulatorServer, SentinelSettings

API_VERSION = "2025-09-01"
MONITOR = "https://monitor.azure.com"


def incident_body(**overrides: Any) -> dict[str, Any]:
    """A minimal valid PUT body; ``etag`` goes to the envelope, the rest to properties."""
    etag = overrides.pop("etag", None)
    properties = {"title": "Suspicious sign-in", "severity": "Medium", "status": "New"}
    properties.update(overrides)
    body: dict[str, Any] = {"properties": properties}
    if etag is not None:
        body["etag"] = etag
    return body


@dataclass
class Sentinel:
    """One running emulator and a plain httpx client, as ``curl`` would talk to it."""

    server: SentinelEmulatorServer
    http: httpx.Client
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> SentinelSettings:
        return self.server.settings

    @property
    def base(self) -> str:
        return self.server.base_url

    @property
    def api(self) -> str:
        return f"{self.base}{self.settings.workspace_path}/providers/Microsoft.SecurityInsights"

    def token(self, resource: str | None = None) -> str:
        resource = resource or self.base
        if resource not in self._tokens:
            reply = self.http.post(
                f"{self.base}/{self.settings.tenant_id}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.settings.client_id,
                    "client_secret": self.settings.client_secret,
                    "scope": f"{resource}/.default",
                },
            )
            assert reply.status_code == 200, reply.text
            self._tokens[resource] = reply.json()["access_token"]
        return self._tokens[resource]

    def arm(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """An ARM call; ``path`` is relative to the SecurityInsights provider (or a full URL)."""
        url = path if path.startswith("http") else f"{self.api}{path}"
        query = {} if path.startswith("http") else {"api-version": API_VERSION}
        query.update(params or {})
        headers = {"Authorization": f"Bearer {token or self.token()}"}
        return self.http.request(method, url, params=query or None, headers=headers, **kwargs)

    def put_incident(self, name: str, **overrides: Any) -> httpx.Response:
        return self.arm("PUT", f"/incidents/{name}", json=incident_body(**overrides))

    def list_all(self, path: str = "/incidents", **params: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        reply = self.arm("GET", path, params=params)
        while True:
            assert reply.status_code == 200, reply.text
            body = reply.json()
            items.extend(body["value"])
            if not body.get("nextLink"):
                return items
            reply = self.arm("GET", body["nextLink"])

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"{self.base}/_emulator{path}", **kwargs)

    def truth(self) -> dict[str, Any]:
        reply = self.control("GET", "/truth")
        assert reply.status_code == 200
        body: dict[str, Any] = reply.json()
        return body

    def ingest(
        self, stream: str, content: bytes, *, token: str | None = None, **headers: str
    ) -> httpx.Response:
        url = f"{self.base}/dataCollectionRules/{self.settings.rule_id}/streams/{stream}"
        sent = {
            "Authorization": f"Bearer {token or self.token(MONITOR)}",
            "Content-Type": "application/json",
            **headers,
        }
        return self.http.post(
            url, params={"api-version": "2023-01-01"}, content=content, headers=sent
        )
