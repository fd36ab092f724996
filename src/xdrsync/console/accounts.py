"""The console's users, their personal API tokens and their sessions, kept in the hub.

Passwords are hashed with argon2id (``argon2-cffi``, its current default parameters, rehashed
on login when those change). Tokens and session ids are 256 random bits; only their sha256 is
stored, so a copy of the hub lets nobody in. Every lookup is by that hash.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update

from xdrsync import jsontext
from xdrsync.errors import ConfigError
from xdrsync.hub import Hub
from xdrsync.hub import schema as s

Role = Literal["reader", "responder", "admin"]
ROLES: Final[tuple[Role, ...]] = ("reader", "responder", "admin")
#: A role may do what every role before it in ``ROLES`` may.
_RANK: Final = {role: rank for rank, role in enumerate(ROLES)}
MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 1024
TOKEN_PREFIX: Final = "xdr_"  # noqa: S105 - a prefix that marks our tokens, not a secret

_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown user as slow as for a known one.
_DUMMY_HASH: Final = _hasher.hash(secrets.token_urlsafe(16))


def _now() -> datetime:
    return datetime.now(UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    tenants: tuple[str, ...]  # tenant names; empty: every tenant
    email: str | None = None  # what "assign to me" assigns to (Defender owners are addresses)

    @property
    def address(self) -> str | None:
        """The address to assign incidents to: the email, or a name that is an address."""
        return self.email or (self.name if "@" in self.name else None)

    def can(self, role: Role) -> bool:
        """Whether this user holds ``role`` or one above it."""
        return _RANK[self.role] >= _RANK[role]

    def sees(self, tenant: str) -> bool:
        return not self.tenants or tenant in self.tenants


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    user_name: str
    label: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime | None = None) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or _now()):
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str
    expires_at: datetime


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ConfigError(f"a password may have at most {MAX_PASSWORD} characters")


class Accounts:
    """Users, tokens and sessions over one hub (thread-safe: each call is one transaction)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    # -- users ------------------------------------------------------------------------------

    def add_user(
        self,
        name: str,
        password: str,
        role: Role,
        tenants: Sequence[str] = (),
        email: str | None = None,
    ) -> User:
        """Create a user, or replace the password, role and tenants of an existing one (which
        also ends its sessions and revokes its API tokens: a new password is the answer to a
        stolen session, and a token minted from that session must not outlive it)."""
        if not name or len(name) > 64 or not name.isprintable() or name != name.strip():
            raise ConfigError("a user name has 1-64 printable characters, no outer spaces")
        if role not in ROLES:
            raise ConfigError(f"role is one of {', '.join(ROLES)}, not {role!r}")
        check_password(password)
        if email is not None and (len(email) > 320 or "@" not in email or " " in email):
            raise ConfigError(f"not an email address: {email!r}")
        now = _now()
        values = {
            "password_hash": _hasher.hash(password),
            "role": role,
            "tenants": jsontext.dumps(sorted(set(tenants))),
            "email": email,
            "changed_at": now,
        }
        with self._hub.writing() as conn:
            done = conn.execute(
                update(s.console_user).where(s.console_user.c.name == name).values(**values)
            )
            if not done.rowcount:
                conn.execute(insert(s.console_user).values(name=name, created_at=now, **values))
            conn.execute(delete(s.console_session).where(s.console_session.c.user_name == name))
            conn.execute(
                update(s.api_token)
                .where(s.api_token.c.user_name == name, s.api_token.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return User(name, role, tuple(sorted(set(tenants))), email)

    def update_user(
        self, name: str, role: Role, tenants: Sequence[str] = (), email: str | None = None
    ) -> User | None:
        """Change an existing user's role, tenants and email, keeping the password; a change
        of role or tenants ends the user's sessions. None if there is no such user."""
        if role not in ROLES:
            raise ConfigError(f"role is one of {', '.join(ROLES)}, not {role!r}")
        if email is not None and (len(email) > 320 or "@" not in email or " " in email):
            raise ConfigError(f"not an email address: {email!r}")
        scope = tuple(sorted(set(tenants)))
        with self._hub.writing() as conn:
            row = conn.execute(
                select(s.console_user).where(s.console_user.c.name == name)
            ).one_or_none()
            if row is None:
                return None
            before = _user(row)
            conn.execute(
                update(s.console_user)
                .where(s.console_user.c.name == name)
                .values(
                    role=role, tenants=jsontext.dumps(list(scope)), email=email, changed_at=_now()
                )
            )
            if before.role != role or before.tenants != scope:
                conn.execute(delete(s.console_session).where(s.console_session.c.user_name == name))
        return User(name, role, scope, email)

    def remove_user(self, name: str) -> bool:
        """Delete a user with its sessions and tokens; False if there was none."""
        with self._hub.writing() as conn:
            conn.execute(delete(s.console_session).where(s.console_session.c.user_name == name))
            conn.execute(delete(s.api_token).where(s.api_token.c.user_name == name))
            return bool(
                conn.execute(delete(s.console_user).where(s.console_user.c.name == name)).rowcount
            )

    def users(self) -> list[User]:
        with self._hub.reading() as conn:
            rows = conn.execute(select(s.console_user).order_by(s.console_user.c.name)).all()
        return [_user(row) for row in rows]

    def get_user(self, name: str) -> User | None:
        with self._hub.reading() as conn:
            row = conn.execute(
                select(s.console_user).where(s.console_user.c.name == name)
            ).one_or_none()
        return None if row is None else _user(row)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user, if the password is theirs; None otherwise (as slow either way)."""
        with self._hub.reading() as conn:
            row = conn.execute(
                select(s.console_user).where(s.console_user.c.name == name)
            ).one_or_none()
        stored = row.password_hash if row is not None else _DUMMY_HASH
        try:
            _hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(stored):
            with self._hub.writing() as conn:
                conn.execute(
                    update(s.console_user)
                    .where(s.console_user.c.name == name)
                    .values(password_hash=_hasher.hash(password))
                )
        return _user(row)

    # -- sessions ---------------------------------------------------------------------------

    def start_session(self, user: User, lifetime: timedelta) -> tuple[str, Session]:
        """A new session: (the cookie's value, the session)."""
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = _now()
        with self._hub.writing() as conn:
            conn.execute(delete(s.console_session).where(s.console_session.c.expires_at < now))
            conn.execute(
                insert(s.console_session).values(
                    token_hash=digest(secret),
                    user_name=user.name,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + lifetime,
                    last_seen_at=now,
                )
            )
        return secret, Session(user, csrf, now + lifetime)

    def session(self, secret: str, idle: timedelta, *, touch: bool = True) -> Session | None:
        """The live session this cookie value names; it ends after ``idle`` without use and at
        its expiry, whichever comes first. ``touch=False``: a request the page made on its own
        (a poll), checked like any other but not counted as use."""
        now = _now()
        t, u = s.console_session, s.console_user
        with self._hub.reading() as conn:
            row = conn.execute(
                select(t.c.csrf, t.c.expires_at, t.c.last_seen_at, u.c.name, u.c.role, u.c.tenants)
                .add_columns(u.c.email)
                .join(u, u.c.name == t.c.user_name)
                .where(t.c.token_hash == digest(secret))
            ).one_or_none()
        if row is None or row.expires_at <= now or row.last_seen_at + idle <= now:
            return None
        if touch and now - row.last_seen_at > timedelta(seconds=60):  # not a write per request
            with self._hub.writing() as conn:
                conn.execute(
                    update(t).where(t.c.token_hash == digest(secret)).values(last_seen_at=now)
                )
        return Session(_user(row), row.csrf, row.expires_at)

    def end_session(self, secret: str) -> None:
        with self._hub.writing() as conn:
            conn.execute(
                delete(s.console_session).where(s.console_session.c.token_hash == digest(secret))
            )

    # -- API tokens -------------------------------------------------------------------------

    def create_token(
        self, user_name: str, label: str = "", expires_in: timedelta | None = None
    ) -> tuple[str, TokenInfo]:
        """A new personal token: (the token, shown once; what is kept of it)."""
        if self.get_user(user_name) is None:
            raise ConfigError(f"no console user {user_name!r} (add one: xdrsync users add)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = _now()
        values = {
            "user_name": user_name,
            "label": label,
            "token_hash": digest(token),
            "prefix": token[: len(TOKEN_PREFIX) + 6],
            "created_at": now,
            "expires_at": now + expires_in if expires_in else None,
        }
        with self._hub.writing() as conn:
            new_id = conn.execute(insert(s.api_token).values(**values)).inserted_primary_key
        token_id = int(cast(Sequence[int], new_id)[0])
        return token, TokenInfo(
            token_id,
            user_name,
            label,
            str(values["prefix"]),
            now,
            cast(datetime | None, values["expires_at"]),
            None,
            None,
        )

    def tokens(self, user_name: str | None = None) -> list[TokenInfo]:
        query = select(s.api_token).order_by(s.api_token.c.id)
        if user_name is not None:
            query = query.where(s.api_token.c.user_name == user_name)
        with self._hub.reading() as conn:
            rows = conn.execute(query).all()
        return [
            TokenInfo(
                r.id,
                r.user_name,
                r.label,
                r.prefix,
                r.created_at,
                r.expires_at,
                r.last_used_at,
                r.revoked_at,
            )
            for r in rows
        ]

    def revoke_token(self, token_id: int) -> bool:
        with self._hub.writing() as conn:
            done = conn.execute(
                update(s.api_token)
                .where(s.api_token.c.id == token_id, s.api_token.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        return bool(done.rowcount)

    def token_user(self, token: str) -> User | None:
        """The user a live (not revoked, not expired) token belongs to."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        now = _now()
        t, u = s.api_token, s.console_user
        with self._hub.reading() as conn:
            row = conn.execute(
                select(t.c.id, t.c.expires_at, t.c.revoked_at, t.c.last_used_at, u.c.name)
                .add_columns(u.c.role, u.c.tenants, u.c.email)
                .join(u, u.c.name == t.c.user_name)
                .where(t.c.token_hash == digest(token))
            ).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        if row.last_used_at is None or now - row.last_used_at > timedelta(seconds=60):
            with self._hub.writing() as conn:
                conn.execute(update(t).where(t.c.id == row.id).values(last_used_at=now))
        return _user(row)


def _user(row: Any) -> User:
    tenants = tuple(str(t) for t in jsontext.loads(row.tenants))
    return User(row.name, cast(Role, row.role), tenants, row.email)


__all__ = ["ROLES", "Accounts", "Role", "Session", "TokenInfo", "User", "check_password"]
