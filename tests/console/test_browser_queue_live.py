"""The queue's live updates, order, severities and keys in a real browser (Debian's Chromium
driven by Playwright), over fixed data: a change reaches every loaded row, past the first
500 too, by asking for the changed incidents only; a row the sort now puts elsewhere is
marked and one click re-sorts, and rows tied across tenants keep the server's order; a
severity newer than this version counts, filters and sorts as High and shows Defender's
word; ``a`` assigns the selected incident to me.

Changes are committed to the hub and indexed by the test, as the sync service would."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium_available, no_script_errors, signed_in
from consoledata import TENANT_A, TENANT_B, commit, incident_json
from playwright.sync_api import Browser, Page, Request, expect
from seeded import SeededConsole, seeded_console

from xdrsync.hub import Hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("CI"),
        reason="needs /usr/bin/chromium (make test installs it)",
    ),
]

#: How long a change committed to the hub may take to show (the page polls every 2.5 s).
LIVE_MS = 15_000
MANY = 560  # incidents of the big world: more than the 500 the old refresh re-listed


def _many(hub: Hub) -> None:
    """Incidents 1..MANY of contoso, incident n updated n minutes in (newest: MANY)."""
    severities = ["high", "medium", "low", "informational"]
    commit(
        hub,
        TENANT_A,
        [
            incident_json(TENANT_A, str(n), updated=n, severity=severities[n % 4])
            for n in range(1, MANY + 1)
        ],
    )


def _few(hub: Hub) -> None:
    """contoso: every severity, a newer one (critical) and an unknown one among them;
    fabrikam: a severity-sorted list whose low incident 4 becomes high."""
    critical = incident_json(TENANT_A, "7", updated=70)
    critical["severity"] = "critical"
    future = incident_json(TENANT_A, "8", updated=80)
    future["severity"] = "unknownFutureValue"
    commit(
        hub,
        TENANT_A,
        [
            incident_json(TENANT_A, "1", updated=10, severity="high"),
            incident_json(TENANT_A, "2", updated=20, severity="high"),
            incident_json(TENANT_A, "3", updated=30, severity="medium"),
            incident_json(TENANT_A, "4", updated=40, severity="medium"),
            incident_json(TENANT_A, "5", updated=50, severity="low"),
            incident_json(TENANT_A, "6", updated=60, severity="low", status="resolved"),
            critical,
            future,
            incident_json(TENANT_A, "9", updated=90, severity="informational"),
            incident_json(TENANT_A, "10", updated=100, severity="medium"),
        ],
    )
    commit(
        hub,
        TENANT_B,
        [
            incident_json(TENANT_B, "1", updated=10, severity="high"),
            incident_json(TENANT_B, "2", updated=20, severity="medium"),
            incident_json(TENANT_B, "3", updated=30, severity="medium"),
            incident_json(TENANT_B, "4", updated=40, severity="low"),
            incident_json(TENANT_B, "5", updated=50, severity="low"),
            incident_json(TENANT_B, "6", updated=60, severity="informational"),
        ],
    )


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("queue-many"), _many) as console:
        yield console


@pytest.fixture(scope="module")
def few(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("queue-few"), _few) as console:
        yield console


def _open_queue(page: Page, path: str) -> None:
    """The queue at ``path``, loaded, with the live updates' starting position taken (a
    change committed before it would be behind the page's position, never shown)."""
    with page.expect_response(lambda r: "/api/v1/changes?after=0" in r.url):
        page.goto(path)
    expect(page.locator("#queue")).to_have_attribute("aria-busy", "false")


def _row(page: Page, workspace_id: str) -> Any:
    return page.locator(f'#queue-rows tr[data-id="{workspace_id}"]')


def _ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#queue-rows tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    return ids


