"""Sentinel → Defender: an analyst's edit that the read-back itself refuses (a read-only
tenant, a field Graph cannot write, an incident merged away, an owner Defender cannot name)
never reaches the outbox. Sentinel is put back to Defender's value by the next delivery,
with no new Defender version, the audit trail says why, and nothing is written again after
that: no loop of refusals, writes or comments."""

from __future__ import annotations

from typing import Any

import pytest
from test_sentinel_twoway import ANN, World, world  # noqa: F401  (the fixture)

from xdrsync.destinations.sentinel.mapping import incident_name, shown_alike
from xdrsync.destinations.sentinel.readback import SentinelReadback, uncarried
from xdrsync.emulator.activity import Merge

GROUP = {
    "objectId": "5b6f1a3e-8c2d-4e7f-9a0b-1c2d3e4f5a6b",
    "assignedTo": "SOC Tier 2",
    "userPrincipalName": None,
    "email": None,
    "ownerType": "Group",
}


def _read_only(w: World) -> SentinelReadback:
    """A reader of the same destination whose first tenant is read-only
    (``two_way = false``): as `xdrsync run` builds it from such a config."""
    tenants = [
        t.model_copy(update={"two_way": False}) if i == 0 else t
        for i, t in enumerate(w.config.tenants)
    ]
    config = w.config.model_copy(update={"tenants": tenants})
    assert not config.writes_to(config.tenants[0])
    return SentinelReadback(w.destination, config, w.workspace.hub)


def _merged_away(w: World, tenant: str) -> str:
    source = w.open_incident(tenant)
    target = next(
        s.id
        for s in w.workspace.hub.list_incidents(limit=200)
        if s.tenant_id == tenant and s.id != source and s.status == "active"
    )
    w.defender.emulator.store(tenant).apply(Merge(source, target))
    w.cycle()
    return source


CASES: dict[str, dict[str, Any]] = {
    # Two-way is off for the tenant: nothing an analyst changes goes to Defender.
    "read-only tenant": {"status": "Active", "owner": ANN},
    # Graph's PATCH cannot set these (microsoft-apis.md §2.9).
    "not writable": {"severity": "Informational", "title": "Renamed in Sentinel"},
    # Defender merged the incident away: its fields are another incident's now.
    "merged": {"status": "Active"},
    # An owner with no address: Defender's assignedTo cannot name it.
    "owner without address": {"owner": GROUP},
}


def _refusals(w: World, tenant: str, incident: str) -> list[Any]:
    return [
        a
        for a in w.workspace.hub.audit_tail(500, tenant)
        if a.decision == "edit_refused" and a.entity_id == incident
    ]


@pytest.mark.parametrize("case", list(CASES))
def test_an_edit_the_read_back_refuses_is_put_right_in_sentinel_once(
    world: World,  # noqa: F811
    case: str,
) -> None:
    tenant = world.config.tenants[0].tenant_id
    reader = _read_only(world) if case == "read-only tenant" else world.readback
    incident = _merged_away(world, tenant) if case == "merged" else world.open_incident(tenant)
    name = incident_name(tenant, incident)
    changes = CASES[case]
    before = world.sentinel_incident(name)["properties"]
    assert all(not shown_alike(k, v, before.get(k)) for k, v in changes.items())
    version = world.defender_truth(tenant, incident)["lastUpdateDateTime"]

    world.analyst(name, **changes)
    assert reader.poll() == 0  # nothing for Defender
    world.cycle()

    shown = world.sentinel_incident(name)["properties"]
    for key in changes:  # Defender's value again, with no new Defender version
        assert shown_alike(key, shown.get(key), before.get(key)), key
    assert world.defender_truth(tenant, incident)["lastUpdateDateTime"] == version
    assert world.workspace.hub.edits(tenant_id=tenant, entity=("incident", incident)) == []
    refusals = _refusals(world, tenant, incident)
    assert refusals and all(r.detail["origin"] == "sentinel:sentinel" for r in refusals)
    restated = [
        a
        for a in world.workspace.hub.audit_tail(500, tenant)
        if a.decision == "membership" and a.entity_id == incident
    ]
    assert len(restated) == 1 and "Sentinel edit was refused" in restated[0].detail["note"]

    # Refused once: no write, no comment, no audit row, no change after that.
    puts = world.destination.puts
    comments = len(world.sentinel_incident(name)["comments"])
    seq = world.workspace.hub.changes_after(0)[-1].seq
    for _ in range(3):
        assert reader.poll() == 0
        world.cycle()
    assert world.destination.puts == puts
    assert len(world.sentinel_incident(name)["comments"]) == comments
    assert len(_refusals(world, tenant, incident)) == len(refusals)
    assert world.workspace.hub.changes_after(seq) == []


