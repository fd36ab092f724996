"""Sentinel → Defender: an analyst's edit in Sentinel reaches the right Defender tenant once,
through the outbox; our own writes read back are not taken for edits; a Defender change not
yet in Sentinel is never reverted by it."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_sentinel_dest_destination import (
    CONFIG,
    TENANT,
    ScriptedArm,
    _commit,
    _destination,
    _incident,
)

from xdrsync.config import Config, SyncConfig
from xdrsync.destinations.sentinel import readback
from xdrsync.destinations.sentinel.comments import ANALYST_RESERVE
from xdrsync.destinations.sentinel.destination import SentinelDestination
from xdrsync.destinations.sentinel.mapping import incident_name
from xdrsync.destinations.sentinel.readback import SentinelReadback, defender_seen, edit_request
from xdrsync.destinations.sentinel.text import MAX_COMMENTS
from xdrsync.emulator.activity import Merge
from xdrsync.emulator.sentinel import SentinelEmulatorServer
from xdrsync.emulator.sentinel import settings_for as sentinel_settings
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.errors import RetriableError
from xdrsync.hub import Hub
from xdrsync.hub.records import NewEdit, Settlement
from xdrsync.sync.engine import sync_tenant
from xdrsync.twoway.fields import TAGS
from xdrsync.twoway.pusher import Pusher
from xdrsync.workspace import Workspace, inbound_settings


@dataclass
class World:
    defender: EmulatorServer
    sentinel: SentinelEmulatorServer
    config: Config
    workspace: Workspace
    pusher: Pusher
    readback: SentinelReadback

    @property
    def destination(self) -> SentinelDestination:
        found = self.workspace.fanout().runner("sentinel").destination
        assert isinstance(found, SentinelDestination)
        return found

    def cycle(self) -> None:
        """Push, read Defender, fan out: as the service does, in one thread."""
        self.pusher.push_due()
        for source in self.workspace.sources():
            assert sync_tenant(self.workspace.hub, source, inbound_settings(self.config)).ok
        self.workspace.fanout().publish()

    def defender_truth(self, tenant_id: str, incident_id: str) -> dict[str, Any]:
        reply = httpx.get(
            f"{self.defender.base_url}/_emulator/truth", params={"tenant": tenant_id}, timeout=30
        )
        return next(i for i in reply.json()["value"] if i["id"] == incident_id)

    def sentinel_incident(self, name: str) -> dict[str, Any]:
        truth = httpx.get(f"{self.sentinel.base_url}/_emulator/truth", timeout=30).json()
        found: dict[str, Any] = next(i for i in truth["incidents"] if i["name"] == name)
        return found

    def analyst(self, name: str, **properties: Any) -> None:
        """An analyst's save in the Sentinel portal."""
        reply = httpx.post(
            f"{self.sentinel.base_url}/_emulator/incidents/{name}", json=properties, timeout=30
        )
        reply.raise_for_status()

    def open_incident(self, tenant_id: str) -> str:
        for summary in self.workspace.hub.list_incidents(limit=200):
            if (
                summary.tenant_id == tenant_id
                and summary.status == "active"
                and not summary.merged_into
            ):
                return summary.id
        raise AssertionError("no open incident")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    defender = EmulatorServer(settings_for(seed=5, incidents=8, tenants=2)).start()
    sentinel = SentinelEmulatorServer(sentinel_settings()).start()
    base = Config.for_emulator(
        defender.base_url,
        defender.emulator.settings.tenants,
        workspace_path=tmp_path / "ws",
        sync=SyncConfig(poll_interval_seconds=0.5, lookback_seconds=60, max_attempts=4),
        rate_limit_per_minute=6000,
    )
    entry = tomllib.loads(httpx.get(f"{sentinel.base_url}/_emulator/config").text)
    block = entry["destinations"][0] | {"two_way": True, "reads_per_minute": 100_000}
    block["writes_per_minute"] = 100_000
    data = base.model_dump(mode="python") | {"destinations": [block]}
    for tenant, spec in zip(data["tenants"], defender.emulator.settings.tenants, strict=True):
        tenant["client_secret"] = spec.client_secret  # dumped as a masked SecretStr
    config = Config.model_validate(data)
    workspace = Workspace.open(config)
    fanout = workspace.fanout()
    destination = fanout.runner("sentinel").destination
    assert isinstance(destination, SentinelDestination)
    made = World(
        defender,
        sentinel,
        config,
        workspace,
        workspace.pusher(),
        SentinelReadback(destination, config, workspace.hub),
    )
    made.cycle()
    try:
        yield made
    finally:
        workspace.close()
        sentinel.stop()
        defender.stop()