def test_live_updates_reach_rows_loaded_past_the_first_500_asking_for_them_only(
    browser: Browser, many: SeededConsole
) -> None:
    session = signed_in(browser, many, "reader")
    try:
        page = session.page
        _open_queue(page, "/?tenant=contoso")
        clicked: list[str | None] = []  # the analyst's own requests count as use

        def by_hand(request: Request) -> None:
            if "/api/v1/incidents?" in request.url:
                clicked.append(request.headers.get("x-xdrsync-background"))

        page.on("request", by_hand)
        more = page.locator("#load-more")
        while more.is_visible():
            more.click()
            expect(more).to_be_enabled()
        page.remove_listener("request", by_hand)
        assert clicked and set(clicked) == {None}
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(MANY)
        # Incident 21 is row 540 (newest first); incident 300 is among the first 500.
        deep, shallow = "contoso~21", "contoso~300"
        assert _ids(page).index(deep) == MANY - 21
        expect(_row(page, deep).locator("td.col-owner")).to_have_text("unassigned")

        asked: list[str] = []
        # The live poll and what it refreshes are the page's own: marked, so they do not
        # keep an unattended session from idling out.
        background: set[str | None] = set()

        def listing(request: Request) -> None:
            if "/api/v1/incidents?" in request.url:
                asked.append(request.url)
            if "/api/v1/incidents" in request.url or "/api/v1/changes" in request.url:
                background.add(request.headers.get("x-xdrsync-background"))

        page.on("request", listing)
        # Edits in Defender that keep both where they are in the order (between their
        # neighbours' update times).
        commit(
            many.hub,
            TENANT_A,
            [
                incident_json(
                    TENANT_A, "21", updated=21.5, severity="low", owner="zoe@contoso.com"
                ),
                incident_json(TENANT_A, "300", updated=300.5, status="inProgress"),
            ],
        )
        many.index()
        # An analyst scrolled 540 rows down sees the change, as one on the first page does.
        expect(_row(page, deep).locator("td.col-owner")).to_have_text(
            "zoe@contoso.com", timeout=LIVE_MS
        )
        expect(_row(page, deep).locator("td.col-sev")).to_have_text("Low")
        expect(_row(page, shallow).locator("td.col-status")).to_have_text(
            "In progress", timeout=LIVE_MS
        )
        assert _ids(page).index(deep) == MANY - 21  # in place, nothing reloaded
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(MANY)
        # Without listing the queue again: only the changed incidents were asked for.
        assert asked, "the page asked for nothing"
        for url in asked:
            assert "id=" in url, f"the live update listed the queue again: {url}"
            assert "top=500" not in url
        assert background == {"1"}, background
        no_script_errors(session.errors)
    finally:
        session.close()


def test_a_row_the_sort_now_puts_elsewhere_is_marked_and_one_click_re_sorts(
    browser: Browser, few: SeededConsole
) -> None:
    session = signed_in(browser, few, "reader")
    try:
        page = session.page
        _open_queue(page, "/?tenant=fabrikam&sort=-severity")
        before = ["fabrikam~1", "fabrikam~3", "fabrikam~2", "fabrikam~5", "fabrikam~4"]
        assert _ids(page) == [*before, "fabrikam~6"]
        # The analyst is on incident 3 (second row) when incident 4 becomes high in Defender.
        page.keyboard.press("j")
        expect(_row(page, "fabrikam~3")).to_have_class(re.compile("selected"))
        commit(few.hub, TENANT_B, [incident_json(TENANT_B, "4", updated=45, severity="high")])
        few.index()
        changed = _row(page, "fabrikam~4")
        expect(changed.locator(".badge.sev")).to_have_text("High", timeout=LIVE_MS)
        # Not moved under the analyst's pointer: it stays, marked as out of order ...
        assert _ids(page) == [*before, "fabrikam~6"]
        expect(changed).to_have_class(re.compile("moved"))
        expect(changed.locator(".moved-mark")).to_have_text("↑")
        indicator = page.locator("#new-indicator")
        expect(indicator).to_be_visible()
        expect(indicator).to_have_text("1 out of order — re-sort")
        # ... and one click puts it where the sort puts it, the selection kept.
        indicator.click()
        assert _ids(page) == [
            "fabrikam~4",
            "fabrikam~1",
            "fabrikam~3",
            "fabrikam~2",
            "fabrikam~5",
            "fabrikam~6",
        ]
        expect(page.locator("#queue-rows .moved-mark")).to_have_count(0)
        expect(indicator).to_be_hidden()
        expect(_row(page, "fabrikam~3")).to_have_class(re.compile("selected"))
        expect(page.locator("#queue-rows tr.selected")).to_have_count(1)
        no_script_errors(session.errors)
    finally:
        session.close()


def _chip(page: Page, label: str) -> Any:
    return page.locator("#count-severity .count", has=page.locator(".count-l", has_text=label))


#: A tenant whose name sorts first and whose id sorts last.
TENANT_Z = "00000000-0000-0000-0000-0000000000ff"


def _tied(hub: Hub) -> None:
    """Incident 1 of contoso and of aardvark, updated at the same moment; contoso's 2 later."""
    commit(hub, TENANT_A, [incident_json(TENANT_A, "1", updated=10)])
    commit(hub, TENANT_Z, [incident_json(TENANT_Z, "1", updated=10)])
    commit(hub, TENANT_A, [incident_json(TENANT_A, "2", updated=20)])


