"""The console against what a leaked token, a racing guesser, a local process, a rebinding or
cross-site page, and hostile stored text try (docs/security.md), over fixed data (a seeded
console) served on a free loopback port; a second console over the same workspace shows what
changes behind a configured proxy.

Every test here makes its own users: ada, rui and rita are never changed."""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from browser import chromium_available, login_as, new_session
from consoledata import TENANT_A, alert_json, commit, incident_json
from playwright.sync_api import expect
from seeded import PASSWORD, SeededConsole, seeded_console
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from xdrsync.config import ConsoleConfig
from xdrsync.console.accounts import Accounts, User, digest, grants
from xdrsync.console.auth import LoginThrottle
from xdrsync.console.server import console_server
from xdrsync.hub import Hub
from xdrsync.hub import schema as s

API = "/api/v1"
#: A Windows file name may hold a lone UTF-16 surrogate; Defender reports it as it is.
ODD_NAME = "evil\ud800.exe"
_serial = itertools.count(1)


def _fresh(stem: str) -> str:
    return f"{stem}-{next(_serial)}"


def _populate(hub: Hub) -> None:
    odd = {
        "@odata.type": "#microsoft.graph.security.fileEvidence",
        "createdDateTime": "2026-11-01T10:00:00Z",
        "verdict": "malicious",
        "remediationStatus": "none",
        "fileDetails": {"fileName": ODD_NAME, "sha256": "cd" * 32},
    }
    alert = alert_json(TENANT_A, "odd1", "77", title="a file with an odd name", items=[odd])
    commit(hub, TENANT_A, [incident_json(TENANT_A, "77", name="odd file", alerts=[alert])], [alert])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededConsole]:
    with seeded_console(tmp_path_factory.mktemp("hardening"), _populate) as console:
        yield console


@contextmanager
def _another_console(seeded: SeededConsole, **settings: Any) -> Iterator[str]:
    """A second console over the same workspace, with these ``[console]`` settings; its URL."""
    config = seeded.workspace.config
    console = ConsoleConfig(**{**config.console.model_dump(), **settings})
    changed = config.model_copy(update={"console": console})
    server = console_server(changed, seeded.hub, seeded.workspace.logs, port=0).start()
    try:
        yield server.base_url
    finally:
        server.stop()


def _client(url: str, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers=headers)


def _sign_in(seeded: SeededConsole, name: str, password: str = PASSWORD) -> httpx.Client:
    client = _client(seeded.url)
    seeded.clients.append(client)
    reply = client.post("/login", data={"username": name, "password": password})
    assert reply.status_code == 303, reply.text
    client.headers["X-CSRF-Token"] = client.get(f"{API}/me").json()["csrfToken"]
    return client


def _new_admin(seeded: SeededConsole) -> str:
    name = _fresh("admin")
    Accounts(seeded.hub).add_user(name, PASSWORD, "admin")
    return name


def _token(seeded: SeededConsole, name: str) -> httpx.Client:
    token, _ = Accounts(seeded.hub).create_token(name, "soar")
    client = _client(seeded.url, Authorization=f"Bearer {token}")
    seeded.clients.append(client)
    return client


def _logs_in(url: str, name: str, password: str) -> int:
    with _client(url) as client:
        return client.post("/login", data={"username": name, "password": password}).status_code


# -- a token cannot take over its account -----------------------------------------------------


