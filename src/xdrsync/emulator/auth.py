"""The emulator's Entra ID: client-credentials tokens per tenant, and bearer-token checks.

Sign-in takes a client secret or, for tenants registered with a certificate, a signed client
assertion (RS256 JWT, as msal sends it); both are checked for real.

Access tokens are shaped like Entra's: a JWT whose payload carries ``tid``, ``appid``/``azp``,
``aud``, ``iat``/``nbf``/``exp`` and the granted application permissions in ``roles``, so a
client can read what it may do. The signature segment is random bytes: the emulator never
verifies its own tokens, it resolves them by exact lookup.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from xdrsync.emulator.tenants import TenantSpec

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class SignInError(Exception):
    """A token request was refused; carries the AAD-style status and body."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body: dict[str, Any] = {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
        }


@dataclass(frozen=True)
class Grant:
    tenant_id: str
    client_id: str
    expires_at: float
    roles: frozenset[str] = frozenset()


class TokenIssuer:
    """Issues JWT-shaped bearer tokens and resolves them back to a tenant and its roles."""

    def __init__(self, tenants: Mapping[str, TenantSpec], lifetime_seconds: int) -> None:
        self._tenants = tenants
        self._lifetime = lifetime_seconds
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue(self, tenant_key: str, form: Mapping[str, str]) -> dict[str, Any]:
        tenant = self._tenants.get(tenant_key)
        if tenant is None:
            raise SignInError(400, "invalid_request", 90002, f"Tenant '{tenant_key}' not found.")
        if form.get("grant_type") != "client_credentials":
            raise SignInError(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if not str(form.get("scope", "")).endswith("/.default"):
            raise SignInError(
                400, "invalid_scope", 1002012, "The provided value for scope is not valid."
            )
        if form.get("client_id") != tenant.client_id:
            raise SignInError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{tenant.tenant_id}'.",
            )
        self._check_credential(tenant, form)
        now = time.time()
        expires_at = now + self._lifetime
        token = _access_token(tenant, issued_at=int(now), expires_at=int(expires_at))
        with self._lock:
            self._grants[token] = Grant(
                tenant.tenant_id, tenant.client_id, expires_at, frozenset(tenant.roles)
            )
        return {
            "token_type": "Bearer",
            "expires_in": self._lifetime,
            "ext_expires_in": self._lifetime,
            "access_token": token,
        }

    def resolve(self, authorization: str | None) -> Grant | str:
        """The grant behind an ``Authorization`` header, or Graph's reason for refusing it."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return "Access token is empty."
        token = authorization[7:].strip()
        with self._lock:
            grant = self._grants.get(token)
        if grant is None:
            return "Invalid JWT token. The token is malformed or not issued to this service."
        if grant.expires_at <= time.time():
            return "Access token has expired or is not yet valid."
        return grant

    def _check_credential(self, tenant: TenantSpec, form: Mapping[str, str]) -> None:
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            if tenant.certificate_pem is None or not _assertion_valid(
                tenant, form.get("client_assertion", "")
            ):
                raise SignInError(
                    401,
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation.",
                )
            return
        presented = form.get("client_secret", "")
        if not secrets.compare_digest(presented.encode(), tenant.client_secret.encode()):
            raise SignInError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID.",
            )


GRAPH_AUDIENCE = "https://graph.microsoft.com"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _access_token(tenant: TenantSpec, *, issued_at: int, expires_at: int) -> str:
    """An app-only access token as Entra shapes it (v1.0 claims), with a random signature."""
    header = {"typ": "JWT", "alg": "RS256"}
    # The app's service principal in the tenant: stable per tenant and app, like Entra's.
    principal = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp/{tenant.tenant_id}/{tenant.client_id}"))
    payload = {
        "aud": GRAPH_AUDIENCE,
        "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_at,
        "appid": tenant.client_id,
        "azp": tenant.client_id,
        "appidacr": "1",
        "idtyp": "app",
        "oid": principal,
        "sub": principal,
        "roles": list(tenant.roles),
        "tid": tenant.tenant_id,
        "ver": "1.0",
        "uti": _b64encode(secrets.token_bytes(16)),
    }
    return ".".join(
        (
            _b64encode(json.dumps(header, separators=(",", ":")).encode()),
            _b64encode(json.dumps(payload, separators=(",", ":")).encode()),
            _b64encode(secrets.token_bytes(256)),  # the size of an RS256 (2048-bit) signature
        )
    )


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _assertion_valid(tenant: TenantSpec, assertion: str) -> bool:
    """Verify an RS256 client assertion against the tenant's registered certificate."""
    assert tenant.certificate_pem is not None
    try:
        header_b64, payload_b64, signature_b64 = assertion.split(".")
        payload = json.loads(_b64decode(payload_b64))
        public_key = x509.load_pem_x509_certificate(tenant.certificate_pem).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            return False
        public_key.verify(
            _b64decode(signature_b64),
            f"{header_b64}.{payload_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (ValueError, InvalidSignature, json.JSONDecodeError):
        return False
    return bool(
        payload.get("iss") == tenant.client_id
        and payload.get("sub") == tenant.client_id
        and float(payload.get("exp", 0)) > time.time()
    )


def openid_document(netloc: str, tenant: str, tenant_id: str) -> dict[str, Any]:
    """A tenant's OpenID metadata as Entra ID serves it. The endpoints are advertised as https,
    as login.microsoftonline.com does (msal accepts nothing else); our client reaches a
    loopback authority over plain http (see graph/auth.py)."""
    base = f"https://{netloc}/{tenant}"
    return {
        "issuer": f"https://login.microsoftonline.com/{tenant_id}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "token id_token", "token"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }
