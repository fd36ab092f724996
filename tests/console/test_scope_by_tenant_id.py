"""A console user's tenants follow the tenant, not its name: a user scoped to ``acme`` (tenant
A) sees nothing of tenant B once the config calls B ``acme`` (A removed) — in the queue, the
API, hunting or ``/metrics`` — and the shell and the Users page say that their tenant has left
the config. Each probe first reaches B as an unscoped reader."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import chromium_available, login_as, new_session, no_script_errors
from consoledata import TENANT_A, TENANT_B, commit, incident_json
from playwright.sync_api import Browser, expect

from xdrsync.config import load_config
from xdrsync.console.accounts import Accounts
from xdrsync.console.server import console_server
from xdrsync.workspace import Workspace

PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD = "another correct horse battery"


def _config(path: Path, name: str, tenant_id: str) -> Path:
    path.write_text(
        '[workspace]\npath = "ws"\n\n[[tenants]]\n'
        f'name = "{name}"\ntenant_id = "{tenant_id}"\n'
        'client_id = "00000000-0000-0000-0000-0000000000c1"\nclient_secret = "env:NOT_READ"\n'
        'graph_url = "http://127.0.0.1:9"\nauthority_url = "http://127.0.0.1:9"\n',
        encoding="utf-8",
    )
    return path


def _xdrsync(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdrsync", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=config.parent,
        check=False,
    )


class Reused:
    """The console over config two (tenant B named ``acme``); ``u`` was scoped to ``acme``
    under config one (tenant A)."""

    def __init__(self, url: str, accounts: Accounts, later: Path) -> None:
        self.url = url
        self.accounts = accounts
        self.later = later
        self.clients: list[httpx.Client] = []

    def client(self, user: str) -> httpx.Client:
        token, _ = self.accounts.create_token(user, "tests")
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.clients.append(client)
        return client


@pytest.fixture
def reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reused]:
    monkeypatch.setenv("NOT_READ", "x")
    first = _config(tmp_path / "first.toml", "acme", TENANT_A)
    later = _config(tmp_path / "later.toml", "acme", TENANT_B)  # A left; B took its name
    secret = tmp_path / "pw.txt"
    secret.write_text(PASSWORD, encoding="utf-8")
    added = _xdrsync(
        "users", "add", "u", "--role", "responder", "--tenant", "acme",
        "--password-file", str(secret), config=first,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    config = load_config(later)
    workspace = Workspace.open(config)
    try:
        commit(workspace.hub, TENANT_A, [incident_json(TENANT_A, "1", updated=1)])
        commit(workspace.hub, TENANT_B, [incident_json(TENANT_B, "1", updated=2)])
        workspace.fanout().publish()  # the log tables and the queue's index
        accounts = Accounts(workspace.hub)
        accounts.add_user("rita", PASSWORD, "reader")
        server = console_server(config, workspace.hub, workspace.logs, port=0).start()
        found = Reused(server.base_url, accounts, later)
        try:
            yield found
        finally:
            for client in found.clients:
                client.close()
            server.stop()
    finally:
        workspace.close()


def _count(client: httpx.Client, kql: str) -> int:
    reply = client.post("/api/v1/query", json={"query": kql})
    assert reply.status_code == 200, reply.text
    return int(reply.json()["rows"][0][0])


def test_a_user_scoped_to_a_name_sees_nothing_of_the_tenant_that_takes_it_later(
    reused: Reused,
) -> None:
    rita, u = reused.client("rita"), reused.client("u")
    ids = {i["id"] for i in rita.get("/api/v1/incidents").json()["value"]}
    assert ids == {"acme~1"}  # B's incident, under the name u was scoped to
    assert rita.get("/api/v1/incidents/acme~1").status_code == 200
    assert _count(rita, f"SecurityIncident | where TenantId == '{TENANT_B}' | count") == 1
    assert 'tenant="acme"' in rita.get("/metrics").text

    assert u.get("/api/v1/incidents").json()["value"] == []
    assert u.get("/api/v1/incidents/acme~1").status_code == 404
    assert rita.get("/api/v1/incidents/stats").json()["total"] == 1
    assert u.get("/api/v1/incidents/stats").json()["total"] == 0
    assert _count(u, "SecurityIncident | count") == 0
    assert _count(u, "union SecurityIncident, SecurityAlert | count") == 0
    assert 'tenant="acme"' not in u.get("/metrics").text
    assert u.get("/api/v1/health").json()["tenants"] == []
    assert u.get("/api/v1/me").json()["tenants"] == []  # not every tenant: none
    edit = u.patch("/api/v1/incidents/acme~1", json={"status": "resolved"})
    assert edit.status_code == 404


def test_the_shell_and_the_users_page_say_the_tenant_left_the_config(reused: Reused) -> None:
    listed = _xdrsync("users", "list", config=reused.later)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if " u " in f" {line} "]
    assert "no longer in the config" in row, listed.stdout
    admin = httpx.Client(base_url=reused.url, timeout=30)
    reused.clients.append(admin)
    reused.accounts.add_user("ada", ADMIN_PASSWORD, "admin")
    signed_in = admin.post(
        "/login", data={"username": "ada", "password": ADMIN_PASSWORD}, follow_redirects=False
    )
    assert signed_in.status_code == 303, signed_in.text
    users = {x["name"]: x for x in admin.get("/api/v1/users").json()["value"]}
    assert users["u"]["tenants"] == []
    assert users["u"]["formerTenants"] == ["acme"]  # by the name it had: no access
    assert users["rita"]["tenants"] == [] and users["rita"]["formerTenants"] == []


@pytest.mark.slow
@pytest.mark.skipif(
    not chromium_available() and not os.environ.get("CI"),
    reason="needs /usr/bin/chromium (make test installs it)",
)
def test_the_users_page_never_shows_a_user_whose_tenant_left_as_seeing_every_tenant(
    reused: Reused, browser: Browser
) -> None:
    """Their tenant is named as it was, with "no access"; and saving their row unchanged
    (no tenant ticked: every tenant) is pointed out before it gives them every tenant, which
    a second Save does."""
    reused.accounts.add_user("ada", ADMIN_PASSWORD, "admin")
    session = new_session(browser, reused.url)
    try:
        page = session.page
        login_as(page, "ada", ADMIN_PASSWORD, "/users")
        row = page.locator('#users tr[data-user="u"]')
        expect(row).to_contain_text("acme (no longer in the config: no access)")
        expect(row).not_to_contain_text("every tenant")
        row.locator("[data-edit]").click()
        page.click("#uf-save")
        expect(page.locator("#user-form-error")).to_contain_text("would see every tenant")
        user = reused.accounts.get_user("u")
        assert user is not None and user.tenant_ids == {TENANT_A}  # unchanged: A, gone
        page.click("#uf-save")  # asked twice: done
        expect(row).to_contain_text("every tenant")
        user = reused.accounts.get_user("u")
        assert user is not None and not user.scoped
        no_script_errors(session.errors)
    finally:
        session.close()