def test_an_admin_token_can_neither_set_a_password_nor_manage_users(
    seeded: SeededConsole,
) -> None:
    boss = _new_admin(seeded)
    session = _sign_in(seeded, boss)
    leaked = _token(seeded, boss)
    chosen = "attacker-chosen-password-1"
    refused = leaked.put(f"{API}/users/{boss}", json={"role": "admin", "password": chosen})
    assert refused.status_code == 403
    assert "signed-in session" in refused.json()["detail"]
    sneak = _fresh("mallory")
    body = {"role": "admin", "password": chosen}
    assert leaked.put(f"{API}/users/{sneak}", json=body).status_code == 403
    victim = _fresh("reader")
    Accounts(seeded.hub).add_user(victim, PASSWORD, "reader")
    assert leaked.put(f"{API}/users/{victim}", json={"role": "admin"}).status_code == 403
    assert leaked.delete(f"{API}/users/{victim}").status_code == 403
    # Nothing changed: no new user, the victim is a reader, the admin keeps their password
    # and their session.
    accounts = Accounts(seeded.hub)
    assert accounts.get_user(sneak) is None
    assert accounts.get_user(victim) == User(victim, "reader", ())
    assert _logs_in(seeded.url, boss, chosen) == 401
    assert session.get(f"{API}/me").status_code == 200
    # What a token may still do: read the users, and manage its own tokens.
    assert leaked.get(f"{API}/users").status_code == 200
    assert leaked.get(f"{API}/tokens").status_code == 200
    # The same changes from the admin's signed-in session work.
    assert session.put(f"{API}/users/{victim}", json={"role": "responder"}).status_code == 200
    assert session.delete(f"{API}/users/{victim}").status_code == 204


def test_your_own_new_password_needs_your_current_one(seeded: SeededConsole) -> None:
    boss = _new_admin(seeded)
    session = _sign_in(seeded, boss)
    new = "a fresh and long passphrase"
    missing = session.put(f"{API}/users/{boss}", json={"role": "admin", "password": new})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "currentPassword"]
    wrong = session.put(
        f"{API}/users/{boss}",
        json={"role": "admin", "password": new, "currentPassword": "not my password"},
    )
    assert wrong.status_code == 403 and "current password" in wrong.json()["detail"]
    assert session.get(f"{API}/me").status_code == 200  # a refusal ends nothing
    assert _logs_in(seeded.url, boss, new) == 401
    done = session.put(
        f"{API}/users/{boss}",
        json={"role": "admin", "password": new, "currentPassword": PASSWORD},
    )
    assert done.status_code == 200, done.text
    assert session.get(f"{API}/me").status_code == 401  # a new password ends the sessions
    assert _logs_in(seeded.url, boss, new) == 303
    # An admin sets someone else's password without knowing it, with their own.
    other = _fresh("reader")
    Accounts(seeded.hub).add_user(other, PASSWORD, "reader")
    admin = _sign_in(seeded, boss, new)
    body = {"role": "reader", "password": new, "currentPassword": new}
    assert admin.put(f"{API}/users/{other}", json=body).status_code == 200
    assert _logs_in(seeded.url, other, new) == 303


# -- a stolen session cannot make itself a lasting way in -------------------------------------


def test_a_stolen_admin_session_can_neither_make_an_admin_nor_set_a_password_without_its_own(
    seeded: SeededConsole,
) -> None:
    """The thief holds the admin's session, not the password: a second admin of their own
    (whose session then sets the victim's password) or a password they chose would outlive
    the session. Each needs the signed-in admin's own current password."""
    victim = _new_admin(seeded)
    stolen = _sign_in(seeded, victim)
    chosen = "the thief's own password"
    helper = _fresh("helper")
    made = stolen.put(f"{API}/users/{helper}", json={"role": "admin", "password": chosen})
    assert made.status_code == 422
    assert made.json()["detail"][0]["loc"] == ["body", "currentPassword"]
    guessed = {"role": "admin", "password": chosen, "currentPassword": "a guess at it"}
    refused = stolen.put(f"{API}/users/{helper}", json=guessed)
    assert refused.status_code == 403 and "current password" in refused.json()["detail"]
    assert Accounts(seeded.hub).get_user(helper) is None
    # Nor a new password for another admin, nor the admin role for a user who is not one.
    other = _new_admin(seeded)
    reset = stolen.put(f"{API}/users/{other}", json={"role": "admin", "password": chosen})
    assert reset.status_code == 422
    assert _logs_in(seeded.url, other, chosen) == 401
    reader = _fresh("reader")
    Accounts(seeded.hub).add_user(reader, PASSWORD, "reader")
    promoted = stolen.put(f"{API}/users/{reader}", json={"role": "admin"})
    assert promoted.status_code == 422
    assert Accounts(seeded.hub).get_user(reader) == User(reader, "reader", ())
    scoped = _fresh("scoped")
    Accounts(seeded.hub).add_user(
        scoped,
        PASSWORD,
        "admin",
        grants(seeded.workspace.config, [seeded.workspace.config.tenants[0].name]),
    )
    widened = stolen.put(f"{API}/users/{scoped}", json={"role": "admin"})
    assert widened.status_code == 422
    # What needs no password: changes that give no one more (a demotion, an email).
    assert (
        stolen.put(f"{API}/users/{reader}", json={"role": "reader", "email": "r@x.io"}).status_code
        == 200
    )
    assert stolen.put(f"{API}/users/{other}", json={"role": "responder"}).status_code == 200
    # The victim still signs in with their own password, and the admin who knows it can.
    assert _logs_in(seeded.url, victim, chosen) == 401
    assert _logs_in(seeded.url, victim, PASSWORD) == 303
    body = {"role": "admin", "password": chosen, "currentPassword": PASSWORD}
    assert stolen.put(f"{API}/users/{helper}", json=body).status_code == 201


