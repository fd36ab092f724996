"""The queue's side pane and bulk actions in a real browser (Debian's Chromium driven by
Playwright): a responder triages from the pane without leaving the queue, tags several
incidents at once and sees each refusal, and a reader gets neither.

One browser for the module; every wait is bounded. The incidents edited here are the second
tenant's (signed in as the admin, who sees both)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from browser import STEP_MS, chromium_available, no_script_errors, signed_in
from playwright.sync_api import Browser, Page, expect

pytestmark = [
    pytest.mark.slow,
    # `make test` installs Debian's Chromium; only a run outside it (no CI) may skip.
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("CI"),
        reason="needs /usr/bin/chromium (make test installs it)",
    ),
]

#: How long an edit may take to reach the emulator and come back confirmed.
SYNC_MS = 25_000
TAG = "bulk-triage"


@pytest.fixture(scope="module")
def tenant(live_console: Any) -> str:
    name: str = live_console.tenants[1]
    return name


@pytest.fixture(scope="module")
def picks(live_console: Any, tenant: str) -> dict[str, Any]:
    """Open incidents of the second tenant with alerts, least recently updated first: one
    for the pane, three for the bulk edits, one for the reader."""
    client = live_console.client("admin")
    reply = client.get(
        "/api/v1/incidents", params={"tenant": tenant, "status": "active", "top": 100}
    )
    reply.raise_for_status()
    items = [
        i
        for i in reply.json()["value"]
        if not i["mergedInto"] and i["syncState"] == "synced" and i["alertCount"]
    ]
    assert len(items) >= 6, f"{tenant} has only {len(items)} open incidents with alerts"
    items = items[-6:]
    return {"pane": items[0], "bulk": items[1:4], "reader": items[4], "resolved": items[5]}


def _queue(page: Page, tenant: str) -> None:
    """The queue narrowed to one tenant (its 30 incidents fit one page)."""
    page.goto(f"/?tenant={tenant}")
    expect(page.locator("#queue")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#queue-rows tr[data-id]").first).to_be_visible()


def _row(page: Page, incident: dict[str, Any]) -> Any:
    return page.locator(f'#queue-rows tr[data-id="{incident["id"]}"]')


def test_pane_shows_the_incident_and_assigns_it(
    browser: Browser, live_console: Any, tenant: str, picks: dict[str, Any]
) -> None:
    incident = picks["pane"]
    defender_id = incident["incidentId"]
    # A comment written in Defender, synced before the pane opens.
    live_console.portal(
        tenant,
        defender_id,
        comments=[{"comment": "Seen in the portal <b>first</b>", "createdByDisplayName": "Ines"}],
    )
    admin = live_console.client("admin")
    live_console.wait_for(
        lambda: any(
            "portal" in c["text"]
            for c in admin.get(f"/api/v1/incidents/{incident['id']}").json()["comments"]
        ),
        SYNC_MS / 1000,
        "the portal's comment in the hub",
    )
    address = f"{live_console.users['admin'][0]}@contoso.com"
    session = signed_in(browser, live_console, "admin")
    try:
        page = session.page
        _queue(page, tenant)
        pane = page.locator("#pane")
        expect(pane).to_be_hidden()
        # A click on the row (not on its title link) opens the pane, not the page.
        _row(page, incident).locator("td.col-status").click()
        expect(pane).to_be_visible()
        expect(page).to_have_url(re.compile(r"/\?tenant="))
        expect(pane).to_have_attribute("data-id", incident["id"])
        expect(page.locator("#pane-title")).to_have_text(incident["displayName"])
        expect(page.locator("#pane-alerts li.pane-alert")).to_have_count(incident["alertCount"])
        expect(page.locator("#pane-alerts .pane-alert-title").first).not_to_be_empty()
        expect(page.locator("#pane-entities .pane-entity").first).to_be_visible()
        comment = page.locator("#pane-comments .comment-body", has_text="portal")
        expect(comment).to_have_text("Seen in the portal <b>first</b>")  # text, never markup
        expect(page.locator("#pane-facts")).to_contain_text(tenant)
        # The pane overlays the right of the grid; the essential columns stay in sight.
        box = pane.bounding_box()
        owner = _row(page, incident).locator("td.col-owner").bounding_box()
        assert box and owner and owner["x"] + owner["width"] <= box["x"]

        page.click("#pane-assign-me")
        expect(page.locator("#pane-owner")).to_have_text(address)
        expect(page.locator("#pane-state .tracked").last).to_contain_text(
            re.compile("pending|confirmed")
        )
        expect(page.locator("#pane-state .tracked").last).to_contain_text(
            "confirmed", timeout=SYNC_MS
        )
        live_console.wait_for(
            lambda: live_console.truth(tenant)[defender_id].get("assignedTo") == address,
            SYNC_MS / 1000,
            "the owner in Defender",
        )
        # The row follows without a reload.
        expect(_row(page, incident).locator("td.col-owner")).to_have_text(address, timeout=SYNC_MS)

        # Esc closes it; the keyboard opens it again (Space) and it follows j/k.
        page.keyboard.press("Escape")
        expect(pane).to_be_hidden()
        page.keyboard.press("Space")
        expect(pane).to_be_visible()
        expect(pane).to_have_attribute("data-id", incident["id"])
        following = page.locator("#queue-rows tr.selected + tr[data-id]")
        next_id = following.get_attribute("data-id") if following.count() else None
        page.keyboard.press("j")
        if next_id:
            expect(pane).to_have_attribute("data-id", next_id)
        page.keyboard.press("Escape")
        expect(pane).to_be_hidden()
        # Enter still opens the incident's page.
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/incidents/"))
        no_script_errors(session.errors)
    finally:
        session.close()


def test_a_row_that_a_change_moves_out_of_the_filter_shows_the_change(
    browser: Browser, live_console: Any, tenant: str, picks: dict[str, Any]
) -> None:
    # Filtered on active incidents, one is resolved in the portal: the filtered list no
    # longer holds it, yet its row must not keep showing it active (with a stale pending
    # badge after an edit): it shows the change, marked as out of the view.
    incident = picks["resolved"]
    session = signed_in(browser, live_console, "reader")
    try:
        page = session.page
        page.goto(f"/?tenant={tenant}&status=active")
        row = _row(page, incident)
        expect(row.locator("td.col-status")).to_contain_text("Active")
        live_console.portal(
            tenant, incident["incidentId"], status="resolved", classification="falsePositive"
        )
        expect(row.locator("td.col-status")).to_contain_text("Resolved", timeout=SYNC_MS)
        expect(row).to_have_class(re.compile("left-view"))
        no_script_errors(session.errors)
    finally:
        session.close()


def test_bulk_tag_reaches_defender_and_refusals_are_listed(
    browser: Browser, live_console: Any, tenant: str, picks: dict[str, Any]
) -> None:
    chosen = picks["bulk"]
    session = signed_in(browser, live_console, "admin")
    try:
        page = session.page
        _queue(page, tenant)
        bar = page.locator("#bulk-bar")
        expect(bar).to_be_hidden()
        for incident in chosen:
            _row(page, incident).locator(".row-check").check()
        expect(bar).to_be_visible()
        expect(page.locator("#bulk-count")).to_have_text("3 selected")
        expect(page.locator("#select-all")).not_to_be_checked()
        expect(page.locator("#pane")).to_be_hidden()  # checking is not opening

        # An owner Defender would refuse: each incident's refusal is listed.
        page.fill("#bulk-assign input[name=assignee]", "not an address")
        page.click("#bulk-assign button")
        expect(page.locator("#bulk-progress-text")).to_contain_text("3 of 3 done")
        expect(page.locator("#bulk-progress-text")).to_contain_text("3 refused")
        refusals = page.locator("#bulk-refusals li")
        expect(refusals).to_have_count(3)
        listed = {refusals.nth(i).get_attribute("data-id") for i in range(3)}
        assert listed == {i["id"] for i in chosen}

        page.fill("#bulk-tag input[name=tag]", TAG)
        page.click("#bulk-tag button")
        expect(page.locator("#bulk-progress-text")).to_contain_text(
            re.compile(r"Add tag .*: 3 of 3 done")
        )
        expect(page.locator("#bulk-refusals li")).to_have_count(0)
        ids = [i["incidentId"] for i in chosen]
        live_console.wait_for(
            lambda: all(
                TAG in (live_console.truth(tenant)[i].get("customTags") or ()) for i in ids
            ),
            SYNC_MS / 1000,
            "the tag in Defender on all three",
        )
        for incident in chosen:
            expect(_row(page, incident).locator("td.col-tags")).to_contain_text(
                TAG, timeout=SYNC_MS
            )
        # The selection is kept for the next action: close all three, with a classification.
        expect(page.locator("#bulk-count")).to_have_text("3 selected")
        page.click("#bulk-close-open")
        page.click("#bulk-close-submit")  # no classification yet: nothing is sent
        expect(page.locator("#bulk-progress-text")).to_contain_text("Add tag")
        page.select_option("#bulk-classification", "falsePositive")
        page.select_option("#bulk-determination", "notMalicious")
        page.fill("#bulk-comment", "Closed in bulk")
        page.click("#bulk-close-submit")
        expect(page.locator("#bulk-progress-text")).to_contain_text("Close: 3 of 3 done")
        expect(page.locator("#bulk-refusals li")).to_have_count(0)
        closed = live_console.wait_for(
            lambda: (
                all(
                    (t := live_console.truth(tenant)[i])["status"] == "resolved"
                    and any("in bulk" in c["comment"] for c in t.get("comments") or ())
                    for i in ids
                )
                and live_console.truth(tenant)
            ),
            SYNC_MS / 1000,
            "the closing in Defender on all three",
        )
        assert {closed[i]["determination"] for i in ids} == {"notMalicious"}
        # Select-all and clear work on the loaded rows.
        page.check("#select-all")
        total = page.locator("#queue-rows tr[data-id]").count()
        expect(page.locator("#bulk-count")).to_have_text(f"{total} selected")
        page.click("#bulk-clear")
        expect(page.locator("#queue-rows .row-check:checked")).to_have_count(0)
        page.click("#bulk-report-dismiss")
        expect(bar).to_be_hidden()
        no_script_errors(session.errors)
    finally:
        session.close()


def test_reader_gets_the_pane_without_actions_and_no_bulk(
    browser: Browser, live_console: Any, tenant: str, picks: dict[str, Any]
) -> None:
    incident = picks["reader"]
    session = signed_in(browser, live_console, "reader")
    try:
        page = session.page
        _queue(page, tenant)
        expect(page.locator("#select-all")).to_have_count(0)
        expect(page.locator("#queue-rows .row-check")).to_have_count(0)
        expect(page.locator("#bulk-bar")).to_have_count(0)
        _row(page, incident).locator("td.col-status").click()
        expect(page.locator("#pane")).to_be_visible()
        expect(page.locator("#pane-title")).to_have_text(incident["displayName"])
        expect(page.locator("#pane-alerts li.pane-alert")).to_have_count(
            incident["alertCount"], timeout=STEP_MS
        )
        expect(page.locator("#pane-actions")).to_have_count(0)
        # Only the pane's close button (and the id, which copies)
        expect(page.locator("#pane button:not(.copyable)")).to_have_count(1)
        page.keyboard.press("x")  # checking rows is a responder's
        expect(page.locator("#bulk-bar")).to_have_count(0)
        no_script_errors(session.errors)
    finally:
        session.close()
