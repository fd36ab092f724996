"""The console's web application: login and logout, the REST API, the pages, ``/healthz`` and
``/metrics``, behind one set of security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Form, Request, Response
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xdrsync import __version__
from xdrsync.console.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    LoginThrottle,
    NotSignedIn,
    Principal,
    context,
    identify,
    requires,
)
from xdrsync.console.context import ConsoleContext

HERE: Final = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

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
            answer = JSONResponse({"detail": refused.detail}, 413, headers=refused.headers)
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


def create_app(ctx: ConsoleContext) -> FastAPI:
    app = FastAPI(
        title="xdrsync",
        version=__version__,
        description="The xdrsync workspace: Defender XDR incidents, two-way. See docs/api.md.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.throttle = LoginThrottle(
        ctx.config.console.login_attempts, ctx.config.console.login_pause_seconds
    )
    tls = ctx.config.console.tls
    app.add_middleware(BodyLimit, limit=MAX_BODY)  # inside security_headers: its 413 has them

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
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
        if tls:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.exception_handler(NotSignedIn)
    async def signed_out(request: Request, exc: NotSignedIn) -> Response:
        wants_page = request.method == "GET" and not request.url.path.startswith("/api/")
        if wants_page and "text/html" in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        return JSONResponse(
            {"detail": exc.detail}, status_code=401, headers=dict(exc.headers or {})
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        from xdrsync.console.health import healthz as check

        ok, detail = check(ctx.hub)
        return JSONResponse(
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

        wait = throttle.wait(username, client)
        if wait > 0:
            return refuse(f"Too many failed logins. Try again in {wait:.0f} seconds.", 429)
        user = ctx.accounts.authenticate(username, password)
        if user is None:
            throttle.failed(username, client)
            return refuse("Wrong user name or password.", 401)
        throttle.succeeded(username)
        lifetime = timedelta(hours=ctx.config.console.session_hours)
        secret, _session = ctx.accounts.start_session(user, lifetime)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(lifetime.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=tls,
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

    @app.get("/api/v1/me", tags=["session"])
    def me(principal: Annotated[Principal, Depends(requires("reader"))]) -> dict[str, object]:
        """The signed-in user, their role and tenants, and the CSRF token for their edits."""
        user = principal.user
        return {
            "name": user.name,
            "role": user.role,
            "tenants": list(user.tenants) or sorted(ctx.ids),
            "email": user.address,
            "csrfToken": principal.csrf,
        }

    from xdrsync.console import admin, api, pages

    app.include_router(api.router)
    app.include_router(api.metrics_router)
    app.include_router(admin.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=dict(exc.headers or {})
        )

    return app


def page_context(request: Request, principal: Principal, **extra: object) -> dict[str, object]:
    """What every page template gets: the user, the CSRF token, the tenants, the version."""
    ctx = context(request)
    return {
        "user": principal.user,
        "csrf_token": principal.csrf or "",
        "csrf_field": CSRF_FIELD,
        "tenants": [n for n in sorted(ctx.ids) if principal.user.sees(n)],
        "version": __version__,
        **extra,
    }


__all__ = ["MAX_BODY", "BodyLimit", "create_app", "page_context", "templates"]