def test_a_stolen_session_cannot_mint_a_token_and_a_new_password_revokes_the_users_tokens(
    seeded: SeededConsole,
) -> None:
    """A token outlives the session it is made from, so making one needs the password; and a
    new password (the answer to a stolen session) revokes the user's tokens as well as
    ending their sessions."""
    victim = _fresh("reader")
    Accounts(seeded.hub).add_user(victim, PASSWORD, "reader")
    stolen = _sign_in(seeded, victim)
    bare = stolen.post(f"{API}/tokens", json={"label": "backup"})
    assert bare.status_code == 422
    assert bare.json()["detail"][0]["loc"] == ["body", "currentPassword"]
    wrong = stolen.post(f"{API}/tokens", json={"label": "backup", "currentPassword": "a guess"})
    assert wrong.status_code == 403
    assert Accounts(seeded.hub).tokens(victim) == []
    made = stolen.post(f"{API}/tokens", json={"label": "mine", "currentPassword": PASSWORD})
    assert made.status_code == 201, made.text
    from_page = _client(seeded.url, Authorization=f"Bearer {made.json()['token']}")
    seeded.clients.append(from_page)
    from_cli = _token(seeded, victim)
    bystander = _token(seeded, "rita")
    assert from_page.get(f"{API}/incidents").status_code == 200
    # An admin sets a new password for the user (or the operator: `xdrsync users add`).
    admin = _sign_in(seeded, "ada")
    body = {"role": "reader", "password": "a brand new password", "currentPassword": PASSWORD}
    assert admin.put(f"{API}/users/{victim}", json=body).status_code == 200
    assert stolen.get(f"{API}/me").status_code == 401
    assert from_page.get(f"{API}/incidents").status_code == 401
    assert from_cli.get(f"{API}/incidents").status_code == 401
    assert {t.state() for t in Accounts(seeded.hub).tokens(victim)} == {"revoked"}
    assert bystander.get(f"{API}/incidents").status_code == 200  # no one else's


# -- idle sessions ------------------------------------------------------------------------------


def _idle_for(seeded: SeededConsole, client: httpx.Client, minutes: float) -> None:
    """Move the session's last use ``minutes`` further into the past (time passing unused)."""
    secret = client.cookies["xdrsync_session"]
    t = s.console_session
    with seeded.hub.writing() as conn:
        row = conn.execute(t.select().where(t.c.token_hash == digest(secret))).one()
        shifted = row.last_seen_at - timedelta(minutes=minutes)
        conn.execute(update(t).where(t.c.token_hash == digest(secret)).values(last_seen_at=shifted))


