"""Loading xdrsync.toml: defaults, secret references, one-line errors, secrets kept hidden."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from xdrsync.config import (
    CONFIG_ENV,
    Config,
    SyncConfig,
    config_path,
    load_config,
)
from xdrsync.errors import ConfigError
from xdrsync.logs import configure

SECRET = "Xq8~very.secret-value_123"
TENANT = "00000000-0000-0000-0000-00000000000a"
CLIENT = "11111111-1111-1111-1111-11111111111b"


def write(tmp_path: Path, body: str, name: str = "xdrsync.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def tenant_block(secret_line: str = 'client_secret = "env:CONTOSO_SECRET"', **extra: str) -> str:
    lines = [
        "[[tenants]]",
        'name = "contoso"',
        f'tenant_id = "{TENANT}"',
        f'client_id = "{CLIENT}"',
        secret_line,
        *(f"{key} = {value}" for key, value in extra.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTOSO_SECRET", SECRET)
    monkeypatch.delenv(CONFIG_ENV, raising=False)


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "\n" not in message, "errors are one line"
    # Not chained: pydantic's own error text quotes input values, which may be secrets.
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    return message


def test_the_design_example_loads_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [workspace]
        path = "./xdrsync-data"

        [[tenants]]
        name = "contoso"
        tenant_id = "00000000-0000-0000-0000-000000000000"
        client_id = "11111111-1111-1111-1111-111111111111"
        client_secret = "env:CONTOSO_SECRET"
        graph_url = "https://graph.microsoft.com"
        authority_url = "https://login.microsoftonline.com"

        [console]
        host = "127.0.0.1"
        port = 8080
        """,
    )
    config = load_config(path)
    tenant = config.tenants[0]
    assert tenant.client_secret is not None
    assert tenant.client_secret.get_secret_value() == SECRET
    assert tenant.rate_limit_per_minute == 120
    assert tenant.verify_tls is True
    assert config.sync == SyncConfig()
    assert (config.sync.page_size_incidents, config.sync.page_size_alerts) == (50, 500)
    assert config.workspace.path == tmp_path / "xdrsync-data"
    assert config.workspace.database_url is None
    assert (config.console.host, config.console.port) == ("127.0.0.1", 8080)


def test_models_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, tenant_block()))
    with pytest.raises(ValueError, match="frozen"):
        config.tenants[0].name = "other"  # type: ignore[misc]


def test_secrets_never_show_in_repr_or_str(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[workspace]\ndatabase_url = "postgresql+psycopg://sync:pw-hidden@db/x"\n'
            + tenant_block(),
        )
    )
    for text in (repr(config), str(config), repr(config.tenants[0]), str(config.model_dump())):
        assert SECRET not in text
        assert "pw-hidden" not in text
    assert config.workspace.database_url is not None
    assert "pw-hidden" in config.workspace.database_url.get_secret_value()


def test_a_file_reference_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "contoso").write_text(SECRET + "\n", encoding="utf-8")
    config = load_config(write(tmp_path, tenant_block('client_secret = "file:secrets/contoso"')))
    secret = config.tenants[0].client_secret
    assert secret is not None and secret.get_secret_value() == SECRET


