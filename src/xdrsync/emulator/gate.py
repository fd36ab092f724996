"""ASGI middleware in front of the Graph routes: bearer tokens, permissions, throttling, faults.

It is plain ASGI (not a FastAPI dependency) because a dropped connection can only be
imitated below the framework: headers go out, part of the body, then the connection dies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from xdrsync.emulator.faults import ERROR_CODES, Fault
from xdrsync.emulator.graph_errors import error_body, gateway_page
from xdrsync.emulator.service import Emulator
from xdrsync.emulator.tenants import (
    ALERT_READ,
    ALERT_READ_WRITE,
    INCIDENT_READ,
    INCIDENT_READ_WRITE,
)

GRAPH_PREFIX = "/v1.0/"
CONTROL_PREFIX = "/_emulator/"

_INCIDENT_READERS = (INCIDENT_READ, INCIDENT_READ_WRITE)
# Graph admits alerts_v2 reads with any of the four security roles: its 403 for an app with none
# reads "API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All,
# SecurityIncident.Read.All,SecurityIncident.ReadWrite.All".
_ALERT_READERS = (ALERT_READ, ALERT_READ_WRITE, INCIDENT_READ, INCIDENT_READ_WRITE)
_SECURITY = GRAPH_PREFIX + "security"
# (method, route template) -> the application roles of which the token must carry one.
REQUIRED_ROLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", f"{_SECURITY}/incidents"): _INCIDENT_READERS,
    ("GET", _SECURITY + "/incidents/{incident_id}"): _INCIDENT_READERS,
    ("GET", _SECURITY + "/incidents/{incident_id}/alerts"): _INCIDENT_READERS,
    ("PATCH", _SECURITY + "/incidents/{incident_id}"): (INCIDENT_READ_WRITE,),
    ("POST", _SECURITY + "/incidents/{incident_id}/comments"): (INCIDENT_READ_WRITE,),
    ("GET", f"{_SECURITY}/alerts_v2"): _ALERT_READERS,
    ("GET", _SECURITY + "/alerts_v2/{alert_id}"): _ALERT_READERS,
    ("PATCH", _SECURITY + "/alerts_v2/{alert_id}"): (ALERT_READ_WRITE,),
    ("POST", _SECURITY + "/alerts_v2/{alert_id}/comments"): (ALERT_READ_WRITE,),
}


def missing_roles(method: str, template: str, granted: frozenset[str]) -> str | None:
    """Graph's 403 message when ``granted`` holds none of the roles the call needs, else None.

    The wording is Graph's own for a token without the application permission.
    """
    required = REQUIRED_ROLES.get((method.upper(), template))
    if required is None or granted.intersection(required):
        return None
    return (
        f"Missing application roles. API required roles: {','.join(required)}, "
        f"application roles: {','.join(sorted(granted))}."
    )


class InjectedResetError(Exception):
    """Raised after a partial response so the server drops the connection."""


async def drop_connection(send_start: Send, send_body: Send) -> None:
    """Start a 200 answer promising 4 KB, send a few bytes of it, and drop the connection:
    a reset in the middle of a body (``send_start`` may count the answer)."""
    await send_start(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send_body({"type": "http.response.body", "body": b'{"value": [', "more_body": True})
    raise InjectedResetError("connection dropped on purpose")


class _QuietResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedResetError)


logging.getLogger("uvicorn.error").addFilter(_QuietResets())


class GraphGate:
    def __init__(self, app: ASGIApp, emulator: Emulator, routes: Any) -> None:
        self.app = app
        self.emulator = emulator
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        em = self.emulator
        template = self._template(scope)
        em.count(f"route:{scope['method']} {template}")
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX) and not _from_loopback(scope):
            body = b'{"error": "the control surface answers loopback clients only"}'
            await _respond(send, 403, body, [])
            return
        if not path.startswith(GRAPH_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        client_request_id = headers.get("client-request-id")
        grant = em.issuer.resolve(headers.get("authorization"))
        if isinstance(grant, str):
            em.count("unauthorized")
            await _respond(
                send,
                401,
                error_body("InvalidAuthenticationToken", grant, client_request_id),
                [(b"www-authenticate", b'Bearer realm="", error="invalid_token"')],
            )
            return
        em.count(f"tenant:{grant.tenant_id}")
        refusal = missing_roles(scope["method"], template, grant.roles)
        if refusal is not None:
            em.count("forbidden")
            await _respond(send, 403, error_body("Forbidden", refusal, client_request_id), [])
            return
        wait = em.throttle(grant.tenant_id)
        if wait > 0:
            em.count("throttled")
            retry_after = str(max(1, math.ceil(wait))).encode()
            await _respond(
                send,
                429,
                error_body(
                    "TooManyRequests",
                    "Too many requests. Please retry after the period specified in Retry-After.",
                    client_request_id,
                ),
                [(b"retry-after", retry_after)],
            )
            return
        fault = em.draw_fault()
        if fault is not Fault.NONE:
            em.count(f"fault:{fault.value}")
        if fault in (Fault.ERROR, Fault.RETRY_AFTER_ERROR):
            status = em.error_status(fault)
            message, extra = "Injected fault.", []
            if fault is Fault.RETRY_AFTER_ERROR:
                message = "Injected fault; retry after Retry-After."
                extra = [(b"retry-after", str(math.ceil(em.faults.retry_after_seconds)).encode())]
            body = error_body(ERROR_CODES[status], message, client_request_id)
            await _respond(send, status, body, extra)
            return
        if fault is Fault.BARE_THROTTLE:
            await _respond(
                send,
                429,
                error_body("TooManyRequests", "Too many requests.", client_request_id),
                [],
            )
            return
        if fault is Fault.HTML_ERROR:
            status = em.error_status(fault)
            page = gateway_page(status)
            await _respond(send, status, page, [], content_type=b"text/html; charset=utf-8")
            return
        if fault is Fault.RESET:
            await drop_connection(send, send)
        if fault is Fault.SLOW:
            await asyncio.sleep(em.faults.slow_seconds)
        scope.setdefault("state", {})
        scope["state"]["tenant_id"] = grant.tenant_id
        scope["state"]["client_id"] = grant.client_id
        await self.app(scope, receive, send)

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(route.path)
        return "(unmatched)"


def _from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]],
    *,
    content_type: bytes = b"application/json",
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