def test_an_analyst_edit_in_sentinel_reaches_defender_once_and_is_not_echoed(world: World) -> None:
    tenant = world.config.tenants[1].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    labels = world.sentinel_incident(name)["properties"]["labels"]
    world.analyst(
        name,
        status="Active",
        owner={"userPrincipalName": "ann@contoso.com", "assignedTo": "Ann", "ownerType": "User"},
        labels=[*labels, {"labelName": "vip", "labelType": "User"}],
    )
    assert world.readback.poll() == 3  # status, owner, tag
    world.cycle()  # pushed to Defender, read back from Defender, fanned out
    truth = world.defender_truth(tenant, incident)
    assert truth["status"] == "inProgress"
    assert truth["assignedTo"] == "ann@contoso.com"
    assert "vip" in truth["customTags"]
    edits = world.workspace.hub.edits(tenant_id=tenant, entity=("incident", incident))
    assert {e.origin for e in edits} == {"sentinel:sentinel"}
    assert {e.state for e in edits} == {"confirmed"}
    # Defender's echo makes no PUT (Sentinel shows it already), and reading Sentinel again
    # queues nothing: neither the analyst's edit nor our own writes are taken twice.
    puts = world.destination.puts
    world.cycle()
    assert world.destination.puts == puts
    assert world.readback.poll() == 0
    assert world.workspace.hub.edits(tenant_id=tenant, entity=("incident", incident)) == edits
    shown = world.sentinel_incident(name)["properties"]
    assert shown["status"] == "Active" and "vip" in {lb["labelName"] for lb in shown["labels"]}


def test_the_edit_reaches_the_tenant_of_the_incident_only(world: World) -> None:
    first, second = (t.tenant_id for t in world.config.tenants)
    incident = world.open_incident(second)
    before = world.defender_truth(first, incident) if _has(world, first, incident) else None
    world.analyst(incident_name(second, incident), status="Active")
    world.readback.poll()
    world.cycle()
    assert world.defender_truth(second, incident)["status"] == "inProgress"
    if before is not None:  # the same id in the other tenant is another incident: untouched
        assert world.defender_truth(first, incident)["status"] == before["status"]
    assert all(e.tenant_id == second for e in world.workspace.hub.edits())


def test_closing_in_sentinel_as_undetermined_resolves_in_defender(world: World) -> None:
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    world.analyst(
        incident_name(tenant, incident),
        status="Closed",
        classification="Undetermined",
        classificationComment="Nothing to see",
    )
    world.readback.poll()
    world.cycle()
    truth = world.defender_truth(tenant, incident)
    assert truth["status"] == "resolved"
    assert any(c.get("comment") == "Nothing to see" for c in truth["comments"])


def test_an_analysts_closing_reason_and_note_survive_defenders_echo(world: World) -> None:
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    world.analyst(
        name,
        status="Closed",
        classification="FalsePositive",
        classificationReason="IncorrectAlertLogic",
        classificationComment="Rule fires on our backup job; tuning ticket SOC-123",
    )
    world.readback.poll()
    world.cycle()  # to Defender, back from Defender, fanned out again
    truth = world.defender_truth(tenant, incident)
    assert (truth["status"], truth["classification"]) == ("resolved", "falsePositive")
    shown = world.sentinel_incident(name)["properties"]
    assert shown["classificationReason"] == "IncorrectAlertLogic"
    assert shown["classificationComment"] == "Rule fires on our backup job; tuning ticket SOC-123"
    puts = world.destination.puts
    world.cycle()
    assert world.destination.puts == puts
    assert world.readback.poll() == 0


def test_a_defender_change_not_yet_in_sentinel_is_not_reverted(world: World) -> None:
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    reply = httpx.post(
        f"{world.defender.base_url}/_emulator/incidents/{incident}",
        params={"tenant": tenant},
        json={"status": "inProgress"},
        timeout=30,
    )
    reply.raise_for_status()
    for source in world.workspace.sources():  # read into the hub, not yet sent to Sentinel
        sync_tenant(world.workspace.hub, source, inbound_settings(world.config))
    labels = world.sentinel_incident(name)["properties"]["labels"]
    world.analyst(name, labels=[*labels, {"labelName": "phish", "labelType": "User"}])
    assert world.readback.poll() == 1  # the tag only: Sentinel's stale "New" is no edit
    world.cycle()
    truth = world.defender_truth(tenant, incident)
    assert truth["status"] == "inProgress" and "phish" in truth["customTags"]
    assert world.sentinel_incident(name)["properties"]["status"] == "Active"


def test_a_page_listed_before_our_write_is_not_taken_for_edits(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``xdrsync run`` reads Sentinel back in one thread and delivers in another. A page
    listed just before a delivery's write must not be judged against the copy that write
    saved: the difference is our own write, not an analyst's, and taking it for one would
    revert Defender's tag and take away the analyst's label, in Defender and then Sentinel."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    reply = httpx.post(  # Defender tags the incident; the hub reads it, Sentinel not yet
        f"{world.defender.base_url}/_emulator/incidents/{incident}",
        params={"tenant": tenant},
        json={"customTags": ["Escalated"]},
        timeout=30,
    )
    reply.raise_for_status()
    for source in world.workspace.sources():
        sync_tenant(world.workspace.hub, source, inbound_settings(world.config))
    listed = world.destination.arm.list_page
    deliveries: list[threading.Thread] = []

    def list_then_write(*args: Any, **kwargs: Any) -> Any:
        page = listed(*args, **kwargs)  # Sentinel as it is now; then, before it is read:
        if not deliveries:
            labels = world.sentinel_incident(name)["properties"]["labels"]
            world.analyst(name, labels=[*labels, {"labelName": "phish", "labelType": "User"}])
            delivery = threading.Thread(target=world.workspace.fanout().publish)
            deliveries.append(delivery)
            delivery.start()  # the delivery thread writes Defender's tag over the analyst's
            delivery.join(timeout=2)  # edit (409, read, merge, PUT) if nothing holds it back
        return page

    monkeypatch.setattr(world.destination.arm, "list_page", list_then_write)
    world.readback.poll()
    deliveries[0].join(timeout=60)
    assert not deliveries[0].is_alive()
    world.cycle()
    world.readback.poll()
    world.cycle()
    edits = world.workspace.hub.edits(tenant_id=tenant, entity=("incident", incident))
    assert [e.wanted for e in edits if e.field == TAGS and e.wanted["remove"]] == []
    assert {"Escalated", "phish"} <= set(world.defender_truth(tenant, incident)["customTags"])
    shown = world.sentinel_incident(name)["properties"]["labels"]
    assert {"Escalated", "phish"} <= {label["labelName"] for label in shown}


