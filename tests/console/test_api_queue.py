"""The queue as an analyst meets it through the API, over fixed data (a seeded console): whose
incidents "assigned to me" finds, what the severity counts and filters agree on, and live
changes that never run ahead of the queue's index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from consoledata import TENANT_A, TENANT_B, alert_json, commit, evidence, incident_json
from seeded import SeededConsole, listed_ids, seeded_console

from xdrsync.hub import Hub
from xdrsync.layout import QUEUE_DESTINATION

API = "/api/v1"


def _populate(hub: Hub) -> None:
    unknown = incident_json(TENANT_A, "5", updated=14, severity="medium")
    unknown["severity"] = None
    future = incident_json(TENANT_A, "6", updated=15, status="resolved")
    future["severity"] = "unknownFutureValue"
    commit(
        hub,
        TENANT_A,
        [
            # The responder signs in as Rui@Contoso.com; Defender keeps owners as typed.
            incident_json(TENANT_A, "1", updated=10, severity="high", owner="Rui@contoso.com"),
            incident_json(TENANT_A, "2", updated=11, severity="high", owner="RUI@CONTOSO.COM"),
            incident_json(TENANT_A, "3", updated=12, severity="low", owner="rui@contoso.com"),
            incident_json(TENANT_A, "4", updated=13, severity="low", owner="ana@contoso.com"),
            unknown,
            future,
            incident_json(TENANT_A, "7", updated=16, owner="ana@contoso.com"),
            incident_json(
                TENANT_A,
                "8",
                updated=17,
                status="resolved",
                alerts=[
                    alert_json(TENANT_A, "da8a", "8", category="InitialAccess"),
                    alert_json(TENANT_A, "da8b", "8", category="lateral_movement"),
                ],
            ),
            incident_json(
                TENANT_A,
                "9",
                updated=18,
                status="resolved",
                alerts=[alert_json(TENANT_A, "da9", "9", category="Execution")],
            ),
        ],
    )
    commit(
        hub,
        TENANT_B,
        [
            incident_json(TENANT_B, "1", updated=5, owner="Rui@Contoso.com"),
            incident_json(TENANT_B, "2", updated=6, owner="zoe@fabrikam.com"),  # live changes
        ],
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("api-queue"), _populate) as console:
        yield console


@pytest.fixture(scope="module")
def rui(seeded: SeededConsole) -> httpx.Client:
    return seeded.client("responder")


def test_assigned_to_me_finds_my_incidents_whatever_the_case(rui: httpx.Client) -> None:
    mine = {"contoso~1", "contoso~2", "contoso~3", "fabrikam~1"}
    assert listed_ids(rui, owner="me") == mine
    assert listed_ids(rui, owner="rui@contoso.com") == mine
    assert listed_ids(rui, owner="RUI@contoso.COM") == mine
    assert listed_ids(rui, owner="Ana@Contoso.com") == {"contoso~4", "contoso~7"}
    counted = rui.get(f"{API}/incidents/stats", params={"owner": "me"}).json()
    assert counted["total"] == len(mine)


def test_the_unknown_severity_lists_what_it_counts(rui: httpx.Client) -> None:
    stats = rui.get(f"{API}/incidents/stats", params={"tenant": "contoso"}).json()
    # No severity, and one Defender added since: both count as unknown, nothing else does.
    assert stats["bySeverity"] == {"high": 2, "medium": 3, "low": 2, "unknown": 2}
    assert listed_ids(rui, tenant="contoso", severity="unknown") == {"contoso~5", "contoso~6"}
    for severity, n in stats["bySeverity"].items():
        assert len(listed_ids(rui, tenant="contoso", severity=severity)) == n, severity
    # Spelled out, a value still finds its own rows only.
    assert listed_ids(rui, severity="unknownFutureValue") == {"contoso~6"}
    # Among the open ones, as the "open by severity" chips count them.
    open_statuses = ["active", "inProgress", "awaitingAction"]
    opened = rui.get(
        f"{API}/incidents/stats", params={"tenant": "contoso", "status": open_statuses}
    ).json()
    assert opened["bySeverity"]["unknown"] == 1
    assert listed_ids(rui, tenant="contoso", severity="unknown", status=open_statuses) == {
        "contoso~5"
    }


def test_the_queue_filters_by_mitre_tactic(rui: httpx.Client) -> None:
    assert listed_ids(rui, tactic="InitialAccess") == {"contoso~8"}
    # Graph wrote lateral_movement:
    assert listed_ids(rui, tactic="LateralMovement") == {"contoso~8"}
    assert listed_ids(rui, tactic=["Execution", "InitialAccess"]) == {"contoso~8", "contoso~9"}
    assert listed_ids(rui, tactic="Exfiltration") == set()
    counted = rui.get(f"{API}/incidents/stats", params={"tactic": "InitialAccess"}).json()
    assert counted["total"] == 1


def _owner_in_queue(client: httpx.Client, workspace_id: str) -> Any:
    items = client.get(f"{API}/incidents", params={"top": 100}).json()["value"]
    return next(i["assignedTo"] for i in items if i["id"] == workspace_id)


def test_live_changes_wait_until_the_queue_shows_them(
    seeded: SeededConsole, rui: httpx.Client
) -> None:
    hub = seeded.hub
    start = rui.get(f"{API}/changes").json()["seq"]
    assert start == hub.get_cursor(QUEUE_DESTINATION) == hub.max_seq()
    # Defender's new owner is in the hub, not yet in the queue's index.
    commit(hub, TENANT_B, [incident_json(TENANT_B, "2", updated=30, owner="bo@fabrikam.com")])
    assert hub.max_seq() > start
    assert _owner_in_queue(rui, "fabrikam~2") == "zoe@fabrikam.com"
    # So /changes does not name it yet, and does not move past it.
    assert rui.get(f"{API}/changes").json() == {"seq": start, "incidents": []}
    assert rui.get(f"{API}/changes", params={"after": start}).json() == {
        "seq": start,
        "incidents": [],
    }
    # Once the index has it, /changes names it, and the queue shows the new owner.
    seeded.index()
    answer = rui.get(f"{API}/changes", params={"after": start}).json()
    assert answer == {"seq": hub.max_seq(), "incidents": ["fabrikam~2"]}
    assert _owner_in_queue(rui, "fabrikam~2") == "bo@fabrikam.com"
    assert rui.get(f"{API}/changes").json()["seq"] == hub.max_seq()


def _shared_entities(hub: Hub) -> None:
    """Twelve incidents, each naming an IP and a device of its own and a user shared by
    incidents of the same parity; a device named in both tenants."""
    for tenant in (TENANT_A, TENANT_B):
        incidents = []
        for n in range(1, 13):
            items = [
                evidence("ip", f"10.0.0.{n}"),
                evidence("device", f"host{n}"),
                evidence("user", f"user{n % 2}"),
            ]
            alert = alert_json(tenant, f"e{n}", str(n), items=items)
            incidents.append(incident_json(tenant, str(n), updated=n, alerts=[alert]))
        commit(hub, tenant, incidents)


def test_entities_page_with_next_links_to_the_last_one(tmp_path: Path) -> None:
    """docs/api.md: lists answer ``nextLink``, followed unchanged until null."""
    with seeded_console(tmp_path, _shared_entities) as console:
        reader = console.client("reader")
        whole = reader.get(f"{API}/entities", params={"top": 500}).json()
        assert whole["nextLink"] is None and len(whole["value"]) == 2 * (12 + 12 + 2)
        pages, seen = 0, []
        link: str | None = f"{console.url}{API}/entities?top=7"
        while link is not None and pages < 20:
            reply = reader.get(link)
            assert reply.status_code == 200, reply.text
            pages += 1
            seen += reply.json()["value"]
            link = reply.json()["nextLink"]
        assert pages == 8 and seen == whole["value"]  # the same order, nothing twice
        # The filters go on in the link; a token of another server is refused.
        users = reader.get(f"{API}/entities", params={"kind": "user", "top": 3}).json()
        rest = reader.get(users["nextLink"]).json()
        assert [e["kind"] for e in users["value"] + rest["value"]] == ["user"] * 4
        assert rest["nextLink"] is None
        bad = reader.get(f"{API}/entities", params={"skiptoken": "not-a-token"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "skiptoken"
