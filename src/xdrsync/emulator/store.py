"""The emulator's in-memory Defender: ground truth per tenant, and what listing can see yet.

Graph indexes changes with a delay, so an update is listable only some seconds after its
``lastUpdateDateTime``. The store keeps two views: the *truth* (what ``GET /incidents/{id}``
and ``/_emulator/truth`` return) and the *listable* snapshots (what ``$filter`` listing sees),
where a new version replaces the old one only once its visibility time has come.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from xdrsync.emulator.activity import (
    AlertEdit,
    AlertMove,
    Change,
    IncidentComment,
    IncidentEdit,
    Merge,
    NewAlert,
    NewIncident,
)
from xdrsync.emulator.timefmt import graph_time, utcnow

Json = dict[str, Any]

INCIDENT_WRITABLE = frozenset(
    {"assignedTo", "classification", "determination", "status", "customTags"}
)
ALERT_WRITABLE = frozenset({"assignedTo", "classification", "determination", "status"})
# What an analyst can change in the portal, beyond what the API may PATCH.
PORTAL_EDITABLE = INCIDENT_WRITABLE | {
    "severity",
    "displayName",
    "description",
    "resolvingComment",
    "lastModifiedBy",
}


class UnknownEntityError(KeyError):
    """No incident or alert with that id in this tenant."""


class TenantStore:
    """One tenant's incidents. Every public method takes the tenant's lock."""

    def __init__(
        self,
        tenant_id: str,
        incidents: Iterable[Json],
        *,
        late_seconds: Callable[[], float],
        clock: Callable[[], datetime] = utcnow,
        comment_bumps: Callable[[], bool] = lambda: True,
    ) -> None:
        self.tenant_id = tenant_id
        self.lock = threading.RLock()
        self._late_seconds = late_seconds
        # Whether the next comment moves its record's lastUpdateDateTime (undocumented).
        self._comment_bumps = comment_bumps
        self._clock = clock
        self._truth: dict[str, Json] = {}
        self._alert_owner: dict[str, str] = {}
        self._listed: dict[str, Json] = {}
        self._pending: dict[str, list[tuple[datetime, Json]]] = {}
        self._listed_cache: list[Json] | None = None
        self._alerts_cache: list[Json] | None = None
        for incident in incidents:
            self._truth[incident["id"]] = incident
            self._listed[incident["id"]] = incident
            for alert in incident.get("alerts") or ():
                self._alert_owner[alert["id"]] = incident["id"]
        numeric = [int(i) for i in self._truth if i.isdigit()]
        self._next_id = max(numeric, default=0) + 1

    # -- reads ---------------------------------------------------------------------------

    def truth_json(self) -> list[str]:
        """Every incident as Graph JSON text, including versions not yet listable."""
        with self.lock:
            return [json.dumps(incident) for incident in self._truth.values()]

    def incident(self, incident_id: str) -> Json:
        with self.lock:
            try:
                return copy.deepcopy(self._truth[incident_id])
            except KeyError:
                raise UnknownEntityError(incident_id) from None

    def alert(self, alert_id: str) -> Json:
        with self.lock:
            owner = self._alert_owner.get(alert_id)
            for alert in self._truth[owner].get("alerts") or () if owner else ():
                if alert["id"] == alert_id:
                    return copy.deepcopy(alert)
            raise UnknownEntityError(alert_id)

    def listable_incidents(self) -> list[Json]:
        """Incident snapshots that listing may return now (not copies: do not mutate)."""
        with self.lock:
            self._promote_due()
            if self._listed_cache is None:
                self._listed_cache = list(self._listed.values())
            return self._listed_cache

    def listable_alerts(self) -> list[Json]:
        with self.lock:
            self._promote_due()
            if self._alerts_cache is None:
                self._alerts_cache = [
                    alert
                    for incident in self._listed.values()
                    for alert in incident.get("alerts") or ()
                ]
            return self._alerts_cache

    def incidents_view(self) -> Mapping[str, Json]:
        """The truth, for the activity generator to choose its next change (read-only)."""
        return self._truth

    def count(self) -> int:
        return len(self._truth)

    # -- writes --------------------------------------------------------------------------

    def apply(self, change: Change) -> str:
        """Apply one change as Defender would; returns the id of the incident it touched."""
        with self.lock:
            now = self._clock()
            if isinstance(change, NewIncident):
                return self._new_incident(change.incident, now)
            if isinstance(change, NewAlert):
                incident = self._get(change.incident_id)
                self._attach_alert(incident, copy.deepcopy(change.alert), now)
                self._touched(incident, now)
                return change.incident_id
            if isinstance(change, IncidentEdit):
                self.edit_incident(change.incident_id, change.changes, editor=None)
                return change.incident_id
            if isinstance(change, AlertEdit):
                self.edit_alert(change.alert_id, change.changes, editor=None)
                return self._alert_owner[change.alert_id]
            if isinstance(change, IncidentComment):
                self.add_incident_comment(change.incident_id, change.comment, change.author)
                return change.incident_id
            if isinstance(change, Merge):
                self._merge(change.source_id, change.target_id, now)
                return change.target_id
            if isinstance(change, AlertMove):
                self._move_alert(change.alert_id, change.target_id, now)
                return change.target_id
            raise TypeError(f"unknown change {change!r}")

    def edit_incident(
        self, incident_id: str, changes: Mapping[str, Any], *, editor: str | None
    ) -> Json:
        """Set fields of an incident (already validated by the caller) and bump its version."""
        with self.lock:
            now = self._clock()
            incident = self._get(incident_id)
            for key, value in changes.items():
                incident[key] = copy.deepcopy(value)
            if "lastModifiedBy" not in changes:
                incident["lastModifiedBy"] = (
                    editor
                    or changes.get("assignedTo")
                    or incident.get("assignedTo")
                    or "Automation"
                )
            if str(changes.get("status", "")).lower() == "resolved":
                # Resolving an incident resolves its alerts, as in the portal.
                for alert in incident.get("alerts") or ():
                    if str(alert.get("status", "")).lower() != "resolved":
                        alert["status"] = "resolved"
                        alert["resolvedDateTime"] = graph_time(now)
                        alert["lastUpdateDateTime"] = graph_time(now)
            self._touched(incident, now)
            return copy.deepcopy(incident)

    def edit_alert(self, alert_id: str, changes: Mapping[str, Any], *, editor: str | None) -> Json:
        """Alert edits bump the alert only: whether Defender also bumps the incident is
        undocumented, so the emulator takes the harder reading and clients must watch alerts_v2."""
        with self.lock:
            now = self._clock()
            alert = self._find_alert(alert_id)
            for key, value in changes.items():
                alert[key] = copy.deepcopy(value)
            if str(changes.get("status", "")).lower() == "resolved":
                alert["resolvedDateTime"] = graph_time(now)
            alert["lastUpdateDateTime"] = graph_time(now)
            self._snapshot(self._get(self._alert_owner[alert_id]), now)
            return copy.deepcopy(alert)

    def add_incident_comment(self, incident_id: str, text: str, author: str) -> list[Json]:
        with self.lock:
            now = self._clock()
            incident = self._get(incident_id)
            incident.setdefault("comments", []).append(
                {
                    "comment": text,
                    "createdByDisplayName": author,
                    "createdDateTime": graph_time(now),
                }
            )
            if self._comment_bumps():
                self._touched(incident, now)
            else:
                self._snapshot(incident, now)
            return copy.deepcopy(incident["comments"])

    def add_alert_comment(self, alert_id: str, text: str, author: str) -> list[Json]:
        with self.lock:
            now = self._clock()
            alert = self._find_alert(alert_id)
            alert.setdefault("comments", []).append(
                {
                    "comment": text,
                    "createdByDisplayName": author,
                    "createdDateTime": graph_time(now),
                }
            )
            if self._comment_bumps():
                alert["lastUpdateDateTime"] = graph_time(now)
            self._snapshot(self._get(self._alert_owner[alert_id]), now)
            return copy.deepcopy(alert["comments"])

    def move_alert(self, alert_id: str, target_id: str) -> tuple[str, Json]:
        """Move an alert to another incident as Defender does (``_move_alert``); returns the
        id of the incident it left and the alert as it is now."""
        with self.lock:
            source_id = self._move_alert(alert_id, target_id, self._clock())
            return source_id, copy.deepcopy(self._find_alert(alert_id))

    # -- internals -----------------------------------------------------------------------

    def _get(self, incident_id: str) -> Json:
        """The incident's truth, safe to mutate.

        Truth and listing share one object until the first change (copy on write), so a
        tenant of 10,000 incidents is held once, not twice.
        """
        try:
            incident = self._truth[incident_id]
        except KeyError:
            raise UnknownEntityError(incident_id) from None
        if self._listed.get(incident_id) is incident:
            incident = self._truth[incident_id] = copy.deepcopy(incident)
        return incident

    def _find_alert(self, alert_id: str) -> Json:
        owner = self._alert_owner.get(alert_id)
        if owner is None:
            raise UnknownEntityError(alert_id)
        for alert in self._get(owner).get("alerts") or ():
            if alert["id"] == alert_id:
                found: Json = alert
                return found
        raise UnknownEntityError(alert_id)

    def _new_incident(self, template: Mapping[str, Any], now: datetime) -> str:
        incident = copy.deepcopy(dict(template))
        incident_id = str(self._next_id)
        self._next_id += 1
        stamp = graph_time(now)
        incident.update(
            id=incident_id,
            tenantId=self.tenant_id,
            createdDateTime=incident.get("createdDateTime") or stamp,
            incidentWebUrl=f"https://security.microsoft.com/incidents/{incident_id}?tid={self.tenant_id}",
        )
        alerts = incident.pop("alerts", None) or []
        incident["alerts"] = []
        self._truth[incident_id] = incident
        for alert in alerts:
            self._attach_alert(incident, alert, now)
        self._touched(incident, now)
        return incident_id

    def _attach_alert(self, incident: Json, alert: Json, now: datetime) -> None:
        alert["incidentId"] = incident["id"]
        alert["tenantId"] = self.tenant_id
        alert["incidentWebUrl"] = incident.get("incidentWebUrl")
        alert["lastUpdateDateTime"] = graph_time(now)
        incident.setdefault("alerts", []).append(alert)
        self._alert_owner[alert["id"]] = incident["id"]

    def _merge(self, source_id: str, target_id: str, now: datetime) -> None:
        """Defender's merge: alerts and tags move to the target, comments stay behind."""
        source, target = self._get(source_id), self._get(target_id)
        if source_id == target_id or str(source.get("status", "")).lower() == "redirected":
            raise ValueError(f"incident {source_id} cannot be merged into {target_id}")
        for alert in source.get("alerts") or []:
            self._attach_alert(target, alert, now)
        source["alerts"] = []
        tags = list(target.get("customTags") or [])
        tags += [t for t in source.get("customTags") or [] if t not in tags]
        target["customTags"] = tags
        source["customTags"] = []
        source["status"] = "redirected"
        source["redirectIncidentId"] = target_id
        self._touched(source, now)
        self._touched(target, now)

    def _move_alert(self, alert_id: str, target_id: str, now: datetime) -> str:
        """Defender's move of one alert to another incident, without a merge; returns the id
        of the incident it left.

        The alert names its new incident and is stamped; the incident it joins lists it and
        is stamped. The incident it leaves lists it no more, but keeps its
        ``lastUpdateDateTime``: whether a move stamps that one is undocumented (reference
        §1.6), and a client must not rely on it. Unknown ids raise ``UnknownEntityError``;
        a move to the alert's own incident or to a redirected one, ``ValueError``.
        """
        source_id = self._alert_owner.get(alert_id)
        if source_id is None:
            raise UnknownEntityError(alert_id)
        target = self._get(target_id)
        if source_id == target_id or str(target.get("status", "")).lower() == "redirected":
            raise ValueError(f"alert {alert_id} cannot be moved to incident {target_id}")
        source = self._get(source_id)
        alert = self._find_alert(alert_id)
        source["alerts"] = [a for a in source.get("alerts") or () if a is not alert]
        self._attach_alert(target, alert, now)
        self._snapshot(source, now)  # listing shows the source without it, not re-stamped
        self._touched(target, now)
        return source_id

    def _touched(self, incident: Json, now: datetime) -> None:
        incident["lastUpdateDateTime"] = graph_time(now)
        self._snapshot(incident, now)

    def _snapshot(self, incident: Json, now: datetime) -> None:
        """Record the new version; listing sees it after the configured indexing delay."""
        late = self._late_seconds()
        if late <= 0:
            # Shared with the truth until the next change copies it (see ``_get``).
            self._pending.pop(incident["id"], None)
            self._publish(incident)
            return
        snapshot = copy.deepcopy(incident)
        self._pending.setdefault(incident["id"], []).append(
            (now + timedelta(seconds=late), snapshot)
        )

    def _promote_due(self) -> None:
        if not self._pending:
            return
        now = self._clock()
        for incident_id in list(self._pending):
            queue = self._pending[incident_id]
            due = [snap for when, snap in queue if when <= now]
            if not due:
                continue
            self._publish(due[-1])
            remaining = [(when, snap) for when, snap in queue if when > now]
            if remaining:
                self._pending[incident_id] = remaining
            else:
                del self._pending[incident_id]

    def flush_pending(self) -> None:
        """Make every pending version listable now (used when faults are paused)."""
        with self.lock:
            for queue in self._pending.values():
                self._publish(queue[-1][1])
            self._pending.clear()

    def _publish(self, snapshot: Json) -> None:
        self._listed[snapshot["id"]] = snapshot
        self._listed_cache = None
        self._alerts_cache = None
