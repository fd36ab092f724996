"""Read-only app registrations: JWT tokens carry the granted roles, and Graph refuses writes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from xdrsync.emulator.auth import TokenIssuer
from xdrsync.emulator.gate import missing_roles
from xdrsync.emulator.service import settings_for
from xdrsync.emulator.tenants import TenantSpec

INCIDENT_RW = "SecurityIncident.ReadWrite.All"
ALERT_RW = "SecurityAlert.ReadWrite.All"
READ_ONLY = {"SecurityIncident.Read.All", "SecurityAlert.Read.All"}
READ_WRITE = {INCIDENT_RW, ALERT_RW}


def _segment(part: str) -> dict[str, Any]:
    decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert isinstance(decoded, dict)
    return decoded


def _assert_forbidden(reply: Any, permission: str) -> None:
    assert reply.status_code == 403, reply.text
    error = reply.json()["error"]
    assert error["code"] == "Forbidden"
    assert permission in error["message"]
    assert error["message"].startswith("Missing application roles.")
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])


def test_a_read_only_tenant_reads_but_every_write_is_refused(run_emulator: Any) -> None:
    writer, reader = run_emulator(tenants=2, incidents=6, read_only_tenants=["fabrikam"])
    assert not writer.tenant.read_only and reader.tenant.read_only

    incidents = reader.all_pages("/incidents")
    assert len(incidents) == 6
    incident = incidents[0]
    path = f"/incidents/{incident['id']}"
    assert reader.get(path).status_code == 200
    alerts = reader.get(f"{path}/alerts").json()["value"]
    assert alerts
    assert reader.get("/alerts_v2").status_code == 200
    alert_path = f"/alerts_v2/{alerts[0]['id']}"
    assert reader.get(alert_path).status_code == 200

    _assert_forbidden(reader.request("PATCH", path, json={"status": "resolved"}), INCIDENT_RW)
    _assert_forbidden(
        reader.request("POST", f"{path}/comments", json={"comment": "x"}), INCIDENT_RW
    )
    _assert_forbidden(reader.request("PATCH", alert_path, json={"status": "resolved"}), ALERT_RW)
    _assert_forbidden(
        reader.request("POST", f"{alert_path}/comments", json={"comment": "x"}), ALERT_RW
    )
    # Permissions are checked before the body or the id: a bad request is still a 403.
    _assert_forbidden(reader.request("PATCH", path, json={"severity": "high"}), INCIDENT_RW)
    _assert_forbidden(reader.request("PATCH", "/incidents/999999999", json={}), INCIDENT_RW)

    unchanged = reader.get(path).json()
    assert unchanged["status"] == incident["status"]
    assert unchanged["lastUpdateDateTime"] == incident["lastUpdateDateTime"]
    assert len(unchanged["comments"]) == len(incident["comments"])

    # The writer's own tenant is unaffected.
    mine = writer.get("/incidents", params={"$top": "1"}).json()["value"][0]
    patched = writer.request("PATCH", f"/incidents/{mine['id']}", json={"status": "inProgress"})
    assert patched.status_code == 200 and patched.json()["status"] == "InProgress"
    mine_alert = writer.get("/alerts_v2", params={"$top": "1"}).json()["value"][0]
    commented = writer.request(
        "POST", f"/alerts_v2/{mine_alert['id']}/comments", json={"comment": "seen"}
    )
    assert commented.status_code == 200

    stats = reader.control("GET", "/stats").json()
    assert stats["forbidden"] == 6
    assert stats["unauthorized"] == 0
    assert stats["by_route"]["PATCH /v1.0/security/incidents/{incident_id}"] == 4
    assert stats["by_route"]["POST /v1.0/security/alerts_v2/{alert_id}/comments"] == 2

    listed = {t["name"]: t for t in reader.control("GET", "/tenants").json()}
    assert listed["contoso"]["read_only"] is False and listed["fabrikam"]["read_only"] is True
    assert set(listed["fabrikam"]["roles"]) == READ_ONLY
    assert set(listed["contoso"]["roles"]) == READ_WRITE


def test_forbidden_echoes_the_client_request_id(run_emulator: Any) -> None:
    (reader,) = run_emulator(incidents=2, read_only_tenants=[0])
    incident_id = reader.get("/incidents").json()["value"][0]["id"]
    reply = reader.http.patch(
        f"{reader.server.base_url}/v1.0/security/incidents/{incident_id}",
        json={"status": "resolved"},
        headers={"Authorization": f"Bearer {reader.token()}", "client-request-id": "abc-123"},
    )
    _assert_forbidden(reply, INCIDENT_RW)
    assert reply.json()["error"]["innerError"]["client-request-id"] == "abc-123"


@pytest.mark.parametrize(("read_only", "roles"), [(False, READ_WRITE), (True, READ_ONLY)])
def test_the_token_is_a_jwt_carrying_the_granted_roles(
    run_emulator: Any, read_only: bool, roles: set[str]
) -> None:
    (caller,) = run_emulator(incidents=1, read_only_tenants=[0] if read_only else [])
    token = caller.token()
    header_b64, payload_b64, signature_b64 = token.split(".")
    assert _segment(header_b64) == {"typ": "JWT", "alg": "RS256"}
    payload = _segment(payload_b64)
    tenant = caller.tenant
    assert set(payload["roles"]) == roles
    assert payload["tid"] == tenant.tenant_id
    assert payload["appid"] == payload["azp"] == tenant.client_id
    assert payload["aud"] == "https://graph.microsoft.com"
    assert payload["idtyp"] == "app"
    assert payload["iat"] == payload["nbf"]
    assert 3500 <= payload["exp"] - payload["iat"] <= 3600
    assert len(base64.urlsafe_b64decode(signature_b64 + "==")) == 256
    assert caller.token() != token  # every sign-in is a fresh token
    # The emulator still resolves tokens by exact lookup: a forged payload is not accepted.
    forged = {**payload, "roles": sorted(READ_WRITE)}
    forged_b64 = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    reply = caller.http.get(
        f"{caller.server.base_url}/v1.0/security/incidents",
        headers={"Authorization": f"Bearer {header_b64}.{forged_b64}.{signature_b64}"},
    )
    assert reply.status_code == 401


def test_grants_carry_the_tenant_roles() -> None:
    spec = TenantSpec.derived(5, 0, read_only=True)
    issuer = TokenIssuer({spec.tenant_id: spec}, 60)
    token = issuer.issue(
        spec.tenant_id,
        {
            "grant_type": "client_credentials",
            "client_id": spec.client_id,
            "client_secret": spec.client_secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )["access_token"]
    grant = issuer.resolve(f"Bearer {token}")
    assert not isinstance(grant, str)
    assert grant.roles == frozenset(READ_ONLY) == frozenset(spec.roles)


def test_missing_roles_uses_graphs_wording() -> None:
    incident_patch = ("PATCH", "/v1.0/security/incidents/{incident_id}")
    assert missing_roles(*incident_patch, frozenset(READ_WRITE)) is None
    assert missing_roles(*incident_patch, frozenset(READ_ONLY)) == (
        "Missing application roles. API required roles: SecurityIncident.ReadWrite.All, "
        "application roles: SecurityAlert.Read.All,SecurityIncident.Read.All."
    )
    alert_list = ("GET", "/v1.0/security/alerts_v2")
    assert missing_roles(*alert_list, frozenset({"SecurityIncident.Read.All"})) is None
    assert missing_roles(*alert_list, frozenset()) == (
        "Missing application roles. API required roles: SecurityAlert.Read.All,"
        "SecurityAlert.ReadWrite.All,SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, "
        "application roles: ."
    )
    assert missing_roles("GET", "/v1.0/security/incidents", frozenset({ALERT_RW})) is not None
    assert missing_roles("GET", "(unmatched)", frozenset()) is None


def test_settings_pick_read_only_tenants_by_index_name_or_id() -> None:
    assert not any(t.read_only for t in settings_for(tenants=3).tenants)
    ids = [t.tenant_id for t in settings_for(tenants=3).tenants]
    for wanted in ([1], ["1"], ["fabrikam"], [ids[1]]):
        flags = [t.read_only for t in settings_for(tenants=3, read_only_tenants=wanted).tenants]
        assert flags == [False, True, False], wanted
    both = settings_for(tenants=3, read_only_tenants={0, "northwind"}).tenants
    assert [t.read_only for t in both] == [True, False, True]
    for unknown in ([3], ["nowhere"]):
        with pytest.raises(ValueError, match="read-only tenant"):
            settings_for(tenants=3, read_only_tenants=unknown)