def test_an_unattended_pages_polls_do_not_keep_its_session_alive(seeded: SeededConsole) -> None:
    """The queue asks /api/v1/changes every 2.5 s on its own, and refreshes what changed
    with X-Xdrsync-Background: neither is the analyst's use, so the session still idles
    out; a request the analyst makes does count."""
    name = _fresh("responder")
    Accounts(seeded.hub).add_user(name, PASSWORD, "responder")
    browser = _sign_in(seeded, name)
    _idle_for(seeded, browser, 59)
    assert browser.get(f"{API}/changes", params={"after": 0}).status_code == 200
    background = {"X-Xdrsync-Background": "1"}
    assert browser.get(f"{API}/incidents", headers=background).status_code == 200
    _idle_for(seeded, browser, 2)  # 61 minutes since the analyst last did anything
    assert browser.get(f"{API}/changes", params={"after": 0}).status_code == 401
    assert browser.get(f"{API}/me").status_code == 401
    # The analyst's own request resets the timer.
    again = _sign_in(seeded, name)
    _idle_for(seeded, again, 59)
    assert again.get(f"{API}/incidents").status_code == 200
    _idle_for(seeded, again, 2)
    assert again.get(f"{API}/me").status_code == 200


# -- errors -------------------------------------------------------------------------------------


def test_an_unexpected_error_is_answered_with_the_security_headers_and_nothing_of_it(
    seeded: SeededConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's database goes away (PostgreSQL restarting, a full disk): the 500 that
    Starlette's outermost middleware sends has the same headers as every answer, and tells
    nothing of the error."""
    browser = _sign_in(seeded, "rita")

    def unavailable(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("the database system is starting up"))

    monkeypatch.setattr(Accounts, "session", unavailable)
    for path, accept in (("/", "text/html"), (f"{API}/incidents", "application/json")):
        # The server closes a connection whose request failed: a new one for each.
        with _client(seeded.url, accept=accept) as fresh:
            fresh.cookies = browser.cookies
            answer = fresh.get(path)
        assert answer.status_code == 500
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.json() == {"detail": "internal server error"}
        assert "starting up" not in answer.text and "Traceback" not in answer.text


def test_healthz_tells_an_anonymous_caller_nothing_of_the_hubs_error(
    seeded: SeededConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xdrsync.console import health

    why = "OperationalError: could not connect to server at db.internal:5432 as xdrsync"
    monkeypatch.setattr(
        health, "healthz", lambda hub: (False, {"hub": "unavailable", "error": why})
    )
    with _client(seeded.url) as anonymous:
        answer = anonymous.get("/healthz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "failing", "hub": "unavailable"}


@pytest.mark.parametrize("hub_ok", [True, False], ids=["ok", "failing"])
def test_healthz_answers_a_head_probe_as_it_answers_get(
    seeded: SeededConsole, monkeypatch: pytest.MonkeyPatch, hub_ok: bool
) -> None:
    """Load balancers and uptime checkers that probe with HEAD got 405 and marked the
    service down; HEAD gets GET's status and headers, without a body."""
    from xdrsync.console import health

    detail = {"hub": "ok"} if hub_ok else {"hub": "unavailable"}
    monkeypatch.setattr(health, "healthz", lambda hub: (hub_ok, dict(detail)))
    with _client(seeded.url) as anonymous:
        head, get = anonymous.head("/healthz"), anonymous.get("/healthz")
    assert head.status_code == get.status_code == (200 if hub_ok else 503)
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "signed_in", "status"),
    [
        ("/login", False, 200),  # a page
        ("/", False, 303),  # a page sends the signed-out browser to the login
        ("/static/css/console.css", False, 200),
        (f"{API}/incidents", False, 401),
        (f"{API}/incidents", True, 200),
        (f"{API}/incidents?severity=high", True, 200),
        (f"{API}/incidents?severty=high", True, 422),  # a parameter the route does not read
        (f"{API}/incidents/no-such-tenant/1", True, 404),
        ("/no/such/page", False, 404),
        (f"{API}/tokens", True, 200),  # GET and POST
        ("/logout", True, 405),  # POST only: refused as GET is
    ],
)
def test_every_route_answers_head_as_it_answers_get(
    seeded: SeededConsole, path: str, signed_in: bool, status: int
) -> None:
    """Uptime checkers, load balancers and `curl -I` probe with HEAD; only /healthz answered
    it, every other route said 405. HEAD now gets GET's status and headers, no body."""
    client = _token(seeded, _new_admin(seeded)) if signed_in else _client(seeded.url)
    client.headers["Accept"] = "text/html,*/*"
    with client:
        head, get = client.head(path), client.get(path)
    assert head.status_code == get.status_code == status, (path, get.text[:200])
    assert head.content == b""
    for name in ("content-type", "content-length", "location", "allow", "cache-control"):
        assert head.headers.get(name) == get.headers.get(name), name
    assert head.headers["content-security-policy"] == get.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", f"{API}/incidents", {"GET", "HEAD"}),
        ("PUT", f"{API}/tokens", {"GET", "HEAD", "POST"}),
        ("GET", "/logout", {"POST"}),  # no GET: no HEAD either
        ("HEAD", "/logout", {"POST"}),
        ("DELETE", f"{API}/incidents/1", {"GET", "HEAD", "PATCH"}),
        ("POST", "/static/css/console.css", {"GET", "HEAD"}),
    ],
)
def test_a_refused_method_is_told_every_method_the_route_answers_head_among_them(
    seeded: SeededConsole, method: str, path: str, allowed: set[str]
) -> None:
    """RFC 9110 §15.5.6: a 405's Allow lists the methods the route answers; every route that
    answers GET answers HEAD as well, and said GET alone."""
    with _token(seeded, _new_admin(seeded)) as client:
        answer = client.request(method, path)
    assert answer.status_code == 405, answer.text[:200]
    assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed


