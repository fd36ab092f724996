"""Opening the hub's database: engine settings per dialect and migrations to head.

SQLite (the default) runs in WAL mode so readers (CLI, console) never block the sync writer,
with a busy timeout so two processes queue instead of failing, and foreign keys on. Every
write transaction starts with ``BEGIN IMMEDIATE``: it takes SQLite's single write lock up
front, so a transaction that reads versions and then writes can't be refused half-way (a
deferred transaction that read first would get SQLITE_BUSY without waiting when another
writer got there in between).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import (
    Connection,
    Engine,
    column,
    create_engine,
    event,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from xdrsync.errors import ConfigError
from xdrsync.hub.schema import FOLD_COLLATION, SQLITE_LOWER, python_lower
from xdrsync.jsontext import without_surrogates
from xdrsync.layout import HUB_FILE

if TYPE_CHECKING:
    from xdrsync.config import WorkspaceConfig

MIGRATIONS: Final = Path(__file__).with_name("migrations")
VERSION_TABLE: Final = "xdrsync_hub_version"
#: The newest migration. Opening a hub already there needs no alembic (it loads only to
#: migrate), which keeps read-only commands quick; a test checks it is alembic's head.
HEAD_REVISION: Final = "0014"
BUSY_TIMEOUT_MS: Final = 30_000
#: The page size a new SQLite hub is created with. The hub's rows are large (an alert's
#: payload holds its evidence), and with SQLite's default of 4 KiB a backfill made a
#: system call for every page it wrote: 16 KiB pages took a 4,000-incident backfill from
#: 15.2 to 14.6 s (medians of 3 runs; 64 KiB gained no more). A file that exists keeps its size.
PAGE_SIZE: Final = 16_384
#: The size the hub's write-ahead log is cut back to (bytes; ``_sqlite_settings``).
WAL_SIZE_LIMIT: Final = 64 * 2**20
WRITE: Final = "xdrsync_write"  # execution option: this connection's transaction writes
_PG_MIGRATION_LOCK: Final = 0x78647273796E63  # "xdrsync": advisory lock key for migrations


def default_url(workspace: Path) -> str:
    """The hub's URL when the config names only a workspace folder."""
    return URL.create("sqlite", database=str(Path(workspace) / HUB_FILE)).render_as_string()


def configured_url(workspace: WorkspaceConfig) -> str:
    """The hub's URL as the config's `[workspace]` gives it: `database_url`, else the file in
    the workspace folder."""
    if workspace.database_url is not None:
        return workspace.database_url.get_secret_value()
    return default_url(workspace.path)


def storable_text(value: str, *, nul: bool) -> str:
    """``value`` as a text column can hold it: lone UTF-16 surrogates (and, for PostgreSQL,
    NUL) become U+FFFD. Only derived columns ever need this: payloads are stored as JSON
    text, where such characters are escapes, so the record itself stays exact."""
    if value.isascii():
        return value.replace("\x00", "\ufffd") if nul and "\x00" in value else value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = without_surrogates(value)
    return value.replace("\x00", "\ufffd") if nul else value


def _storable(parameters: Any, *, nul: bool) -> Any:
    def clean(value: Any) -> Any:
        return storable_text(value, nul=nul) if type(value) is str else value

    def fine(values: Any) -> bool:
        # The common case, checked without copying: all text is ASCII (and, for
        # PostgreSQL, free of NUL), so nothing needs replacing.
        for value in values:
            if type(value) is str and not (value.isascii() and not (nul and "\x00" in value)):
                return False
        return True

    def one(row: Any) -> Any:
        if type(row) is dict:
            return row if fine(row.values()) else {key: clean(v) for key, v in row.items()}
        if isinstance(row, list | tuple):
            return row if fine(row) else type(row)(clean(value) for value in row)
        return row

    if isinstance(parameters, list):  # executemany
        return [one(row) for row in parameters]
    return one(parameters)


