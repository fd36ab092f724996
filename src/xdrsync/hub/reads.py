"""Read queries for the CLI, console and destinations: all tenant-aware and index-backed.

The models (pydantic, about 0.2 s to load) are imported by the reads that return them, so a
command that lists or counts (`xdrsync incidents list`, `state show`) does without them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    and_,
    case,
    func,
    null,
    select,
    tuple_,
    union_all,
)

from xdrsync import jsontext
from xdrsync.hub import schema as s
from xdrsync.hub.chunks import CHUNK, chunks
from xdrsync.hub.payload import (
    datetime_from_ticks,
    enum_text,
    evidence_item,
    ticks_from_text,
    version_text,
)
from xdrsync.hub.records import (
    MEMBERSHIP,
    ChangeRow,
    CommentRow,
    EntityType,
    EvidenceRow,
    IncidentSummary,
    VersionRow,
)

if TYPE_CHECKING:
    from xdrsync.models import Alert, Incident

MAX_MERGE_DEPTH: Final = 64  # merge chains are short; this only stops a corrupt cycle


def _json(text: str | None) -> Any:
    return jsontext.loads(text) if text is not None else None


class _Listing(NamedTuple):
    """An incident's newest listing of its alerts: its version (ticks), its seq (None for a
    version kept only as history) and the alert ids, as Graph listed them."""

    version: int
    seq: int | None
    alert_ids: list[str]


def _named_alert_ids(
    conn: Connection, tenant_id: str, incident_ids: Sequence[str]
) -> dict[str, _Listing]:
    """The alerts each incident's newest version read with its alerts named: Defender's own
    statement of membership, which an alert's ``incidentId`` may not match (Microsoft's
    documented ``$expand=alerts`` example has such an alert)."""
    iv = s.incident_version
    named: dict[str, _Listing] = {}
    for part in chunks(incident_ids):
        listed = and_(
            iv.c.tenant_id == tenant_id, iv.c.incident_id.in_(part), iv.c.alert_ids.is_not(None)
        )
        newest = (
            select(iv.c.incident_id, func.max(iv.c.version).label("version"))
            .where(listed)
            .group_by(iv.c.incident_id)
            .subquery()
        )
        query = (
            select(iv.c.incident_id, iv.c.version, iv.c.seq, iv.c.alert_ids)
            .join(
                newest,
                and_(iv.c.incident_id == newest.c.incident_id, iv.c.version == newest.c.version),
            )
            .where(listed)
            .order_by(*_version_order(iv))  # two contents of one version: the current one last
        )
        for incident_id, version, seq, ids in conn.execute(query):
            named[incident_id] = _Listing(version, seq, [str(i) for i in jsontext.loads(ids)])
    return named


#: A row of any columns, read by position (`_members`: the alert's own five, then those asked for).
PlainRow = Row[*tuple[Any, ...]]


def _version_order(table: Table) -> tuple[ColumnElement[Any], ...]:
    """The order of a history's rows: by version, and the copies of one version in the order
    they were applied. Two contents of one version read in one batch share ``recorded_at``;
    the guard applies them in reading order, each with the next seq, and the last becomes
    the current row. A copy kept only as history (a late version, never current) has no seq:
    it comes before the copies of its version that were current, then by when it was read."""
    return (table.c.version, table.c.seq.asc().nulls_first(), table.c.recorded_at)


def _members(
    conn: Connection, keys: Sequence[tuple[str, str]], *columns: ColumnElement[Any]
) -> dict[tuple[str, str], list[PlainRow]]:
    """The stored alerts of each (tenant, incident): those the incident's newest listing
    named, and those whose own ``incidentId`` points at it (an alert read after that listing).

    When the two disagree, the later statement wins. A listed alert whose stored record names
    another incident, at a version (``lastUpdateDateTime``) later than the listing's, has
    left: Defender moved it, and the incident it left need not be read again (whether a move
    bumps that incident's ``lastUpdateDateTime`` is undocumented). So has one whose record
    named the incident at the very stamp it has now, and names another since a change the
    hub recorded after the listing: whether a move bumps the alert's own stamp is
    undocumented too, and when it does not, the order the hub read them in is the only order
    there is (``_left_unstamped``). Otherwise, at the listing's version or earlier, the
    listing stays Defender's word (its documented example lists an alert that names another
    incident). A listing only ever adds alerts to an incident: one that leaves out an alert
    whose record names the incident may be a part (an incident whose alerts route answered
    404 is stored with none), and would put that alert under no incident at all. An alert
    that moved away is taken out when its new record comes (``hub.membership``).

    Each row holds the alert's ``id``, ``incident_id``, ``version``, ``seq``,
    ``created_date_time`` and ``columns``; alerts come in creation order (undated first), then
    by id.
    """
    a = s.alert
    wanted = (a.c.id, a.c.incident_id, a.c.version, a.c.seq, a.c.created_date_time, *columns)
    found: dict[tuple[str, str], dict[str, PlainRow]] = {key: {} for key in keys}
    for tenant_id in {tenant for tenant, _ in keys}:
        ids = sorted({key for tenant, key in keys if tenant == tenant_id})
        named = _named_alert_ids(conn, tenant_id, ids)
        listed_by: dict[str, list[tuple[str, _Listing]]] = {}  # alert -> (incident, listing)
        for incident_id, listing in named.items():
            for alert_id in listing.alert_ids:
                listed_by.setdefault(alert_id, []).append((incident_id, listing))
        rows: list[PlainRow] = []
        for part in chunks(ids):
            where = and_(a.c.tenant_id == tenant_id, a.c.incident_id.in_(part))
            rows.extend(conn.execute(select(*wanted).where(where)))
        # Listed alerts mostly point at their incident too: only the others are read again.
        for part in chunks(sorted(listed_by.keys() - {row[_ID] for row in rows})):
            where = and_(a.c.tenant_id == tenant_id, a.c.id.in_(part))
            rows.extend(conn.execute(select(*wanted).where(where)))
        # Listed alerts whose record names another incident, at the listing's version or
        # before, and changed after the listing: did that change take them out of it?
        doubtful = [
            (row, incident_id)
            for row in rows
            for incident_id, listing in listed_by.get(row[_ID], ())
            if _named_elsewhere(row, incident_id)
            and row[_VERSION] <= listing.version
            and listing.seq is not None
            and row[_SEQ] > listing.seq
        ]
        left = _left_unstamped(conn, tenant_id, doubtful)
        for row in rows:
            alert_id, owner = row[_ID], row[_INCIDENT]
            listings = listed_by.get(alert_id)
            if listings is None:  # most alerts: only their own record names an incident
                owners: list[str] = [owner]
            else:
                owners = [
                    incident_id
                    for incident_id, listing in listings
                    if not (
                        _named_elsewhere(row, incident_id)
                        and (row[_VERSION] > listing.version or (alert_id, incident_id) in left)
                    )
                ]
                owners.append(owner)
            for holder in owners:
                if (tenant_id, holder) in found:
                    found[(tenant_id, holder)][alert_id] = row
    return {
        key: sorted(
            alerts.values(),
            key=lambda r: (r[_CREATED] is not None, r[_CREATED] or 0, r[_ID]),
        )
        for key, alerts in found.items()
    }


#: The positions of the columns every `_members` row starts with. Rows are read by position
#: there: a SQLAlchemy 2.1 `Row`'s attribute costs about 0.6 µs against 0.04 for an index,
#: and about eight were read per alert (the queue index's `_members` over a 2,000-incident
#: hub, by 400: 0.11 CPU-s by attribute, 0.075 by position).
_ID, _INCIDENT, _VERSION, _SEQ, _CREATED = range(5)


def _named_elsewhere(alert: PlainRow, incident_id: str) -> bool:
    """Whether the stored ``alert``'s own record names an incident other than this one."""
    owner = alert[_INCIDENT]
    return owner is not None and owner != incident_id


