"""Fixtures: Sentinel emulators on 127.0.0.1 (port 0), stopped at the end of each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sentinel_helpers import Sentinel

from xdrsync.emulator.sentinel import SentinelEmulatorServer, SentinelSettings, settings_for


@pytest.fixture
def sentinel() -> Iterator[Any]:
    """Start emulators (``settings`` or ``settings_for`` keywords); all stop at the end."""
    started: list[Sentinel] = []

    def _start(settings: SentinelSettings | None = None, **kwargs: Any) -> Sentinel:
        server = SentinelEmulatorServer(settings or settings_for(**kwargs)).start()
        running = Sentinel(server, httpx.Client(timeout=10))
        started.append(running)
        return running

    yield _start
    for running in started:
        running.http.close()
        running.server.stop()
