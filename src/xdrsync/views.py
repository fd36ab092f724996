"""Terminal renderings of the workspace (rich tables) for ``state show`` and ``incidents``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich import table as rich_table
from rich.console import RenderableType
from rich.text import Text

from xdrsync.destinations.status import DestinationStatus
from xdrsync.hub import Hub, IncidentSummary
from xdrsync.hub.records import DeadLetterRow, OutboxRow, StreamStateRow
from xdrsync.hub.status import COUNTED
from xdrsync.hub.unparsed import ADVICE as UNPARSED_ADVICE
from xdrsync.hub.unparsed import UnparsedTally
from xdrsync.twoway.access import STREAM as TWO_WAY
from xdrsync.twoway.access import read_only_reasons, recorded_roles

if TYPE_CHECKING:
    from xdrsync.models import Incident


class Table(rich_table.Table):
    """A rich table whose text (title, cells) is shown as given, never read as markup: the
    cells hold a server's words (errors, names, titles, comments), where ``[/x]`` would stop
    the print with a MarkupError or ``[red]`` restyle it."""

    def __init__(self, *headers: str, title: str | None = None, **options: Any) -> None:
        super().__init__(*headers, title=None if title is None else Text(title), **options)

    def add_row(
        self,
        *renderables: RenderableType | None,
        style: Any = None,
        end_section: bool = False,
    ) -> None:
        super().add_row(
            *(Text(cell) if isinstance(cell, str) else cell for cell in renderables),
            style=style,
            end_section=end_section,
        )


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max((now - moment).total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


#: The inbound streams every tenant has (``sync.inbound.STREAMS``, not imported: ``state
#: show`` loads none of the sync machinery).
INBOUND_STREAMS = ("incidents", "alerts")
NOT_IN_CONFIG = "(not in config)"


def tenant_label(tenant_id: str, tenant_names: dict[str, str]) -> str:
    """The tenant's configured name; a tenant no longer configured, by id and marked so."""
    name = tenant_names.get(tenant_id)
    return name if name is not None else f"{tenant_id} {NOT_IN_CONFIG}"


def never_synced(row: StreamStateRow | None) -> bool:
    """No read of the stream ever succeeded: no state, or only errors recorded on it (a
    first backfill that committed pages has read, though it has no watermark yet)."""
    return row is None or (row.last_commit_at is None and not (row.doc or {}).get("watermark"))


def _stream_cells(
    row: StreamStateRow | None,
    stream: str,
    label: str,
    configured: bool,
    now: datetime,
    unparsed: bool = False,
) -> list[str]:
    doc = (row.doc if row is not None else None) or {}
    mark = doc.get("watermark")
    watermark = datetime.fromisoformat(mark) if mark else None
    wait = doc.get("retry_at")
    retry_at = datetime.fromisoformat(wait) if wait else None
    last_error = row.last_error if row is not None else None
    if not configured:
        lag = "—"  # not synced any more: a lag that grows for ever would be a false alarm
    elif never_synced(row):
        lag = "never synced"
        if row is not None and last_error and row.last_error_at is not None:
            lag += f"; failed {_age(row.last_error_at, now)}"
    else:
        lag = _age(watermark, now) if watermark else "backfilling"
    if retry_at is not None and retry_at > now:  # Graph asked us to wait (Retry-After)
        lag += f"; waiting until {retry_at:%H:%M:%S} UTC"
    return [
        label,
        stream,
        watermark.isoformat(timespec="seconds") if watermark else "—",
        lag,
        _age(row.last_commit_at, now) if row is not None else "never",
        str(row.quarantined if row is not None else 0),
        *([str(UnparsedTally.from_doc(doc).items)] if unparsed else []),
        last_error or "",
    ]


