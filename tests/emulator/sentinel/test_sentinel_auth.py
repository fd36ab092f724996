"""Entra sign-in (msal, secret and certificate) and the audience each surface accepts."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sentinel_helpers import MONITOR

from xdrsync.emulator.sentinel import settings_for


class LoopbackHttp:
    """msal's ``http_client``: msal insists on https authorities, the emulator serves http."""

    def __init__(self, http: httpx.Client, base_url: str) -> None:
        self.http = http
        self.https = "https" + base_url[len("http") :]
        self.base = base_url

    def _url(self, url: str) -> str:
        return self.base + url[len(self.https) :] if url.startswith(self.https) else url

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self.http.get(self._url(url), params=params, headers=headers)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any
    ) -> httpx.Response:
        form = {k: v.decode() if isinstance(v, bytes) else v for k, v in (data or {}).items()}
        return self.http.post(self._url(url), params=params, data=form, headers=headers)

    def close(self) -> None:
        pass


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _msal_app(s: Any, credential: Any) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        s.settings.client_id,
        client_credential=credential,
        authority=f"https{s.base[len('http') :]}/{s.settings.tenant_id}",
        http_client=LoopbackHttp(s.http, s.base),
        instance_discovery=False,
    )


def test_msal_secret_sign_in_gives_tokens_for_the_requested_resource(sentinel: Any) -> None:
    s = sentinel()
    app = _msal_app(s, s.settings.client_secret)
    arm = app.acquire_token_for_client(scopes=[f"{s.base}/.default"])
    assert "access_token" in arm, arm
    assert _claims(arm["access_token"])["aud"] == s.base
    assert _claims(arm["access_token"])["tid"] == s.settings.tenant_id
    listed = s.arm("GET", "/incidents", token=arm["access_token"])
    assert listed.status_code == 200
    monitor = app.acquire_token_for_client(scopes=[f"{MONITOR}//.default"])
    assert _claims(monitor["access_token"])["aud"] == MONITOR
    wrong = _msal_app(s, "not-the-secret").acquire_token_for_client(scopes=[f"{s.base}/.default"])
    assert wrong.get("error") == "invalid_client"


def test_certificate_sign_in(sentinel: Any) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xdrsync-test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    s = sentinel(replace(settings_for(), certificate_pem=pem))
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    credential = {
        "private_key": private,
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),
    }
    result = _msal_app(s, credential).acquire_token_for_client(scopes=[f"{s.base}/.default"])
    assert "access_token" in result, result
    assert s.arm("GET", "/incidents", token=result["access_token"]).status_code == 200


def test_each_surface_accepts_only_its_own_audience(sentinel: Any) -> None:
    s = sentinel()
    arm_token = s.token()
    monitor_token = s.token(MONITOR)
    refused = s.arm("GET", "/incidents", token=monitor_token)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    assert "https://monitor.azure.com" in refused.json()["error"]["message"]
    public_arm = s.token("https://management.azure.com")
    assert s.arm("GET", "/incidents", token=public_arm).status_code == 200
    upload = s.ingest("Custom-XdrSecurityAlert", b"[]", token=arm_token)
    assert upload.status_code == 401
    assert s.ingest("Custom-XdrSecurityAlert", b"[]", token=monitor_token).status_code == 204
    graph = s.token("https://graph.microsoft.com")
    assert s.arm("GET", "/incidents", token=graph).status_code == 401


def test_missing_and_unknown_tokens_get_arms_401(sentinel: Any) -> None:
    s = sentinel()
    bare = s.http.get(f"{s.api}/incidents", params={"api-version": "2025-09-01"})
    assert bare.status_code == 401
    assert bare.json()["error"]["code"] == "AuthenticationFailed"
    assert "WWW-Authenticate" in bare.headers
    forged = s.arm("GET", "/incidents", token="eyJ0eXAiOiJKV1QifQ.e30.c2ln")
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "InvalidAuthenticationToken"
    stats = s.control("GET", "/stats").json()
    assert stats["unauthorized"] == 2


def test_an_expired_token_is_refused(sentinel: Any) -> None:
    s = sentinel(token_lifetime_seconds=1)
    token = s.token()
    time.sleep(1.1)
    reply = s.arm("GET", "/incidents", token=token)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "ExpiredAuthenticationToken"
