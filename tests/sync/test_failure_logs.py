"""One warning per Graph failure: during an outage the client said "graph call failed" and the
engine then "stream failed" with the same text, every cycle. A stream's failure is said by the
engine alone; every other caller of the client (the pusher, `check`, a backfill) still gets
the client's warning."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from xdrsync.config import SyncConfig, TenantConfig
from xdrsync.errors import RetriableError
from xdrsync.graph.client import GraphClient, failures_reported
from xdrsync.graph.security import DefenderApi
from xdrsync.hub import Hub
from xdrsync.sync.engine import TenantSource, sync_tenant
from xdrsync.sync.inbound import InboundSettings
from xdrsync.sync.prefetch import prefetched

TENANT_ID = "7f1b3c2a-1111-4c8e-9d7e-000000000001"
GRAPH = "https://graph.microsoft.com"


class _Tokens:
    def token(self) -> str:
        return "token"

    def invalidate(self) -> None:
        return None


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _unavailable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"error": {"code": "ServiceUnavailable", "message": "down"}})


@pytest.fixture
def client_for() -> Iterator[Callable[[Callable[[httpx.Request], httpx.Response]], GraphClient]]:
    made: list[GraphClient] = []

    def build(handler: Callable[[httpx.Request], httpx.Response]) -> GraphClient:
        tenant = TenantConfig(
            name="contoso",
            tenant_id=TENANT_ID,
            client_id="0a5d2e4f-2222-4b6c-8e9f-000000000002",
            client_secret=SecretStr("secret"),
            graph_url=GRAPH,
            rate_limit_per_minute=6000,
        )
        client = GraphClient(
            tenant,
            SyncConfig(max_attempts=2),
            http=httpx.Client(transport=httpx.MockTransport(handler)),
            tokens=_Tokens(),
            sleep=lambda _: None,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        client._http.close()


def _warnings(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events if e["log_level"] in ("warning", "error", "critical")]


@pytest.mark.parametrize("answer", [_refused, _unavailable], ids=["refused", "503"])
def test_a_failed_stream_is_one_warning_not_one_from_the_client_too(
    hub: Hub, client_for: Any, answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    client = client_for(answer)
    source = TenantSource("contoso", TENANT_ID, DefenderApi(client, SyncConfig(max_attempts=2)))
    with structlog.testing.capture_logs() as events:
        report = sync_tenant(hub, source, InboundSettings())
    assert set(report.errors) == {"incidents", "alerts"}  # an outage: each stream failed
    # A 5xx may be $expand's own: the page read without it is another call, said once.
    expand = "$expand=alerts failed; reading alerts per incident"
    said = [e for e in _warnings(events) if e != expand]
    assert said == ["stream failed", "stream failed"], said
    failed = [e for e in events if e["event"] == "stream failed"]
    assert all("failed after 2 attempt(s)" in e["error"] for e in failed)  # the client's text


def test_a_failure_outside_a_stream_is_still_the_clients_warning(client_for: Any) -> None:
    """The pusher, `check` and a backfill have the client say what failed."""
    api = DefenderApi(client_for(_unavailable), SyncConfig(max_attempts=2))
    with structlog.testing.capture_logs() as events, pytest.raises(RetriableError):
        api.patch_incident("1", {"status": "resolved"})
    assert _warnings(events) == ["graph call failed"]


def test_a_page_read_ahead_on_another_thread_is_said_by_the_stream_alone(
    client_for: Any,
) -> None:
    """The stream's next page is read on a prefetch thread: it keeps the caller's word."""
    client = client_for(_refused)
    threads: list[str] = []

    def pages() -> Iterator[int]:
        yield 1
        threads.append(threading.current_thread().name)
        client.get("/security/incidents")
        yield 2

    with (
        structlog.testing.capture_logs() as events,
        failures_reported(),
        pytest.raises(RetriableError, match="ConnectError"),
    ):
        list(prefetched(pages()))
    assert threads == ["prefetch"]
    assert _warnings(events) == []
    with structlog.testing.capture_logs() as events, pytest.raises(RetriableError):
        client.get("/security/incidents")  # outside: the client's warning, as ever
    assert _warnings(events) == ["graph call failed"]
