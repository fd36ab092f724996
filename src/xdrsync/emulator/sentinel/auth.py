"""The workspace tenant's Entra ID: tokens for the resource a scope names, and their checks.

Sign-in (tenant, grant type, scope shape, client id, client secret or certificate assertion) is
the Defender emulator's :class:`~xdrsync.emulator.auth.TokenIssuer`, reused as is. What this
module adds is the audience: Entra gives a token for ``{resource}/.default`` an ``aud`` of that
resource, and each Azure service accepts only its own, so an ARM token cannot upload logs and an
ingestion token cannot read incidents.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xdrsync.emulator.auth import TokenIssuer
from xdrsync.emulator.sentinel.errors import ArmError
from xdrsync.emulator.tenants import TenantSpec

ARM_AUDIENCES = (
    "https://management.azure.com",
    "https://management.core.windows.net",
)
MONITOR_AUDIENCE = "https://monitor.azure.com"


@dataclass(frozen=True)
class AppGrant:
    """Who a bearer token speaks for and which resource it was issued for."""

    tenant_id: str
    client_id: str
    audience: str
    expires_at: float


def normalise_audience(value: str) -> str:
    """``https://Management.Azure.com/`` and ``https://management.azure.com`` are one audience."""
    value = value.strip().rstrip("/")
    scheme, sep, rest = value.partition("://")
    if not sep:
        return value
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def resource_of(scope: str) -> str:
    """The resource a client-credentials scope names: ``{resource}/.default``.

    msal and azure-core may send more than one scope separated by spaces; the ``.default`` one
    is the resource's.
    """
    for part in scope.split():
        if part.endswith("/.default"):
            return part[: -len("/.default")].rstrip("/")
    return scope


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(payload: Mapping[str, Any]) -> str:
    """A JWT-shaped token with a random signature: the emulator resolves tokens by lookup."""
    header = {"typ": "JWT", "alg": "RS256"}
    return ".".join(
        (
            _b64(json.dumps(header, separators=(",", ":")).encode()),
            _b64(json.dumps(payload, separators=(",", ":")).encode()),
            _b64(secrets.token_bytes(256)),
        )
    )


def _unauthorized(code: str, message: str) -> ArmError:
    challenge = (
        'Bearer authorization_uri="https://login.microsoftonline.com/common", '
        f'error="invalid_token", error_description="{message}"'
    )
    return ArmError(401, code, message, {"WWW-Authenticate": challenge})


class WorkspaceIssuer(TokenIssuer):
    """Client-credentials tokens whose ``aud`` is the resource of the requested scope."""

    def __init__(self, keys: Mapping[str, TenantSpec], lifetime_seconds: int) -> None:
        super().__init__(keys, lifetime_seconds)
        self._lifetime_seconds = lifetime_seconds
        self._app_grants: dict[str, AppGrant] = {}
        self._app_lock = threading.Lock()

    def issue(self, tenant_key: str, form: Mapping[str, str]) -> dict[str, Any]:
        # The parent checks the request and the credential (raising SignInError) and mints a
        # Graph token; only its checks are wanted here, so that token is dropped at once.
        checked = super().issue(tenant_key, form)
        with self._lock:
            self._grants.pop(checked["access_token"], None)
        tenant = self._tenants[tenant_key]
        audience = resource_of(str(form.get("scope", "")))
        now = time.time()
        expires_at = now + self._lifetime_seconds
        token = _jwt(
            {
                "aud": audience,
                "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
                "iat": int(now),
                "nbf": int(now),
                "exp": int(expires_at),
                "appid": tenant.client_id,
                "azp": tenant.client_id,
                "appidacr": "2" if "client_assertion" in form else "1",
                "idtyp": "app",
                "oid": tenant.client_id,
                "sub": tenant.client_id,
                "tid": tenant.tenant_id,
                "ver": "1.0",
                "uti": _b64(secrets.token_bytes(16)),
            }
        )
        with self._app_lock:
            self._app_grants[token] = AppGrant(
                tenant.tenant_id, tenant.client_id, audience, expires_at
            )
        return {**checked, "access_token": token}

    def grant_for(self, authorization: str | None, audiences: Collection[str]) -> AppGrant:
        """The grant behind an ``Authorization`` header for a service that accepts
        ``audiences``; otherwise the 401 ARM answers (codes and wording as ARM's)."""
        if not authorization:
            raise _unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is not in a valid format.",
            )
        with self._app_lock:
            grant = self._app_grants.get(token.strip())
        if grant is None:
            raise _unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
        now = time.time()
        if grant.expires_at <= now:
            raise _unauthorized(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{_utc(grant.expires_at)}' is earlier than "
                f"current UTC time '{_utc(now)}'.",
            )
        allowed = [normalise_audience(a) for a in audiences]
        if normalise_audience(grant.audience) not in allowed:
            listed = ",".join(f"'{a}'" for a in allowed)
            raise _unauthorized(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource "
                f"'{grant.audience}'. It should exactly match with one of the allowed "
                f"audiences {listed}.",
            )
        return grant


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
