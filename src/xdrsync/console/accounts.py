"""The console's users, their personal API tokens and their sessions, kept in the hub.

Passwords are hashed with argon2id (``argon2-cffi``, its current default parameters, rehashed
on login when those change). Tokens and session ids are 256 random bits; only their sha256 is
stored, so a copy of the hub lets nobody in. Every lookup is by that hash.

A user's tenants are kept by tenant id, never by name: a name is the config's label, and a
customer who leaves the config may be followed by another under the same name. Tokens and
sessions carry no scope of their own: each request reads its user's.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update

from xdrsync import jsontext
from xdrsync.errors import ConfigError
from xdrsync.hub import Hub
from xdrsync.hub import schema as s

if TYPE_CHECKING:
    from xdrsync.config import Config, TenantConfig

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
class Grant:
    """One tenant a user is scoped to: its tenant id, and its name when granted (a label, shown
    only once the tenant has left the config)."""

    tenant_id: str | None  # None: a name from before 0014 the config did not have: no tenant
    name: str


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    scope: tuple[Grant, ...] = ()  # empty: every tenant
    email: str | None = None  # what "assign to me" assigns to (Defender owners are addresses)

    @property
    def scoped(self) -> bool:
        """Whether this user sees only some tenants (possibly none)."""
        return bool(self.scope)

    @property
    def tenant_ids(self) -> frozenset[str]:
        """The ids of the tenants a scoped user may see (meaningless when not ``scoped``)."""
        return frozenset(g.tenant_id for g in self.scope if g.tenant_id is not None)

    @property
    def address(self) -> str | None:
        """The address to assign incidents to: the email, or a name that is an address."""
        return self.email or (self.name if "@" in self.name else None)

    def can(self, role: Role) -> bool:
        """Whether this user holds ``role`` or one above it."""
        return _RANK[self.role] >= _RANK[role]

    def sees(self, tenant_id: str) -> bool:
        """Whether this user may see the tenant with this id (never by its name)."""
        return not self.scope or tenant_id in self.tenant_ids


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


def grants(config: Config, wanted: Sequence[str]) -> tuple[Grant, ...]:
    """The scope for tenants named by the config's name or by tenant id (any case; an unknown
    one is a ``ConfigError``): resolved now, so that a later tenant of the same name is not
    theirs."""
    found = (config.tenant(t) for t in wanted)
    return _sorted({t.tenant_id: Grant(t.tenant_id, t.name) for t in found}.values())


def _sorted(scope: Iterable[Grant]) -> tuple[Grant, ...]:
    return tuple(sorted(set(scope), key=lambda g: (g.name, g.tenant_id or "")))


def split_scope(scope: Sequence[Grant], names: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``scope`` as people read it, given the configured tenants' names by id: the current
    names of its tenants, and the names (when granted) of those no longer in the config, which
    give no access. Both empty: every tenant."""
    held = [(g.name, names.get(g.tenant_id or "")) for g in scope]
    current = sorted(name for _, name in held if name is not None)
    former = sorted(granted for granted, name in held if name is None)
    return current, former