def test_head_behind_a_trusted_tls_proxy_gets_hsts(seeded: SeededConsole) -> None:
    """Behind a proxy that terminates TLS, HEAD carries GET's Strict-Transport-Security: the
    scheme the proxy names must reach the security headers through the HEAD handling."""
    with (
        _another_console(seeded, trusted_proxies=["127.0.0.1"]) as url,
        _client(url, **{"X-Forwarded-Proto": "https"}) as client,
    ):
        for path in ("/login", "/healthz", f"{API}/incidents"):
            head, get = client.head(path), client.get(path)
            assert get.headers.get("strict-transport-security") == "max-age=31536000", path
            assert head.headers.get("strict-transport-security") == "max-age=31536000", path


# -- the login throttle under concurrent guesses ----------------------------------------------


def test_concurrent_wrong_logins_get_no_more_password_checks_than_the_limit(
    seeded: SeededConsole,
) -> None:
    name = _fresh("target")
    Accounts(seeded.hub).add_user(name, PASSWORD, "reader")

    def guess(n: int) -> int:
        return _logs_in(seeded.url, name, f"wrong-password-{n:04d}")

    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(guess, range(30)))
    # The limit is 5 failures per user name in 5 minutes: 5 guesses were checked, the rest
    # paused, however many arrived at once.
    assert codes.count(401) == 5, codes
    assert codes.count(429) == 25, codes
    assert _logs_in(seeded.url, name, PASSWORD) == 429  # paused, even with the right one


