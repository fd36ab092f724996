"""Terminal renderings of the workspace (rich tables) for ``state show`` and ``incidents``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from xdrsync.hub import Hub, IncidentSummary
from xdrsync.models import Incident
from xdrsync.sync.fanout import CURSOR


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max((now - moment).total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def state_tables(hub: Hub, tenant_names: dict[str, str]) -> list[Table]:
    """Streams (cursor, lag, last error, quarantine), stored totals, destinations."""
    now = datetime.now(UTC)
    streams = Table(title="Inbound streams", title_justify="left")
    for column in (
        "tenant",
        "stream",
        "watermark",
        "lag",
        "last commit",
        "quarantined",
        "last error",
    ):
        streams.add_column(column)
    for row in hub.list_states():
        doc = row.doc or {}
        mark = doc.get("watermark")
        watermark = datetime.fromisoformat(mark) if mark else None
        wait = doc.get("retry_at")
        retry_at = datetime.fromisoformat(wait) if wait else None
        lag = _age(watermark, now) if watermark else "backfilling"
        if retry_at is not None and retry_at > now:  # Graph asked us to wait (Retry-After)
            lag += f"; waiting until {retry_at:%H:%M:%S} UTC"
        streams.add_row(
            tenant_names.get(row.tenant_id, row.tenant_id),
            row.stream,
            watermark.isoformat(timespec="seconds") if watermark else "—",
            lag,
            _age(row.last_commit_at, now),
            str(row.quarantined),
            row.last_error or "",
        )
    totals = Table(title="Workspace", title_justify="left")
    counts = hub.counts()
    kinds = sorted({k for per in counts.values() for k in per})
    totals.add_column("tenant")
    for kind in kinds:
        totals.add_column(kind, justify="right")
    for tenant_id, per in sorted(counts.items()):
        totals.add_row(tenant_names.get(tenant_id, tenant_id), *(str(per.get(k, 0)) for k in kinds))
    outputs = Table(title="Destinations", title_justify="left")
    for column in ("destination", "position", "behind", "pending write-backs"):
        outputs.add_column(column)
    head = hub.max_seq()
    cursors = {c.name: c for c in hub.list_cursors()}
    position = cursors[CURSOR].seq if CURSOR in cursors else 0
    outputs.add_row("workspace log tables (KQL)", str(position), f"{head - position} changes", "0")
    return [streams, totals, outputs]


def incident_table(rows: list[IncidentSummary], tenant_names: dict[str, str]) -> Table:
    table = Table(title=f"{len(rows)} incidents", title_justify="left")
    for column in ("tenant", "id", "severity", "status", "owner", "alerts", "updated", "title"):
        table.add_column(column, overflow="fold" if column == "title" else "ellipsis")
    for row in rows:
        status = row.status or ""
        if row.merged_into:
            status = f"merged → {row.merged_into}"
        table.add_row(
            tenant_names.get(row.tenant_id, row.tenant_id[:8]),
            row.id,
            row.severity or "",
            status,
            row.assigned_to or "",
            str(row.alert_count),
            row.last_update_date_time.isoformat(timespec="seconds"),
            row.display_name or "",
        )
    return table


def incident_detail(hub: Hub, incident: Incident) -> list[Any]:
    """The incident's fields, alerts, evidence by entity, comments and version history."""
    tenant = incident.tenant_id or ""
    incident_id = incident.id or ""
    head = Table(
        title=f"Incident {incident.id}: {incident.display_name}",
        title_justify="left",
        show_header=False,
    )
    head.add_column("field")
    head.add_column("value", overflow="fold")
    for label, value in (
        ("status", incident.status),
        ("severity", incident.severity),
        ("owner", incident.assigned_to),
        ("classification", incident.classification),
        ("determination", incident.determination),
        ("tags", ", ".join(incident.custom_tags)),
        ("created", incident.created_date_time),
        ("last update", incident.last_update_date_time),
        ("merged into", incident.redirect_incident_id),
        ("merged from", ", ".join(hub.get_merged_from(tenant, incident_id))),
        ("portal", incident.incident_web_url),
    ):
        head.add_row(label, "" if value is None else str(getattr(value, "value", value)))
    alerts = Table(title="Alerts", title_justify="left")
    for column in ("id", "product", "severity", "status", "title", "evidence"):
        alerts.add_column(column, overflow="fold")
    for alert in incident.alerts:
        alerts.add_row(
            alert.id,
            alert.product,
            str(alert.severity.value if alert.severity else ""),
            str(alert.status.value if alert.status else ""),
            alert.title or "",
            str(len(alert.evidence)),
        )
    entities = Table(title="Evidence by entity", title_justify="left")
    for column in ("kind", "entity", "alerts"):
        entities.add_column(column, overflow="fold")
    seen: dict[tuple[str, str], set[str]] = {}
    for alert in incident.alerts:
        for evidence in alert.evidence:
            key = evidence.entity_key()
            # One row per entity: evidence items naming the same entity collapse into it.
            entity = (evidence.kind, key.value if key is not None else evidence.display_name())
            seen.setdefault(entity, set()).add(alert.id or "")
    for (kind, name), alert_ids in sorted(seen.items()):
        entities.add_row(kind, name, str(len(alert_ids)))
    comments = Table(title="Comments", title_justify="left")
    for column in ("when", "by", "comment"):
        comments.add_column(column, overflow="fold")
    for comment in hub.list_comments(tenant, incident_id):
        when = (
            comment.created_date_time.isoformat(timespec="seconds")
            if comment.created_date_time
            else ""
        )
        origin = (
            ""
            if comment.entity_id == incident.id
            else f" (on {comment.entity_type} {comment.entity_id})"
        )
        comments.add_row(when, (comment.created_by or "") + origin, comment.comment or "")
    history = Table(title="Version history", title_justify="left")
    for column in ("version", "recorded", "status", "owner"):
        history.add_column(column)
    for version in hub.incident_history(tenant, incident_id):
        history.add_row(
            version.version_text,
            version.recorded_at.isoformat(timespec="seconds"),
            str(version.payload.get("status", "")),
            str(version.payload.get("assignedTo") or ""),
        )
    return [head, alerts, entities, comments, history]


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
