"""The hub: xdrsync's durable store of incidents, alerts, history, sync state and audit."""

from __future__ import annotations

from xdrsync.hub.database import configured_url, default_url
from xdrsync.hub.records import (
    ApplyResult,
    AuditRow,
    ChangeRow,
    CommentRow,
    CursorRow,
    DeadLetterRow,
    EntityCounts,
    EvidenceRow,
    InboundBatch,
    IncidentSummary,
    Quarantined,
    QuarantineRow,
    RemoteCopy,
    StreamStateRow,
    VersionRow,
)
from xdrsync.hub.store import Hub

__all__ = [
    "ApplyResult",
    "AuditRow",
    "ChangeRow",
    "CommentRow",
    "CursorRow",
    "DeadLetterRow",
    "EntityCounts",
    "EvidenceRow",
    "Hub",
    "InboundBatch",
    "IncidentSummary",
    "QuarantineRow",
    "Quarantined",
    "RemoteCopy",
    "StreamStateRow",
    "VersionRow",
    "configured_url",
    "default_url",
]
