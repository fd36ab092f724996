"""Fixtures shared by every test folder."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from xdrsync.hub import Hub, default_url


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A new hub (SQLite in the test's folder); tests/hub has its own, over every backend."""
    with Hub.open(default_url(tmp_path)) as opened:
        yield opened


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    """Runs a command in this process. Every command configures logging to the stderr it
    sees, which is the runner's own stream, closed once the command returns: structlog's
    configuration and the root logger's handlers are put back after, or the log lines of
    the tests that follow would go to a closed file."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # `logs.configure` sets these libraries' loggers to the command's level too.
    libraries = {name: logging.getLogger(name).level for name in _LIBRARY_LOGGERS}
    yield CliRunner()
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in libraries.items():
        logging.getLogger(name).setLevel(was)


_LIBRARY_LOGGERS = ("httpx", "httpcore", "msal", "urllib3", "alembic", "azure")
