"""The incident queue: filters, sorts and keyset pages over ``queue_entry`` (console/index.py),
with each listed incident shown as the workspace sees it (edits still on their way applied)
and its two-way sync state from the outbox.

Filters apply to the index, i.e. to Defender's values as last read; the items of a page then
show the workspace's view (``twoway.edits.view``), so an incident whose status a user just
changed still lists under its old status, marked ``pending``, until Defender has it.

``syncState`` of an incident, from its own outbox rows (edits of its alerts do not count):
``conflict`` if an edit waits for a person; else ``failed`` if the newest edit of some field
failed within ``FAILED_FOR`` (24 hours; after that it is history, in the incident's edits);
else ``pending`` if an edit is on its way (pending, or confirmed but not read back yet);
else ``synced``.

Paging is by keyset: the opaque token holds the last item's sort values and its
(tenant_id, incident_id), the tie-breakers that make the order total. A missing value
(``created``, ``firstActivity``, ``lastActivity``) sorts as the smallest of all.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)

from xdrsync import jsontext
from xdrsync.console.index import (
    SEVERITY_RANK,
    UNKNOWN_RANK,
    decode_list,
    is_newer_severity,
    like_escape,
    member_pattern,
)
from xdrsync.hub import Hub
from xdrsync.hub import schema as s
from xdrsync.hub.chunks import chunks
from xdrsync.hub.outbox import _row as outbox_row
from xdrsync.hub.payload import (
    datetime_from_ticks,
    enum_text,
    ticks_from_datetime,
    version_text,
)
from xdrsync.hub.records import OutboxRow
from xdrsync.hub.status import get_cursor, max_seq
from xdrsync.layout import QUEUE_DESTINATION
from xdrsync.models import IncidentStatus
from xdrsync.tables.vocab import NEWER_SEVERITY
from xdrsync.twoway.edits import view

ID_SEPARATOR: Final = "~"
FAILED_FOR: Final = timedelta(hours=24)
UNASSIGNED: Final = "unassigned"
#: A missing or unknown severity, and a missing status, as the counts name them.
UNKNOWN_SEVERITY: Final = "unknown"
MAX_BUCKETS: Final = 1000  # zero-filled buckets of queue_stats' time series, at most
Q = s.queue_entry

#: API sort name → the index's columns, most significant first (tenant and id follow).
SORTS: Final[Mapping[str, tuple[str, ...]]] = {
    "lastUpdate": ("last_update_at",),
    "created": ("created_at",),
    "severity": ("severity_rank", "last_update_at"),
    "firstActivity": ("first_activity_at",),
    "lastActivity": ("last_activity_at",),
    "alertCount": ("alert_count", "last_update_at"),
}
_NULLABLE: Final = frozenset({"created_at", "first_activity_at", "last_activity_at"})
_DATETIMES: Final = frozenset(
    {"created_at", "last_update_at", "first_activity_at", "last_activity_at"}
)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` (microseconds when there are any)."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{utc.microsecond:06d}Z" if utc.microsecond else f"{text}Z"


def workspace_id(names: Mapping[str, str], tenant_id: str, entity_id: str) -> str:
    return f"{names.get(tenant_id, tenant_id)}{ID_SEPARATOR}{entity_id}"


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows. Each tuple means "any of" (empty: no filter). ``owner`` is an
    address, matched in any case (``Rui@Contoso.com`` finds ``RUI@CONTOSO.COM``; the owner
    index, on the column as written, does not serve it), ``"unassigned"``, or None.
    ``since``/``until`` bound ``lastUpdateDateTime`` (``since <= t < until``). Severities
    are as the counts name them (``severity_name``): ``high`` takes one newer than this
    version, ``unknown`` a missing or unknown one. ``search`` is a case-insensitive
    substring of the title, alert titles, entities and comments, or an incident's or alert's
    whole id; ``entity`` (kind, key) an entity the incidents' evidence names, exactly (the
    incident page's "also in N incidents"); ``incidents`` (tenant id, incident id) pairs,
    any of them (the queue's live updates refresh rows that left its filters by them);
    ``sort`` is one of ``SORTS``."""

    statuses: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    tenant_ids: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()  # MITRE tactics of the alerts (InitialAccess, ...)
    tags: tuple[str, ...] = ()
    owner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    entity: tuple[str, str] | None = None
    incidents: tuple[tuple[str, str], ...] = ()
    sort: str = "lastUpdate"
    descending: bool = True


