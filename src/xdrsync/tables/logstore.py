"""The workspace log store: Sentinel-shaped tables in one DuckDB file, appended to and queried.

`xdrsync run` appends every few seconds while a user runs `xdrsync query` from another
process; DuckDB allows one writer process or many readers, so every operation opens the file,
works in one transaction and closes it again (see `access` for the retry and fairness rules).

The KQL-visible tables are views over storage tables that also carry Log Analytics' hidden
standard columns (`schemas.HIDDEN_COLUMNS`) and our bookkeeping columns
(`schemas.BOOKKEEPING_COLUMNS`), so `SecurityIncident | take 5` shows exactly Sentinel's
columns. A query that names a hidden column runs over temporary views of the same name that add
the hidden columns it names (`hidden_views`).

A query for a user scoped to some tenants (`query(kql, tenant_ids=...)`) runs over temporary
views of the same names that keep only those tenants' rows (`scope.tenant_filter`): the KQL is
not rewritten, so every way a query can name a table (`union`, `join`, `let`, `toscalar`,
`materialize`, `union *`) reads the filtered view, and the storage tables are out of reach as
ever (the allow-list refuses any other name).
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import duckdb

from xdrsync.layout import KQL_CACHE
from xdrsync.tables.access import open_store
from xdrsync.tables.encode import NdjsonWriter, string_default
from xdrsync.tables.errors import QueryRefusedError
from xdrsync.tables.limits import QueryLimits, QuerySettings
from xdrsync.tables.querying import Translated, run, translate
from xdrsync.tables.queryresult import QueryResult, decode_rows
from xdrsync.tables.sandbox import LOCK_STATEMENTS, SESSION_STATEMENTS, check_sql, query_config
from xdrsync.tables.schemas import (
    ALERT_EVIDENCE,
    BOOKKEEPING_COLUMNS,
    HIDDEN_COLUMNS,
    SECURITY_ALERT,
    TABLE_NAMES,
    Column,
    TableSchema,
    table_schema,
)
from xdrsync.tables.scope import normalize_tenant_ids, tenant_filter
from xdrsync.tables.translations import Kept, Translations, kusto_types

#: Storage tables live in their own DuckDB schema under a different name than the KQL view,
#: because duckdb-kql keys its schema map by bare table name and two relations both called
#: `SecurityIncident` would merge their column lists.
_STORE_SCHEMA: Final = "xdrsync_store"
#: The hidden columns a row may carry when appended; the store fills in what it leaves out.
_SUPPLIED: Final = tuple(c for c in HIDDEN_COLUMNS if c.name != "_IngestionTime")
#: How the store fills each hidden column, from the appended value (if any) and the moment the
#: append's transaction began.
_NOW: Final = "CAST(current_timestamp AT TIME ZONE 'UTC' AS TIMESTAMP)"
_FILLED: Final = {
    "_IngestionTime": _NOW,
    "_TimeReceived": f'coalesce("_TimeReceived", {_NOW})',
    "_ItemId": """coalesce(nullif("_ItemId", ''), CAST(uuid() AS VARCHAR))""",
}
_STORE_SUFFIX: Final = "_rows"
#: The changes left out of the tables for good (dead letters), by `_Seq`, written in the
#: transaction that would have held their rows: the store's position (`max_seq`) is past
#: them, so a writer started afresh does not reject them again.
_REFUSED: Final = "refused_changes"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULT_OBJECT_SIZE: Final = 16 * 2**20  # read_json's own default maximum_object_size
_WRITER_MEMORY: Final = 128 * 2**20  # DuckDB's memory limit while appending (see append_batch)
#: The staged files' write buffer. With the default 8 KiB, every few rows (an evidence row
#: is about 1.5 KB) made a system call: 67,000 lines of 1.5 KB took 0.13 CPU-s to write,
#: 0.03 with this (a 2,000-incident backlog stages 67,000 rows).
_STAGE_BUFFER: Final = 2**20
#: The columns that hold a whole JSON document per row (an evidence item; an alert's entities
#: and extended properties): two thirds of the tables' text. Stored with zstd instead of what
#: DuckDB would pick (dictionary and FSST, whose analysis ran at every checkpoint): on a
#: 10,000-incident backfill the log file is 66 MiB instead of 246, its appends take a seventh
#: less CPU, and queries read it as fast (bench/results.md). Tables created before keep theirs.
_DOCUMENT_COLUMNS: Final = frozenset(
    {
        (ALERT_EVIDENCE, "AdditionalFields"),
        (SECURITY_ALERT, "Entities"),
        (SECURITY_ALERT, "ExtendedProperties"),
    }
)
#: An append of at least this many rows skips DuckDB's merge of small row groups at its
#: checkpoint; smaller appends merge at most `_MERGE_TASKS` groups of them each. Every
#: checkpoint merged the row group an append made into the table's last one, so a backlog's
#: batches rewrote that row group each time (a cost that grew with the table): it was 17 of
#: the worker's 57 CPU-s in a 20,000-incident backfill, and 2.6 without the merge. The
#: row groups a backlog leaves (one per batch and table) are merged by the appends after it,
#: a few at a time so none holds the file long (about 1.5 s each after 20,000 incidents).
_MERGE_BELOW_ROWS: Final = 10_000
_MERGE_TASKS: Final = 4
#: The writer waits at least this long for the file, and always a margin past the query time
#: limit, so a query stopped at its limit never makes an append give up.
_MIN_WRITE_WAIT: Final = 30.0
_WRITE_WAIT_MARGIN: Final = 30.0


def _storage(table: str) -> str:
    return f'{_STORE_SCHEMA}."{table}{_STORE_SUFFIX}"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class _Staged:
    """One table's rows of an append, staged in a file for DuckDB's `read_json`."""

    schema: TableSchema
    path: Path
    file: BinaryIO
    writer: NdjsonWriter


def _staged_columns(schema: TableSchema) -> tuple[Column, ...]:
    """The columns a staged row may carry: the table's, and the store's own."""
    return (*schema.columns, *_SUPPLIED, *BOOKKEEPING_COLUMNS)


#: The append files this process is writing (absolute paths), which a sweep leaves alone.
_staging: set[str] = set()
_staging_lock = threading.Lock()  # a file is made and counted at once, as a sweep sees it


def _unstage(staged: Mapping[str, _Staged]) -> None:
    """Remove the staged files, whatever closing them says: on a full disk, the close of a
    file whose rows could not all be written fails too (its buffer cannot be flushed), and
    the append is failing already (``_load`` closes them first when it is not)."""
    for stage in staged.values():
        with suppress(OSError):
            stage.file.close()
        _staging.discard(os.path.abspath(stage.path))  # a sweep removes it, if this cannot
        stage.path.unlink(missing_ok=True)


def _insert_statement(stage: _Staged) -> tuple[str, int]:
    """The INSERT that bulk-loads a staged file, and the ``maximum_object_size`` it reads
    with."""
    columns = _staged_columns(stage.schema)
    # DuckDB's JSON reader allocates twice this size for its buffer on every insert, so
    # it follows the data: DuckDB's default, or the longest row when one is larger.
    object_size = max(_DEFAULT_OBJECT_SIZE, stage.writer.longest + 1)
    # read_json over a file is DuckDB's bulk path: measured ~25x faster than executemany
    # on a prepared INSERT for 35-column rows (~11,000 vs ~400 rows/s).
    spec = ", ".join(f"'{c.name}': '{c.duckdb_type}'" for c in columns)
    stored = (*columns, *(c for c in HIDDEN_COLUMNS if c not in _SUPPLIED))
    names = ", ".join(f'"{c.name}"' for c in stored)
    values = ", ".join(_FILLED.get(c.name) or string_default(c, f'"{c.name}"') for c in stored)
    # Identifiers come from the packaged schemas (checked against _IDENT when the tables
    # are created) and the only literal is our own staged file's quoted path.
    source = (
        f"read_json({_quote_literal(str(stage.path))}, format='newline_delimited', "
        f"columns={{{spec}}}, maximum_object_size={object_size})"
    )
    table = _storage(stage.schema.name)
    return f"INSERT INTO {table} ({names}) SELECT {values} FROM {source}", object_size  # noqa: S608


class LogStore:
    """Append-only Sentinel-compatible tables in one DuckDB file, queryable with KQL."""

    def __init__(
        self,
        path: Path,
        *,
        read_timeout: float = 10.0,
        write_timeout: float | None = None,
        limits: QuerySettings | None = None,
    ) -> None:
        # Readers give up after ~10 s (a person is waiting); the writer waits longer because a
        # user's long query should delay the sync, not fail it: a query holds the file for at
        # most its time limit, so the writer's budget outlasts that with a margin.
        self._path = Path(path)
        self._limits = QueryLimits.of(limits)
        self._read_timeout = read_timeout
        self._write_timeout = (
            write_timeout
            if write_timeout is not None
            else max(_MIN_WRITE_WAIT, self._limits.timeout_seconds + _WRITE_WAIT_MARGIN)
        )
        self._ready = False
        self._translations = Translations(self._path.parent / KQL_CACHE)

    @property
    def path(self) -> Path:
        return self._path

    # -- public API -----------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the file and every table (or add columns a newer schema introduced)."""
        with self._connect(read_only=False) as con:
            self._ensure_schema(con)

    def append(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append rows (column name -> value) to one table in a single transaction.

        Values follow the column's KQL type: `datetime` takes aware datetimes (or naive UTC),
        `dynamic` takes plain Python JSON values. Columns a row leaves out are null (or "" for
        strings). Rows may carry the bookkeeping column `_Seq`, and `_TimeReceived` and
        `_ItemId` (the store fills them in otherwise).
        """
        self.append_batch({table: rows})

    def append_batch(self, rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Append rows to several tables in ONE transaction (one open of the file).

        A sync cycle writes an incident with its alerts and evidence this way, so a query that
        joins SecurityIncident to SecurityAlert never sees one without the other, and the file
        lock is taken once per cycle rather than once per table.
        """
        self.append_rows((table, row) for table, rows in rows_by_table.items() for row in rows)

    def append_rows(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """`append_batch` for rows that come one by one, each as (table, row): each is staged
        as it comes, so a large batch is never held in memory whole. Nothing is appended when
        the iteration fails."""
        staged: dict[str, _Staged] = {}
        try:
            for table, row in rows:
                self._staged(staged, table).writer.write(row)
            self._load(staged)
        finally:
            _unstage(staged)

    def append_changes(
        self,
        changes: Iterable[tuple[int, Sequence[tuple[str, Mapping[str, Any]]]]],
        rejected: Mapping[int, str] | None = None,
    ) -> dict[int, str]:
        """Append the rows of each change (its number, its (table, row)s), whole, in one
        transaction, staged as they come. A change with a value its column cannot hold (an
        integer beyond 64 bits, a float for a long) is left out whole and returned with the
        reason: a hostile record costs only itself, never the changes after it.

        The changes left out, and those the caller ``rejected`` before they came here (read
        once ``changes`` is consumed: a mapping filled as they are made), are recorded in the
        same transaction, so that ``max_seq`` counts them as held."""
        staged: dict[str, _Staged] = {}
        refused: dict[int, str] = {}
        try:
            for key, rows in changes:
                encoded = []
                try:
                    for table, row in rows:
                        writer = self._staged(staged, table).writer
                        encoded.append((writer, writer.encode(row)))
                except (TypeError, ValueError, OverflowError) as bad:
                    refused[key] = f"not storable in the log tables: {bad}"
                    continue
                for writer, line in encoded:
                    writer.write_line(line)
            self._load(staged, {**(rejected or {}), **refused})
        finally:
            _unstage(staged)
        return refused

    def _staged(self, staged: dict[str, _Staged], table: str) -> _Staged:
        stage = staged.get(table)
        if stage is None:
            # An append's first file: what dead writers left goes, at every append (a
            # worker process killed in a load leaves a batch's rows while this one lives).
            if not staged:
                sweep_append_files(self._path)
            stage = staged[table] = self._stage(table_schema(table))
        return stage

    def _load(
        self, staged: Mapping[str, _Staged], refused: Mapping[int, str] | None = None
    ) -> None:
        """Bulk-load the staged files in one transaction, with the changes ``refused``."""
        loading = [stage for stage in staged.values() if stage.writer.rows]
        for stage in staged.values():
            stage.file.close()
        if not loading and not refused:
            return
        inserts = [_insert_statement(stage) for stage in loading]
        # Without a limit DuckDB sizes its cache to the machine, and the checkpoint at
        # close held more the larger the tables grew (peak memory grew with the backlog);
        # with one it evicts instead. Room for the JSON reader's buffer is kept.
        memory = max(_WRITER_MEMORY, 4 * max((size for _, size in inserts), default=0))
        with self._connect(read_only=False) as con:
            con.execute(f"SET memory_limit='{memory // 2**20}MiB'")
            appended = sum(stage.writer.rows for stage in loading)
            merges = 0 if appended >= _MERGE_BELOW_ROWS else _MERGE_TASKS
            con.execute(f"SET max_vacuum_tasks = {merges}")
            # One thread: a second one saved no time on these loads and cost about a fifth
            # more CPU (a 3,000-change batch loaded alone), and the worker's peak memory is
            # 3-11% lower without it (bench/results.md).
            con.execute("SET threads = 1")
            self._ensure_schema(con)
            con.execute("BEGIN TRANSACTION")
            try:
                for statement, _ in inserts:
                    con.execute(statement)
                if refused:
                    con.executemany(
                        f"INSERT INTO {_STORE_SCHEMA}.{_REFUSED} VALUES (?, ?)",  # noqa: S608
                        sorted(refused.items()),
                    )
                con.execute("COMMIT")
            except BaseException:
                _roll_back(con)
                raise

    def _stage(self, schema: TableSchema) -> _Staged:
        """A new staged NDJSON file for one table's rows, beside the log file."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with _staging_lock:
            fd, name = tempfile.mkstemp(
                prefix=f"{_append_stem(self._path)}{os.getpid()}-",
                suffix=".ndjson",
                dir=self._path.parent,
            )
            _staging.add(os.path.abspath(name))
        out = os.fdopen(fd, "wb", buffering=_STAGE_BUFFER)
        writer = NdjsonWriter(out, _staged_columns(schema), schema.name)
        return _Staged(schema, Path(name), out, writer)

    @property
    def limits(self) -> QueryLimits:
        return self._limits

    def query(
        self,
        kql: str,
        *,
        tenant_ids: Sequence[str] | None = None,
        max_rows: int | None = None,
    ) -> QueryResult:
        """Run one KQL query over the workspace tables, under this store's limits.

        Refused (`QueryRefusedError`) when it reads anything else; stopped
        (`QueryLimitError`) at its time or memory limit; at most `max_rows` rows come back,
        with `truncated` set when there were more. KQL and engine errors become `QueryError`.

        `tenant_ids` scopes the query: it sees only the rows whose `TenantId` is one of them
        (compared without regard to case; an empty list sees no rows). None (the CLI) sees
        every tenant. `max_rows` replaces the store's row cap for this query.
        """
        scope = normalize_tenant_ids(tenant_ids)
        limits = self._limits if max_rows is None else replace(self._limits, max_rows=max_rows)
        # Translated before the file is opened (no lock held), or kept from an earlier run.
        kept = self._translations.get(kql)
        while True:
            first = kept.query if kept is not None else translate(kql, TABLE_NAMES)
            views = hidden_views(first.hidden, tenant_ids=scope)
            self._ensure_exists()
            # Queries of this process with the same settings run side by side, each on its
            # own connection with its own temporary views (`access`).
            with open_store(
                self._path,
                read_only=True,
                timeout=self._read_timeout,
                config=query_config(_ordering(first, limits)),
                setup=LOCK_STATEMENTS,
                session=(*SESSION_STATEMENTS, *views),
            ) as con:
                if kept is not None and not _one_select(first.sql, con):
                    kept = None  # a damaged entry: translated again, and replaced below
                    continue
                translated, fetched = run(con, first, limits, TABLE_NAMES)
            break
        engine_types = tuple(str(d[1]) for d in fetched.description)
        if kept is not None and kept.engine_types == engine_types:
            all_types = kept.kql_types
        else:
            all_types = kusto_types(engine_types)
            if translated is first:  # the text alone made it (no bag keys read from the data)
                self._translations.put(kql, Kept(translated, engine_types, all_types))
        implied = translated.implied
        keep = [i for i, d in enumerate(fetched.description) if str(d[0]) not in implied]
        columns = tuple(translated.column_name(str(fetched.description[i][0])) for i in keep)
        types = tuple(all_types[i] for i in keep)
        engine = tuple(engine_types[i] for i in keep)
        rows = (
            fetched.rows
            if len(keep) == len(fetched.description)
            else [tuple(row[i] for i in keep) for row in fetched.rows]
        )
        return QueryResult(
            columns=columns,
            types=types,
            rows=decode_rows(types, rows, engine),
            truncated=fetched.truncated,
        )

    def sql(
        self, text: str, params: Sequence[Any] | None = None, *, write: bool = False
    ) -> list[tuple[Any, ...]]:
        """Run SQL for internal use (maintenance, counts); read-only unless `write=True`."""
        if not write:
            self._ensure_exists()
        with self._connect(read_only=not write) as con:
            if write:
                self._ensure_schema(con)
            cursor = con.execute(text, list(params) if params is not None else None)
            return cursor.fetchall() if cursor.description else []

    def remove_from_seq(self, seq: int) -> None:
        """Delete the rows of every change from ``seq`` on, from every table, in one
        transaction (a replay writes them again)."""
        with self._connect(read_only=False) as con:
            self._ensure_schema(con)
            con.execute("BEGIN TRANSACTION")
            try:
                for table in (*map(_storage, TABLE_NAMES), f"{_STORE_SCHEMA}.{_REFUSED}"):
                    con.execute(f"DELETE FROM {table} WHERE _Seq >= ?", [seq])  # noqa: S608
                con.execute("COMMIT")
            except BaseException:
                _roll_back(con)
                raise

    def max_seq(self, *tables: str) -> int | None:
        """The highest `_Seq` stored in `tables` (every table when none is named, and the
        changes refused for good), to resume feeding them after a crash; one connection for
        all. Asked by the writer, on a writing connection: a file whose creation a crash cut
        short (no tables yet) gets its tables here instead of failing every later publish."""
        names = [_storage(table_schema(t).name) for t in tables or TABLE_NAMES]
        value = self._highest("_Seq", names if tables else [*names, f"{_STORE_SCHEMA}.{_REFUSED}"])
        return int(value) if value is not None else None

    def refused_after(self, seq: int) -> dict[int, str]:
        """The changes after ``seq`` left out for good (``append_changes``), with the reasons;
        on a writing connection, as ``max_seq``."""
        rows = self.sql(
            f"SELECT _Seq, Reason FROM {_STORE_SCHEMA}.{_REFUSED} WHERE _Seq > ?",  # noqa: S608
            [seq],
            write=True,
        )
        return {int(number): str(reason) for number, reason in rows}

    def latest_time_generated(self) -> datetime | None:
        """The latest `TimeGenerated` stored in any table (UTC): the writer's next rows come
        after it, even when this machine's clock has stepped back."""
        value: datetime | None = self._highest("TimeGenerated", list(map(_storage, TABLE_NAMES)))
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def _highest(self, column: str, tables: Sequence[str]) -> Any:
        """The highest value of ``column`` in ``tables`` (storage names), on a writing
        connection (see ``max_seq``)."""
        parts = " UNION ALL ".join(
            f"SELECT max({column}) AS v FROM {table}"  # noqa: S608
            for table in tables
        )
        rows = self.sql(f"SELECT max(v) FROM ({parts})", write=True)  # noqa: S608
        return rows[0][0] if rows else None

    # -- connections ------------------------------------------------------------------------

    def _ensure_exists(self) -> None:
        if not self._path.exists():
            self.initialize()

    def _connect(self, *, read_only: bool) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        if not read_only:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        timeout = self._read_timeout if read_only else self._write_timeout
        return open_store(self._path, read_only=read_only, timeout=timeout)

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._ready:
            return
        existing: dict[str, set[str]] = {}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ?",
            [_STORE_SCHEMA],
        ).fetchall():
            existing.setdefault(str(table), set()).add(str(column))
        views = {
            str(r[0])
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'main' AND table_type = 'VIEW'"
            ).fetchall()
        }
        statements = [f"CREATE SCHEMA IF NOT EXISTS {_STORE_SCHEMA}"]
        for name in TABLE_NAMES:
            statements.extend(_schema_statements(table_schema(name), existing, views))
        if _REFUSED not in existing:
            statements.append(
                f"CREATE TABLE {_STORE_SCHEMA}.{_REFUSED} (_Seq BIGINT, Reason VARCHAR)"
            )
        if len(statements) > 1:
            con.execute("BEGIN TRANSACTION")
            for statement in statements:
                con.execute(statement)
            con.execute("COMMIT")
        self._ready = True


