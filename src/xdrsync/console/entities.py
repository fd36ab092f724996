"""Entities across incidents: what the evidence names, and which incidents share it.

Paged by keyset, as the queue is: the opaque token holds the last entity's place in the order
(incidents sharing it, kind, key, tenant)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select

from xdrsync import jsontext
from xdrsync.console.index import like_escape
from xdrsync.hub import Hub
from xdrsync.hub import schema as s

MAX_INCIDENTS_LISTED = 50


def _like(text: str) -> ColumnElement[str]:
    """A LIKE pattern of ``text`` anywhere, lowered by the database as the names it meets are
    (``Lowered``): the same fold on both sides, whatever the letters."""
    return s.Lowered(literal(f"%{like_escape(text)}%"))


def entity_token(row: dict[str, Any]) -> str:
    """The page token that goes on after ``row`` (one of ``entities``)."""
    place = [row["incidentCount"], row["kind"], row["key"], row["tenantId"]]
    body = jsontext.dumps(place).encode("utf-8")
    return base64.urlsafe_b64encode(body).decode("ascii").rstrip("=")


def _place(token: str) -> tuple[int, str, str, str]:
    bad = ValueError("the page token is not one this server made")
    try:
        place = jsontext.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise bad from None
    if not (isinstance(place, list) and len(place) == 4):
        raise bad
    count, *names = place
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 2**63:
        raise bad
    if not all(isinstance(name, str) for name in names):
        raise bad
    return count, names[0], names[1], names[2]


def entities(
    hub: Hub,
    tenant_ids: Sequence[str],
    kind: str | None,
    search: str | None,
    top: int,
    *,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """Entities of these tenants (of one ``kind``, matching ``search`` in their key or name),
    the ones most incidents share first: ``tenantId``, ``kind``, ``key``, ``name``,
    ``incidentCount``, ``incidents`` (Defender ids, at most 50). ``after``: a token of
    ``entity_token``, for the entities after that one; ``ValueError`` if it is not one."""
    place = _place(after) if after is not None else None
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
        .order_by(shared.desc(), e.c.entity_kind, e.c.entity_key, e.c.tenant_id)
        .limit(top)
    )
    if place is not None:
        count, kind_after, key_after, tenant_after = place
        query = query.having(
            or_(
                shared < count,
                and_(
                    shared == count,
                    or_(
                        e.c.entity_kind > kind_after,
                        and_(
                            e.c.entity_kind == kind_after,
                            or_(
                                e.c.entity_key > key_after,
                                and_(e.c.entity_key == key_after, e.c.tenant_id > tenant_after),
                            ),
                        ),
                    ),
                ),
            )
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


__all__ = ["entities", "entity_token"]
