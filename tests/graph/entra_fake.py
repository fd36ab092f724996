"""A fake Entra ID (OpenID metadata + token endpoint) that checks credentials for real."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json(payload: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=payload)


@dataclass
class FakeEntra:
    """Serves ``/{tenant}/v2.0/.well-known/openid-configuration`` and the token endpoint.

    Like the project's emulator, the metadata advertises ``advertised`` (an https origin)
    even when the fake is reached over plain http.
    """

    advertised: str
    tenant_id: str
    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    expires_in: int = 3600
    token_status: int | None = None  # force an answer from the token endpoint
    token_headers: dict[str, str] = field(default_factory=dict)
    token_body: bytes | None = None  # answer the token request 200 with this body, as it is
    echo_secret_in_errors: bool = False  # a hostile server: our messages must still hide it
    discovery_gets: int = 0
    token_posts: int = 0
    issued: list[str] = field(default_factory=list)
    seen_urls: list[str] = field(default_factory=list)
    assertion_headers: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen_urls.append(str(request.url))
        path = request.url.path
        if request.method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            return self._metadata(path.split("/")[1])
        if request.method == "POST" and path == f"/{self.tenant_id}/oauth2/v2.0/token":
            return self._token(request)
        return _json({"error": "not_found"}, 404)

    def _metadata(self, tenant: str) -> httpx.Response:
        self.discovery_gets += 1
        if tenant != self.tenant_id:
            return _json(
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
                400,
            )
        base = f"{self.advertised}/{tenant}"
        return _json(
            {
                "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            }
        )

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_posts += 1
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if self.token_body is not None:
            return httpx.Response(
                200, content=self.token_body, headers={"Content-Type": "application/json"}
            )
        if self.token_status is not None:
            body = {"error": "temporarily_unavailable", "error_description": "AADSTS50196: busy"}
            return httpx.Response(self.token_status, json=body, headers=self.token_headers)
        if form.get("grant_type") != "client_credentials" or not form.get("scope", "").endswith(
            "/.default"
        ):
            return _json({"error": "invalid_request", "error_description": "AADSTS900144"}, 400)
        if form.get("client_id") != self.client_id:
            return _json(
                {
                    "error": "unauthorized_client",
                    "error_description": "AADSTS700016: Application with identifier "
                    f"'{form.get('client_id')}' was not found in the directory.",
                },
                400,
            )
        if not self._credential_ok(form):
            described = "AADSTS7000215: Invalid client secret provided."
            if self.echo_secret_in_errors:
                described += f" You sent '{form.get('client_secret')}'."
            return _json({"error": "invalid_client", "error_description": described}, 401)
        token = f"eyJ0eXAi.fake-access-token.{secrets.token_urlsafe(24)}"
        self.issued.append(token)
        return _json(
            {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": token,
            }
        )

    def _credential_ok(self, form: dict[str, str]) -> bool:
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            return self.certificate is not None and self._assertion_ok(form["client_assertion"])
        return self.secret is not None and form.get("client_secret") == self.secret

    def _assertion_ok(self, assertion: str) -> bool:
        assert self.certificate is not None
        header_b64, payload_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64decode(header_b64))
        payload = json.loads(_b64decode(payload_b64))
        self.assertion_headers.append(header)
        key = self.certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            key.verify(
                _b64decode(signature_b64),
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return False
        sha1 = self.certificate.fingerprint(hashes.SHA1())
        return bool(
            header.get("alg") == "RS256"
            and _b64decode(header.get("x5t", "")) == sha1
            and payload.get("iss") == payload.get("sub") == self.client_id
            and payload.get("aud") == f"{self.advertised}/{self.tenant_id}/oauth2/v2.0/token"
        )


def self_signed(
    common_name: str = "xdrsync-test",
    *,
    server_ip: str | None = None,
    valid_for: timedelta = timedelta(days=365),
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A key and its self-signed certificate, valid from yesterday for ``valid_for`` from
    now; with ``server_ip``, a TLS server's for that address, and its own CA (a bundle that
    trusts it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + valid_for)
    )
    if server_ip is not None:
        address = x509.IPAddress(ipaddress.ip_address(server_ip))
        builder = builder.add_extension(
            x509.SubjectAlternativeName([address]), critical=False
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return key, builder.sign(key, hashes.SHA256())


def write_pem(
    path: Path,
    key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    *,
    password: bytes | None = None,
) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # Certificate first, key second: the order operators' tools produce varies.
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key_pem)
    return path