def _roll_back(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failure, which is what the caller raises (and `destinations status`
    shows): a COMMIT that could not write (a full disk) has ended the transaction, and the
    ROLLBACK's own error ("no transaction is active") would hide why."""
    with suppress(duckdb.Error):
        con.execute("ROLLBACK")


def _append_stem(path: Path) -> str:
    """How the name of an append file of the log file at `path` begins (the writer's pid
    follows)."""
    return f"{path.name}.append-"


def sweep_append_files(path: Path) -> list[str]:
    """Delete the append files a killed writer left beside the log file at `path`; returns
    their names.

    An append writes its rows to a file beside the log file (in the workspace folder, which
    is private, never a shared /tmp: the rows are incident data) and removes it when the
    INSERT is done; a writer killed in between leaves it behind. A file is stale when the
    process named in it is gone, or when it names this process but this process is not
    writing it (a container's service has the same pid at every start); one of another
    running process is left alone.
    """
    stem = _append_stem(path)
    removed: list[str] = []
    with _staging_lock:
        for entry in path.parent.glob(f"{glob.escape(stem)}*.ndjson"):
            pid_text = entry.name.removeprefix(stem).partition("-")[0]
            if not pid_text.isdigit():
                continue
            pid = int(pid_text)
            if os.path.abspath(entry) in _staging if pid == os.getpid() else _alive(pid):
                continue
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another account's process: alive
        return True
    return True


def _ordering(query: Translated, limits: QueryLimits) -> QueryLimits:
    """One thread for a query whose lists must keep their rows' order (`make-series`):
    DuckDB's `list()` keeps the order of a sorted input only when one thread aggregates. A
    setting of the database, so such a query does not share it with the others (`access`)."""
    return replace(limits, threads=1) if query.rewritten.ordered_lists else limits


def _one_select(sql: str, con: duckdb.DuckDBPyConnection) -> bool:
    try:
        check_sql(sql, con)
    except QueryRefusedError:
        return False
    return True


def hidden_views(names: Sequence[str], *, tenant_ids: Sequence[str] | None = None) -> list[str]:
    """Temporary views that show every table with the hidden columns `names` added and, when
    `tenant_ids` is not None, only the rows of those tenants (already normalized, see
    `scope.normalize_tenant_ids`): they shadow the visible views for one query's connection
    only (`LogStore.query`). No views when neither applies."""
    wanted = [c for c in HIDDEN_COLUMNS if c.name in names]
    if not wanted and tenant_ids is None:
        return []
    views = []
    for name in TABLE_NAMES:
        schema = table_schema(name)
        where = "" if tenant_ids is None else f" WHERE {tenant_filter(schema, tenant_ids)}"
        views.append(f'CREATE TEMP VIEW "{name}" AS {_select(schema.columns, wanted, name)}{where}')
    return views


def _select(columns: Sequence[Column], hidden: Sequence[Column], table: str) -> str:
    names = ", ".join(f'"{c.name}"' for c in (*columns, *hidden))
    return f"SELECT {names} FROM {_storage(table)}"  # noqa: S608 - names from the schemas


def _schema_statements(
    schema: TableSchema, existing: Mapping[str, set[str]], views: set[str]
) -> list[str]:
    columns = (*schema.columns, *HIDDEN_COLUMNS, *BOOKKEEPING_COLUMNS)
    for col in columns:
        if not _IDENT.match(col.name):
            raise ValueError(f"{schema.name}: unsafe column name {col.name!r}")
    have = existing.get(f"{schema.name}{_STORE_SUFFIX}")
    statements: list[str] = []
    if have is None:
        body = ", ".join(
            f'"{c.name}" {c.duckdb_type}'
            + (" USING COMPRESSION zstd" if (schema.name, c.name) in _DOCUMENT_COLUMNS else "")
            for c in columns
        )
        statements.append(f"CREATE TABLE {_storage(schema.name)} ({body})")
        missing: list[str] = []
    else:
        missing = [c.name for c in columns if c.name not in have]
        statements.extend(
            f'ALTER TABLE {_storage(schema.name)} ADD COLUMN "{c.name}" {c.duckdb_type}'
            for c in columns
            if c.name in missing
        )
    if have is None or missing or schema.name not in views:
        select = _select(schema.columns, (), schema.name)
        statements.append(f'CREATE OR REPLACE VIEW main."{schema.name}" AS {select}')
    return statements


__all__ = ["LogStore", "QueryResult"]
