"""Fixtures for the Graph client tests: a fake clock and a GraphClient over MockTransport."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from graph_fakes import FakeClock, Handler, Harness, Recorder, StaticTokens, make_tenant

from xdrsync.config import SyncConfig, TenantConfig
from xdrsync.graph.client import GraphClient
from xdrsync.graph.pacing import Pacer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def harness_factory(clock: FakeClock) -> Iterator[Callable[..., Harness]]:
    """Build a GraphClient over a MockTransport running ``handler``; no network."""
    made: list[httpx.Client] = []

    def build(
        handler: Handler,
        *,
        sync: SyncConfig | None = None,
        tenant: TenantConfig | None = None,
        rate_limit: int = 6000,
        rng: Callable[[], float] = lambda: 0.5,
    ) -> Harness:
        recorder = Recorder(handler, clock)
        tokens = StaticTokens()
        tenant = tenant or make_tenant(rate_limit_per_minute=rate_limit)
        http = httpx.Client(transport=httpx.MockTransport(recorder))
        made.append(http)
        client = GraphClient(
            tenant,
            sync or SyncConfig(),
            http=http,
            tokens=tokens,
            pacer=Pacer(tenant.rate_limit_per_minute, clock=clock, sleep=clock.sleep),
            sleep=clock.sleep,
            clock=clock,
            wall_clock=clock.wall,
            rng=rng,
        )
        return Harness(client, recorder, clock, tokens)

    yield build
    for http in made:
        http.close()
