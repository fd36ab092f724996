"""Who is asking, and may they: sessions (cookie) and personal tokens (``Authorization:
Bearer``), CSRF on every state-changing request made with a session, roles on every route,
and a pause after repeated failed logins.

CSRF: a session's requests that change anything carry its token in ``X-CSRF-Token`` (the
console's scripts) or a ``csrf_token`` form field (its forms); the cookie is ``SameSite=Strict``
and ``HttpOnly``, and a cross-site ``Origin`` is refused outright. A bearer token is not sent
by browsers on their own, so requests that carry one need no CSRF token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import Final, Literal
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from xdrsync.console.accounts import Role, User
from xdrsync.console.context import ConsoleContext

SESSION_COOKIE: Final = "xdrsync_session"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
#: Sent (``1``) by the console's scripts on the requests they make on their own (live polls
#: and the refreshes they trigger): those keep the session valid but are not use, so an
#: unattended page still idles out.
BACKGROUND_HEADER: Final = "X-Xdrsync-Background"
#: Paths only ever asked on a timer (the live polls): never use, with or without the header.
_POLLS: Final = frozenset({"/api/v1/changes"})
_SAFE: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: How many user names and addresses the login throttle holds failures of, at most (under
#: 1 KB each).
MAX_THROTTLED: Final = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    via: Literal["session", "token"]
    csrf: str | None  # the session's CSRF token (None for a bearer token)


class NotSignedIn(HTTPException):
    """401 for the API; the pages turn it into a redirect to the login page."""

    def __init__(self) -> None:
        super().__init__(401, "sign in first", headers={"WWW-Authenticate": "Bearer"})


def context(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.ctx
    return ctx


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def same_origin(request: Request) -> bool:
    """False for a browser's request from another site: ``Sec-Fetch-Site: cross-site``, or an
    ``Origin`` that is not this console's (``Host``)."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None:  # not a browser's cross-site request (those always name their origin)
        return True
    parts = urlsplit(origin)
    return parts.netloc.lower() == (request.headers.get("host") or "").lower()


def identify(request: Request) -> Principal | None:
    """The principal behind this request, or None (no or dead credentials)."""
    ctx = context(request)
    token = _bearer(request)
    if token is not None:
        user = ctx.accounts.token_user(token)
        return Principal(user, "token", None) if user is not None else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 200:
        return None
    settings = ctx.config.console
    background = request.headers.get(BACKGROUND_HEADER) == "1" or request.url.path in _POLLS
    session = ctx.accounts.session(
        cookie, timedelta(minutes=settings.idle_minutes), touch=not background
    )
    return Principal(session.user, "session", session.csrf) if session is not None else None


async def check_csrf(request: Request, principal: Principal) -> None:
    """Refuse a state-changing session request without its CSRF token (403)."""
    if request.method in _SAFE or principal.via == "token":
        return
    if not same_origin(request):
        raise HTTPException(403, "cross-site request refused")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        field = form.get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if sent is None or principal.csrf is None:
        raise HTTPException(403, "missing or wrong CSRF token")
    # As bytes: `compare_digest` refuses text with non-ASCII characters (a TypeError, a 500).
    if not secrets.compare_digest(sent.encode("utf-8", "surrogatepass"), principal.csrf.encode()):
        raise HTTPException(403, "missing or wrong CSRF token")


def requires(role: Role) -> Callable[[Request], object]:
    """A route dependency: the signed-in principal holding ``role`` (401, 403 otherwise)."""

    async def dependency(request: Request) -> Principal:
        principal = identify(request)
        if principal is None:
            raise NotSignedIn()
        await check_csrf(request, principal)
        if not principal.user.can(role):
            raise HTTPException(403, f"this needs the {role} role")
        request.state.principal = principal
        return principal

    return dependency


class LoginThrottle:
    """After ``attempts`` failures within ``pause`` seconds for one user name, or four times
    as many from one client address (an office behind one address has many users), further
    logins are refused until the oldest failure ages out.

    Bounded, as anyone may try any name: only a failure adds an entry (a lookup does not),
    entries whose failures have all aged out are dropped, and past ``max_entries`` the entry
    that failed longest ago is dropped: one not pausing logins, unless every one is."""

    def __init__(
        self,
        attempts: int,
        pause: float,
        *,
        max_entries: int = MAX_THROTTLED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 2:
            raise ValueError("max_entries must be at least 2 (a login's name and address)")
        self.attempts = attempts
        self.pause = pause
        self.max_entries = max_entries
        self._clock = clock
        # key → the times of its last failures (at most its limit), newest last; the keys in
        # the order of their newest failure, oldest first.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many user names and addresses it holds failures of."""
        with self._lock:
            return len(self._failures)

    def _keys(self, name: str, client: str) -> tuple[str, str]:
        return f"user:{name.lower()}", f"addr:{client}"

    def _limit(self, key: str) -> int:
        return self.attempts if key.startswith("user:") else self.attempts * 4

    def _pausing(self, key: str, times: deque[float], now: float) -> bool:
        return len(times) >= self._limit(key) and times[0] > now - self.pause

    def _wait(self, keys: tuple[str, str], now: float) -> float:
        longest = 0.0
        for key in keys:
            times = self._failures.get(key)
            if times is not None and self._pausing(key, times, now):
                longest = max(longest, times[0] + self.pause - now)
        return longest

    def wait(self, name: str, client: str) -> float:
        """Seconds until this login may be tried (0: now)."""
        with self._lock:
            return self._wait(self._keys(name, client), self._clock())

    def attempt(self, name: str, client: str) -> float:
        """Take one login attempt before checking the password: the seconds to wait (nothing
        taken), or 0 with the attempt counted as a failure at once, in one step under the
        lock, so concurrent logins cannot all pass before any has failed. ``succeeded`` gives
        the attempt back."""
        keys = self._keys(name, client)
        with self._lock:
            now = self._clock()
            longest = self._wait(keys, now)
            if longest > 0:
                return longest
            self._record(keys, now)
        return 0.0

    def failed(self, name: str, client: str) -> None:
        keys = self._keys(name, client)
        with self._lock:
            self._record(keys, self._clock())

    def _record(self, keys: tuple[str, str], now: float) -> None:
        while self._failures:  # forget those whose newest failure has aged out
            key, times = next(iter(self._failures.items()))
            if times[-1] > now - self.pause:
                break
            del self._failures[key]
        for key in keys:
            times = self._failures.pop(key, deque(maxlen=self._limit(key)))
            times.append(now)
            self._failures[key] = times  # moved last: the newest failure
        while len(self._failures) > self.max_entries:  # never this login's own keys
            older = islice(self._failures.items(), len(self._failures) - len(keys))
            idle = next((k for k, t in older if not self._pausing(k, t, now)), None)
            del self._failures[idle if idle is not None else next(iter(self._failures))]

    def succeeded(self, name: str, client: str | None = None) -> None:
        """A login with the right password: the user name's failures are forgotten, and the
        attempt ``attempt`` took from ``client`` is given back."""
        with self._lock:
            self._failures.pop(f"user:{name.lower()}", None)
            if client is None:
                return
            key = f"addr:{client}"
            times = self._failures.get(key)
            if times:
                times.pop()  # one attempt of this address (which one does not matter)
                if not times:
                    del self._failures[key]


__all__ = [
    "BACKGROUND_HEADER",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "LoginThrottle",
    "NotSignedIn",
    "Principal",
    "check_csrf",
    "context",
    "identify",
    "requires",
    "same_origin",
]
