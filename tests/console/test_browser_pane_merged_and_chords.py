"""The queue's side pane on an incident merged into another, and the `g` chord, in a real
browser (Debian's Chromium driven by Playwright) over fixed data: the pane offers no edit
Defender would refuse and points to the survivor, as the incident's page does, and no edit at
all while the next incident loads; `g` followed by
a key that names no destination does nothing (it never reaches the page's own shortcuts)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser import chromium_available, no_script_errors, signed_in
from consoledata import TENANT_A, commit, incident_json
from playwright.sync_api import Browser, Page, Request, Route, expect
from seeded import SeededConsole, seeded_console

from xdrsync.hub import Hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("CI"),
        reason="needs /usr/bin/chromium (make test installs it)",
    ),
]


def _merged(hub: Hub) -> None:
    """contoso: incident 2 merged into incident 1 (the survivor), and incident 3, newest, on
    its own (the queue, newest first: 3, 2, 1)."""
    commit(
        hub,
        TENANT_A,
        [
            incident_json(TENANT_A, "1", updated=10, severity="high"),
            incident_json(TENANT_A, "2", updated=20, status="redirected", redirect="1"),
            incident_json(TENANT_A, "3", updated=30),
        ],
    )


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("pane-merged"), _merged) as console:
        yield console


def _open_queue(page: Page) -> None:
    page.goto("/?tenant=contoso")
    expect(page.locator("#queue")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#queue-rows tr[data-id]")).to_have_count(3)


def _row(page: Page, workspace_id: str) -> Any:
    return page.locator(f'#queue-rows tr[data-id="{workspace_id}"]')


def _patches(page: Page) -> list[str]:
    """The PATCH requests the page sends from now on."""
    sent: list[str] = []

    def caught(request: Request) -> None:
        if request.method == "PATCH":
            sent.append(request.url)

    page.on("request", caught)
    return sent


def test_the_pane_offers_no_edit_of_a_merged_incident_and_points_to_the_survivor(
    browser: Browser, merged: SeededConsole
) -> None:
    session = signed_in(browser, merged, "responder")
    try:
        page = session.page
        _open_queue(page)
        sent = _patches(page)
        _row(page, "contoso~2").locator("td.col-status").click()
        pane = page.locator("#pane")
        expect(page.locator("#pane-title")).to_have_text("Incident 2")
        expect(pane).to_have_attribute("aria-busy", "false")
        # No assign, status or close: Defender refuses edits of an incident merged away ...
        expect(page.locator("#pane-actions")).to_be_hidden()
        for action in ("#pane-assign-me", "#pane-assign", "#pane-status", "#pane-close-open"):
            expect(page.locator(action)).to_be_hidden()
        # ... but a pointer to the incident it was merged into, to act there.
        pointer = page.locator("#pane-merged")
        expect(pointer).to_be_visible()
        expect(pointer).to_contain_text("Merged into contoso~1")
        expect(pointer).to_contain_text("close it there")
        expect(page.locator("#pane-survivor")).to_have_attribute("href", "/incidents/contoso~1")
        # Even a click that reaches the hidden button (a script, a stale row) sends nothing.
        page.locator("#pane-assign-me").dispatch_event("click")
        expect(page.locator("#toasts")).to_contain_text("was merged into contoso~1")
        page.wait_for_timeout(500)
        assert sent == [], f"an edit of the merged incident was sent: {sent}"

        # The pane follows the selection to the survivor: its actions are back, and it names
        # the incident merged into it.
        page.keyboard.press("j")
        expect(page.locator("#pane-title")).to_have_text("Incident 1")
        expect(page.locator("#pane-actions")).to_be_visible()
        expect(page.locator("#pane-assign-me")).to_be_enabled()
        expect(pointer).to_have_text("Merged from contoso~2.")

        # Back on the merged one, the pointer leads to the survivor's page.
        page.keyboard.press("k")
        expect(page.locator("#pane-title")).to_have_text("Incident 2")
        expect(page.locator("#pane-actions")).to_be_hidden()
        page.evaluate("document.getElementById('toasts').replaceChildren()")
        page.locator("#pane-survivor").click()
        expect(page).to_have_url(re.compile(r"/incidents/contoso~1$"))
        assert sent == []
        no_script_errors(session.errors)
    finally:
        session.close()

    reader = signed_in(browser, merged, "reader")
    try:
        page = reader.page
        _open_queue(page)
        _row(page, "contoso~2").locator("td.col-status").click()
        expect(page.locator("#pane-title")).to_have_text("Incident 2")
        expect(page.locator("#pane-merged")).to_contain_text("Merged into contoso~1")
        expect(page.locator("#pane-merged")).not_to_contain_text("close it there")
        no_script_errors(reader.errors)
    finally:
        reader.close()


def test_the_pane_offers_no_action_while_the_next_incident_loads(
    browser: Browser, merged: SeededConsole
) -> None:
    """Moving from one incident to the next, the pane hides the actions until the next has
    loaded: they would otherwise stand under the next one's "Loading…" title and act on
    nothing."""
    session = signed_in(browser, merged, "responder")
    try:
        page = session.page
        _open_queue(page)
        _row(page, "contoso~1").locator("td.col-status").click()
        expect(page.locator("#pane-title")).to_have_text("Incident 1")
        actions = page.locator("#pane-actions")
        expect(actions).to_be_visible()
        held: list[Route] = []
        page.route("**/api/v1/incidents/contoso~3", lambda route: held.append(route))
        sent = _patches(page)
        _row(page, "contoso~3").locator("td.col-status").click()
        expect(page.locator("#pane-title")).to_have_text("Loading…")
        expect(page.locator("#pane")).to_have_attribute("aria-busy", "true")
        expect(actions).to_be_hidden()
        # A click that reaches the hidden button anyway (a script) is refused in the page.
        page.locator("#pane-assign-me").dispatch_event("click")
        expect(page.locator("#toasts")).to_contain_text("has not loaded yet")
        # Its answer comes: the actions are back, for incident 3.
        deadline = time.monotonic() + 30  # the request reaches the route in the page's turns
        while not held and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert len(held) == 1, held
        held[0].continue_()
        expect(page.locator("#pane-title")).to_have_text("Incident 3")
        expect(actions).to_be_visible()
        expect(page.locator("#pane-assign-me")).to_be_enabled()
        page.unroute("**/api/v1/incidents/contoso~3")
        # (Nothing is assigned here: the other tests of this module share its incidents.)
        assert sent == [], sent
        no_script_errors(session.errors)
    finally:
        session.close()


def test_g_then_a_key_that_names_no_destination_does_nothing(
    browser: Browser, merged: SeededConsole
) -> None:
    session = signed_in(browser, merged, "responder")
    try:
        page = session.page
        _open_queue(page)
        first = _row(page, "contoso~3")
        expect(first).to_have_class(re.compile("selected"))
        sent = _patches(page)
        # `a` assigns the selected incident to me, `j` moves, `x` checks, `p` opens the pane:
        # after `g`, none of them does anything.
        for key in ("a", "j", "x", "p"):
            page.keyboard.press("g")
            page.keyboard.press(key)
        page.wait_for_timeout(500)
        assert sent == [], f"`g` then a key sent an edit: {sent}"
        expect(first).to_have_class(re.compile("selected"))
        expect(page.locator("#queue-rows tr.selected")).to_have_count(1)
        expect(first.locator(".row-check")).not_to_be_checked()
        expect(page.locator("#pane")).to_be_hidden()
        expect(first.locator("td.col-owner")).to_have_text("unassigned")
        # The chord is over: the same key on its own does what it always did ...
        with page.expect_request(
            lambda r: r.method == "PATCH" and r.url.endswith("/api/v1/incidents/contoso~3")
        ):
            page.keyboard.press("a")
        # ... and `g` then a destination still goes there.
        page.keyboard.press("g")
        page.keyboard.press("h")
        expect(page).to_have_url(re.compile(r"/hunting$"))
        no_script_errors(session.errors)
    finally:
        session.close()
