"""The console from an analyst's point of view: workflows an analyst notices when they go
wrong (closing and classifying, commenting on a merged incident, searching for what an entity
card shows, the grid's columns, the tag box, copying ids, reading a refusal). Over fixed data
(a seeded console), through the REST API, the pages' HTML and, marked slow, the browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from consoledata import TENANT_A, TENANT_B, alert_json, commit, evidence, incident_json, stamp
from seeded import SeededConsole, listed_ids, seeded_console

from xdrsync.hub import Hub

API = "/api/v1"

FILE_SHA1 = "a" * 40
FILE_SHA256 = "b" * 64


def _file(minute: float = 0) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.security.fileEvidence",
        "createdDateTime": stamp(minute),
        "verdict": "malicious",
        "remediationStatus": "none",
        "fileDetails": {
            "fileName": "evil.exe",
            "filePath": "C:\\Temp",
            "sha1": FILE_SHA1,
            "sha256": FILE_SHA256,
        },
    }


def _populate(hub: Hub) -> None:
    closed = incident_json(TENANT_A, "3", updated=3, status="resolved")
    closed["classification"] = "truePositive"
    closed["determination"] = "malware"
    commit(
        hub,
        TENANT_A,
        [
            incident_json(
                TENANT_A,
                "1",
                updated=1,
                alerts=[
                    alert_json(TENANT_A, "da1", "1", items=[evidence("device", "pc1"), _file()])
                ],
            ),
            incident_json(TENANT_A, "2", updated=2),
            closed,
            # Defender merged incident 5 into incident 1.
            incident_json(TENANT_A, "5", updated=5, status="redirected", redirect="1"),
        ],
    )
    commit(hub, TENANT_B, [incident_json(TENANT_B, "1", updated=4)])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("analyst-workflows"), _populate) as console:
        yield console


@pytest.fixture(scope="module")
def rui(seeded: SeededConsole) -> httpx.Client:
    return seeded.client("responder")


# -- edits Defender/Sentinel would not accept ---------------------------------------------------


def test_a_closed_incident_cannot_be_left_closed_without_a_classification(
    rui: httpx.Client,
) -> None:
    """Closing asks for a classification (reference console.md: "Closing always asks for a
    classification"; the API refuses `status=resolved` with `unknown`). Setting the
    classification of an already closed incident back to `unknown` reaches the same state —
    resolved and unclassified — and must be refused the same way. It is queued instead, and
    the queue then lists the incident as resolved and unclassified."""
    closing = rui.patch(
        f"{API}/incidents/contoso~2", json={"status": "resolved", "classification": "unknown"}
    )
    assert closing.status_code == 422  # the rule, as the API has it
    unclassify = rui.patch(f"{API}/incidents/contoso~3", json={"classification": "unknown"})
    shown = rui.get(f"{API}/incidents/contoso~3").json()
    assert unclassify.status_code == 422, (
        f"accepted ({unclassify.status_code}): the incident now shows "
        f"{shown['status']} / {shown['classification']}"
    )
    assert "closed incident needs a classification" in unclassify.text
    assert (shown["status"], shown["classification"]) == ("resolved", "truePositive")
    # Reopening and clearing it in one edit is fine: the incident is no longer closed.
    reopened = rui.patch(
        f"{API}/incidents/contoso~3", json={"status": "active", "classification": "unknown"}
    )
    assert reopened.status_code == 202, reopened.text


# -- merged incidents -----------------------------------------------------------------------------


def test_a_comment_on_a_merged_incident_goes_on_to_the_survivor(
    seeded: SeededConsole, rui: httpx.Client
) -> None:
    """docs/console.md: an incident merged into another "offers no field edits ... and points
    to the survivor; its comments go on to the survivor". The page of a merged incident offers
    a comment box; a comment sent from it is queued for the survivor (as the pusher moves
    comments made before the merge), and the answer says so (each edit's ``target``). Field
    edits of it are still refused, naming the survivor."""
    page = rui.get("/incidents/contoso~5")
    assert page.status_code == 200
    assert 'id="comment-form"' in page.text
    posted = rui.post(f"{API}/incidents/contoso~5/comments", json={"comment": "CFO laptop"})
    assert posted.status_code == 202, posted.text
    (edit,) = posted.json()["edits"]
    assert (edit["target"], edit["field"], edit["wanted"]) == ("contoso~1", "comment", "CFO laptop")
    survivor = rui.get(f"{API}/incidents/contoso~1").json()
    assert "CFO laptop" in [c["text"] for c in survivor["comments"]]
    refused = rui.patch(f"{API}/incidents/contoso~5", json={"assignedTo": "rui@contoso.com"})
    assert refused.status_code == 422
    assert "merged into 1" in refused.text


# -- search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "what"),
    [
        ("pc1.contoso.com", "the device's name (DeviceName on its entity card)"),
        (FILE_SHA1, "the file's SHA1 (SHA1 on its entity card)"),
    ],
)
def test_the_queue_search_finds_an_incident_by_what_its_entity_cards_show(
    rui: httpx.Client, term: str, what: str
) -> None:
    """Reference console.md: "a search box over titles and entities"; docs/api.md: `search`
    (title, entities, comments). The incident page shows the device as DeviceName
    pc1.contoso.com and the file with its SHA1 — the values an analyst pastes from the
    portal or a ticket — yet the queue's search finds the incident by neither: it only knows
    each entity's key and one display name (index.py `_gather_texts`)."""
    cards = rui.get(f"{API}/incidents/contoso~1").json()["entities"]
    attributes = {v for group in cards.values() for e in group for v in e["attributes"].values()}
    assert term in attributes  # the page shows it
    assert "contoso~1" in listed_ids(rui, search=term), f"searching {what} finds nothing"


# -- the grid -------------------------------------------------------------------------------------


def test_the_queue_grid_has_a_created_column_to_sort_by(rui: httpx.Client) -> None:
    """Reference console.md: the grid's columns include "created"; the API sorts by
    `created` (docs/api.md). The queue page has no Created column, so an analyst can neither
    see when an incident was created nor sort by it (only by Updated)."""
    page = rui.get("/")
    assert page.status_code == 200
    sortable = set(re.findall(r'data-sort="([^"]+)"', page.text))
    assert "created" in sortable, f"sortable columns: {sorted(sortable)}"


def test_the_incident_page_takes_the_tags_the_bulk_bar_and_the_api_take(
    rui: httpx.Client,
) -> None:
    """The API and the queue's bulk tag box take tags of up to 128 characters
    (twoway/fields.py MAX_TAG_LENGTH; queue.html maxlength=128); the incident page's tag box
    stops at 100, so a tag the analyst can add from the queue cannot be typed on the page."""
    queue = rui.get("/").text
    page = rui.get("/incidents/contoso~1").text
    bulk = re.search(
        r'aria-label="Tag to add to the selected incidents"[^>]*maxlength="(\d+)"', queue
    )
    single = re.search(r'aria-label="Add tag"[^>]*maxlength="(\d+)"', page)
    assert bulk and single
    assert int(single.group(1)) == int(bulk.group(1)) == 128


# -- in the browser (Debian's Chromium) -----------------------------------------------------------


@pytest.mark.slow
def test_in_the_browser_ids_copy_from_the_keyboard_and_refusals_read_cleanly(
    browser: Any, seeded: SeededConsole
) -> None:
    """Reference console.md, habits: "Keyboard-friendly ...; copyable ids". On an incident's
    page (1) the breadcrumb's id copies the workspace id; (2) the header's copyable id
    (common.js `copyable`) is a button: Tab reaches it and Enter copies it; (3) a comment on
    a merged incident says where it went; (4) a refusal of the whole request (FastAPI's 422
    located at "body" alone) reads as its message, not "Comment: : ..." (common.js
    `describe`)."""
    from browser import signed_in
    from playwright.sync_api import expect

    session = signed_in(browser, seeded, "responder", "/incidents/contoso~1")
    try:
        page = session.page
        session.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=seeded.url)
        page.goto("/incidents/contoso~1")
        expect(page.locator("#h-title")).to_have_text("Incident 1")
        problems: list[str] = []

        page.evaluate("navigator.clipboard.writeText('nothing yet')")
        crumb = page.locator(".crumbs .copyable")
        expect(crumb).to_have_attribute("title", "Copy id")
        crumb.click()
        page.wait_for_timeout(300)
        copied = page.evaluate("navigator.clipboard.readText()")
        if copied != "contoso~1":
            problems.append(f"clicking the breadcrumb's 'Copy id' copied {copied!r}")

        header_id = page.locator("#h-tenant .copyable")
        expect(header_id).to_have_text("1")
        reachable = header_id.evaluate(
            "e => e.tabIndex >= 0 || ['BUTTON', 'A'].includes(e.tagName)"
        )
        if not reachable:
            problems.append("the header's copyable incident id cannot take keyboard focus")
        else:
            page.evaluate("navigator.clipboard.writeText('nothing yet')")
            header_id.focus()
            page.keyboard.press("Enter")
            page.wait_for_timeout(300)
            copied = page.evaluate("navigator.clipboard.readText()")
            if copied != "1":
                problems.append(f"Enter on the header's id copied {copied!r}")

        # A comment on the merged incident goes on to the survivor, and the page says so.
        page.goto("/incidents/contoso~5")
        expect(page.locator("#h-merged")).to_contain_text("comments added here go there")
        page.fill("#comment-text", "sent on")
        page.click("#comment-form button[type=submit]")
        expect(page.locator("#toasts")).to_contain_text(
            "Comment sent to incident contoso~1, which this one was merged into"
        )

        # A refusal of the whole body (FastAPI's 422 with the location "body" only), as the
        # API answers it, reads as its message alone.
        body_refusal = seeded.client("responder").patch(
            f"{API}/incidents/contoso~2", json={"status": "resolved", "classification": "unknown"}
        )
        assert body_refusal.status_code == 422
        assert body_refusal.json()["detail"][0]["loc"] == ["body"]
        page.goto("/incidents/contoso~2")
        expect(page.locator("#h-title")).to_have_text("Incident 2")
        page.route(
            "**/api/v1/incidents/contoso~2/comments",
            lambda route: route.fulfill(
                status=422, content_type="application/json", body=body_refusal.text
            ),
        )
        page.fill("#comment-text", "refused")
        page.click("#comment-form button[type=submit]")
        toast = page.locator("#toasts .toast-error").first
        expect(toast).to_be_visible()
        text = toast.inner_text()
        if (
            ": :" in text
            or text
            != "Comment: closing an incident needs a classification "
            "(--classification), as in Sentinel"
        ):
            problems.append(f"the refusal reads {text!r}")
        assert not problems, problems
    finally:
        session.close()
