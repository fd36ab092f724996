"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xdrsync.hub import Hub, default_url


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A new hub (SQLite in the test's folder); tests/hub has its own, over every backend."""
    with Hub.open(default_url(tmp_path)) as opened:
        yield opened
