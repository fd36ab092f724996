"""The console in a real browser (Debian's Chromium driven by Playwright): an analyst's path
through the queue, an incident, its edits reaching Defender, live updates, hunting — and what
readers, tenant-scoped users, forged requests and signed-out visitors must not get.

One browser for the module; every wait is bounded. With ``XDRSYNC_SCREENSHOTS=1`` the tests
also write docs/screenshots/{queue,incident,hunting}.png (1440x900)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from browser import (
    STEP_MS,
    chromium_available,
    fetch_json,
    fetch_status,
    new_session,
    no_script_errors,
    shoot,
    signed_in,
)
from playwright.sync_api import Browser, expect

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


def _open_incidents(live: Any, tenant: str, count: int) -> list[dict[str, Any]]:
    """``count`` open incidents of ``tenant`` (from the API), least recently updated first,
    so each test edits its own."""
    client = live.client("admin")
    try:
        reply = client.get(
            "/api/v1/incidents",
            params={"tenant": tenant, "status": "active", "top": 100},
        )
        reply.raise_for_status()
        items: list[dict[str, Any]] = reply.json()["value"]
    finally:
        client.close()
    items = [i for i in items if not i["mergedInto"] and i["syncState"] == "synced"]
    assert len(items) >= count, f"{tenant} has only {len(items)} open incidents"
    return items[-count:]


@pytest.fixture(scope="module")
def picks(live_console: Any) -> dict[str, dict[str, Any]]:
    first, second = live_console.tenants[0], live_console.tenants[1]
    mine = _open_incidents(live_console, first, 5)
    theirs = _open_incidents(live_console, second, 1)
    return {
        "tags": mine[0],
        "browse": mine[1],
        "edit": mine[2],
        "portal": mine[3],
        "reader": mine[4],
        "second": theirs[0],
    }


def test_signed_out_visitor_is_sent_to_login(browser: Browser, live_console: Any) -> None:
    session = new_session(browser, live_console.url)
    try:
        page = session.page
        page.goto("/hunting")
        expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)hunting$"))
        expect(page.locator("#username")).to_be_visible()
        # A wrong password shows the error, escaped, on the login page.
        page.fill("#username", "rui")
        page.fill("#password", "<b>not it</b>")
        page.click("button[type=submit]")
        expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
        # The right one goes where the visitor was headed.
        name, password = live_console.users["reader"]
        page.fill("#username", name)
        page.fill("#password", password)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/hunting$"))
        # Signing out ends the session: the queue is behind the login page again.
        page.click(".usermenu summary")
        page.click(".logout-form button")
        expect(page).to_have_url(re.compile(r"/login$"))
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)$"))
        no_script_errors(session.errors)
    finally:
        session.close()


def test_a_call_the_ended_session_refuses_leaves_sign_out_at_the_login_page(
    browser: Browser, live_console: Any
) -> None:
    """A call the page has in flight when the user signs out is answered 401 by the ended
    session: it must not send the browser back to the login page with ``next`` set to the
    page just left (the sign-out's own navigation goes to the plain login page)."""
    session = signed_in(browser, live_console, "reader")
    try:
        page = session.page
        page.goto("/hunting")
        held: dict[str, Any] = {}
        page.route("**/api/v1/me", lambda route: held.setdefault("call", route))
        page.route("**/logout", lambda route: held.setdefault("logout", route))
        # A call through the pages' own client (the module instance the shell imports).
        page.evaluate(
            "() => { import('/static/js/common.js').then((m) => m.api('/api/v1/me').catch(() => {})); }"
        )
        page.click(".usermenu summary")
        page.click(".logout-form button")
        for _ in range(50):  # bounded: both requests reach their routes within 5 s
            if len(held) == 2:
                break
            page.wait_for_timeout(100)
        assert set(held) == {"call", "logout"}
        held["call"].fulfill(status=401, json={"detail": "signed out"})  # the ended session
        page.wait_for_timeout(300)
        held["logout"].continue_()
        expect(page).to_have_url(re.compile(r"/login$"))
        no_script_errors(session.errors)
    finally:
        session.close()


def test_queue_filters_live_in_the_url(browser: Browser, live_console: Any) -> None:
    session = signed_in(browser, live_console, "responder")
    try:
        page = session.page
        rows = page.locator("#queue-rows tr[data-id]")
        expect(rows.first).to_be_visible()
        expect(page.locator("#count-severity .count").first).to_be_visible()
        expect(page.locator("#overtime svg rect.bar").first).to_be_attached()
        shoot(page, "queue.png")

        button = page.locator(".multi[data-name=severity] .multi-btn")
        menu = page.locator(".multi[data-name=severity] .multi-menu")
        expect(button).to_have_attribute("aria-expanded", "false")
        button.click()
        expect(button).to_have_attribute("aria-expanded", "true")
        page.check(".multi[data-name=severity] input[value=high]")
        # Esc closes the menu from the keyboard, back on its button.
        page.keyboard.press("Escape")
        expect(menu).to_be_hidden()
        expect(button).to_have_attribute("aria-expanded", "false")
        expect(button).to_be_focused()
        expect(page).to_have_url(re.compile(r"[?&]severity=high"))
        expect(page.locator("#queue-status")).to_contain_text("high")
        expect(page.locator("#queue")).to_have_attribute("aria-busy", "false")
        badges = page.locator("#queue-rows .col-sev .badge")
        expect(badges.first).to_have_text("High")
        assert set(badges.all_inner_texts()) == {"High"}

        page.select_option("#f-owner", "unassigned")
        expect(page).to_have_url(re.compile(r"owner=unassigned"))
        # The view survives a reload: it is the URL.
        page.reload()
        expect(page.locator(".multi[data-name=severity] input[value=high]")).to_be_checked()
        expect(page.locator("#queue")).to_have_attribute("aria-busy", "false")
        expect(page.locator("#f-owner")).to_have_value("unassigned")
        expect(page.locator("#queue-rows .col-sev .badge").first).to_have_text("High")
        owners = page.locator("#queue-rows .col-owner").all_inner_texts()
        assert owners and set(owners) == {"unassigned"}

        # Sorting by a column is part of the URL too.
        page.click("th[data-sort=alertCount]")
        expect(page).to_have_url(re.compile(r"sort=-alertCount"))
        expect(page.locator("#queue")).to_have_attribute("aria-busy", "false")
        counts = [int(t) for t in page.locator("#queue-rows .col-alerts").all_inner_texts()]
        assert counts == sorted(counts, reverse=True)
        no_script_errors(session.errors)
    finally:
        session.close()


def test_incident_page_shows_alerts_entities_graph_timeline(
    browser: Browser, live_console: Any, picks: dict[str, dict[str, Any]]
) -> None:
    incident = picks["browse"]
    session = signed_in(browser, live_console, "responder")
    try:
        page = session.page
        page.fill("#q", incident["displayName"][:40])
        link = page.locator(f'#queue-rows tr[data-id="{incident["id"]}"] a.title-link')
        link.click()
        expect(page).to_have_url(re.compile(re.escape(f"/incidents/{incident['id']}") + "$"))
        expect(page.locator("#h-title")).to_have_text(incident["displayName"])
        expect(page.locator("#alerts-table tbody tr[data-alert]")).to_have_count(
            incident["alertCount"]
        )
        expect(page.locator("#entity-groups .entity").first).to_be_visible()
        nodes = page.locator("#graph-canvas .g-node")
        expect(nodes.first).to_be_attached()
        assert page.locator("#graph-canvas .g-node.alert").count() == incident["alertCount"]
        entity = page.locator("#graph-canvas .g-node.entity").first
        entity.click()
        expect(page.locator("#graph-details h4")).not_to_be_empty()
        expect(page.locator("#graph-details")).to_contain_text("In alerts")
        # From the keyboard too: an alert row and an entity card take focus, Enter picks.
        page.locator("#alerts-table tbody tr[data-alert]").first.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#graph-details")).to_contain_text("Severity")
        card = page.locator("#entity-groups .entity").first
        card.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#graph-details")).to_contain_text("In alerts")
        # With its key attributes (advanced hunting's names: DeviceName, AccountUpn, ...).
        expect(page.locator("#graph-details dt").nth(4)).not_to_have_text("In alerts")
        expect(page.locator("#timeline-list .tl-alert").first).to_be_visible()
        # Times are the browser's zone with UTC in the tooltip.
        title = page.locator("#h-created time").get_attribute("title") or ""
        assert "UTC" in title
        no_script_errors(session.errors)
    finally:
        session.close()


def test_the_audit_says_when_it_lists_only_the_newest(browser: Browser, live_console: Any) -> None:
    """The page lists an incident's newest 60 audit entries, and the API sends 200: the
    rest were cut without a word, and an analyst read the list as the whole record."""
    from datetime import UTC, datetime

    from xdrsync.hub import schema as s

    incident = _open_incidents(live_console, live_console.tenants[0], 6)[0]  # none else's
    entry = {
        "tenant_id": incident["tenantId"],
        "stream": "incidents",
        "entity_type": "incident",
        "entity_id": incident["incidentId"],
        "decision": "unchanged",
    }
    with live_console.hub.writing() as conn:
        conn.execute(s.audit.insert(), [{**entry, "at": datetime.now(UTC)}] * 250)
    client = live_console.client("reader")
    try:
        page_json = client.get(f"/api/v1/incidents/{incident['id']}").json()
    finally:
        client.close()
    total = page_json["auditTotal"]
    assert total >= 250 and len(page_json["audit"]) == 200
    session = signed_in(browser, live_console, "reader")
    try:
        page = session.page
        page.goto(f"/incidents/{incident['id']}")
        expect(page.locator("#audit-list li.hist")).to_have_count(60)
        expect(page.locator("#audit-more")).to_have_text(f"the newest 60 of {total} entries")
        no_script_errors(session.errors)
    finally:
        session.close()


def _shared_entity(live: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An incident page (from the API) and one of its entities that other incidents share."""
    client = live.client("admin")
    try:
        every = client.get("/api/v1/incidents", params={"top": 100}).json()["value"]
        for incident in every:
            page = client.get(f"/api/v1/incidents/{incident['id']}").json()
            for group in page["entities"].values():
                for entity in group:
                    if entity["otherIncidents"]:
                        return page, entity
    finally:
        client.close()
    raise AssertionError("the seeded console has no entity shared across incidents")


def test_an_entitys_also_in_link_opens_the_queue_of_its_incidents(
    browser: Browser, live_console: Any
) -> None:
    incident, entity = _shared_entity(live_console)
    session = signed_in(browser, live_console, "reader")
    try:
        page = session.page
        page.goto(f"/incidents/{incident['id']}")
        expect(page.locator("#entity-groups .entity").first).to_be_visible()
        named = page.locator(".entity-name", has_text=entity["displayName"] or entity["entityKey"])
        card = page.locator("#entity-groups .entity").filter(has=named).first
        card.locator(".also a").click()
        # The exact entity, in the incident's tenant (a text search of its name listed
        # other tenants' incidents and near-matches).
        expect(page).to_have_url(re.compile(r"[?&]entity=.+&tenant="))
        rows = page.locator("#queue-rows tr[data-id]")
        expect(rows).to_have_count(entity["otherIncidents"] + 1)
        expect(page.locator(f'#queue-rows tr[data-id="{incident["id"]}"]')).to_have_count(1)
        no_script_errors(session.errors)
    finally:
        session.close()


def test_a_merged_incidents_page_offers_no_edit_defender_would_refuse(
    browser: Browser, live_console: Any
) -> None:
    client = live_console.client("admin")
    try:
        every = client.get("/api/v1/incidents", params={"top": 500}).json()["value"]
    finally:
        client.close()
    merged = next((i for i in every if i["mergedInto"]), None)
    assert merged is not None, "the seeded console has an incident merged into another"
    session = signed_in(browser, live_console, "responder")
    try:
        page = session.page
        page.goto(f"/incidents/{merged['id']}")
        expect(page.locator("#h-merged")).to_contain_text("close it there")
        expect(page.locator("#actions")).to_be_hidden()
        page.locator("body").press("a")  # the assign-to-me key does nothing here
        expect(page.locator("#act-state")).to_be_empty()
        page.locator("#h-merged a").click()
        expect(page).to_have_url(re.compile(re.escape(f"/incidents/{merged['mergedInto']}") + "$"))
        expect(page.locator("#actions")).to_be_visible()
        no_script_errors(session.errors)
    finally:
        session.close()


def test_responder_assigns_classifies_and_comments(
    browser: Browser, live_console: Any, picks: dict[str, dict[str, Any]]
) -> None:
    incident = picks["edit"]
    tenant, defender_id = incident["tenant"], incident["incidentId"]
    session = signed_in(browser, live_console, "responder", f"/incidents/{incident['id']}")
    try:
        page = session.page
        expect(page.locator("#h-title")).to_have_text(incident["displayName"])
        page.fill("#act-assign input[name=assignee]", "ana@woodgrovebank.com")
        page.click("#act-assign button")
        # Pending first (unless Defender was quicker than the page), then confirmed.
        expect(page.locator("#act-state")).to_contain_text(
            re.compile("pending|confirmed"), timeout=STEP_MS
        )
        expect(page.locator("#h-owner")).to_have_text("ana@woodgrovebank.com")
        expect(page.locator("#act-state .tracked").last).to_contain_text(
            "confirmed", timeout=SYNC_MS
        )
        live_console.wait_for(
            lambda: (
                live_console.truth(tenant)[defender_id].get("assignedTo") == "ana@woodgrovebank.com"
            ),
            SYNC_MS / 1000,
            "the owner in Defender",
        )

        # Closing asks for a classification first.
        page.click("#act-close")
        page.click("#close-submit")
        expect(page.locator("#close-error")).to_be_visible()
        page.select_option("#close-classification", "truePositive")
        page.select_option("#close-determination", "phishing")
        page.fill("#close-comment", "Closed from the browser test <script>x</script>")
        page.click("#close-submit")
        expect(page.locator("#close-dialog")).not_to_be_visible()
        expect(page.locator("#h-status")).to_have_text("Resolved")
        expect(page.locator("#act-reopen")).to_be_visible()

        truth = live_console.wait_for(
            lambda: (
                (found := live_console.truth(tenant)[defender_id])["status"] == "resolved"
                and any("browser test" in c["comment"] for c in found.get("comments") or ())
                and found
            ),
            SYNC_MS / 1000,
            "the closing in Defender",
        )
        assert truth["classification"] == "truePositive"
        assert truth["determination"] == "phishing"
        # Every edit turns from pending to confirmed on the page, without a reload.
        edits = page.locator("#edit-list .edit")
        expect(edits.first).to_be_visible()
        expect(page.locator("#edit-list .edit.pending")).to_have_count(0, timeout=SYNC_MS)
        expect(page.locator("#edit-list .edit.confirmed")).to_have_count(
            edits.count(), timeout=SYNC_MS
        )
        # The comment is text, never markup.
        comment = page.locator("#comment-list .comment-body", has_text="browser test")
        expect(comment).to_have_text("Closed from the browser test <script>x</script>")
        shoot(page, "incident.png")
        no_script_errors(session.errors)
    finally:
        session.close()


def test_portal_edit_appears_without_reload(
    browser: Browser, live_console: Any, picks: dict[str, dict[str, Any]]
) -> None:
    incident = picks["portal"]
    tenant, defender_id = incident["tenant"], incident["incidentId"]
    session = signed_in(browser, live_console, "responder", f"/incidents/{incident['id']}")
    try:
        page = session.page
        expect(page.locator("#h-title")).to_have_text(incident["displayName"])
        queue = session.context.new_page()
        queue.goto("/")
        row = queue.locator(f'#queue-rows tr[data-id="{incident["id"]}"]')
        expect(queue.locator("#queue-rows tr[data-id]").first).to_be_visible()
        live_console.portal(
            tenant,
            defender_id,
            displayName="Renamed in the portal",
            comments=[{"comment": "Looked at it in the portal", "createdByDisplayName": "Ines"}],
        )
        expect(page.locator("#h-title")).to_have_text("Renamed in the portal", timeout=SYNC_MS)
        expect(page.locator("#comment-list")).to_contain_text(
            "Looked at it in the portal", timeout=SYNC_MS
        )
        expect(page.locator("#comment-list")).to_contain_text("in Defender")
        # The queue shows it too: the row in place, or a "new" indicator for it.
        expect(row.or_(queue.locator("#new-indicator"))).to_contain_text(
            re.compile("Renamed in the portal|new"), timeout=SYNC_MS
        )
        no_script_errors(session.errors)
    finally:
        session.close()


def test_tags_clicked_on_a_stale_page_keep_the_tags_added_in_the_portal(
    browser: Browser, live_console: Any, picks: dict[str, dict[str, Any]]
) -> None:
    """The page hears of no change (its live updates are held back) while the portal tags the
    incident and the hub reads it: a tag added or removed there changes only that tag."""
    incident = picks["tags"]
    tenant, defender_id = incident["tenant"], incident["incidentId"]
    api = live_console.client("admin")

    def hub_tags() -> set[str]:
        return set(api.get(f"/api/v1/incidents/{incident['id']}").json()["customTags"])

    def defender_tags() -> set[str]:
        return set(live_console.truth(tenant)[defender_id].get("customTags") or ())

    live_console.portal(tenant, defender_id, customTags=["old"])
    live_console.wait_for(lambda: hub_tags() == {"old"}, SYNC_MS / 1000, "the hub to read it")
    session = signed_in(browser, live_console, "responder")
    try:
        page = session.page
        page.route("**/api/v1/changes*", lambda route: route.fulfill(json={"seq": 1}))
        page.goto(f"/incidents/{incident['id']}")
        expect(page.locator("#h-tags")).to_have_text("old×")

        live_console.portal(tenant, defender_id, customTags=["old", "vip-exec"])
        live_console.wait_for(lambda: "vip-exec" in hub_tags(), SYNC_MS / 1000, "the hub")
        with page.expect_request(lambda r: r.method == "PATCH") as sent:
            page.fill("#act-tag input[name=tag]", "triaged")
            page.click("#act-tag button")
        live_console.wait_for(
            lambda: defender_tags() == {"old", "vip-exec", "triaged"},
            SYNC_MS / 1000,
            "the portal's tag kept beside the new one",
        )
        body = sent.value.post_data_json
        assert body["addTags"] == ["triaged"] and "customTags" not in body
        assert body["seen"]["assignedTo"] == incident["assignedTo"]  # what the page showed
        expect(page.locator("#act-state .tracked").last).to_contain_text(
            "confirmed", timeout=SYNC_MS
        )

        live_console.portal(tenant, defender_id, customTags=["old", "vip-exec", "triaged", "vip-2"])
        live_console.wait_for(lambda: "vip-2" in hub_tags(), SYNC_MS / 1000, "the hub")
        page.click("#h-tags button[aria-label='Remove tag old']")
        live_console.wait_for(
            lambda: defender_tags() == {"vip-exec", "triaged", "vip-2"},
            SYNC_MS / 1000,
            "only the tag removed",
        )
        no_script_errors(session.errors)
    finally:
        session.close()


def test_hunting_query_with_chart_and_errors(browser: Browser, live_console: Any) -> None:
    session = signed_in(browser, live_console, "reader", "/hunting")
    try:
        page = session.page
        expect(page.locator("#examples option").nth(1)).to_be_attached()
        editor = page.locator("#kql")
        editor.fill(
            "SecurityIncident\n| summarize arg_max(TimeGenerated, *) by IncidentNumber, TenantId\n"
            "| summarize Incidents = count() by Severity\n| render columnchart"
        )
        editor.press("Control+Enter")
        expect(page.locator("#results thead th").first).to_contain_text("Severity")
        expect(page.locator("#results thead th").nth(1)).to_contain_text("long")
        expect(page.locator("#results tbody tr").first).to_be_visible()
        expect(page.locator("#chart")).to_be_visible()
        expect(page.locator("#chart-box svg rect.bar").first).to_be_attached()
        total = sum(int(t) for t in page.locator("#results tbody td.num").all_inner_texts())
        assert total == 60  # both tenants' 30 incidents, each once
        with page.expect_download() as download:
            page.click("#dl-csv")
        assert download.value.suggested_filename.endswith(".csv")
        shoot(page, "hunting.png")

        editor.fill("SecurityIncident\n| where Severity ==\n| take 3")
        editor.press("Control+Enter")
        expect(page.locator("#query-error")).to_be_visible()
        expect(page.locator("#query-error .where")).to_contain_text("line")
        no_script_errors(session.errors)
    finally:
        session.close()


def test_reader_sees_no_actions_and_is_refused(
    browser: Browser, live_console: Any, picks: dict[str, dict[str, Any]]
) -> None:
    incident = picks["reader"]
    session = signed_in(browser, live_console, "reader", f"/incidents/{incident['id']}")
    try:
        page = session.page
        expect(page.locator("#h-title")).to_have_text(incident["displayName"])
        expect(page.locator("#actions")).to_have_count(0)
        expect(page.locator("#comment-form")).to_have_count(0)
        expect(page.locator("#h-tags button")).to_have_count(0)
        expect(page.locator(".mainnav")).not_to_contain_text("Connectors")
        path = f"/api/v1/incidents/{incident['id']}"
        assert fetch_status(page, "PATCH", path, {"assignedTo": "x@example.com"}) == 403
        assert fetch_status(page, "POST", f"{path}/comments", {"comment": "no"}) == 403
        page.goto("/connectors")
        expect(page.locator(".error-code")).to_have_text("403")
        no_script_errors(session.errors)
    finally:
        session.close()


def test_scoped_user_never_sees_another_tenant(
    browser: Browser, live_console: Any, picks: dict[str, dict[str, Any]]
) -> None:
    other = picks["browse"]  # in the first tenant; "scoped" sees the second only
    own = picks["second"]
    session = signed_in(browser, live_console, "scoped")
    try:
        page = session.page
        expect(page.locator("#queue-rows tr[data-id]").first).to_be_visible()
        tenants = set(page.locator("#queue-rows .col-tenant").all_inner_texts())
        assert tenants == {live_console.tenants[1]}

        response = page.goto(f"/incidents/{other['id']}")
        assert response is not None and response.status == 404
        expect(page.locator(".error-code")).to_have_text("404")
        assert fetch_status(page, "GET", f"/api/v1/incidents/{other['id']}") == 404
        assert (
            fetch_status(page, "PATCH", f"/api/v1/incidents/{other['id']}", {"status": "active"})
            == 404
        )

        page.goto(f"/incidents/{own['id']}")
        expect(page.locator("#h-title")).to_have_text(own["displayName"])

        answer = fetch_json(
            page, "POST", "/api/v1/query", {"query": "SecurityIncident | distinct TenantId"}
        )
        assert answer["status"] == 200
        ids = {row[0] for row in answer["body"]["rows"]}
        assert ids == {live_console.config.tenants[1].tenant_id}
        no_script_errors(session.errors)
    finally:
        session.close()


def test_request_without_csrf_token_is_refused(
    browser: Browser, live_console: Any, picks: dict[str, dict[str, Any]]
) -> None:
    incident = picks["browse"]
    session = signed_in(browser, live_console, "responder", f"/incidents/{incident['id']}")
    try:
        page = session.page
        expect(page.locator("#h-title")).to_have_text(incident["displayName"])
        path = f"/api/v1/incidents/{incident['id']}"
        assert fetch_status(page, "PATCH", path, {"status": "active"}, csrf=False) == 403
        assert fetch_status(page, "POST", f"{path}/comments", {"comment": "x"}, csrf=False) == 403
        assert fetch_status(page, "POST", "/api/v1/query", {"query": "print 1"}, csrf=False) == 403
        # The same request with the page's token goes through.
        assert fetch_status(page, "POST", "/api/v1/query", {"query": "print 1"}) == 200
        no_script_errors(session.errors)
    finally:
        session.close()
