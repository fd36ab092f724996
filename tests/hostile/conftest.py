"""The ``hostile`` fixture: a real hostile Graph + Entra ID server per test (see
``hostile_server``'s docstring for its API and modes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile_server import HostileGraph, start


@pytest.fixture
def hostile() -> Iterator[HostileGraph]:
    """A started ``HostileGraph`` on 127.0.0.1 (ephemeral port), serving ``Mode.NORMAL``
    until the test sets ``mode``; stopped (hostile streams ended) after the test."""
    running = start()
    try:
        yield running.state
    finally:
        running.stop()