@dataclass(frozen=True)
class QueueItem:
    """One incident of the queue, as docs/api.md lists it (``to_json``)."""

    tenant_id: str
    incident_id: str
    display_name: str | None
    severity: str | None
    status: str | None
    assigned_to: str | None
    classification: str | None
    determination: str | None
    custom_tags: tuple[str, ...]
    product_sources: tuple[str, ...]
    tactics: tuple[str, ...]
    alert_count: int
    created: datetime | None
    last_update: datetime
    first_activity: datetime | None
    last_activity: datetime | None
    merged_into: str | None
    sync_state: str
    seq: int = 0  # the change position the index row was read at

    def to_json(self, names: Mapping[str, str]) -> dict[str, Any]:
        return {
            "id": workspace_id(names, self.tenant_id, self.incident_id),
            "incidentId": self.incident_id,
            "tenant": names.get(self.tenant_id, self.tenant_id),
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "severity": self.severity,
            "status": self.status,
            "assignedTo": self.assigned_to,
            "classification": self.classification,
            "determination": self.determination,
            "customTags": list(self.custom_tags),
            "productSources": list(self.product_sources),
            "tactics": list(self.tactics),
            "alertCount": self.alert_count,
            "createdDateTime": iso(self.created),
            "lastUpdateDateTime": iso(self.last_update),
            "firstActivityDateTime": iso(self.first_activity),
            "lastActivityDateTime": iso(self.last_activity),
            "mergedInto": (
                workspace_id(names, self.tenant_id, self.merged_into) if self.merged_into else None
            ),
            "syncState": self.sync_state,
        }


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem] = field(default_factory=list)
    next_token: str | None = None


# -- filters ----------------------------------------------------------------------------------


def _canonical_status(value: str) -> str:
    return enum_text(IncidentStatus(value)) or value


def _scope(flt: QueueFilter, visible_tenant_ids: Sequence[str]) -> list[str]:
    tenants = list(dict.fromkeys(visible_tenant_ids))
    if flt.tenant_ids:
        wanted = set(flt.tenant_ids)
        tenants = [t for t in tenants if t in wanted]
    return tenants


def _tenant_condition(tenants: Sequence[str]) -> ColumnElement[bool]:
    """One tenant: by its index. Several: as an expression no index serves (``tenant_id ||
    ''``), so that the planner walks the sort's index and stops after one page, instead of
    reading every row of those tenants by the tenant index and sorting them all — which
    SQLite, without table statistics, would otherwise choose (80-140 ms a page at 100,000
    incidents against well under 1 ms; bench/console.py)."""
    if len(tenants) == 1:
        return Q.c.tenant_id == tenants[0]
    return Q.c.tenant_id.concat("").in_(list(tenants))


def severity_name(severity: str | None) -> str:
    """The severity an incident counts and filters under: a Graph severity in lower case,
    ``high`` for one newer than this version (Graph's ``critical``, say: High, as the log
    tables and Sentinel read it, ``tables.vocab.NEWER_SEVERITY``), or ``unknown`` for a
    missing or unknown one (``unknown``, ``unknownFutureValue``). The items keep Defender's
    own word."""
    lowered = (severity or "").strip().lower()
    if lowered in SEVERITY_RANK:
        return lowered
    return NEWER_SEVERITY.lower() if is_newer_severity(severity) else UNKNOWN_SEVERITY


def _severity_condition(values: Sequence[str]) -> ColumnElement[bool]:
    """Any of these severities, by the index's rank (``index.severity_rank``), so that the
    filter lists what ``queue_stats`` counts under each: ``high`` takes a newer severity too,
    ``unknown`` a missing or unknown one (rank -1)."""
    wanted = {v.lower() for v in values}
    ranks = {SEVERITY_RANK[v] for v in wanted if v in SEVERITY_RANK}
    if UNKNOWN_SEVERITY in wanted:
        ranks.add(UNKNOWN_RANK)
    others = wanted - SEVERITY_RANK.keys() - {UNKNOWN_SEVERITY}
    parts: list[ColumnElement[bool]] = []
    if ranks:
        parts.append(Q.c.severity_rank.in_(sorted(ranks)))
    if others:  # a value spelled out (e.g. critical): as written, in any case
        parts.append(func.lower(Q.c.severity).in_(sorted(others)))
    return or_(*parts)


