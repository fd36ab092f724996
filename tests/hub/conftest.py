"""A fresh hub per test, on each database the hub supports: SQLite in a workspace folder under
tmp_path, and a database of its own on a PostgreSQL server started for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgserver import PgServer, pg_server
from xdrsync.hub import Hub


@pytest.fixture
def hub_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ws' / 'hub.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, hub_url: str) -> Iterator[Hub]:
    """A new hub on each backend the hub supports."""
    url = hub_url if request.param == "sqlite" else request.getfixturevalue("pg").new_database()
    opened = Hub.open(url)
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
