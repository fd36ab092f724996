"""A fresh hub per test, in a workspace folder under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xdrsync.hub import Hub


@pytest.fixture
def hub_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ws' / 'hub.sqlite3'}"


@pytest.fixture
def hub(hub_url: str) -> Iterator[Hub]:
    opened = Hub.open(hub_url)
    try:
        yield opened
    finally:
        opened.close()