def test_a_concurrent_attempt_is_counted_before_its_password_is_checked() -> None:
    throttle = LoginThrottle(attempts=3, pause=60)
    start = threading.Barrier(12)
    checked: list[int] = []

    def login(n: int) -> None:
        start.wait()
        if throttle.attempt("ana", f"10.0.0.{n}") == 0:
            time.sleep(0.05)  # the slow password check
            checked.append(n)  # and it was wrong: the attempt stays counted

    threads = [threading.Thread(target=login, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) == 3
    assert throttle.wait("ana", "10.0.0.99") > 0


def test_a_right_password_gives_its_attempt_back() -> None:
    throttle = LoginThrottle(attempts=1, pause=60)  # 4 per address
    for n in range(10):  # ten users log in from one office address, each right at once
        assert throttle.attempt(f"user{n}", "10.0.0.1") == 0
        throttle.succeeded(f"user{n}", "10.0.0.1")
    assert throttle.wait("user99", "10.0.0.1") == 0
    assert len(throttle) == 0


# -- who the client is: forwarding headers and Host -------------------------------------------


def test_forwarding_headers_from_loopback_do_not_choose_the_client_address(
    seeded: SeededConsole,
) -> None:
    # One failure per name pauses the name; four from one address pause the address.
    with _another_console(seeded, login_attempts=1) as url:
        for _ in range(4):
            assert _logs_in(url, _fresh("nobody"), "wrong password") == 401
        with _client(url, **{"X-Forwarded-For": "203.0.113.9"}) as spoofed:
            reply = spoofed.post("/login", data={"username": "rita", "password": PASSWORD})
        assert reply.status_code == 429  # still this address: paused


def test_behind_a_configured_proxy_the_forwarded_client_counts(seeded: SeededConsole) -> None:
    with _another_console(seeded, login_attempts=1, trusted_proxies=("127.0.0.1",)) as url:
        first = {"X-Forwarded-For": "198.51.100.1"}
        for _ in range(4):
            with _client(url, **first) as client:
                data = {"username": _fresh("nobody"), "password": "wrong password"}
                assert client.post("/login", data=data).status_code == 401
        with _client(url, **first) as client:
            data = {"username": "rita", "password": PASSWORD}
            assert client.post("/login", data=data).status_code == 429
        # Another client behind the same proxy is not paused; the proxy serves its own name.
        with _client(url, **{"X-Forwarded-For": "198.51.100.2", "Host": "xdr.example"}) as client:
            data = {"username": "rita", "password": PASSWORD}
            assert client.post("/login", data=data).status_code == 303
        # Behind a proxy, /metrics needs credentials, even from loopback.
        for headers in ({"X-Forwarded-For": "127.0.0.1"}, {}):
            with _client(url, **headers) as client:
                assert client.get("/metrics").status_code == 401, headers
        token, _ = Accounts(seeded.hub).create_token("rita", "prometheus")
        with _client(url, Authorization=f"Bearer {token}") as client:
            assert client.get("/metrics").status_code == 200


def test_behind_a_proxy_that_terminates_tls_the_session_cookie_is_secure(
    seeded: SeededConsole,
) -> None:
    """The proxy says the browser came over HTTPS: the cookie is ``Secure`` and HSTS is
    sent, so the browser never sends the session over plain HTTP. The header counts only
    from a trusted proxy."""
    login = {"username": "rita", "password": PASSWORD}
    with _another_console(seeded, trusted_proxies=("127.0.0.1",)) as url:
        for proto, secure in (("https", True), ("http", False)):
            headers = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": proto}
            with _client(url, **headers) as client:
                reply = client.post("/login", data=login)
                assert reply.status_code == 303, reply.text
                cookie = reply.headers["set-cookie"].lower()
                assert ("; secure" in cookie) is secure, (proto, cookie)
                assert ("strict-transport-security" in reply.headers) is secure
    with _client(seeded.url, **{"X-Forwarded-Proto": "https"}) as client:  # no proxy trusted
        reply = client.post("/login", data=login)
        assert reply.status_code == 303, reply.text
        assert "; secure" not in reply.headers["set-cookie"].lower()
        assert "strict-transport-security" not in reply.headers


def test_a_foreign_host_name_is_refused(seeded: SeededConsole) -> None:
    port = seeded.url.rsplit(":", 1)[1]
    for host in ("attacker.example", f"attacker.example:{port}", f"127.0.0.1.nip.io:{port}"):
        with _client(seeded.url, Host=host) as client:
            for path in ("/metrics", "/login", "/healthz", f"{API}/me"):
                reply = client.get(path)
                assert reply.status_code == 400, (host, path)
                assert reply.headers["x-frame-options"] == "DENY"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        with _client(seeded.url, Host=host) as client:
            assert client.get("/login").status_code == 200, host


def test_metrics_are_open_only_to_a_local_scraper_with_no_proxy(seeded: SeededConsole) -> None:
    with _client(seeded.url) as client:
        assert client.get("/metrics").status_code == 200
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        with _client(seeded.url, **{header: "203.0.113.9"}) as client:
            assert client.get("/metrics").status_code == 401, header


# -- login CSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_cross_site_login_is_refused(seeded: SeededConsole, headers: dict[str, str]) -> None:
    data = {"username": "rita", "password": PASSWORD, "next": "/hunting?q=x&run=1"}
    with _client(seeded.url, **headers) as client:
        reply = client.post("/login", data=data)
        assert reply.status_code == 403
        assert "xdrsync_session" not in reply.headers.get("set-cookie", "")
        assert "login page" in reply.text


def test_a_same_site_login_still_works(seeded: SeededConsole) -> None:
    origin = seeded.url
    data = {"username": "rita", "password": PASSWORD}
    with _client(seeded.url, Origin=origin, **{"Sec-Fetch-Site": "same-origin"}) as client:
        reply = client.post("/login", data=data)
        assert reply.status_code == 303
        assert "xdrsync_session" in reply.headers["set-cookie"]


# -- lone surrogates --------------------------------------------------------------------------


def _file_names(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["fileName"]] if isinstance(value.get("fileName"), str) else []
        return found + [n for v in value.values() for n in _file_names(v)]
    if isinstance(value, list):
        return [n for v in value for n in _file_names(v)]
    return []


def test_stored_text_with_a_lone_surrogate_is_answered_as_json(seeded: SeededConsole) -> None:
    reader = seeded.client("reader")
    reply = reader.get(f"{API}/alerts/contoso~odd1")
    assert reply.status_code == 200
    assert b"\\ud800" in reply.content  # an escape: the answer is valid UTF-8
    assert ODD_NAME in _file_names(json.loads(reply.content))
    for path in (f"{API}/incidents/contoso~77", f"{API}/incidents", f"{API}/entities"):
        assert reader.get(path).status_code == 200, path


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"{API}/incidents/contoso~77/comments", b'{"comment":"odd \\ud800 here"}'),
        ("PATCH", f"{API}/incidents/contoso~77", b'{"assignedTo":"\\ud800@x.com"}'),
        ("PATCH", f"{API}/incidents/contoso~77", b'{"addTags":["\\udc00"]}'),
    ],
)
def test_a_refusal_echoing_a_lone_surrogate_is_answered_as_json(
    seeded: SeededConsole, method: str, path: str, body: bytes
) -> None:
    reply = seeded.client("responder").request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 422
    problem = json.loads(reply.content)["detail"][0]
    assert re.search("[\ud800-\udfff]", json.dumps(problem, ensure_ascii=False))