def describe(scope: Sequence[Grant], tenants: Sequence[TenantConfig]) -> list[str]:
    """``scope`` for the shell: each tenant's current name, or what it was called when
    granted and that it is no longer in the config (so it gives no access)."""
    current, former = split_scope(scope, {t.tenant_id: t.name for t in tenants})
    return [*current, *(f"{name} (no longer in the config: no access)" for name in former)]


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
        scope: Sequence[Grant] = (),
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
        granted = _sorted(scope)
        values = {
            "password_hash": _hasher.hash(password),
            "role": role,
            **_scope_columns(granted),
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
        return User(name, role, granted, email)

    def update_user(
        self, name: str, role: Role, scope: Sequence[Grant] = (), email: str | None = None
    ) -> User | None:
        """Change an existing user's role, tenants and email, keeping the password; a change
        of role or tenants ends the user's sessions. None if there is no such user."""
        if role not in ROLES:
            raise ConfigError(f"role is one of {', '.join(ROLES)}, not {role!r}")
        if email is not None and (len(email) > 320 or "@" not in email or " " in email):
            raise ConfigError(f"not an email address: {email!r}")
        granted = _sorted(scope)
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
                .values(role=role, **_scope_columns(granted), email=email, changed_at=_now())
            )
            tenants_before = {g.tenant_id for g in before.scope}
            if before.role != role or tenants_before != {g.tenant_id for g in granted}:
                conn.execute(delete(s.console_session).where(s.console_session.c.user_name == name))
        return User(name, role, granted, email)

    def remove_user(self, name: str) -> bool:
        """Delete a user with its sessions and tokens; False if there was none."""
        with self._hub.writing() as conn:
            conn.execute(delete(s.console_session).where(s.console_session.c.user_name == name))
            conn.execute(delete(s.api_token).where(s.api_token.c.user_name == name))
            return bool(
                conn.execute(delete(s.console_user).where(s.console_user.c.name == name)).rowcount
            )

    def settle_scopes(self, tenants: Sequence[TenantConfig]) -> list[str]:
        """Resolve, once, the scopes that migration 0014 found kept by name, with the config
        of this first start: each name the config has becomes its tenant's id; a name it no
        longer has stays in the scope as no tenant (never as every tenant), with a warning
        naming the user. Answers those warnings (none once every scope is settled), for the
        caller to report (the service's log, the shell)."""
        ids = {t.name.lower(): t.tenant_id for t in tenants}
        u = s.console_user
        warnings = []
        unsettled = select(u.c.name, u.c.tenants).where(u.c.scope.is_(None))
        with self._hub.reading() as conn:  # no write (nor its lock) once all are settled
            if not conn.execute(unsettled.limit(1)).first():
                return []
        with self._hub.writing() as conn:
            for row in conn.execute(unsettled).all():
                names = [str(n) for n in jsontext.loads(row.tenants)]
                scope = _sorted([Grant(ids.get(n.lower()), n) for n in names])
                settled = conn.execute(
                    update(u)
                    .where(u.c.name == row.name, u.c.scope.is_(None))  # another process's first
                    .values(scope=_scope_json(scope))
                ).rowcount
                lost = [g.name for g in scope if g.tenant_id is None]
                if settled and lost:
                    warnings.append(
                        f"console user {row.name!r} was scoped to "
                        f"{', '.join(repr(n) for n in lost)}, which the config no longer has: "
                        "no access to it (xdrsync users add NAME --tenant ... to grant another)"
                    )
        return warnings

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
                .add_columns(u.c.scope, u.c.email)
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
                .add_columns(u.c.role, u.c.tenants, u.c.scope, u.c.email)
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


def _scope_json(scope: Sequence[Grant]) -> str:
    return jsontext.dumps([{"id": g.tenant_id, "name": g.name} for g in scope])


def _scope_columns(scope: Sequence[Grant]) -> dict[str, str]:
    """``scope``, and the names as granted in ``tenants`` (what a downgrade reads)."""
    return {"scope": _scope_json(scope), "tenants": jsontext.dumps([g.name for g in scope])}


def _user(row: Any) -> User:
    if row.scope is None:  # by name before 0014, not settled yet: no tenant until it is
        names = [str(n) for n in jsontext.loads(row.tenants)]
        scope = _sorted([Grant(None, n) for n in names])
    else:
        scope = tuple(Grant(g["id"], str(g["name"])) for g in jsontext.loads(row.scope))
    return User(row.name, cast(Role, row.role), scope, row.email)


__all__ = [
    "ROLES",
    "Accounts",
    "Grant",
    "Role",
    "Session",
    "TokenInfo",
    "User",
    "check_password",
    "describe",
    "grants",
    "split_scope",
]
