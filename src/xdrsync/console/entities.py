"""Entities across incidents: what the evidence names, and which incidents share it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select

from xdrsync.console.index import like_escape
from xdrsync.hub import Hub
from xdrsync.hub import schema as s

MAX_INCIDENTS_LISTED = 50


def _like(text: str) -> ColumnElement[str]:
    """A LIKE pattern of ``text`` anywhere, lowered by the database as the names it meets are
    (``Lowered``): the same fold on both sides, whatever the letters."""
    return s.Lowered(literal(f"%{like_escape(text)}%"))


def entities(
    hub: Hub, tenant_ids: Sequence[str], kind: str | None, search: str | None, top: int
) -> list[dict[str, Any]]:
    """Entities of these tenants (of one ``kind``, matching ``search`` in their key or name),
    the ones most incidents share first: ``tenantId``, ``kind``, ``key``, ``name``,
    ``incidentCount``, ``incidents`` (Defender ids, at most 50)."""
    if not tenant_ids:
        return []
    e = s.evidence
    where: list[ColumnElement[bool]] = [e.c.tenant_id.in_(tenant_ids), e.c.entity_key.is_not(None)]
    if kind:
        where.append(e.c.entity_kind == kind)
    if search:
        pattern = _like(search)
        where.append(
            s.Lowered(e.c.entity_key).like(pattern, escape="\\")
            | s.Lowered(e.c.display_name).like(pattern, escape="\\")
        )
    shared = func.count(func.distinct(e.c.incident_id))
    query = (
        select(e.c.tenant_id, e.c.entity_kind, e.c.entity_key, func.max(e.c.display_name), shared)
        .where(*where)
        .group_by(e.c.tenant_id, e.c.entity_kind, e.c.entity_key)
        .order_by(shared.desc(), e.c.entity_kind, e.c.entity_key)
        .limit(top)
    )
    out: list[dict[str, Any]] = []
    with hub.reading() as conn:
        for tenant_id, entity_kind, key, name, count in conn.execute(query):
            incidents = conn.execute(
                select(e.c.incident_id)
                .where(
                    e.c.tenant_id == tenant_id,
                    e.c.entity_kind == entity_kind,
                    s.entity_key_prefix(key),  # what the index holds (ENTITY_KEY_INDEXED)
                    e.c.entity_key == key,
                    e.c.incident_id.is_not(None),
                )
                .distinct()
                .limit(MAX_INCIDENTS_LISTED)
            ).scalars()
            out.append(
                {
                    "tenantId": tenant_id,
                    "kind": entity_kind,
                    "key": key,
                    "name": name,
                    "incidentCount": int(count),
                    "incidents": sorted(str(i) for i in incidents),
                }
            )
    return out


__all__ = ["entities"]