def test_an_environment_reference_is_trimmed_like_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable filled from a file (a Kubernetes secret, an env file) may end with a newline;
    sent with it, the secret fails sign-in."""
    monkeypatch.setenv("CONTOSO_SECRET", f" {SECRET}\n")
    config = load_config(write(tmp_path, tenant_block()))
    secret = config.tenants[0].client_secret
    assert secret is not None and secret.get_secret_value() == SECRET


def test_a_literal_secret_works_but_is_warned_about_without_showing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # At WARNING whatever level a command run earlier in this process left logging at.
    caplog.set_level(logging.WARNING, logger="xdrsync.config")
    config = load_config(write(tmp_path, tenant_block(f'client_secret = "{SECRET}"')))
    secret = config.tenants[0].client_secret
    assert secret is not None and secret.get_secret_value() == SECRET
    assert [r.levelname for r in caplog.records if "inline" in r.getMessage()] == ["WARNING"]
    assert SECRET not in caplog.text


def test_the_literal_secret_warning_goes_to_stderr_not_into_a_commands_output(
    tmp_path: Path,
) -> None:
    """`query` and the other commands that only read configure no logging: the warning must
    not land in their output, where `--format json` feeds a script or jq."""
    config = write(tmp_path, tenant_block(f'client_secret = "{SECRET}"'))
    (tmp_path / "xdrsync-data").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "xdrsync", "query", "--config", str(config), "--format", "json",
         "SecurityIncident | take 1"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert "written inline" in done.stderr and SECRET not in done.stderr


def test_the_literal_secret_warning_is_a_line_of_the_services_json_log(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure("info", json=True, file=buffer)
    try:
        load_config(write(tmp_path, tenant_block(f'client_secret = "{SECRET}"')))
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
    (line,) = buffer.getvalue().splitlines()
    event = json.loads(line)
    assert event["level"] == "warning" and "written inline" in event["event"]


def secret_error(path: Path) -> str:
    """A tenant's secret that cannot be read loads (the other tenants go on) and fails when
    its client asks for it: one line naming the tenant and what is missing."""
    (tenant,) = load_config(path).tenants
    assert tenant.client_secret is not None
    with pytest.raises(ConfigError) as raised:
        tenant.client_secret.get_secret_value()
    message = str(raised.value)
    assert "\n" not in message and raised.value.__cause__ is None
    return message


def test_a_missing_environment_variable_fails_its_tenant_naming_field_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, tenant_block('client_secret = "env:NOT_SET_ANYWHERE"'))
    message = secret_error(path)
    assert message == (
        "tenant 'contoso': client_secret: environment variable NOT_SET_ANYWHERE is not set"
    )
    monkeypatch.setenv("NOT_SET_ANYWHERE", SECRET)  # read again when asked: set it, it works
    (tenant,) = load_config(path).tenants
    assert tenant.client_secret is not None and tenant.client_secret.get_secret_value() == SECRET
    assert SECRET not in repr(tenant)


def test_an_unreadable_secret_file_names_the_file(tmp_path: Path) -> None:
    message = secret_error(write(tmp_path, tenant_block('client_secret = "file:nope.txt"')))
    assert "nope.txt" in message and "client_secret" in message and "'contoso'" in message


def test_a_secret_reference_without_a_name_is_still_a_config_error(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, tenant_block('client_secret = "env: "')))
    assert "tenants[0].client_secret (tenant 'contoso')" in message and "variable name" in message


def test_a_missing_config_file(tmp_path: Path) -> None:
    message = load_error(tmp_path / "absent.toml")
    assert "absent.toml" in message and "not found" in message


def test_invalid_toml_is_one_line_with_the_position(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "[[tenants]\nname = 'x'\n"))
    assert "xdrsync.toml" in message and "invalid TOML" in message and "line 1" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (tenant_block("# no credential"), "exactly one of client_secret or certificate_path"),
        (
            tenant_block(certificate_path='"app.pem"'),
            "exactly one of client_secret or certificate_path",
        ),
        (tenant_block() + tenant_block(), "share the name"),
        ("[workspace]\n", "tenants: add at least one [[tenants]] table"),
        (tenant_block() + "[sync]\npage_size_incidents = 100\n", "sync.page_size_incidents"),
        (tenant_block() + "[sync]\npage_size_alerts = 5000\n", "sync.page_size_alerts"),
        (
            tenant_block(clent_secret='"typo"'),
            "tenants[0].clent_secret (tenant 'contoso'): unknown",
        ),
        (tenant_block(authority_url='"http://login.example.com"'), "loopback"),
        (tenant_block(graph_url='"https://graph.microsoft.com/v1.0"'), "without /v1.0"),
        (tenant_block(graph_url='"ftp://graph.microsoft.com"'), "https URL"),
        (tenant_block(verify_tls='"missing-ca.pem"'), "CA bundle"),
        (tenant_block().replace(TENANT, "common"), "not a tenant"),
        (tenant_block(name='"has space"').replace('name = "contoso"\n', ""), "tenants[0].name"),
        (tenant_block(rate_limit_per_minute="0"), "rate_limit_per_minute"),
        ("[console]\nport = 65536\n" + tenant_block(), "console.port"),
    ],
)
def test_invalid_settings_are_named(tmp_path: Path, body: str, expected: str) -> None:
    if "app.pem" in body:
        write(tmp_path, "-----BEGIN PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\n", "app.pem")
    message = load_error(write(tmp_path, body))
    assert expected in message
    assert message.startswith(str(tmp_path / "xdrsync.toml") + ": ")


def test_a_certificate_file_must_hold_key_and_certificate(tmp_path: Path) -> None:
    write(tmp_path, "-----BEGIN CERTIFICATE-----\n", "cert-only.pem")
    body = tenant_block("# none", certificate_path='"cert-only.pem"')
    message = load_error(write(tmp_path, body))
    assert "private key and certificate" in message


def test_errors_never_echo_the_offending_value(tmp_path: Path) -> None:
    # A secret pasted into the wrong field: pydantic would quote it; we must not.
    body = tenant_block().replace(f'client_id = "{CLIENT}"', f'client_id = "{SECRET} oops"')
    body += f'[console]\nport = "{SECRET}"\n'
    message = load_error(write(tmp_path, body))
    assert SECRET not in message
    assert "tenants[0].client_id" in message and "console.port" in message


def test_loopback_http_is_accepted_for_the_emulator(tmp_path: Path) -> None:
    body = tenant_block(
        graph_url='"http://127.0.0.1:8650/"', authority_url='"http://localhost:8650"'
    )
    tenant = load_config(write(tmp_path, body)).tenants[0]
    assert tenant.graph_url == "http://127.0.0.1:8650"
    assert tenant.authority_url == "http://localhost:8650"


def test_the_config_file_comes_from_the_environment_or_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = write(tmp_path, tenant_block(), "elsewhere.toml")
    monkeypatch.chdir(tmp_path)
    assert config_path() == Path("xdrsync.toml")
    monkeypatch.setenv(CONFIG_ENV, str(elsewhere))
    assert config_path() == elsewhere
    assert load_config().tenants[0].name == "contoso"
    assert config_path(Path("given.toml")) == Path("given.toml")


def test_for_emulator_builds_a_loopback_config_without_a_file(tmp_path: Path) -> None:
    config = Config.for_emulator(
        "http://127.0.0.1:8650",
        [
            (TENANT, CLIENT, SECRET),
            ("fabrikam", "22222222-2222-2222-2222-222222222222", CLIENT, "emu~2"),
        ],
        workspace_path=tmp_path / "ws",
    )
    first, second = config.tenants
    assert (first.name, second.name) == ("tenant-1", "fabrikam")
    assert first.graph_url == first.authority_url == "http://127.0.0.1:8650"
    assert first.client_secret == SecretStr(SECRET)
    assert SECRET not in repr(config)
    assert config.workspace.path == tmp_path / "ws"
    assert config.tenant("FABRIKAM") is second
    assert config.tenant(TENANT) is first
    with pytest.raises(ConfigError, match="no tenant named"):
        config.tenant("nobody")


def test_for_emulator_refuses_a_non_loopback_http_url() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        Config.for_emulator("http://emulator.example:8650", [(TENANT, CLIENT, SECRET)])


@pytest.mark.parametrize(
    ("enabled", "tenant_two_way", "writes"),
    [
        ("true", None, True),
        ("true", "true", True),
        ("true", "false", False),
        ("false", None, False),
        ("false", "true", False),  # the global switch wins: every tenant read-only
        ("false", "false", False),
    ],
)
def test_two_way_enabled_false_makes_every_tenant_read_only(
    tmp_path: Path, enabled: str, tenant_two_way: str | None, writes: bool
) -> None:
    extra = {} if tenant_two_way is None else {"two_way": tenant_two_way}
    path = write(tmp_path, tenant_block(**extra) + f"\n[two_way]\nenabled = {enabled}\n")
    config = load_config(path)
    assert config.writes_to(config.tenants[0]) is writes


def test_console_tls_files_are_taken_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "console.pem").write_text("cert")
    (tmp_path / "console.key").write_text("key")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    tls = '\n[console]\ntls_certfile = "console.pem"\ntls_keyfile = "console.key"\n'
    config = load_config(write(tmp_path, tenant_block() + tls))
    assert config.console.tls_certfile == tmp_path / "console.pem"
    assert config.console.tls_keyfile == tmp_path / "console.key"
    missing = write(tmp_path, tenant_block() + tls.replace("console.key", "gone.key"), "b.toml")
    message = load_error(missing)
    assert "console.tls_keyfile" in message and str(tmp_path / "gone.key") in message


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("sqlite:///hub.db", "sqlite:///{base}/hub.db"),
        (
            "sqlite+pysqlite:///data/hub.db?timeout=5",
            "sqlite+pysqlite:///{base}/data/hub.db?timeout=5",
        ),
        ("sqlite:////srv/hub.db", "sqlite:////srv/hub.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://u:p@db/hub", "postgresql+psycopg://u:p@db/hub"),
    ],
)
def test_a_relative_sqlite_database_url_is_taken_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path.parent)
    path = write(tmp_path, f'[workspace]\ndatabase_url = "{written}"\n' + tenant_block())
    url = load_config(path).workspace.database_url
    assert url is not None and url.get_secret_value() == expected.format(base=tmp_path)


def test_a_relative_sqlite_hub_read_from_the_current_folder_before_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Earlier versions read `sqlite:///hub.db` from the current folder (a service's working
    directory): where that hub exists and the config's folder has none, the config is refused
    rather than a new, empty hub opened beside it."""
    service_dir, config_dir = tmp_path / "srv", tmp_path / "etc"
    service_dir.mkdir()
    config_dir.mkdir()
    (service_dir / "hub.db").write_bytes(b"SQLite format 3\x00")
    monkeypatch.chdir(service_dir)
    message = load_error(
        write(config_dir, '[workspace]\ndatabase_url = "sqlite:///hub.db"\n' + tenant_block())
    )
    assert "absolute path" in message and str(service_dir / "hub.db") in message
    home = write(config_dir, '[workspace]\ndatabase_url = "sqlite:///~/hub.db"\n' + tenant_block())
    url = load_config(home).workspace.database_url
    assert url is not None and url.get_secret_value() == f"sqlite:///{Path.home()}/hub.db"


