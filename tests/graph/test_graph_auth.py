"""Sign-in with msal over our httpx client: caching, renewal, the loopback shim, certificates,
failures as clear errors, and secrets and tokens that never leak."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from entra_fake import FakeEntra, self_signed, write_pem
from graph_fakes import (
    CLIENT_ID,
    GRAPH,
    SECRET,
    TENANT_ID,
    graph_error,
    graph_json,
    make_tenant,
)
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from xdrsync.config import SyncConfig, TenantConfig
from xdrsync.errors import ConfigError, RetriableError, ThrottledError
from xdrsync.graph.auth import TokenProvider, certificate_thumbprint, msal_authority
from xdrsync.graph.client import GraphClient

LOGIN = "https://login.microsoftonline.com"
LOOPBACK = "http://127.0.0.1:8650"


@pytest.fixture(scope="module")
def keypair() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return self_signed()


@pytest.fixture
def http_clients() -> Iterator[list[httpx.Client]]:
    made: list[httpx.Client] = []
    yield made
    for client in made:
        client.close()


def provider(
    fake: Any, made: list[httpx.Client], tenant: TenantConfig | None = None
) -> TokenProvider:
    http = httpx.Client(transport=httpx.MockTransport(fake))
    made.append(http)
    return TokenProvider(tenant or make_tenant(), http)


def entra(**overrides: Any) -> FakeEntra:
    values: dict[str, Any] = {
        "advertised": LOGIN,
        "tenant_id": TENANT_ID,
        "client_id": CLIENT_ID,
        "secret": SECRET,
    }
    values.update(overrides)
    return FakeEntra(**values)


def test_one_token_request_serves_many_calls(http_clients: list[httpx.Client]) -> None:
    fake = entra()
    tokens = provider(fake, http_clients)
    values = {tokens.token() for _ in range(25)}
    assert values == set(fake.issued) and len(values) == 1
    assert (fake.discovery_gets, fake.token_posts) == (1, 1)
    assert tokens.token_requests == 1


def test_the_token_is_renewed_before_it_expires(
    http_clients: list[httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = entra(expires_in=3600)
    tokens = provider(fake, http_clients)
    first = tokens.token()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 1800)
    assert tokens.token() == first  # still comfortably valid
    monkeypatch.setattr(time, "time", lambda: real() + 3400)  # 200 s left: renew now
    second = tokens.token()
    assert second != first
    assert fake.token_posts == 2


def test_invalidate_forces_a_fresh_token(http_clients: list[httpx.Client]) -> None:
    fake = entra()
    tokens = provider(fake, http_clients)
    first = tokens.token()
    tokens.invalidate()
    assert tokens.token() != first
    assert fake.token_posts == 2


def test_the_scope_is_the_graph_root(http_clients: list[httpx.Client]) -> None:
    fake = entra()
    tokens = provider(fake, http_clients)
    tokens.token()
    assert tokens.scope == "https://graph.microsoft.com/.default"


def test_a_loopback_authority_is_reached_over_plain_http(
    http_clients: list[httpx.Client],
) -> None:
    # The metadata advertises https (msal accepts nothing else); the wire stays http.
    fake = entra(advertised="https://127.0.0.1:8650")
    tenant = make_tenant(authority_url=LOOPBACK, graph_url=LOOPBACK)
    tokens = provider(fake, http_clients, tenant)
    assert tokens.token() == fake.issued[0]
    assert fake.seen_urls == [
        f"{LOOPBACK}/{TENANT_ID}/v2.0/.well-known/openid-configuration",
        f"{LOOPBACK}/{TENANT_ID}/oauth2/v2.0/token",
    ]
    assert tokens.scope == f"{LOOPBACK}/.default"


@pytest.mark.parametrize(
    ("authority", "msal_form", "rewritten"),
    [
        (LOGIN, f"{LOGIN}/{TENANT_ID}", None),
        ("http://127.0.0.1:8650", f"https://127.0.0.1:8650/{TENANT_ID}", "https://127.0.0.1:8650"),
        ("http://localhost:9000", f"https://localhost:9000/{TENANT_ID}", "https://localhost:9000"),
        ("http://[::1]:9000", f"https://[::1]:9000/{TENANT_ID}", "https://[::1]:9000"),
        ("http://127.8.9.10", f"https://127.8.9.10/{TENANT_ID}", "https://127.8.9.10"),
    ],
)
def test_the_shim_only_touches_loopback_http(
    authority: str, msal_form: str, rewritten: str | None
) -> None:
    assert msal_authority(make_tenant(authority_url=authority)) == (msal_form, rewritten)


@pytest.mark.parametrize(
    "url", ["http://login.example.com", "http://10.0.0.5:8650", "http://127.0.0.1.evil.example"]
)
def test_plain_http_is_refused_for_non_loopback_hosts(url: str) -> None:
    with pytest.raises(ValidationError, match="only accepted for a loopback"):
        make_tenant(authority_url=url)
    with pytest.raises(ValidationError, match="only accepted for a loopback"):
        make_tenant(graph_url=url)
    # Even a config that skipped validation cannot get a token over it.
    unchecked = make_tenant().model_copy(update={"authority_url": url})
    with pytest.raises(ConfigError, match="loopback"):
        msal_authority(unchecked)


def test_a_refused_secret_is_a_config_error_that_never_shows_the_secret(
    http_clients: list[httpx.Client],
) -> None:
    fake = entra(secret="the-right-one", echo_secret_in_errors=True)
    tokens = provider(fake, http_clients)
    with pytest.raises(ConfigError) as raised:
        tokens.token()
    message = str(raised.value)
    assert "AADSTS7000215" in message and "client_secret" in message
    assert SECRET not in message
    assert "\n" not in message


def test_a_secret_rotated_in_its_file_is_taken_without_a_restart(
    tmp_path: Path, http_clients: list[httpx.Client]
) -> None:
    # A secret store (Key Vault's CSI driver, a Kubernetes secret) writes the new secret to
    # the file, and the old one is revoked: the next sign-in must use the file's new content.
    secret_file = tmp_path / "secret"
    secret_file.write_text("old-secret\n")
    fake = entra(secret="old-secret")
    tokens = provider(fake, http_clients, make_tenant(client_secret=f"file:{secret_file}"))
    first = tokens.token()
    secret_file.write_text("new-secret\n")
    fake.secret = "new-secret"
    tokens.invalidate()  # the token expired: the next one is asked for
    assert tokens.token() not in (first, None)
    assert fake.token_posts == 3  # the old secret refused once, then the new one
    # Still wrong after reading it again: refused, once, without asking twice.
    fake.secret = "newer-secret"
    tokens.invalidate()
    with pytest.raises(ConfigError, match="AADSTS7000215"):
        tokens.token()
    assert fake.token_posts == 4


def test_a_certificate_renewed_in_its_file_is_taken_without_a_restart(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, certificate = keypair
    pem = write_pem(tmp_path / "app.pem", key, certificate)
    fake = entra(secret=None, certificate=certificate)
    tokens = provider(fake, http_clients, make_tenant(client_secret=None, certificate_path=pem))
    tokens.token()
    new_key, renewed = self_signed("renewed")
    write_pem(pem, new_key, renewed)
    fake.certificate = renewed
    tokens.invalidate()
    tokens.token()
    assert fake.assertion_headers[-1]["x5t"] != fake.assertion_headers[0]["x5t"]


def test_an_unknown_client_id_is_a_config_error(http_clients: list[httpx.Client]) -> None:
    fake = entra(client_id="99999999-9999-9999-9999-999999999999")
    with pytest.raises(ConfigError, match="check client_id"):
        provider(fake, http_clients).token()


def test_an_unknown_tenant_is_a_config_error_naming_it(http_clients: list[httpx.Client]) -> None:
    fake = entra(tenant_id="11111111-0000-0000-0000-000000000000")
    with pytest.raises(ConfigError) as raised:
        provider(fake, http_clients).token()
    assert TENANT_ID in str(raised.value)
    assert "AADSTS90002" in str(raised.value)


def test_a_busy_token_endpoint_is_retriable(http_clients: list[httpx.Client]) -> None:
    fake = entra(token_status=503)
    with pytest.raises(RetriableError) as raised:
        provider(fake, http_clients).token()
    assert not isinstance(raised.value, ConfigError)


def test_a_throttled_token_endpoint_carries_retry_after(http_clients: list[httpx.Client]) -> None:
    fake = entra(token_status=429, token_headers={"Retry-After": "12"})
    with pytest.raises(ThrottledError) as raised:
        provider(fake, http_clients).token()
    assert raised.value.retry_after == 12.0


@pytest.mark.parametrize("body", [b"[]", b'"a proxy says hello"', b"null", b"42"])
def test_a_token_answer_that_is_not_an_object_is_a_clear_sign_in_error(
    http_clients: list[httpx.Client], body: bytes
) -> None:
    fake = entra(token_body=body)  # a proxy, or an authority_url that is not Entra ID
    with pytest.raises(ConfigError, match="sign-in"):
        provider(fake, http_clients).token()


def test_an_unreachable_authority_is_retriable(http_clients: list[httpx.Client]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(RetriableError, match="ConnectError"):
        provider(refuse, http_clients).token()


def test_certificate_credentials_sign_an_rs256_assertion(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, certificate = keypair
    pem = write_pem(tmp_path / "app.pem", key, certificate)
    fake = entra(secret=None, certificate=certificate)
    tenant = make_tenant(client_secret=None, certificate_path=pem)
    tokens = provider(fake, http_clients, tenant)
    assert tokens.token() == fake.issued[0]
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()
    assert certificate_thumbprint(certificate) == thumbprint
    assert fake.assertion_headers[0]["alg"] == "RS256"


def test_a_certificate_near_its_end_is_said_at_sign_in_once_a_day(
    tmp_path: Path, http_clients: list[httpx.Client]
) -> None:
    """Tenants set up with the same one-year certificate all fail on the day it ends, and
    nothing said so before. Under 30 days left, a sign-in says when, once a day."""
    key, certificate = self_signed("soon", valid_for=timedelta(days=10))
    pem = write_pem(tmp_path / "soon.pem", key, certificate)
    tenant = make_tenant(client_secret=None, certificate_path=pem)
    tokens = provider(entra(secret=None, certificate=certificate), http_clients, tenant)
    with structlog.testing.capture_logs() as events:
        tokens.token()
        tokens.invalidate()  # a second sign-in the same day says nothing new
        tokens.token()
    (said,) = [e for e in events if e["log_level"] == "warning"]
    thumbprint = certificate_thumbprint(certificate)
    day = certificate.not_valid_after_utc.date().isoformat()
    expected = f"tenant {tenant.name!r}: the certificate (thumbprint {thumbprint}) expires on {day}"
    assert said["event"].startswith(expected), said
    assert "in 10 days" in said["event"]  # counted up, to agree with the date

    key, certificate = self_signed("later")
    pem = write_pem(tmp_path / "later.pem", key, certificate)
    tenant = make_tenant(client_secret=None, certificate_path=pem)
    tokens = provider(entra(secret=None, certificate=certificate), http_clients, tenant)
    with structlog.testing.capture_logs() as events:
        tokens.token()
    assert [e for e in events if e["log_level"] == "warning"] == []


def test_an_expired_certificate_refused_says_it_expired(
    tmp_path: Path, http_clients: list[httpx.Client]
) -> None:
    key, certificate = self_signed("ended", valid_for=timedelta(hours=-1))
    pem = write_pem(tmp_path / "ended.pem", key, certificate)
    tenant = make_tenant(client_secret=None, certificate_path=pem)
    _, uploaded = self_signed("the app's")  # Entra ID no longer takes the one that ended
    with pytest.raises(ConfigError) as raised:
        provider(entra(secret=None, certificate=uploaded), http_clients, tenant).token()
    day = certificate.not_valid_after_utc.date().isoformat()
    assert f"expired on {day}: upload a new one" in str(raised.value)


def test_check_says_when_the_certificate_ends(tmp_path: Path, runner: CliRunner) -> None:
    """`check` names the certificate's last day, and warns within 30 days of it, as do
    `init`'s check and the console's connector page, where an operator looks before a
    year's certificate stops every tenant set up with it."""
    from dataclasses import replace

    from xdrsync.cli import app
    from xdrsync.connectors import check_tenant
    from xdrsync.emulator.server import EmulatorServer
    from xdrsync.emulator.service import settings_for

    for valid_for, said in (
        (timedelta(days=400), "is valid until"),
        (timedelta(days=5), "in 5 days"),
    ):
        key, certificate = self_signed(valid_for=valid_for)
        settings = settings_for(seed=43, incidents=2)
        public = certificate.public_bytes(serialization.Encoding.PEM)
        settings = replace(
            settings, tenants=(replace(settings.tenants[0], certificate_pem=public),)
        )
        with EmulatorServer(settings) as server:
            spec = server.emulator.settings.tenants[0]
            tenant = TenantConfig(
                name=spec.name,
                tenant_id=spec.tenant_id,
                client_id=spec.client_id,
                certificate_path=write_pem(tmp_path / f"{said[:5]}.pem", key, certificate),
                graph_url=server.base_url,
                authority_url=server.base_url,
            )
            result = check_tenant(tenant, SyncConfig())
            config = tmp_path / f"{said[:5]}.toml"
            config.write_text(
                f'[workspace]\npath = "{tmp_path / said[:5]}"\n\n[[tenants]]\n'
                f'name = "{spec.name}"\ntenant_id = "{spec.tenant_id}"\n'
                f'client_id = "{spec.client_id}"\ncertificate_path = "{tenant.certificate_path}"\n'
                f'graph_url = "{server.base_url}"\nauthority_url = "{server.base_url}"\n'
            )
            checked = runner.invoke(app, ["check", "--config", str(config)])
        assert result.readable, result
        day = certificate.not_valid_after_utc.date().isoformat()
        notes = [n for n in result.notes if "certificate" in n]  # notes are warnings
        warned = said.startswith("in ")
        assert [day in n and said in n for n in notes] == ([True] if warned else []), notes
        assert checked.exit_code == 0, checked.output
        (line,) = [n for n in checked.output.splitlines() if "certificate" in n]
        mark = "!" if warned else "✓"
        assert line.startswith(f"{mark} {spec.name}: the certificate") and said in line, line