def unparsed_lines(
    rows: list[StreamStateRow], tenant_names: dict[str, str], now: datetime
) -> list[str]:
    """For each stream with evidence items kept unparsed: how many, the latest reason, and
    (once) what to do; each on its own line, so it is read whole."""
    lines: list[str] = []
    for row in rows:
        tally = UnparsedTally.from_doc(row.doc)
        if not tally.items:
            continue
        lines.append(
            f"  {tenant_label(row.tenant_id, tenant_names)}/{row.stream}: {tally.items} "
            f"evidence item(s) did not fit their type and were kept unparsed; the latest "
            f"{_age(tally.last_seen, now)}, in alert {tally.alert_id}: {tally.reason}"
        )
    if lines:
        lines.append(f"  {UNPARSED_ADVICE}")
    return lines


def state_tables(
    hub: Hub,
    tenant_names: dict[str, str],
    destinations: list[DestinationStatus],
    *,
    hide_unconfigured: bool = False,
) -> list[Any]:
    """Streams (cursor, lag, last error, quarantine, evidence kept unparsed), stored totals,
    destinations.

    ``tenant_names`` (id to name, in config order) are the configured tenants: each has a row
    per inbound stream, ``never synced`` until a read of it succeeds. Streams of tenants not
    among them are marked ``(not in config)``, with no lag; ``hide_unconfigured`` leaves them
    out, and a line says how many."""
    now = datetime.now(UTC)
    # Not inbound streams: a tenant's permissions, shown with the edits.
    states = {(r.tenant_id, r.stream): r for r in hub.list_states() if r.stream != TWO_WAY}
    shown = [
        row
        for (tenant_id, _), row in states.items()
        if tenant_id in tenant_names or not hide_unconfigured
    ]
    notes = unparsed_lines(shown, tenant_names, now)
    # The column only when there is something in it: an 80-column terminal has no room to
    # spare (the stream's name was cut short); the lines below the table say the rest.
    unparsed = bool(notes)
    streams = Table(title="Inbound streams", title_justify="left")
    for column in (
        "tenant",
        "stream",
        "watermark",
        "lag",
        "last commit",
        "quarantined",
        *(["unparsed evidence"] if unparsed else []),
        "last error",
    ):
        streams.add_column(column)
    for tenant_id, name in tenant_names.items():
        extra = sorted(s for t, s in states if t == tenant_id and s not in INBOUND_STREAMS)
        for stream in (*INBOUND_STREAMS, *extra):
            row = states.get((tenant_id, stream))
            streams.add_row(*_stream_cells(row, stream, name, True, now, unparsed))
    order = {stream: i for i, stream in enumerate(INBOUND_STREAMS)}
    gone = sorted(
        (row for (tenant_id, _), row in states.items() if tenant_id not in tenant_names),
        key=lambda row: (row.tenant_id, order.get(row.stream, len(order)), row.stream),
    )
    if not hide_unconfigured:
        for row in gone:
            label = tenant_label(row.tenant_id, tenant_names)
            streams.add_row(*_stream_cells(row, row.stream, label, False, now, unparsed))
    elif gone:
        tenants = len({row.tenant_id for row in gone})
        notes.append(
            f"  {len(gone)} stream(s) of {tenants} tenant(s) no longer in the config not shown "
            "(their records stay in the workspace): `xdrsync state show --all`"
        )
    totals = Table(title="Workspace", title_justify="left")
    counts = hub.counts()
    # Every figure, at 0 for a tenant not synced yet (a fresh workspace has no rows at all).
    kinds = sorted({*COUNTED, *(k for per in counts.values() for k in per)})
    totals.add_column("tenant")
    for kind in kinds:
        totals.add_column(kind, justify="right")
    others = sorted(t for t in counts if t not in tenant_names)
    for tenant_id in (*tenant_names, *others):
        per = counts.get(tenant_id, {})
        totals.add_row(tenant_label(tenant_id, tenant_names), *(str(per.get(k, 0)) for k in kinds))
    return [
        streams,
        *notes,
        totals,
        *destinations_view(destinations),
        *edits_summary(hub, tenant_names),
    ]