def _left_unstamped(
    conn: Connection, tenant_id: str, doubtful: Sequence[tuple[PlainRow, str]]
) -> set[tuple[str, str]]:
    """The (alert, incident) pairs of ``doubtful`` (alerts changed after the incident's
    listing named them) whose history holds a record naming that incident at the alert's
    current stamp: the alert moved without a new ``lastUpdateDateTime``, after the listing
    (the reconcile brings such a move: new content at the same stamp). An alert that never
    named the incident is Microsoft's documented case, and stays listed."""
    av = s.alert_version
    wanted = {(row[_ID], row[_VERSION], incident_id) for row, incident_id in doubtful}
    found: set[tuple[str, str]] = set()
    for part in chunks(sorted(wanted), CHUNK // 3):  # three values bound per key
        query = select(av.c.alert_id, av.c.incident_id).where(
            av.c.tenant_id == tenant_id,
            tuple_(av.c.alert_id, av.c.version, av.c.incident_id).in_(part),
        )
        found.update((alert_id, incident_id) for alert_id, incident_id in conn.execute(query))
    return found


def get_incident(conn: Connection, tenant_id: str, incident_id: str) -> Incident | None:
    text = conn.execute(
        select(s.current_payload(s.incident)).where(
            s.incident.c.tenant_id == tenant_id, s.incident.c.id == incident_id
        )
    ).scalar_one_or_none()
    if text is None:
        return None
    from xdrsync.models import Incident

    payload = jsontext.loads(text)
    rows = _members(conn, [(tenant_id, incident_id)], s.current_payload(s.alert))
    payload["alerts"] = [jsontext.loads(row.payload) for row in rows[(tenant_id, incident_id)]]
    return Incident.from_graph(payload)


def current_alerts(
    conn: Connection,
    keys: Sequence[tuple[str, str]],
    known: Mapping[int, Alert],
    parse: Callable[[Mapping[str, Any]], Alert] | None = None,
) -> dict[tuple[str, str], list[Alert]]:
    """The alerts each (tenant, incident) has now (`_members`), in ``get_incident``'s order.

    ``known`` maps change seqs to alerts the caller has already parsed; an alert whose
    current version has one of those seqs is taken from it instead of parsed again. The
    others' stored payloads (JSON values) become alerts through ``parse`` (by default
    ``Alert.from_graph``).
    """
    if parse is None:
        from xdrsync.models import Alert

        parse = Alert.from_graph
    a = s.alert
    members = _members(conn, keys)
    missing: dict[str, set[str]] = {}  # tenant -> ids of alerts the caller has not parsed
    for (tenant_id, _), rows in members.items():
        missing.setdefault(tenant_id, set()).update(r[_ID] for r in rows if r[_SEQ] not in known)
    read: dict[tuple[str, str], Alert] = {}
    for tenant_id, ids in missing.items():  # only their payloads are read
        for part in chunks(sorted(ids)):
            where = and_(a.c.tenant_id == tenant_id, a.c.id.in_(part))
            for alert_id, payload in conn.execute(
                select(a.c.id, s.current_payload(a)).where(where)
            ):
                read[(tenant_id, alert_id)] = parse(jsontext.loads(payload))
    return {
        key: [
            alert
            for row in rows
            if (alert := known.get(row[_SEQ]) or read.get((key[0], row[_ID]))) is not None
        ]
        for key, rows in members.items()
    }


class IncidentStep(NamedTuple):
    """One recorded change of an incident (a version with a seq), as the log tables read the
    incident's history: ``version`` in ticks, ``payload`` the stored JSON (None for the seqs
    the caller holds itself), ``alert_ids`` the JSON list of alerts the version named."""

    seq: int
    version: int
    payload: str | None
    alert_ids: str | None


def incident_steps(
    conn: Connection, keys: Sequence[tuple[str, str]], held_from: int, up_to: int
) -> dict[tuple[str, str], list[IncidentStep]]:
    """The recorded changes of each (tenant, incident) up to seq ``up_to``, oldest first. A
    late version (kept in the history, never a change) has no seq and is left out, so what
    this returns for a seq never changes. Payloads are read only below ``held_from``: the
    caller has those from ``held_from`` on."""
    iv = s.incident_version
    payload = case((iv.c.seq < held_from, iv.c.payload), else_=null())
    found: dict[tuple[str, str], list[IncidentStep]] = {key: [] for key in keys}
    for tenant_id in sorted({tenant for tenant, _ in keys}):
        ids = sorted({key for tenant, key in keys if tenant == tenant_id})
        for part in chunks(ids):
            query = (
                select(iv.c.incident_id, iv.c.seq, iv.c.version, payload, iv.c.alert_ids)
                .where(
                    iv.c.tenant_id == tenant_id,
                    iv.c.incident_id.in_(part),
                    iv.c.seq.is_not(None),
                    iv.c.seq <= up_to,
                )
                .order_by(iv.c.seq)
            )
            for incident_id, *step in conn.execute(query):
                found[(tenant_id, incident_id)].append(IncidentStep(*step))
    return found


def membership_versions(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """The versions (ticks) the ``membership`` changes of each (tenant, incident) stated again,
    with their seqs, from the audit rows written with them (indexed by entity)."""
    found: dict[tuple[str, str], list[tuple[int, int]]] = {}
    a = s.audit
    for tenant_id in sorted({tenant for tenant, _ in keys}):
        for part in chunks(sorted({key for tenant, key in keys if tenant == tenant_id})):
            query = select(a.c.entity_id, a.c.new_version, a.c.seq).where(
                a.c.tenant_id == tenant_id,
                a.c.entity_type == "incident",
                a.c.entity_id.in_(part),
                a.c.decision == MEMBERSHIP,
                a.c.seq.is_not(None),
            )
            for incident_id, version, seq in conn.execute(query):
                ticks = ticks_from_text(version or "")
                if ticks is not None:
                    found.setdefault((tenant_id, incident_id), []).append((ticks, seq))
    return found


def alert_activity(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[datetime | None, datetime | None]]:
    """The first and last activity of each (tenant, alert) the hub holds, from its columns."""
    a = s.alert
    found: dict[tuple[str, str], tuple[datetime | None, datetime | None]] = {}
    for tenant_id in sorted({tenant for tenant, _ in keys}):
        ids = sorted({key for tenant, key in keys if tenant == tenant_id})
        for part in chunks(ids):
            where = and_(a.c.tenant_id == tenant_id, a.c.id.in_(part))
            query = select(a.c.id, a.c.first_activity, a.c.last_activity).where(where)
            for alert_id, first, last in conn.execute(query):
                found[(tenant_id, alert_id)] = (_moment(first), _moment(last))
    return found


def _moment(ticks: int | None) -> datetime | None:
    return datetime_from_ticks(ticks) if ticks is not None else None


def get_alert(conn: Connection, tenant_id: str, alert_id: str) -> Alert | None:
    text = conn.execute(
        select(s.current_payload(s.alert)).where(
            s.alert.c.tenant_id == tenant_id, s.alert.c.id == alert_id
        )
    ).scalar_one_or_none()
    from xdrsync.models import Alert

    return Alert.from_graph(jsontext.loads(text)) if text is not None else None


def list_incidents(
    conn: Connection, tenant_id: str | None, status: object, limit: int, offset: int
) -> list[IncidentSummary]:
    t = s.incident
    query = (
        select(t).order_by(t.c.version.desc(), t.c.tenant_id, t.c.id).limit(limit).offset(offset)
    )
    if tenant_id is not None:
        query = query.where(t.c.tenant_id == tenant_id)
    if status is not None:
        # Stored statuses are canonical ("inProgress"); accept any spelling Graph accepts.
        from xdrsync.models import IncidentStatus

        wanted = IncidentStatus(status) if isinstance(status, str) else status
        query = query.where(t.c.status == enum_text(wanted))
    rows = conn.execute(query).all()
    counts = _alert_counts(conn, [(row.tenant_id, row.id) for row in rows])
    return [
        IncidentSummary(
            tenant_id=row.tenant_id,
            id=row.id,
            display_name=row.display_name,
            status=row.status,
            severity=row.severity,
            classification=row.classification,
            determination=row.determination,
            assigned_to=row.assigned_to,
            created_date_time=row.created_date_time,
            last_update_date_time=datetime_from_ticks(row.version),
            merged_into=row.merged_into,
            alert_count=counts.get((row.tenant_id, row.id), 0),
            seq=row.seq,
        )
        for row in rows
    ]


def _alert_counts(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    return {key: len(rows) for key, rows in _members(conn, keys).items()}


def _version_row(entity_type: EntityType, entity_id: str, row: Row[Any]) -> VersionRow:
    # Only incident versions list their alerts; an alert version has no such column.
    ids = _json(row.alert_ids) if entity_type == "incident" else None
    return VersionRow(
        tenant_id=row.tenant_id,
        entity_type=entity_type,
        entity_id=entity_id,
        version=datetime_from_ticks(row.version),
        version_text=version_text(row.version) or "",
        content_hash=row.content_hash,
        seq=row.seq,
        recorded_at=row.recorded_at,
        payload=jsontext.loads(row.payload),
        alert_ids=tuple(ids) if ids is not None else None,
    )


def history(
    conn: Connection, entity_type: EntityType, tenant_id: str, entity_id: str
) -> list[VersionRow]:
    table, key = s.history_of(s.incident if entity_type == "incident" else s.alert)
    query = (
        select(table)
        .where(table.c.tenant_id == tenant_id, table.c[key] == entity_id)
        .order_by(*_version_order(table), table.c.content_hash)
    )
    return [_version_row(entity_type, entity_id, row) for row in conn.execute(query)]


def changes_after(
    conn: Connection, seq: int, limit: int, *, payloads: bool = True
) -> list[ChangeRow]:
    """Changes with a seq above ``seq``, in seq order; without ``payloads``, each with an
    empty ``payload_text`` and no ``alert_ids`` (a reader of the changes' own columns)."""
    log = s.change_log
    rows = conn.execute(
        select(
            log.c.seq,
            log.c.tenant_id,
            log.c.entity_type,
            log.c.entity_id,
            log.c.incident_id,
            log.c.version,
            log.c.kind,
            log.c.at,
            log.c.modified_by,
            log.c.content_hash,
        )
        .where(log.c.seq > seq)
        .order_by(log.c.seq)
        .limit(limit)
    ).all()
    if not rows:
        return []
    found = _payloads(conn, rows) if payloads else {}
    result: list[ChangeRow] = []
    # Each row unpacked once: a SQLAlchemy 2.1 `Row`'s attributes cost about 0.6 µs each,
    # and this read runs over every change twice in the log tables' worker (the tables' and
    # the queue index's runners).
    for number, tenant_id, entity_type, entity_id, incident_id, ticks, kind, at, by, _ in rows:
        payload, extra = found[number] if payloads else _NO_PAYLOAD
        # A membership change shows a version whose listing is no longer the incident's.
        listing = entity_type == "incident" and kind != MEMBERSHIP
        ids = _json(extra) if listing else None
        result.append(
            ChangeRow(
                seq=number,
                tenant_id=tenant_id,
                entity_type=cast(EntityType, entity_type),
                entity_id=entity_id,
                incident_id=incident_id,
                version=datetime_from_ticks(ticks),
                version_text=version_text(ticks) or "",
                kind=kind,
                at=at,
                payload_text=payload,
                alert_ids=tuple(ids) if ids is not None else None,
                modified_by=by,
            )
        )
    return result


_NO_PAYLOAD: tuple[str, str | None] = ("", None)


def _payloads(conn: Connection, rows: Sequence[PlainRow]) -> dict[int, tuple[str, str | None]]:
    """The payload and listed alert ids (an alert's: its incident) of each change of ``rows``
    (`changes_after`'s), by seq."""
    first, last = rows[0][0], rows[-1][0]
    # Payloads live once, in the history tables; fetch the range's from both in one query.
    iv, av = s.incident_version, s.alert_version
    payloads: dict[int, tuple[str, str | None]] = {}
    query = union_all(
        select(iv.c.seq, iv.c.payload, iv.c.alert_ids).where(iv.c.seq.between(first, last)),
        select(av.c.seq, av.c.payload, av.c.incident_id.label("alert_ids")).where(
            av.c.seq.between(first, last)
        ),
    )
    for number, payload, extra in conn.execute(query):
        payloads[int(number)] = (payload, extra)
    restated = [(row[1], row[3], row[9], row[0]) for row in rows if row[0] not in payloads]
    _membership_payloads(conn, restated, payloads)
    return payloads


def _membership_payloads(
    conn: Connection,
    changes: Sequence[tuple[str, str, str, int]],
    payloads: dict[int, tuple[str, str | None]],
) -> None:
    """The payloads of ``membership`` changes (``hub.membership``; ``changes``: their tenant,
    incident, content hash and seq), which have no history row of their own: each states
    again the version of its incident that its ``content_hash`` names."""
    iv = s.incident_version
    wanted: dict[tuple[str, str, str], list[int]] = {}
    for tenant_id, incident_id, digest, number in changes:
        wanted.setdefault((tenant_id, incident_id, digest), []).append(number)
    for part in chunks(sorted(wanted), CHUNK // 3):  # three values bound per key
        query = select(
            iv.c.tenant_id, iv.c.incident_id, iv.c.content_hash, iv.c.payload, iv.c.alert_ids
        ).where(tuple_(iv.c.tenant_id, iv.c.incident_id, iv.c.content_hash).in_(part))
        for tenant_id, incident_id, digest, payload, ids in conn.execute(query):
            for number in wanted[(tenant_id, incident_id, digest)]:
                payloads[number] = (payload, ids)


def merged_from(conn: Connection, tenant_id: str, incident_id: str) -> list[str]:
    """Every incident merged into this one, directly or through a chain of merges."""
    t = s.incident
    found: list[str] = []
    seen = {incident_id}
    frontier = [incident_id]
    for _ in range(MAX_MERGE_DEPTH):
        if not frontier:
            break
        query = select(t.c.id).where(t.c.tenant_id == tenant_id, t.c.merged_into.in_(frontier))
        frontier = [key for key in conn.execute(query).scalars() if key not in seen]
        seen.update(frontier)
        found.extend(frontier)
    return sorted(found)


def comments(conn: Connection, tenant_id: str, incident_id: str) -> list[CommentRow]:
    """The incident's comments and those of every incident merged into it, oldest first (a
    comment a merge copied to it, once)."""
    c, o = s.comment, s.outbox
    owners = [incident_id, *merged_from(conn, tenant_id, incident_id)]
    rows: list[CommentRow] = []
    # A comment we posted for a workspace user carries the app's name in Defender; the
    # outbox knows who wrote it.
    ours = c.outerjoin(
        o,
        and_(
            o.c.tenant_id == c.c.tenant_id,
            o.c.entity_type == c.c.entity_type,
            o.c.entity_id == c.c.entity_id,
            o.c.comment_key == c.c.comment_key,
        ),
    )
    for part in chunks(owners):
        query = (
            select(c, o.c.author.label("written_by"), o.c.origin.label("written_from"))
            .select_from(ours)
            .where(
                c.c.tenant_id == tenant_id,
                c.c.entity_type == "incident",
                c.c.entity_id.in_(part),
            )
        )
        rows.extend(
            CommentRow(
                tenant_id=row.tenant_id,
                incident_id=row.entity_id,
                entity_type="incident",
                entity_id=row.entity_id,
                created_date_time=row.created_date_time,
                created_by=row.created_by,
                comment=row.comment,
                first_seen_at=row.first_seen_at,
                written_by=row.written_by,
                written_from=row.written_from,
                comment_key=row.comment_key,
            )
            for row in conn.execute(query)
        )
    # A merge may carry the source's comments over (Defender's comment migration, in
    # preview: reference §1.6): the same comment (time, author, text) is then the target's
    # own and the source's, and is shown once, as the target's.
    own = {r.comment_key for r in rows if r.entity_id == incident_id}
    rows = [r for r in rows if r.entity_id == incident_id or r.comment_key not in own]
    return sorted(rows, key=lambda r: (r.created_date_time is None, r.created_date_time, r.comment))


def evidence(conn: Connection, tenant_id: str, incident_id: str) -> list[EvidenceRow]:
    e, a = s.evidence, s.alert
    # Each item's JSON is its alert's: one statement reads both, so they always agree. The
    # alert's JSON (which holds all its evidence) comes once, on its first item's row: an
    # alert's items are replaced whole, numbered from 0.
    first = case((e.c.ordinal == 0, s.current_payload(a)), else_=null()).label("payload")
    query = (
        select(e, first)
        .join(a, and_(a.c.tenant_id == e.c.tenant_id, a.c.id == e.c.alert_id))
        .where(e.c.tenant_id == tenant_id, e.c.incident_id == incident_id)
        .order_by(e.c.alert_id, e.c.ordinal)
    )
    rows = conn.execute(query).all()
    alerts: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.payload is not None:
            alerts[row.alert_id] = jsontext.loads(row.payload)
    return [
        EvidenceRow(
            tenant_id=row.tenant_id,
            alert_id=row.alert_id,
            incident_id=row.incident_id,
            ordinal=row.ordinal,
            odata_type=row.odata_type,
            kind=row.kind,
            entity_kind=row.entity_kind,
            entity_key=row.entity_key,
            display_name=row.display_name,
            payload=evidence_item(alerts.get(row.alert_id, {}), row.ordinal),
        )
        for row in rows
    ]