def test_a_refused_change_beside_an_edit_that_goes_is_put_right_alone(
    world: World,  # noqa: F811
) -> None:
    """The analyst sets the incident Active and lowers its severity: the status goes to
    Defender (and is kept on the twin meanwhile), the severity comes back as Defender's."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    severity = world.sentinel_incident(name)["properties"]["severity"]
    lower = "Low" if severity != "Low" else "Informational"
    world.analyst(name, status="Active", severity=lower)
    assert world.readback.poll() == 1  # the status
    world.workspace.fanout().publish()  # the restated incident, before the edit is pushed
    shown = world.sentinel_incident(name)["properties"]
    assert (shown["status"], shown["severity"]) == ("Active", severity)
    world.cycle()
    assert world.defender_truth(tenant, incident)["status"] == "inProgress"
    shown = world.sentinel_incident(name)["properties"]
    assert (shown["status"], shown["severity"]) == ("Active", severity)
    (refused,) = _refusals(world, tenant, incident)
    assert refused.detail["severity"] == lower


def test_a_refused_label_alone_stays_and_states_nothing(world: World) -> None:  # noqa: F811
    """An analyst's label stays on the twin whatever Defender says: refused (the tenant is
    read-only), it is audited, and there is nothing to put back, so nothing is written."""
    tenant = world.config.tenants[0].tenant_id
    reader = _read_only(world)
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    labels = world.sentinel_incident(name)["properties"]["labels"]
    world.analyst(name, labels=[*labels, {"labelName": "reviewed", "labelType": "User"}])
    seq = world.workspace.hub.changes_after(0)[-1].seq
    puts = world.destination.puts
    assert reader.poll() == 0
    world.cycle()
    assert world.workspace.hub.changes_after(seq) == []
    assert world.destination.puts == puts
    shown = {lb["labelName"] for lb in world.sentinel_incident(name)["properties"]["labels"]}
    assert "reviewed" in shown
    (refused,) = _refusals(world, tenant, incident)
    assert refused.detail["add_tags"] == ["reviewed"]


def test_what_cannot_go_to_defender_is_told_apart_from_our_own_write() -> None:
    copy = {
        "title": "Phish",
        "severity": "High",
        "owner": {"userPrincipalName": "bob@contoso.com", "ownerType": "User"},
        "lastActivityTimeUtc": "2026-11-01T10:00:00Z",
    }
    resolved = {  # Sentinel resolved the owner and wrote the time with 7 digits: no edit
        **copy,
        "owner": {"userPrincipalName": "bob@contoso.com", "assignedTo": "Bob", "objectId": "x"},
        "lastActivityTimeUtc": "2026-11-01T10:00:00.0000000Z",
    }
    assert uncarried(copy, resolved) == []
    ((reason, asked),) = uncarried(copy, {**copy, "severity": "Low"})
    assert asked == {"severity": "Low"} and "severity cannot be changed" in reason
    writing = {**copy, "severity": "Medium"}  # our own write that landed
    assert uncarried(copy, writing, pending=writing) == []
    ((reason, asked),) = uncarried(copy, {**copy, "owner": GROUP})
    assert asked == {"owner": "SOC Tier 2"} and "no address" in reason