@pytest.mark.parametrize(
    ("section", "setting"),
    [
        ("query", "timeout_seconds"),
        ("sync", "request_timeout_seconds"),
        ("sync", "poll_interval_seconds"),
        ("two_way", "max_retry_seconds"),
    ],
)
def test_durations_must_be_finite(tmp_path: Path, section: str, setting: str) -> None:
    path = write(tmp_path, tenant_block() + f"\n[{section}]\n{setting} = inf\n")
    message = load_error(path)
    assert f"{section}.{setting}" in message and "finite" in message


def test_a_defender_tenant_is_named_by_its_guid_a_destination_may_use_a_domain(
    tmp_path: Path,
) -> None:
    """Graph's records carry the tenant's GUID; a tenant keyed by a domain name would be
    stored apart from its own rows in the tables, its console scope and its Sentinel names."""
    by_domain = tenant_block().replace(f'tenant_id = "{TENANT}"', 'tenant_id = "contoso.com"')
    message = load_error(write(tmp_path, by_domain))
    assert "tenant_id" in message and "GUID" in message
    destination = """
        [[destinations]]
        name = "sentinel-soc"
        type = "sentinel"
        subscription_id = "22222222-2222-2222-2222-222222222222"
        resource_group = "soc"
        workspace = "soc-law"
        tenant_id = "fabrikam.com"
        client_id = "44444444-4444-4444-4444-444444444444"
        client_secret = "env:CONTOSO_SECRET"
        """
    config = load_config(write(tmp_path, tenant_block() + textwrap.dedent(destination)))
    assert config.destinations[0].tenant_id == "fabrikam.com"


