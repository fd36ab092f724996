"""The control surface, faults, ARM throttling and the settings the CLI builds."""

from __future__ import annotations

import tomllib
from typing import Any

import httpx
import pytest
from sentinel_helpers import API_VERSION

from xdrsync.emulator.sentinel import SentinelEmulatorServer, settings_for

CONFIG_KEYS = [
    "name",
    "type",
    "subscription_id",
    "resource_group",
    "workspace",
    "tenant_id",
    "client_id",
    "client_secret",
    "authority_url",
    "arm_url",
    "ingestion_endpoint",
    "rule_id",
    "alert_stream",
    "evidence_stream",
]


def test_an_analyst_edit_bumps_etag_and_last_modified(sentinel: Any) -> None:
    s = sentinel()
    before = s.put_incident("inc").json()
    edit = {
        "status": "Active",
        "owner": {"assignedTo": "Ann", "userPrincipalName": "ann@contoso.com"},
    }
    reply = s.control("POST", "/incidents/inc", json=edit)
    assert reply.status_code == 200, reply.text
    after = s.arm("GET", "/incidents/inc").json()
    assert after["etag"] != before["etag"]
    assert after["properties"]["lastModifiedTimeUtc"] > before["properties"]["lastModifiedTimeUtc"]
    assert after["properties"]["status"] == "Active"
    assert after["properties"]["title"] == before["properties"]["title"]
    assert after["properties"]["owner"]["assignedTo"] == "Ann"
    assert after["properties"]["owner"]["ownerType"] == "User"
    # The app, still holding the old etag, now loses.
    assert s.put_incident("inc", etag=before["etag"]).status_code == 409
    assert s.control("POST", "/incidents/inc", json={"incidentNumber": 7}).status_code == 400
    assert s.control("POST", "/incidents/inc", json={"status": "Closed"}).status_code == 400
    assert s.control("POST", "/incidents/nope", json={"status": "Active"}).status_code == 404


def test_an_analyst_save_with_the_etag_shown_loses_to_a_write_since(sentinel: Any) -> None:
    s = sentinel()
    shown = s.put_incident("inc").json()
    s.put_incident("inc", etag=shown["etag"])  # the app writes while the analyst looks
    stale = {"etag": shown["etag"], "properties": {"status": "Active"}}
    assert s.control("POST", "/incidents/inc", json=stale).status_code == 409
    assert s.arm("GET", "/incidents/inc").json()["properties"]["status"] == "New"
    now = s.arm("GET", "/incidents/inc").json()
    fresh = {"etag": now["etag"], "properties": {"status": "Active"}}
    assert s.control("POST", "/incidents/inc", json=fresh).status_code == 200
    assert s.arm("GET", "/incidents/inc").json()["properties"]["status"] == "Active"


def test_an_analyst_comment_and_the_truth(sentinel: Any) -> None:
    s = sentinel()
    s.put_incident("inc")
    etag = s.arm("GET", "/incidents/inc").json()["etag"]
    reply = s.control("POST", "/incidents/inc/comments", json={"message": "On it", "author": "Ann"})
    assert reply.status_code == 201
    assert reply.json()["properties"]["author"]["name"] == "Ann"
    listed = s.arm("GET", "/incidents/inc/comments").json()["value"]
    assert [c["properties"]["message"] for c in listed] == ["On it"]
    truth = s.truth()
    incident = truth["incidents"][0]
    assert incident["name"] == "inc"
    assert incident["etag"] == etag  # a comment is not an edit of the incident
    assert [c["properties"]["message"] for c in incident["comments"]] == ["On it"]
    assert set(incident["comments"][0]) == {"name", "etag", "properties"}
    assert set(truth["logs"]) == {"Custom-XdrSecurityAlert", "Custom-XdrAlertEvidence"}


def test_config_is_toml_that_points_at_the_emulator(sentinel: Any) -> None:
    s = sentinel()
    reply = s.control("GET", "/config")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    parsed = tomllib.loads(reply.text)
    (destination,) = parsed["destinations"]
    assert list(destination) == CONFIG_KEYS
    settings = s.settings
    assert destination["type"] == "sentinel"
    assert destination["authority_url"] == s.base
    assert destination["arm_url"] == s.base
    assert destination["ingestion_endpoint"] == s.base
    assert destination["rule_id"] == settings.rule_id
    assert destination["rule_id"].startswith("dcr-") and len(destination["rule_id"]) == 36
    token = s.http.post(
        f"{destination['authority_url']}/{destination['tenant_id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": destination["client_id"],
            "client_secret": destination["client_secret"],
            "scope": f"{destination['arm_url']}/.default",
        },
    ).json()["access_token"]
    url = (
        f"{destination['arm_url']}/subscriptions/{destination['subscription_id']}"
        f"/resourceGroups/{destination['resource_group']}/providers/"
        f"Microsoft.OperationalInsights/workspaces/{destination['workspace']}"
        "/providers/Microsoft.SecurityInsights/incidents"
    )
    listed = s.http.get(
        url, params={"api-version": API_VERSION}, headers={"Authorization": f"Bearer {token}"}
    )
    assert listed.status_code == 200


