"""Queries about the sync itself: stream state, quarantine, audit, cursors, counts; and clearing
the quarantine, which an operator does once its cause is dealt with."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Table, delete, func, select

from xdrsync.hub import schema as s
from xdrsync.hub.records import AuditRow, CursorRow, QuarantineRow, StreamStateRow


def get_state(conn: Connection, tenant_id: str, stream: str) -> dict[str, Any] | None:
    doc = conn.execute(
        select(s.sync_state.c.doc).where(
            s.sync_state.c.tenant_id == tenant_id, s.sync_state.c.stream == stream
        )
    ).scalar_one_or_none()
    return json.loads(doc) if doc is not None else None


def quarantine_counts(conn: Connection) -> dict[tuple[str, str], int]:
    q = s.quarantine
    query = select(q.c.tenant_id, q.c.stream, func.count()).group_by(q.c.tenant_id, q.c.stream)
    return {(tenant, stream): int(n) for tenant, stream, n in conn.execute(query)}


def list_states(conn: Connection) -> list[StreamStateRow]:
    bad = quarantine_counts(conn)
    t = s.sync_state
    rows = conn.execute(select(t).order_by(t.c.tenant_id, t.c.stream)).all()
    listed = [
        StreamStateRow(
            tenant_id=row.tenant_id,
            stream=row.stream,
            doc=json.loads(row.doc) if row.doc is not None else None,
            updated_at=row.updated_at,
            last_commit_at=row.last_commit_at,
            last_error=row.last_error,
            last_error_at=row.last_error_at,
            quarantined=bad.get((row.tenant_id, row.stream), 0),
        )
        for row in rows
    ]
    return listed


def list_quarantine(conn: Connection, limit: int, tenant_id: str | None) -> list[QuarantineRow]:
    q = s.quarantine
    query = select(q).order_by(q.c.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(q.c.tenant_id == tenant_id)
    return [
        QuarantineRow(
            id=row.id,
            tenant_id=row.tenant_id,
            stream=row.stream,
            at=row.at,
            reason=row.reason,
            raw=row.raw,
        )
        for row in conn.execute(query)
    ]


def clear_quarantine(
    conn: Connection, now: datetime, tenant_id: str | None, stream: str | None
) -> int:
    """Forget the quarantined records (of one tenant, one stream); how many. The audit keeps
    one row per tenant and stream saying how many went."""
    q = s.quarantine
    where = []
    if tenant_id is not None:
        where.append(q.c.tenant_id == tenant_id)
    if stream is not None:
        where.append(q.c.stream == stream)
    # Up to the newest row seen now: one the service quarantines meanwhile stays, counted.
    last = conn.execute(select(func.max(q.c.id)).where(*where)).scalar()
    if last is None:
        return 0
    where.append(q.c.id <= last)
    groups = (q.c.tenant_id, q.c.stream)
    counts = conn.execute(select(*groups, func.count()).where(*where).group_by(*groups)).all()
    conn.execute(delete(q).where(*where))
    conn.execute(
        s.audit.insert(),
        [
            {
                "at": now,
                "tenant_id": tenant,
                "stream": name,
                "entity_type": "record",
                "entity_id": None,
                "decision": "quarantine_cleared",
                "detail": json.dumps({"records": int(n)}),
            }
            for tenant, name, n in counts
        ],
    )
    return sum(int(n) for _, _, n in counts)


def audit_tail(conn: Connection, limit: int, tenant_id: str | None) -> list[AuditRow]:
    """The newest audit rows, newest first."""
    a = s.audit
    query = select(a).order_by(a.c.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(a.c.tenant_id == tenant_id)
    return [
        AuditRow(
            id=row.id,
            at=row.at,
            tenant_id=row.tenant_id,
            stream=row.stream,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            decision=row.decision,
            old_version=row.old_version,
            new_version=row.new_version,
            seq=row.seq,
            detail=json.loads(row.detail) if row.detail else {},
        )
        for row in conn.execute(query)
    ]


def max_seq(conn: Connection) -> int:
    value = conn.execute(
        select(s.counter.c.value).where(s.counter.c.name == s.SEQ_COUNTER)
    ).scalar_one()
    return int(value)


def get_cursor(conn: Connection, name: str) -> int:
    value = conn.execute(select(s.cursor.c.seq).where(s.cursor.c.name == name)).scalar_one_or_none()
    return int(value) if value is not None else 0


def list_cursors(conn: Connection) -> list[CursorRow]:
    c = s.cursor
    return [
        CursorRow(
            name=row.name,
            seq=row.seq,
            updated_at=row.updated_at,
            delivered_at=row.delivered_at,
            error=row.error,
            failing_since=row.failing_since,
        )
        for row in conn.execute(select(c).order_by(c.c.name))
    ]


_COUNTED: dict[str, Table] = {
    "incidents": s.incident,
    "alerts": s.alert,
    "evidence": s.evidence,
    "comments": s.comment,
    "incident_versions": s.incident_version,
    "alert_versions": s.alert_version,
    "quarantined": s.quarantine,
}


#: Every figure ``counts`` gives a tenant (a tenant with no rows yet has none of them).
COUNTED: Final = (*_COUNTED, "versions")


def counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Rows per tenant: ``{tenant_id: {"incidents": n, "alerts": n, ..., "versions": n}}``."""
    result: dict[str, dict[str, int]] = {}
    for name, table in _COUNTED.items():
        query = select(table.c.tenant_id, func.count()).group_by(table.c.tenant_id)
        for tenant, n in conn.execute(query):
            result.setdefault(tenant, dict.fromkeys(_COUNTED, 0))[name] = int(n)
    for per_tenant in result.values():
        per_tenant["versions"] = per_tenant["incident_versions"] + per_tenant["alert_versions"]
    return result