def test_a_certificate_the_key_does_not_match_is_a_config_error(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    other_key, _ = self_signed("other")
    pem = write_pem(tmp_path / "mixed.pem", other_key, keypair[1])
    tenant = make_tenant(client_secret=None, certificate_path=pem)
    with pytest.raises(ConfigError, match="does not belong"):
        provider(entra(), http_clients, tenant).token()


def test_an_encrypted_key_is_a_config_error(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    pem = write_pem(tmp_path / "locked.pem", *keypair, password=b"pw")
    tenant = make_tenant(client_secret=None, certificate_path=pem)
    with pytest.raises(ConfigError, match="encrypted"):
        provider(entra(), http_clients, tenant).token()


def _combined(fake_entra: FakeEntra, graph: Any) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1.0/"):
            return graph(request)  # type: ignore[no-any-return]
        return fake_entra(request)

    return handler


def test_graph_401_renews_the_token_through_msal(http_clients: list[httpx.Client]) -> None:
    fake = entra(advertised="https://127.0.0.1:8650")
    seen: list[str] = []

    def graph(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        if len(seen) == 1:
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired.")
        return graph_json({"value": []})

    http = httpx.Client(transport=httpx.MockTransport(_combined(fake, graph)))
    http_clients.append(http)
    tenant = make_tenant(authority_url=LOOPBACK, graph_url=LOOPBACK)
    client = GraphClient(tenant, SyncConfig(), http=http, sleep=lambda s: None)
    client.get("/security/incidents")
    assert seen == [f"Bearer {fake.issued[0]}", f"Bearer {fake.issued[1]}"]
    assert client.stats()["token_requests"] == 2


def test_secrets_and_tokens_never_reach_logs_or_errors(
    http_clients: list[httpx.Client],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = entra(advertised="https://127.0.0.1:8650")
    calls = {"n": 0}

    def graph(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return graph_error(503, "ServiceUnavailable", "later", **{"Retry-After": "0"})
        return graph_error(401, "InvalidAuthenticationToken", "rejected")

    http = httpx.Client(transport=httpx.MockTransport(_combined(fake, graph)))
    http_clients.append(http)
    tenant = make_tenant(authority_url=LOOPBACK, graph_url=LOOPBACK)
    client = GraphClient(tenant, SyncConfig(), http=http, sleep=lambda s: None)
    texts: list[str] = [repr(tenant), str(tenant)]
    with structlog.testing.capture_logs() as events:
        with pytest.raises(ConfigError) as raised:
            client.get("/security/incidents")
        texts.append(str(raised.value))
        wrong = make_tenant(client_secret=SecretStr("not-" + SECRET))
        with pytest.raises(ConfigError) as refused:
            provider(entra(echo_secret_in_errors=True), http_clients, wrong).token()
        texts.append(str(refused.value))
    texts += [repr(event) for event in events]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(capsys.readouterr().out)
    everything = "\n".join(texts)
    assert events, "the retries and the failure were logged"
    assert fake.issued, "tokens were issued"
    for token in fake.issued:
        assert token not in everything
    assert SECRET not in everything
    assert raised.value.__cause__ is None and refused.value.__cause__ is None


def test_a_pem_with_its_chain_signs_in_with_the_certificate_of_its_key(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    # `openssl pkcs12 -nodes` and Windows exports may write the issuing CA before the leaf.
    key, certificate = keypair
    _, issuer = self_signed("corp-issuing-ca")
    pem = write_pem(tmp_path / "chain.pem", key, certificate)
    pem.write_bytes(issuer.public_bytes(serialization.Encoding.PEM) + pem.read_bytes())
    fake = entra(secret=None, certificate=certificate)
    tenant = make_tenant(client_secret=None, certificate_path=pem)
    assert provider(fake, http_clients, tenant).token() == fake.issued[0]


def test_an_encrypted_key_signs_in_with_its_certificate_password(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, certificate = keypair
    pem = write_pem(tmp_path / "locked.pem", key, certificate, password=b"pass phrase")
    fake = entra(secret=None, certificate=certificate)
    tenant = make_tenant(
        client_secret=None, certificate_path=pem, certificate_password=SecretStr("pass phrase")
    )
    assert provider(fake, http_clients, tenant).token() == fake.issued[0]


def test_a_wrong_certificate_password_is_one_clear_line_without_the_password(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    pem = write_pem(tmp_path / "locked.pem", *keypair, password=b"right")
    tenant = make_tenant(
        client_secret=None, certificate_path=pem, certificate_password=SecretStr("wr0ng-pw")
    )
    with pytest.raises(ConfigError) as raised:
        provider(entra(), http_clients, tenant).token()
    message = str(raised.value)
    assert "certificate_password" in message and "locked.pem" in message
    assert "wr0ng-pw" not in message and "\n" not in message


def _pfx(
    path: Path, key: rsa.RSAPrivateKey, certificate: x509.Certificate, password: bytes | None
) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    _, issuer = self_signed("corp-issuing-ca")
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(b"xdrsync", key, certificate, [issuer], encryption)
    )
    return path


@pytest.mark.parametrize("password", [b"pfx-pass", None], ids=["password", "none"])
def test_a_pfx_file_signs_in(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
    password: bytes | None,
) -> None:
    key, certificate = keypair
    pfx = _pfx(tmp_path / "app.pfx", key, certificate, password)
    fake = entra(secret=None, certificate=certificate)
    extra = {"certificate_password": SecretStr(password.decode())} if password else {}
    tenant = make_tenant(client_secret=None, certificate_path=pfx, **extra)
    assert provider(fake, http_clients, tenant).token() == fake.issued[0]


def test_a_pfx_without_its_password_is_one_clear_line(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    pfx = _pfx(tmp_path / "app.pfx", *keypair, b"pfx-pass")
    tenant = make_tenant(client_secret=None, certificate_path=pfx)
    with pytest.raises(ConfigError, match=r"app\.pfx: .*certificate_password"):
        provider(entra(), http_clients, tenant).token()


def test_a_certificate_password_needs_a_certificate() -> None:
    with pytest.raises(ValidationError, match="certificate_password goes with certificate_path"):
        make_tenant(certificate_password=SecretStr("x"))


@pytest.mark.parametrize(
    ("graph_url", "authority_url"),
    [
        ("https://graph.microsoft.us", LOGIN),
        ("https://dod-graph.microsoft.us", LOGIN),
        ("https://microsoftgraph.chinacloudapi.cn", LOGIN),
        ("https://graph.microsoft.com", "https://login.microsoftonline.us"),
    ],
)
def test_graph_and_authority_of_different_clouds_are_refused_at_load(
    graph_url: str, authority_url: str
) -> None:
    # Entra ID of one cloud knows no Graph of another: sign-in would fail with AADSTS500011.
    with pytest.raises(ValidationError, match="same cloud"):
        make_tenant(graph_url=graph_url, authority_url=authority_url)


@pytest.mark.parametrize(
    ("graph_url", "authority_url"),
    [
        ("https://graph.microsoft.us", "https://login.microsoftonline.us"),
        ("https://dod-graph.microsoft.us", "https://login.microsoftonline.us/"),
        ("https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
        ("https://graph.microsoft.com", "https://login.microsoft.com"),
        ("https://graph.contoso-proxy.example", LOGIN),  # a host we do not know: not judged
    ],
)
def test_national_clouds_sign_in_with_their_own_authority(
    graph_url: str, authority_url: str
) -> None:
    tenant = make_tenant(graph_url=graph_url, authority_url=authority_url)
    assert tenant.scope == f"{graph_url}/.default"
    assert msal_authority(tenant)[0] == f"{authority_url.rstrip('/')}/{TENANT_ID}"


def test_an_unknown_resource_names_the_cloud_settings(http_clients: list[httpx.Client]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return entra()(request)
        body = {
            "error": "invalid_resource",
            "error_description": "AADSTS500011: The resource principal named "
            "https://graph.microsoft.us was not found in the tenant named contoso.\r\nTrace ID: x",
        }
        return httpx.Response(400, json=body)

    with pytest.raises(ConfigError, match=r"AADSTS500011.*graph_url and authority_url"):
        provider(refuse, http_clients).token()


@pytest.mark.parametrize(
    "authority",
    [
        f"{LOGIN}/{TENANT_ID}",
        f"{LOGIN}/{TENANT_ID}/oauth2/v2.0/token",
        f"{LOGIN}/organizations/v2.0",
    ],
)
def test_an_authority_url_with_a_tenant_or_endpoint_path_is_refused_at_load(
    authority: str,
) -> None:
    # Copied from the app's Endpoints page: msal would ask for {authority}/{tenant_id}, whose
    # OpenID metadata does not exist, and sign-in would fail as an unknown tenant.
    with pytest.raises(ValidationError, match="authority_url is the sign-in host"):
        make_tenant(authority_url=authority)


def test_a_beta_graph_url_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match=r"without /v1\.0"):
        make_tenant(graph_url=f"{GRAPH}/beta")


def test_a_us_government_tenant_signs_in_at_its_own_authority_for_its_own_graph(
    http_clients: list[httpx.Client],
) -> None:
    gov = "https://login.microsoftonline.us"
    fake = entra(advertised=gov)
    tenant = make_tenant(graph_url="https://graph.microsoft.us", authority_url=gov)
    tokens = provider(fake, http_clients, tenant)
    assert tokens.token() == fake.issued[0]
    assert all(url.startswith(f"{gov}/{TENANT_ID}/") for url in fake.seen_urls)
    assert tokens.scope == "https://graph.microsoft.us/.default"


def test_a_client_assertion_out_of_its_time_range_points_at_the_clock(
    http_clients: list[httpx.Client],
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return entra()(request)
        body = {
            "error": "invalid_client",
            "error_description": "AADSTS700024: Client assertion is not within its valid "
            "time range. Current time: 2026-12-07T12:00:00Z, assertion valid from "
            "2026-12-07T12:20:00Z.\r\nTrace ID: x",
        }
        return httpx.Response(401, json=body)

    with pytest.raises(ConfigError, match=r"AADSTS700024.*clock"):
        provider(refuse, http_clients).token()


def test_a_refused_certificate_names_the_thumbprint_to_look_for_in_entra_id(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    # The app holds another certificate (an old one, before a rotation): the portal lists
    # certificates by thumbprint, so the error says which one we signed with.
    key, certificate = keypair
    _, uploaded = self_signed("the-one-in-entra")
    pem = write_pem(tmp_path / "app.pem", key, certificate)
    tenant = make_tenant(client_secret=None, certificate_path=pem)
    with pytest.raises(ConfigError) as raised:
        provider(entra(secret=None, certificate=uploaded), http_clients, tenant).token()
    assert certificate_thumbprint(certificate) in str(raised.value)


@pytest.mark.parametrize("kind", ["pem", "pfx"])
def test_a_password_for_a_file_that_needs_none_is_harmless(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
    kind: str,
) -> None:
    key, certificate = keypair
    path = (
        write_pem(tmp_path / "app.pem", key, certificate)
        if kind == "pem"
        else _pfx(tmp_path / "app.pfx", key, certificate, None)
    )
    fake = entra(secret=None, certificate=certificate)
    tenant = make_tenant(
        client_secret=None, certificate_path=path, certificate_password=SecretStr("unneeded")
    )
    assert provider(fake, http_clients, tenant).token() == fake.issued[0]


def test_a_damaged_key_with_a_password_is_a_config_error_not_an_unknown_tenant(
    tmp_path: Path,
    http_clients: list[httpx.Client],
    keypair: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    pem = write_pem(tmp_path / "app.pem", *keypair)
    text = pem.read_text()
    begin = text.index("-----BEGIN PRIVATE KEY-----\n") + len("-----BEGIN PRIVATE KEY-----\n")
    pem.write_text(text[:begin] + "AAAA" + text[begin + 4 :])
    tenant = make_tenant(
        client_secret=None, certificate_path=pem, certificate_password=SecretStr("whatever")
    )
    with pytest.raises(ConfigError, match=r"app\.pem: its private key cannot be opened"):
        provider(entra(), http_clients, tenant).token()