def test_a_listing_that_lags_behind_our_write_is_not_taken_for_edits(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sentinel's list may answer with an incident as it was before a write it has already
    answered (whether it can is not documented). That older state shows our own write undone;
    taking it for an analyst's edit would take Defender's tag away in Defender."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    listed = world.destination.arm.list_page
    pages: list[Any] = []

    def remember_first(*args: Any, **kwargs: Any) -> Any:
        page = listed(*args, **kwargs)
        if not pages:
            pages.append(page)
        return pages[0]  # every later listing lags: it shows Sentinel as first listed

    monkeypatch.setattr(world.destination.arm, "list_page", remember_first)
    assert world.readback.poll() == 0
    reply = httpx.post(  # Defender tags the incident; the next cycle writes the tag
        f"{world.defender.base_url}/_emulator/incidents/{incident}",
        params={"tenant": tenant},
        json={"customTags": ["Escalated"]},
        timeout=30,
    )
    reply.raise_for_status()
    world.cycle()
    assert "Escalated" in {
        lb["labelName"] for lb in world.sentinel_incident(name)["properties"]["labels"]
    }
    assert world.readback.poll() == 0  # the lagging page shows the label missing: no edit
    assert world.readback.stale >= 1
    monkeypatch.setattr(world.destination.arm, "list_page", listed)
    assert world.readback.poll() == 0  # Sentinel as it is: our own write, read back
    world.cycle()
    edits = world.workspace.hub.edits(tenant_id=tenant, entity=("incident", incident))
    assert edits == []
    assert "Escalated" in world.defender_truth(tenant, incident)["customTags"]


def test_only_what_changed_since_our_copy_is_an_edit() -> None:
    ours = {
        "status": "New",
        "classification": "Undetermined",
        "owner": None,
        "labels": [
            {"labelName": "contoso"},
            {"labelName": "Microsoft Defender Advanced Threat Protection"},
            {"labelName": "defender-incident:7"},
            {"labelName": "vip"},
        ],
    }
    assert edit_request(ours, ours, "contoso") is None
    theirs = {
        **ours,
        "status": "Closed",
        "classification": "BenignPositive",
        "owner": {"assignedTo": "Ann Analyst"},  # a name Defender cannot take: left alone
        "labels": [{"labelName": "contoso"}, {"labelName": "Escalated"}],
    }
    request = edit_request(ours, theirs, "contoso")
    assert request is not None
    assert request.status == "Closed"
    assert request.classification == "informationalExpectedActivity"
    assert request.owner is None
    assert request.add_tags == ("Escalated",)
    assert request.remove_tags == ("vip",)  # derived labels removed are not tag removals


def _has(world: World, tenant: str, incident: str) -> bool:
    reply = httpx.get(
        f"{world.defender.base_url}/_emulator/truth", params={"tenant": tenant}, timeout=30
    )
    return any(i["id"] == incident for i in reply.json()["value"])


def test_the_way_back_inverts_the_connectors_classification_table() -> None:
    from xdrsync.destinations.sentinel.readback import DEFENDER_CLASSIFICATION
    from xdrsync.tables.vocab import CLASSIFICATION

    for defender, (sentinel, _reason) in CLASSIFICATION.items():
        assert DEFENDER_CLASSIFICATION[sentinel.casefold()].casefold() == defender


def test_an_analyst_edit_met_by_a_write_before_any_poll_still_reaches_defender(
    world: World,
) -> None:
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    world.analyst(name, status="Active")  # saved in Sentinel ...
    reply = httpx.post(  # ... while Defender changes the same incident
        f"{world.defender.base_url}/_emulator/incidents/{incident}",
        params={"tenant": tenant},
        json={"assignedTo": "bob@contoso.com"},
        timeout=30,
    )
    reply.raise_for_status()
    conflicts = world.destination.conflicts
    world.cycle()  # our write meets the analyst's version (409): it is read, and handed over
    assert world.destination.conflicts == conflicts + 1
    world.cycle()  # the analyst's status goes to Defender, and back out to Sentinel
    truth = world.defender_truth(tenant, incident)
    assert (truth["status"], truth["assignedTo"]) == ("inProgress", "bob@contoso.com")
    shown = world.sentinel_incident(name)["properties"]
    assert shown["status"] == "Active"
    assert shown["owner"]["userPrincipalName"] == "bob@contoso.com"


def test_an_analysts_sentinel_comment_reaches_defender_once_and_is_not_mirrored_back(
    world: World,
) -> None:
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    reply = httpx.post(
        f"{world.sentinel.base_url}/_emulator/incidents/{name}/comments",
        json={"message": "Checked the sign-in logs: a VPN exit node", "author": "Ann"},
        timeout=30,
    )
    reply.raise_for_status()
    # A comment alone does not move the incident's lastModifiedTimeUtc here; the label does.
    labels = world.sentinel_incident(name)["properties"]["labels"]
    world.analyst(name, labels=[*labels, {"labelName": "reviewed", "labelType": "User"}])
    assert world.readback.poll() == 2  # the tag and the comment
    world.cycle()
    world.cycle()
    texts = [c.get("comment") or "" for c in world.defender_truth(tenant, incident)["comments"]]
    assert sum("a VPN exit node" in t for t in texts) == 1
    shown = [c["properties"]["message"] for c in world.sentinel_incident(name)["comments"]]
    assert sum("a VPN exit node" in m for m in shown) == 1  # the analyst's, not echoed
    assert world.readback.poll() == 0


def test_a_write_cut_short_by_a_crash_is_neither_taken_for_an_edit_nor_hides_one() -> None:
    confirmed = {"status": "New", "labels": [{"labelName": "contoso"}, {"labelName": "old-tag"}]}
    writing = {"status": "Active", "labels": [{"labelName": "contoso"}]}  # tag retired
    # The PUT landed, and an analyst added a label since: only the label is theirs.
    landed = {"status": "Active", "labels": [{"labelName": "contoso"}, {"labelName": "vip"}]}
    request = edit_request(confirmed, landed, "contoso", writing)
    assert request is not None
    assert (request.status, request.add_tags, request.remove_tags) == (None, ("vip",), ())
    # The PUT never landed: Sentinel still shows what was confirmed; nothing is an edit.
    assert edit_request(confirmed, confirmed, "contoso", writing) is None
    # An analyst's own change of a field we were not changing is still seen.
    closed = {**confirmed, "status": "Closed"}
    request = edit_request(confirmed, closed, "contoso", {**writing, "status": "New"})
    assert request is not None and request.status == "Closed"


def _portal(world: World, tenant: str, incident: str, **changes: Any) -> None:
    """An analyst's save in the Defender portal, read into the hub (not yet in Sentinel)."""
    reply = httpx.post(
        f"{world.defender.base_url}/_emulator/incidents/{incident}",
        params={"tenant": tenant},
        json=changes,
        timeout=30,
    )
    reply.raise_for_status()
    for source in world.workspace.sources():
        assert sync_tenant(world.workspace.hub, source, inbound_settings(world.config)).ok


def _comment(world: World, name: str, message: str) -> None:
    """An analyst's comment in the Sentinel portal (the incident itself is not saved)."""
    reply = httpx.post(
        f"{world.sentinel.base_url}/_emulator/incidents/{name}/comments",
        json={"message": message, "author": "Ann"},
        timeout=30,
    )
    reply.raise_for_status()


def test_a_comment_added_alone_in_sentinel_reaches_defender(world: World) -> None:
    """A comment does not change the incident's etag: the incident, listed again after
    xdrsync's own write, looks like that write read back, yet holds the analyst's comment."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    _comment(world, name, "Checked the proxy logs: benign")
    _portal(world, tenant, incident, customTags=["Escalated"])
    puts = world.destination.puts
    world.cycle()  # Defender's change written over the twin, with the etag xdrsync knew
    assert world.destination.puts == puts + 1
    assert world.readback.poll() == 1
    world.cycle()
    texts = [c.get("comment") or "" for c in world.defender_truth(tenant, incident)["comments"]]
    assert texts.count("Checked the proxy logs: benign") == 1
    shown = [c["properties"]["message"] for c in world.sentinel_incident(name)["comments"]]
    assert shown.count("Checked the proxy logs: benign") == 1
    assert world.readback.poll() == 0


def test_a_comment_alone_on_a_quiet_incident_is_found_by_the_sweep(world: World) -> None:
    """A comment moves neither the incident's etag nor its stamp: on an incident nobody
    changes again, no poll from the watermark lists it. The sweep of the open incidents finds
    it by its count (through the emulator's ARM listing), and it reaches Defender once."""
    tenant = world.config.tenants[0].tenant_id
    quiet = world.open_incident(tenant)
    ahead = [timedelta(0)]
    reader = SentinelReadback(
        world.destination,
        world.config,
        world.workspace.hub,
        lookback=timedelta(0),
        clock=lambda: datetime.now(UTC) + ahead[0],
    )
    assert reader.poll() == 0  # the first poll: from now on, and the sweeps' clock starts
    # Polls until one lists nothing: every write of xdrsync's is behind the watermark (which
    # follows Sentinel's Date, one-second and, on a loaded machine, late).
    for _ in range(80):
        echoes = reader.echoes
        assert reader.poll() == 0
        if reader.echoes == echoes:
            break
        time.sleep(0.25)
    else:
        raise AssertionError("the polls never got past xdrsync's own writes")
    _comment(world, incident_name(tenant, quiet), "Called the user: it was them")
    assert reader.poll() == 0  # the watermark's read does not list the quiet incident
    ahead[0] = readback.SWEEP + timedelta(seconds=1)
    assert reader.poll() == 1
    assert reader.poll() == 0  # swept: the next is a SWEEP away, and the comment is known
    world.cycle()
    texts = [c.get("comment") or "" for c in world.defender_truth(tenant, quiet)["comments"]]
    assert texts.count("Called the user: it was them") == 1


@pytest.mark.parametrize("later", ["defender", "sentinel"])
def test_of_an_analysts_sentinel_edit_and_a_defender_change_the_later_wins(
    world: World, later: str
) -> None:
    """Both sides assign the incident before the Sentinel edit is read: that is a conflict,
    which ``latest_wins`` gives to the later change, by when each was made, not by when
    xdrsync happened to read the Sentinel edit."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    ann = {"userPrincipalName": "ann@contoso.com", "assignedTo": "Ann", "ownerType": "User"}
    if later == "defender":
        world.analyst(name, owner=ann)
        time.sleep(0.05)
        _portal(world, tenant, incident, assignedTo="bob@contoso.com")
    else:
        _portal(world, tenant, incident, assignedTo="bob@contoso.com")
        time.sleep(0.05)
        world.analyst(name, owner=ann)
    assert world.readback.poll() == 1
    world.cycle()
    world.cycle()
    (edit,) = world.workspace.hub.edits(tenant_id=tenant, entity=("incident", incident))
    winner = "bob@contoso.com" if later == "defender" else "ann@contoso.com"
    assert edit.state == ("overridden" if later == "defender" else "confirmed")
    assert world.defender_truth(tenant, incident)["assignedTo"] == winner
    assert world.sentinel_incident(name)["properties"]["owner"]["userPrincipalName"] == winner


@pytest.mark.parametrize(
    ("shown", "current", "seen"),
    [
        # The twin shows what Defender holds: nothing to say (Defender's own value stands,
        # with what Sentinel cannot show: awaitingAction, a determination, a name's case).
        ({"status": "Active"}, {"status": "awaitingAction"}, {}),
        (
            {"classification": "TruePositive"},
            {"classification": "truePositive", "determination": "malware"},
            {},
        ),
        (
            {"owner": {"userPrincipalName": "Ann@Contoso.com"}},
            {"assignedTo": "ann@contoso.com"},
            {},
        ),
        ({"status": "New", "owner": None}, {"status": "active", "assignedTo": None}, {}),
        # The twin shows an older Defender value: the value behind it.
        ({"status": "New"}, {"status": "inProgress"}, {"status": "active"}),
        ({"status": "Closed"}, {"status": "active"}, {"status": "resolved"}),
        (
            {"classification": "Undetermined"},
            {"classification": "truePositive", "determination": "malware"},
            {"classification": "unknown", "determination": "unknown"},
        ),
        (
            {"classification": "FalsePositive"},
            {"classification": "truePositive", "determination": "malware"},
            {"classification": "falsePositive", "determination": "other"},
        ),
        ({"owner": None}, {"assignedTo": "bob@contoso.com"}, {"assignedTo": None}),
        (
            {"owner": {"userPrincipalName": "ann@contoso.com", "assignedTo": "Ann"}},
            {"assignedTo": "bob@contoso.com"},
            {"assignedTo": "ann@contoso.com"},
        ),
        ({"owner": {"assignedTo": "Tier 2"}}, {"assignedTo": None}, {"assignedTo": "Tier 2"}),
    ],
)
def test_what_the_twin_showed_is_taken_for_the_defender_value_behind_it(
    shown: dict[str, Any], current: dict[str, Any], seen: dict[str, Any]
) -> None:
    base = {"status": "New", "classification": None, "owner": None}
    now = {"status": "active", "classification": "unknown", "assignedTo": None}
    assert defender_seen({**base, **shown}, {**now, **current}) == seen


@pytest.mark.parametrize("failing", ["list_comments", "save_remote_copy"])
def test_a_closing_note_and_a_comment_reach_defender_once_after_a_read_back_fails(
    world: World, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Reading an incident's comments back fails once (a 503), or the hub's write does (the
    process dies): the next poll reads the incident again, and queues its edits once."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    _comment(world, name, "see ticket SOC-123")
    world.analyst(
        name,
        status="Closed",
        classification="FalsePositive",
        classificationReason="IncorrectAlertLogic",
        classificationComment="Backup job; tuning ticket SOC-123",
    )
    owner = world.destination.arm if failing == "list_comments" else world.workspace.hub
    real = getattr(owner, failing)
    calls: list[object] = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise RetriableError("503 Service Unavailable (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, failing, fails_once)
    with pytest.raises(RetriableError):
        world.readback.poll()
    world.readback.poll()
    world.cycle()
    assert world.readback.poll() == 0
    world.cycle()
    truth = world.defender_truth(tenant, incident)
    assert (truth["status"], truth["classification"]) == ("resolved", "falsePositive")
    texts = [c.get("comment") or "" for c in truth["comments"]]
    assert texts.count("Backup job; tuning ticket SOC-123") == 1
    assert texts.count("see ticket SOC-123") == 1


def test_sentinel_comments_on_a_merged_incident_reach_the_survivor(world: World) -> None:
    """Defender merged the incident away: its twin stays in Sentinel, closed. A comment
    there goes to the incident it was merged into (where the merged incident's comments are
    reachable); an edit of its fields cannot go anywhere, and the audit trail says so."""
    tenant = world.config.tenants[0].tenant_id
    source = world.open_incident(tenant)
    target = next(
        s.id
        for s in world.workspace.hub.list_incidents(limit=200)
        if s.tenant_id == tenant and s.id != source and s.status == "active"
    )
    world.defender.emulator.store(tenant).apply(Merge(source, target))
    world.cycle()
    name = incident_name(tenant, source)
    shown = world.sentinel_incident(name)["properties"]
    assert shown["status"] == "Closed"
    _comment(world, name, "This was the CFO's laptop")
    world.analyst(name, labels=[*shown["labels"], {"labelName": "reviewed", "labelType": "User"}])
    assert world.readback.poll() == 1  # the comment; the label has nowhere to go
    world.cycle()
    (edit,) = world.workspace.hub.edits(tenant_id=tenant)
    assert (edit.entity_id, edit.state) == (target, "confirmed")
    texts = [c.get("comment") or "" for c in world.defender_truth(tenant, target)["comments"]]
    assert texts.count("This was the CFO's laptop") == 1
    (refused,) = [
        a for a in world.workspace.hub.audit_tail(50, tenant) if a.decision == "edit_refused"
    ]
    assert refused.entity_id == source
    assert refused.detail["add_tags"] == ["reviewed"]
    assert f"merged into {target}" in refused.detail["reason"]
    assert world.readback.poll() == 0


def test_a_sentinel_comment_met_by_a_write_before_any_poll_reaches_defender_once(
    world: World,
) -> None:
    """The write that meets the analyst's version (409) reads it and forwards the comment;
    the copy it then saves still knows that comment, so no later read forwards it again."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    _comment(world, name, "Met by a write")
    world.analyst(name, status="Active")
    _portal(world, tenant, incident, assignedTo="bob@contoso.com")
    conflicts = world.destination.conflicts
    world.cycle()
    assert world.destination.conflicts == conflicts + 1
    for _ in range(2):
        world.readback.poll()
        world.cycle()
    texts = [c.get("comment") or "" for c in world.defender_truth(tenant, incident)["comments"]]
    assert texts.count("Met by a write") == 1


def test_a_comment_added_after_one_was_deleted_in_sentinel_reaches_defender(world: World) -> None:
    """Between two read-backs an analyst deletes a comment xdrsync knows of, writes another
    and sets the incident Active: the incident holds as many comments as before, yet the new
    one reaches Defender, once, and the earlier one is not posted again."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    _comment(world, name, "First look: a VPN exit node")
    world.analyst(name, status="Active")
    world.readback.poll()
    world.cycle()
    store = world.sentinel.emulator.store
    (first,) = [c.name for c in store.comments(name) if "VPN" in c.properties["message"]]
    count = world.sentinel_incident(name)["properties"]["additionalData"]["commentsCount"]
    store.delete_comment(name, first)  # as the analyst's DELETE in the portal
    _comment(world, name, "Correction: the sign-in came from our proxy")
    world.analyst(name, status="Active", severity="Low")
    assert world.sentinel_incident(name)["properties"]["additionalData"]["commentsCount"] == count
    world.readback.poll()
    world.cycle()
    texts = [c.get("comment") or "" for c in world.defender_truth(tenant, incident)["comments"]]
    assert texts.count("Correction: the sign-in came from our proxy") == 1
    assert texts.count("First look: a VPN exit node") == 1
    assert world.readback.poll() == 0


@pytest.mark.parametrize("links", [True, False], ids=["linked", "links-dropped"])
def test_edits_beyond_one_page_are_all_read_though_no_link_says_there_are_more(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    """A full page does not end a poll, link or not: once the poll is read to its end the
    watermark moves to Sentinel's clock, so an edit left on a page never asked for (its link
    dropped by a proxy) would never be read."""
    monkeypatch.setattr(readback, "PAGE_SIZE", 2)
    arm = ScriptedArm()
    arm.links = links
    for number in ("1", "2", "3"):
        _commit(hub, _incident(number))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    reader = SentinelReadback(destination, CONFIG, hub, clock=lambda: arm.now)
    reader.poll()  # at 12:00:30: our own writes read back
    for minute, number in enumerate(("1", "2", "3"), start=1):  # analysts close all three
        name = incident_name(TENANT, number)
        _etag, props = arm.incidents[name]
        closed = {
            **props,
            "status": "Closed",
            "classification": "FalsePositive",
            "classificationReason": "IncorrectAlertLogic",
            "lastModifiedTimeUtc": f"2026-11-01T12:0{minute}:00Z",
        }
        arm.incidents[name] = (f'"analyst-{number}"', closed)
    arm.now = datetime(2026, 11, 1, 12, 10, tzinfo=UTC)
    reader.poll()
    closed_ids = {e.entity_id for e in hub.edits(tenant_id=TENANT) if e.field == "status"}
    assert closed_ids == {"1", "2", "3"}


def test_an_edit_made_in_sentinel_while_xdrsync_was_stopped_reaches_defender(hub: Hub) -> None:
    """The reader keeps its watermark in the hub: after a restart (or an outage, or a slow
    poll) it reads on from where it stopped, not from a minute before now, so an analyst's
    edit saved meanwhile is read, once."""
    arm = ScriptedArm()
    _commit(hub, _incident("1"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    name = incident_name(TENANT, "1")
    reader = SentinelReadback(destination, CONFIG, hub, clock=lambda: arm.now)
    assert reader.poll() == 0  # at 12:00:30, our own write read back
    assert reader.echoes == 1
    # xdrsync stops; at 12:02 an analyst closes the incident in Sentinel.
    _etag, props = arm.incidents[name]
    props = {
        **props,
        "status": "Closed",
        "classification": "FalsePositive",
        "classificationReason": "IncorrectAlertLogic",
        "lastModifiedTimeUtc": "2026-11-01T12:02:00Z",
    }
    arm.incidents[name] = ('"analyst"', props)
    arm.now = datetime(2026, 11, 1, 12, 10, tzinfo=UTC)  # xdrsync starts again
    restarted = SentinelReadback(destination, CONFIG, hub, clock=lambda: arm.now)
    assert restarted.poll() >= 1
    wanted = {e.field: e.wanted for e in hub.edits(tenant_id=TENANT)}
    assert wanted["status"] == "resolved"
    arm.now = datetime(2026, 11, 1, 12, 20, tzinfo=UTC)
    assert restarted.poll() == 0  # read once


def test_the_sweep_forwards_comments_alone_and_replays_no_edit_from_before_two_way(
    hub: Hub,
) -> None:
    """Every SWEEP the reader lists the open incidents whatever their stamp: a comment alone
    on one that reads as our own write is forwarded, once; a field edit no poll read (made
    before two-way sync was on) is not replayed."""
    arm = ScriptedArm()
    _commit(hub, _incident("1"), _incident("2"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))  # stamped 12:00:01 and 12:00:02
    quiet, edited = incident_name(TENANT, "1"), incident_name(TENANT, "2")
    _etag, props = arm.incidents[edited]  # an analyst's save before two-way sync was on
    arm.incidents[edited] = ('"analyst"', {**props, "status": "Active", **_AT_12_00_05})
    reader = SentinelReadback(
        destination, CONFIG, hub, lookback=timedelta(0), clock=lambda: arm.now
    )
    assert reader.poll() == 0  # 12:00:30: the first poll, from then on
    etag, props = arm.incidents[quiet]  # a comment alone: the etag and the stamp stay
    arm.incidents[quiet] = (etag, {**props, "additionalData": {"commentsCount": 1}})
    arm.comments[quiet]["ann-1"] = "Called the user: it was them"
    arm.now = datetime(2026, 11, 1, 12, 5, tzinfo=UTC)
    assert reader.poll() == 0  # the watermark's read: neither incident is listed
    arm.now = datetime(2026, 11, 1, 12, 10, 29, tzinfo=UTC)
    assert reader.poll() == 0  # the sweep is due 10 minutes after the first poll
    arm.now = datetime(2026, 11, 1, 12, 10, 31, tzinfo=UTC)
    assert reader.poll() == 1
    (edit,) = hub.edits(tenant_id=TENANT)
    assert (edit.entity_id, edit.wanted) == ("1", "Called the user: it was them"), edit
    listed = [text for call, text in arm.calls if call == "LIST_INCIDENTS"]
    assert "properties/status ne 'Closed'" in listed[-1]
    arm.now = datetime(2026, 11, 1, 12, 20, 31, tzinfo=UTC)
    assert reader.poll() == 0  # swept again: the comment is known now


_AT_12_00_05 = {"lastModifiedTimeUtc": "2026-11-01T12:00:05Z"}


ANN = {"userPrincipalName": "ann@contoso.com", "assignedTo": "Ann", "ownerType": "User"}


def _statuses(world: World, name: str, log: list[str]) -> None:
    status = world.sentinel_incident(name)["properties"]["status"]
    if not log or log[-1] != status:
        log.append(status)


def test_an_analysts_edit_on_its_way_to_defender_is_not_written_over(world: World) -> None:
    """The analyst sets the incident Active in Sentinel; Defender's change of another field
    comes first, while the edit is queued and then while it is confirmed but its version not
    read yet. No write puts Defender's older "New" over it: the twin goes New → Active once,
    and Sentinel's automation rules fire once."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    shown: list[str] = []
    _statuses(world, name, shown)
    world.analyst(name, status="Active")
    _statuses(world, name, shown)
    assert world.readback.poll() == 1
    _portal(world, tenant, incident, assignedTo="bob@contoso.com")
    world.workspace.fanout().publish()  # the edit is pending: Defender's owner, not its status
    _statuses(world, name, shown)
    assert world.sentinel_incident(name)["properties"]["owner"]["userPrincipalName"] == (
        "bob@contoso.com"
    )
    _portal(world, tenant, incident, customTags=["Escalated"])
    world.pusher.push_due()  # confirmed; the hub has not read Defender's version of it yet
    world.workspace.fanout().publish()
    _statuses(world, name, shown)
    labels = {lb["labelName"] for lb in world.sentinel_incident(name)["properties"]["labels"]}
    assert "Escalated" in labels
    world.cycle()
    world.cycle()
    _statuses(world, name, shown)
    assert shown == ["New", "Active"]
    assert world.defender_truth(tenant, incident)["status"] == "inProgress"
    assert world.readback.poll() == 0


def test_an_analysts_edit_met_by_a_write_is_not_written_over_after_the_409(world: World) -> None:
    """The write meets the analyst's version (409): the read queues the edit, and the merge
    that follows keeps the analyst's status while the edit is on its way."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    world.analyst(
        name,
        status="Closed",
        classification="FalsePositive",
        classificationReason="IncorrectAlertLogic",
    )
    _portal(world, tenant, incident, assignedTo="bob@contoso.com")
    conflicts = world.destination.conflicts
    world.workspace.fanout().publish()
    assert world.destination.conflicts == conflicts + 1
    shown = world.sentinel_incident(name)["properties"]
    assert (shown["status"], shown["classification"]) == ("Closed", "FalsePositive")
    assert shown["owner"]["userPrincipalName"] == "bob@contoso.com"
    world.cycle()
    truth = world.defender_truth(tenant, incident)
    assert (truth["status"], truth["classification"]) == ("resolved", "falsePositive")
    shown = world.sentinel_incident(name)["properties"]
    assert (shown["status"], shown["classificationReason"]) == ("Closed", "IncorrectAlertLogic")


def test_an_analysts_edit_that_loses_is_put_right_in_sentinel_without_a_new_version(
    world: World,
) -> None:
    """Defender's later owner wins the conflict (``latest_wins``): the edit ends overridden,
    Defender makes no new version, yet the twin is written with Defender's owner by the next
    delivery (the settlement states the incident again)."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    world.analyst(name, owner=ANN)
    assert world.readback.poll() == 1
    time.sleep(0.05)
    _portal(world, tenant, incident, assignedTo="bob@contoso.com")  # later: Defender's wins
    world.workspace.fanout().publish()
    owner = world.sentinel_incident(name)["properties"]["owner"]
    assert owner["userPrincipalName"] == "ann@contoso.com"  # on its way: kept
    world.cycle()
    (edit,) = world.workspace.hub.edits(tenant_id=tenant, entity=("incident", incident))
    assert edit.state == "overridden"
    owner = world.sentinel_incident(name)["properties"]["owner"]
    assert owner["userPrincipalName"] == "bob@contoso.com"
    assert world.defender_truth(tenant, incident)["assignedTo"] == "bob@contoso.com"
    assert world.readback.poll() == 0
    puts = world.destination.puts
    world.cycle()
    assert world.destination.puts == puts


def test_an_analysts_edit_refused_by_defender_is_put_right_once(hub: Hub) -> None:
    """While the analyst's status is on its way, a write of Defender's other change keeps
    it; Defender then refuses the edit, and makes no new version: settling the edit states
    the incident again (once, however many of its edits end together), and its delivery
    puts Defender's status back. An edit made in the workspace itself states nothing."""
    arm = ScriptedArm()
    _commit(hub, _incident("1"))
    destination = _destination(hub, arm)
    destination.deliver(hub.changes_after(0))
    name = incident_name(TENANT, "1")
    reader = SentinelReadback(destination, CONFIG, hub, clock=lambda: arm.now)
    reader.poll()
    _etag, props = arm.incidents[name]
    props = {
        **props,
        "status": "Active",
        "owner": ANN,
        "lastModifiedTimeUtc": "2026-11-01T12:02:00Z",
    }
    arm.incidents[name] = ('"analyst"', props)
    arm.now = datetime(2026, 11, 1, 12, 10, tzinfo=UTC)
    assert reader.poll() == 2
    seq = hub.changes_after(0)[-1].seq
    _commit(hub, _incident("1", minute=5, severity="high"))
    destination.deliver(hub.changes_after(seq))
    shown = arm.incidents[name][1]
    assert (shown["severity"], shown["status"]) == ("High", "Active")
    assert shown["owner"]["userPrincipalName"] == "ann@contoso.com"
    seq = hub.changes_after(0)[-1].seq
    ours = hub.edits(tenant_id=TENANT)
    hub.enqueue_edits(
        [NewEdit(TENANT, "incident", "1", "status", None, "resolved", "alice", origin="cli")]
    )
    (theirs,) = [e for e in hub.edits(tenant_id=TENANT) if e.origin == "cli"]
    hub.settle_edits([Settlement(theirs, "failed", "edit_refused", {"reason": "no"})])
    assert hub.changes_after(seq) == []
    hub.settle_edits([Settlement(e, "failed", "edit_refused", {"reason": "no"}) for e in ours])
    (restated,) = hub.changes_after(seq)
    assert (restated.entity_id, restated.kind) == ("1", "membership")
    destination.deliver([restated])
    shown = arm.incidents[name][1]
    assert (shown["severity"], shown["status"], shown.get("owner")) == ("High", "New", None)
    assert reader.poll() == 0


def test_analysts_can_comment_on_an_incident_busy_with_defender_comments(world: World) -> None:
    """Defender holds more comments than Sentinel has places: the mirror leaves analysts
    their reserve, so an analyst's comment is taken (not refused with 400) and reaches
    Defender."""
    tenant = world.config.tenants[0].tenant_id
    incident = world.open_incident(tenant)
    name = incident_name(tenant, incident)
    store = world.defender.emulator.store(tenant)
    for number in range(120):
        store.add_incident_comment(incident, f"automation note {number}", "playbook@contoso.com")
    world.cycle()
    shown = world.sentinel_incident(name)["comments"]
    assert len(shown) == MAX_COMMENTS - ANALYST_RESERVE
    assert world.destination.comments_left_out > 0
    for number in range(ANALYST_RESERVE):
        _comment(world, name, f"Analyst finding {number}")
    labels = world.sentinel_incident(name)["properties"]["labels"]
    world.analyst(name, labels=[*labels, {"labelName": "reviewed", "labelType": "User"}])
    assert world.readback.poll() == ANALYST_RESERVE + 1  # the comments and the tag
    world.cycle()
    texts = [c.get("comment") or "" for c in world.defender_truth(tenant, incident)["comments"]]
    assert sum(t.startswith("Analyst finding") for t in texts) == ANALYST_RESERVE
    assert len(world.sentinel_incident(name)["comments"]) == MAX_COMMENTS
