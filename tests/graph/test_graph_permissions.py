"""Reading our own token's roles: what the app registration was granted, never a raise."""

from __future__ import annotations

import base64
import json

import pytest

from xdrsync.emulator.auth import TokenIssuer
from xdrsync.emulator.tenants import TenantSpec
from xdrsync.graph.permissions import (
    ALERT_READ,
    ALERT_READ_WRITE,
    INCIDENT_READ,
    INCIDENT_READ_WRITE,
    WRITE_PERMISSION,
    Entity,
    can_write,
    token_roles,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(payload: object) -> str:
    header = _b64(b'{"alg":"RS256","typ":"JWT"}')
    return f"{header}.{_b64(json.dumps(payload).encode())}.{_b64(b'signature')}"


def _emulator_token(*, read_only: bool) -> str:
    spec = TenantSpec.derived(11, 0, read_only=read_only)
    reply = TokenIssuer({spec.tenant_id: spec}, 3599).issue(
        spec.tenant_id,
        {
            "grant_type": "client_credentials",
            "client_id": spec.client_id,
            "client_secret": spec.client_secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    return str(reply["access_token"])


def test_constants_are_graphs_permission_names() -> None:
    assert INCIDENT_READ == "SecurityIncident.Read.All"
    assert INCIDENT_READ_WRITE == "SecurityIncident.ReadWrite.All"
    assert ALERT_READ == "SecurityAlert.Read.All"
    assert ALERT_READ_WRITE == "SecurityAlert.ReadWrite.All"
    assert WRITE_PERMISSION == {"incident": INCIDENT_READ_WRITE, "alert": ALERT_READ_WRITE}


@pytest.mark.parametrize(
    ("read_only", "expected"),
    [
        (False, {INCIDENT_READ_WRITE, ALERT_READ_WRITE}),
        (True, {INCIDENT_READ, ALERT_READ}),
    ],
)
def test_roles_of_an_emulator_token(read_only: bool, expected: set[str]) -> None:
    token = _emulator_token(read_only=read_only)
    roles = token_roles(token)
    assert roles == expected
    assert can_write(roles, "incident") is not read_only
    assert can_write(roles, "alert") is not read_only
    assert token_roles(f"  {token}\n") == expected  # stray whitespace from a header or file


@pytest.mark.parametrize(
    "token",
    [
        "",
        "opaque-" + "x" * 40,
        "a.b",
        "a.b.c",
        "a..c",
        "a.!!!!.c",
        "a.ab=c.d",
        "a.eyJyb2xlcyI6.c",  # truncated JSON
        "a.\u00e9\u00e9.c",  # not ASCII
        "x.y.z.w.v",  # an encrypted (JWE) token: five parts
        _jwt(["SecurityIncident.Read.All"]),  # payload not an object
        _jwt("roles"),
        _jwt({"roles": "SecurityIncident.ReadWrite.All"}),  # not a list
        _jwt({"roles": None}),
        _b64(b"{}") + "." + _b64(b"\xff\xfe") + ".sig",  # payload not UTF-8
        _jwt({"roles": [[[[]]]]}),
        "a." + _b64(b"[" * 100_000) + ".c",  # far too long to be a token
        "a." + _b64(b"[" * 20_000) + ".c",  # deeply nested JSON
    ],
)
def test_garbage_gives_no_roles(token: str) -> None:
    assert token_roles(token) == frozenset()


def test_a_token_without_a_roles_claim() -> None:
    delegated = _jwt({"aud": "https://graph.microsoft.com", "scp": "SecurityIncident.Read.All"})
    assert token_roles(delegated) == frozenset()
    assert can_write(token_roles(delegated), "incident") is None


def test_only_string_roles_are_kept() -> None:
    token = _jwt({"roles": [INCIDENT_READ, 7, None, "", {"x": 1}, ALERT_READ_WRITE]})
    assert token_roles(token) == {INCIDENT_READ, ALERT_READ_WRITE}


@pytest.mark.parametrize(
    ("roles", "entity", "expected"),
    [
        (set(), "incident", None),
        (set(), "alert", None),
        ({INCIDENT_READ_WRITE, ALERT_READ_WRITE}, "incident", True),
        ({INCIDENT_READ_WRITE, ALERT_READ_WRITE}, "alert", True),
        ({INCIDENT_READ, ALERT_READ}, "incident", False),
        ({INCIDENT_READ, ALERT_READ}, "alert", False),
        ({INCIDENT_READ_WRITE, ALERT_READ}, "incident", True),
        ({INCIDENT_READ_WRITE, ALERT_READ}, "alert", False),
        ({INCIDENT_READ, ALERT_READ_WRITE}, "incident", False),
        ({INCIDENT_READ, ALERT_READ_WRITE}, "alert", True),
        ({"User.Read.All"}, "incident", False),  # known roles, none of ours: not unknown
        (["SecurityIncident.ReadWrite.All"], "incident", True),  # any collection will do
    ],
)
def test_can_write(roles: set[str], entity: Entity, expected: bool | None) -> None:
    assert can_write(frozenset(roles), entity) is expected
    assert can_write(roles, entity) is expected


def test_can_write_refuses_an_unknown_entity() -> None:
    with pytest.raises(ValueError, match="incident"):
        can_write({INCIDENT_READ_WRITE}, "device")  # type: ignore[arg-type]
