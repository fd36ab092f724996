"""TLS to Graph and Entra ID: verified by default, a CA bundle trusted when configured, and a
certificate nobody trusts (a TLS-inspecting proxy) told apart from a network failure."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from entra_fake import self_signed
from graph_fakes import FakeClock, StaticTokens, make_tenant

from xdrsync.config import SyncConfig
from xdrsync.errors import ConfigError
from xdrsync.graph.auth import TokenProvider
from xdrsync.graph.client import GraphClient
from xdrsync.graph.http import build_http_client

_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
    b"Connection: close\r\n\r\n"
    b'{"value": []}'
)


@dataclass
class TlsServer:
    url: str
    ca_bundle: Path
    handshakes: int = 0


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    """A server on 127.0.0.1 whose certificate no public CA signed; it answers every
    request it can read with an empty listing. Bounded: a few connections, then it stops."""
    key, certificate = self_signed("127.0.0.1", server_ip="127.0.0.1")
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    server = TlsServer(f"https://127.0.0.1:{listener.getsockname()[1]}", cert_file)
    stop = threading.Event()

    def serve() -> None:
        served = 0
        while served < 10 and not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            served += 1
            connection.settimeout(10)
            try:
                with context.wrap_socket(connection, server_side=True) as secured:
                    server.handshakes += 1
                    secured.recv(65536)
                    secured.sendall(_ANSWER)
            except OSError:  # the client refused our certificate (ssl.SSLError is one)
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(timeout=10)
    listener.close()


def _client(server: TlsServer, clock: FakeClock, **tenant: object) -> GraphClient:
    return GraphClient(
        make_tenant(graph_url=server.url, **tenant),
        SyncConfig(),
        tokens=StaticTokens(),
        sleep=clock.sleep,
        rng=lambda: 0.5,
    )


def test_an_untrusted_graph_certificate_is_a_config_error_naming_verify_tls(
    tls_server: TlsServer,
) -> None:
    clock = FakeClock()
    with _client(tls_server, clock) as client, pytest.raises(ConfigError) as raised:
        client.get("/security/incidents")
    message = str(raised.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and "verify_tls" in message
    assert clock.sleeps == []  # not retried: another try meets the same certificate


def test_a_configured_ca_bundle_is_trusted(tls_server: TlsServer) -> None:
    clock = FakeClock()
    with _client(tls_server, clock, verify_tls=str(tls_server.ca_bundle)) as client:
        assert client.get("/security/incidents").items == []
    assert tls_server.handshakes == 1


def test_an_untrusted_authority_certificate_is_a_config_error_naming_verify_tls(
    tls_server: TlsServer,
) -> None:
    tenant = make_tenant(authority_url=tls_server.url)
    http = build_http_client(tenant, SyncConfig())
    try:
        with pytest.raises(ConfigError, match=r"CERTIFICATE_VERIFY_FAILED.*verify_tls"):
            TokenProvider(tenant, http).token()
    finally:
        http.close()


def test_tls_verification_is_on_by_default() -> None:
    assert make_tenant().verify_tls is True
    http = build_http_client(make_tenant(), SyncConfig())
    try:
        with pytest.raises(httpx.ConnectError):
            http.get("https://127.0.0.1:1/")  # nothing there: only shows it builds
    finally:
        http.close()


def test_the_sentinel_destination_tells_an_untrusted_certificate_apart_too(
    tls_server: TlsServer,
) -> None:
    # The retry table is shared: ARM calls meet the same TLS-inspecting proxy.
    from pydantic import SecretStr

    from xdrsync.config import SentinelDestinationConfig
    from xdrsync.destinations.sentinel.arm import ArmClient

    entry = SentinelDestinationConfig(
        name="soc",
        type="sentinel",
        tenant_id="00000000-0000-0000-0000-0000000000ff",
        client_id="11111111-1111-1111-1111-111111111111",
        client_secret=SecretStr("not-a-real-secret"),
        subscription_id="22222222-2222-2222-2222-222222222222",
        resource_group="rg-soc",
        workspace="law-soc",
        arm_url=tls_server.url,
    )
    clock = FakeClock()
    client = ArmClient(entry, SyncConfig(), tokens=StaticTokens(), sleep=clock.sleep)
    try:
        with pytest.raises(ConfigError, match=r"CERTIFICATE_VERIFY_FAILED.*verify_tls"):
            client.get("6fa971c1-f915-5994-87fa-8d6f62dce43e")
    finally:
        client.close()
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HTTPS_PROXY", "http://proxy.corp:abc"), ("ALL_PROXY", "socks5://127.0.0.1:1080")],
    ids=["bad-port", "socks"],
)
def test_a_proxy_from_the_environment_that_cannot_be_used_is_one_config_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    if variable == "ALL_PROXY":
        try:
            import socksio  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("socksio is installed: a SOCKS proxy is usable")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"tenant 'contoso': .*{variable}"):
        build_http_client(make_tenant(), SyncConfig())
