"""Parsed records → the rows the hub would write for them (pure; no database here)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from xdrsync.hub.guard import Version
from xdrsync.hub.payload import (
    alert_ids_of,
    alert_summary,
    comment_key,
    content_hash,
    enum_text,
    incident_payload,
    stored_json,
    version_ticks,
)
from xdrsync.hub.records import EntityType
from xdrsync.hub.terms import evidence_terms
from xdrsync.models import Alert, Comment, Evidence, Incident


@dataclass(frozen=True, slots=True)
class CommentValues:
    key: str
    created: datetime | None
    author: str | None
    text: str | None


class Candidate:
    """One incoming copy of an incident or alert.

    Only the key and version are computed up front; everything else is derived on first use,
    because most copies in a steady-state sync are re-reads that write nothing.
    """

    def __init__(self, record: Incident | Alert, parent_id: str | None = None) -> None:
        self.record = record
        raw = dict(record.raw)
        if isinstance(record, Incident):
            self.entity_type: EntityType = "incident"
            self.id = str(record.id)
            self.incident_id: str | None = self.id
            self._raw = raw
            self.payload: dict[str, Any] = incident_payload(raw)
        else:
            # The alert's own incidentId wins over the incident that embedded it, so an alert
            # read through an old copy of its former incident can't be dragged back.
            self.entity_type = "alert"
            self.id = str(record.id)
            self.incident_id = str(record.incident_id) if record.incident_id else parent_id
            self._raw = raw
            self.payload = raw
        self.version = Version(
            version_ticks(raw, record.last_update_date_time), content_hash(self.payload)
        )

    @cached_property
    def payload_text(self) -> str:
        return stored_json(self.payload)

    @cached_property
    def columns(self) -> dict[str, Any]:
        """The current row's summary columns."""
        record = self.record
        if isinstance(record, Incident):
            return {
                "display_name": record.display_name,
                "status": enum_text(record.status),
                "severity": enum_text(record.severity),
                "classification": enum_text(record.classification),
                "determination": enum_text(record.determination),
                "assigned_to": record.assigned_to,
                "created_date_time": record.created_date_time,
                "merged_into": merged_into(record),
            }
        return {
            "incident_id": self.incident_id,
            "status": enum_text(record.status),
            "severity": enum_text(record.severity),
            "service_source": enum_text(record.service_source),
            "title": record.title,
            "created_date_time": record.created_date_time,
            **alert_summary(self._raw),
            "evidence_terms": evidence_terms(self._raw),
        }

    @cached_property
    def comments(self) -> tuple[CommentValues, ...]:
        return _comments(self.record.comments)

    @cached_property
    def evidence(self) -> tuple[dict[str, Any], ...]:
        if isinstance(self.record, Incident):
            return ()
        return tuple(_evidence_row(i, item) for i, item in enumerate(self.record.evidence))

    @cached_property
    def alert_ids(self) -> str | None:
        """Incidents only: the JSON list of alert ids, None when read without alerts."""
        if not isinstance(self.record, Incident):
            return None
        ids = alert_ids_of(self._raw)
        return json.dumps(ids) if ids is not None else None


def _comments(comments: Iterable[Comment]) -> tuple[CommentValues, ...]:
    return tuple(
        CommentValues(
            key=comment_key(c.created_date_time, c.created_by_display_name, c.comment),
            created=c.created_date_time,
            author=c.created_by_display_name,
            text=c.comment,
        )
        for c in comments
    )


def merged_into(incident: Incident) -> str | None:
    """The survivor's id when Defender merged this incident into another one."""
    target = incident.redirect_incident_id
    if enum_text(incident.status) == "redirected" and target:
        return str(target)
    return None


def _evidence_row(ordinal: int, item: Evidence) -> dict[str, Any]:
    key = item.entity_key()
    return {
        "ordinal": ordinal,
        "odata_type": item.odata_type,
        "kind": enum_text(item.kind),
        "entity_kind": enum_text(key.kind) if key is not None else None,
        "entity_key": key.value if key is not None else None,
        "display_name": item.display_name(),
    }


@dataclass(frozen=True, slots=True)
class Rejected:
    """A parsed record the hub cannot key (no ``id``): quarantined instead of stored."""

    raw: str
    reason: str


def _has_id(record: Incident | Alert) -> bool:
    return record.id is not None and str(record.id) != ""


def _storable_id(value: str) -> bool:
    """Whether an id can be a key as it is: PostgreSQL's text holds no NUL, and neither
    database's driver encodes a lone UTF-16 surrogate. The engine would bind U+FFFD for
    either (``database.storable_text``), so the stored key would never equal the record's
    own again, and every later version would collide with the first."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def batch_candidates(
    incidents: Sequence[Incident], alerts: Sequence[Alert]
) -> tuple[list[Candidate], list[Candidate], list[Rejected]]:
    """Every incident, and every alert — embedded ones first, then the alerts stream's."""
    rejected: list[Rejected] = []

    def keyed(record: Incident | Alert, what: str) -> bool:
        if not _has_id(record):
            reason = f"{what} without an id"
        elif not _storable_id(str(record.id)):
            reason = f"{what} has an id no database can key by (it holds NUL or a lone surrogate)"
        else:
            return True
        rejected.append(Rejected(stored_json(dict(record.raw)), reason))
        return False

    incident_rows: list[Candidate] = []
    alert_rows: list[Candidate] = []
    for incident in incidents:
        if not keyed(incident, "incident"):
            continue
        incident_rows.append(Candidate(incident))
        alert_rows.extend(
            Candidate(alert, str(incident.id))
            for alert in incident.alerts
            if keyed(alert, f"alert of incident {incident.id}")
        )
    alert_rows.extend(Candidate(alert) for alert in alerts if keyed(alert, "alert"))
    return incident_rows, alert_rows, rejected
