"""Users and API tokens from the console (console/admin.py) against a live console: every
endpoint, every refusal, and an admin adding a user through the page in a real browser.

The fixture's users (ada, rui, rita, sam) are never changed; each test makes its own."""

from __future__ import annotations

import itertools
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from browser import chromium_available, fetch_status, new_session, signed_in
from live import PASSWORD, LiveConsole
from playwright.sync_api import expect

from xdrsync.console.accounts import Accounts

API = "/api/v1"
#: The signed-in user's own password, which creating a user or a token, setting a password
#: and granting the admin role need (every fixture user has PASSWORD).
ME = {"currentPassword": PASSWORD}
_serial = itertools.count(1)


def _fresh(stem: str = "user") -> str:
    return f"{stem}-{next(_serial)}"


def _sign_in(live: LiveConsole, name: str, password: str = PASSWORD) -> httpx.Client:
    """A client signed in as ``name`` (session cookie, CSRF header set)."""
    client = httpx.Client(base_url=live.url, timeout=30)
    live.clients.append(client)
    reply = client.post("/login", data={"username": name, "password": password})
    assert reply.status_code == 303, reply.text
    client.headers["X-CSRF-Token"] = client.get(f"{API}/me").json()["csrfToken"]
    return client


def _bearer(live: LiveConsole, token: str) -> httpx.Client:
    client = httpx.Client(
        base_url=live.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    live.clients.append(client)
    return client


def _add(live: LiveConsole, admin: httpx.Client, role: str = "reader", **body: Any) -> str:
    name = _fresh(role)
    reply = admin.put(
        f"{API}/users/{name}", json={"role": role, "password": PASSWORD, **ME, **body}
    )
    assert reply.status_code == 201, reply.text
    return name


def _without_csrf(client: httpx.Client) -> httpx.Client:
    """The same session, without the CSRF header."""
    bare = httpx.Client(base_url=client.base_url, timeout=30, cookies=client.cookies)
    return bare


# -- users ----------------------------------------------------------------------------------


def test_signed_out_gets_401_everywhere(live_console: LiveConsole) -> None:
    with httpx.Client(base_url=live_console.url, timeout=30) as anonymous:
        assert anonymous.get(f"{API}/users").status_code == 401
        assert anonymous.put(f"{API}/users/x", json={"role": "reader"}).status_code == 401
        assert anonymous.delete(f"{API}/users/rita").status_code == 401
        assert anonymous.get(f"{API}/tokens").status_code == 401
        assert anonymous.post(f"{API}/tokens", json={"label": "x"}).status_code == 401
        assert anonymous.delete(f"{API}/tokens/1").status_code == 401
        page = anonymous.get("/users", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_an_admin_lists_users_without_their_hashes(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    reply = admin.get(f"{API}/users")
    assert reply.status_code == 200
    body = reply.json()
    users = {u["name"]: u for u in body["value"]}
    assert body["nextLink"] is None
    assert users["ada"] == {
        "name": "ada",
        "role": "admin",
        "tenants": [],
        "formerTenants": [],
        "email": "ada@contoso.com",
    }
    assert users["sam"]["role"] == "responder"
    assert users["sam"]["tenants"] == [live_console.tenants[1]]
    assert users["rita"]["role"] == "reader"
    assert "argon2" not in reply.text and "hash" not in reply.text


def test_only_admins_of_every_tenant_manage_users(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    scoped_admin = _add(live_console, admin, "admin", tenants=[live_console.tenants[0]])
    clients = {
        "rita": live_console.client("reader"),
        "rui": live_console.client("responder"),
        "sam": live_console.client("scoped"),
        "rui's token": _bearer(live_console, live_console.token("responder")),
        scoped_admin: _sign_in(live_console, scoped_admin),
    }
    body = {"role": "admin", "password": PASSWORD}
    for who, client in clients.items():
        own_name = who.removesuffix("'s token")
        assert client.get(f"{API}/users").status_code == 403, who
        assert client.put(f"{API}/users/{_fresh('sneak')}", json=body).status_code == 403, who
        assert client.put(f"{API}/users/{own_name}", json={"role": "admin"}).status_code == 403
        assert client.delete(f"{API}/users/ada").status_code == 403, who
        assert client.get(f"{API}/tokens", params={"user": "*"}).status_code == 403, who
        assert client.get(f"{API}/tokens", params={"user": "ada"}).status_code == 403, who
        page = client.get("/users", headers={"accept": "text/html"})
        assert page.status_code == 403, who
        assert "text/html" in page.headers["content-type"]
        assert "administrators of every tenant" in page.text
        assert 'href="/users"' not in page.text  # no Users link in their menu
    scoped_user = Accounts(live_console.hub).get_user(scoped_admin)
    first = live_console.config.tenants[0]
    assert scoped_user is not None and scoped_user.tenant_ids == {first.tenant_id}
    assert {u.name for u in Accounts(live_console.hub).users()} >= {"ada", "rui", "rita", "sam"}
    page = admin.get("/users", headers={"accept": "text/html"})
    assert page.status_code == 200 and 'id="user-form"' in page.text
    assert 'href="/users"' in page.text and 'autocomplete="new-password"' in page.text


def test_an_admin_creates_and_updates_a_user(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    name = _fresh("ana")
    tenant = live_console.tenants[0]
    created = admin.put(
        f"{API}/users/{name}",
        json={
            "role": "responder",
            "tenants": [tenant],
            "email": "ana@contoso.com",
            "password": PASSWORD,
            **ME,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json() == {
        "name": name,
        "role": "responder",
        "tenants": [tenant],
        "formerTenants": [],
        "email": "ana@contoso.com",
    }
    ana = _sign_in(live_console, name)
    assert ana.get(f"{API}/me").json()["tenants"] == [tenant]

    # Without a password the password is kept; the new role and tenants end her sessions.
    updated = admin.put(f"{API}/users/{name}", json={"role": "reader", "email": None})
    assert updated.status_code == 200, updated.text
    assert updated.json() == {
        "name": name,
        "role": "reader",
        "tenants": [],
        "formerTenants": [],
        "email": None,
    }
    assert ana.get(f"{API}/me").status_code == 401
    again = _sign_in(live_console, name)
    assert again.get(f"{API}/me").json()["role"] == "reader"

    # An email alone keeps her sessions.
    same = admin.put(f"{API}/users/{name}", json={"role": "reader", "email": "a@contoso.com"})
    assert same.status_code == 200
    assert again.get(f"{API}/me").json()["email"] == "a@contoso.com"

    # A new password replaces the old one and ends her sessions too.
    new_password = "another long passphrase"
    assert (
        admin.put(
            f"{API}/users/{name}", json={"role": "reader", "password": new_password, **ME}
        ).status_code
        == 200
    )
    assert again.get(f"{API}/me").status_code == 401
    with httpx.Client(base_url=live_console.url, timeout=30) as old:
        assert old.post("/login", data={"username": name, "password": PASSWORD}).status_code == 401
    _sign_in(live_console, name, new_password)


def test_a_user_updated_to_another_role_loses_their_sessions(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    name = _add(live_console, admin, "responder")
    first, second = _sign_in(live_console, name), _sign_in(live_console, name)
    assert first.get(f"{API}/me").json()["role"] == "responder"
    assert admin.put(f"{API}/users/{name}", json={"role": "admin"}).status_code == 422
    assert first.get(f"{API}/me").status_code == 200  # refused: nothing changed
    reply = admin.put(f"{API}/users/{name}", json={"role": "admin", **ME})
    assert reply.status_code == 200
    assert first.get(f"{API}/me").status_code == 401
    assert second.get(f"{API}/me").status_code == 401
    assert _sign_in(live_console, name).get(f"{API}/users").status_code == 200


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"role": "reader", "password": "short pw"}, "password"),  # under 12 characters
        ({"role": "reader", "tenants": ["nowhere"], "password": PASSWORD}, "tenants"),
        ({"role": "reader"}, "password"),  # a new user needs one
        ({"role": "root", "password": PASSWORD}, "role"),
        ({"role": "reader", "email": "not an address", "password": PASSWORD}, "email"),
        ({"role": "reader", "password": PASSWORD, "isAdmin": True}, "isAdmin"),
        ({"password": PASSWORD}, "role"),
    ],
)
def test_a_malformed_user_is_refused_with_422(
    live_console: LiveConsole, body: dict[str, Any], where: str
) -> None:
    admin = live_console.client("admin")
    name = _fresh("bad")
    reply = admin.put(f"{API}/users/{name}", json=body)
    assert reply.status_code == 422, reply.text
    problems = reply.json()["detail"]
    assert any(where in [str(part) for part in p["loc"]] for p in problems), problems
    assert all({"loc", "msg", "type"} <= set(p) for p in problems)
    assert Accounts(live_console.hub).get_user(name) is None


def test_an_unknown_tenant_is_refused_when_updating_too(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    name = _add(live_console, admin)
    reply = admin.put(
        f"{API}/users/{name}", json={"role": "reader", "tenants": [live_console.tenants[0], "x"]}
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "tenants", "1"]
    assert (
        admin.put(f"{API}/users/{name}", json={"role": "reader", "password": "x" * 11}).status_code
        == 422
    )
    user = Accounts(live_console.hub).get_user(name)
    assert user is not None and user.scope == ()


def test_an_admin_cannot_delete_or_demote_themself(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    assert admin.delete(f"{API}/users/ada").status_code == 409
    assert admin.put(f"{API}/users/ada", json={"role": "responder"}).status_code == 409
    scope = {"role": "admin", "tenants": [live_console.tenants[0]]}
    assert admin.put(f"{API}/users/ada", json=scope).status_code == 409
    user = Accounts(live_console.hub).get_user("ada")
    assert user is not None and user.role == "admin" and user.scope == ()
    assert admin.get(f"{API}/me").status_code == 200  # still signed in


def test_deleting_a_user_ends_their_sessions_and_tokens(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    name = _add(live_console, admin, "responder")
    session = _sign_in(live_console, name)
    token = session.post(f"{API}/tokens", json={"label": "soar", **ME}).json()["token"]
    script = _bearer(live_console, token)
    assert script.get(f"{API}/me").status_code == 200
    assert admin.delete(f"{API}/users/{name}").status_code == 204
    assert session.get(f"{API}/me").status_code == 401
    assert script.get(f"{API}/me").status_code == 401
    assert admin.delete(f"{API}/users/{name}").status_code == 404
    assert admin.get(f"{API}/tokens", params={"user": name}).status_code == 404
    with httpx.Client(base_url=live_console.url, timeout=30) as anyone:
        reply = anyone.post("/login", data={"username": name, "password": PASSWORD})
        assert reply.status_code == 401


def test_changes_need_the_csrf_token_and_this_site(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    name = _add(live_console, admin)
    token_id = admin.post(f"{API}/tokens", json={"label": "keep", **ME}).json()["id"]
    bare = _without_csrf(admin)
    live_console.clients.append(bare)
    assert bare.get(f"{API}/users").status_code == 200  # reading needs none
    assert (
        bare.put(
            f"{API}/users/{_fresh()}", json={"role": "reader", "password": PASSWORD}
        ).status_code
        == 403
    )
    assert bare.delete(f"{API}/users/{name}").status_code == 403
    assert bare.post(f"{API}/tokens", json={"label": "x"}).status_code == 403
    assert bare.delete(f"{API}/tokens/{token_id}").status_code == 403
    wrong = {"X-CSRF-Token": "not-the-token"}
    assert bare.delete(f"{API}/users/{name}", headers=wrong).status_code == 403
    cross = {"Origin": "https://evil.example"}
    assert admin.delete(f"{API}/users/{name}", headers=cross).status_code == 403
    assert admin.post(f"{API}/tokens", json={"label": "x"}, headers=cross).status_code == 403
    assert Accounts(live_console.hub).get_user(name) is not None
    states = {t.id: t.revoked_at for t in Accounts(live_console.hub).tokens("ada")}
    assert states[token_id] is None
    assert admin.delete(f"{API}/tokens/{token_id}").status_code == 204


# -- tokens ---------------------------------------------------------------------------------


def test_a_responder_manages_only_their_own_tokens(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    name = _add(live_console, admin, "responder")
    mine = _sign_in(live_console, name)
    admins_token = admin.post(f"{API}/tokens", json={"label": "admin's", **ME}).json()

    created = mine.post(f"{API}/tokens", json={"label": "SOAR", "days": 7, **ME})
    assert created.status_code == 201, created.text
    made = created.json()
    assert made["token"].startswith("xdr_") and made["token"].startswith(made["prefix"])
    assert made["user"] == name and made["label"] == "SOAR" and made["state"] == "active"
    expires = datetime.fromisoformat(made["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)

    # It works as a bearer token, as its user.
    script = _bearer(live_console, made["token"])
    assert script.get(f"{API}/me").json()["name"] == name
    assert script.get(f"{API}/incidents", params={"top": 1}).status_code == 200

    listed = mine.get(f"{API}/tokens")
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["value"]] == [made["id"]]
    assert "token" not in listed.json()["value"][0]
    assert made["token"] not in listed.text
    assert mine.get(f"{API}/tokens", params={"user": name}).json() == listed.json()

    # Not anyone else's: not listed, not created, not revoked (404: as if it did not exist).
    assert mine.get(f"{API}/tokens", params={"user": "ada"}).status_code == 403
    assert mine.get(f"{API}/tokens", params={"user": "*"}).status_code == 403
    assert mine.post(f"{API}/tokens", json={"label": "x", "user": "rita"}).status_code == 403
    assert mine.delete(f"{API}/tokens/{admins_token['id']}").status_code == 404
    assert mine.delete(f"{API}/tokens/999999").status_code == 404
    assert _bearer(live_console, admins_token["token"]).get(f"{API}/me").status_code == 200

    # Revoked: it stops at once, and shows as revoked.
    assert mine.delete(f"{API}/tokens/{made['id']}").status_code == 204
    assert script.get(f"{API}/me").status_code == 401
    (row,) = mine.get(f"{API}/tokens").json()["value"]
    assert row["state"] == "revoked" and row["revokedAt"] is not None
    assert mine.delete(f"{API}/tokens/{made['id']}").status_code == 204  # already: no change


def test_a_token_lists_and_revokes_its_users_tokens_but_creates_none(
    live_console: LiveConsole,
) -> None:
    admin = live_console.client("admin")
    name = _add(live_console, admin, "reader")
    session = _sign_in(live_console, name)
    first = session.post(f"{API}/tokens", json={"label": "one", **ME}).json()
    second = session.post(f"{API}/tokens", json={"label": "two", **ME}).json()
    script = _bearer(live_console, first["token"])
    listed = script.get(f"{API}/tokens")
    assert listed.status_code == 200
    assert {t["label"] for t in listed.json()["value"]} == {"one", "two"}
    # No CSRF token with a bearer token; but a token cannot mint further tokens.
    assert script.post(f"{API}/tokens", json={"label": "three"}).status_code == 403
    assert script.delete(f"{API}/tokens/{second['id']}").status_code == 204
    assert _bearer(live_console, second["token"]).get(f"{API}/me").status_code == 401
    assert script.delete(f"{API}/tokens/{first['id']}").status_code == 204  # itself
    assert script.get(f"{API}/tokens").status_code == 401


def test_an_admin_manages_everyones_tokens(live_console: LiveConsole) -> None:
    admin = live_console.client("admin")
    name = _add(live_console, admin, "reader")
    reply = admin.post(f"{API}/tokens", json={"label": "for them", "user": name, **ME})
    assert reply.status_code == 201, reply.text
    theirs = reply.json()
    assert theirs["user"] == name and theirs["expiresAt"] is None
    assert _bearer(live_console, theirs["token"]).get(f"{API}/me").json()["name"] == name
    assert (
        admin.post(f"{API}/tokens", json={"label": "x", "user": "nobody-here"}).status_code == 404
    )

    just_theirs = admin.get(f"{API}/tokens", params={"user": name}).json()["value"]
    assert [t["id"] for t in just_theirs] == [theirs["id"]]
    # The admin's own token, made here: whether another test made one depends on the order.
    assert admin.post(f"{API}/tokens", json={"label": "the admin's", **ME}).status_code == 201
    everyone = admin.get(f"{API}/tokens", params={"user": "*"}).json()["value"]
    assert theirs["id"] in {t["id"] for t in everyone}
    assert {"ada", name} <= {t["user"] for t in everyone}
    own = admin.get(f"{API}/tokens").json()["value"]
    assert {t["user"] for t in own} <= {"ada"}

    assert admin.delete(f"{API}/tokens/{theirs['id']}").status_code == 204
    assert _bearer(live_console, theirs["token"]).get(f"{API}/me").status_code == 401


def test_a_scoped_user_manages_their_own_tokens(live_console: LiveConsole) -> None:
    scoped = live_console.client("scoped")
    made = scoped.post(f"{API}/tokens", json={"label": "scoped script", **ME})
    assert made.status_code == 201
    token = made.json()
    script = _bearer(live_console, token["token"])
    assert script.get(f"{API}/me").json()["tenants"] == [live_console.tenants[1]]
    assert [t["user"] for t in scoped.get(f"{API}/tokens").json()["value"]] == ["sam"] * len(
        scoped.get(f"{API}/tokens").json()["value"]
    )
    assert scoped.get(f"{API}/tokens", params={"user": "*"}).status_code == 403
    assert scoped.delete(f"{API}/tokens/{token['id']}").status_code == 204
    assert script.get(f"{API}/me").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"label": ""},
        {"label": "   "},
        {"label": "x", "days": 0},
        {"label": "x", "days": 100_000},
        {"label": "x" * 101},
        {"label": "x", "scope": "all"},
    ],
)
def test_a_malformed_token_request_is_refused_with_422(
    live_console: LiveConsole, body: dict[str, Any]
) -> None:
    reader = live_console.client("reader")
    before = len(Accounts(live_console.hub).tokens("rita"))
    reply = reader.post(f"{API}/tokens", json=body)
    assert reply.status_code == 422, reply.text
    assert len(Accounts(live_console.hub).tokens("rita")) == before


def test_the_tokens_page_is_everyones(live_console: LiveConsole) -> None:
    for role in ("reader", "responder", "scoped", "admin"):
        page = live_console.client(role).get("/tokens", headers={"accept": "text/html"})
        assert page.status_code == 200, role
        assert 'id="token-form"' in page.text and 'data-manage="no"' in page.text
        assert 'id="user-form"' not in page.text
        assert "css/admin.css" in page.text and "js/users.js" in page.text


def test_the_openapi_document_names_every_answer(live_console: LiveConsole) -> None:
    with httpx.Client(base_url=live_console.url, timeout=30) as anyone:
        paths = anyone.get("/openapi.json").json()["paths"]
    expected = {
        ("/api/v1/users", "get"): {"200", "401", "403"},
        ("/api/v1/users/{name}", "put"): {"200", "201", "401", "403", "409", "422", "429"},
        ("/api/v1/users/{name}", "delete"): {"204", "401", "403", "404", "409", "422"},
        ("/api/v1/tokens", "get"): {"200", "401", "403", "404", "422"},
        ("/api/v1/tokens", "post"): {"201", "401", "403", "404", "422", "429"},
        ("/api/v1/tokens/{token_id}", "delete"): {"204", "401", "403", "404", "422"},
    }
    for (path, method), codes in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == codes, (path, method, operation["responses"])
        assert operation["tags"] == ["admin"]


# -- in a browser ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    not chromium_available() and not os.environ.get("CI"),
    reason="needs /usr/bin/chromium (make test installs it)",
)
def test_an_admin_adds_a_user_in_the_page_who_then_signs_in(
    browser: Any, live_console: LiveConsole
) -> None:
    name = _fresh("newbie")
    password = "a brand new passphrase"
    admin = signed_in(browser, live_console, "admin", "/users")
    try:
        page = admin.page
        expect(page).to_have_url(re.compile(r"/users$"))
        expect(page.locator("#users tr[data-user=ada]")).to_be_visible()
        # No delete button for yourself.
        expect(page.locator("#users tr[data-user=ada] [data-delete]")).to_have_count(0)
        page.fill("#uf-name", name)
        page.select_option("#uf-role", "responder")
        page.check(f"#user-form input[name=tenant][value={live_console.tenants[0]}]")
        page.fill("#uf-email", f"{name}@contoso.com")
        page.fill("#uf-password", password)
        # Adding a user asks for the admin's own password.
        expect(page.locator("#uf-current-row")).to_be_visible()
        expect(page.locator("#uf-current-row")).to_contain_text("to add a user")
        expect(page.locator("#uf-current")).to_have_attribute("required", "")
        page.fill("#uf-current", PASSWORD)
        page.click("#uf-save")
        row = page.locator(f"#users tr[data-user='{name}']")
        expect(row).to_contain_text("responder")
        expect(row).to_contain_text(live_console.tenants[0])
        # The page's own requests carry the CSRF token; a forged one without it is refused.
        assert fetch_status(page, "DELETE", f"/api/v1/users/{name}", None, csrf=False) == 403

        # The new user signs in and creates a token, shown once.
        newbie = new_session(browser, live_console.url)
        try:
            other = newbie.page
            other.goto("/login?next=/tokens")
            other.fill("#username", name)
            other.fill("#password", password)
            with other.expect_navigation():
                other.click("button[type=submit]")
            expect(other).to_have_url(re.compile(r"/tokens$"))
            expect(other.locator(".uname")).to_have_text(name)
            expect(other.locator(".mainnav a[href='/users']")).to_have_count(0)
            expect(other.locator("#tokens-status")).to_have_text("No tokens yet.")
            other.fill("#tf-label", "my script")
            other.fill("#tf-current", password)  # a token needs your password
            other.click("#tf-create")
            expect(other.locator("#token-once")).to_be_visible()
            expect(other.locator("#token-once")).to_contain_text("shown only this once")
            token = other.locator("#token-value").input_value()
            assert token.startswith("xdr_")
            expect(other.locator("#tokens tr[data-token]")).to_have_count(1)
            expect(other.locator("#tokens")).not_to_contain_text(token)
            other.click("#token-done")
            expect(other.locator("#token-once")).to_be_hidden()
            assert token not in other.content()
            script = _bearer(live_console, token)
            assert script.get(f"{API}/me").json()["name"] == name
            # Revoking takes a confirm step.
            other.click("#tokens [data-revoke]")
            other.click("#tokens .confirm-no")
            expect(other.locator("#tokens [data-revoke]")).to_be_visible()
            other.click("#tokens [data-revoke]")
            other.click("#tokens .confirm-yes")
            expect(other.locator("#tokens .token-revoked")).to_have_text("revoked")
            assert script.get(f"{API}/me").status_code == 401
            assert not newbie.errors, newbie.errors
        finally:
            newbie.close()

        # The admin sees the token, then deletes the user, confirming first.
        page.reload()
        expect(page.locator("#tokens tr[data-token]", has_text=name)).to_have_count(1)
        page.click(f"#users tr[data-user='{name}'] [data-delete]")
        expect(row).to_contain_text(f"Delete {name}")
        page.click(f"#users tr[data-user='{name}'] .confirm-yes")
        expect(row).to_have_count(0)
        assert Accounts(live_console.hub).get_user(name) is None
        assert not admin.errors, admin.errors
    finally:
        admin.close()
