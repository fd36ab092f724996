"""One incident (or alert) as the console shows it: ``GET /api/v1/incidents/{id}`` and
``GET /api/v1/alerts/{id}``, read in one snapshot with a fixed, small number of queries.

The incident is the workspace's view: Defender's version as last read with the edits still on
their way applied (``twoway.edits.view``). Its list-item fields are computed fresh the way the
queue index computes them (``index.compute_rows``), so the page never lags the index.

Ids: ``id``, ``mergedInto``, ``mergedFrom``, an entity's ``alertIds`` and the graph's nodes use
workspace ids (``tenant~defenderId``); ``incidentId``/``alertId`` and
``redirectIncidentId`` are Defender's own.

A comment's ``source`` says where it was written: ``defender`` (in the portal, or by anyone
else through Graph), ``workspace`` (by a workspace user through xdrsync: the CLI, the API or the
console; ``origin`` says which) or ``destination`` (read back from a two-way destination such
as Sentinel; ``origin`` is ``kind:name``). Comments of ours not stored yet are listed too, with
their edit's ``state``: queued, refused, and confirmed by Defender until the sync reads the
comment back (so a posted comment never vanishes in between).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Final

from sqlalchemy import Connection, func, select, tuple_

from xdrsync import jsontext
from xdrsync.console.index import compute_rows
from xdrsync.console.queue import QueueItem, iso, item_from_row, workspace_id
from xdrsync.hub import Hub
from xdrsync.hub import schema as s
from xdrsync.hub.chunks import chunks
from xdrsync.hub.outbox import _row as outbox_row
from xdrsync.hub.payload import (
    datetime_from_ticks,
    evidence_item,
    ticks_from_text,
    version_text,
)
from xdrsync.hub.reads import _members, comments, history, merged_from
from xdrsync.hub.records import CommentRow, OutboxRow, VersionRow
from xdrsync.models.enums import AlertStatus, Classification, Determination, Severity
from xdrsync.models.wire import parse_datetime
from xdrsync.tables.evidence_columns import evidence_columns
from xdrsync.twoway.edits import view
from xdrsync.twoway.pusher import COMMENT_CLOCK_SKEW

AUDIT_LIMIT: Final = 200  # newest audit rows shown per record
WORKSPACE_ORIGINS: Final = frozenset({"cli", "api", "console"})
#: Verdicts from the most to the least telling; an entity shows its most telling one.
_VERDICT_ORDER: Final = {"malicious": 0, "suspicious": 1, "noThreatsFound": 2, "unknown": 3}
#: Fields that change with every version or are shown elsewhere, left out of ``history``.
_NOT_HISTORY: Final = frozenset({"lastUpdateDateTime", "lastModifiedBy", "comments"})


def graph_time(value: object) -> str | None:
    """A Graph timestamp as ISO-8601 UTC with ``Z`` (None when missing or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    ticks = ticks_from_text(value)
    return iso(datetime_from_ticks(ticks)) if ticks is not None else None


def _edit_json(names: Mapping[str, str], row: OutboxRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "entityType": row.entity_type,
        "entityId": workspace_id(names, row.tenant_id, row.entity_id),
        "field": row.field,
        "wanted": row.wanted,
        "state": row.state,
        "outcome": row.outcome,
        "author": row.author,
        "origin": row.origin,
        "createdAt": iso(row.created_at),
        "doneAt": iso(row.done_at),
    }


def comment_source(origin: str | None) -> str:
    """``defender``, ``workspace`` or ``destination`` for an outbox origin (None: Defender)."""
    if origin is None:
        return "defender"
    if origin in WORKSPACE_ORIGINS or ":" not in origin:
        return "workspace"
    return "destination"


def _comments_json(rows: Sequence[CommentRow], edits: Sequence[OutboxRow]) -> list[dict[str, Any]]:
    """The stored comments, and ours that are not stored yet: queued, refused, or confirmed
    by Defender but not read back (a comment must not vanish between the two)."""
    out = [
        {
            "text": c.comment,
            "createdBy": c.written_by or c.created_by,
            "createdDateTime": iso(c.created_date_time),
            "source": comment_source(c.written_from),
            "origin": c.written_from,
            "state": "synced",
        }
        for c in rows
    ]
    stored_keys = {c.comment_key for c in rows if c.comment_key is not None}
    unclaimed = [c for c in rows if c.written_from is None]  # no edit of ours names them
    for edit in edits:
        if edit.field == "comment" and not _arrived(edit, stored_keys, unclaimed):
            out.append(
                {
                    "text": edit.wanted,
                    "createdBy": edit.author,
                    "createdDateTime": iso(edit.created_at),
                    "source": comment_source(edit.origin),
                    "origin": edit.origin,
                    "state": edit.state,
                }
            )
    return sorted(out, key=lambda c: _chronological(c["createdDateTime"]))


def _arrived(edit: OutboxRow, stored_keys: set[str], unclaimed: list[CommentRow]) -> bool:
    """Whether the comment an edit made is among the stored ones (then it is listed as that).
    Defender's answer names it (``comment_key``) when it listed the comment; when it did not,
    a stored comment with the same text, made no earlier than the edit (less clock skew), that
    no other edit names, is taken as it (each at most once: ``unclaimed`` loses it)."""
    if edit.comment_key is not None:
        return edit.comment_key in stored_keys
    if edit.state != "confirmed":
        return False
    earliest = edit.created_at - COMMENT_CLOCK_SKEW
    for index, row in enumerate(unclaimed):
        made = row.created_date_time
        if row.comment == edit.wanted and (made is None or made >= earliest):
            del unclaimed[index]
            return True
    return False


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        if name in _NOT_HISTORY or "@odata" in name:
            continue
        if before.get(name) != after.get(name):
            changed[name] = {"from": before.get(name), "to": after.get(name)}
    old, new = len(before.get("comments") or ()), len(after.get("comments") or ())
    if old != new:
        changed["commentCount"] = {"from": old, "to": new}
    return changed


def _history_json(
    versions: Sequence[VersionRow], authors: Mapping[int, str]
) -> list[dict[str, Any]]:
    """Each version with what it changed and who made it: the workspace user whose edit it
    is the echo of (``authors``, by seq), else the identity Defender names
    (``lastModifiedBy``: an analyst, an automation, an app)."""
    out: list[dict[str, Any]] = []
    previous: Mapping[str, Any] = {}
    for number, version in enumerate(versions):
        author = authors.get(version.seq) if version.seq is not None else None
        by = version.payload.get("lastModifiedBy")
        out.append(
            {
                "version": version.version_text,
                "recordedAt": iso(version.recorded_at),
                "seq": version.seq,
                "modifiedBy": author or (by if isinstance(by, str) and by else None),
                "viaWorkspace": author is not None,
                "changed": _changed(previous, version.payload) if number else {},
            }
        )
        previous = version.payload
    return out


def _authors(conn: Connection, versions: Sequence[VersionRow]) -> dict[int, str]:
    """The workspace users whose edits these versions echo, by seq."""
    seqs = [v.seq for v in versions if v.seq is not None]
    log = s.change_log
    found: dict[int, str] = {}
    for part in chunks(seqs):
        query = select(log.c.seq, log.c.modified_by).where(
            log.c.seq.in_(part), log.c.modified_by.is_not(None)
        )
        found.update((int(seq), str(by)) for seq, by in conn.execute(query) if by)
    return found


def _audit_json(
    conn: Connection, tenant_id: str, entity_type: str, entity_id: str
) -> tuple[list[Any], int]:
    """The record's newest ``AUDIT_LIMIT`` audit entries, oldest first, and how many it has
    (so that a page can say it shows only the newest)."""
    a = s.audit
    mine = (a.c.tenant_id == tenant_id, a.c.entity_type == entity_type, a.c.entity_id == entity_id)
    query = select(a).where(*mine).order_by(a.c.id.desc()).limit(AUDIT_LIMIT)
    rows = conn.execute(query).all()
    total = len(rows)
    if total == AUDIT_LIMIT:
        total = int(conn.execute(select(func.count()).select_from(a).where(*mine)).scalar_one())
    return [
        {
            "id": row.id,
            "at": iso(row.at),
            "stream": row.stream,
            "decision": row.decision,
            "oldVersion": row.old_version,
            "newVersion": row.new_version,
            "seq": row.seq,
            "detail": jsontext.loads(row.detail) if row.detail else {},
        }
        for row in reversed(rows)
    ], total


def _outbox(
    conn: Connection, tenant_id: str, entity_type: str, ids: Sequence[str]
) -> dict[str, list[OutboxRow]]:
    o = s.outbox
    found: dict[str, list[OutboxRow]] = {}
    for part in chunks(list(ids)):
        query = (
            select(o)
            .where(
                o.c.tenant_id == tenant_id, o.c.entity_type == entity_type, o.c.entity_id.in_(part)
            )
            .order_by(o.c.id)
        )
        for row in conn.execute(query):
            found.setdefault(row.entity_id, []).append(outbox_row(row))
    return found


def _alert_json(
    names: Mapping[str, str], tenant_id: str, payload: Mapping[str, Any], edits: Sequence[OutboxRow]
) -> dict[str, Any]:
    shown = view(payload, edits) if edits else dict(payload)
    alert_id = str(shown.get("id"))
    return {
        "id": workspace_id(names, tenant_id, alert_id),
        "alertId": alert_id,
        "title": shown.get("title"),
        # As members, however Graph spelled them ("Resolved", "Clean"; reference §2.3).
        "severity": Severity.canonical(shown.get("severity")),
        "status": AlertStatus.canonical(shown.get("status")),
        "assignedTo": shown.get("assignedTo"),
        "classification": Classification.canonical(shown.get("classification")),
        "determination": Determination.canonical(shown.get("determination")),
        "serviceSource": shown.get("serviceSource"),
        "productName": shown.get("productName"),
        "detectionSource": shown.get("detectionSource"),
        "category": shown.get("category"),
        "mitreTechniques": list(shown.get("mitreTechniques") or ()),
        "firstActivityDateTime": graph_time(shown.get("firstActivityDateTime")),
        "lastActivityDateTime": graph_time(shown.get("lastActivityDateTime")),
        "createdDateTime": graph_time(shown.get("createdDateTime")),
        "alertWebUrl": shown.get("alertWebUrl"),
    }


def _evidence_rows(
    conn: Connection, tenant_id: str, alerts: Mapping[str, Mapping[str, Any]]
) -> list[tuple[Any, Mapping[str, Any]]]:
    """The evidence rows of these alerts (alert id -> its stored payload, parsed), each with
    its item's JSON, which the alert's payload holds (hub migration 0006)."""
    e = s.evidence
    rows: list[tuple[Any, Mapping[str, Any]]] = []
    for part in chunks(list(alerts)):
        query = (
            select(e)
            .where(e.c.tenant_id == tenant_id, e.c.alert_id.in_(part))
            .order_by(e.c.alert_id, e.c.ordinal)
        )
        rows.extend(
            (row, evidence_item(alerts[row.alert_id], row.ordinal)) for row in conn.execute(query)
        )
    return rows


def _entity_id(row: Any) -> tuple[str, str]:
    kind = row.entity_kind or row.kind or "unknown"
    key = row.entity_key or row.display_name or f"{row.alert_id}#{row.ordinal}"
    return kind, key


def _shared(
    conn: Connection, tenant_id: str, incident_id: str, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """How many other incidents of the tenant have evidence of each (entity kind, key)."""
    e = s.evidence
    counts: dict[tuple[str, str], int] = {}
    for part in chunks(list(pairs), 200):
        query = (
            select(e.c.entity_kind, e.c.entity_key, func.count(e.c.incident_id.distinct()))
            .where(
                e.c.tenant_id == tenant_id,
                tuple_(e.c.entity_kind, e.c.entity_key).in_(part),
                e.c.incident_id != incident_id,
            )
            .group_by(e.c.entity_kind, e.c.entity_key)
        )
        for kind, key, n in conn.execute(query):
            counts[(kind, key)] = int(n)
    return counts


def _entities(
    conn: Connection,
    names: Mapping[str, str],
    tenant_id: str,
    incident_id: str,
    evidence: Sequence[tuple[Any, Mapping[str, Any]]],
) -> tuple[dict[str, list[dict[str, Any]]], dict[tuple[str, str], dict[str, Any]], list[Any]]:
    """Entities grouped by kind, the same keyed by (kind, key), and the timeline's evidence."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    timeline: list[Any] = []
    for row, payload in evidence:
        key = _entity_id(row)
        alert = workspace_id(names, tenant_id, row.alert_id)
        entity = found.setdefault(
            key,
            {
                "kind": key[0],
                "evidenceKind": row.kind,
                "entityKey": row.entity_key,
                "displayName": row.display_name,
                "verdict": None,
                "remediationStatus": None,
                "alertIds": [],
                "otherIncidents": 0,
                "attributes": {},
            },
        )
        if alert not in entity["alertIds"]:
            entity["alertIds"].append(alert)
        # Its key attributes, named as advanced hunting's AlertEvidence names them (UPN,
        # device name, hashes, command line, ...); the first mention of each wins.
        odata_type = payload.get("@odata.type")
        for name, value in evidence_columns(
            odata_type if isinstance(odata_type, str) else None, payload
        ).items():
            entity["attributes"].setdefault(name, value)
        verdict = payload.get("verdict")
        if isinstance(verdict, str) and _VERDICT_ORDER.get(verdict, 9) < _VERDICT_ORDER.get(
            entity["verdict"] or "", 10
        ):
            entity["verdict"] = verdict
        remediation = payload.get("remediationStatus")
        if entity["remediationStatus"] in (None, "none") and isinstance(remediation, str):
            entity["remediationStatus"] = remediation
        timeline.append(
            {
                "at": graph_time(payload.get("createdDateTime")),
                "kind": "evidence",
                "text": row.display_name or row.entity_key or row.kind,
                "ref": alert,
            }
        )
    keyed = [k for k, v in found.items() if v["entityKey"] is not None]
    for key, n in _shared(conn, tenant_id, incident_id, keyed).items():
        if key in found:
            found[key]["otherIncidents"] = n
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entity in found.values():
        grouped.setdefault(entity["kind"], []).append(entity)
    return dict(sorted(grouped.items())), found, timeline


def _graph(
    names: Mapping[str, str],
    tenant_id: str,
    incident: Mapping[str, Any],
    alerts: Sequence[Mapping[str, Any]],
    entities: Mapping[tuple[str, str], Mapping[str, Any]],
) -> dict[str, Any]:
    root = str(incident["id"])
    nodes = [{"id": root, "kind": "incident", "label": incident.get("displayName")}]
    edges: list[dict[str, str]] = []
    for alert in alerts:
        nodes.append({"id": alert["id"], "kind": "alert", "label": alert.get("title")})
        edges.append({"source": root, "target": alert["id"]})
    for (kind, key), entity in entities.items():
        node = f"entity:{kind}:{key}"
        nodes.append({"id": node, "kind": kind, "label": entity.get("displayName") or key})
        edges.extend({"source": alert_id, "target": node} for alert_id in entity["alertIds"])
    return {"nodes": nodes, "edges": edges}


def _timeline_sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda t: (*_chronological(t["at"]), t["kind"]))


_NEVER: Final = datetime.min.replace(tzinfo=UTC)


def _chronological(at: object) -> tuple[bool, datetime, str]:
    """A sort key: the moment `at` names, however it is spelled (`10:00:00Z` is before
    `10:00:00.3Z`, though not as text); a missing or unreadable one goes last."""
    try:
        moment = parse_datetime(at) if isinstance(at, str) else None
    except ValueError:
        moment = None
    return moment is None, moment or _NEVER, str(at or "")


def _fresh_item(
    conn: Connection, tenant_id: str, incident_id: str, version: int, edits: list[OutboxRow]
) -> QueueItem | None:
    rows = compute_rows(conn, [(tenant_id, incident_id)], 0)
    if not rows:
        return None
    return item_from_row(SimpleNamespace(**rows[0]), version, edits, datetime.now(UTC))


def incident_detail(
    hub: Hub, tenant_id: str, incident_id: str, names: Mapping[str, str]
) -> dict[str, Any] | None:
    """The incident's page (docs/api.md), or None when the hub has no such incident."""
    i, a = s.incident, s.alert
    with hub.reading() as conn:
        stored = conn.execute(
            select(s.current_payload(i), i.c.version).where(
                i.c.tenant_id == tenant_id, i.c.id == incident_id
            )
        ).first()
        if stored is None:
            return None
        key = (tenant_id, incident_id)
        members = _members(conn, [key], s.current_payload(a))[key]
        alert_ids = [m.id for m in members]
        incident_edits = _outbox(conn, tenant_id, "incident", [incident_id]).get(incident_id, [])
        alert_edits = _outbox(conn, tenant_id, "alert", alert_ids)
        item = _fresh_item(conn, tenant_id, incident_id, stored.version, incident_edits)
        if item is None:  # gone between the two reads of one snapshot: cannot happen
            return None
        payload = jsontext.loads(stored.payload)
        payload.setdefault("lastUpdateDateTime", version_text(stored.version))
        shown = view(payload, incident_edits) if incident_edits else payload
        stored_alerts = {m.id: jsontext.loads(m.payload) for m in members}
        alerts = [
            _alert_json(names, tenant_id, stored_alerts[m.id], alert_edits.get(m.id, []))
            for m in members
        ]
        evidence = _evidence_rows(conn, tenant_id, stored_alerts)
        grouped, entities, evidence_times = _entities(conn, names, tenant_id, incident_id, evidence)
        notes = comments(conn, tenant_id, incident_id)
        versions = history(conn, "incident", tenant_id, incident_id)
        authors = _authors(conn, versions)
        absorbed = merged_from(conn, tenant_id, incident_id)
        audit, audit_total = _audit_json(conn, tenant_id, "incident", incident_id)
    out = item.to_json(names)
    out.update(
        {
            "description": shown.get("description"),
            "incidentWebUrl": shown.get("incidentWebUrl"),
            "redirectIncidentId": shown.get("redirectIncidentId"),
            "mergedFrom": [workspace_id(names, tenant_id, m) for m in absorbed],
            "alerts": alerts,
            "entities": grouped,
        }
    )
    out["graph"] = _graph(names, tenant_id, out, alerts, entities)
    history_json = _history_json(versions, authors)
    comments_json = _comments_json(notes, incident_edits)
    timeline: list[dict[str, Any]] = [
        {
            "at": alert["firstActivityDateTime"] or alert["createdDateTime"],
            "kind": "alert",
            "text": alert["title"],
            "ref": alert["id"],
        }
        for alert in alerts
    ]
    timeline.extend(evidence_times)
    timeline.extend(
        {"at": c["createdDateTime"], "kind": "comment", "text": c["text"], "ref": None}
        for c in comments_json
    )
    timeline.extend(
        {
            "at": graph_time(v["version"]),
            "kind": "version",
            "text": ", ".join(v["changed"]) if v["changed"] else "first read",
            "ref": None,
        }
        for v in history_json
    )
    out["timeline"] = _timeline_sorted(timeline)
    out["comments"] = comments_json
    out["history"] = history_json
    out["audit"] = audit
    out["auditTotal"] = audit_total
    edits = [*incident_edits, *(e for rows in alert_edits.values() for e in rows)]
    out["edits"] = [_edit_json(names, e) for e in sorted(edits, key=lambda e: e.id)]
    return out


def alert_detail(
    hub: Hub, tenant_id: str, alert_id: str, names: Mapping[str, str]
) -> dict[str, Any] | None:
    """One alert (docs/api.md ``GET /api/v1/alerts/{id}``) with its evidence, comments,
    history, audit and edits; None when the hub has no such alert."""
    a, c = s.alert, s.comment
    with hub.reading() as conn:
        stored = conn.execute(
            select(s.current_payload(a), a.c.incident_id).where(
                a.c.tenant_id == tenant_id, a.c.id == alert_id
            )
        ).first()
        if stored is None:
            return None
        edits = _outbox(conn, tenant_id, "alert", [alert_id]).get(alert_id, [])
        payload = jsontext.loads(stored.payload)
        evidence = _evidence_rows(conn, tenant_id, {alert_id: payload})
        notes = conn.execute(
            select(c.c.created_date_time, c.c.created_by, c.c.comment).where(
                c.c.tenant_id == tenant_id, c.c.entity_type == "alert", c.c.entity_id == alert_id
            )
        ).all()
        versions = history(conn, "alert", tenant_id, alert_id)
        authors = _authors(conn, versions)
        audit, audit_total = _audit_json(conn, tenant_id, "alert", alert_id)
    out = _alert_json(names, tenant_id, payload, edits)
    shown = view(payload, edits) if edits else payload
    out.update(
        {
            "incidentId": (
                workspace_id(names, tenant_id, stored.incident_id) if stored.incident_id else None
            ),
            "tenant": names.get(tenant_id, tenant_id),
            "description": shown.get("description"),
            "recommendedActions": shown.get("recommendedActions"),
            "lastUpdateDateTime": graph_time(shown.get("lastUpdateDateTime")),
            "evidence": [_evidence_json(row, item) for row, item in evidence],
            "comments": sorted(
                (
                    {
                        "text": text,
                        "createdBy": by,
                        "createdDateTime": iso(at),
                        "source": "defender",
                        "origin": None,
                        "state": "synced",
                    }
                    for at, by, text in notes
                ),
                key=lambda n: _chronological(n["createdDateTime"]),
            ),
            "history": _history_json(versions, authors),
            "audit": audit,
            "auditTotal": audit_total,
            "edits": [_edit_json(names, e) for e in edits],
        }
    )
    return out


def _evidence_json(row: Any, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ordinal": row.ordinal,
        "odataType": row.odata_type,
        "kind": row.entity_kind or row.kind,
        "evidenceKind": row.kind,
        "entityKey": row.entity_key,
        "displayName": row.display_name,
        "verdict": payload.get("verdict"),
        "remediationStatus": payload.get("remediationStatus"),
        "createdDateTime": graph_time(payload.get("createdDateTime")),
        "properties": payload,
    }


__all__ = ["alert_detail", "comment_source", "graph_time", "incident_detail"]
