"""One sync writer per workspace: an advisory file lock the kernel drops if the process dies,
and, for a hub that other workspace folders may share, a lock on the hub too: for a SQLite
file named by ``database_url``, a file lock beside it; on PostgreSQL (which other machines may
share as well), a session advisory lock on the hub's database, which the server drops with
the connection.

A session lock ends with its connection (a server restart, a failover, an idle timeout, a
proxy cutting idle connections), and nothing would tell the process holding it. So a
watchdog asks the server every ``CHECK_SECONDS`` whether the lock is still this session's;
when it is not, the process is stopped (SIGTERM: the service finishes its batch and exits
non-zero, since ``lost`` tells it why, and a supervisor's restart takes the lock again, or is
refused while another writer has it).
A pool in transaction mode (PgBouncer's) cannot hold session locks: connect directly.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import structlog

from xdrsync.errors import ConfigError
from xdrsync.layout import HUB_FILE, LOCK_FILE

if TYPE_CHECKING:
    from xdrsync.config import Config

#: The PostgreSQL advisory lock key of a hub's writer (advisory locks are per database).
HUB_WRITER_KEY: Final = int.from_bytes(
    hashlib.sha256(b"xdrsync hub writer").digest()[:8], "big", signed=True
)
#: How often the watchdog checks that the hub's lock is still held.
CHECK_SECONDS: Final = 15.0
#: Whether this session holds the writer lock (``objid`` holds the key's low 32 bits).
_HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND objsubid = 1 "
    "AND classid::bigint = ((:key >> 32) & 4294967295) AND objid::bigint = (:key & 4294967295)"
)

log = structlog.get_logger(__name__)


def _end_session(engine: Any, connection: Any) -> None:
    """Close the connection and the engine's pool: the server's session ends with them."""
    connection.close()
    engine.dispose()


def _stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def _lock_file(path: Path, what: str) -> int:
    """The descriptor of ``path`` (made 0600 if new), locked for this process, which it
    names; a ConfigError if another process holds it, syncing ``what``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"another xdrsync process is syncing {what}; stop it first (queries need no lock)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


class WorkspaceLock:
    """Held by ``run`` and ``sync --once``; a second writer fails fast with a clear message.

    ``hub_url``: the hub's database URL when it is not the workspace's own SQLite file; that
    hub is then locked too, so that two machines (or two workspace folders) never sync into
    one hub side by side. ``lost`` is set when the watchdog found the PostgreSQL hub's lock
    gone, before ``on_lost`` is called: the writer stopped for that, not at an operator's
    request."""

    def __init__(
        self,
        workspace: Path,
        hub_url: str | None = None,
        *,
        on_lost: Callable[[], None] = _stop_this_process,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.path = workspace / LOCK_FILE
        self._hub_url = hub_url
        self._fd: int | None = None
        self._hub: Any = None  # (engine, connection) holding the hub's lock
        self._hub_fd: int | None = None  # the lock file beside a SQLite hub
        self.lost = False
        self._on_lost = on_lost
        self._check_seconds = check_seconds
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    @classmethod
    def for_config(cls, config: Config) -> WorkspaceLock:
        url = config.workspace.database_url
        return cls(config.workspace.path, url.get_secret_value() if url is not None else None)

    def acquire(self) -> WorkspaceLock:
        self._fd = _lock_file(self.path, f"workspace {self.path.parent}")
        try:
            self._lock_hub()
        except BaseException:
            self.release()
            raise
        return self

    def _lock_hub(self) -> None:
        if self._hub_url is None:
            return
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        from xdrsync.hub.database import create_hub_engine, in_memory

        url = make_url(self._hub_url)
        if url.get_backend_name() == "sqlite":
            if not in_memory(self._hub_url):  # seen by this process alone
                self._lock_hub_file(Path(url.database or ""))
            return
        if url.get_backend_name() != "postgresql":
            return
        engine = create_hub_engine(self._hub_url)  # a missing driver is a ConfigError there
        try:
            connection = engine.connect()
        except BaseException:
            engine.dispose()
            raise
        try:
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": HUB_WRITER_KEY}
            ).scalar()
            connection.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            _end_session(engine, connection)
            raise
        if not taken:
            _end_session(engine, connection)
            where = f"{url.host or 'localhost'}/{url.database or ''}"
            raise ConfigError(
                f"another xdrsync process is syncing the hub at {where} (from this or another "
                "machine); stop it first (queries need no lock)"
            )
        self._hub = (engine, connection)
        self.lost = False
        self._stopping.clear()
        self._watchdog = threading.Thread(target=self._watch, name="xdrsync-hub-lock", daemon=True)
        self._watchdog.start()

    def _lock_hub_file(self, database: Path) -> None:
        """Lock a SQLite hub that ``database_url`` names: several workspace folders may name
        one file. The lock is the file beside it (``hub.db.lock``); for a file named as a
        workspace's own hub (``hub.sqlite3``), its folder's ``sync.lock``, the one that
        workspace's ``run`` takes, so that neither syncs beside the other."""
        # As SQLite opens it: a relative path from the current folder (the config has made
        # a relative `sqlite:///` path absolute from its own folder already), links followed.
        hub = database.resolve()
        lock = hub.with_name(LOCK_FILE if hub.name == HUB_FILE else f"{hub.name}.lock")
        if lock == self.path.resolve():
            return  # this workspace's own hub, locked already
        self._hub_fd = _lock_file(lock, f"the hub at {hub}")

    def _watch(self) -> None:
        """Stop the process once the hub's lock is no longer this session's."""
        from sqlalchemy import text

        while not self._stopping.wait(self._check_seconds):
            held = self._hub
            if held is None:
                return
            try:
                still = held[1].execute(text(_HELD), {"key": HUB_WRITER_KEY}).scalar()
                held[1].commit()
            except Exception as failure:  # the connection is gone, and the lock with it
                still, why = 0, f"{type(failure).__name__}"
            else:
                why = "the server no longer shows it"
            if not still:
                if self._stopping.is_set():
                    return  # released meanwhile
                log.error("the hub's writer lock was lost; stopping", reason=why)
                self.lost = True  # before the stop, which asks why it came
                self._on_lost()
                return

    def release(self) -> None:
        self._stopping.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=5)
        self._watchdog = None
        if self._hub is not None:
            engine, connection = self._hub
            self._hub = None
            _end_session(engine, connection)  # and its advisory lock with it
        if self._hub_fd is not None:
            fcntl.flock(self._hub_fd, fcntl.LOCK_UN)
            os.close(self._hub_fd)
            self._hub_fd = None
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
