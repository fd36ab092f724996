"""The emulator speaks Graph's security contract: sign-in, listing, paging, errors, writes."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from xdrsync.emulator.faults import FaultSettings
from xdrsync.emulator.service import settings_for
from xdrsync.emulator.tenants import EmulatorSettings, TenantSpec
from xdrsync.emulator.timefmt import graph_time

# Key sets of the example responses in Microsoft's Graph documentation (security-list-incidents,
# security-get-alert): the emulator's objects must carry every one of them.
DOC_INCIDENT_KEYS = {
    "@odata.type",
    "id",
    "incidentWebUrl",
    "redirectIncidentId",
    "tenantId",
    "displayName",
    "createdDateTime",
    "lastUpdateDateTime",
    "assignedTo",
    "classification",
    "determination",
    "status",
    "severity",
    "customTags",
    "comments",
    "systemTags",
    "description",
}
DOC_ALERT_KEYS = {
    "@odata.type",
    "id",
    "providerAlertId",
    "incidentId",
    "status",
    "severity",
    "classification",
    "determination",
    "serviceSource",
    "detectionSource",
    "detectorId",
    "tenantId",
    "title",
    "description",
    "recommendedActions",
    "category",
    "assignedTo",
    "alertWebUrl",
    "incidentWebUrl",
    "actorDisplayName",
    "threatDisplayName",
    "threatFamilyName",
    "mitreTechniques",
    "createdDateTime",
    "lastUpdateDateTime",
    "resolvedDateTime",
    "firstActivityDateTime",
    "lastActivityDateTime",
    "comments",
    "evidence",
}
DOC_DEVICE_EVIDENCE_KEYS = {
    "@odata.type",
    "createdDateTime",
    "verdict",
    "remediationStatus",
    "remediationStatusDetails",
    "firstSeenDateTime",
    "mdeDeviceId",
    "azureAdDeviceId",
    "deviceDnsName",
    "osPlatform",
    "osBuild",
    "version",
    "healthStatus",
    "riskScore",
    "rbacGroupId",
    "rbacGroupName",
    "onboardingStatus",
    "defenderAvStatus",
    "ipInterfaces",
    "loggedOnUsers",
    "roles",
    "detailedRoles",
    "tags",
    "vmMetadata",
}
SCOPE = "https://graph.microsoft.com/.default"


def test_sign_in_and_bearer_checks(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=5)
    base = caller.server.base_url
    tenant = caller.tenant
    ok = caller.http.post(
        f"{base}/{tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
            "scope": SCOPE,
        },
    )
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] > 3000
    wrong = caller.http.post(
        f"{base}/{tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": "nope",
            "scope": SCOPE,
        },
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert "AADSTS7000215" in wrong.json()["error_description"]
    unknown = caller.http.post(
        f"{base}/not-a-tenant/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
            "scope": SCOPE,
        },
    )
    assert unknown.status_code == 400 and "AADSTS90002" in unknown.json()["error_description"]
    meta = caller.http.get(
        f"{base}/{tenant.tenant_id}/v2.0/.well-known/openid-configuration"
    ).json()
    assert meta["token_endpoint"].endswith(f"/{tenant.tenant_id}/oauth2/v2.0/token")

    for headers in ({}, {"Authorization": "Bearer forged"}):
        refused = caller.http.get(f"{base}/v1.0/security/incidents", headers=headers)
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert error["code"] == "InvalidAuthenticationToken"
        assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])


def test_list_shapes_match_the_documentation_examples(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=30)
    plain = caller.get("/incidents", params={"$top": "10"}).json()
    assert "@odata.context" in plain and len(plain["value"]) == 10
    assert all(set(i) >= DOC_INCIDENT_KEYS and "alerts" not in i for i in plain["value"])
    expanded = caller.get("/incidents", params={"$expand": "alerts", "$top": "10"}).json()
    alerts = [a for i in expanded["value"] for a in i["alerts"]]
    assert alerts and all(set(a) >= DOC_ALERT_KEYS for a in alerts)
    devices = [
        e for a in alerts for e in a["evidence"] if e["@odata.type"].endswith("deviceEvidence")
    ]
    assert devices and all(set(d) >= DOC_DEVICE_EVIDENCE_KEYS for d in devices)
    counted = caller.get("/incidents", params={"$count": "true", "$top": "5"}).json()
    assert counted["@odata.count"] == 30
    one = caller.get(f"/incidents/{plain['value'][0]['id']}").json()
    assert one["id"] == plain["value"][0]["id"] and "alerts" not in one
    with_alerts = caller.get(
        f"/incidents/{plain['value'][0]['id']}", params={"$expand": "alerts"}
    ).json()
    nav = caller.get(f"/incidents/{plain['value'][0]['id']}/alerts").json()["value"]
    assert sorted(a["id"] for a in nav) == sorted(a["id"] for a in with_alerts["alerts"])
    listed_alerts = caller.get("/alerts_v2", params={"$top": "3"}).json()["value"]
    assert len(listed_alerts) == 3 and all(set(a) >= DOC_ALERT_KEYS for a in listed_alerts)
    alert = caller.get(f"/alerts_v2/{listed_alerts[0]['id']}").json()
    assert alert["id"] == listed_alerts[0]["id"]


def test_newest_first_unless_ordered_otherwise(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=40)
    default = caller.all_pages("/incidents")
    created = [i["createdDateTime"] for i in default]
    assert created == sorted(created, reverse=True)
    ascending = caller.all_pages("/incidents", params={"$orderby": "lastUpdateDateTime asc"})
    updated = [i["lastUpdateDateTime"] for i in ascending]
    assert updated == sorted(updated)


def test_an_ignored_orderby_serves_the_default_order(run_emulator: Any) -> None:
    """``ignored_orderby_rate``: the listing comes newest created first, as without
    ``$orderby``, still filtered and paged by ``$skip``; each such request is counted."""
    (caller,) = run_emulator(incidents=120, faults="ignored_orderby_rate=1")
    params = {
        "$orderby": "lastUpdateDateTime asc",
        "$filter": "lastUpdateDateTime ge 2000-01-01T00:00:00Z",
    }
    served = caller.all_pages("/alerts_v2", params=params)
    created = [a["createdDateTime"] for a in served]
    assert created == sorted(created, reverse=True)
    updated = [a["lastUpdateDateTime"] for a in served]
    assert updated != sorted(updated)  # what was asked for is not what came
    assert len({a["id"] for a in served}) == len(caller.all_pages("/alerts_v2"))
    assert caller.control("GET", "/stats").json()["faults"]["ignored_orderby"] >= 2


@pytest.mark.parametrize(
    ("path", "params", "status", "fragment"),
    [
        (
            "/incidents",
            {"$top": "100"},
            400,
            "The limit of '50' for Top query has been exceeded. The value from the incoming request is '100'.",
        ),
        ("/alerts_v2", {"$top": "1001"}, 400, "1000"),
        ("/incidents", {"$skip": "501"}, 400, "skip"),
        ("/alerts_v2", {"$skip": "501"}, 400, "The limit of '500' for Skip query"),
        ("/incidents", {"$skiptoken": "abc"}, 400, "'$skiptoken' is not supported"),
        ("/incidents", {"$filter": "lastUpdateDateTime gx 2024-01-01T00:00:00Z"}, 400, ""),
        ("/incidents", {"$filter": "displayName eq 'x'"}, 400, ""),
        ("/alerts_v2", {"$expand": "alerts"}, 400, ""),
        ("/incidents/999999", {}, 404, "999999"),
        ("/alerts_v2/nope", {}, 404, "nope"),
    ],
)
def test_documented_errors(
    run_emulator: Any, path: str, params: dict[str, str], status: int, fragment: str
) -> None:
    (caller,) = run_emulator(incidents=5)
    reply = caller.get(path, params=params)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["code"] and fragment.lower() in error["message"].lower()


def _pages(caller: Any, path: str, params: dict[str, str]) -> tuple[list[Any], Any]:
    """Follow next links until the last page or a refusal: (every page's body, the refusal)."""
    url: str | None = f"{caller.server.base_url}/v1.0/security{path}"
    headers = {"Authorization": f"Bearer {caller.token()}"}
    bodies: list[Any] = []
    query: dict[str, str] | None = params
    while url:
        reply = caller.http.get(url, headers=headers, params=query)
        if reply.status_code != 200:
            return bodies, reply
        bodies.append(reply.json())
        url, query = bodies[-1].get("@odata.nextLink"), None
    return bodies, None


def _ids(bodies: list[Any]) -> list[str]:
    return [i["id"] for b in bodies for i in b["value"]]


def test_next_links_page_by_skip_and_stall_past_the_skip_ceiling(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=700)
    bodies, refusal = _pages(caller, "/incidents", {"$top": "50", "$count": "true"})
    links = [b["@odata.nextLink"] for b in bodies]
    assert (
        links[0] == f"{caller.server.base_url}/v1.0/security/incidents?$count=true&$top=50&$skip=50"
    )
    assert [dict(parse_qsl(urlsplit(u).query))["$skip"] for u in links] == [
        str(n) for n in range(50, 600, 50)
    ]
    assert all(b["@odata.count"] == 700 for b in bodies)
    ids = _ids(bodies)
    assert len(ids) == len(set(ids)) == 550  # offsets 0..500 are served, 550 is not
    assert refusal is not None and refusal.status_code == 400
    error = refusal.json()["error"]
    assert error["code"] == "BadRequest"
    assert error["message"] == (
        "The limit of '500' for Skip query has been exceeded. "
        "The value from the incoming request is '550'."
    )
    alerts, refused = _pages(caller, "/alerts_v2", {})  # 1000 a page: straight past the ceiling
    assert len(alerts) == 1 and len(alerts[0]["value"]) == 1000
    assert alerts[0]["@odata.nextLink"].endswith("/v1.0/security/alerts_v2?$skip=1000")
    assert refused is not None and refused.status_code == 400


def test_keyset_paging_is_an_explicit_option(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=1200)
    assert caller.control("GET", "/paging").json() == {"paging": "offset"}
    assert caller.control("POST", "/paging", content="cursor").status_code == 400
    assert caller.control("POST", "/paging", content="keyset").json() == {"paging": "keyset"}
    first = caller.get("/incidents", params={"$top": "50"}).json()
    assert "$skiptoken=" in first["@odata.nextLink"] and "$skip=" not in first["@odata.nextLink"]
    seen = caller.all_pages("/incidents", params={"$top": "50"})
    ids = [i["id"] for i in seen]
    assert len(ids) == len(set(ids)) == 1200
    truth = caller.control("GET", "/truth").json()["value"]
    assert set(ids) == {i["id"] for i in truth}
    since = sorted(i["lastUpdateDateTime"] for i in truth)[600]
    filtered = caller.all_pages("/incidents", params={"$filter": f"lastUpdateDateTime ge {since}"})
    assert {i["id"] for i in filtered} == {
        i["id"] for i in truth if i["lastUpdateDateTime"] >= since
    }
    assert caller.control("POST", "/paging", content="offset").json() == {"paging": "offset"}
    assert caller.get("/incidents", params={"$skiptoken": "x"}).status_code == 400


def _after_page_one(caller: Any, params: dict[str, str], edit: int) -> tuple[Any, str, Any]:
    """Page 1; the record that would open page 2; then an analyst edits the ``edit``-th record
    of page 1 on the portal (its lastUpdateDateTime becomes now). Returns (page 1, that record's
    id, the edited incident)."""
    first = caller.get("/incidents", params=params).json()
    top = int(params["$top"])
    boundary = caller.get("/incidents", params={**params, "$skip": str(top), "$top": "1"})
    time.sleep(0.01)
    target = first["value"][edit]["id"]
    edited = caller.control("POST", f"/incidents/{target}", json={"status": "inProgress"})
    assert edited.status_code == 200, edited.text
    return first, boundary.json()["value"][0]["id"], edited.json()


def _rest(caller: Any, next_link: str) -> list[Any]:
    bodies: list[Any] = []
    url: str | None = next_link
    while url:
        reply = caller.get(url)
        assert reply.status_code == 200, reply.text
        bodies.append(reply.json())
        url = bodies[-1].get("@odata.nextLink")
    return bodies


def test_an_edit_on_page_one_shifts_a_record_out_of_reach_under_orderby_asc(
    run_emulator: Any,
) -> None:
    (caller,) = run_emulator(incidents=30)
    params = {"$orderby": "lastUpdateDateTime asc", "$top": "10"}
    first, boundary, edited = _after_page_one(caller, params, edit=3)
    truth = caller.control("GET", "/truth").json()["value"]
    assert edited["lastUpdateDateTime"] == max(i["lastUpdateDateTime"] for i in truth)
    rest = _rest(caller, first["@odata.nextLink"])
    served = _ids([first]) + _ids(rest)
    assert boundary not in served  # the record that opened page 2 is never served
    assert served[-1] == edited["id"] and served.count(edited["id"]) == 2
    assert len(served) == 30


def test_an_edit_that_leaves_a_closed_window_shifts_a_record_out_of_reach(
    run_emulator: Any,
) -> None:
    (caller,) = run_emulator(incidents=30)
    truth = caller.control("GET", "/truth").json()["value"]
    since = min(i["lastUpdateDateTime"] for i in truth)
    until = graph_time(datetime.now(UTC))
    window = f"lastUpdateDateTime ge {since} and lastUpdateDateTime lt {until}"
    params = {"$filter": window, "$top": "10", "$count": "true"}
    first, boundary, edited = _after_page_one(caller, params, edit=0)
    assert first["@odata.count"] == 30
    assert edited["lastUpdateDateTime"] >= until  # the edit takes it out of the window
    rest = _rest(caller, first["@odata.nextLink"])
    assert [b["@odata.count"] for b in rest] == [29, 29]  # each page counts as it is now
    served = _ids([first]) + _ids(rest)
    assert boundary not in served
    assert len(served) == len(set(served)) == 29


@pytest.mark.parametrize("path", ["/incidents", "/alerts_v2"])
def test_skip_with_filter_and_orderby(run_emulator: Any, path: str) -> None:
    (caller,) = run_emulator(incidents=40)
    truth = caller.control("GET", "/truth").json()["value"]
    records = truth if path == "/incidents" else [a for i in truth for a in i["alerts"]]
    since = sorted(r["lastUpdateDateTime"] for r in records)[len(records) // 4]
    flt = f"lastUpdateDateTime ge {since} and status ne 'resolved'"
    whole = caller.all_pages(
        path, params={"$filter": flt, "$orderby": "lastUpdateDateTime desc", "$top": "7"}
    )
    stamps = [r["lastUpdateDateTime"] for r in whole]
    assert stamps == sorted(stamps, reverse=True) and len(whole) > 12
    assert {r["id"] for r in whole} == {
        r["id"]
        for r in records
        if r["lastUpdateDateTime"] >= since and r["status"].lower() != "resolved"
    }
    params = {"$filter": flt, "$orderby": "lastUpdateDateTime desc", "$top": "5", "$skip": "7"}
    reply = caller.get(path, params={**params, "$count": "true"}).json()
    assert [r["id"] for r in reply["value"]] == [r["id"] for r in whole[7:12]]
    assert reply["@odata.count"] == len(whole)
    assert dict(parse_qsl(urlsplit(reply["@odata.nextLink"]).query))["$skip"] == "12"


def test_patch_and_comments(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=10)
    incident = caller.get("/incidents", params={"$top": "1"}).json()["value"][0]
    path = f"/incidents/{incident['id']}"
    updated = caller.request(
        "PATCH",
        path,
        json={"status": "InProgress", "assignedTo": "kai@contoso.com", "customTags": ["x", "y"]},
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    # The answer spells enums as Graph's documented PATCH answer does ("Active").
    assert body["status"] == "InProgress" and body["assignedTo"] == "kai@contoso.com"
    assert body["customTags"] == ["x", "y"]
    assert body["lastUpdateDateTime"] > incident["lastUpdateDateTime"]
    assert body["lastModifiedBy"].startswith("API-App:")
    for bad in (
        {"severity": "high"},
        {"status": "sleeping"},
        {"customTags": "x"},
        {"displayName": "x"},
    ):
        refused = caller.request("PATCH", path, json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["code"] == "BadRequest"
    both = caller.request(
        "PATCH", path, json={"classification": "truePositive", "determination": "CompromisedUser"}
    )
    assert both.json()["determination"] == "CompromisedUser"
    assert caller.get(path).json()["determination"] == "compromisedUser"
    before = len(caller.get(path).json()["comments"])
    posted = caller.request(
        "POST",
        f"{path}/comments",
        json={"@odata.type": "microsoft.graph.security.alertComment", "comment": "triaged"},
    )
    assert posted.status_code == 200
    comments = posted.json()["value"]
    assert len(comments) == before + 1 and comments[-1]["comment"] == "triaged"
    assert set(comments[-1]) == {"comment", "createdByDisplayName", "createdDateTime"}
    assert caller.request("POST", f"{path}/comments", json={}).status_code == 400
    resolved = caller.request("PATCH", path, json={"status": "resolved"}).json()
    assert resolved["status"] == "Resolved"
    alerts = caller.get(f"{path}/alerts").json()["value"]
    assert all(a["status"] == "resolved" for a in alerts)  # resolving resolves the alerts

    alert_id = alerts[0]["id"]
    changed = caller.request(
        "PATCH", f"/alerts_v2/{alert_id}", json={"status": "inProgress", "assignedTo": "a@b.c"}
    )
    assert changed.status_code == 200 and changed.json()["status"] == "InProgress"
    assert (
        caller.request("PATCH", f"/alerts_v2/{alert_id}", json={"customTags": ["x"]}).status_code
        == 400
    )
    alert_comments = caller.request(
        "POST", f"/alerts_v2/{alert_id}/comments", json={"comment": "seen"}
    ).json()
    assert alert_comments["value"][-1]["comment"] == "seen"


def test_tenants_are_isolated_and_throttled_separately(run_emulator: Any) -> None:
    settings = EmulatorSettings(
        tenants=(
            TenantSpec.derived(3, 0, incidents=8, rate_limit_per_minute=4),
            TenantSpec.derived(3, 1, incidents=12),
        ),
        seed=3,
    )
    limited, free = run_emulator(settings)
    ids_a = {i["id"] + i["tenantId"] for i in limited.all_pages("/incidents")}
    assert len(ids_a) == 8 and all(limited.tenant.tenant_id in x for x in ids_a)
    ids_b = free.all_pages("/incidents")
    assert len(ids_b) == 12 and {i["tenantId"] for i in ids_b} == {free.tenant.tenant_id}
    token = limited.token()
    statuses = [
        limited.http.get(
            f"{limited.server.base_url}/v1.0/security/incidents",
            headers={"Authorization": f"Bearer {token}"},
        )
        for _ in range(5)
    ]
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled, [r.status_code for r in statuses]
    assert int(throttled[0].headers["Retry-After"]) >= 1
    assert throttled[0].json()["error"]["code"] == "TooManyRequests"
    assert free.get("/incidents").status_code == 200  # the other tenant is not affected
    stats = limited.control("GET", "/stats").json()
    assert stats["throttled"] >= 1 and stats["by_route"]["GET /v1.0/security/incidents"] >= 5


def test_injected_faults(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=20, faults="expand_error_rate=1")
    assert caller.get("/incidents", params={"$expand": "alerts"}).status_code == 500
    assert caller.get("/incidents").status_code == 200
    caller.control("POST", "/faults", content="error_rate=1")
    assert caller.get("/incidents").status_code in (500, 503)
    caller.control("POST", "/faults", content="reset_rate=1")
    with pytest.raises(httpx.RemoteProtocolError):
        caller.get("/incidents")
    caller.control("POST", "/pause")
    assert caller.get("/incidents").status_code == 200  # paused: no faults
    caller.control("POST", "/resume")
    caller.control("POST", "/faults", content="slow_rate=1,slow_seconds=0.5")
    started = time.monotonic()
    assert caller.get("/incidents").status_code == 200
    assert time.monotonic() - started >= 0.5
    stats = caller.control("GET", "/stats").json()
    assert stats["faults"]["expand"] >= 1 and stats["faults"]["error"] >= 1
    assert stats["faults"]["reset"] >= 1 and stats["faults"]["slow"] >= 1
    assert caller.control("POST", "/faults", content="bogus=1").status_code == 400


def test_injected_error_shapes_of_graph_and_the_gateways_in_front_of_it(
    run_emulator: Any,
) -> None:
    """503/504 with Retry-After, 429 without it, and a gateway's HTML 502/503/504 page."""
    (caller,) = run_emulator(incidents=5, faults="retry_after_error_rate=1,retry_after_seconds=3")
    busy = [caller.get("/incidents") for _ in range(12)]
    assert {r.status_code for r in busy} == {503, 504}
    for reply in busy:
        assert reply.headers["Retry-After"] == "3"
        assert reply.headers["Content-Type"] == "application/json"
        code = {503: "ServiceUnavailable", 504: "GatewayTimeout"}[reply.status_code]
        assert reply.json()["error"]["code"] == code
    caller.control("POST", "/faults", content="bare_throttle_rate=1")
    bare = caller.get("/incidents")
    assert bare.status_code == 429 and "Retry-After" not in bare.headers
    assert bare.json()["error"]["code"] == "TooManyRequests"
    caller.control("POST", "/faults", content="html_error_rate=1")
    pages = [caller.get("/incidents") for _ in range(20)]
    assert {r.status_code for r in pages} == {502, 503, 504}
    for reply in pages:
        assert reply.headers["Content-Type"].startswith("text/html")
        assert reply.text.lstrip().lower().startswith(("<!doctype html", "<html"))
        with pytest.raises(json.JSONDecodeError):
            reply.json()
    faults = caller.control("GET", "/stats").json()["faults"]
    assert faults["retry_after_error"] == 12 and faults["html_error"] == 20
    assert faults["bare_throttle"] == 1
    caller.control("POST", "/pause")
    assert caller.get("/incidents").status_code == 200  # paused: no faults


def test_request_faults_share_one_draw_at_their_rates() -> None:
    assert not FaultSettings().any_request_faults  # every rate defaults to 0
    spec = FaultSettings.parse(
        "error_rate=0.1,retry_after_error_rate=0.2,bare_throttle_rate=0.15,html_error_rate=0.25"
    )
    assert spec.any_request_faults and spec.retry_after_seconds == 1.0
    rng = random.Random(3)
    drawn = [spec.draw(rng).value for _ in range(20_000)]
    shares = {name: drawn.count(name) / len(drawn) for name in set(drawn)}
    expected = {
        "error": 0.1,
        "retry_after_error": 0.2,
        "bare_throttle": 0.15,
        "html_error": 0.25,
        "none": 0.3,
    }
    assert shares.keys() == expected.keys()
    for name, share in expected.items():
        assert abs(shares[name] - share) < 0.02, name
    for bad in ("html_error_rate=1.5", "bare_throttle_rate=-1", "retry_after_seconds=x"):
        with pytest.raises(ValueError, match="fault setting"):
            FaultSettings.parse(bad)


def test_late_visibility_hides_fresh_updates_from_listing_only(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=10, faults="late_seconds=1.5")
    target = caller.get("/incidents", params={"$top": "1"}).json()["value"][0]
    edited = caller.control(
        "POST",
        f"/incidents/{target['id']}",
        json={"status": "inProgress", "assignedTo": "amy@contoso.com"},
    ).json()
    since = edited["lastUpdateDateTime"]
    listed = caller.all_pages("/incidents", params={"$filter": f"lastUpdateDateTime ge {since}"})
    assert listed == []  # not yet indexed
    assert caller.get(f"/incidents/{target['id']}").json()["assignedTo"] == "amy@contoso.com"
    truth = {i["id"]: i for i in caller.control("GET", "/truth").json()["value"]}
    assert truth[target["id"]]["assignedTo"] == "amy@contoso.com"
    time.sleep(1.7)
    listed = caller.all_pages("/incidents", params={"$filter": f"lastUpdateDateTime ge {since}"})
    assert [i["id"] for i in listed] == [target["id"]]


def test_live_activity_changes_incidents(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=20, activity_per_minute=1200)
    before = {
        i["id"]: i["lastUpdateDateTime"] for i in caller.control("GET", "/truth").json()["value"]
    }
    time.sleep(2.5)
    after = {i["id"]: i for i in caller.control("GET", "/truth").json()["value"]}
    changed = [i for i, inc in after.items() if before.get(i) != inc["lastUpdateDateTime"]]
    assert len(changed) >= 3
    assert len(after) > len(before)  # new incidents arrived
    caller.control("POST", "/pause")
    time.sleep(0.3)
    settled = caller.control("GET", "/truth").json()["value"]
    time.sleep(0.5)
    assert caller.control("GET", "/truth").json()["value"] == settled


def test_load_serves_a_file_exactly_as_given(run_emulator: Any, tmp_path: Path) -> None:
    incident: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": "2972395",
        "tenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
        "displayName": "Multi-stage incident",
        "createdDateTime": "2021-08-13T08:43:35.5533333Z",
        "lastUpdateDateTime": "2021-09-30T09:35:45.1133333Z",
        "classification": "TruePositive",
        "determination": "MultiStagedAttack",
        "status": "Active",
        "severity": "Medium",
        "futureProperty": {"nested": [1, 2, None]},
        "comments": [
            {
                "comment": "Demo incident",
                "createdBy": "DavidS@contoso.com",
                "createdTime": "2021-09-30T12:07:37.2756993Z",
            }
        ],
        "alerts": [
            {
                "@odata.type": "#microsoft.graph.security.alert",
                "id": "da637551227677560813_-961444813",
                "incidentId": "2972395",
                "status": "new",
                "lastUpdateDateTime": "2021-05-02T14:19:01.3266667Z",
                "evidence": [
                    {"@odata.type": "#microsoft.graph.security.someFutureEvidence", "x": 1}
                ],
            }
        ],
    }
    path = tmp_path / "incidents.json"
    path.write_text(json.dumps({"value": [incident]}))
    from xdrsync.emulator.service import settings_for

    (caller,) = run_emulator(settings_for(load_file=path))
    listed = caller.get("/incidents", params={"$expand": "alerts"}).json()["value"]
    assert listed == [incident]
    single = caller.get("/incidents/2972395", params={"$expand": "alerts"}).json()
    single.pop("@odata.context")
    assert single == incident


def test_fault_spec_parsing() -> None:
    spec = FaultSettings.parse(
        "error_rate=0.05,reset_rate=0.02,slow_rate=0.05,slow_seconds=2,expand_error_rate=0.1,late_seconds=20"
    )
    assert spec.error_rate == 0.05 and spec.late_seconds == 20
    for bad in ("nope=1", "error_rate=2", "error_rate=x", "late_seconds"):
        with pytest.raises(ValueError, match=r"fault setting|unknown"):
            FaultSettings.parse(bad)


def test_control_surface_refuses_clients_off_loopback() -> None:
    import asyncio

    from xdrsync.emulator.app import build_app
    from xdrsync.emulator.service import Emulator, settings_for

    app = build_app(Emulator(settings_for(incidents=2)))

    async def statuses(client_ip: str) -> list[int]:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
            replies = [await http.get(p) for p in ("/_emulator/truth", "/_emulator/stats")]
            replies.append(await http.post("/_emulator/pause"))
        return [r.status_code for r in replies]

    assert asyncio.run(statuses("203.0.113.9")) == [403, 403, 403]
    assert asyncio.run(statuses("127.0.0.1")) == [200, 200, 200]


@pytest.mark.parametrize("respelled", [False, True])
def test_newer_enum_members_are_shown_only_to_a_client_that_asks(
    run_emulator: Any, tmp_path: Path, respelled: bool
) -> None:
    """Graph answers members added after unknownFutureValue as unknownFutureValue unless the
    request sends `Prefer: include-unknown-enum-members` (microsoft-apis.md §2.3, §2.5);
    a respelled record too, in its own spelling."""
    (seeded,) = run_emulator(seed=5, incidents=1)
    incident = seeded.all_pages("/incidents", params={"$expand": "alerts"})[0]
    incident["status"] = "awaitingAction"  # Defender Experts waiting on the customer
    alert = incident["alerts"][0]
    alert["serviceSource"], alert["detectionSource"] = "microsoftSentinel", "scheduledAlerts"
    alert["evidence"][0]["remediationStatus"] = "running"
    path = tmp_path / "newer.json"
    path.write_text(json.dumps([incident]))
    faults = "respelled_rate=1" if respelled else None
    (caller,) = run_emulator(settings_for(seed=5, incidents=1, load_file=path, faults=faults))
    prefer = {"Prefer": "include-unknown-enum-members"}
    spell = (lambda value: value[:1].upper() + value[1:]) if respelled else (lambda value: value)

    def seen(headers: dict[str, str]) -> tuple[str, ...]:
        got = caller.get("/incidents", params={"$expand": "alerts"}, headers=headers)
        assert got.status_code == 200, got.text
        assert ("Preference-Applied" in got.headers) == bool(headers)
        shown = got.json()["value"][0]
        first = shown["alerts"][0]
        return (
            shown["status"],
            first["serviceSource"],
            first["detectionSource"],
            first["evidence"][0]["remediationStatus"],
        )

    assert seen({}) == (spell("unknownFutureValue"), *("unknownFutureValue",) * 3)
    assert seen(prefer) == (
        spell("awaitingAction"),
        "microsoftSentinel",
        "scheduledAlerts",
        "running",
    )
    single = caller.get(f"/alerts_v2/{alert['id']}").json()
    assert single["serviceSource"] == "unknownFutureValue"
    assert caller.get(f"/alerts_v2/{alert['id']}", headers=prefer).json()["serviceSource"] == (
        "microsoftSentinel"
    )


def test_patch_answers_spell_enums_as_graphs_documented_example(run_emulator: Any) -> None:
    """Graph's documented PATCH answer (security-incident-update) says "TruePositive",
    "MultiStagedAttack", "Active" where reads say truePositive (microsoft-apis.md §2.3): the
    emulator answers a PATCH that way, with or without the Prefer header, and stores and
    serves the members as before."""
    (caller,) = run_emulator(incidents=3)
    incident = caller.get("/incidents", params={"$top": "1"}).json()["value"][0]
    path = f"/incidents/{incident['id']}"
    wanted = {"status": "active", "classification": "truePositive"}
    body = {**wanted, "determination": "multiStagedAttack", "assignedTo": "kai@contoso.com"}
    prefer = {"Prefer": "include-unknown-enum-members"}
    for headers in ({}, prefer):
        answer = caller.request("PATCH", path, json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        shown = answer.json()
        assert (shown["status"], shown["classification"], shown["determination"]) == (
            "Active",
            "TruePositive",
            "MultiStagedAttack",
        )
        assert shown["assignedTo"] == "kai@contoso.com"  # free text is left as it is
        assert shown["severity"] == incident["severity"]
    read = caller.get(path).json()
    assert (read["status"], read["classification"], read["determination"]) == (
        "active",
        "truePositive",
        "multiStagedAttack",
    )
    alert_id = caller.get(f"{path}/alerts").json()["value"][0]["id"]
    answer = caller.request("PATCH", f"/alerts_v2/{alert_id}", json={"status": "new"}).json()
    assert answer["status"] == "New"
    assert caller.get(f"/alerts_v2/{alert_id}").json()["status"] == "new"


def test_respelled_records_read_as_some_of_graphs_answers_spell_them(run_emulator: Any) -> None:
    """``respelled_rate`` picks records by id: every read of one (listed, expanded under its
    incident, or fetched alone) spells status, severity, classification and determination in
    PascalCase, a determination under the incident page's older name (microsoft-apis.md
    §2.3); the others read as stored, and so does the ground truth."""
    (caller,) = run_emulator(incidents=40, faults="respelled_rate=0.5")
    listed = caller.all_pages("/incidents", params={"$expand": "alerts"})
    truth = {i["id"]: i for i in caller.control("GET", "/truth").json()["value"]}
    respelled = [i for i in listed if i["status"][:1].isupper()]
    assert 0 < len(respelled) < len(listed)
    for incident in listed:
        stored = truth[incident["id"]]
        fetched = caller.get(f"/incidents/{incident['id']}").json()
        for shown in (incident, fetched):
            if incident in respelled:
                assert shown["severity"] == stored["severity"][:1].upper() + stored["severity"][1:]
                assert shown["classification"][:1].isupper()
            else:
                for key in ("status", "severity", "classification", "determination"):
                    assert shown[key] == stored[key]
    alerts = [a for i in listed for a in i["alerts"]]
    assert any(a["status"][:1].isupper() for a in alerts)
    assert any(a["status"][:1].islower() for a in alerts)
    for alert in alerts[:20]:
        assert caller.get(f"/alerts_v2/{alert['id']}").json()["status"] == alert["status"]
    older = {"notMalicious": "Clean", "compromisedAccount": "CompromisedUser"}
    target = respelled[0]["id"]
    for determination, spelled in older.items():
        body = {"classification": "falsePositive", "determination": determination}
        if determination == "compromisedAccount":
            body["classification"] = "truePositive"
        assert caller.request("PATCH", f"/incidents/{target}", json=body).status_code == 200
        assert caller.get(f"/incidents/{target}").json()["determination"] == spelled


def test_patch_refuses_a_status_only_defender_experts_set(run_emulator: Any) -> None:
    """awaitingAction is for Defender Experts only (microsoft-apis.md §2.3) and not among the
    statuses §2.9 lists as settable: an app's PATCH is refused it, an analyst's portal edit
    (the control surface) is not. The statuses xdrsync sets stay accepted."""
    (caller,) = run_emulator(incidents=2)
    incident = caller.get("/incidents", params={"$top": "1"}).json()["value"][0]
    path = f"/incidents/{incident['id']}"
    for spelling in ("awaitingAction", "AwaitingAction"):
        refused = caller.request("PATCH", path, json={"status": spelling})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "BadRequest"
        assert "Defender Experts" in refused.json()["error"]["message"]
    assert caller.get(path).json()["lastUpdateDateTime"] == incident["lastUpdateDateTime"]
    for status in ("active", "inProgress", "resolved"):
        assert caller.request("PATCH", path, json={"status": status}).status_code == 200
    edited = caller.control("POST", path, json={"status": "awaitingAction"})
    assert edited.status_code == 200, edited.text
    prefer = {"Prefer": "include-unknown-enum-members"}
    assert caller.get(path, headers=prefer).json()["status"] == "awaitingAction"


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_a_pair_outside_the_documented_table_is_refused_only_when_asked(
    run_emulator: Any, rate: float
) -> None:
    """``refused_pair_rate``: a PATCH setting a classification/determination pair outside the
    legacy update page's table (microsoft-apis.md §2.3) gets 400 with an OData error naming
    the pair, and nothing of it is applied; the documented pairs (in either vocabulary) and a
    PATCH without both halves go through. Off by default: Graph documents no such check."""
    (caller,) = run_emulator(incidents=2, faults=f"refused_pair_rate={rate:g}")
    incident = caller.get("/incidents", params={"$top": "1"}).json()["value"][0]
    path = f"/incidents/{incident['id']}"
    body = {"status": "resolved", "classification": "truePositive", "determination": "apt"}
    answer = caller.request("PATCH", path, json=body)
    if rate:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "BadRequest"
        assert "'apt' for property 'determination' with classification" in error["message"]
        assert caller.get(path).json()["status"] == incident["status"]
    else:
        assert answer.status_code == 200, answer.text
    for pair in (("falsePositive", "clean"), ("truePositive", "malware"), ("unknown", "unknown")):
        body = dict(zip(("classification", "determination"), pair, strict=True))
        assert caller.request("PATCH", path, json=body).status_code == 200
    assert caller.request("PATCH", path, json={"determination": "apt"}).status_code == 200


def test_a_big_incident_cannot_be_expanded_and_its_alerts_stop_at_skip_500(
    run_emulator: Any,
) -> None:
    """Graph's lasting 500 on ``$expand=alerts`` for big incidents (microsoft-apis.md §0.4,
    §6) and its ``$skip`` ceiling (§2.8), as a client meets them on an incident of 1,100
    alerts: the expanded list and the expanded incident fail on every request, and the
    incident's own alerts listing links to a ``$skip`` Graph refuses."""
    (caller,) = run_emulator(incidents=5, big_incident_alerts=1100)
    listed = caller.get("/incidents", params={"$top": "50"}).json()["value"]
    big = max(listed, key=lambda i: i["createdDateTime"])["id"]  # the newest one grew
    for _ in range(2):
        assert caller.get("/incidents", params={"$expand": "alerts"}).status_code == 500
        assert caller.get(f"/incidents/{big}", params={"$expand": "alerts"}).status_code == 500
    first = caller.get(f"/incidents/{big}/alerts").json()
    assert len(first["value"]) == 1000
    refused = caller.get(first["@odata.nextLink"])
    assert refused.status_code == 400 and "Skip" in refused.json()["error"]["message"]
    stamps = {a["lastUpdateDateTime"] for a in first["value"]}
    assert len(stamps) == 1000  # each alert has a stamp of its own: time-boundary paging works
    others = [i["id"] for i in listed if i["id"] != big]
    assert caller.get(f"/incidents/{others[0]}", params={"$expand": "alerts"}).status_code == 200
