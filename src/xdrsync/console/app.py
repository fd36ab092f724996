"""The console's web application: login and logout, the REST API, the pages, ``/healthz`` and
``/metrics``, behind one set of security headers."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final, cast
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Form, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from xdrsync import __version__
from xdrsync.console.answers import JSONAnswer
from xdrsync.console.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    LoginThrottle,
    NotSignedIn,
    Principal,
    context,
    identify,
    requires,
    same_origin,
)
from xdrsync.console.context import ConsoleContext
from xdrsync.console.parameters import known_parameters

HERE: Final = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

#: The methods a 405's ``Allow`` may name besides HEAD (``_allowed``).
_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Nothing from elsewhere: the console's own scripts, styles and images only.
_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
#: The largest request body read (413 beyond it). The longest a legitimate one gets is a KQL
#: query of 64 Ki characters (``api.QueryBody``; a comment is at most 30,000): 768 KiB even
#: with every character written in JSON as an escaped surrogate pair, 12 bytes.
MAX_BODY: Final = 1024 * 1024


def _safe_next(target: str | None) -> str:
    """A same-site path to go to after login (never another site: browsers read a backslash
    as a slash, so ``/\\evil.example`` would be ``//evil.example``)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or not target.isprintable():
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def _too_large(limit: int) -> HTTPException:
    # Connection: close, so the server stops taking the rest of the body at once.
    message = f"the request body is larger than {limit} bytes"
    return HTTPException(413, message, headers={"Connection": "close"})


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413, in front of all that reads one
    (FastAPI reads and parses a body before the sign-in check): at once when its
    ``Content-Length`` says so, else as soon as the bytes received go past the limit. They are
    counted as they arrive, so no more than ``limit`` are ever held."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.limit:
            refused = _too_large(self.limit)
            answer = JSONAnswer({"detail": refused.detail}, 413, headers=refused.headers)
            await answer(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _too_large(self.limit)  # the app's HTTPException handler answers
            return message

        await self.app(scope, counted, send)


class HeadAsGet:
    """HEAD answered as GET is, without the body, for every route (RFC 9110 §9.3.2): uptime
    checkers, load balancers and ``curl -I`` probe with HEAD, and FastAPI's routes, unlike
    Starlette's, answer it with 405. The request goes on as a GET, so sign-in, the parameter
    check and the redirects treat it alike; the headers (``Content-Length`` too) are GET's,
    and the body is dropped here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended and not message.get("more_body", False):
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8080`` → ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, colon, port = header.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else header


def _names_no_dns(name: str) -> bool:
    """Whether a host name reaches this machine without a DNS lookup: ``localhost`` or an IP
    address. A DNS-rebinding page is always on a DNS name (the attacker's)."""
    if name.rstrip(".") == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class ProxyAndHost:
    """In front of the routes (and of ``BodyLimit``), for every request:

    * From a configured ``trusted_proxies`` address, the client address (and scheme) is taken
      from ``X-Forwarded-For`` (and ``X-Forwarded-Proto``), as uvicorn's proxy middleware
      does; from any other address those headers are ignored, so no local process can choose
      the address the login pause and ``/metrics`` go by.
    * Over plain HTTP, a request not from a trusted proxy must name in ``Host`` an IP address,
      ``localhost`` or the configured ``host`` (400 otherwise): a page that rebinds its own
      DNS name to this machine cannot read the console. Under TLS the certificate already
      refuses a foreign name; behind a proxy, the proxy checks the names it serves.
    """

    def __init__(self, app: ASGIApp, *, proxies: Sequence[str], host: str, tls: bool) -> None:
        self.app = app
        forwarding = ProxyHeadersMiddleware(app, trusted_hosts=list(proxies))  # type: ignore[arg-type]
        self.proxied = cast(ASGIApp, forwarding)
        self.networks = [ipaddress.ip_network(p, strict=False) for p in proxies]
        self.host = _host_name(host)
        self.tls = tls

    def _from_proxy(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if client and self._from_proxy(client[0]):
            await self.proxied(scope, receive, send)
            return
        if not self.tls:
            name = _host_name(Headers(scope=scope).get("host", ""))
            if not (_names_no_dns(name) or (name and name.rstrip(".") == self.host.rstrip("."))):
                detail = (
                    f"unknown host name {name!r} in the Host header: open the console by IP "
                    "address, localhost or its configured host; behind a reverse proxy, list "
                    "the proxy in [console] trusted_proxies"
                )
                refused = JSONAnswer({"detail": detail}, 400)
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _over_https(request: Request, tls: bool) -> bool:
    """Whether the browser reached the console over HTTPS: the console's own TLS, or a
    trusted proxy that terminates TLS and says so (``X-Forwarded-Proto: https``; from any
    other peer the header is ignored, see ``ProxyAndHost``). Then the session cookie is
    ``Secure`` and HSTS is sent, so the browser never sends the cookie over plain HTTP."""
    return tls or request.url.scheme == "https"


def create_app(ctx: ConsoleContext) -> FastAPI:
    app = FastAPI(
        title="xdrsync",
        version=__version__,
        description="The xdrsync workspace: Defender XDR incidents, two-way. See docs/api.md.",
        docs_url=None,
        redoc_url=None,
        # Every answer through one encoder that writes lone surrogates as escapes (answers.py).
        default_response_class=JSONAnswer,
    )
    app.state.ctx = ctx
    app.state.throttle = LoginThrottle(
        ctx.config.console.login_attempts, ctx.config.console.login_pause_seconds
    )
    settings = ctx.config.console
    tls = settings.tls
    # The last added runs first; all inside security_headers: their 400 and 413 have them.
    # HeadAsGet innermost: the scope it hands on is a copy, and the scheme a trusted proxy's
    # X-Forwarded-Proto sets (ProxyAndHost) must be in the one security_headers reads (HSTS).
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(ProxyAndHost, proxies=settings.trusted_proxies, host=settings.host, tls=tls)

    def secure(request: Request, response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", _CSP)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        # same-origin, not no-referrer: with no-referrer Chromium sends ``Origin: null`` on
        # form posts, which the CSRF check cannot tell from a cross-site one.
        headers["Referrer-Policy"] = "same-origin"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if not request.url.path.startswith("/static/"):
            headers["Cache-Control"] = "no-store"
        if _over_https(request, tls):
            headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        return secure(request, await call_next(request))

    @app.exception_handler(500)
    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette's outermost middleware answers an unexpected error (outside the one
        # above), through this handler: the same headers, and nothing of the error itself
        # (it is logged by the server).
        return secure(request, JSONAnswer({"detail": "internal server error"}, 500))

    @app.exception_handler(NotSignedIn)
    async def signed_out(request: Request, exc: NotSignedIn) -> Response:
        wants_page = request.method == "GET" and not request.url.path.startswith("/api/")
        if wants_page and "text/html" in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        return JSONAnswer({"detail": exc.detail}, status_code=401, headers=dict(exc.headers or {}))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        from xdrsync.console.health import healthz as check

        ok, detail = check(ctx.hub)
        # Anyone may ask: the hub's state only, never its error text (a database's address,
        # user or path).
        detail.pop("error", None)
        return JSONAnswer(
            {"status": "ok" if ok else "failing", **detail}, status_code=200 if ok else 503
        )

    @app.get("/login", include_in_schema=False, response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> Response:
        return templates.TemplateResponse(
            request, "login.html", {"next": _safe_next(next), "error": None, "version": __version__}
        )

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        throttle: LoginThrottle = request.app.state.throttle
        client = request.client.host if request.client else "unknown"
        target = _safe_next(next)

        def refuse(message: str, status: int) -> Response:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"next": target, "error": message, "version": __version__},
                status_code=status,
            )

        if not same_origin(request):  # login CSRF: signing a victim in as someone else
            return refuse("Sign in from the console's own login page.", 403)
        # Taken (as a failure) before the slow password check and given back on success, so
        # concurrent logins cannot all be checked before the first of them has failed.
        wait = throttle.attempt(username, client)
        if wait > 0:
            return refuse(f"Too many failed logins. Try again in {wait:.0f} seconds.", 429)
        user = ctx.accounts.authenticate(username, password)
        if user is None:
            return refuse("Wrong user name or password.", 401)
        throttle.succeeded(username, client)
        lifetime = timedelta(hours=ctx.config.console.session_hours)
        secret, _session = ctx.accounts.start_session(user, lifetime)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(lifetime.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=_over_https(request, tls),
            path="/",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        principal = identify(request)
        if principal is not None and principal.via == "session":
            from xdrsync.console.auth import check_csrf

            await check_csrf(request, principal)
            ctx.accounts.end_session(request.cookies[SESSION_COOKIE])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    from xdrsync.console import admin, api, pages

    @app.get(
        "/api/v1/me",
        tags=["session"],
        responses={401: api.ERRORS[401]},
        dependencies=[Depends(known_parameters)],
    )
    def me(principal: Annotated[Principal, Depends(requires("reader"))]) -> dict[str, object]:
        """The signed-in user, their role and tenants, and the CSRF token for their edits."""
        user = principal.user
        return {
            "name": user.name,
            "role": user.role,
            "tenants": ctx.visible_names(user),
            "email": user.address,
            "csrfToken": principal.csrf,
        }

    app.include_router(api.router)
    app.include_router(api.metrics_router)
    app.include_router(admin.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # Starlette's class: its router raises it (404, 405), FastAPI's is a subclass of it.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        allowed = _allowed(app, request.scope) if exc.status_code == 405 else None
        if allowed is not None:
            headers["Allow"] = allowed
        return JSONAnswer({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own answer, through JSONAnswer: the errors echo the input, which may hold
        # a lone surrogate.
        return JSONAnswer({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    return app


def _allowed(app: FastAPI, scope: Scope) -> str | None:
    """A 405's ``Allow``: every method the path's routes answer, HEAD wherever GET is
    (``HeadAsGet``); None for a path no route of ours takes (a mount's own answer stands).
    Starlette's names the first route's alone: GET, for a path that takes POST on a route of
    its own. Asked by method through ``matches``, which routes included from a router
    answer as well."""
    methods = {
        method
        for method in _METHODS
        for route in app.router.routes
        if not isinstance(route, Mount)
        and route.matches(
            {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", "")}
            | {"method": method}
        )[0]
        is Match.FULL
    }
    if not methods:
        return None
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def page_context(request: Request, principal: Principal, **extra: object) -> dict[str, object]:
    """What every page template gets: the user, the CSRF token, the tenants, the version."""
    ctx = context(request)
    return {
        "user": principal.user,
        "csrf_token": principal.csrf or "",
        "csrf_field": CSRF_FIELD,
        "tenants": ctx.visible_names(principal.user),
        "version": __version__,
        **extra,
    }


__all__ = ["MAX_BODY", "BodyLimit", "create_app", "page_context", "templates"]
