"""A proxy that makes tenants sick: one port per tenant in front of the Defender emulator.

Each tenant's ``graph_url`` and ``authority_url`` point at its own port (``front``); the port
forwards to the emulator (the Host header too, so sign-in metadata names the port) until the
test makes it sick with ``set(name, Sick(...))``: Graph calls (``/v1.0/...``) then hang, or
are answered 429 with a Retry-After, or 403. Sign-in always goes through. Every request is
logged per tenant with its time (``calls``), so a test can tell when a tenant called Graph.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

_HOP = {"connection", "transfer-encoding", "content-length", "keep-alive", "date", "server"}


@dataclass
class Sick:
    """How a tenant's Graph calls are answered; ``times``: only the next so many (None: all)."""

    kind: Literal["ok", "hang", "429", "403"] = "ok"
    retry_after: float = 60.0
    times: int | None = None
    routes: tuple[str, ...] = ("/v1.0/",)  # path prefixes made sick


@dataclass(frozen=True)
class Call:
    at: float  # time.monotonic() when the request came
    method: str
    path: str  # without the query
    status: int | None  # None: hung


@dataclass
class _Front:
    name: str
    server: ThreadingHTTPServer
    sick: Sick = field(default_factory=Sick)
    calls: list[Call] = field(default_factory=list)


class SickProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.released = threading.Event()  # ends every hang (at ``stop``)
        self.lock = threading.Lock()
        self._fronts: dict[str, _Front] = {}

    def front(self, name: str) -> str:
        """Start the tenant's port; its base URL."""
        proxy = self

        class Handler(_Handler):
            owner = proxy
            tenant = name

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._fronts[name] = _Front(name, server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    def set(self, name: str, sick: Sick) -> None:
        with self.lock:
            self._fronts[name].sick = sick

    def calls(self, name: str, prefix: str = "/v1.0/") -> list[Call]:
        """The tenant's requests so far whose path starts with ``prefix``."""
        with self.lock:
            return [c for c in self._fronts[name].calls if c.path.startswith(prefix)]

    def take(self, name: str, path: str) -> Sick:
        """The answer for one request of the tenant (counts ``times`` down)."""
        with self.lock:
            sick = self._fronts[name].sick
            if sick.kind == "ok" or not path.startswith(sick.routes):
                return Sick()
            if sick.times is not None:
                if sick.times <= 0:
                    return Sick()
                sick.times -= 1
            return sick

    def log(self, name: str, call: Call) -> None:
        with self.lock:
            self._fronts[name].calls.append(call)

    def stop(self) -> None:
        self.released.set()
        for front in self._fronts.values():
            front.server.shutdown()
            front.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: SickProxy
    tenant: str

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _do(self) -> None:
        came = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path = urlsplit(self.path).path
        sick = self.owner.take(self.tenant, path)
        if sick.kind == "hang":
            self.owner.log(self.tenant, Call(came, self.command, path, None))
            self.owner.released.wait(600)
            self.close_connection = True
            return
        if sick.kind in ("429", "403"):
            status = int(sick.kind)
            code = "TooManyRequests" if status == 429 else "Forbidden"
            message = (
                "Too many requests"
                if status == 429
                else "Missing application roles. API required roles: SecurityIncident.Read.All"
            )
            headers = {"Retry-After": f"{sick.retry_after:g}"} if status == 429 else {}
            self.owner.log(self.tenant, Call(came, self.command, path, status))
            payload = json.dumps({"error": {"code": code, "message": message}}).encode()
            self._answer(status, {"Content-Type": "application/json", **headers}, payload)
            return
        upstream = http.client.HTTPConnection(self.owner.host, self.owner.port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            kept = {k: v for k, v in answer.getheaders() if k.lower() not in _HOP}
            kept["Date"] = answer.getheader("Date") or self.date_time_string()
        finally:
            upstream.close()
        self.owner.log(self.tenant, Call(came, self.command, path, answer.status))
        self._answer(answer.status, kept, data)

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response_only(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._do()

    def do_POST(self) -> None:
        self._do()

    def do_PATCH(self) -> None:
        self._do()
