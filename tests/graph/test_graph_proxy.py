"""An outbound proxy from the config (``proxy``, ``proxy_password`` by reference): sign-in
through msal and Graph calls go through it, against the Defender emulator and a counting
proxy on 127.0.0.1; its password appears in no log line or error message; without the
setting the environment's proxy applies as before."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from forward_proxy import ForwardProxy
from typer.testing import CliRunner

from xdrsync.config import SentinelDestinationConfig, SyncConfig, TenantConfig
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.errors import ConfigError, XdrSyncError
from xdrsync.graph.http import ProxyRoute, build_http_client, requests_proxies
from xdrsync.graph.security import DefenderApi
from xdrsync.hub.payload import ticks_from_datetime
from xdrsync.logs import clean
from xdrsync.sync.listing import PageQuery

PROXY_USER = "svc-xdrsync"
PROXY_PASSWORD = "Pr0xy-s3cret:w/@rd"
TOKEN_PATH = "/oauth2/v2.0/token"
INCIDENTS = "/v1.0/security/incidents"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("TEST_PROXY_PASSWORD", PROXY_PASSWORD)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(settings_for(seed=5, incidents=3)) as server:
        yield server


def _tenant(emulator: EmulatorServer, **proxy: Any) -> TenantConfig:
    """The emulator's tenant, validated as a whole config's tenants are (``parse_config``:
    a credential reference that cannot be read yet waits for its use)."""
    spec = emulator.emulator.settings.tenants[0]
    fields = {
        "name": "contoso",
        "tenant_id": spec.tenant_id,
        "client_id": spec.client_id,
        "client_secret": spec.client_secret,
        "graph_url": emulator.base_url,
        "authority_url": emulator.base_url,
        **proxy,
    }
    return TenantConfig.model_validate(fields, context={"defer_credentials": True})


def _window() -> PageQuery:
    now = datetime.now(UTC)
    return PageQuery(ticks_from_datetime(now - timedelta(days=3650)), ticks_from_datetime(now))


def _read_incidents(tenant: TenantConfig) -> int:
    api = DefenderApi.connect(tenant, SyncConfig(max_attempts=1))
    try:
        return len(api.incidents_page(_window()).items)
    finally:
        api.close()


def test_sign_in_and_graph_calls_go_through_the_configured_proxy(
    emulator: EmulatorServer,
) -> None:
    with ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        netloc = proxy.url.removeprefix("http://")
        tenant = _tenant(
            emulator,
            proxy=f"http://{PROXY_USER}@{netloc}",
            proxy_password="env:TEST_PROXY_PASSWORD",
        )
        assert _read_incidents(tenant) == 3
        paths = proxy.paths()
    assert proxy.refused == 0  # its credentials were sent, with the password from env:
    assert any(path.endswith(TOKEN_PATH) for path in paths), paths  # msal's sign-in
    assert INCIDENTS in paths, paths  # and Graph


def test_the_environments_proxy_still_applies_without_the_setting(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert _read_incidents(_tenant(emulator)) == 3
        assert INCIDENTS in proxy.paths()


def test_no_proxy_and_a_proxy_elsewhere_leave_loopback_direct(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY holds for the configured proxy as for the environment's; and a proxy on
    another machine is not asked for this one's loopback (it would reach its own)."""
    with ForwardProxy() as proxy:
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert _read_incidents(_tenant(emulator, proxy=proxy.url)) == 3
        assert proxy.paths() == []
    monkeypatch.delenv("NO_PROXY")
    # Never resolved nor connected to: the emulator on loopback is reached directly.
    assert _read_incidents(_tenant(emulator, proxy="http://proxy.invalid:3128")) == 3