def _conditions(flt: QueueFilter, tenants: Sequence[str]) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [_tenant_condition(tenants)]
    if flt.statuses:
        wanted: ColumnElement[bool] = Q.c.status.in_(
            sorted({_canonical_status(v) for v in flt.statuses})
        )
        if any(v.lower() == UNKNOWN_SEVERITY for v in flt.statuses):  # as the counts name it
            wanted = or_(wanted, Q.c.status.is_(None), Q.c.status == "")
        where.append(wanted)
    if flt.severities:
        where.append(_severity_condition(flt.severities))
    if flt.products:
        where.append(
            or_(*(Q.c.products.ilike(member_pattern(v), escape="\\") for v in flt.products))
        )
    if flt.tactics:
        where.append(or_(*(Q.c.tactics.ilike(member_pattern(v), escape="\\") for v in flt.tactics)))
    if flt.tags:  # any case of any letter, as the owner below
        tags = s.Lowered(Q.c.tags)
        where.append(
            or_(*(tags.like(s.Lowered(literal(member_pattern(v))), escape="\\") for v in flt.tags))
        )
    if flt.owner is not None:
        if flt.owner.lower() == UNASSIGNED:
            where.append(or_(Q.c.assigned_to.is_(None), Q.c.assigned_to == ""))
        else:  # addresses are case-insensitive (Defender keeps them as they were typed)
            # Both sides folded alike, every letter on both databases (`schema.Lowered`).
            where.append(s.Lowered(Q.c.assigned_to) == s.Lowered(literal(flt.owner)))
    if flt.since is not None:
        where.append(Q.c.last_update_at >= flt.since)
    if flt.until is not None:
        where.append(Q.c.last_update_at < flt.until)
    if flt.search:
        where.append(_search_condition(flt.search.strip(), tenants))
    if flt.incidents:
        where.append(tuple_(Q.c.tenant_id, Q.c.incident_id).in_(sorted(set(flt.incidents))))
    if flt.entity is not None:
        kind, key = flt.entity
        e = s.evidence
        where.append(
            exists().where(
                e.c.tenant_id == Q.c.tenant_id,
                e.c.incident_id == Q.c.incident_id,
                e.c.entity_kind == kind,
                s.entity_key_prefix(key),  # what the index holds (ENTITY_KEY_INDEXED)
                e.c.entity_key == key,
            )
        )
    return where


def _search_condition(text: str, tenants: Sequence[str]) -> ColumnElement[bool]:
    """The search's text in the incident's (``search``), or the whole of its id or of one of
    its alerts' ids, as an email or a ticket gives them (``4512``,
    ``da6392977338_1527929519``), pasted. The alerts are looked up by their key, tenant by
    tenant."""
    a = s.alert
    pattern = "%" + like_escape(text.lower()) + "%"
    with_alert = select(a.c.tenant_id, a.c.incident_id).where(
        a.c.tenant_id.in_(list(dict.fromkeys(tenants))), a.c.id == text
    )
    return or_(
        Q.c.search.like(pattern, escape="\\"),
        Q.c.incident_id == text,
        tuple_(Q.c.tenant_id, Q.c.incident_id).in_(with_alert),
    )


