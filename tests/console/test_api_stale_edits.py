"""Edits made on a console page drawn before a change in Defender that the hub has read since:
a tag click changes only that tag, so the portal's new tag survives; an edited field carries
the value the page showed, so a portal change made meanwhile goes to the field's conflict
policy instead of being overwritten. Through the real REST API, pushed to the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import PASSWORD

from xdrsync.config import Config, ConflictPolicies, SyncConfig, TwoWayConfig
from xdrsync.console.accounts import Accounts
from xdrsync.console.server import console_server
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.sync.engine import sync_tenant
from xdrsync.twoway.edits import EditRequest, plan_edits
from xdrsync.twoway.merge import Intent, merge_field
from xdrsync.workspace import Workspace, inbound_settings

API = "/api/v1"
ME = "rui@contoso.com"
PORTAL_OWNER = "carol@contoso.com"


@dataclass
class Desk:
    """One emulated tenant, its workspace, and a responder signed in to the console. Nothing
    runs by itself: ``cycle`` is one ``sync --once`` (push, read, publish)."""

    server: EmulatorServer
    config: Config
    workspace: Workspace
    client: httpx.Client
    incident: str  # Defender's id of an open incident
    path: str  # its REST path

    def inbound(self) -> None:
        for source in self.workspace.sources():
            report = sync_tenant(self.workspace.hub, source, inbound_settings(self.config))
            assert report.ok, report.errors
        self.workspace.fanout().publish()

    def cycle(self) -> None:
        self.workspace.pusher().push_due()
        self.inbound()

    def portal(self, **changes: Any) -> None:
        """An analyst's edit in the Defender portal, read into the hub at once (the console
        page drawn before it is not redrawn)."""
        reply = httpx.post(
            f"{self.server.base_url}/_emulator/incidents/{self.incident}", json=changes, timeout=30
        )
        reply.raise_for_status()
        self.inbound()

    def truth(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.server.base_url}/_emulator/truth", timeout=30)
        return dict(next(i for i in reply.json()["value"] if i["id"] == self.incident))

    def page(self) -> dict[str, Any]:
        """The incident's page as the console draws it."""
        reply = self.client.get(self.path)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def patch(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        reply = self.client.patch(self.path, json=body)
        assert reply.status_code == 202, reply.text
        return list(reply.json()["edits"])

    def edit_state(self, edit_id: int) -> str:
        return str(next(e["state"] for e in self.page()["edits"] if e["id"] == edit_id))


def seen_of(page: dict[str, Any]) -> dict[str, Any]:
    """What incident.js sends as ``seen``: the fields an edit may change, as the page shows."""
    return {k: page.get(k) for k in ("assignedTo", "status", "classification", "determination")}


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Callable[[str], Desk]]:
    made: list[tuple[Desk, Any]] = []

    def _make(policy: str) -> Desk:
        server = EmulatorServer(settings_for(seed=11, incidents=12)).start()
        config = Config.for_emulator(
            server.base_url,
            server.emulator.settings.tenants,
            workspace_path=tmp_path / f"ws{len(made)}",
            sync=SyncConfig(poll_interval_seconds=0.5, lookback_seconds=60),
            rate_limit_per_minute=6000,
        ).model_copy(
            update={
                "two_way": TwoWayConfig(
                    policy=ConflictPolicies(status=policy, owner=policy, classification=policy),  # type: ignore[arg-type]
                    retry_seconds=0.05,
                )
            }
        )
        workspace = Workspace.open(config)
        console = console_server(config, workspace.hub, workspace.logs, port=0).start()
        Accounts(workspace.hub).add_user("rui", PASSWORD, "responder", email=ME)
        client = httpx.Client(base_url=console.base_url, timeout=30)
        assert client.post("/login", data={"username": "rui", "password": PASSWORD}).is_redirect
        client.headers["X-CSRF-Token"] = client.get(f"{API}/me").json()["csrfToken"]
        tenant = config.tenants[0].name
        found = Desk(server, config, workspace, client, "", "")
        found.inbound()
        open_ones = [
            s.id
            for s in workspace.hub.list_incidents(limit=200)
            if s.status == "active" and not s.assigned_to and not s.merged_into
        ]
        assert open_ones, "the emulator has an open, unassigned incident"
        found.incident = open_ones[0]
        found.path = f"{API}/incidents/{tenant}~{found.incident}"
        made.append((found, console))
        return found

    yield _make
    for found, console in made:
        found.client.close()
        console.stop()
        found.workspace.close()
        found.server.stop()


# -- tags -----------------------------------------------------------------------------------


def test_a_tag_clicked_on_a_stale_page_keeps_the_tag_the_portal_added(
    desk: Callable[[str], Desk],
) -> None:
    d = desk("latest_wins")
    d.portal(customTags=["old"])
    page = d.page()
    assert page["customTags"] == ["old"]
    d.portal(customTags=["old", "vip-exec"])  # the page still shows ["old"]

    d.patch({"removeTags": ["old"], "seen": seen_of(page)})  # the × on "old"
    d.patch({"addTags": ["triaged"], "seen": seen_of(page)})  # "add tag triaged"
    d.cycle()

    assert d.truth()["customTags"] == ["vip-exec", "triaged"]
    assert d.page()["customTags"] == ["vip-exec", "triaged"]


