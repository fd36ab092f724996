"""Console users, tokens and sessions in the hub: hashed at rest, revocable, expiring."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from xdrsync.console.accounts import Accounts, Grant
from xdrsync.console.auth import LoginThrottle
from xdrsync.errors import ConfigError
from xdrsync.hub import Hub, default_url
from xdrsync.hub import schema as s

PASSWORD = "a long enough password"


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    hub = Hub.open(default_url(tmp_path))
    try:
        yield Accounts(hub)
    finally:
        hub.close()


def _stored(accounts: Accounts, table: str) -> list[dict[str, object]]:
    hub: Hub = accounts._hub
    with hub.reading() as conn:
        return [dict(r._mapping) for r in conn.execute(select(s.metadata.tables[table]))]


def test_a_password_is_kept_as_an_argon2id_hash_and_checked(accounts: Accounts) -> None:
    accounts.add_user("ana", PASSWORD, "responder", [Grant("id-c", "contoso")])
    (row,) = _stored(accounts, "console_user")
    assert str(row["password_hash"]).startswith("$argon2id$")
    assert PASSWORD not in str(row)
    user = accounts.authenticate("ana", PASSWORD)
    assert (
        user is not None and user.role == "responder" and user.scope == (Grant("id-c", "contoso"),)
    )
    assert accounts.authenticate("ana", PASSWORD + "x") is None
    assert accounts.authenticate("nobody", PASSWORD) is None


def test_short_passwords_and_unknown_roles_are_refused(accounts: Accounts) -> None:
    with pytest.raises(ConfigError, match="at least 12"):
        accounts.add_user("ana", "short", "reader")
    with pytest.raises(ConfigError, match="role"):
        accounts.add_user("ana", PASSWORD, "root")  # type: ignore[arg-type]


def test_roles_are_ordered_and_scopes_limit_tenants(accounts: Accounts) -> None:
    reader = accounts.add_user("rita", PASSWORD, "reader")
    admin = accounts.add_user("ada", PASSWORD, "admin", [Grant("id-b", "b")])
    assert reader.can("reader") and not reader.can("responder")
    assert admin.can("responder") and admin.can("admin")
    assert reader.sees("id-a") and reader.sees("id-b")
    assert admin.sees("id-b") and not admin.sees("id-a")
    assert not admin.sees("b")  # by the tenant's id, never by its name


def test_a_session_lives_until_expiry_or_idle_and_ends_with_a_new_password(
    accounts: Accounts,
) -> None:
    user = accounts.add_user("ana", PASSWORD, "reader")
    secret, session = accounts.start_session(user, timedelta(hours=1))
    assert len(session.csrf) >= 32
    found = accounts.session(secret, timedelta(minutes=30))
    assert found is not None and found.user.name == "ana"
    assert all(secret not in str(row) for row in _stored(accounts, "console_session"))
    assert accounts.session(secret + "x", timedelta(minutes=30)) is None
    assert accounts.session(secret, timedelta(0)) is None  # idle for longer than allowed
    expired, _ = accounts.start_session(user, timedelta(seconds=-1))
    assert accounts.session(expired, timedelta(minutes=30)) is None
    accounts.add_user("ana", PASSWORD + "2", "reader")  # a new password ends every session
    assert accounts.session(secret, timedelta(minutes=30)) is None


def test_a_check_that_is_not_use_keeps_the_session_but_not_its_idle_timer(
    accounts: Accounts,
) -> None:
    user = accounts.add_user("ana", PASSWORD, "reader")
    secret, _ = accounts.start_session(user, timedelta(hours=12))
    hub: Hub = accounts._hub
    t = s.console_session

    def idle(minutes: float) -> None:
        with hub.writing() as conn:
            seen = conn.execute(select(t.c.last_seen_at)).scalar_one()
            conn.execute(update(t).values(last_seen_at=seen - timedelta(minutes=minutes)))

    idle(59)
    assert accounts.session(secret, timedelta(minutes=60), touch=False) is not None
    idle(2)
    assert accounts.session(secret, timedelta(minutes=60), touch=False) is None
    assert accounts.session(secret, timedelta(minutes=60)) is None
    again, _ = accounts.start_session(user, timedelta(hours=12))
    accounts.end_session(secret)  # one session at a time: `idle` moves the only one
    idle(59)
    assert accounts.session(again, timedelta(minutes=60)) is not None  # use: timer reset
    idle(2)
    assert accounts.session(again, timedelta(minutes=60)) is not None


def test_a_new_password_revokes_the_users_tokens_and_no_one_elses(accounts: Accounts) -> None:
    accounts.add_user("ana", PASSWORD, "reader")
    accounts.add_user("bob", PASSWORD, "reader")
    first, _ = accounts.create_token("ana", "one")
    second, _ = accounts.create_token("ana", "two")
    others, _ = accounts.create_token("bob", "theirs")
    assert accounts.update_user("ana", "responder") is not None  # no new password: kept
    assert accounts.token_user(first) is not None
    accounts.add_user("ana", PASSWORD + "2", "responder")
    assert accounts.token_user(first) is None and accounts.token_user(second) is None
    assert {t.state() for t in accounts.tokens("ana")} == {"revoked"}
    assert accounts.token_user(others) is not None
    later, _ = accounts.create_token("ana", "after")  # a token made after it works
    assert accounts.token_user(later) is not None


def test_a_token_is_shown_once_kept_hashed_and_stops_when_revoked(accounts: Accounts) -> None:
    accounts.add_user("bot", PASSWORD, "responder")
    token, info = accounts.create_token("bot", "ci")
    assert token.startswith("xdr_") and info.prefix in token
    assert all(token not in str(row) for row in _stored(accounts, "api_token"))
    user = accounts.token_user(token)
    assert user is not None and user.name == "bot"
    assert accounts.token_user(token[:-1]) is None
    assert accounts.tokens("bot")[0].last_used_at is not None
    assert accounts.revoke_token(info.id)
    assert accounts.token_user(token) is None
    assert not accounts.revoke_token(info.id)


def test_an_expired_token_and_a_removed_users_tokens_stop(accounts: Accounts) -> None:
    accounts.add_user("bot", PASSWORD, "reader")
    short, _ = accounts.create_token("bot", expires_in=timedelta(seconds=-1))
    assert accounts.token_user(short) is None
    token, _ = accounts.create_token("bot")
    assert accounts.remove_user("bot")
    assert accounts.token_user(token) is None
    with pytest.raises(ConfigError, match="no console user"):
        accounts.create_token("bot")


def test_the_throttle_pauses_a_user_after_repeated_failures_and_forgets_on_success() -> None:
    throttle = LoginThrottle(attempts=3, pause=60)
    for _ in range(3):
        assert throttle.wait("ana", "10.0.0.1") == 0
        throttle.failed("ana", "10.0.0.1")
    assert throttle.wait("ana", "10.0.0.2") > 0  # by name, from any address
    assert throttle.wait("bob", "10.0.0.1") == 0  # the address is not blocked for others yet
    throttle.succeeded("ana")
    assert throttle.wait("ana", "10.0.0.3") == 0


def test_the_throttle_pauses_an_address_that_tries_many_names() -> None:
    throttle = LoginThrottle(attempts=2, pause=60)
    for n in range(8):
        throttle.failed(f"user{n}", "10.0.0.9")
    assert throttle.wait("someone", "10.0.0.9") > 0
    assert throttle.wait("someone", "10.0.0.8") == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_keeps_nothing_for_a_login_it_only_looked_up() -> None:
    throttle = LoginThrottle(attempts=2, pause=60)
    for n in range(1000):
        assert throttle.wait(f"user{n}", "10.0.0.1") == 0
    assert len(throttle) == 0
    throttle.failed("ana", "10.0.0.1")
    assert len(throttle) == 2  # the name and the address


def test_the_throttle_forgets_failures_once_they_age_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=2, pause=60, clock=clock)
    for n in range(50):
        throttle.failed(f"user{n}", f"10.0.0.{n}")
    assert len(throttle) == 100
    clock.now += 61
    throttle.failed("ana", "10.0.1.1")
    assert len(throttle) == 2


def test_the_throttle_is_bounded_and_still_pauses_who_it_paused() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=2, pause=60, max_entries=40, clock=clock)
    for _ in range(2):
        throttle.failed("ana", "10.0.0.1")
    for n in range(8):
        throttle.failed(f"user{n}", "10.0.0.9")
    assert throttle.wait("ana", "10.0.0.2") > 0 and throttle.wait("bob", "10.0.0.9") > 0
    for n in range(10_000):  # fresh names from fresh addresses, a millisecond apart
        clock.now += 0.001
        throttle.failed(f"x{n}", f"10.1.{n // 256}.{n % 256}")
        assert len(throttle) <= 40
    assert throttle.wait("ana", "10.0.0.2") > 0  # still paused: by name
    assert throttle.wait("bob", "10.0.0.9") > 0  # and by address
    assert throttle.wait("x9999", "10.2.0.1") == 0
    for _ in range(2):
        throttle.failed("x9999", "10.2.0.1")
    assert throttle.wait("x9999", "10.2.0.3") > 0  # a newcomer is paused as ever


def test_a_throttle_full_of_paused_logins_forgets_the_oldest() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=1, pause=60, max_entries=5, clock=clock)
    for n in range(4):  # four names paused, and their address
        clock.now += 1
        throttle.failed(f"user{n}", "10.0.0.1")
    throttle.failed("cy", "10.0.0.3")
    assert len(throttle) == 5
    assert throttle.wait("user0", "10.0.0.2") == throttle.wait("user1", "10.0.0.2") == 0
    assert throttle.wait("user2", "10.0.0.2") > 0 and throttle.wait("cy", "10.0.0.2") > 0
    assert throttle.wait("someone", "10.0.0.1") > 0
