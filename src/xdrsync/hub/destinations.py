"""Destination bookkeeping in the hub: delivery health beside each cursor, and dead letters.

The cursor itself moves through ``state.advance_cursor`` (never backwards unless reset); this
module records what happened around it: when a destination last delivered, its last error and
since when it has been failing, and the changes it rejected for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, select, update

from xdrsync.hub import schema as s
from xdrsync.hub.chunks import chunks
from xdrsync.hub.records import DeadLetterRow, RemoteCopy
from xdrsync.hub.state import advance_cursor
from xdrsync.jsontext import dumps, loads


def record_delivery(conn: Connection, name: str, seq: int, now: datetime) -> int:
    """Acknowledge up to ``seq`` and clear the destination's error; the cursor in effect."""
    position = advance_cursor(conn, name, seq, now, reset=False)
    conn.execute(
        update(s.cursor)
        .where(s.cursor.c.name == name)
        .values(delivered_at=now, error=None, failing_since=None)
    )
    return position


def record_failure(conn: Connection, name: str, error: str, now: datetime) -> None:
    """Keep the destination's latest error; ``failing_since`` stays at the first one."""
    c = s.cursor
    row = conn.execute(select(c.c.failing_since).where(c.c.name == name)).one_or_none()
    if row is None:
        conn.execute(
            c.insert().values(name=name, seq=0, updated_at=now, error=error, failing_since=now)
        )
        return
    conn.execute(
        update(c)
        .where(c.c.name == name)
        .values(error=error, failing_since=row.failing_since or now)
    )


def add_dead_letters(
    conn: Connection, name: str, letters: Sequence[tuple[int, str, str, str, str]], now: datetime
) -> None:
    """``letters``: (seq, tenant_id, entity_type, entity_id, reason) each. One row per
    destination and change: a change rejected again (after ``destinations replay``) takes
    the place of its earlier row, with this reason and time, listed as the newest."""
    if letters:
        latest = {letter[0]: letter for letter in letters}
        letters = list(latest.values())
        d = s.dead_letter
        for part in chunks(sorted(latest)):
            conn.execute(delete(d).where(d.c.destination == name, d.c.seq.in_(part)))
        conn.execute(
            s.dead_letter.insert(),
            [
                {
                    "destination": name,
                    "seq": seq,
                    "tenant_id": tenant_id,
                    "entity_type": entity_type,
                    "entity_id": entity_id,
                    "reason": reason,
                    "at": now,
                }
                for seq, tenant_id, entity_type, entity_id, reason in letters
            ],
        )


def clear_dead_letters(conn: Connection, name: str, now: datetime) -> int:
    """Forget one destination's dead letters (once their cause is dealt with: a replay, or a
    record that will never map); how many. The audit keeps a row saying how many went."""
    d = s.dead_letter
    gone = conn.execute(delete(d).where(d.c.destination == name)).rowcount or 0
    if gone:
        conn.execute(
            s.audit.insert(),
            {
                "at": now,
                "tenant_id": "",
                "stream": name,
                "entity_type": "destination",
                "entity_id": name,
                "decision": "dead_letters_cleared",
                "detail": dumps({"dead_letters": gone}),
            },
        )
    return int(gone)


def list_dead_letters(conn: Connection, name: str | None, limit: int) -> list[DeadLetterRow]:
    d = s.dead_letter
    query = select(d).order_by(d.c.id.desc()).limit(limit)
    if name is not None:
        query = query.where(d.c.destination == name)
    return [
        DeadLetterRow(
            id=row.id,
            destination=row.destination,
            seq=row.seq,
            tenant_id=row.tenant_id,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            reason=row.reason,
            at=row.at,
        )
        for row in conn.execute(query)
    ]


def dead_letter_counts(conn: Connection) -> dict[str, int]:
    d = s.dead_letter
    query = select(d.c.destination, func.count()).group_by(d.c.destination)
    return {name: int(count) for name, count in conn.execute(query)}


def change_time(conn: Connection, seq: int) -> datetime | None:
    """When the hub recorded the first change after ``seq`` (None when there is none): the
    age of the oldest change a destination at ``seq`` has not delivered."""
    c = s.change_log
    query = select(c.c.at).where(c.c.seq > seq).order_by(c.c.seq).limit(1)
    value: datetime | None = conn.execute(query).scalar_one_or_none()
    return value


def get_remote_copy(conn: Connection, destination: str, name: str) -> RemoteCopy | None:
    r = s.remote_copy
    row = conn.execute(
        select(r).where(r.c.destination == destination, r.c.name == name)
    ).one_or_none()
    if row is None:
        return None
    return RemoteCopy(
        name=row.name,
        tenant_id=row.tenant_id,
        entity_id=row.entity_id,
        etag=row.etag,
        properties=loads(row.properties),
        children=frozenset(loads(row.children)),
        pending=loads(row.pending) if row.pending is not None else None,
    )


def save_remote_copy(conn: Connection, destination: str, copy: RemoteCopy, now: datetime) -> None:
    r = s.remote_copy
    conn.execute(delete(r).where(r.c.destination == destination, r.c.name == copy.name))
    conn.execute(
        r.insert().values(
            destination=destination,
            name=copy.name,
            tenant_id=copy.tenant_id,
            entity_id=copy.entity_id,
            etag=copy.etag,
            properties=dumps(copy.properties),
            children=dumps(sorted(copy.children)),
            pending=dumps(copy.pending) if copy.pending is not None else None,
            at=now,
        )
    )
