"""Live Defender activity: one seeded change at a time (incidents, alerts, analyst work, merges,
and, when asked for, alerts moved between incidents)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from xdrsync.emulator import catalog as cat
from xdrsync.emulator.stories import (
    Person,
    Scene,
    build_alert,
    build_incident,
    build_world,
    entity_keys,
    evidence_hints,
)

Json = dict[str, Any]
# The store gives a new incident its real id and points the alerts' incidentId at it.
PLACEHOLDER_ID = "0"


@dataclass(frozen=True)
class NewIncident:
    """A new incident with its alerts; ``id`` and the alerts' ``incidentId`` are placeholders."""

    incident: Json


@dataclass(frozen=True)
class NewAlert:
    """A new alert that Defender correlated into an existing open incident."""

    incident_id: str
    alert: Json


@dataclass(frozen=True)
class IncidentEdit:
    """An analyst's edit of Graph-writable incident fields only."""

    incident_id: str
    changes: Json


@dataclass(frozen=True)
class AlertEdit:
    """An analyst's edit of Graph-writable alert fields only."""

    alert_id: str
    changes: Json


@dataclass(frozen=True)
class IncidentComment:
    incident_id: str
    comment: str
    author: str


@dataclass(frozen=True)
class Merge:
    """Defender folds ``source`` (open, not redirected) into ``target`` (another open one)."""

    source_id: str
    target_id: str


@dataclass(frozen=True)
class AlertMove:
    """Defender re-homes one alert without a merge (an analyst links it to another incident,
    or correlation does): ``target`` is an open incident other than the alert's own."""

    alert_id: str
    target_id: str


Change: TypeAlias = (
    NewIncident | NewAlert | IncidentEdit | AlertEdit | IncidentComment | Merge | AlertMove
)

_KINDS = ("incident", "alert", "edit", "comment", "alert_edit", "merge")
_WEIGHTS = (25, 20, 30, 15, 5, 5)
_CLASSIFICATIONS = ("truePositive", "informationalExpectedActivity", "falsePositive")
_CLASSIFICATION_WEIGHTS = (60, 15, 25)
_OPEN = frozenset({"active", "inprogress"})
_RESOLVED = frozenset({"resolved"})
# Merges look for partners among this many of the most recent incidents.
_MERGE_WINDOW = 600


def _status(incident: Mapping[str, Any]) -> str:
    return str(incident.get("status")).lower()


