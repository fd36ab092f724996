"""The two-way outbox inside the hub's transactions: queue edits, hand them to the pusher,
record what became of each, and remember the versions Defender made of our writes.

Every state change of an edit writes an audit row in the same transaction, so the trail holds
each decision with both sides' values: an edit is never dropped without a trace.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, Row, and_, exists, func, or_, select, update

from xdrsync import jsontext
from xdrsync.hub import schema as s
from xdrsync.hub.records import (
    MEMBERSHIP,
    EntityType,
    NewEdit,
    OutboxRow,
    OutboxState,
    restated_rows,
)
from xdrsync.hub.state import lock_and_read_counter, write_counter

STREAM: Final = "two_way"
OPEN: Final[tuple[OutboxState, ...]] = ("pending", "conflict")
#: The ends of an edit Defender did not take: a destination that kept it on its twin is sent
#: Defender's value again (``restate``).
LOST: Final[tuple[OutboxState, ...]] = ("failed", "overridden", "replaced")


def _dump(value: Any) -> str:
    return jsontext.dumps(value)


def _row(row: Row[Any]) -> OutboxRow:
    return OutboxRow(
        id=row.id,
        tenant_id=row.tenant_id,
        entity_type=cast(EntityType, row.entity_type),
        entity_id=row.entity_id,
        field=row.field,
        seen=jsontext.loads(row.seen) if row.seen is not None else None,
        wanted=jsontext.loads(row.wanted),
        author=row.author,
        origin=row.origin,
        created_at=row.created_at,
        state=cast(OutboxState, row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        done_at=row.done_at,
        outcome=row.outcome,
        written_version=row.written_version,
        comment_key=row.comment_key,
        theirs=jsontext.loads(row.theirs) if row.theirs is not None else None,
        conflicts=row.conflicts,
    )


def audit(
    conn: Connection,
    now: datetime,
    tenant_id: str,
    entity_type: str,
    entity_id: str,
    decision: str,
    detail: Mapping[str, Any],
) -> None:
    conn.execute(
        s.audit.insert(),
        {
            "at": now,
            "tenant_id": tenant_id,
            "stream": STREAM,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "decision": decision,
            "detail": _dump(dict(detail)),
        },
    )


def enqueue(conn: Connection, edits: Sequence[NewEdit], now: datetime) -> list[int]:
    """Queue edits (one transaction with the caller's other writes); returns their ids. An
    edit's ``created_at`` is when it was made (``NewEdit.at``), never later than ``now``.

    A field's standing conflicts made no later than the new edit are settled by it
    (``replaced``: the user decided again). One made later stands, and the new edit, older
    than that decision still waiting, is set aside at once (``replaced``, audited
    ``edit_superseded``): of one field's edits the one made last decides, as the pusher
    merges them (``twoway.merge.in_order_made``), whatever order they were queued in (an
    edit read back from Sentinel is dated by Sentinel and may be queued after a later one).
    """
    ids: list[int] = []
    for edit in edits:
        made = now if edit.at is None else min(edit.at, now)
        standing = _replace_conflicts(conn, edit, made, now) if edit.field != "comment" else None
        result = conn.execute(
            s.outbox.insert(),
            {
                "tenant_id": edit.tenant_id,
                "entity_type": edit.entity_type,
                "entity_id": edit.entity_id,
                "field": edit.field,
                "seen": _dump(edit.seen),
                "wanted": _dump(edit.wanted),
                "author": edit.author,
                "origin": edit.origin,
                "created_at": made,
                "state": "pending",
                "attempts": 0,
                "conflicts": 0,
            },
        )
        key = result.inserted_primary_key
        assert key is not None
        ids.append(int(key[0]))
        audit(
            conn,
            now,
            edit.tenant_id,
            edit.entity_type,
            edit.entity_id,
            "edit_queued",
            {
                "outbox": ids[-1],
                "field": edit.field,
                "seen": edit.seen,
                "wanted": edit.wanted,
                "author": edit.author,
                "origin": edit.origin,
            },
        )
        if standing is not None:
            (row,) = rows(conn, ids=ids[-1:])
            settle(
                conn,
                row,
                "replaced",
                now,
                "edit_superseded",
                {
                    "reason": (
                        f"made before edit #{standing.id} of the same field "
                        f"({standing.created_at.isoformat()}, by {standing.author}), which "
                        "waits in conflict: the edit made later decides the field"
                    ),
                    "superseded_by": standing.id,
                    "wanted_then": standing.wanted,
                },
            )
    return ids


def _replace_conflicts(
    conn: Connection, edit: NewEdit, made: datetime, now: datetime
) -> OutboxRow | None:
    """A new edit of a field settles that field's open conflicts made no later than it (the
    user decided again; a tie goes to the edit queued last, as in ``in_order_made``).
    Returns the newest conflict made after it, which stands: the new edit is the older."""
    o = s.outbox
    query = (
        select(o)
        .where(
            o.c.tenant_id == edit.tenant_id,
            o.c.entity_type == edit.entity_type,
            o.c.entity_id == edit.entity_id,
            o.c.field == edit.field,
            o.c.state == "conflict",
        )
        .order_by(o.c.created_at, o.c.id)
    )
    standing: OutboxRow | None = None
    for found in conn.execute(query).all():
        row = _row(found)
        if row.created_at > made:
            standing = row
            continue
        settle(
            conn,
            row,
            "replaced",
            now,
            "conflict_replaced",
            {"reason": "replaced by a later edit of the same field", "wanted_now": edit.wanted},
        )
    return standing


def any_pending(conn: Connection, tenant_ids: Collection[str] | None = None) -> bool:
    """Whether any edit is pending, due or not (one look at the state index); of
    ``tenant_ids`` only when given."""
    o = s.outbox
    pending = exists().where(o.c.state == "pending")
    if tenant_ids is not None:
        pending = pending.where(o.c.tenant_id.in_(list(tenant_ids)))
    return bool(conn.execute(select(pending)).scalar())


def due(
    conn: Connection,
    now: datetime,
    limit: int,
    tenant_id: str | None = None,
    after_id: int = 0,
    tenant_ids: Collection[str] | None = None,
) -> list[OutboxRow]:
    """Pending edits of the records one of whose edits' time has come, oldest first (from
    ``after_id`` on; of ``tenant_id``, or of ``tenant_ids``, only when given).

    A record's pending edits go together: an older edit waiting for its retry goes with a
    newer one that is due, and is merged before it. Were the newer one pushed alone, the
    older would come due later and be written over it (an owner set, then unset, ending set).
    """
    o, due_one = s.outbox, s.outbox.alias("due_one")
    waiting = (
        select(due_one.c.id)
        .where(
            due_one.c.tenant_id == o.c.tenant_id,
            due_one.c.entity_type == o.c.entity_type,
            due_one.c.entity_id == o.c.entity_id,
            due_one.c.state == "pending",
            or_(due_one.c.next_attempt_at.is_(None), due_one.c.next_attempt_at <= now),
        )
        .exists()
    )
    query = (
        select(o)
        .where(o.c.state == "pending", o.c.id > after_id, waiting)
        .order_by(o.c.id)
        .limit(limit)
    )
    if tenant_id is not None:
        query = query.where(o.c.tenant_id == tenant_id)
    if tenant_ids is not None:
        query = query.where(o.c.tenant_id.in_(list(tenant_ids)))
    return [_row(r) for r in conn.execute(query)]


def rows(
    conn: Connection,
    *,
    ids: Iterable[int] | None = None,
    tenant_id: str | None = None,
    entity: tuple[EntityType, str] | None = None,
    states: Iterable[OutboxState] | None = None,
    limit: int = 500,
) -> list[OutboxRow]:
    o = s.outbox
    query = select(o).order_by(o.c.id.desc()).limit(limit)
    if ids is not None:
        query = query.where(o.c.id.in_(list(ids)))
    if tenant_id is not None:
        query = query.where(o.c.tenant_id == tenant_id)
    if entity is not None:
        query = query.where(o.c.entity_type == entity[0], o.c.entity_id == entity[1])
    if states is not None:
        query = query.where(o.c.state.in_(list(states)))
    return [_row(r) for r in reversed(conn.execute(query).all())]


def mark_sent(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """A write for these edits is about to go out: count the attempt, keep the first time."""
    o = s.outbox
    conn.execute(update(o).where(o.c.id.in_(list(ids))).values(attempts=o.c.attempts + 1))
    conn.execute(update(o).where(o.c.id.in_(list(ids)), o.c.sent_at.is_(None)).values(sent_at=now))


def settle(
    conn: Connection,
    row: OutboxRow,
    state: OutboxState,
    now: datetime,
    decision: str,
    detail: Mapping[str, Any],
    *,
    written_version: int | None = None,
    comment_key: str | None = None,
    entity_id: str | None = None,
    theirs: tuple[Any] | None = None,
    reseen: tuple[Any] | None = None,
) -> None:
    """Move one edit to ``state`` (``pending`` with a ``next_attempt_at`` in ``detail`` to
    retry later) and audit the decision. ``attempts`` in ``detail`` is the edit's tries so
    far, ``conflicts`` how many of the last ones in a row Defender answered 409 (none when
    not given: a try that failed otherwise, or an edit settled, ends the run), and
    ``sent_at`` (None) says that its write never left: nothing to look for.
    ``theirs`` and ``reseen`` are boxed (None: left as they are) so that None, an unset
    value in Defender, is stored as one."""
    o = s.outbox
    values: dict[str, Any] = {
        "state": state,
        "outcome": str(detail.get("reason") or decision),
        "done_at": None if state in OPEN else now,
        "next_attempt_at": detail.get("next_attempt_at"),
        "conflicts": int(detail.get("conflicts") or 0),
    }
    if "attempts" in detail:
        values["attempts"] = detail["attempts"]
    if "sent_at" in detail:
        values["sent_at"] = detail["sent_at"]
    if written_version is not None:
        values["written_version"] = written_version
    if comment_key is not None:
        values["comment_key"] = comment_key
    if entity_id is not None:
        values["entity_id"] = entity_id
    if theirs is not None:
        values["theirs"] = _dump(theirs[0])
    if reseen is not None:
        values["seen"] = _dump(reseen[0])
    conn.execute(update(o).where(o.c.id == row.id).values(**values))
    audit(
        conn,
        now,
        row.tenant_id,
        row.entity_type,
        row.entity_id,
        decision,
        {
            "outbox": row.id,
            "field": row.field,
            "author": row.author,
            "origin": row.origin,
            "edited_at": row.created_at.isoformat(),
            **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in detail.items()},
        },
    )
    if state in LOST and row.entity_type == "incident" and _read_back(row):
        restate(conn, row.tenant_id, row.entity_id, now, f"edit #{row.id} ended {state}")


def _read_back(row: OutboxRow) -> bool:
    """Whether the edit was read back from a destination (origin ``<type>:<name>``, as
    ``sentinel:soc``) and is one of a field's: a comment is posted or not, and shows nothing
    on the destination's twin that Defender's value would have to replace."""
    return ":" in row.origin and row.field != "comment"


def restate(conn: Connection, tenant_id: str, incident_id: str, now: datetime, why: str) -> None:
    """Put the incident's current version into the change sequence again (a ``membership``
    change, as ``hub.membership`` makes them), so that every destination delivers it again.

    A destination keeps its analysts' edit on the twin while the edit is on its way to
    Defender (``destinations.sentinel.mapping.hold``); when the edit ends without Defender
    taking it (refused, Defender's value won the conflict, set aside), Defender may make no
    new version at all, and the twin would go on showing the value Defender does not have.
    Once per incident and transaction: several edits of it settled together state it once."""
    i, log = s.incident, s.change_log
    found = conn.execute(
        select(i.c.version, i.c.content_hash).where(
            i.c.tenant_id == tenant_id, i.c.id == incident_id
        )
    ).first()
    if found is None:
        return
    seq = lock_and_read_counter(conn)
    last = conn.execute(
        select(log.c.tenant_id, log.c.entity_id, log.c.kind, log.c.at).where(log.c.seq == seq)
    ).first()
    if last is not None and tuple(last) == (tenant_id, incident_id, MEMBERSHIP, now):
        return
    seq += 1
    change, audit = restated_rows(seq, tenant_id, incident_id, tuple(found), now)
    note = f"stated again for the destinations: {why}, Defender's value stands"
    conn.execute(log.insert(), change)
    conn.execute(s.audit.insert(), {**audit, "stream": STREAM, "detail": _dump({"note": note})})
    write_counter(conn, seq)


def record_written(
    conn: Connection,
    tenant_id: str,
    entity_type: EntityType,
    entity_id: str,
    version: int,
    author: str,
    origin: str,
    fields: Mapping[str, Any],
    now: datetime,
) -> None:
    """Remember the version Defender made of our write. If the inbound stream already stored
    it (it can read the version before this runs), its change is re-attributed here."""
    w = s.written
    exists = conn.execute(
        select(w.c.version).where(
            w.c.tenant_id == tenant_id,
            w.c.entity_type == entity_type,
            w.c.entity_id == entity_id,
            w.c.version == version,
        )
    ).first()
    if exists is None:
        conn.execute(
            w.insert(),
            {
                "tenant_id": tenant_id,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "version": version,
                "author": author,
                "origin": origin,
                "fields": _dump(dict(fields)),
                "at": now,
            },
        )
    log = s.change_log
    conn.execute(
        update(log)
        .where(
            and_(
                log.c.tenant_id == tenant_id,
                log.c.entity_type == entity_type,
                log.c.entity_id == entity_id,
                log.c.version == version,
            )
        )
        .values(origin="workspace", modified_by=author)
    )


def claimed_comment_keys(
    conn: Connection, tenant_id: str, entity_type: EntityType, entity_id: str
) -> set[str]:
    """Keys of Defender comments already known to be one of our edits."""
    o = s.outbox
    query = select(o.c.comment_key).where(
        o.c.tenant_id == tenant_id,
        o.c.entity_type == entity_type,
        o.c.entity_id == entity_id,
        o.c.comment_key.is_not(None),
    )
    return {key for (key,) in conn.execute(query)}


def counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Edits per (tenant, state)."""
    o = s.outbox
    query = select(o.c.tenant_id, o.c.state, func.count()).group_by(o.c.tenant_id, o.c.state)
    return {(tenant, state): int(n) for tenant, state, n in conn.execute(query)}


__all__ = [
    "OPEN",
    "STREAM",
    "audit",
    "claimed_comment_keys",
    "counts",
    "due",
    "enqueue",
    "mark_sent",
    "record_written",
    "restate",
    "rows",
    "settle",
]