# -- the Users page: your own password --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    not chromium_available() and not os.environ.get("CI"),
    reason="needs /usr/bin/chromium (make test installs it)",
)
def test_an_admin_changes_their_own_password_in_the_page_with_the_current_one(
    browser: Any, seeded: SeededConsole
) -> None:
    boss = _new_admin(seeded)
    new = "my next long passphrase"
    session = new_session(browser, seeded.url)
    try:
        page = session.page
        login_as(page, boss, PASSWORD, "/users")
        expect(page.locator(f"#users tr[data-user='{boss}']")).to_be_visible()
        current = page.locator("#uf-current-row")
        page.click(f"#users tr[data-user='{boss}'] [data-edit]")
        expect(current).to_be_hidden()  # only a new password of your own needs it
        page.fill("#uf-password", new)
        expect(current).to_be_visible()
        page.fill("#uf-current", "not my password")
        page.click("#uf-save")
        expect(page.locator("#user-form-error")).to_contain_text("current password is wrong")
        page.fill("#uf-current", PASSWORD)
        with page.expect_navigation():
            page.click("#uf-save")
        expect(page).to_have_url(re.compile(r"/login\?next=/users$"))
        login_as(page, boss, new, "/users")
        expect(page).to_have_url(re.compile(r"/users$"))
        # Someone else's password needs the admin's own current password too; a new email
        # for them does not.
        other = _fresh("reader")
        Accounts(seeded.hub).add_user(other, PASSWORD, "reader")
        page.reload()
        page.click(f"#users tr[data-user='{other}'] [data-edit]")
        page.fill("#uf-email", "other@contoso.com")
        expect(current).to_be_hidden()
        page.fill("#uf-password", new)
        expect(current).to_be_visible()
        expect(current).to_contain_text("to set a password")
        page.fill("#uf-current", new)
        page.click("#uf-save")
        expect(page.locator("#uf-name")).to_have_value("")  # saved: the form is cleared
        assert _logs_in(seeded.url, other, new) == 303
        assert not session.errors, session.errors
    finally:
        session.close()