class ActivityGenerator:
    """Proposes what happens next in one tenant's Defender, from the store's current truth.

    The same seed, tenant and sequence of inputs (incidents in the same mapping order, as the
    store keeps them) give the same changes. It never proposes a change to a redirected
    incident, and proposes merges only when two open incidents exist.
    """

    def __init__(self, *, seed: int, tenant_id: str) -> None:
        self._rng = random.Random(f"xdrsync-activity/{seed}/{tenant_id}")
        # The same world as the generated history, so new activity touches the same people.
        self._world = build_world(seed, tenant_id)
        self._users = {p.aad_id: p for p in self._world.users}
        self._hosts = {h.mde_id: h for h in (*self._world.workstations, *self._world.servers)}
        self._recent: list[Scene] = []

    def next_change(
        self,
        incidents: Mapping[str, Mapping[str, Any]],
        now: datetime,
        *,
        move_rate: float = 0.0,
    ) -> Change:
        """The next change; that share (``move_rate``) of them moves an alert to another open
        incident when there is one. At 0 (the default) the draws, and so the changes of a
        seed, are those of an emulator without moves."""
        rng = self._rng
        now = now.astimezone(UTC)
        ids = list(incidents)
        if move_rate and rng.random() < move_rate:
            move = self._move(incidents, ids)
            if move is not None:
                return move
        kind = rng.choices(_KINDS, weights=_WEIGHTS)[0]
        if kind == "merge":
            merge = self._merge(incidents, ids)
            if merge is not None:
                return merge
        if kind == "edit" and rng.random() < 0.04:
            # A resolved incident is sometimes reopened (new evidence, a wrong call).
            reopened = self._pick(incidents, ids, _RESOLVED)
            if reopened is not None:
                return IncidentEdit(reopened, {"status": "active"})
        if kind == "comment" and rng.random() < 0.1:
            late = self._pick(incidents, ids, _RESOLVED)
            if late is not None:
                return self._comment(late, incidents)
        target = self._pick(incidents, ids, _OPEN) if kind != "incident" else None
        if target is None:
            return self._new_incident(now)
        if kind == "alert":
            return self._new_alert(target, incidents[target], now)
        if kind == "edit":
            return IncidentEdit(target, self._incident_changes(incidents[target]))
        if kind == "alert_edit" and incidents[target].get("alerts"):
            return self._alert_edit(incidents[target])
        return self._comment(target, incidents)

    def _pick(
        self, incidents: Mapping[str, Mapping[str, Any]], ids: Sequence[str], wanted: frozenset[str]
    ) -> str | None:
        """A random incident in one of the ``wanted`` states, or None if there is none.

        Random probes first, a scan only when such incidents are rare: this runs under the
        store's lock on every step, and tenants hold ten thousand incidents.
        """
        rng = self._rng
        for _ in range(min(48, 4 * len(ids))):
            candidate = ids[rng.randrange(len(ids))]
            if _status(incidents[candidate]) in wanted:
                return candidate
        matching = [i for i in ids if _status(incidents[i]) in wanted]
        return rng.choice(matching) if matching else None

    # -- changes ---------------------------------------------------------------------------

    def _new_incident(self, now: datetime) -> NewIncident:
        rng = self._rng
        story = rng.choices(cat.STORIES, weights=[s.weight for s in cat.STORIES])[0]
        scene = Scene(rng, self._world, reuse=self._recent)
        self._recent = [*self._recent[-11:], scene]
        created = now - timedelta(minutes=rng.uniform(0.5, 20))
        incident = build_incident(
            rng, scene, story, incident_id=PLACEHOLDER_ID, created=created, now=now
        )
        return NewIncident(incident)

    def _new_alert(self, incident_id: str, incident: Mapping[str, Any], now: datetime) -> NewAlert:
        """An alert about the incident's own user and device, as correlation would add."""
        rng = self._rng
        user = host = None
        for key in sorted(entity_keys(incident)):
            kind, _, value = key.partition(":")
            if kind == "user" and user is None:
                user = self._users.get(value)
            elif kind == "device" and host is None:
                host = self._hosts.get(value)
        scene = Scene(rng, self._world, user=user, host=host)
        spec = rng.choice(cat.FOLLOW_UPS)
        alert = build_alert(rng, scene, spec, incident_id=incident_id, created=now, now=now)
        return NewAlert(incident_id, alert)

    def _incident_changes(self, incident: Mapping[str, Any]) -> Json:
        rng = self._rng
        analyst = self._analyst()
        status = _status(incident)
        if not incident.get("assignedTo"):
            changes: Json = {"assignedTo": analyst.upn}
            if rng.random() < 0.7:
                changes["status"] = "inProgress"
            return changes
        roll = rng.random()
        if roll < 0.45:
            classification, determination = self._verdict()
            return {
                "status": "resolved",
                "classification": classification,
                "determination": determination,
            }
        if roll < 0.65:
            tags = list(incident.get("customTags") or [])
            fresh = [t for t in cat.CUSTOM_TAGS if t not in tags]
            return {"customTags": [*tags, rng.choice(fresh)] if fresh else tags[1:]}
        if roll < 0.8:
            others = [a for a in self._world.analysts if a.upn != incident.get("assignedTo")]
            return {"assignedTo": rng.choice(others).upn}
        if roll < 0.9:
            determination = rng.choice(cat.DETERMINATIONS["truePositive"])
            return {"classification": "truePositive", "determination": determination}
        return {"status": "active" if status == "inprogress" else "inProgress"}

    def _alert_edit(self, incident: Mapping[str, Any]) -> AlertEdit:
        rng = self._rng
        alert = rng.choice(list(incident.get("alerts") or ()))
        roll = rng.random()
        if roll < 0.4:
            changes: Json = {"status": "inProgress", "assignedTo": self._analyst().upn}
        elif roll < 0.7:
            classification, determination = self._verdict()
            changes = {
                "status": "resolved",
                "classification": classification,
                "determination": determination,
            }
        else:
            changes = {"assignedTo": self._analyst().upn}
        return AlertEdit(str(alert["id"]), changes)

    def _comment(
        self, incident_id: str, incidents: Mapping[str, Mapping[str, Any]]
    ) -> IncidentComment:
        rng = self._rng
        analyst = self._analyst()
        text = rng.choice(cat.COMMENTS).format_map(evidence_hints(incidents[incident_id]))
        return IncidentComment(incident_id, text, analyst.display)

    def _merge(
        self, incidents: Mapping[str, Mapping[str, Any]], ids: Sequence[str]
    ) -> Merge | None:
        """Two open incidents, preferably sharing a user or device and the same owner (or none).

        Candidates come from the most recent incidents, where Defender's correlation works.
        """
        rng = self._rng
        window = [i for i in ids[-_MERGE_WINDOW:] if _status(incidents[i]) in _OPEN]
        keys = {i: entity_keys(incidents[i]) for i in window}
        for source in rng.sample(window, min(len(window), 8)):
            owner = incidents[source].get("assignedTo")
            sharing = [i for i in window if i != source and keys[source] & keys[i]]
            agreeing = [i for i in sharing if incidents[i].get("assignedTo") in (None, owner)]
            if agreeing or sharing:
                return Merge(source, rng.choice(agreeing or sharing))
        fallback = self._pick(incidents, ids, _OPEN)
        if fallback is None:
            return None
        others = [i for i in window if i != fallback] or [
            i for i in ids if i != fallback and _status(incidents[i]) in _OPEN
        ]
        return Merge(fallback, rng.choice(others)) if others else None

    def _move(
        self, incidents: Mapping[str, Mapping[str, Any]], ids: Sequence[str]
    ) -> AlertMove | None:
        """One alert of a recent open incident that has others, to another recent open
        incident, preferably one sharing a user or device with it."""
        rng = self._rng
        window = [i for i in ids[-_MERGE_WINDOW:] if _status(incidents[i]) in _OPEN]
        sources = [i for i in window if len(incidents[i].get("alerts") or ()) > 1]
        if not sources or len(window) < 2:
            return None
        source = rng.choice(sources)
        keys = entity_keys(incidents[source])
        others = [i for i in window if i != source]
        sharing = [i for i in others if keys & entity_keys(incidents[i])]
        alert = rng.choice(list(incidents[source].get("alerts") or ()))
        return AlertMove(str(alert["id"]), rng.choice(sharing or others))

    # -- helpers ---------------------------------------------------------------------------

    def _analyst(self) -> Person:
        return self._rng.choice(self._world.analysts)

    def _verdict(self) -> tuple[str, str]:
        """A classification with a determination that belongs to it."""
        rng = self._rng
        classification = rng.choices(_CLASSIFICATIONS, weights=_CLASSIFICATION_WEIGHTS)[0]
        return classification, rng.choice(cat.DETERMINATIONS[classification])