def test_a_whole_tag_list_is_diffed_against_the_list_the_client_saw(
    desk: Callable[[str], Desk],
) -> None:
    d = desk("latest_wins")
    shown = d.page()["customTags"]
    d.portal(customTags=[*shown, "vip-exec"])

    d.patch({"customTags": [*shown, "triaged"], "seen": {"customTags": shown}})
    d.cycle()

    assert set(d.truth()["customTags"]) == {*shown, "vip-exec", "triaged"}


def test_a_whole_tag_list_over_a_page_that_showed_no_tags_removes_none(
    desk: Callable[[str], Desk],
) -> None:
    # `"customTags": null` in `seen` is "the page showed none" (docs/api.md), not "left out":
    # a tag added in the portal since is no tag the client meant to remove.
    d = desk("latest_wins")
    d.portal(customTags=["vip-exec"])

    d.patch({"customTags": ["triaged"], "seen": {"customTags": None}})
    d.cycle()

    assert set(d.truth()["customTags"]) == {"vip-exec", "triaged"}


def test_a_whole_tag_list_without_seen_still_sets_the_list_as_documented(
    desk: Callable[[str], Desk],
) -> None:
    d = desk("latest_wins")
    d.portal(customTags=["vip-exec"])

    d.patch({"customTags": ["triaged"]})  # an older client: "the whole new list"
    d.cycle()

    assert d.truth()["customTags"] == ["triaged"]


def test_a_whole_list_and_deltas_together_are_refused_and_nothing_is_queued(
    desk: Callable[[str], Desk],
) -> None:
    d = desk("latest_wins")
    reply = d.client.patch(d.path, json={"customTags": ["a"], "addTags": ["b"]})
    assert reply.status_code == 422
    assert "not both" in reply.text
    assert d.page()["edits"] == []


# -- the value the page showed --------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "owner", "state"),
    [
        ("defender_wins", PORTAL_OWNER, "overridden"),
        ("manual", PORTAL_OWNER, "conflict"),
        ("latest_wins", ME, "confirmed"),  # the workspace's click came later
        ("workspace_wins", ME, "confirmed"),
    ],
)
def test_assign_to_me_on_a_stale_page_goes_to_the_owners_policy(
    desk: Callable[[str], Desk], policy: str, owner: str, state: str
) -> None:
    d = desk(policy)
    page = d.page()
    assert page["assignedTo"] is None
    d.portal(assignedTo=PORTAL_OWNER)  # the page still shows "unassigned"

    (edit,) = d.patch({"assignedTo": ME, "seen": seen_of(page)})  # "Assign to me"
    d.cycle()

    assert d.truth()["assignedTo"] == owner
    assert d.edit_state(edit["id"]) == state
    if state == "conflict":
        listed = d.client.get(f"{API}/conflicts").json()["value"]
        assert [(c["id"], c["theirs"], c["wanted"]) for c in listed] == [
            (edit["id"], PORTAL_OWNER, ME)
        ]


@pytest.mark.parametrize("policy", ["defender_wins", "manual"])
def test_a_page_in_step_with_defender_writes_whatever_the_policy(
    desk: Callable[[str], Desk], policy: str
) -> None:
    d = desk(policy)
    page = d.page()
    body = {
        "assignedTo": ME,
        "status": "resolved",
        "classification": "truePositive",
        "determination": "phishing",
        "seen": seen_of(page),
    }
    edits = d.patch(body)
    d.cycle()

    truth = d.truth()
    assert (truth["assignedTo"], truth["status"], truth["classification"]) == (
        ME,
        "resolved",
        "truePositive",
    )
    assert {d.edit_state(e["id"]) for e in edits} == {"confirmed"}


def test_an_edit_without_seen_takes_the_workspaces_value_as_before(
    desk: Callable[[str], Desk],
) -> None:
    d = desk("defender_wins")
    d.portal(assignedTo=PORTAL_OWNER)

    (edit,) = d.patch({"assignedTo": ME})  # an older API client: nothing said about its view
    d.cycle()

    assert d.truth()["assignedTo"] == ME
    assert d.edit_state(edit["id"]) == "confirmed"


def test_a_pages_spelling_of_defenders_value_is_not_a_change_in_defender() -> None:
    """The page shows enums in one spelling; Graph may send another (``TruePositive``)."""
    current = {"status": "Active", "classification": "TruePositive", "determination": "Malware"}
    shown = {"status": "active", "classification": "truePositive", "determination": "malware"}
    (edit,) = plan_edits(
        "incident",
        "t",
        "1",
        current,
        EditRequest(classification="falsePositive", determination="notMalicious", seen=shown),
        author="rui",
        origin="console",
    )
    intent = Intent(1, edit.field, edit.seen, edit.wanted, datetime.now(UTC), "rui")
    theirs = {"classification": "TruePositive", "determination": "Malware"}
    assert merge_field(edit.field, [intent], theirs, None, "manual").action == "write"
