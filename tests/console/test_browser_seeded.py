"""The console in a real browser over fixed data (a seeded console, no sync): closing never
picks a determination for the analyst, the status choices are Defender's, a count chip shows
what it counted, and the chart's days are UTC days whatever the analyst's zone."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser import (
    STEP_MS,
    VIEWPORT,
    chromium_available,
    login,
    no_script_errors,
    signed_in,
)
from consoledata import TENANT_A, TENANT_B, commit, incident_json
from playwright.sync_api import Browser, Page, expect
from seeded import SeededConsole, seeded_console

from xdrsync.hub import Hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("CI"),
        reason="needs /usr/bin/chromium (make test installs it)",
    ),
]

DAY = 60 * 24  # minutes
OPEN = ["active", "inProgress", "awaitingAction"]


def _populate(hub: Hub) -> None:
    no_severity = incident_json(TENANT_A, "5", updated=3 * DAY, severity="medium")
    no_severity["severity"] = None
    future = incident_json(TENANT_A, "6", updated=3 * DAY, status="resolved")
    future["severity"] = "unknownFutureValue"
    commit(
        hub,
        TENANT_A,
        [
            incident_json(TENANT_A, "1", updated=0, severity="high"),
            incident_json(TENANT_A, "2", updated=DAY, severity="high"),
            incident_json(TENANT_A, "3", updated=2 * DAY, severity="high", status="resolved"),
            incident_json(TENANT_A, "4", updated=3 * DAY, status="inProgress"),
            no_severity,
            future,
            incident_json(TENANT_A, "7", updated=3 * DAY, severity="low", status="awaitingAction"),
            incident_json(TENANT_A, "8", updated=DAY),
            incident_json(TENANT_A, "9", updated=DAY),
        ],
    )
    commit(hub, TENANT_B, [incident_json(TENANT_B, "1", updated=DAY, severity="high")])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("browser-seeded"), _populate) as console:
        yield console


def _sent_patch(page: Page, submit: str) -> Any:
    """The edit in the PATCH that clicking ``submit`` sends, without ``seen`` (what the page
    showed, docs/api.md), which every console edit carries."""
    with page.expect_request(
        lambda r: r.method == "PATCH" and "/api/v1/incidents/" in r.url
    ) as caught:
        page.click(submit)
    body = dict(caught.value.post_data_json)
    assert set(body.pop("seen")) == {"assignedTo", "status", "classification", "determination"}
    return body


def _row(page: Page, workspace_id: str) -> Any:
    return page.locator(f'#queue-rows tr[data-id="{workspace_id}"]')


def test_no_action_is_offered_before_the_incident_is_shown(
    browser: Browser, seeded: SeededConsole
) -> None:
    """The actions were on the page before the incident had loaded: a close clicked then
    went to Defender for an incident the analyst had not seen (the page sends what it
    showed, `seen`, and had shown nothing). They now appear once it is shown."""
    session = signed_in(browser, seeded, "responder", "/incidents/contoso~9")
    try:
        page = session.page
        page.route(re.compile(r".*/api/v1/incidents/contoso~9$"), lambda route: route.abort())
        page.goto("/incidents/contoso~9")
        expect(page.locator(".toast")).to_contain_text("Could not load the incident")
        expect(page.locator("#actions")).to_be_hidden()
        page.unroute(re.compile(r".*/api/v1/incidents/contoso~9$"))
        page.reload()
        expect(page.locator("#act-close")).to_be_visible()
    finally:
        session.close()


def test_closing_sends_no_determination_unless_one_is_picked(
    browser: Browser, seeded: SeededConsole
) -> None:
    session = signed_in(browser, seeded, "responder", "/incidents/contoso~8")
    try:
        page = session.page
        page.goto("/incidents/contoso~8")
        page.click("#act-close")
        page.select_option("#close-classification", "truePositive")
        determination = page.locator("#close-determination")
        expect(determination).to_have_value("")  # nothing chosen for the analyst
        expect(determination.locator("option").first).to_have_text(re.compile("—"))
        # What Defender's portal offers: not the determinations Microsoft deprecated.
        offered = determination.locator("option").evaluate_all("os => os.map(o => o.value)")
        assert offered == [
            "",
            "multiStagedAttack",
            "maliciousUserActivity",
            "compromisedAccount",
            "malware",
            "phishing",
            "unwantedSoftware",
            "other",
        ]
        body = _sent_patch(page, "#close-submit")
        assert body == {"status": "resolved", "classification": "truePositive"}

        page.goto("/incidents/contoso~9")
        page.click("#act-close")
        page.select_option("#close-classification", "truePositive")
        page.select_option("#close-determination", "malware")
        body = _sent_patch(page, "#close-submit")
        assert body["determination"] == "malware"

        # The queue's side pane and its bulk close: the same.
        page.goto("/?tenant=contoso")
        _row(page, "contoso~4").locator("td.col-status").click()
        expect(page.locator("#pane")).to_have_attribute("data-id", "contoso~4")
        page.click("#pane-close-open")
        page.select_option("#pane-classification", "falsePositive")
        expect(page.locator("#pane-determination")).to_have_value("")
        body = _sent_patch(page, "#pane-close-submit")
        assert body == {"status": "resolved", "classification": "falsePositive"}
        page.keyboard.press("Escape")

        _row(page, "contoso~2").locator("td.col-check").click()
        page.click("#bulk-close-open")
        page.select_option("#bulk-classification", "informationalExpectedActivity")
        expect(page.locator("#bulk-determination")).to_have_value("")
        body = _sent_patch(page, "#bulk-close-submit")
        assert body == {"status": "resolved", "classification": "informationalExpectedActivity"}
        no_script_errors(session.errors)
    finally:
        session.close()


def test_status_choices_are_the_ones_defender_has(browser: Browser, seeded: SeededConsole) -> None:
    session = signed_in(browser, seeded, "responder")
    try:
        page = session.page
        expect(page.locator("#count-status .count")).not_to_have_count(0)
        offered = page.locator('.multi[data-name="status"] input').evaluate_all(
            "boxes => boxes.map(b => b.value)"
        )
        assert offered == ["active", "inProgress", "awaitingAction", "resolved", "redirected"]
        chips = page.locator("#count-status .count-l").all_inner_texts()
        assert "New" not in chips and {"Active", "In progress", "Awaiting action"} <= set(chips)
        # Setting a status offers only what the server accepts (never awaitingAction).
        _row(page, "contoso~1").locator("td.col-status").click()
        settable = page.locator("#pane-status select option").evaluate_all(
            "options => options.map(o => o.value)"
        )
        assert settable == ["active", "inProgress"]
        no_script_errors(session.errors)
    finally:
        session.close()


def _chip(page: Page, label: str) -> Any:
    return page.locator("#count-severity .count", has=page.locator(".count-l", has_text=label))


@pytest.mark.parametrize(("label", "counted"), [("High", 3), ("Unknown", 1)])
def test_an_open_by_severity_chip_shows_what_it_counted(
    browser: Browser, seeded: SeededConsole, label: str, counted: int
) -> None:
    session = signed_in(browser, seeded, "reader")
    try:
        page = session.page
        expect(page.locator("#count-severity .count-label")).to_have_text("Open by severity")
        chip = _chip(page, label)
        expect(chip.locator(".count-n")).to_have_text(str(counted))
        chip.click()
        expect(page).to_have_url(re.compile(f"severity={label.lower()}"))
        for status in OPEN:
            expect(page).to_have_url(re.compile(f"status={status}"))
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(counted)
        expect(_chip(page, label)).to_have_class(re.compile("active"))
        # A second click goes back to every incident.
        _chip(page, label).click()
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(10)
        assert "status=" not in page.url and "severity=" not in page.url
        no_script_errors(session.errors)
    finally:
        session.close()


def test_the_chart_labels_utc_days_in_any_zone(browser: Browser, seeded: SeededConsole) -> None:
    # West of UTC, a UTC day's midnight is the evening before.
    context = browser.new_context(
        base_url=seeded.url, viewport=VIEWPORT, timezone_id="America/Los_Angeles", locale="en-GB"
    )
    context.set_default_timeout(STEP_MS)
    try:
        page = context.new_page()
        login(page, seeded, "reader")
        expect(page.locator("#overtime svg")).to_be_visible()
        labels = [
            t
            for t in page.locator("#overtime svg text.axis").all_text_contents()
            if re.search(r"[A-Za-z]", t)
        ]
        assert labels and labels[0] == "1 Nov", labels  # incidents from 1 Nov (UTC) on
        assert "31 Oct" not in labels
        expect(page.locator("#overtime-note")).to_contain_text("per UTC day")
        tip = page.locator("#overtime svg g.bar-group title").first.text_content()
        assert tip is not None and tip.startswith("1 Nov 2026 (UTC day)"), tip
    finally:
        context.close()


def test_a_bookmarked_tenant_that_left_shows_the_queue_with_a_message(
    browser: Browser, seeded: SeededConsole
) -> None:
    # The API refuses a tenant the user does not see (422): the page drops it from the view,
    # says so, and shows the queue of the rest.
    session = signed_in(browser, seeded, "reader", "/?tenant=northwind&tenant=fabrikam")
    try:
        page = session.page
        page.goto("/?tenant=northwind&tenant=fabrikam&status=active")
        notice = page.locator("#queue-notice")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("northwind")
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(1)
        expect(_row(page, "fabrikam~1")).to_be_visible()
        expect(page.locator("#queue-status")).to_contain_text("fabrikam")
        assert "northwind" not in page.url and "tenant=fabrikam" in page.url
        page.goto("/?tenant=northwind")  # the only tenant asked for: every one shown
        expect(page.locator("#queue-notice")).to_contain_text("every tenant you see")
        expect(page.locator("#queue-rows tr[data-id]")).to_have_count(10)
        expect(page.locator("#overtime-note")).to_contain_text("10 in view")
        page.select_option("#f-range", "90d")  # a change of the view: the note has had its say
        expect(page.locator("#queue-notice")).to_be_hidden()
        no_script_errors(session.errors)
    finally:
        session.close()
