"""The REST API against a live console: every endpoint, every way in and every refusal."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from live import LiveConsole
from prometheus_client.parser import text_string_to_metric_families

from xdrsync.console.app import MAX_BODY
from xdrsync.models.enums import ServiceSource

API = "/api/v1"


def _first(live: LiveConsole, client: httpx.Client, tenant: str, **params: Any) -> dict[str, Any]:
    reply = client.get(f"{API}/incidents", params={"tenant": tenant, "top": 200, **params})
    assert reply.status_code == 200, reply.text
    open_ones = [
        i for i in reply.json()["value"] if i["status"] == "active" and not i["mergedInto"]
    ]
    assert open_ones, "the emulator has open incidents"
    return dict(open_ones[0])


# -- ways in ------------------------------------------------------------------------------


def test_without_credentials_the_api_answers_401_and_pages_send_to_the_login(
    live_console: LiveConsole,
) -> None:
    with httpx.Client(base_url=live_console.url, timeout=30) as anonymous:
        for path in (
            "/me",
            "/incidents",
            "/incidents/stats",
            "/health",
            "/conflicts",
            "/changes",
            "/entities",
        ):
            assert anonymous.get(API + path).status_code == 401, path
        assert anonymous.post(f"{API}/query", json={"query": "print 1"}).status_code == 401
        page = anonymous.get("/", headers={"accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login?next=")
        assert anonymous.get("/login").status_code == 200
        assert anonymous.get("/healthz").json()["status"] == "ok"
        bad = anonymous.get(f"{API}/me", headers={"authorization": "Bearer xdr_not-a-token"})
        assert bad.status_code == 401


def test_a_wrong_password_is_refused_and_logout_ends_the_session(
    live_console: LiveConsole,
) -> None:
    with httpx.Client(base_url=live_console.url, timeout=30) as client:
        reply = client.post("/login", data={"username": "rita", "password": "wrong password!"})
        assert reply.status_code == 401
        assert "xdrsync_session" not in client.cookies
    client = live_console.client("reader")
    cookie = client.cookies["xdrsync_session"]
    assert client.get(f"{API}/me").json()["name"] == "rita"
    assert client.post("/logout").status_code == 303
    with httpx.Client(base_url=live_console.url, timeout=30) as replay:
        replay.cookies.set("xdrsync_session", cookie)
        assert replay.get(f"{API}/me").status_code == 401


def test_login_only_goes_on_to_a_page_of_this_site(live_console: LiveConsole) -> None:
    name, password = live_console.users["reader"]
    with httpx.Client(base_url=live_console.url, timeout=30) as client:
        for target, expected in (
            ("/hunting", "/hunting"),
            ("https://evil.example/", "/"),
            ("//evil.example/x", "/"),
            ("/\\evil.example/x", "/"),
            ("/\tevil", "/"),
        ):
            reply = client.post(
                "/login", data={"username": name, "password": password, "next": target}
            )
            assert reply.headers["location"] == expected


def test_a_state_change_without_the_csrf_token_or_from_another_site_is_refused(
    live_console: LiveConsole,
) -> None:
    client = live_console.client("responder")
    incident = _first(live_console, client, live_console.tenants[0])
    path = f"{API}/incidents/{incident['id']}/comments"
    token = client.headers.pop("X-CSRF-Token")
    assert client.post(path, json={"comment": "no token"}).status_code == 403
    client.headers["X-CSRF-Token"] = "wrong"
    assert client.post(path, json={"comment": "wrong token"}).status_code == 403
    client.headers["X-CSRF-Token"] = token
    crossed = client.post(
        path, json={"comment": "cross-site"}, headers={"origin": "https://evil.example"}
    )
    assert crossed.status_code == 403
    assert client.post("/logout", headers={"X-CSRF-Token": "wrong"}).status_code == 403


def test_a_bearer_token_needs_no_csrf_token_and_stops_when_revoked(
    live_console: LiveConsole,
) -> None:
    from xdrsync.console.accounts import Accounts

    token = live_console.token("responder")
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=live_console.url, timeout=30, headers=headers) as script:
        me = script.get(f"{API}/me").json()
        assert me["name"] == "rui" and me["csrfToken"] is None
        incident = _first(live_console, script, live_console.tenants[0])
        reply = script.post(
            f"{API}/incidents/{incident['id']}/comments", json={"comment": "from a script"}
        )
        assert reply.status_code == 202, reply.text
        assert reply.json()["edits"][0]["origin"] == "api"
        accounts = Accounts(live_console.hub)
        (info,) = [t for t in accounts.tokens("rui") if t.revoked_at is None][-1:]
        accounts.revoke_token(info.id)
        assert script.get(f"{API}/me").status_code == 401


def test_a_body_over_1_mib_is_refused_before_it_is_read(live_console: LiveConsole) -> None:
    path = f"{API}/incidents/{live_console.tenants[0]}~1/comments"
    json_type = {"content-type": "application/json"}
    too_large = {"detail": f"the request body is larger than {MAX_BODY} bytes"}
    with httpx.Client(base_url=live_console.url, timeout=60) as anonymous:
        # The largest bodies the API takes, every character escaped (12 bytes), are read:
        # they get as far as the sign-in check.
        for route, field, length in ((path, "comment", 30_000), (f"{API}/query", "query", 65_536)):
            largest = json.dumps({field: "\U0001f600" * length}).encode()
            assert len(largest) > 12 * length
            assert anonymous.post(route, content=largest, headers=json_type).status_code == 401
        declared = anonymous.post(path, content=b"0" * (MAX_BODY + 1), headers=json_type)
        assert declared.status_code == 413 and declared.json() == too_large
        assert declared.headers["x-content-type-options"] == "nosniff"
        sent = 0

        def chunked() -> Iterator[bytes]:  # 200 MiB without a Content-Length
            nonlocal sent
            for _ in range(200 * 16):
                sent += 65_536
                yield b"0" * 65_536

        streamed = anonymous.post(path, content=chunked(), headers=json_type)
        assert streamed.status_code == 413 and streamed.json() == too_large
        assert sent < 32 * MAX_BODY  # refused as it went past the limit, not at its end
        login = anonymous.post(
            "/login",
            content=chunked(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert login.status_code == 413


def test_every_answer_carries_the_security_headers(live_console: LiveConsole) -> None:
    client = live_console.client("reader")
    for path in ("/", f"{API}/me", "/login"):
        headers = client.get(path).headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


# -- roles and tenants ---------------------------------------------------------------------


def test_a_reader_reads_everything_and_changes_nothing(live_console: LiveConsole) -> None:
    client = live_console.client("reader")
    incident = _first(live_console, client, live_console.tenants[0])
    path = f"{API}/incidents/{incident['id']}"
    assert client.get(path).status_code == 200
    assert client.patch(path, json={"status": "resolved"}).status_code == 403
    assert client.post(f"{path}/comments", json={"comment": "x"}).status_code == 403
    alert = client.get(path).json()["alerts"][0]["id"]
    assert client.patch(f"{API}/alerts/{alert}", json={"status": "resolved"}).status_code == 403
    resolve = client.post(f"{API}/conflicts/1/resolve", json={"take": "defender"})
    assert resolve.status_code == 403


def test_a_scoped_user_never_sees_another_tenants_records(live_console: LiveConsole) -> None:
    first, second = live_console.tenants
    scoped = live_console.client("scoped")
    admin = live_console.client("admin")
    theirs = _first(live_console, admin, first)
    assert scoped.get(f"{API}/me").json()["tenants"] == [second]
    listed = scoped.get(f"{API}/incidents", params={"top": 500}).json()["value"]
    assert listed and {i["tenant"] for i in listed} == {second}
    # Asked for by name, the other tenant is refused as one that does not exist (never an
    # empty list a script reads as "no incidents"), and the answer names only theirs.
    asked = scoped.get(f"{API}/incidents", params={"tenant": first})
    nowhere = scoped.get(f"{API}/incidents", params={"tenant": "nowhere"})
    assert asked.status_code == nowhere.status_code == 422
    assert asked.text.replace(first, "X") == nowhere.text.replace("nowhere", "X")
    for path in (f"{API}/incidents/{theirs['id']}", f"{API}/incidents/{first}~999999"):
        assert scoped.get(path).status_code == 404  # the same answer: no probing
    assert (
        scoped.patch(f"{API}/incidents/{theirs['id']}", json={"status": "resolved"}).status_code
        == 404
    )
    alert = admin.get(f"{API}/incidents/{theirs['id']}").json()["alerts"][0]["id"]
    assert scoped.get(f"{API}/alerts/{alert}").status_code == 404
    stats = scoped.get(f"{API}/incidents/stats").json()
    assert sum(stats["bySeverity"].values()) == len(listed)
    health = scoped.get(f"{API}/health").text
    first_id = live_console.config.tenants[0].tenant_id
    assert first_id not in health and f'"{first}"' not in health
    rows = scoped.post(
        f"{API}/query",
        json={"query": "SecurityIncident | summarize count() by TenantId"},
    ).json()["rows"]
    assert [r[0] for r in rows] == [live_console.config.tenants[1].tenant_id]
    entities = scoped.get(f"{API}/entities", params={"top": 500}).json()["value"]
    assert all(e["tenant"] == second for e in entities)


# -- the queue, incidents, alerts, entities -------------------------------------------------


def test_the_queue_filters_sorts_and_pages_with_next_links(live_console: LiveConsole) -> None:
    client = live_console.client("admin")
    every = client.get(f"{API}/incidents", params={"top": 500}).json()["value"]
    assert len(every) >= 50
    assert {"id", "incidentId", "tenant", "syncState", "alertCount"} <= set(every[0])
    assert len({i["id"] for i in every}) == len(every)
    paged: list[dict[str, Any]] = []
    link: str | None = f"{API}/incidents?top=7&sort=-severity"
    while link:
        page = client.get(link).json()
        paged.extend(page["value"])
        link = page["nextLink"]
    assert sorted(i["id"] for i in paged) == sorted(i["id"] for i in every)
    high = client.get(f"{API}/incidents", params={"severity": "high", "top": 500}).json()
    assert high["value"] and all(i["severity"] == "high" for i in high["value"])
    title = every[3]["displayName"]
    found = client.get(f"{API}/incidents", params={"search": title[:20].upper()}).json()
    assert every[3]["id"] in {i["id"] for i in found["value"]}
    assert client.get(f"{API}/incidents", params={"sort": "bogus"}).status_code == 422
    assert client.get(f"{API}/incidents", params={"top": 501}).status_code == 422
    assert client.get(f"{API}/incidents", params={"skiptoken": "garbage"}).status_code == 422


@pytest.mark.parametrize("path", ["/incidents", "/incidents/stats"])
def test_from_and_to_need_a_time_zone(live_console: LiveConsole, path: str) -> None:
    client = live_console.client("reader")
    for name in ("from", "to"):
        for moment in ("2020-01-01T00:00:00", "2020-01-01"):
            reply = client.get(API + path, params={name: moment})
            assert reply.status_code == 422, reply.text
            (problem,) = reply.json()["detail"]
            assert problem["loc"] == ["query", name]
            assert "timezone" in problem["msg"]
        reply = client.get(API + path, params={name: "0001-01-01T00:00:00+01:00"})
        assert reply.status_code == 422  # before the first time there is in UTC
    for moment in ("2020-01-01T00:00:00Z", "2020-01-01T02:00:00+02:00"):
        assert client.get(API + path, params={"from": moment}).status_code == 200
    every = client.get(API + path, params={"from": "2020-01-01T00:00:00Z"}).json()
    none = client.get(API + path, params={"to": "2020-01-01T01:00:00+01:00"}).json()
    if path == "/incidents":
        assert every["value"] and not none["value"]
    else:
        assert every["total"] > 0 and none["total"] == 0


def test_an_incident_shows_its_alerts_entities_graph_timeline_and_history(
    live_console: LiveConsole,
) -> None:
    client = live_console.client("reader")
    incident = _first(live_console, client, live_console.tenants[0])
    detail = client.get(f"{API}/incidents/{incident['id']}").json()
    assert detail["id"] == incident["id"] and detail["incidentId"] == incident["incidentId"]
    assert detail["alerts"] and detail["entities"] and detail["timeline"]
    nodes = {n["id"] for n in detail["graph"]["nodes"]}
    assert all(e["source"] in nodes and e["target"] in nodes for e in detail["graph"]["edges"])
    alert = client.get(f"{API}/alerts/{detail['alerts'][0]['id']}").json()
    assert alert["id"] == detail["alerts"][0]["id"]
    assert client.get(f"{API}/incidents/{live_console.tenants[0]}~nope").status_code == 404
    assert client.get(f"{API}/incidents/no-separator").status_code == 404


def test_edits_and_comments_reach_defender_and_are_confirmed(live_console: LiveConsole) -> None:
    client = live_console.client("responder")
    tenant = live_console.tenants[0]
    incident = _first(live_console, client, tenant)
    path = f"{API}/incidents/{incident['id']}"
    tags = [*incident["customTags"], "console-test"]
    reply = client.patch(path, json={"assignedTo": "rui@contoso.com", "customTags": tags})
    assert reply.status_code == 202, reply.text
    edits = reply.json()["edits"]
    assert {e["field"] for e in edits} >= {"assignedTo"}
    assert all(e["state"] == "pending" and e["author"] == "rui" for e in edits)
    comment = client.post(f"{path}/comments", json={"comment": "looked at it"})
    assert comment.status_code == 202

    def confirmed() -> bool:
        shown = client.get(path).json()
        return all(e["state"] == "confirmed" for e in shown["edits"] if e["author"] == "rui")

    live_console.wait_for(confirmed, 30, "the edits to be confirmed")
    truth = live_console.truth(tenant)[incident["incidentId"]]
    assert truth["assignedTo"] == "rui@contoso.com"
    assert "console-test" in truth["customTags"]
    assert any(c["comment"] == "looked at it" for c in truth["comments"])
    refused = client.patch(path, json={"status": "closed-ish"})
    assert refused.status_code == 422
    assert client.patch(path, json={"severity": "low"}).status_code == 422  # not editable


def test_an_alert_edit_is_queued(live_console: LiveConsole) -> None:
    client = live_console.client("responder")
    incident = _first(live_console, client, live_console.tenants[0])
    alert = client.get(f"{API}/incidents/{incident['id']}").json()["alerts"][0]["id"]
    reply = client.patch(f"{API}/alerts/{alert}", json={"status": "inProgress"})
    assert reply.status_code == 202, reply.text
    assert reply.json()["edits"][0]["target"] == alert


def test_entities_list_the_incidents_that_share_them(live_console: LiveConsole) -> None:
    client = live_console.client("reader")
    rows = client.get(f"{API}/entities", params={"top": 20}).json()["value"]
    assert rows and rows[0]["incidentCount"] >= rows[-1]["incidentCount"]
    assert all(len(r["incidents"]) <= r["incidentCount"] for r in rows)


# -- hunting, conflicts, health, live changes, metrics -------------------------------------


def test_a_query_answers_typed_columns_and_a_refused_one_a_clear_error(
    live_console: LiveConsole,
) -> None:
    client = live_console.client("reader")
    reply = client.post(f"{API}/query", json={"query": "SecurityIncident | count"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["columns"][0]["name"] == "Count" and body["rows"][0][0] > 0
    bad = client.post(f"{API}/query", json={"query": "SecurityIncident | where"})
    assert bad.status_code == 400 and bad.json()["error"]["message"]
    refused = client.post(f"{API}/query", json={"query": ".show databases"})
    assert refused.status_code == 400
    examples = client.get(f"{API}/query/examples").json()["value"]
    assert examples and all(e["query"] for e in examples)


def test_conflicts_list_and_unknown_ones_are_not_resolved(live_console: LiveConsole) -> None:
    client = live_console.client("responder")
    assert client.get(f"{API}/conflicts").json()["value"] == []
    missing = client.post(f"{API}/conflicts/999999/resolve", json={"take": "defender"})
    assert missing.status_code == 404
    assert client.post(f"{API}/conflicts/1/resolve", json={"take": "x"}).status_code == 422


def test_health_changes_and_metrics(live_console: LiveConsole) -> None:
    client = live_console.client("reader")
    health = client.get(f"{API}/health").json()
    assert health
    first = client.get(f"{API}/changes").json()
    assert first["seq"] > 0 and first["incidents"] == []
    tenant = live_console.tenants[0]
    incident = _first(live_console, client, tenant)
    live_console.portal(tenant, incident["incidentId"], customTags=["from-the-portal"])

    def changed() -> bool:
        answer = client.get(f"{API}/changes", params={"after": first["seq"]}).json()
        return incident["id"] in answer["incidents"]

    live_console.wait_for(changed, 30, "the portal edit to show in /changes")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "xdrsync_" in metrics.text


def test_metrics_show_a_scoped_user_only_their_tenants(live_console: LiveConsole) -> None:
    first, second = live_console.tenants

    def tenants(client: httpx.Client) -> set[str]:
        reply = client.get("/metrics")
        assert reply.status_code == 200
        return {
            sample.labels["tenant"]
            for family in text_string_to_metric_families(reply.text)
            for sample in family.samples
            if "tenant" in sample.labels
        }

    scoped = live_console.client("scoped")
    assert tenants(scoped) == {second}
    assert first not in scoped.get("/metrics").text
    assert tenants(live_console.client("admin")) == {first, second}
    with httpx.Client(base_url=live_console.url, timeout=30) as scraper:  # loopback, no sign-in
        assert tenants(scraper) == {first, second}


def test_no_secret_appears_in_any_answer(live_console: LiveConsole) -> None:
    client = live_console.client("admin")
    secrets = [
        t.client_secret.get_secret_value()
        for t in live_console.config.tenants
        if t.client_secret is not None
    ]
    pages = [client.get(p).text for p in ("/", "/health", "/connectors", "/hunting")]
    answers = [client.get(API + p).text for p in ("/health", "/me", "/incidents")]
    for text in [*pages, *answers, client.get("/metrics").text]:
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize("role", ["reader", "responder"])
def test_only_admins_open_the_connectors_page(live_console: LiveConsole, role: str) -> None:
    assert live_console.client(role).get("/connectors").status_code == 403
    assert live_console.client("admin").get("/connectors").status_code == 200


def test_an_admin_checks_a_connectors_sign_in_permissions_and_reads(
    live_console: LiveConsole,
) -> None:
    tenant = live_console.tenants[0]
    path = f"{API}/connectors/{tenant}/check"
    assert live_console.client("responder").post(path).status_code == 403
    admin = live_console.client("admin")
    answer = admin.post(path).json()
    assert answer["ok"] and answer["token"]["ok"] and answer["missing"] == []
    assert {p["state"] for p in answer["permissions"]} <= {"granted", "implied"}
    assert answer["incidents"]["state"] == answer["alerts"]["state"] == "ok"
    assert admin.post(f"{API}/connectors/nobody/check").status_code == 404


def test_every_product_filter_of_the_queue_page_finds_its_incidents(
    live_console: LiveConsole,
) -> None:
    # The menu's values are Graph's serviceSource members (its Data Loss Prevention entry
    # once sent a detectionSource name and matched nothing).
    client = live_console.client("admin")
    page = client.get("/").text
    menu = page[page.index('data-name="product"') :]
    menu = menu[: menu.index("</div>\n  </div>")]
    offered = re.findall(r'type="checkbox" value="([^"]+)"', menu)
    assert "dataLossPrevention" in offered
    assert set(offered) == set(ServiceSource.MEMBERS) - {"unknown", "unknownFutureValue"}
    every = client.get(f"{API}/incidents", params={"top": 500}).json()["value"]
    for product in {p for i in every for p in i["productSources"]}:
        assert product in offered
        found = client.get(f"{API}/incidents", params={"product": product, "top": 500})
        expected = {i["id"] for i in every if product in i["productSources"]}
        assert {i["id"] for i in found.json()["value"]} == expected


def test_an_entitys_also_in_link_lists_the_incidents_it_counts(live_console: LiveConsole) -> None:
    # "also in N incidents" on an entity opens the queue filtered on that entity exactly, in
    # the incident's tenant: those N and the incident itself (a text search found others).
    client = live_console.client("admin")
    every = client.get(f"{API}/incidents", params={"top": 500}).json()["value"]
    checked = 0
    for incident in every[:40]:
        page = client.get(f"{API}/incidents/{incident['id']}").json()
        for entity in (e for group in page["entities"].values() for e in group):
            if not entity["otherIncidents"] or checked >= 6:
                continue
            params = {"entity": f"{entity['kind']}:{entity['entityKey']}", "tenant": page["tenant"]}
            listed = client.get(f"{API}/incidents", params={**params, "top": 500}).json()["value"]
            others = {i["id"] for i in listed} - {incident["id"]}
            assert len(others) == entity["otherIncidents"], entity
            assert incident["id"] in {i["id"] for i in listed}
            assert all(i["tenant"] == page["tenant"] for i in listed)
            checked += 1
    assert checked, "the seeded console has entities shared across incidents"
    bad = client.get(f"{API}/incidents", params={"entity": "no-colon"})
    assert bad.status_code == 422


def test_the_queue_lists_incidents_by_id_within_what_the_caller_sees(
    live_console: LiveConsole,
) -> None:
    # The queue's live updates redraw rows that left its filters by their ids.
    admin = live_console.client("admin")
    every = admin.get(f"{API}/incidents", params={"top": 500}).json()["value"]
    first, second = live_console.tenants[0], live_console.tenants[1]
    mine = [i["id"] for i in every if i["tenant"] == second][:3]
    theirs = next(i["id"] for i in every if i["tenant"] == first)
    wanted = [*mine, theirs, "nobody~1", "no-separator"]
    listed = admin.get(f"{API}/incidents", params={"id": wanted, "status": "resolved"}).json()
    assert {i["id"] for i in listed["value"]} <= set(mine) | {theirs}  # other filters still apply
    listed = admin.get(f"{API}/incidents", params={"id": wanted}).json()["value"]
    assert {i["id"] for i in listed} == {*mine, theirs}
    scoped = live_console.client("scoped")  # sees the second tenant only
    listed = scoped.get(f"{API}/incidents", params={"id": wanted}).json()["value"]
    assert {i["id"] for i in listed} == set(mine)