def destinations_view(statuses: list[DestinationStatus]) -> list[Any]:
    """Per destination: position, lag, last delivery, dead letters; each error on its own
    line below, so it is read whole."""
    now = datetime.now(UTC)
    table = Table(title="Destinations", title_justify="left")
    for column in ("destination", "type", "position", "behind", "oldest pending"):
        table.add_column(column)
    for column in ("last delivery", "dead letters"):
        table.add_column(column)
    lines: list[Any] = []
    for status in statuses:
        table.add_row(
            status.name,
            status.kind,
            str(status.position),
            f"{status.behind} changes",
            _age(status.oldest_pending_at, now) if status.oldest_pending_at else "—",
            _age(status.delivered_at, now),
            str(status.dead_letters),
        )
        if status.error:
            since = _age(status.failing_since, now).removesuffix(" ago")
            lines.append(f"  {status.name}: failing for {since}: {status.error}")
    return [table, *lines]


def dead_letters_table(rows: list[DeadLetterRow], tenant_names: dict[str, str]) -> Table:
    table = Table(title=f"{len(rows)} dead letters (newest first)", title_justify="left")
    for column in ("destination", "seq", "tenant", "record", "reason", "at"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.destination,
            str(row.seq),
            tenant_names.get(row.tenant_id, row.tenant_id),
            f"{row.entity_type} {row.entity_id}",
            row.reason,
            row.at.isoformat(timespec="seconds"),
        )
    return table


_EDIT_STATES = ("pending", "confirmed", "failed", "conflict", "overridden", "replaced")


def edits_summary(hub: Hub, tenant_names: dict[str, str]) -> list[Any]:
    """Workspace edits to Defender per tenant and state, what the app may do, and each
    tenant's latest failure (on its own line, so it is read whole)."""
    table = Table(title="Edits to Defender", title_justify="left")
    table.add_column("tenant")
    for state in _EDIT_STATES:
        table.add_column(state, justify="right")
    table.add_column("writes", overflow="fold")
    counts = hub.outbox_counts()
    failures = {r.tenant_id: r for r in hub.edits(states=["failed"], limit=50)}
    roles = {r.tenant_id: recorded_roles(r.doc) for r in hub.list_states() if r.stream == TWO_WAY}
    lines: list[Any] = []
    known = {t for t, _ in counts} | set(roles)
    for tenant_id in [*(t for t in tenant_names if t in known), *sorted(known - set(tenant_names))]:
        name = tenant_label(tenant_id, tenant_names)
        granted = roles.get(tenant_id)
        refused = read_only_reasons(name, True, granted)
        table.add_row(
            name,
            *(str(counts.get((tenant_id, state), 0)) for state in _EDIT_STATES),
            "not checked yet" if not granted else ("read-only" if refused else "allowed"),
        )
        failure = failures.get(tenant_id)
        if failure is not None:
            lines.append(
                f"  {name}: last failed edit #{failure.id} ({failure.entity_type} "
                f"{failure.entity_id}, {failure.field}): {failure.outcome}"
            )
        lines.extend(f"  {reason}" for reason in dict.fromkeys(refused.values()))
        waiting = counts.get((tenant_id, "pending"), 0)
        if waiting and tenant_id not in tenant_names:
            lines.append(
                f"  {name}: {waiting} pending edit(s) wait for their tenant: not pushed "
                "until it is back in the config"
            )
    return [table, *lines]


def _shown(value: Any) -> str:
    if isinstance(value, dict) and "classification" in value:
        return f"{value['classification']}/{value['determination']}"
    if isinstance(value, dict) and "add" in value:
        parts = [f"+{t}" for t in value["add"]] + [f"-{t}" for t in value["remove"]]
        return " ".join(parts)
    return "—" if value is None else str(value)