def unmatched(hub: Hub, flt: QueueFilter, visible_tenant_ids: Sequence[str]) -> QueueFilter:
    """The values of ``flt``'s statuses, severities and products that no incident of these
    tenants has now, compared as ``_conditions`` compares them (a status canonical, a
    severity or product in any case). Reads each column asked about once (the API asks only
    about values this version does not know, so a request of known ones reads nothing)."""
    if not (flt.statuses or flt.severities or flt.products):
        return flt
    tenants = list(dict.fromkeys(visible_tenant_ids))
    found: dict[str, set[str]] = {"status": set(), "severity": set(), "products": set()}
    asked = [
        name
        for name, values in (
            ("status", flt.statuses),
            ("severity", flt.severities),
            ("products", flt.products),
        )
        if values
    ]
    if tenants:
        with hub.reading() as conn:
            for name in asked:
                query = select(Q.c[name]).where(_tenant_condition(tenants)).distinct()
                for value in conn.execute(query).scalars():
                    members = decode_list(value) if name == "products" else [value]
                    found[name].update(m if name == "status" else m.lower() for m in members if m)
    return QueueFilter(
        statuses=tuple(v for v in flt.statuses if _canonical_status(v) not in found["status"]),
        severities=tuple(v for v in flt.severities if v.lower() not in found["severity"]),
        products=tuple(v for v in flt.products if v.lower() not in found["products"]),
    )


# -- keyset paging ----------------------------------------------------------------------------


def _sort_columns(flt: QueueFilter) -> tuple[str, ...]:
    if flt.sort not in SORTS:
        raise ValueError(f"sort is one of {', '.join(SORTS)}")
    return (*SORTS[flt.sort], "tenant_id", "incident_id")


def _order_by(names: Sequence[str], descending: bool, dialect: str) -> list[Any]:
    order: list[Any] = []
    for name in names:
        column = Q.c[name]
        # NULL is the smallest value on every engine: SQLite's own rule (said explicitly, it
        # would keep SQLite from reading a descending order off an index), not PostgreSQL's.
        if name in _NULLABLE and dialect != "sqlite":
            order.append(column.desc().nulls_last() if descending else column.asc().nulls_first())
        else:
            order.append(column.desc() if descending else column.asc())
    return order


def _beyond(name: str, value: Any, descending: bool) -> ColumnElement[bool]:
    column = Q.c[name]
    if name in _NULLABLE:
        if value is None:
            return false() if descending else column.is_not(None)
        return or_(column < value, column.is_(None)) if descending else column > value
    result: ColumnElement[bool] = column < value if descending else column > value
    return result


def _level(name: str, value: Any) -> ColumnElement[bool]:
    column = Q.c[name]
    return column.is_(None) if value is None else column == value


def _at_or_beyond(name: str, value: Any, descending: bool) -> ColumnElement[bool]:
    column = Q.c[name]
    if name in _NULLABLE:
        if value is None:
            return column.is_(None) if descending else true()
        return or_(column <= value, column.is_(None)) if descending else column >= value
    result: ColumnElement[bool] = column <= value if descending else column >= value
    return result


def _after(names: Sequence[str], values: Sequence[Any], descending: bool) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order; the leading bound lets an index seek."""
    condition = _beyond(names[-1], values[-1], descending)
    for name, value in zip(reversed(names[:-1]), reversed(values[:-1]), strict=True):
        condition = or_(_beyond(name, value, descending), and_(_level(name, value), condition))
    return and_(_at_or_beyond(names[0], values[0], descending), condition)


def _token(flt: QueueFilter, names: Sequence[str], row: Row[Any]) -> str:
    values = [iso(row._mapping[n]) if n in _DATETIMES else row._mapping[n] for n in names]
    body = jsontext.dumps([flt.sort, flt.descending, values])
    return base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")


def _untoken(flt: QueueFilter, names: Sequence[str], token: str) -> list[Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        sort, descending, values = jsontext.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise ValueError("the page token is not one this server made") from None
    if sort != flt.sort or descending != flt.descending or not isinstance(values, list):
        raise ValueError("the page token belongs to another sort order")
    if len(values) != len(names):
        raise ValueError("the page token is not one this server made")
    return [_token_value(name, value) for name, value in zip(names, values, strict=True)]


def _token_value(name: str, value: Any) -> Any:
    bad = ValueError("the page token is not one this server made")
    if value is None:
        if name not in _NULLABLE:
            raise bad
        return None
    if name in _DATETIMES:
        if not isinstance(value, str):
            raise bad
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise bad  # the hub binds zoned times only
            return moment.astimezone(UTC)
        except (ValueError, OverflowError):  # not a time, or none UTC can hold
            raise bad from None
    wanted = int if name in ("severity_rank", "alert_count") else str
    if not isinstance(value, wanted) or isinstance(value, bool):
        raise bad
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise bad  # beyond what the database's integers hold
    return value


# -- the queue --------------------------------------------------------------------------------


def list_queue(
    hub: Hub,
    flt: QueueFilter,
    visible_tenant_ids: Sequence[str],
    top: int = 50,
    after: str | None = None,
    *,
    now: datetime | None = None,
) -> QueuePage:
    """One page of the queue (``top`` items) after the page token ``after``; raises
    ``ValueError`` for an unknown sort or a token that is not this query's."""
    names = _sort_columns(flt)
    if top < 1:
        raise ValueError("top must be at least 1")
    tenants = _scope(flt, visible_tenant_ids)
    where = _conditions(flt, tenants)
    if after:
        where.append(_after(names, _untoken(flt, names, after), flt.descending))
    if not tenants:
        return QueuePage()
    with hub.reading() as conn:
        order = _order_by(names, flt.descending, conn.dialect.name)
        rows = conn.execute(select(Q).where(*where).order_by(*order).limit(top + 1)).all()
        more = len(rows) > top
        rows = rows[:top]
        overlay = _overlays(conn, [(r.tenant_id, r.incident_id) for r in rows])
    moment = now or datetime.now(UTC)
    items = [
        item_from_row(row, *overlay.get((row.tenant_id, row.incident_id), (None, [])), moment)
        for row in rows
    ]
    token = _token(flt, names, rows[-1]) if more and rows else None
    return QueuePage(items=items, next_token=token)


