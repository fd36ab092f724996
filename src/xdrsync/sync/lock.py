"""One sync writer per workspace: an advisory file lock the kernel drops if the process dies,
and, for a hub on PostgreSQL (which other machines and workspace folders may share), a
session advisory lock on the hub's database, which the server drops with the connection."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from xdrsync.errors import ConfigError

if TYPE_CHECKING:
    from xdrsync.config import Config

#: The PostgreSQL advisory lock key of a hub's writer (advisory locks are per database).
HUB_WRITER_KEY: Final = int.from_bytes(
    hashlib.sha256(b"xdrsync hub writer").digest()[:8], "big", signed=True
)


class WorkspaceLock:
    """Held by ``run`` and ``sync --once``; a second writer fails fast with a clear message.

    ``hub_url``: the hub's database URL when it is not the workspace's own SQLite file; a
    PostgreSQL hub is then locked too, so that two machines (or two workspace folders) never
    sync into one hub side by side."""

    def __init__(self, workspace: Path, hub_url: str | None = None) -> None:
        self.path = workspace / "sync.lock"
        self._hub_url = hub_url
        self._fd: int | None = None
        self._hub: Any = None  # the connection holding the hub's lock

    @classmethod
    def for_config(cls, config: Config) -> WorkspaceLock:
        url = config.workspace.database_url
        return cls(config.workspace.path, url.get_secret_value() if url is not None else None)

    def acquire(self) -> WorkspaceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another xdrsync process is syncing workspace {self.path.parent}; "
                "stop it first (queries need no lock)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        try:
            self._lock_hub()
        except BaseException:
            self.release()
            raise
        return self

    def _lock_hub(self) -> None:
        if self._hub_url is None:
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        url = make_url(self._hub_url)
        if url.get_backend_name() != "postgresql":
            return
        engine = create_engine(url, poolclass=NullPool)
        connection = engine.connect()
        try:
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": HUB_WRITER_KEY}
            ).scalar()
            connection.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            connection.close()
            engine.dispose()
            raise
        if not taken:
            connection.close()
            engine.dispose()
            where = f"{url.host or 'localhost'}/{url.database or ''}"
            raise ConfigError(
                f"another xdrsync process is syncing the hub at {where} (from this or another "
                "machine); stop it first (queries need no lock)"
            )
        self._hub = (engine, connection)

    def release(self) -> None:
        if self._hub is not None:
            engine, connection = self._hub
            self._hub = None
            connection.close()  # the session ends, and its advisory lock with it
            engine.dispose()
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WorkspaceLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
