"""Fakes for the Graph client tests: a fake clock, canned Graph answers, a recorder."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
from pydantic import SecretStr

from xdrsync.config import TenantConfig
from xdrsync.graph.client import GraphClient

SECRET = "s3cr3t~Value-That-Must-Never-Leak"
TENANT_ID = "7f1b3c2a-1111-4c8e-9d7e-000000000001"
CLIENT_ID = "0a5d2e4f-2222-4b6c-8e9f-000000000002"
GRAPH = "https://graph.microsoft.com"
EPOCH = datetime(2025, 2, 7, 19, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """Monotonic seconds that only move when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)


class StaticTokens:
    """Sign-in stand-in: hands out ``token-N``; ``invalidate`` moves to the next N."""

    def __init__(self) -> None:
        self.generation = 1
        self.invalidations = 0

    def token(self) -> str:
        return f"token-{self.generation}"

    def invalidate(self) -> None:
        self.invalidations += 1
        self.generation += 1


@dataclass
class Recorder:
    """Wraps a handler, keeps every request, and stamps a ``Date`` header like a server."""

    handler: Handler
    clock: FakeClock
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.handler(request)
        if "date" not in response.headers:
            response.headers["Date"] = format_datetime(self.clock.wall(), usegmt=True)
        return response

    @property
    def urls(self) -> list[str]:
        return [str(request.url) for request in self.requests]


def graph_json(payload: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **headers},
    )


def graph_error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return graph_json({"error": {"code": code, "message": message}}, status, **headers)


def make_tenant(**overrides: Any) -> TenantConfig:
    values: dict[str, Any] = {
        "name": "contoso",
        "tenant_id": TENANT_ID,
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(SECRET),
        "graph_url": GRAPH,
    }
    values.update(overrides)
    return TenantConfig(**values)


@dataclass
class Harness:
    """A GraphClient wired to a recorder, a fake clock and static tokens."""

    client: GraphClient
    recorder: Recorder
    clock: FakeClock
    tokens: StaticTokens