def _text_guard(engine: Engine, *, nul: bool) -> None:
    """Bind only text the driver can encode (see ``storable_text``)."""

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _bind(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> tuple[str, Any]:
        return statement, _storable(parameters, nul=nul)


def in_memory(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (seen by this process only)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:")


def create_hub_engine(url: str) -> Engine:
    """An engine for ``url`` with the hub's connection settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            engine = create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError as missing:  # the driver is an optional dependency
            raise ConfigError(
                f"database_url names {parsed.get_backend_name()}, whose driver "
                f"({missing.name}) is not installed: pip install 'xdrsync[postgres]'"
            ) from None
        _text_guard(engine, nul=True)
        _postgres_sessions(engine)
        return engine
    database = parsed.database or ""
    memory = in_memory(url)
    if memory:
        # One shared connection, or every checkout would see its own empty database.
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    _sqlite_settings(engine, wal=not memory)
    _text_guard(engine, nul=False)
    return engine


def _postgres_sessions(engine: Engine) -> None:
    """Every PostgreSQL session in UTC, and the collation ``schema.Lowered`` folds with.

    The hub binds aware UTC datetimes, but a ``timestamptz`` is read back in the session's
    zone, the server's own by default: there, Graph's "never" (0001-01-01T00:00:00Z) is a
    date in 1 BC west of UTC, and 9999-12-31 late in the evening is in the year 10000 east
    of it. The driver refuses both, and every read of the row failed (the console's queue
    index retried it for ever)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # session settings, outside any transaction
        try:
            cur = dbapi_connection.cursor()
            try:
                cur.execute("SET TIME ZONE 'UTC'")
                if not hasattr(engine.dialect, FOLD_COLLATION):
                    setattr(engine.dialect, FOLD_COLLATION, _fold_collation(cur))
            finally:
                cur.close()
        finally:
            dbapi_connection.autocommit = autocommit


def _fold_collation(cur: Any) -> str | None:
    """A collation whose ``lower()`` folds every letter, when the database's own does not.

    ``lower()`` folds by the database's LC_CTYPE: under C (``initdb --no-locale``, a common
    choice) ASCII letters only, so an owner filter for ``éva@contoso.com`` missed
    ``Éva@Contoso.com``. Then an ICU or C.UTF-8 collation the server has is used; None when
    the database's own folds (any other ctype), or when the server has none of them (its
    LC_CTYPE is then the limit)."""
    cur.execute("SHOW lc_ctype")
    ctype = str(cur.fetchone()[0])
    if ctype.upper() not in ("C", "POSIX"):
        return None
    cur.execute(
        "SELECT collname FROM pg_collation WHERE collname = ANY(%s) "
        "AND collencoding IN (-1, pg_char_to_encoding(current_setting('server_encoding')))",
        (list(FOLDING_COLLATIONS),),
    )
    found = {str(row[0]) for row in cur.fetchall()}
    return next((name for name in FOLDING_COLLATIONS if name in found), None)


#: Collations whose ``lower()`` folds every letter, in the order tried (``_fold_collation``).
FOLDING_COLLATIONS: Final = ("und-x-icu", "pg_c_utf8", "C.utf8", "C.UTF-8")


def _sqlite_settings(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if wal:
                cur.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before the file is made
                _journal_mode_wal(cur)
                # NORMAL in WAL mode survives a killed process; only power loss can drop the
                # last commits, and the engine re-reads its lookback window anyway.
                cur.execute("PRAGMA synchronous = NORMAL")
                # The write-ahead log keeps the size of its busiest moment (a backfill, a
                # checkpoint held back by a long read) unless told: cut back to this at
                # each checkpoint that starts it over.
                cur.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()
        # What ``schema.Lowered`` compiles to: SQLite's lower() folds ASCII letters only.
        dbapi_connection.create_function(SQLITE_LOWER, 1, python_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _journal_mode_wal(cur: sqlite3.Cursor) -> None:
    """Put the database in WAL mode, waiting as long as the busy timeout for the lock.

    Turning a new file to WAL takes an exclusive lock, and SQLite reports a conflict on it
    at once (``database is locked``) without calling the busy handler: two processes opening
    a new hub at the same moment failed one time in ten. So the wait is done here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    """Alembic's head, read from the migration scripts."""
    from alembic.script import ScriptDirectory

    head: str | None = ScriptDirectory.from_config(_config()).get_current_head()
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for a new database)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        version = table(VERSION_TABLE, column("version_num"))
        found = conn.execute(select(version.c.version_num)).scalars().all()
        return found[0] if len(found) == 1 else None


def upgrade(engine: Engine) -> None:
    """Run the migrations to head; a no-op when already there.

    Safe when two processes open the same database at once: the migration runs under the
    write lock (SQLite) or an advisory lock (PostgreSQL), and the second process then finds
    the schema at head and does nothing.
    """
    found = current_revision(engine)
    if found == HEAD_REVISION:
        return
    if found is not None and found.isdigit() and int(found) > int(HEAD_REVISION):
        raise ConfigError(
            f"the hub is at schema revision {found}, written by a newer xdrsync; this one "
            f"knows revisions up to {HEAD_REVISION}: run the newer xdrsync"
        )
    from alembic import command

    config = _config()
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