def test_a_malformed_id_is_explained_as_the_model_takes_it(tmp_path: Path) -> None:
    """Only a destination's tenant_id may be a domain name: a Defender tenant's malformed
    tenant_id is told it must be a GUID, never offered the domain name it would refuse, and
    a client_id is the app's GUID for both."""
    malformed = tenant_block().replace(f'tenant_id = "{TENANT}"', 'tenant_id = "not a guid!"')
    message = load_error(write(tmp_path, malformed))
    assert "a GUID" in message and "domain name" in message  # "... not a domain name"
    assert "verified domain name" not in message and "not a domain name" in message
    bad_client = tenant_block().replace("client_id = ", 'client_id = "x y" #', 1)
    message = load_error(write(tmp_path, bad_client))
    assert "client_id" in message and "application (client) ID, a GUID" in message
    destination = """
        [[destinations]]
        name = "sentinel-soc"
        type = "sentinel"
        subscription_id = "22222222-2222-2222-2222-222222222222"
        resource_group = "soc"
        workspace = "soc-law"
        tenant_id = "not a domain!"
        client_id = "44444444-4444-4444-4444-444444444444"
        client_secret = "env:CONTOSO_SECRET"
        """
    message = load_error(write(tmp_path, tenant_block() + textwrap.dedent(destination)))
    assert "a GUID, or a verified domain name" in message


