"""``xdrsync init`` and the connector check, against the Defender emulator: a read-write
tenant, a read-only one (the emulator grants it the Read.All roles only) and a wrong secret."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from xdrsync import cli_init
from xdrsync.cli_init import init_command
from xdrsync.config import TenantConfig, load_config
from xdrsync.connectors import (
    PERMISSIONS,
    check_tenant,
    render_tenant_toml,
    required_permissions,
    setup_steps,
)
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.emulator.tenants import TenantSpec

SECRET_VAR = "XDRSYNC_TEST_INIT_SECRET"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    settings = settings_for(seed=41, incidents=10, tenants=2, read_only_tenants=[1])
    with EmulatorServer(settings) as server:
        yield server


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("init")(init_command)

    @app.callback()
    def _root() -> None:  # keeps "init" a subcommand, as in cli.py
        pass

    return app


def _tenants(server: EmulatorServer) -> tuple[TenantSpec, TenantSpec]:
    writer, reader = server.emulator.settings.tenants
    assert not writer.read_only and reader.read_only
    return writer, reader


def _args(server: EmulatorServer, tenant: TenantSpec, config: Path, *more: str) -> list[str]:
    return [
        "init",
        "--config",
        str(config),
        "--name",
        tenant.name,
        "--tenant-id",
        tenant.tenant_id,
        "--client-id",
        tenant.client_id,
        "--graph-url",
        server.base_url,
        "--authority-url",
        server.base_url,
        *more,
    ]


def _secret_file(folder: Path, tenant: TenantSpec, secret: str | None = None) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{tenant.name}.secret"
    path.write_text((secret or tenant.client_secret) + "\n")
    path.chmod(0o600)
    return f"file:{path.name}"


def test_init_writes_the_config_by_reference_and_checks_a_read_write_tenant(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path
) -> None:
    writer, _ = _tenants(emulator)
    config = tmp_path / "xdrsync.toml"
    ref = _secret_file(tmp_path, writer)
    done = runner.invoke(_app(), _args(emulator, writer, config, "--secret-ref", ref))
    assert done.exit_code == 0, done.output
    # The steps and permissions come first.
    assert done.output.index("Register an application") < done.output.index("wrote")
    for permission in PERMISSIONS:
        assert permission.name in done.output
    assert "everything works" in done.output
    text = config.read_text()
    assert writer.client_secret not in text and f'client_secret = "{ref}"' in text
    loaded = load_config(config)
    (tenant,) = loaded.tenants
    assert tenant.name == writer.name and tenant.two_way is None  # not asked: not written
    assert loaded.writes_to(tenant) is True  # [two_way] enabled defaults to true
    assert tenant.client_secret is not None
    assert tenant.client_secret.get_secret_value() == writer.client_secret
    assert loaded.workspace.path == tmp_path / "xdrsync-data"


def test_init_leaves_two_way_to_the_config_unless_asked(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path
) -> None:
    """Without --two-way, an added tenant follows ``[two_way] enabled = false`` of the config:
    it is read-only, so the check does not ask for the write permissions."""
    writer, reader = _tenants(emulator)
    config = tmp_path / "xdrsync.toml"
    writer_ref = _secret_file(tmp_path, writer)
    first = runner.invoke(_app(), _args(emulator, writer, config, "--secret-ref", writer_ref))
    assert first.exit_code == 0, first.output
    config.write_text(config.read_text() + "\n[two_way]\nenabled = false\n")
    reader_ref = _secret_file(tmp_path, reader)
    added = runner.invoke(
        _app(), _args(emulator, reader, config, "--secret-ref", reader_ref, "--add-tenant")
    )
    assert added.exit_code == 0, added.output
    assert "Missing permission" not in added.output and "everything works" in added.output
    assert all("two_way" not in t for t in tomllib.loads(config.read_text())["tenants"])
    loaded = load_config(config)
    assert [loaded.writes_to(t) for t in loaded.tenants] == [False, False]
    asked = runner.invoke(
        _app(),
        _args(emulator, writer, config, "--secret-ref", writer_ref, "--two-way", "--force"),
    )
    assert asked.exit_code == 0, asked.output
    assert tomllib.loads(config.read_text())["tenants"][0]["two_way"] is True


def test_paths_typed_from_another_folder_are_written_as_the_config_reads_them(
    emulator: EmulatorServer,
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """init run where the secret and the PEM are, writing a config elsewhere: the config,
    which takes relative paths from its own folder, still finds them."""
    writer, reader = _tenants(emulator)
    home = tmp_path / "home"
    ref = _secret_file(home, writer)  # file:NAME, beside the current folder's files
    pem = home / "app.pem"
    pem.write_text(
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"
    )
    monkeypatch.chdir(home)
    config = tmp_path / "etc" / "xdrsync.toml"
    done = runner.invoke(_app(), _args(emulator, writer, config, "--secret-ref", ref))
    assert done.exit_code == 0 and "everything works" in done.output, done.output
    added = runner.invoke(
        _app(),
        _args(emulator, reader, config, "--certificate", "app.pem", "--add-tenant", "--no-check"),
    )
    assert added.exit_code == 0, added.output
    loaded = load_config(config)
    first, second = loaded.tenants
    assert first.client_secret is not None
    assert first.client_secret.get_secret_value() == writer.client_secret
    assert second.certificate_path is not None and second.certificate_path.samefile(pem)


def test_an_existing_workspace_typed_from_another_folder_is_the_one_the_config_names(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`init --force -c conf/xdrsync.toml --workspace xdrsync-data` run beside the service's
    workspace: the config, which reads its workspace from its own folder, names that one, not
    a new, empty conf/xdrsync-data (a fresh backfill, no console users, no edits)."""
    (tmp_path / "xdrsync-data").mkdir()
    (tmp_path / "xdrsync-data" / "hub.sqlite3").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    done = runner.invoke(
        _app(),
        [
            "init", "--no-check", "--config", "conf/xdrsync.toml", "--workspace", "xdrsync-data",
            "--name", "contoso", "--tenant-id", "00000000-0000-0000-0000-000000000001",
            "--client-id", "11111111-1111-1111-1111-111111111111",
            "--secret-ref", f"env:{SECRET_VAR}",
        ],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    loaded = load_config(tmp_path / "conf" / "xdrsync.toml")
    assert loaded.workspace.path.resolve() == (tmp_path / "xdrsync-data").resolve()


def test_an_existing_config_is_kept_unless_forced_and_tenants_are_added(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path
) -> None:
    writer, reader = _tenants(emulator)
    config = tmp_path / "xdrsync.toml"
    first = _args(emulator, writer, config, "--secret-ref", _secret_file(tmp_path, writer))
    assert runner.invoke(_app(), [*first, "--no-check"]).exit_code == 0
    before = config.read_text()

    again = runner.invoke(_app(), [*first, "--no-check"])
    assert again.exit_code == 2 and "--force" in again.output and "--add-tenant" in again.output
    assert config.read_text() == before

    duplicate = runner.invoke(_app(), [*first, "--no-check", "--add-tenant"])
    assert duplicate.exit_code == 2 and "already has a tenant" in duplicate.output

    added = runner.invoke(
        _app(),
        _args(
            emulator,
            reader,
            config,
            "--secret-ref",
            _secret_file(tmp_path, reader),
            "--read-only",
            "--add-tenant",
        ),
    )
    assert added.exit_code == 0, added.output
    assert config.read_text().startswith(before)
    loaded = load_config(config)
    assert [t.name for t in loaded.tenants] == [writer.name, reader.name]
    assert loaded.writes_to(loaded.tenants[1]) is False

    forced = runner.invoke(_app(), [*first, "--no-check", "--force", "--workspace", "elsewhere"])
    assert forced.exit_code == 0, forced.output
    replaced = load_config(config)
    assert [t.name for t in replaced.tenants] == [writer.name]
    assert replaced.workspace.path == tmp_path / "elsewhere"


def test_a_missing_permission_is_said_plainly_with_exit_0(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, reader = _tenants(emulator)
    monkeypatch.setenv(SECRET_VAR, reader.client_secret)
    config = tmp_path / "xdrsync.toml"
    done = runner.invoke(
        _app(), _args(emulator, reader, config, "--secret-ref", f"env:{SECRET_VAR}", "--two-way")
    )
    assert done.exit_code == 0, done.output
    assert "MISSING" in done.output
    assert (
        "Missing permission(s): SecurityIncident.ReadWrite.All, SecurityAlert.ReadWrite.All"
        in done.output
    )
    assert "read-only" in done.output
    assert reader.client_secret not in done.output
    assert f'client_secret = "env:{SECRET_VAR}"' in config.read_text()


def test_a_wrong_secret_fails_the_check_after_writing(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path
) -> None:
    writer, _ = _tenants(emulator)
    config = tmp_path / "xdrsync.toml"
    ref = _secret_file(tmp_path, writer, secret="not-the-secret-at-all")
    done = runner.invoke(_app(), _args(emulator, writer, config, "--secret-ref", ref))
    assert done.exit_code == 1
    assert config.exists()
    assert "AADSTS7000215" in done.output and "not tried" in done.output
    assert "not-the-secret-at-all" not in done.output


def test_an_unset_variable_is_reported_and_the_config_kept(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, _ = _tenants(emulator)
    monkeypatch.delenv(SECRET_VAR, raising=False)
    config = tmp_path / "xdrsync.toml"
    done = runner.invoke(
        _app(), _args(emulator, writer, config, "--secret-ref", f"env:{SECRET_VAR}")
    )
    assert done.exit_code == 1 and f"environment variable {SECRET_VAR} is not set" in done.output
    assert config.exists()


def test_the_file_written_is_named_as_it_is_even_with_brackets(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path
) -> None:
    """``[prod]/xdrsync.toml`` was announced as ``/xdrsync.toml``: its name taken as markup."""
    writer, _ = _tenants(emulator)
    config = tmp_path / "[prod]" / "xdrsync.toml"
    args = _args(emulator, writer, config, "--secret-ref", "env:X", "--no-check")
    done = runner.invoke(_app(), args)
    assert done.exit_code == 0, done.output
    assert f"wrote {config} (tenant {writer.name})" in done.output, done.output


def test_a_literal_secret_is_refused(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path
) -> None:
    writer, _ = _tenants(emulator)
    config = tmp_path / "xdrsync.toml"
    done = runner.invoke(
        _app(), _args(emulator, writer, config, "--secret-ref", writer.client_secret)
    )
    assert done.exit_code == 2 and "by reference" in done.output
    assert writer.client_secret not in done.output
    assert not config.exists()


def test_without_a_terminal_missing_options_are_named_on_one_line(tmp_path: Path) -> None:
    program = "import typer\nfrom xdrsync.cli_init import init_command\ntyper.run(init_command)\n"
    done = subprocess.run(
        [sys.executable, "-c", program, "--config", str(tmp_path / "x.toml"), "--name", "acme"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--tenant-id" in lines[0] and "--client-id" in lines[0]
    assert "--secret-ref or --certificate" in lines[0] and "--name" not in lines[0]
    assert not (tmp_path / "x.toml").exists()


def test_interactive_prompts_fill_what_options_did_not(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, _ = _tenants(emulator)
    monkeypatch.setattr(cli_init, "_interactive", lambda: True)
    ref = _secret_file(tmp_path, writer)
    config = tmp_path / "xdrsync.toml"
    answers = [
        "ws",  # workspace
        writer.name,
        writer.tenant_id,
        writer.client_id,
        writer.client_secret,  # a pasted secret: refused, asked again
        ref,
        "n",  # two-way
        emulator.base_url,
        emulator.base_url,
    ]
    done = runner.invoke(_app(), ["init", "--config", str(config)], input="\n".join(answers) + "\n")
    assert done.exit_code == 0, done.output
    assert "never written to the config" in done.output
    data = tomllib.loads(config.read_text())
    assert data["workspace"]["path"] == "ws"
    (tenant,) = data["tenants"]
    assert tenant["client_secret"] == ref and tenant["two_way"] is False
    assert writer.client_secret not in config.read_text()
    # Read-only: the write permissions are not needed, so nothing is missing.
    assert "everything works" in done.output


def test_a_wrong_answer_is_asked_again_at_once_not_after_every_prompt(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A domain typed for the tenant id (which many tools take) was refused only after all
    the other answers, and every answer was lost with it."""
    writer, _ = _tenants(emulator)
    monkeypatch.setattr(cli_init, "_interactive", lambda: True)
    ref = _secret_file(tmp_path, writer)
    config = tmp_path / "xdrsync.toml"
    answers = [
        "ws",
        "Contoso Ltd",  # not a name the config takes: asked again
        writer.name,
        "contoso.onmicrosoft.com",  # a domain, not the GUID: asked again
        writer.tenant_id,
        writer.client_id,
        ref,
        "y",
        "https://graph.microsoft.com/v1.0",  # with the version: asked again
        emulator.base_url,
        emulator.base_url,
    ]
    args = ["init", "--config", str(config), "--no-check"]
    done = runner.invoke(_app(), args, input="\n".join(answers) + "\n")
    assert done.exit_code == 0, done.output
    assert done.output.count("Tenant name (short, e.g. contoso):") == 2, done.output
    assert done.output.count("Directory (tenant) ID:") == 2 and "a GUID" in done.output
    assert done.output.count("Graph URL [") == 2 and "without /v1.0" in done.output
    (tenant,) = tomllib.loads(config.read_text())["tenants"]
    assert (tenant["name"], tenant["tenant_id"]) == (writer.name, writer.tenant_id)
    assert tenant["graph_url"] == emulator.base_url


#: An encrypted PEM as the config's check sees one (the key is never opened by init).
_LOCKED_PEM = (
    b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n-----END ENCRYPTED PRIVATE KEY-----\n"
)


def test_init_writes_the_certificate_password_by_reference(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An encrypted PEM key or a .pfx needs ``certificate_password``: init takes it as it
    takes the client secret, by reference only, and the config reads it back."""
    writer, _ = _tenants(emulator)
    pem = tmp_path / "contoso.pem"
    pem.write_bytes(_LOCKED_PEM)
    monkeypatch.setenv("CONTOSO_CERT_PASSWORD", "pass phrase")
    config = tmp_path / "xdrsync.toml"
    by_ref = ["--certificate", str(pem), "--certificate-password-ref", "env:CONTOSO_CERT_PASSWORD"]
    done = runner.invoke(_app(), _args(emulator, writer, config, *by_ref, "--no-check"))
    assert done.exit_code == 0, done.output
    (entry,) = tomllib.loads(config.read_text())["tenants"]
    assert entry["certificate_password"] == "env:CONTOSO_CERT_PASSWORD"
    assert "client_secret" not in entry and "pass phrase" not in config.read_text()
    (tenant,) = load_config(config).tenants
    assert tenant.certificate_password is not None
    assert tenant.certificate_password.get_secret_value() == "pass phrase"

    for more, said in (
        (["--certificate", str(pem), "--certificate-password-ref", "hunter2"], "reference"),
        (["--secret-ref", "env:X", "--certificate-password-ref", "env:Y"], "--certificate"),
    ):
        other = tmp_path / "other.toml"
        refused = runner.invoke(_app(), _args(emulator, writer, other, *more, "--no-check"))
        assert refused.exit_code == 2 and said in refused.output, refused.output
        assert "hunter2" not in refused.output and not other.exists()


def test_init_asks_for_the_password_of_an_encrypted_certificate(
    emulator: EmulatorServer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, _ = _tenants(emulator)
    monkeypatch.setattr(cli_init, "_interactive", lambda: True)
    pem = tmp_path / "contoso.pem"
    pem.write_bytes(_LOCKED_PEM)
    password = tmp_path / "cert.password"
    password.write_text("pass phrase\n")
    config = tmp_path / "xdrsync.toml"
    answers = [
        "ws",
        writer.name,
        writer.tenant_id,
        writer.client_id,
        str(pem),
        "hunter2",  # the password itself: refused, not echoed, asked again
        f"file:{password}",
        "n",
        emulator.base_url,
        emulator.base_url,
    ]
    args = ["init", "--config", str(config), "--no-check"]
    done = runner.invoke(_app(), args, input="\n".join(answers) + "\n")
    assert done.exit_code == 0, done.output
    assert done.output.count("Certificate password reference") == 2, done.output
    assert "the certificate password is written by reference only" in done.output
    (entry,) = tomllib.loads(config.read_text())["tenants"]
    assert entry["certificate_password"] == f"file:{password}"
    assert "hunter2" not in config.read_text()
    (tenant,) = load_config(config).tenants
    assert tenant.certificate_password is not None
    assert tenant.certificate_password.get_secret_value() == "pass phrase"


# -- connectors -----------------------------------------------------------------------------


def _tenant_config(
    server: EmulatorServer, spec: TenantSpec, secret: str | None = None
) -> TenantConfig:
    from pydantic import SecretStr

    return TenantConfig(
        name=spec.name,
        tenant_id=spec.tenant_id,
        client_id=spec.client_id,
        client_secret=SecretStr(secret or spec.client_secret),
        graph_url=server.base_url,
        authority_url=server.base_url,
    )


def test_check_tenant_reports_token_permissions_and_both_reads(emulator: EmulatorServer) -> None:
    from xdrsync.config import SyncConfig

    writer, reader = _tenants(emulator)
    full = check_tenant(_tenant_config(emulator, writer), SyncConfig())
    assert full.token_ok and full.incidents.ok and full.alerts.ok and full.ok
    states = {p.name: p.state for p in full.permissions}
    assert states == {
        "SecurityIncident.Read.All": "implied",
        "SecurityAlert.Read.All": "implied",
        "SecurityIncident.ReadWrite.All": "granted",
        "SecurityAlert.ReadWrite.All": "granted",
    }
    partial = check_tenant(_tenant_config(emulator, reader), SyncConfig())
    assert partial.readable and not partial.ok
    assert partial.missing == ("SecurityIncident.ReadWrite.All", "SecurityAlert.ReadWrite.All")
    assert check_tenant(_tenant_config(emulator, reader), SyncConfig(), two_way=False).ok
    wrong = check_tenant(_tenant_config(emulator, writer, "wrong-secret"), SyncConfig())
    assert not wrong.token_ok and wrong.token_error and "wrong-secret" not in wrong.token_error
    assert wrong.incidents.state == "skipped" and wrong.alerts.state == "skipped"
    as_json = full.to_dict()
    assert as_json["ok"] is True and as_json["missing"] == []


def test_render_tenant_toml_round_trips_and_never_takes_a_literal_secret(tmp_path: Path) -> None:
    block = render_tenant_toml(
        "contoso",
        "11111111-1111-1111-1111-111111111111",
        "22222222-2222-2222-2222-222222222222",
        secret_ref="env:CONTOSO_SECRET",
        two_way=False,
    )
    (entry,) = tomllib.loads(block)["tenants"]
    assert entry == {
        "name": "contoso",
        "tenant_id": "11111111-1111-1111-1111-111111111111",
        "client_id": "22222222-2222-2222-2222-222222222222",
        "client_secret": "env:CONTOSO_SECRET",
        "graph_url": "https://graph.microsoft.com",
        "authority_url": "https://login.microsoftonline.com",
        "two_way": False,
    }
    odd = render_tenant_toml(
        "a",
        "11111111-1111-1111-1111-111111111111",
        "c1",
        certificate_path='C:\\certs\\"x"\x7f.pem',
        graph_url="http://127.0.0.1:1",
    )
    assert tomllib.loads(odd)["tenants"][0]["certificate_path"] == 'C:\\certs\\"x"\x7f.pem'
    for bad in ("s3cr3t-value", "env:", "file:  "):
        with pytest.raises(ValueError, match=r"reference|prefix") as refused:
            render_tenant_toml("a", "11111111-1111-1111-1111-111111111111", "c1", secret_ref=bad)
        assert "s3cr3t" not in str(refused.value)
    with pytest.raises(ValueError, match="exactly one"):
        render_tenant_toml("a", "11111111-1111-1111-1111-111111111111", "c1")
    locked = render_tenant_toml(
        "a",
        "11111111-1111-1111-1111-111111111111",
        "22222222-2222-2222-2222-222222222222",
        certificate_path="certs/a.pfx",
        certificate_password_ref=" file:a.password ",
    )
    (entry,) = tomllib.loads(locked)["tenants"]
    assert entry["certificate_path"] == "certs/a.pfx"
    assert entry["certificate_password"] == "file:a.password"
    with pytest.raises(ValueError, match="certificate password is written by reference"):
        render_tenant_toml(
            "a",
            "11111111-1111-1111-1111-111111111111",
            "c1",
            certificate_path="a.pfx",
            certificate_password_ref="s3cr3t-value",
        )
    with pytest.raises(ValueError, match="goes with a certificate path"):
        render_tenant_toml(
            "a",
            "11111111-1111-1111-1111-111111111111",
            "c1",
            secret_ref="env:X",
            certificate_password_ref="env:Y",
        )
    with pytest.raises(ValueError, match="name"):
        render_tenant_toml(
            "bad name!", "11111111-1111-1111-1111-111111111111", "c1", secret_ref="env:X"
        )
    with pytest.raises(ValueError, match="http"):
        render_tenant_toml(
            "a",
            "11111111-1111-1111-1111-111111111111",
            "c1",
            secret_ref="env:X",
            graph_url="http://example.com",
        )


def test_setup_steps_name_the_graph_permissions() -> None:
    read_only = [p.name for p in required_permissions(False)]
    assert read_only == ["SecurityIncident.Read.All", "SecurityAlert.Read.All"]
    assert len(required_permissions(True)) == 4
    items = [item for step in setup_steps(True) for item in step.items]
    assert any(item.startswith("SecurityIncident.ReadWrite.All") for item in items)
    assert any("admin consent" in step.title for step in setup_steps())