def test_a_refused_proxy_password_is_in_no_log_line_or_error(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEST_PROXY_PASSWORD", PROXY_PASSWORD + "-wrong")
    # Each named too: a command run earlier in this process (`init`) set the libraries'
    # loggers to its own level (`logs.configure`), and their records would not get here.
    for name in ("", "httpx", "httpcore", "msal"):
        caplog.set_level(logging.DEBUG, logger=name or None)
    with (
        ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy,
        structlog.testing.capture_logs() as events,
    ):
        netloc = proxy.url.removeprefix("http://")
        tenant = _tenant(
            emulator,
            proxy=f"http://{PROXY_USER}@{netloc}",
            proxy_password="env:TEST_PROXY_PASSWORD",
        )
        with pytest.raises(XdrSyncError) as raised:
            _read_incidents(tenant)
    assert proxy.refused >= 1 and proxy.paths() == []
    said = [
        str(raised.value),
        repr(raised.value),
        *(clean(str(event)) for event in events),  # as the log's processor writes them
        *(record.getMessage() for record in caplog.records),  # httpx's, msal's
    ]
    # What it is, not an unknown tenant or a refused sign-in (msal read the 407 as Entra's).
    assert "outbound proxy refused our credentials (407)" in str(raised.value), raised.value
    assert "proxy_password" in str(raised.value)
    assert "-wrong" not in " ".join(said), said
    assert events or caplog.records  # something was said, and none of it the password


def _destination() -> SentinelDestinationConfig:
    return SentinelDestinationConfig(
        name="soc",
        type="sentinel",
        subscription_id="22222222-2222-2222-2222-222222222222",
        resource_group="soc",
        workspace="soc-law",
        tenant_id="33333333-3333-3333-3333-333333333333",
        client_id="44444444-4444-4444-4444-444444444444",
        client_secret="env:TEST_PROXY_PASSWORD",
        proxy=f"http://{PROXY_USER}@proxy.corp:3128",
        proxy_password="env:TEST_PROXY_PASSWORD",
    )


def test_the_destinations_clients_take_its_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sentinel's ARM and sign-in clients come from ``build_http_client``; the Logs
    Ingestion SDK (requests) gets the same proxy as its ``proxies``."""
    entry = _destination()
    http = build_http_client(entry, SyncConfig())
    try:
        route = http._transport
        assert isinstance(route, ProxyRoute) and route.proxy_host == "proxy.corp"
        # Both ways out keep the per-attempt deadline on every socket wait.
        for way in (route.proxied, route.direct):
            assert isinstance(way, httpx.HTTPTransport)
            assert type(way._pool._network_backend).__name__ == "_DeadlineBackend"
    finally:
        http.close()
    ingest = "https://soc-dcr.westeurope-1.ingest.monitor.azure.com"
    proxies = requests_proxies(entry, ingest)
    assert set(proxies) == {"http", "https"}
    assert (
        proxies["https"].startswith(f"http://{PROXY_USER}:")
        and "@proxy.corp:3128" in proxies["https"]
    )
    assert PROXY_PASSWORD not in clean(f"upload failed through {proxies['https']}")
    assert requests_proxies(entry, "http://127.0.0.1:8443") == {}  # loopback, proxy elsewhere
    assert requests_proxies(entry.model_copy(update={"proxy": None}), ingest) == {}


def test_an_unreadable_proxy_password_fails_its_tenant_alone(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read at the first call through the proxy, not as the service builds every tenant's
    client (which would have stopped every tenant), and again until it can be read."""
    with ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        netloc = proxy.url.removeprefix("http://")
        tenant = _tenant(
            emulator, proxy=f"http://{PROXY_USER}@{netloc}", proxy_password="env:PROXY_PW_LATER"
        )
        api = DefenderApi.connect(tenant, SyncConfig(max_attempts=1))  # builds, no error
        try:
            with pytest.raises(
                ConfigError, match=r"tenant 'contoso': proxy_password: environment variable"
            ):
                api.incidents_page(_window())
            assert proxy.paths() == []
            monkeypatch.setenv("PROXY_PW_LATER", PROXY_PASSWORD)  # set, as by its operator
            assert len(api.incidents_page(_window()).items) == 3
        finally:
            api.close()
    assert INCIDENTS in proxy.paths()


def test_a_graph_call_refused_by_the_proxy_says_so_at_once(harness_factory: Any) -> None:
    """A 407 was an 'unexpected status' (FatalSyncError); a CONNECT's was retried as a lost
    connection. The operator's to fix: one try, and the message says what to check."""
    refused = httpx.Response(407, headers={"Proxy-Authenticate": 'Basic realm="corp"'})
    h = harness_factory(lambda request: refused, sync=SyncConfig(max_attempts=6))
    with pytest.raises(ConfigError, match=r"GET /v1.0/security/incidents: the outbound proxy "):
        h.client.get("/security/incidents")
    assert len(h.recorder.requests) == 1

    def tunnel_refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ProxyError("407 Proxy Authentication Required")

    h = harness_factory(tunnel_refused, sync=SyncConfig(max_attempts=6))
    with pytest.raises(ConfigError, match="proxy_password"):
        h.client.get("/security/incidents")
    assert len(h.recorder.requests) == 1


@pytest.mark.parametrize(
    ("no_proxy", "host", "direct"),
    [
        ("*", "ingest.monitor.azure.com", True),
        (".corp.example", "dce.corp.example", True),
        ("corp.example", "dce.corp.example", True),
        ("corp.example", "corp.example", True),
        ("corp.example", "notcorp.example", False),
        ("other.example, ,corp.example", "dce.corp.example", True),
        ("", "dce.corp.example", False),
    ],
)
def test_no_proxy_names_hosts_and_domains_as_curl_reads_it(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, host: str, direct: bool
) -> None:
    monkeypatch.setenv("NO_PROXY", no_proxy)
    entry = _destination()
    assert (requests_proxies(entry, f"https://{host}") == {}) is direct


def test_init_writes_the_proxy_and_checks_the_tenant_through_it(
    emulator: EmulatorServer, tmp_path: Path, runner: CliRunner
) -> None:
    """A corporate network's proxy, named to `xdrsync init` (`--proxy`, its password by
    reference): written to the tenant's block, and init's check signs in and reads through
    it. Before, init had no such option: its check went direct and failed there, and the
    proxy had to be added to the file by hand."""
    from xdrsync.cli import app

    spec = emulator.emulator.settings.tenants[0]
    (tmp_path / "contoso.secret").write_text(spec.client_secret + "\n")
    (tmp_path / "proxy.secret").write_text(PROXY_PASSWORD + "\n")
    config = tmp_path / "xdrsync.toml"
    with ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        proxy_url = f"http://{PROXY_USER}@{proxy.url.removeprefix('http://')}"
        done = runner.invoke(
            app,
            [
                "init",
                "--config",
                str(config),
                "--name",
                "contoso",
                "--tenant-id",
                spec.tenant_id,
                "--client-id",
                spec.client_id,
                "--secret-ref",
                f"file:{tmp_path / 'contoso.secret'}",
                "--graph-url",
                emulator.base_url,
                "--authority-url",
                emulator.base_url,
                "--proxy",
                proxy_url,
                "--proxy-password-ref",
                f"file:{tmp_path / 'proxy.secret'}",
            ],
        )
        paths = proxy.paths()
    assert done.exit_code == 0, done.output
    assert PROXY_PASSWORD not in done.output and PROXY_PASSWORD not in config.read_text()
    (tenant,) = tomllib.loads(config.read_text())["tenants"]
    assert tenant["proxy"] == proxy_url
    assert tenant["proxy_password"] == f"file:{tmp_path / 'proxy.secret'}"  # by reference
    assert proxy.refused == 0
    assert any(path.endswith(TOKEN_PATH) for path in paths), paths
    assert INCIDENTS in paths, paths


def test_init_refuses_a_proxy_password_written_out_or_without_a_proxy(
    tmp_path: Path, runner: CliRunner
) -> None:
    from xdrsync.cli import app

    base = [
        "init",
        "--config",
        str(tmp_path / "xdrsync.toml"),
        "--name",
        "contoso",
        "--tenant-id",
        "c029eaff-d272-56e1-ae71-b4f44a08fdf7",
        "--client-id",
        "30f7cae7-5005-5590-87e7-26f0d9af0673",
        "--secret-ref",
        "env:CONTOSO_SECRET",
        "--no-check",
    ]
    for more, words in (
        (["--proxy-password-ref", "env:P"], "proxy_password goes with proxy"),
        (["--proxy", "http://u@proxy.corp:3128", "--proxy-password-ref", "hunter2"], "reference"),
        (["--proxy", "http://u:hunter2@proxy.corp:3128"], "proxy_password"),
    ):
        done = runner.invoke(app, [*base, *more])
        assert done.exit_code == 2, (more, done.output)
        assert words in done.output and "hunter2" not in done.output, done.output
        assert not (tmp_path / "xdrsync.toml").exists()
