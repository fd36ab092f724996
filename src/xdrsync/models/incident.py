"""Incident: a Defender XDR incident with its alerts (reference §2.2)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from xdrsync.models.alert import Alert
from xdrsync.models.base import GraphModel
from xdrsync.models.comment import Comment
from xdrsync.models.enums import (
    Classification,
    Determination,
    IncidentStatus,
    ServiceSource,
    Severity,
)


class Incident(GraphModel):
    """microsoft.graph.security.incident. Field names are the snake_case Graph names;
    `alerts` is filled when the incident was read with `$expand=alerts`."""

    # One documentation example of `$expand=alerts` names the custom tags `tags` (as the
    # legacy API does); read it into custom_tags and write it back under the same name.
    LEGACY_KEYS: ClassVar[Mapping[str, tuple[str, ...]]] = {"custom_tags": ("tags",)}

    id: str | None = None
    display_name: str | None = None
    description: str | None = None
    summary: str | None = None
    severity: Severity | None = None
    status: IncidentStatus | None = None
    classification: Classification | None = None
    determination: Determination | None = None
    assigned_to: str | None = None
    custom_tags: tuple[str, ...] = ()
    system_tags: tuple[str, ...] = ()
    comments: tuple[Comment, ...] = ()
    created_date_time: datetime | None = None
    last_update_date_time: datetime | None = None
    last_modified_by: str | None = None
    resolving_comment: str | None = None
    priority_score: int | None = None
    redirect_incident_id: str | None = None
    incident_web_url: str | None = None
    tenant_id: str | None = None
    alerts: tuple[Alert, ...] = ()

    @property
    def alert_ids(self) -> tuple[str, ...]:
        """Ids of the expanded alerts, in Graph's order."""
        return tuple(alert.id for alert in self.alerts if alert.id)

    @property
    def product_names(self) -> tuple[str, ...]:
        """Friendly names of the products that raised its alerts, each once, in alert order."""
        return tuple(dict.fromkeys(alert.product for alert in self.alerts))

    @property
    def service_sources(self) -> frozenset[ServiceSource]:
        """The serviceSource values of its alerts."""
        return frozenset(a.service_source for a in self.alerts if a.service_source is not None)

    @property
    def is_redirected(self) -> bool:
        """Merged into another incident (`status = redirected` / `redirectIncidentId` set)."""
        return self.status == IncidentStatus.REDIRECTED or bool(self.redirect_incident_id)


__all__ = ["Incident"]
