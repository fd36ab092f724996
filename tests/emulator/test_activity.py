"""Live activity proposes only changes Defender could make, in a realistic mix, reproducibly."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from xdrsync.emulator import catalog
from xdrsync.emulator.activity import (
    ActivityGenerator,
    AlertEdit,
    AlertMove,
    Change,
    IncidentComment,
    IncidentEdit,
    Merge,
    NewAlert,
    NewIncident,
)
from xdrsync.emulator.stories import entity_keys, generate_incidents

TENANT = "00000000-0000-0000-0000-0000000000aa"
START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
INCIDENT_WRITABLE = {"status", "assignedTo", "classification", "determination", "customTags"}
ALERT_WRITABLE = {"status", "assignedTo", "classification", "determination"}
INCIDENT_STATUS = {"active", "inProgress", "resolved"}
ALERT_STATUS = {"new", "inProgress", "resolved"}
CLASSIFICATIONS = set(catalog.DETERMINATIONS)


class DictStore:
    """Just enough of Defender to apply changes: ids, alert moves, resolve cascades."""

    def __init__(self, incidents: list[dict[str, Any]]) -> None:
        self.incidents = {i["id"]: i for i in copy.deepcopy(incidents)}
        self.next_id = max(int(i) for i in self.incidents) + 1

    def alert_owner(self, alert_id: str) -> dict[str, Any] | None:
        for incident in self.incidents.values():
            if any(a["id"] == alert_id for a in incident["alerts"]):
                return incident
        return None

    def apply(self, change: Change) -> None:
        if isinstance(change, NewIncident):
            incident = copy.deepcopy(change.incident)
            incident["id"] = str(self.next_id)
            self.next_id += 1
            for alert in incident["alerts"]:
                alert["incidentId"] = incident["id"]
            self.incidents[incident["id"]] = incident
        elif isinstance(change, NewAlert):
            alert = dict(change.alert, incidentId=change.incident_id)
            self.incidents[change.incident_id]["alerts"].append(alert)
        elif isinstance(change, IncidentEdit):
            incident = self.incidents[change.incident_id]
            incident.update(copy.deepcopy(change.changes))
            if change.changes.get("status") == "resolved":
                for alert in incident["alerts"]:
                    alert["status"] = "resolved"
        elif isinstance(change, AlertEdit):
            owner = self.alert_owner(change.alert_id)
            assert owner is not None
            next(a for a in owner["alerts"] if a["id"] == change.alert_id).update(change.changes)
        elif isinstance(change, IncidentComment):
            self.incidents[change.incident_id]["comments"].append(
                {"comment": change.comment, "createdByDisplayName": change.author}
            )
        elif isinstance(change, Merge):
            source, target = self.incidents[change.source_id], self.incidents[change.target_id]
            for alert in source["alerts"]:
                alert["incidentId"] = target["id"]
            target["alerts"] += source["alerts"]
            source.update(alerts=[], status="redirected", redirectIncidentId=target["id"])
        elif isinstance(change, AlertMove):
            owner = self.alert_owner(change.alert_id)
            assert owner is not None
            alert = next(a for a in owner["alerts"] if a["id"] == change.alert_id)
            owner["alerts"].remove(alert)
            alert["incidentId"] = change.target_id
            self.incidents[change.target_id]["alerts"].append(alert)


def _open(incident: dict[str, Any]) -> bool:
    return incident["status"] in ("active", "inProgress")


def _check_consistent(changes: dict[str, Any]) -> None:
    if "classification" in changes or "determination" in changes:
        classification = changes["classification"]
        assert classification in CLASSIFICATIONS
        assert changes["determination"] in catalog.DETERMINATIONS[classification]
    if changes.get("status") == "resolved" and "classification" not in changes:
        raise AssertionError(f"resolved without a classification: {changes}")
    if "assignedTo" in changes:
        assert changes["assignedTo"].endswith(".com") and "@" in changes["assignedTo"]


def check_valid(change: Change, store: DictStore) -> None:
    """Fail unless Defender could make this change to the store as it is now."""
    incidents = store.incidents
    if isinstance(change, NewIncident):
        incident = change.incident
        assert incident["status"] == "active" and incident["alerts"]
        assert {a["incidentId"] for a in incident["alerts"]} == {incident["id"]}
        known = {a["id"] for i in incidents.values() for a in i["alerts"]}
        assert not known & {a["id"] for a in incident["alerts"]}
    elif isinstance(change, NewAlert):
        assert _open(incidents[change.incident_id])
        assert store.alert_owner(change.alert["id"]) is None
        assert change.alert["status"] == "new" and change.alert["evidence"]
        # It correlates: it is about a user or device the incident already has.
        assert entity_keys({"alerts": [change.alert]}) & entity_keys(incidents[change.incident_id])
    elif isinstance(change, IncidentEdit):
        incident = incidents[change.incident_id]
        assert incident["status"] != "redirected"
        assert change.changes and set(change.changes) <= INCIDENT_WRITABLE
        assert change.changes.get("status", "active") in INCIDENT_STATUS
        if "customTags" in change.changes:
            tags = change.changes["customTags"]
            assert isinstance(tags, list) and len(tags) == len(set(tags))
        _check_consistent(change.changes)
    elif isinstance(change, AlertEdit):
        owner = store.alert_owner(change.alert_id)
        assert owner is not None and owner["status"] != "redirected"
        assert change.changes and set(change.changes) <= ALERT_WRITABLE
        assert change.changes.get("status", "new") in ALERT_STATUS
        _check_consistent(change.changes)
    elif isinstance(change, IncidentComment):
        assert incidents[change.incident_id]["status"] != "redirected"
        assert change.comment.strip() and " " in change.author
        assert "{" not in change.comment
    elif isinstance(change, Merge):
        source, target = incidents[change.source_id], incidents[change.target_id]
        assert change.source_id != change.target_id
        assert _open(source) and _open(target)
    elif isinstance(change, AlertMove):
        # An alert of an open incident that keeps others, to another open incident.
        owner, target = store.alert_owner(change.alert_id), incidents[change.target_id]
        assert owner is not None and owner["id"] != change.target_id
        assert _open(owner) and _open(target) and len(owner["alerts"]) >= 2


def _run(steps: int, seed: int = 3, moves: float = 0.0) -> tuple[list[Change], DictStore]:
    store = DictStore(generate_incidents(seed=seed, count=40, tenant_id=TENANT, now=START))
    generator = ActivityGenerator(seed=seed, tenant_id=TENANT)
    changes = []
    for step in range(steps):
        now = START + timedelta(seconds=20 * step)
        change = generator.next_change(store.incidents, now, move_rate=moves)
        check_valid(change, store)
        store.apply(change)
        changes.append(change)
    return changes, store


def test_a_thousand_steps_are_all_valid_and_well_mixed() -> None:
    changes, store = _run(1000)
    history = generate_incidents(seed=3, count=40, tenant_id=TENANT, now=START)
    merged_before = sum(i["status"] == "redirected" for i in history)
    kinds = Counter(type(c).__name__ for c in changes)
    expected = {
        "NewIncident": 0.25,
        "NewAlert": 0.20,
        "IncidentEdit": 0.30,
        "IncidentComment": 0.15,
        "AlertEdit": 0.05,
        "Merge": 0.05,
    }
    for kind, share in expected.items():
        assert abs(kinds[kind] / len(changes) - share) < 0.06, kinds
    merges = [c for c in changes if isinstance(c, Merge)]
    assert merges and len(store.incidents) > 40
    redirected = [i for i in store.incidents.values() if i["status"] == "redirected"]
    assert len(redirected) == len(merges) + merged_before
    for incident in store.incidents.values():
        assert all(a["incidentId"] == incident["id"] for a in incident["alerts"])
    edits = [c.changes for c in changes if isinstance(c, IncidentEdit)]
    assert any(e.get("status") == "resolved" for e in edits)
    assert any("customTags" in e for e in edits) and any("assignedTo" in e for e in edits)


def test_merges_prefer_incidents_sharing_a_user_or_device() -> None:
    store = DictStore(generate_incidents(seed=8, count=150, tenant_id=TENANT, now=START))
    generator = ActivityGenerator(seed=8, tenant_id=TENANT)
    merges = []
    for step in range(600):
        change = generator.next_change(store.incidents, START + timedelta(seconds=step))
        if isinstance(change, Merge):
            merges.append(change)
    shared = [
        m
        for m in merges
        if entity_keys(store.incidents[m.source_id]) & entity_keys(store.incidents[m.target_id])
    ]
    assert merges and len(shared) >= 0.9 * len(merges)


def test_same_seed_same_changes_other_seed_other_changes() -> None:
    first, _ = _run(150)
    again, _ = _run(150)
    assert first == again
    other_store = DictStore(generate_incidents(seed=3, count=40, tenant_id=TENANT, now=START))
    other = ActivityGenerator(seed=4, tenant_id=TENANT)
    others = []
    for step in range(150):
        change = other.next_change(other_store.incidents, START + timedelta(seconds=20 * step))
        other_store.apply(change)
        others.append(change)
    assert first != others


def test_no_merge_without_two_open_incidents_and_never_touch_redirected() -> None:
    incidents = generate_incidents(seed=2, count=12, tenant_id=TENANT, now=START)
    for index, incident in enumerate(incidents):
        if index == 0:
            incident.update(status="active")
        elif index % 2:
            incident.update(status="redirected", redirectIncidentId="1", alerts=[])
        else:
            incident.update(status="resolved", classification="truePositive")
    store = DictStore(incidents)
    generator = ActivityGenerator(seed=2, tenant_id=TENANT)
    for step in range(400):
        change = generator.next_change(store.incidents, START + timedelta(seconds=step))
        assert not isinstance(change, Merge)
        check_valid(change, store)
    empty = ActivityGenerator(seed=2, tenant_id=TENANT)
    assert isinstance(empty.next_change({}, START), NewIncident)


def test_new_incidents_are_fresh_and_complete() -> None:
    generator = ActivityGenerator(seed=9, tenant_id=TENANT)
    now = START + timedelta(days=3)
    fresh = [generator.next_change({}, now) for _ in range(30)]
    assert all(isinstance(c, NewIncident) for c in fresh)
    for change in fresh:
        assert isinstance(change, NewIncident)
        incident = change.incident
        assert incident["tenantId"] == TENANT and incident["assignedTo"] is None
        assert incident["createdDateTime"] <= incident["lastUpdateDateTime"]
        assert max(a["createdDateTime"] for a in incident["alerts"]) <= now.strftime(
            "%Y-%m-%dT%H:%M:%S.%f0Z"
        )


def test_alert_moves_come_only_when_asked_for_and_are_all_valid() -> None:
    plain, _ = _run(400)
    assert not any(isinstance(c, AlertMove) for c in plain)
    changes, store = _run(400, moves=0.2)
    moves = [c for c in changes if isinstance(c, AlertMove)]
    assert 0.1 * len(changes) <= len(moves) <= 0.3 * len(changes)
    assert len({c.alert_id for c in moves}) > len(moves) / 2
    for incident in store.incidents.values():
        assert all(a["incidentId"] == incident["id"] for a in incident["alerts"])