def _overlays(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int | None, list[OutboxRow]]]:
    """Each incident's exact version (ticks) and its outbox rows, oldest first."""
    found: dict[tuple[str, str], tuple[int | None, list[OutboxRow]]] = {}
    by_tenant: dict[str, list[str]] = {}
    for tenant_id, incident_id in keys:
        by_tenant.setdefault(tenant_id, []).append(incident_id)
    o, i = s.outbox, s.incident
    for tenant_id, ids in by_tenant.items():
        for part in chunks(ids):
            versions = dict(
                conn.execute(
                    select(i.c.id, i.c.version).where(i.c.tenant_id == tenant_id, i.c.id.in_(part))
                ).all()
            )
            edits: dict[str, list[OutboxRow]] = {}
            query = (
                select(o)
                .where(
                    o.c.tenant_id == tenant_id,
                    o.c.entity_type == "incident",
                    o.c.entity_id.in_(part),
                )
                .order_by(o.c.id)
            )
            for row in conn.execute(query):
                edits.setdefault(row.entity_id, []).append(outbox_row(row))
            for incident_id in part:
                found[(tenant_id, incident_id)] = (
                    versions.get(incident_id),
                    edits.get(incident_id, []),
                )
    return found


def sync_state(edits: Sequence[OutboxRow], version: int | None, now: datetime) -> str:
    """``synced``, ``pending``, ``conflict`` or ``failed`` (see the module's notes)."""
    if any(e.state == "conflict" for e in edits):
        return "conflict"
    newest: dict[str, OutboxRow] = {}
    for edit in edits:
        if edit.field != "comment":
            newest[edit.field] = edit  # rows come oldest first
    comments = [e for e in edits if e.field == "comment"]
    for edit in [*newest.values(), *comments]:
        if edit.state == "failed" and (edit.done_at or edit.created_at) >= now - FAILED_FOR:
            return "failed"
    for edit in edits:
        if edit.state == "pending" or (
            edit.state == "confirmed"
            and edit.written_version is not None
            and (version is None or edit.written_version > version)
        ):
            return "pending"
    return "synced"


def workspace_view(
    record: Mapping[str, Any], version: int | None, edits: Sequence[OutboxRow]
) -> dict[str, Any]:
    """``record`` (Graph names) with the edits still on their way applied."""
    base = dict(record)
    if version is not None:
        base["lastUpdateDateTime"] = version_text(version)
    return view(base, edits)