def conflicts_table(rows: list[OutboxRow], tenant_names: dict[str, str]) -> Table:
    """Edits waiting for ``conflicts resolve``: both sides' values."""
    table = Table(title=f"{len(rows)} conflicts", title_justify="left")
    for column in ("#", "tenant", "record", "field", "workspace", "by", "Defender"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            tenant_names.get(row.tenant_id, row.tenant_id),
            f"{row.entity_type} {row.entity_id}",
            row.field,
            _shown(row.wanted),
            f"{row.author} at {row.created_at.isoformat(timespec='seconds')}",
            _shown(row.theirs),
        )
    return table


def edits_table(rows: list[OutboxRow]) -> Table:
    """One record's workspace edits and what became of each."""
    table = Table(title="Workspace edits", title_justify="left")
    for column in ("#", "when", "by", "field", "value", "state", "outcome"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            row.created_at.isoformat(timespec="seconds"),
            f"{row.author} ({row.origin})",
            row.field,
            _shown(row.wanted),
            row.state,
            row.outcome or "",
        )
    return table


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


def incident_detail(
    hub: Hub,
    incident: Incident,
    shown: dict[str, Any] | None = None,
    *,
    tenant_name: str | None = None,
) -> list[Any]:
    """The incident's fields, alerts, evidence by entity, comments, version history and
    workspace edits; ``shown`` is the workspace's view (edits not yet in Defender applied),
    whose differences from Defender's version are marked pending. The heading names the
    tenant (``tenant_name``, else its id): incident ids are per tenant."""
    tenant = incident.tenant_id or ""
    incident_id = incident.id or ""
    edits = hub.edits(tenant_id=tenant, entity=("incident", incident_id))
    pending = {e.field for e in edits if e.state == "pending"}
    conflicts = {e.field for e in edits if e.state == "conflict"}
    wire = incident.to_graph()
    shown = shown or wire

    def field(name: str, graph: str, value: Any) -> str:
        text = "" if value is None else str(getattr(value, "value", value))
        if shown.get(graph) != wire.get(graph):
            text = f"{_shown(shown.get(graph))} (pending; Defender: {text or '—'})"
        elif name in pending:
            text += " (edit pending)"
        if name in conflicts:
            text += " (conflict: see `xdrsync conflicts list`)"
        return text

    head = Table(
        title=f"Incident {incident.id} (tenant {tenant_name or tenant}): {incident.display_name}",
        title_justify="left",
        show_header=False,
    )
    head.add_column("field")
    head.add_column("value", overflow="fold")
    head.add_row("status", field("status", "status", incident.status))
    head.add_row("owner", field("assignedTo", "assignedTo", incident.assigned_to))
    head.add_row(
        "classification", field("classification", "classification", incident.classification)
    )
    head.add_row("determination", field("classification", "determination", incident.determination))
    tags = ", ".join(incident.custom_tags)
    if shown.get("customTags") != wire.get("customTags"):
        tags = f"{', '.join(shown.get('customTags') or ())} (pending; Defender: {tags or '—'})"
    head.add_row("tags", tags)
    for label, value in (
        ("severity", incident.severity),
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
        author = comment.created_by or ""
        if comment.written_by:
            author = f"{comment.written_by} (workspace, posted as {author})"
        comments.add_row(when, author + origin, comment.comment or "")
    from xdrsync.models.enums import IncidentStatus  # here: `incidents list` never needs it

    history = Table(title="Version history", title_justify="left")
    for column in ("version", "recorded", "status", "owner"):
        history.add_column(column)
    for version in hub.incident_history(tenant, incident_id):
        history.add_row(
            version.version_text,
            version.recorded_at.isoformat(timespec="seconds"),
            str(IncidentStatus.canonical(version.payload.get("status")) or ""),
            str(version.payload.get("assignedTo") or ""),
        )
    for edit in edits:
        if edit.field == "comment" and edit.state == "pending":
            comments.add_row(
                edit.created_at.isoformat(timespec="seconds"),
                f"{edit.author} (pending)",
                str(edit.wanted),
            )
    parts: list[Any] = [head, alerts, entities, comments, history]
    if edits:
        parts.append(edits_table(edits))
    return parts


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
