"""Small write helpers shared by the hub's transactions: the seq counter, stream state, cursors.

All of them run inside a write transaction opened by ``store.Hub``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from xdrsync.hub import schema as s
from xdrsync.hub.unparsed import KEY as UNPARSED_KEY
from xdrsync.hub.unparsed import UnparsedTally


def lock_and_read_counter(conn: Connection) -> int:
    """Take the writer lock and return the last assigned seq.

    The no-op UPDATE row-locks the counter on PostgreSQL, so concurrent writers queue here and
    commit in the order they take seqs: a reader can never see seq N+1 committed before N
    (the trap of a SERIAL column). SQLite already holds its one write lock (BEGIN IMMEDIATE).
    """
    if conn.dialect.name != "sqlite":
        conn.execute(
            update(s.counter)
            .where(s.counter.c.name == s.SEQ_COUNTER)
            .values(value=s.counter.c.value)
        )
    value = conn.execute(
        select(s.counter.c.value).where(s.counter.c.name == s.SEQ_COUNTER)
    ).scalar_one()
    return int(value)


def write_counter(conn: Connection, value: int) -> None:
    conn.execute(update(s.counter).where(s.counter.c.name == s.SEQ_COUNTER).values(value=value))


def _upsert_state(conn: Connection, tenant_id: str, stream: str, values: dict[str, Any]) -> None:
    # An update, then an insert where there was no row: one statement on every save but a
    # stream's first (a read had come before each write). Safe, as every caller holds the
    # writer lock (`lock_and_read_counter`): two first saves of a stream never both insert.
    table = s.sync_state
    updated = conn.execute(
        update(table)
        .where(table.c.tenant_id == tenant_id, table.c.stream == stream)
        .values(row_version=table.c.row_version + 1, **values)
    )
    if not updated.rowcount:
        conn.execute(
            table.insert().values(tenant_id=tenant_id, stream=stream, row_version=1, **values)
        )


def clear_error_and_save(
    conn: Connection,
    tenant_id: str,
    stream: str,
    doc: Mapping[str, Any] | None,
    now: datetime,
    *,
    unparsed: UnparsedTally | None = None,
) -> None:
    """Mark a successful commit; store the new state document unless it is None.

    ``unparsed``: evidence items kept unparsed in the versions this transaction stored,
    added to the stream's tally (``hub.unparsed``). The stored tally is kept whatever
    document is saved: the engine's documents know nothing of it."""
    values: dict[str, Any] = {"last_commit_at": now, "last_error": None, "last_error_at": None}
    adding = unparsed is not None and unparsed.items > 0
    if doc is not None or adding:
        stored = _stored_doc(conn, tenant_id, stream)
        saved = dict(doc) if doc is not None else dict(stored)
        tally = UnparsedTally.from_doc(stored)
        if unparsed is not None:
            tally = tally.plus(unparsed)
        saved.pop(UNPARSED_KEY, None)
        if tally.items:
            saved[UNPARSED_KEY] = tally.to_doc()
        values["doc"] = json.dumps(saved, sort_keys=True, default=str)
        if doc is not None:
            values["updated_at"] = now
    _upsert_state(conn, tenant_id, stream, values)


def _stored_doc(conn: Connection, tenant_id: str, stream: str) -> dict[str, Any]:
    stored = conn.execute(
        select(s.sync_state.c.doc).where(
            s.sync_state.c.tenant_id == tenant_id, s.sync_state.c.stream == stream
        )
    ).scalar_one_or_none()
    return dict(json.loads(stored)) if stored else {}


def save_error(
    conn: Connection,
    tenant_id: str,
    stream: str,
    message: str,
    now: datetime,
    *,
    retry_at: datetime | None = None,
) -> None:
    lock_and_read_counter(conn)  # the writer lock makes the update-then-insert upsert safe
    values: dict[str, Any] = {"last_error": message, "last_error_at": now}
    if retry_at is not None:
        doc = _stored_doc(conn, tenant_id, stream)
        doc["retry_at"] = retry_at.astimezone(UTC).isoformat()
        values["doc"] = json.dumps(doc, sort_keys=True, default=str)
    _upsert_state(conn, tenant_id, stream, values)


def advance_cursor(conn: Connection, name: str, seq: int, now: datetime, *, reset: bool) -> int:
    """Move a destination's cursor; only ``reset`` may move it back. Returns the value in
    effect afterwards."""
    if seq < 0:
        raise ValueError("a cursor cannot be negative")
    last = lock_and_read_counter(conn)
    if seq > last:
        raise ValueError(f"cursor {name!r}: seq {seq} was never assigned (last is {last})")
    table = s.cursor
    current = conn.execute(select(table.c.seq).where(table.c.name == name)).scalar_one_or_none()
    if current is None:
        conn.execute(table.insert().values(name=name, seq=seq, updated_at=now))
        return seq
    if seq < current and not reset:
        return int(current)  # a late or repeated ack: the cursor never goes back by itself
    if seq != current:
        conn.execute(update(table).where(table.c.name == name).values(seq=seq, updated_at=now))
    return seq
