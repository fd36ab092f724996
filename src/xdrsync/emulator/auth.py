"""The emulator's Entra ID: client-credentials tokens per tenant, and bearer-token checks.

Sign-in takes a client secret or, for tenants registered with a certificate, a signed client
assertion (RS256 JWT, as msal sends it); both are checked for real.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
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


class TokenIssuer:
    """Issues opaque bearer tokens and resolves them back to a tenant."""

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
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._grants[token] = Grant(
                tenant.tenant_id, tenant.client_id, time.time() + self._lifetime
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