@pytest.mark.parametrize(
    "content",
    [b"not a certificate\n", b"0\x82\x01\x0a\x02\x82\x01\x01\x00"],
    ids=["text", "der"],
)
def test_a_ca_bundle_without_pem_certificates_is_one_line_at_load(
    tmp_path: Path, content: bytes
) -> None:
    # A corporate CA exported as DER, or the wrong file: refused when the config loads,
    # not as a traceback when the first tenant's client is built.
    (tmp_path / "corp-ca.crt").write_bytes(content)
    body = tenant_block(verify_tls='"corp-ca.crt"')
    message = load_error(write(tmp_path, body))
    assert "tenants[0].verify_tls" in message and "corp-ca.crt" in message
    assert "PEM" in message


def test_an_empty_ca_bundle_path_is_not_taken_for_the_config_folder(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, tenant_block(verify_tls='""')))
    assert "tenants[0].verify_tls" in message


@pytest.mark.parametrize("literal", ['""', '"   "'])
def test_an_empty_client_secret_is_refused_at_load(tmp_path: Path, literal: str) -> None:
    message = load_error(write(tmp_path, tenant_block(f"client_secret = {literal}")))
    assert "tenants[0].client_secret" in message and "empty" in message


def test_a_pfx_certificate_and_its_password_by_reference_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "app.pfx").write_bytes(b"0\x82\x0a\x00 a PKCS#12 file, opened at sign-in")
    monkeypatch.setenv("CONTOSO_PFX_PASSWORD", "pfx-pass\n")
    body = tenant_block(
        "# a certificate instead",
        certificate_path='"app.pfx"',
        certificate_password='"env:CONTOSO_PFX_PASSWORD"',
    )
    tenant = load_config(write(tmp_path, body)).tenants[0]
    assert tenant.certificate_path == tmp_path / "app.pfx"
    assert tenant.certificate_password is not None
    assert tenant.certificate_password.get_secret_value() == "pfx-pass"
    assert "pfx-pass" not in repr(tenant)


def test_an_unset_certificate_password_fails_its_tenant_at_sign_in_naming_the_setting(
    tmp_path: Path,
) -> None:
    write(tmp_path, "-----BEGIN PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\n", "app.pem")
    body = tenant_block(
        "# a certificate instead",
        certificate_path='"app.pem"',
        certificate_password='"env:NOT_SET_ANYWHERE"',
    )
    tenant = load_config(write(tmp_path, body)).tenants[0]
    assert tenant.certificate_password is not None
    with pytest.raises(ConfigError, match="certificate_password: environment variable"):
        tenant.certificate_password.get_secret_value()


def test_a_secret_file_written_with_a_byte_order_mark_is_read_without_it(tmp_path: Path) -> None:
    # PowerShell 5's `Set-Content -Encoding UTF8` and old Notepad write a BOM first; sent
    # with it, the secret fails sign-in (AADSTS7000215) though the file looks right.
    (tmp_path / "contoso.secret").write_bytes(b"\xef\xbb\xbf" + SECRET.encode() + b"\r\n")
    config = load_config(write(tmp_path, tenant_block('client_secret = "file:contoso.secret"')))
    secret = config.tenants[0].client_secret
    assert secret is not None and secret.get_secret_value() == SECRET


def test_a_config_file_written_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "xdrsync.toml"
    path.write_bytes(b"\xef\xbb\xbf" + tenant_block().encode())
    assert load_config(path).tenants[0].name == "contoso"


def test_a_blank_environment_variable_is_called_empty_not_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `env | grep CONTOSO_SECRET` shows it: "not set" would send the operator the wrong way.
    monkeypatch.setenv("CONTOSO_SECRET", " \n")
    tenant = load_config(write(tmp_path, tenant_block())).tenants[0]
    assert tenant.client_secret is not None
    with pytest.raises(ConfigError, match="environment variable CONTOSO_SECRET is empty"):
        tenant.client_secret.get_secret_value()


def test_turning_tls_verification_off_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The client secret and every bearer token then go to whoever answers: allowed (a lab),
    # never silently.
    caplog.set_level(logging.WARNING, logger="xdrsync.config")
    load_config(write(tmp_path, tenant_block(verify_tls="false")))
    warned = [r.getMessage() for r in caplog.records if "verify_tls" in r.getMessage()]
    assert len(warned) == 1 and "CA bundle" in warned[0]