def item_from_row(
    row: Any, version: int | None, edits: Sequence[OutboxRow], now: datetime
) -> QueueItem:
    """A queue item from an index row (anything with its columns as attributes), the
    incident's exact version (ticks) and its outbox rows, oldest first."""
    version = _version_shown(row, version)
    shown: dict[str, Any] = {
        "status": row.status,
        "assignedTo": row.assigned_to,
        "classification": row.classification,
        "determination": row.determination,
        "customTags": decode_list(row.tags),
    }
    if edits:
        shown = workspace_view(shown, version, edits)
    return QueueItem(
        tenant_id=row.tenant_id,
        incident_id=row.incident_id,
        display_name=row.display_name,
        severity=row.severity,
        status=shown.get("status"),
        assigned_to=shown.get("assignedTo") or None,
        classification=shown.get("classification"),
        determination=shown.get("determination"),
        custom_tags=tuple(str(t) for t in shown.get("customTags") or ()),
        product_sources=tuple(decode_list(row.products)),
        tactics=tuple(decode_list(row.tactics)),
        alert_count=row.alert_count,
        created=row.created_at,
        last_update=row.last_update_at,
        first_activity=row.first_activity_at,
        last_activity=row.last_activity_at,
        merged_into=row.merged_into,
        sync_state=sync_state(edits, version, now),
        seq=row.seq,
    )


def _version_shown(row: Any, version: int | None) -> int | None:
    """The version the row's values are of: the incident's (``version``) when the index has
    caught up with it, else the older one it was computed from. The edits Defender confirmed
    in between are not in the row yet, and still count as on their way (a confirmed close
    must not show the incident open again, as "synced", until the index catches up)."""
    if version is None or row.last_update_at is None:
        return version
    indexed = row.last_update_at
    if indexed.tzinfo is None:
        indexed = indexed.replace(tzinfo=UTC)
    if indexed >= datetime_from_ticks(version):  # the same version (ticks keep a 7th digit)
        return version
    return ticks_from_datetime(indexed)


def queue_item(
    conn: Connection, tenant_id: str, incident_id: str, *, now: datetime | None = None
) -> QueueItem | None:
    """One incident's queue item (None before the index has it), in the caller's snapshot."""
    row = conn.execute(
        select(Q).where(Q.c.tenant_id == tenant_id, Q.c.incident_id == incident_id)
    ).first()
    if row is None:
        return None
    version, edits = _overlays(conn, [(tenant_id, incident_id)])[(tenant_id, incident_id)]
    return item_from_row(row, version, edits, now or datetime.now(UTC))


# -- statistics -------------------------------------------------------------------------------


def queue_stats(hub: Hub, flt: QueueFilter, visible_tenant_ids: Sequence[str]) -> dict[str, Any]:
    """For the same filters as the queue: ``total``, ``bySeverity``, ``byStatus``, and
    ``overTime`` — incidents per hour (ranges up to two days) or per day, by their last
    update (the field ``from``/``to`` filter on), zero-filled over the range."""
    tenants = _scope(flt, visible_tenant_ids)
    empty: dict[str, Any] = {
        "total": 0,
        "bySeverity": {},
        "byStatus": {},
        "overTime": {"bucket": "day", "points": []},
    }
    if not tenants:
        return empty
    where = _conditions(flt, tenants)
    severity: dict[str, int] = {}
    status: dict[str, int] = {}
    with hub.reading() as conn:
        counted = select(Q.c.severity, Q.c.status, func.count()).where(*where)
        for sev, state, n in conn.execute(counted.group_by(Q.c.severity, Q.c.status)):
            name = severity_name(sev)
            severity[name] = severity.get(name, 0) + int(n)
            status[state or "unknown"] = status.get(state or "unknown", 0) + int(n)
        total = sum(status.values())
        if not total:
            return empty
        low, high = conn.execute(
            select(func.min(Q.c.last_update_at), func.max(Q.c.last_update_at)).where(*where)
        ).one()
        start = flt.since or low
        end = (flt.until - timedelta(microseconds=1)) if flt.until else high
        if start is None or end is None or end < start:
            start, end = low, high
        bucket = "hour" if end - start <= timedelta(days=2) else "day"
        counts = _bucket_counts(conn, where, bucket)
    points = _points(counts, start, end, bucket)
    return {
        "total": total,
        "bySeverity": dict(sorted(severity.items(), key=lambda kv: _severity_order(kv[0]))),
        "byStatus": dict(sorted(status.items())),
        "overTime": {"bucket": bucket, "points": points},
    }


