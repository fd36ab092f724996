"""Users and personal API tokens from the console (``/api/v1/users``, ``/api/v1/tokens``).

Admins of every tenant manage the users and everyone's tokens; every user manages their own
tokens. An admin scoped to tenants manages only their own tokens: with the users they could
give themself every tenant. What keeps an admin from locking everyone out: no admin can
delete themself, take away their own admin role or scope themself to tenants (409).

Tokens are created, and users managed (created, changed, given a password, deleted), from a
signed-in session only (with its CSRF token, like every change): a token can neither mint
further tokens nor set a password to sign in with, so revoking a leaked token ends what it can
do. A bearer token may list and revoke its own user's tokens, and an admin's may list users.

What lasts beyond a session needs the signed-in user's own current password
(``currentPassword``, paced like logins): creating a user, setting anyone's password, making
someone an admin (or widening an admin's tenants), and creating a token. So a stolen session
cannot make itself a lasting way in: no account of its own, no password it chose, no token.
A new password ends the user's sessions and revokes their tokens. The operator's
``xdrsync users`` and ``xdrsync tokens`` commands, on the machine, need no password.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from xdrsync.console.accounts import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    Grant,
    Role,
    TokenInfo,
    User,
    grants,
    split_scope,
)
from xdrsync.console.api import MAX_INT, ErrorOut, StrictBody, invalid
from xdrsync.console.auth import LoginThrottle, Principal, context, requires
from xdrsync.console.context import ConsoleContext
from xdrsync.console.parameters import known_parameters
from xdrsync.errors import ConfigError

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorOut, "description": "Not signed in (no or dead credentials)."},
    403: {
        "model": ErrorOut,
        "description": "Without the role (users and other users' tokens need an admin of "
        "every tenant), without the CSRF token, a token creating a token or changing a user, "
        "or a wrong ``currentPassword``.",
    },
}
_NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": ErrorOut, "description": "No such user, or no such token of yours."}
}
_SELF: Final[dict[int | str, dict[str, Any]]] = {
    409: {
        "model": ErrorOut,
        "description": "An admin cannot delete themself, drop their own admin role or scope "
        "themself to tenants.",
    }
}

router = APIRouter(
    prefix="/api/v1", tags=["admin"], responses=_ERRORS, dependencies=[Depends(known_parameters)]
)
Reader = Annotated[Principal, Depends(requires("reader"))]
Admin = Annotated[Principal, Depends(requires("admin"))]
Ctx = Annotated[ConsoleContext, Depends(context)]

UserName = Annotated[str, Path(min_length=1, max_length=64)]
MAX_DAYS: Final = 3650
ALL: Final = "*"


def oversees(user: User) -> bool:
    """Whether this user manages users and everyone's tokens: an admin of every tenant."""
    return user.can("admin") and not user.scoped


def _manager(principal: Principal) -> User:
    if not oversees(principal.user):
        raise HTTPException(403, "managing users needs an admin of every tenant")
    if principal.via != "session":
        # With a password or a new admin of its choosing, a leaked token would outlive its
        # revocation.
        raise HTTPException(403, "users are managed from a signed-in session, not with a token")
    return principal.user


_THROTTLED: Final[dict[int | str, dict[str, Any]]] = {
    429: {"model": ErrorOut, "description": "Too many wrong current passwords: wait."}
}


def _reauthenticate(
    request: Request, ctx: ConsoleContext, me: User, given: str | None, what: str
) -> None:
    """``what`` needs the signed-in user's own current password (422 without it, 403 when
    wrong, 429 after too many wrong ones, like logins): a stolen session does not know it."""
    if given is None:
        raise invalid(("body", "currentPassword"), f"{what} needs your current password")
    _check_current_password(request, ctx, me, given)


def _grants_admin(before: User | None, role: Role, scope: tuple[Grant, ...]) -> bool:
    """Whether this change makes an admin, or gives an admin tenants they had not (by id)."""
    if role != "admin":
        return False
    if before is None or before.role != "admin":
        return True
    wanted = {g.tenant_id for g in scope}
    return before.scoped and (not scope or not wanted <= before.tenant_ids)


def _check_current_password(request: Request, ctx: ConsoleContext, me: User, given: str) -> None:
    """Check the signed-in user's current password, paced like logins (403 when wrong, 429
    after too many wrong ones)."""
    throttle: LoginThrottle = request.app.state.throttle
    client = request.client.host if request.client else "unknown"
    wait = throttle.attempt(me.name, client)
    if wait > 0:
        raise HTTPException(429, f"too many wrong passwords; try again in {wait:.0f} seconds")
    if ctx.accounts.authenticate(me.name, given) is None:
        raise HTTPException(403, "the current password is wrong")
    throttle.succeeded(me.name, client)