@pytest.mark.parametrize(
    "spelled",
    [
        "72F988BF-86F1-41AF-91AB-2D7CD011DB47",  # as some tools print it
        "{72f988bf-86f1-41af-91ab-2d7cd011db47}",  # as the registry writes it
        " { 72F988BF-86f1-41af-91AB-2d7cd011db47 } ",
    ],
)
def test_a_tenant_id_in_capitals_or_braces_is_the_tenant_graph_names(
    tmp_path: Path, spelled: str
) -> None:
    """A GUID compares without regard to case or braces, and Graph writes it lower case: the
    hub, the log tables, the console's scopes and the outbox key a tenant by it, so the config
    writes every spelling of one tenant as that one (not a second tenant beside the first)."""
    text = tenant_block().replace(f'tenant_id = "{TENANT}"', f'tenant_id = "{spelled}"')
    config = load_config(write(tmp_path, text))
    assert config.tenants[0].tenant_id == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert config.tenant(spelled).name == "contoso"  # `--tenant` takes any spelling too


# -- an outbound proxy ------------------------------------------------------------------------

PROXY_PASSWORD = "Pr0xy-pass/w:rd@1"


def test_a_proxy_and_its_password_by_reference_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORP_PROXY_PASSWORD", PROXY_PASSWORD)
    body = tenant_block(
        proxy='"http://svc-xdrsync@proxy.corp:3128/"',
        proxy_password='"env:CORP_PROXY_PASSWORD"',
    )
    tenant = load_config(write(tmp_path, body)).tenants[0]
    assert tenant.proxy == "http://svc-xdrsync@proxy.corp:3128"
    assert tenant.proxy_password is not None
    assert tenant.proxy_password.get_secret_value() == PROXY_PASSWORD
    assert PROXY_PASSWORD not in repr(tenant) and PROXY_PASSWORD not in str(tenant)
    assert load_config(write(tmp_path, tenant_block())).tenants[0].proxy is None  # default


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"proxy": '"proxy.corp:3128"'}, "http://, https://, socks5://"),  # no scheme
        ({"proxy": '"ftp://proxy.corp:21"'}, "http://, https://, socks5://"),
        ({"proxy": '"http://"'}, "with a host"),
        ({"proxy": '"http://proxy.corp:port"'}, "not a URL such as"),
        ({"proxy": '"http://proxy.corp:3128/path?x=1"'}, "host and port only"),
        ({"proxy": f'"http://svc:{PROXY_PASSWORD}@proxy.corp:3128"'}, "goes in proxy_password"),
        (
            {"proxy": '"http://svc@proxy.corp:3128"', "proxy_password": f'"{PROXY_PASSWORD}"'},
            "reference only",
        ),
        ({"proxy_password": '"env:CONTOSO_SECRET"'}, "proxy_password goes with proxy"),
        (
            {"proxy": '"http://proxy.corp:3128"', "proxy_password": '"env:CONTOSO_SECRET"'},
            "needs the proxy's user name",
        ),
    ],
)
def test_a_bad_proxy_is_one_line_at_load_that_never_shows_a_password(
    tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    message = load_error(write(tmp_path, tenant_block(**extra)))
    assert "tenants[0]" in message and "(tenant 'contoso')" in message
    assert expected in message, message
    assert PROXY_PASSWORD not in message and "Pr0xy" not in message


def test_a_socks_proxy_without_its_package_is_one_line_at_load(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed: a SOCKS proxy is usable")
    message = load_error(write(tmp_path, tenant_block(proxy='"socks5://127.0.0.1:1080"')))
    assert "httpx[socks]" in message


def test_a_destinations_proxy_password_must_be_readable_at_load(tmp_path: Path) -> None:
    """A Defender tenant's is read when its client is built (it fails alone); a
    destination's, as its client_secret, at load."""
    body = tenant_block(
        proxy='"http://svc@proxy.corp:3128"', proxy_password='"env:NOT_SET_ANYWHERE"'
    )
    tenant = load_config(write(tmp_path, body)).tenants[0]
    assert tenant.proxy_password is not None
    with pytest.raises(ConfigError, match=r"tenant 'contoso': proxy_password: environment"):
        tenant.proxy_password.get_secret_value()
    destination = textwrap.dedent(
        """
        [[destinations]]
        name = "soc"
        type = "sentinel"
        subscription_id = "22222222-2222-2222-2222-222222222222"
        resource_group = "soc"
        workspace = "soc-law"
        tenant_id = "33333333-3333-3333-3333-333333333333"
        client_id = "44444444-4444-4444-4444-444444444444"
        client_secret = "env:CONTOSO_SECRET"
        proxy = "http://svc@proxy.corp:3128"
        proxy_password = "env:NOT_SET_ANYWHERE"
        """
    )
    message = load_error(write(tmp_path, tenant_block() + destination))
    assert "destinations[0].proxy_password" in message and "NOT_SET_ANYWHERE" in message
