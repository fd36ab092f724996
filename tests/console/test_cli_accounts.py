"""`xdrsync users` and `xdrsync tokens` from the shell, as an operator scripts them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xdrsync.console.accounts import Accounts, Grant
from xdrsync.hub import Hub, default_url


def xdrsync(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdrsync", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "xdrsync.toml"
    path.write_text(
        '[workspace]\npath = "ws"\n\n[[tenants]]\nname = "contoso"\n'
        'tenant_id = "00000000-0000-0000-0000-000000000001"\n'
        'client_id = "00000000-0000-0000-0000-000000000002"\nclient_secret = "env:NOT_READ"\n',
        encoding="utf-8",
    )
    return path


def test_users_and_tokens_from_the_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path)
    secret = tmp_path / "pw"
    secret.write_text("a long enough password\n", encoding="utf-8")
    monkeypatch.setenv("NOT_READ", "x")
    no_terminal = xdrsync("users", "add", "ana", "--role", "admin", config=config)
    assert no_terminal.returncode != 0 and "--password-file" in no_terminal.stderr
    added = xdrsync(
        "users", "add", "ana", "--role", "responder", "--tenant", "Contoso",
        "--email", "ana@contoso.com", "--password-file", str(secret), config=config,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    unknown = xdrsync(
        "users", "add", "bob", "--tenant", "nope", "--password-file", str(secret),
        config=config,
    )  # fmt: skip
    assert unknown.returncode != 0 and "no tenant named 'nope'" in unknown.stderr
    listed = xdrsync("users", "list", config=config)
    assert "ana" in listed.stdout and "responder" in listed.stdout

    created = xdrsync("tokens", "create", "--user", "ana", "--label", "soar", config=config)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("xdr_")
    with Hub.open(default_url(tmp_path / "ws")) as hub:
        user = Accounts(hub).token_user(token)
        # Kept by the tenant's id, however its name was typed (names match in any case).
        contoso = Grant("00000000-0000-0000-0000-000000000001", "contoso")
        assert user is not None and user.name == "ana" and user.scope == (contoso,)
        assert user.address == "ana@contoso.com"
        (info,) = Accounts(hub).tokens("ana")
    shown = xdrsync("tokens", "list", config=config)
    assert token not in shown.stdout and "active" in shown.stdout
    assert xdrsync("tokens", "revoke", str(info.id), config=config).returncode == 0
    assert "revoked" in xdrsync("tokens", "list", config=config).stdout
    # A change refused exits 2, as `incidents update` of an incident that is not there does.
    assert xdrsync("tokens", "revoke", str(info.id), config=config).returncode == 2
    with Hub.open(default_url(tmp_path / "ws")) as hub:
        assert Accounts(hub).token_user(token) is None

    assert xdrsync("users", "remove", "ana", config=config).returncode == 0
    assert xdrsync("users", "remove", "ana", config=config).returncode == 2
    assert xdrsync("tokens", "create", "--user", "ana", config=config).returncode != 0