def test_conflict_rate_makes_puts_with_an_etag_lose_to_a_concurrent_edit(sentinel: Any) -> None:
    s = sentinel(faults="conflict_rate=1")
    first = s.put_incident("inc")  # a create has nothing to conflict with
    assert first.status_code == 201
    etag = first.json()["etag"]
    lost = s.put_incident("inc", etag=etag, status="Active")
    assert lost.status_code == 409
    assert lost.json()["error"]["code"] == "Conflict"
    stored = s.arm("GET", "/incidents/inc").json()
    assert stored["etag"] != etag
    assert stored["properties"]["status"] == "New"
    assert (
        stored["properties"]["lastModifiedTimeUtc"]
        > first.json()["properties"]["lastModifiedTimeUtc"]
    )
    assert s.put_incident("inc", status="Active").status_code == 200  # no etag: last writer wins
    stats = s.control("GET", "/stats").json()
    assert stats["conflicts"] == 1
    assert stats["faults"]["conflict"] == 2
    s.control("POST", "/pause")
    current = s.arm("GET", "/incidents/inc").json()["etag"]
    assert s.put_incident("inc", etag=current).status_code == 200


def test_error_faults_spare_sign_in_and_control_and_pause(sentinel: Any) -> None:
    s = sentinel(faults="error_rate=1")
    token = s.token()  # the token endpoint is never faulted
    failed = s.arm("GET", "/incidents", token=token)
    assert failed.status_code in (500, 503)
    assert failed.json()["error"]["code"] in ("InternalServerError", "ServiceUnavailable")
    assert s.control("POST", "/pause").status_code == 200
    assert s.arm("GET", "/incidents", token=token).status_code == 200
    s.control("POST", "/resume")
    assert s.arm("GET", "/incidents", token=token).status_code in (500, 503)
    assert s.control("GET", "/stats").json()["faults"]["error"] == 2


def test_reset_faults_drop_the_connection(sentinel: Any) -> None:
    s = sentinel(faults="reset_rate=1")
    with pytest.raises(httpx.TransportError):
        s.arm("GET", "/incidents")


def test_arm_rate_limit_answers_429_too_many_requests(sentinel: Any) -> None:
    s = sentinel(rate_limit_per_minute=3)
    for _ in range(3):
        assert s.arm("GET", "/incidents").status_code == 200
    throttled = s.arm("GET", "/incidents")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert s.control("GET", "/stats").json()["throttled"] == {"arm": 1}


def test_stats_count_requests_by_method_and_route_template(sentinel: Any) -> None:
    s = sentinel()
    s.put_incident("a")
    s.put_incident("a", etag='"stale"')
    s.arm("GET", "/incidents/a")
    stats = s.control("GET", "/stats").json()
    prefix = (
        "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
        "Microsoft.OperationalInsights/workspaces/{workspace}/providers/Microsoft.SecurityInsights"
    )
    assert stats["by_route"][f"PUT {prefix}/incidents/{{name}}"] == 2
    assert stats["by_route"][f"GET {prefix}/incidents/{{name}}"] == 1
    assert stats["by_status"]["409"] == 1
    assert stats["conflicts"] == 1
    assert stats["incidents"] == 1


def test_settings_are_seeded_and_bad_faults_are_a_clear_value_error() -> None:
    assert settings_for(seed=3) == settings_for(seed=3)
    assert settings_for(seed=3).client_secret != settings_for(seed=4).client_secret
    with pytest.raises(ValueError, match="unknown fault setting 'typo_rate=1'"):
        settings_for(faults="typo_rate=1")
    with pytest.raises(ValueError, match="conflict_rate"):
        settings_for(faults="conflict_rate=2")
    with pytest.raises(ValueError, match="error_rate"):
        settings_for(faults="error_rate=lots")
    with pytest.raises(ValueError, match="rate limit"):
        settings_for(rate_limit_per_minute=0)
    parsed = settings_for(faults="error_rate=0.1,slow_rate=0.2,slow_seconds=1,conflict_rate=0.3")
    assert parsed.faults.requests.error_rate == 0.1
    assert parsed.faults.requests.slow_seconds == 1
    assert parsed.faults.conflict_rate == 0.3


def test_the_server_is_a_context_manager() -> None:
    with SentinelEmulatorServer(settings_for()) as server:
        assert server.port != 0
        reply = httpx.get(f"{server.base_url}/_emulator/stats", timeout=5)
        assert reply.status_code == 200
