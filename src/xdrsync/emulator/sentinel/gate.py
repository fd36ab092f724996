"""ASGI middleware in front of the ARM and ingestion routes: tokens, throttling, faults, stats.

It counts every request by method and route template and every answer by status. The control
surface (``/_emulator/``) answers loopback clients only and needs no token; the Entra endpoints
need none either; neither is throttled nor faulted (as in the Defender emulator). Plain ASGI,
because an injected connection reset can only be imitated below the framework.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xdrsync.emulator.faults import ERROR_CODES, Fault
from xdrsync.emulator.gate import drop_connection
from xdrsync.emulator.graph_errors import gateway_page
from xdrsync.emulator.sentinel.auth import ARM_AUDIENCES, MONITOR_AUDIENCE
from xdrsync.emulator.sentinel.errors import ArmError
from xdrsync.emulator.sentinel.service import ARM, INGESTION, SentinelEmulator

ARM_PREFIX = "/subscriptions/"
INGESTION_PREFIX = "/dataCollectionRules/"
CONTROL_PREFIX = "/_emulator/"


#: Requests whose connection drops after they were applied (a reset fault).
WRITES = frozenset({"PUT", "POST", "DELETE"})


async def _discard(message: Message) -> None:
    """Where the answer of a write whose connection drops goes."""


def surface_of(path: str) -> str | None:
    if path.startswith(ARM_PREFIX):
        return ARM
    if path.startswith(INGESTION_PREFIX):
        return INGESTION
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


async def _send_error(send: Send, error: ArmError) -> None:
    body = error.body()
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_page(send: Send, status: int) -> None:
    """A gateway's own HTML error page in front of ARM or Logs Ingestion (text/html)."""
    body = gateway_page(status)
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SentinelGate:
    def __init__(self, app: ASGIApp, emulator: SentinelEmulator, routes: Any) -> None:
        self.app = app
        self.emulator = emulator
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        em = self.emulator
        em.count(f"route:{scope['method']} {self._template(scope)}")

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                em.count(f"status:{message['status']}")
            await send(message)

        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX) and not _from_loopback(scope):
            await _send_error(
                counted_send,
                ArmError(403, "Forbidden", "The control surface answers loopback clients only."),
            )
            return
        surface = surface_of(path)
        if surface is None:
            await self.app(scope, receive, counted_send)
            return
        try:
            grant = em.issuer.grant_for(
                _header(scope, b"authorization"), _audiences(scope, surface)
            )
        except ArmError as refused:
            await _send_error(counted_send, refused)
            return
        wait = em.throttle(surface)
        if wait > 0:
            em.count(f"throttled:{surface}")
            await _send_error(
                counted_send,
                ArmError(
                    429,
                    "TooManyRequests",
                    "Too many requests. Please retry after the period given in Retry-After.",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                ),
            )
            return
        fault = em.draw_fault()
        if fault is not Fault.NONE:
            em.count(f"fault:{fault.value}")
        if fault in (Fault.ERROR, Fault.RETRY_AFTER_ERROR):
            status = em.error_status(fault)
            message, headers = "Injected fault.", {}
            if fault is Fault.RETRY_AFTER_ERROR:
                message = "Injected fault; retry after Retry-After."
                headers = {"Retry-After": str(math.ceil(em.faults.requests.retry_after_seconds))}
            await _send_error(counted_send, ArmError(status, ERROR_CODES[status], message, headers))
            return
        if fault is Fault.HTML_ERROR:
            await _send_page(counted_send, em.error_status(fault))
            return
        scope.setdefault("state", {})
        scope["state"]["grant"] = grant
        if fault is Fault.RESET:
            if scope["method"] in WRITES:
                # The service applied the write; its answer is what is lost (the harder case
                # for a client: trying again meets its own write).
                await self.app(scope, receive, _discard)
            await drop_connection(counted_send, send)
        if fault is Fault.SLOW:
            await asyncio.sleep(em.faults.requests.slow_seconds)
        await self.app(scope, receive, counted_send)

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "(mounted)"))
        return "(unmatched)"


def _audiences(scope: Scope, surface: str) -> tuple[str, ...]:
    if surface == INGESTION:
        return (MONITOR_AUDIENCE,)
    host = _header(scope, b"host") or ""
    return (*ARM_AUDIENCES, f"http://{host}", f"https://{host}")
