"""A fresh hub per test: SQLite in a workspace folder under tmp_path, or a database of its own
on a PostgreSQL server started for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgserver import PgServer, pg_server
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


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """Debian's PostgreSQL on 127.0.0.1, for the session (``tests/pgserver.py``)."""
    with pg_server() as server:
        yield server


@pytest.fixture
def pg_hub(pg: PgServer) -> Iterator[Hub]:
    """A new hub in a database of its own on that server."""
    opened = Hub.open(pg.new_database())
    try:
        yield opened
    finally:
        opened.close()