class UserPut(StrictBody):
    """A user's role, tenants (none: every tenant) and email; the password is needed to
    create a user and, left out, is kept when updating one. ``currentPassword`` is the
    signed-in admin's own password, needed to create a user, set a password or grant the
    admin role."""

    role: Role
    tenants: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100
    )
    email: str | None = Field(
        default=None, min_length=3, max_length=320, pattern=r"^[^\s@]+@[^\s@]+$"
    )
    password: str | None = Field(default=None, min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    currentPassword: str | None = Field(  # noqa: N815
        default=None, min_length=1, max_length=MAX_PASSWORD
    )


class UserOut(BaseModel):
    name: str
    role: Role
    # The current names of the tenants the user is scoped to; with ``formerTenants`` both
    # empty: every tenant.
    tenants: list[str]
    # Tenants the user was scoped to that have left the config, by their name when granted:
    # they give no access (a tenant now configured under that name is another one).
    formerTenants: list[str]  # noqa: N815
    email: str | None


class UsersOut(BaseModel):
    value: list[UserOut]
    nextLink: str | None = None  # noqa: N815


class TokenBody(StrictBody):
    """A token for yourself, or (an admin of every tenant) for ``user``; ``days``: expire
    after that many days (left out: never). ``currentPassword``: your own password (a
    token outlives the session it is made from)."""

    label: str = Field(min_length=1, max_length=100)
    days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    user: str | None = Field(default=None, min_length=1, max_length=64)
    currentPassword: str | None = Field(  # noqa: N815
        default=None, min_length=1, max_length=MAX_PASSWORD
    )


class TokenOut(BaseModel):
    id: int
    user: str
    label: str
    prefix: str  # the token's first characters, to tell tokens apart
    state: Literal["active", "expired", "revoked"]
    createdAt: datetime  # noqa: N815
    expiresAt: datetime | None  # noqa: N815
    lastUsedAt: datetime | None  # noqa: N815
    revokedAt: datetime | None  # noqa: N815


class TokenCreated(TokenOut):
    token: str  # shown only in this answer; the hub keeps its sha256


class TokensOut(BaseModel):
    value: list[TokenOut]
    nextLink: str | None = None  # noqa: N815


def _user_out(ctx: ConsoleContext, user: User) -> UserOut:
    current, former = split_scope(user.scope, ctx.names)
    return UserOut(
        name=user.name, role=user.role, tenants=current, formerTenants=former, email=user.email
    )


def _token_fields(info: TokenInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "user": info.user_name,
        "label": info.label,
        "prefix": info.prefix,
        "state": info.state(),
        "createdAt": info.created_at,
        "expiresAt": info.expires_at,
        "lastUsedAt": info.last_used_at,
        "revokedAt": info.revoked_at,
    }


# -- users ----------------------------------------------------------------------------------


@router.get("/users")
def list_users(principal: Admin, ctx: Ctx) -> UsersOut:
    """Every console user: name, role, tenants and email (never a password hash)."""
    if not oversees(principal.user):
        raise HTTPException(403, "managing users needs an admin of every tenant")
    return UsersOut(value=[_user_out(ctx, u) for u in ctx.accounts.users()])


@router.put(
    "/users/{name}",
    responses={
        200: {
            "model": UserOut,
            "description": "Updated (a new role or tenants ends the user's "
            "sessions; a new password ends them and revokes the user's tokens).",
        },
        201: {"model": UserOut, "description": "Created."},
        **_SELF,
        **_THROTTLED,
    },
)
def put_user(
    name: UserName,
    body: UserPut,
    principal: Admin,
    ctx: Ctx,
    request: Request,
    response: Response,
) -> UserOut:
    """Create a user or change one: role, tenants (configured tenant names or ids, kept by
    id; none: every tenant), email, and the password (at least 12 characters; needed to create
    a user, kept when left out). Creating a user, setting a password (anyone's; it also
    revokes their tokens) and granting the admin role need your own ``currentPassword``. From
    a signed-in session only, not with a token."""
    me = _manager(principal)
    if not name.isprintable() or name != name.strip():
        raise invalid(("path", "name"), "a user name has printable characters, no outer spaces")
    for index, tenant in enumerate(body.tenants):
        try:
            grants(ctx.config, [tenant])
        except ConfigError:
            raise invalid(("body", "tenants", str(index)), f"no tenant named {tenant!r}") from None
    scope = grants(ctx.config, body.tenants)  # by id from now on: a name is only a label
    if name == me.name and (body.role != "admin" or body.tenants):
        raise HTTPException(409, "you cannot take away your own admin role or scope yourself")
    accounts = ctx.accounts
    before = accounts.get_user(name)
    password = body.password
    if before is None and password is None:
        raise invalid(("body", "password"), "a new user needs a password")
    # What would outlive this session needs the admin's own password (a thief has only the
    # session): a new user, a password they chose, a new admin.
    if before is None:
        _reauthenticate(request, ctx, me, body.currentPassword, "creating a user")
    elif password is not None:
        what = "changing your own password" if name == me.name else "setting a password"
        _reauthenticate(request, ctx, me, body.currentPassword, what)
    elif _grants_admin(before, body.role, scope):
        _reauthenticate(request, ctx, me, body.currentPassword, "granting the admin role")
    try:
        if password is not None:  # creates the user, or replaces the password
            user = accounts.add_user(name, password, body.role, scope, body.email)
            response.status_code = 201 if before is None else 200
        else:
            updated = accounts.update_user(name, body.role, scope, body.email)
            if updated is None:  # removed meanwhile
                raise HTTPException(404, f"no user {name}")
            user = updated
    except ConfigError as bad:
        raise invalid(("body",), str(bad)) from bad
    return _user_out(ctx, user)


@router.delete(
    "/users/{name}",
    status_code=204,
    response_class=Response,
    responses={**_NOT_FOUND, **_SELF},
)
def delete_user(name: UserName, principal: Admin, ctx: Ctx) -> None:
    """Delete a user with their sessions and tokens (from a signed-in session only)."""
    me = _manager(principal)
    if name == me.name:
        raise HTTPException(409, "you cannot delete yourself")
    if not ctx.accounts.remove_user(name):
        raise HTTPException(404, f"no user {name}")


# -- tokens ---------------------------------------------------------------------------------


@router.get("/tokens", responses=_NOT_FOUND)
def list_tokens(
    principal: Reader,
    ctx: Ctx,
    user: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> TokensOut:
    """Your own tokens (never their values). An admin of every tenant may ask for another
    user's (``user=NAME``) or everyone's (``user=*``)."""
    me = principal.user
    if user is None or user == me.name:
        found = ctx.accounts.tokens(me.name)
    elif not oversees(me):
        raise HTTPException(403, "you may list only your own tokens")
    elif user == ALL:
        found = ctx.accounts.tokens()
    elif ctx.accounts.get_user(user) is None:
        raise HTTPException(404, f"no user {user}")
    else:
        found = ctx.accounts.tokens(user)
    return TokensOut(value=[TokenOut(**_token_fields(t)) for t in found])


@router.post("/tokens", status_code=201, responses={**_NOT_FOUND, **_THROTTLED})
def create_token(body: TokenBody, principal: Reader, ctx: Ctx, request: Request) -> TokenCreated:
    """A new personal token, for yourself or (an admin of every tenant) for ``user``. The
    token is in this answer only. Needs a signed-in session (a token cannot create tokens)
    and your own ``currentPassword``: a token outlives the session it is made from."""
    me = principal.user
    if principal.via != "session":
        raise HTTPException(403, "tokens are created from a signed-in session, not with a token")
    owner = body.user or me.name
    if owner != me.name and not oversees(me):
        raise HTTPException(403, "you may create tokens only for yourself")
    label = body.label.strip()
    if not label:
        raise invalid(("body", "label"), "a label says what the token is for")
    if ctx.accounts.get_user(owner) is None:
        raise HTTPException(404, f"no user {owner}")
    _reauthenticate(request, ctx, me, body.currentPassword, "creating a token")
    try:
        token, info = ctx.accounts.create_token(
            owner, label, timedelta(days=body.days) if body.days else None
        )
    except ConfigError as bad:  # the user was removed meanwhile
        raise HTTPException(404, str(bad)) from bad
    return TokenCreated(token=token, **_token_fields(info))


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response, responses=_NOT_FOUND)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_INT)], principal: Reader, ctx: Ctx
) -> None:
    """Revoke one of your tokens (an admin of every tenant: anyone's); it stops working at
    once. Revoking a revoked token changes nothing."""
    me = principal.user
    candidates = ctx.accounts.tokens(None if oversees(me) else me.name)
    if not any(t.id == token_id for t in candidates):
        raise HTTPException(404, f"no token {token_id}")
    ctx.accounts.revoke_token(token_id)


__all__ = ["oversees", "router"]
