"""Shared fixtures of the destination tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xdrsync.hub import Hub, default_url


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A new hub (SQLite in the test's folder)."""
    opened = Hub.open(default_url(tmp_path))
    try:
        yield opened
    finally:
        opened.close()