def _severity_order(severity: str) -> int:
    order = {"high": 0, "medium": 1, "low": 2, "informational": 3}
    return order.get(severity, 4)


def _bucket_counts(
    conn: Connection, where: Sequence[ColumnElement[bool]], bucket: str
) -> dict[datetime, int]:
    column = Q.c.last_update_at
    if conn.dialect.name == "sqlite":
        # Stored as text, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC (schema.UtcDateTime).
        key: ColumnElement[Any] = func.substr(column, 1, 13 if bucket == "hour" else 10)
    elif conn.dialect.name == "postgresql":
        key = func.to_char(
            func.timezone("UTC", column), "YYYY-MM-DD HH24" if bucket == "hour" else "YYYY-MM-DD"
        )
    else:
        key = column
    counts: dict[datetime, int] = {}
    for value, n in conn.execute(select(key.label("k"), func.count()).where(*where).group_by(key)):
        moment = _floor(_parse_bucket(value), bucket)
        counts[moment] = counts.get(moment, 0) + int(n)
    return counts


def _parse_bucket(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    moment = datetime.strptime(text, "%Y-%m-%d %H") if len(text) == 13 else None
    if moment is None:
        moment = datetime.fromisoformat(text[:10])
    return moment.replace(tzinfo=UTC)


def _floor(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _points(
    counts: Mapping[datetime, int], start: datetime, end: datetime, bucket: str
) -> list[dict[str, Any]]:
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    first, last = _floor(start, bucket), _floor(end, bucket)
    if (last - first) / step >= MAX_BUCKETS:  # too long to fill: the buckets that have any
        return [{"start": iso(k), "count": n} for k, n in sorted(counts.items())]
    points = []
    moment = first
    while moment <= last:
        points.append({"start": iso(moment), "count": counts.get(moment, 0)})
        moment += step
    # Rows outside the filled range (none unless the range came from the filter) still count.
    extra = [k for k in counts if k < first or k > last]
    points.extend({"start": iso(k), "count": counts[k]} for k in sorted(extra))
    return sorted(points, key=lambda p: str(p["start"]))


def changed_incidents(
    hub: Hub, after: int, tenant_ids: Sequence[str], limit: int = 1000
) -> tuple[int, list[tuple[str, str]]]:
    """The (tenant_id, incident_id) of the changes after ``after`` in these tenants, and the
    position to ask from next. ``after=0`` answers the position only.

    The position never passes the queue index's cursor (``QUEUE_DESTINATION``): the hub
    counts a change when it commits it, the index takes it in later, and a live update that
    redrew a row from the index in between would draw the old values, with the change
    already behind it. So a change is named once the index has it; at most ``limit`` of them
    are looked at (a backfill's burst is answered in steps). Reads the change log's keys."""
    c = s.change_log
    with hub.reading() as conn:
        indexed = get_cursor(conn, QUEUE_DESTINATION)
        if after == 0:
            return min(indexed, max_seq(conn)), []
        if after >= indexed:  # nothing indexed since (or a replay moved the cursor back)
            return after, []
        rows = conn.execute(
            select(c.c.seq, c.c.tenant_id, c.c.incident_id)
            .where(c.c.seq > after, c.c.seq <= indexed)
            .order_by(c.c.seq)
            .limit(limit)
        ).all()
    wanted = set(tenant_ids)
    found = dict.fromkeys(
        (row.tenant_id, row.incident_id)
        for row in rows
        if row.tenant_id in wanted and row.incident_id is not None
    )
    return (rows[-1].seq if len(rows) == limit else indexed), list(found)


__all__ = [
    "FAILED_FOR",
    "SORTS",
    "QueueFilter",
    "QueueItem",
    "QueuePage",
    "changed_incidents",
    "iso",
    "item_from_row",
    "list_queue",
    "queue_item",
    "queue_stats",
    "severity_name",
    "sync_state",
    "unmatched",
    "workspace_id",
    "workspace_view",
]