def test_rows_tied_across_tenants_keep_the_servers_order_when_one_changes(
    browser: Browser, tmp_path: Path
) -> None:
    """The server breaks ties by tenant id: a change to a tied row that leaves its sort
    value alone leaves it in place, unmarked (the page broke ties by tenant name, and marked
    the row ↑ as out of order)."""
    with seeded_console(tmp_path, _tied, more_tenants=[("aardvark", TENANT_Z)]) as tied:
        session = signed_in(browser, tied, "responder")
        try:
            page = session.page
            _open_queue(page, "/")
            order = ["contoso~2", "aardvark~1", "contoso~1"]
            assert _ids(page) == order
            # Defender assigns contoso's incident 1 without a new lastUpdateDateTime.
            commit(
                tied.hub,
                TENANT_A,
                [incident_json(TENANT_A, "1", updated=10, owner="zoe@contoso.com")],
            )
            tied.index()
            changed = _row(page, "contoso~1")
            expect(changed.locator("td.col-owner")).to_have_text("zoe@contoso.com", timeout=LIVE_MS)
            expect(changed.locator(".moved-mark")).to_have_count(0)
            expect(page.locator("#new-indicator")).to_be_hidden()
            assert _ids(page) == order
            no_script_errors(session.errors)
        finally:
            session.close()


def test_a_newer_severity_counts_filters_and_sorts_as_high_and_shows_defenders_word(
    browser: Browser, few: SeededConsole
) -> None:
    session = signed_in(browser, few, "reader")
    try:
        page = session.page
        _open_queue(page, "/?tenant=contoso")
        # Open by severity: High counts 1, 2 and critical 7; Unknown only unknownFutureValue.
        expect(_chip(page, "High").locator(".count-n")).to_have_text("3")
        expect(_chip(page, "Unknown").locator(".count-n")).to_have_text("1")
        badge = _row(page, "contoso~7").locator(".badge.sev")
        expect(badge).to_have_text("Critical")  # Defender's word
        expect(badge).to_have_class(re.compile(r"\bsev-high\b"))
        _chip(page, "High").click()
        expect(page).to_have_url(re.compile("severity=high"))
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(3)
        expect(_row(page, "contoso~7")).to_have_count(1)
        _chip(page, "High").click()  # back to every incident
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(10)
        _chip(page, "Unknown").click()
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(1)
        expect(_row(page, "contoso~8")).to_have_count(1)
        # Sorted by severity, it is among the high ones, not below the informational one.
        _open_queue(page, "/?tenant=contoso&sort=-severity")
        assert _ids(page)[:3] == ["contoso~7", "contoso~2", "contoso~1"]
        # The incident page keeps Defender's word.
        page.goto("/incidents/contoso~7")
        expect(page.locator("#h-severity")).to_have_text("Critical")
        expect(page.locator("#h-severity")).to_have_attribute("title", re.compile("High"))
        no_script_errors(session.errors)
    finally:
        session.close()


def test_the_a_key_assigns_the_selected_incident_to_me(
    browser: Browser, few: SeededConsole
) -> None:
    session = signed_in(browser, few, "responder")
    try:
        page = session.page
        _open_queue(page, "/?tenant=contoso")
        assert _ids(page)[:2] == ["contoso~10", "contoso~9"]
        page.keyboard.press("j")  # the second row, incident 9; no pane open
        expect(_row(page, "contoso~9")).to_have_class(re.compile("selected"))
        with page.expect_request(
            lambda r: r.method == "PATCH" and r.url.endswith("/api/v1/incidents/contoso~9")
        ) as caught:
            page.keyboard.press("a")
        body = caught.value.post_data_json
        assert body["assignedTo"] == "Rui@Contoso.com"
        assert body["seen"]["assignedTo"] is None  # what the row showed
        expect(_row(page, "contoso~9").locator("td.col-owner")).to_have_text(
            "Rui@Contoso.com", timeout=LIVE_MS
        )
        no_script_errors(session.errors)
    finally:
        session.close()


def test_the_a_key_sends_nothing_for_an_incident_page_that_did_not_load(
    browser: Browser, few: SeededConsole
) -> None:
    """Before the page knows the incident (or when it could not read it), it cannot tell
    whether it is merged away or already mine, nor send what it showed: `a` does nothing."""
    session = signed_in(browser, few, "responder")
    try:
        page = session.page
        page.route(
            "**/api/v1/incidents/contoso~10",
            lambda route: (
                route.fulfill(status=503, json={"detail": "busy"})
                if route.request.method == "GET"
                else route.continue_()
            ),
        )
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.url) if r.method == "PATCH" else None)
        page.goto("/incidents/contoso~10")
        expect(page.locator("#toasts")).to_contain_text("Could not load the incident")
        page.locator("body").press("a")
        page.wait_for_timeout(500)
        assert sent == []
        expect(page.locator("#act-assign-me")).to_be_disabled()
    finally:
        session.close()
