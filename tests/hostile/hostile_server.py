"""A hostile Microsoft Graph: a real HTTP server on 127.0.0.1 that breaks the contract on demand.

It serves what the real client talks to: Entra ID's OpenID metadata and token endpoint
(``/{tenant}/v2.0/.well-known/openid-configuration``, ``/{tenant}/oauth2/v2.0/token``, checked
for real, as ``tests/graph/entra_fake.py`` and the emulator do), and the Graph listings
``/v1.0/security/incidents``, ``/v1.0/security/alerts_v2`` and ``/incidents/{id}/alerts`` plus
single incidents and alerts. Normal pages come from ``xdrsync.emulator.listing.list_page``, so
``$filter`` (``lastUpdateDateTime`` ge/gt/le/lt), ``$orderby``, ``$top``, ``$skip`` and
``$expand=alerts`` behave as on the emulator. Then ``mode`` makes listing answers hostile, one
class of trouble per ``Mode`` (see its members).

Use it through the ``hostile`` fixture (``tests/hostile/conftest.py``), in a test module under
``tests/hostile/`` (where the fixture and this module are importable)::

    def test_something(hostile: HostileGraph, tmp_path: Path) -> None:
        hostile.records = [incident(1, T0), incident(2, T0 + timedelta(seconds=1))]
        hostile.mode = Mode.DEEP_NESTING          # every listing answer from now on
        hostile.times = 1                         # ...or only the next one (then normal)
        hostile.routes = {"incidents"}            # ...or only incidents, not alerts_v2
        config = hostile.config(tmp_path / "ws", max_response_bytes=2**20)
        tenant = hostile.tenant()                 # the TenantConfig alone

Attributes: ``base_url`` (graph_url and authority_url), ``tenant_id``, ``client_id``,
``client_secret``; ``records`` (Graph incidents, each may carry ``alerts``; alerts_v2 serves
those alerts plus ``alerts``); ``issued`` (access tokens handed out); ``requests`` (method and
path of every request, control routes excluded); ``hostile_served`` (answers served in a
hostile mode). Knobs: ``huge_bytes`` (default 512 MiB, generated lazily, never held),
``huge_declares_length`` (send Content-Length up front), ``drip_interval`` (seconds per byte,
default 0.5), ``deep_levels`` (default 100,000).
"""

from __future__ import annotations

import enum
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import SecretStr

from xdrsync.config import Config, SyncConfig, TenantConfig
from xdrsync.emulator.listing import ALERTS, INCIDENTS, ListingError, list_page


class Mode(enum.StrEnum):
    """One class of hostile listing answer (all 200 unless said otherwise)."""

    NORMAL = "normal"
    VALUE_NOT_LIST = "value-not-list"  # {"value": "nope"}
    EMPTY_OBJECT = "empty-object"  # {}
    NON_OBJECTS = "non-objects"  # the good records with "nope", 42, null, [1, 2], true among them
    LONE_SURROGATE = "lone-surrogate"  # the first record's displayName ends in "\udc00" (escaped)
    DEEP_NESTING = "deep-nesting"  # one record nested ``deep_levels`` deep among the good ones
    DUPLICATE_ID = "duplicate-id"  # the first record twice: same id and stamp, other content
    HUGE = "huge"  # a body of ``huge_bytes``, generated lazily
    DRIP = "drip"  # the normal page, one byte every ``drip_interval`` seconds
    DRIP_HEAD = "drip-head"  # the status line, then one header byte every ``drip_interval``
    PROCESSING = "processing"  # "102 Processing" every ``drip_interval`` seconds, never an answer
    BAD_PORT_LINK = "bad-port-link"  # the normal page with a nextLink on port "abc"
    ECHO_AUTHORIZATION = "echo-authorization"  # 401 whose body echoes our Authorization header
    CONTROL_BYTES = "control-bytes"  # 400 whose message holds NUL, ANSI escapes, CR, bidi marks
    NO_NEXT_LINK = "no-next-link"  # the normal page without its nextLink (a full page too)
    FUTURE_DATE = "future-date"  # the normal page with a Date header one day ahead
    PARTIAL = "partial"  # 206 with a Warning, the page's first record left out (§2.10)


DEEP_ID = "deep-1"
CONTROL_MESSAGE = (
    "bad\x00request \x1b[31mRED\x1b[0m \x1b]0;pwned-title\x07 over\rwrite \u202egnp.exe\x07 end"
)
NON_OBJECTS: tuple[Any, ...] = ("nope", 42, None, [1, 2], True)


def stamp(moment: datetime) -> str:
    """Graph's DateTimeOffset text (seven fractional digits, Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def incident(number: int, updated: datetime, *, alerts: int = 1, **extra: Any) -> dict[str, Any]:
    """A small but complete Graph incident with ``alerts`` alerts, updated at ``updated``."""
    when = stamp(updated)
    record: dict[str, Any] = {
        "id": str(number),
        "tenantId": HostileGraph.tenant_id,
        "displayName": f"Incident {number}",
        "description": "",
        "severity": "medium",
        "status": "active",
        "classification": "unknown",
        "determination": "unknown",
        "assignedTo": None,
        "customTags": [],
        "systemTags": [],
        "comments": [],
        "createdDateTime": when,
        "lastUpdateDateTime": when,
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{number}",
        "redirectIncidentId": None,
        "alerts": [
            {
                "id": f"da{number:06d}_{index}",
                "incidentId": str(number),
                "tenantId": HostileGraph.tenant_id,
                "title": f"Alert {index} of incident {number}",
                "severity": "medium",
                "status": "new",
                "serviceSource": "microsoftDefenderForEndpoint",
                "detectionSource": "microsoftDefenderForEndpoint",
                "createdDateTime": when,
                "lastUpdateDateTime": when,
                "evidence": [],
                "comments": [],
            }
            for index in range(alerts)
        ],
    }
    record.update(extra)
    return record


@dataclass
class HostileGraph:
    """State and knobs of one hostile server (see the module docstring)."""

    base_url: str = ""
    tenant_id: str = "5b1f3c2a-0000-4c8e-9d7e-00000000dead"
    client_id: str = "0a5d2e4f-0000-4b6c-8e9f-00000000beef"
    client_secret: str = field(default_factory=lambda: "hostile-" + secrets.token_urlsafe(18))
    records: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    mode: Mode = Mode.NORMAL
    times: int | None = None  # hostile answers left before answering normally; None: forever
    routes: set[str] = field(default_factory=lambda: {"incidents", "alerts_v2", "alerts"})
    huge_bytes: int = 512 * 1024 * 1024
    huge_declares_length: bool = False
    drip_interval: float = 0.5
    deep_levels: int = 100_000
    issued: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    hostile_served: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tenant(self, **overrides: Any) -> TenantConfig:
        """A TenantConfig signing in to this server with its secret."""
        values: dict[str, Any] = {
            "name": "hostile",
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": SecretStr(self.client_secret),
            "graph_url": self.base_url,
            "authority_url": self.base_url,
            "rate_limit_per_minute": 10_000,
        }
        values.update(overrides)
        return TenantConfig(**values)

    def sync_config(self, **overrides: Any) -> SyncConfig:
        """Quick defaults for tests: 2 attempts, 5 s per read, 10 s deadline, 8 MiB cap."""
        values: dict[str, Any] = {
            "poll_interval_seconds": 0.2,
            "max_attempts": 2,
            "request_timeout_seconds": 5,
            "request_deadline_seconds": 10,
            "max_response_bytes": 8 * 1024 * 1024,
        }
        values.update(overrides)
        return SyncConfig(**values)

    def config(self, workspace: Path, **sync_overrides: Any) -> Config:
        """A whole Config: this tenant, a workspace folder, ``sync_config(**sync_overrides)``."""
        return Config(
            workspace={"path": workspace},
            tenants=(self.tenant(),),
            sync=self.sync_config(**sync_overrides),
        )

    def take_mode(self, route: str) -> Mode:
        """The mode for one listing answer on ``route`` (counts down ``times``)."""
        with self.lock:
            if self.mode is Mode.NORMAL or route not in self.routes:
                return Mode.NORMAL
            if self.times is not None:
                if self.times <= 0:
                    return Mode.NORMAL
                self.times -= 1
            self.hostile_served += 1
            return self.mode

    def all_alerts(self) -> list[dict[str, Any]]:
        return [a for r in self.records for a in r.get("alerts", []) or []] + list(self.alerts)


# -- the HTTP side ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests`` instead."""

    @property
    def state(self) -> HostileGraph:
        return self.server.state

    # -- plumbing --------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        ahead: float = 0.0,  # seconds the Date header is ahead of the real time
        **extra: str,
    ) -> None:
        self.send_response_only(status)  # without the Date send_response adds: ours only
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", formatdate(time.time() + ahead, usegmt=True))
        for name, value in extra.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": {"code": code, "message": message}})

    def _stream(self, chunks: Iterator[bytes], length: int | None = None) -> None:
        """Send a body without holding it: close-delimited unless ``length`` is given."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Connection", "close")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self._raw(chunks)

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        with self.state.lock:
            self.state.requests.append(("GET", path))
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            self._metadata(path.split("/")[1])
            return
        if not path.startswith("/v1.0/security/"):
            self._error(404, "NotFound", "no such route")
            return
        if not self._authorized():
            return
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        segments = [unquote(s) for s in path[len("/v1.0/security/") :].split("/") if s]
        base_url = f"{self.state.base_url}{path}"
        if segments == ["incidents"]:
            self._listing("incidents", self.state.records, query, base_url)
        elif segments == ["alerts_v2"]:
            self._listing("alerts_v2", self.state.all_alerts(), query, base_url)
        elif len(segments) == 3 and segments[0] == "incidents" and segments[2] == "alerts":
            found = [r for r in self.state.records if r.get("id") == segments[1]]
            alerts = list(found[0].get("alerts", [])) if found else []
            self._page("alerts", {"value": alerts}, alerts)
        elif len(segments) == 2 and segments[0] in ("incidents", "alerts_v2"):
            pool = self.state.records if segments[0] == "incidents" else self.state.all_alerts()
            match = [r for r in pool if r.get("id") == segments[1]]
            if match:
                self._json(200, match[0])
            else:
                self._error(404, "NotFound", f"{segments[0]} {segments[1]} not found")
        else:
            self._error(404, "NotFound", "no such route")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        with self.state.lock:
            self.state.requests.append(("POST", path))
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
        if path != f"/{self.state.tenant_id}/oauth2/v2.0/token":
            self._error(404, "NotFound", "no such route")
            return
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != self.state.client_id
            or not secrets.compare_digest(
                form.get("client_secret", "").encode(), self.state.client_secret.encode()
            )
        ):
            self._json(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
            )
            return
        token = "hostile." + secrets.token_urlsafe(32)
        with self.state.lock:
            self.state.issued.append(token)
        self._json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3600,
                "ext_expires_in": 3600,
                "access_token": token,
            },
        )

    def _metadata(self, tenant: str) -> None:
        if tenant != self.state.tenant_id:
            self._json(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
            )
            return
        # Advertised as https, as Entra ID does; the client maps it back to loopback http.
        base = "https://" + urlsplit(self.state.base_url).netloc + f"/{tenant}"
        self._json(
            200,
            {
                "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            },
        )

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        with self.state.lock:
            known = token in self.state.issued
        if not known:
            self._error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        return known

    def _listing(
        self, route: str, records: list[dict[str, Any]], query: dict[str, str], base_url: str
    ) -> None:
        spec = INCIDENTS if route == "incidents" else ALERTS
        try:
            page = list_page(tuple(records), query, spec=spec, base_url=base_url)
        except ListingError as bad:
            self._error(bad.status, bad.code, bad.message)
            return
        items = [dict(item) for item in page.items]
        expand = any(k.lower() == "$expand" and "alerts" in v.lower() for k, v in query.items())
        if route == "incidents" and not expand:
            items = [{k: v for k, v in item.items() if k != "alerts"} for item in items]
        body: dict[str, Any] = {"@odata.context": page.context, "value": items}
        if page.count is not None:
            body["@odata.count"] = page.count
        if page.next_link is not None:
            body["@odata.nextLink"] = page.next_link
        self._page(route, body, items)

    def _page(self, route: str, body: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Serve a listing page, made hostile according to the mode."""
        mode = self.state.take_mode(route)
        if mode is Mode.NORMAL:
            self._json(200, body)
        elif mode is Mode.VALUE_NOT_LIST:
            self._json(200, {"value": "nope"})
        elif mode is Mode.EMPTY_OBJECT:
            self._json(200, {})
        elif mode is Mode.NON_OBJECTS:
            mixed: list[Any] = []
            for index, item in enumerate(items):
                mixed.append(item)
                mixed.append(NON_OBJECTS[index % len(NON_OBJECTS)])
            self._json(200, {**body, "value": [*NON_OBJECTS[:1], *mixed, *NON_OBJECTS[1:]]})
        elif mode is Mode.LONE_SURROGATE:
            changed = [dict(item) for item in items]
            if changed:
                changed[0]["displayName"] = f"{changed[0].get('displayName', '')} \udc00"
            self._json(200, {**body, "value": changed})  # json escapes it: "\udc00"
        elif mode is Mode.DEEP_NESTING:
            self._send(200, self._deep_body(body, items))
        elif mode is Mode.DUPLICATE_ID:
            twins = [dict(item) for item in items]
            if twins:
                twin = {**twins[0], "displayName": "the other copy", "severity": "high"}
                twins.insert(1, twin)
            self._json(200, {**body, "value": twins})
        elif mode is Mode.HUGE:
            self._huge()
        elif mode is Mode.DRIP:
            text = json.dumps(body).encode()
            self._stream(self._drip(text), len(text))
        elif mode is Mode.DRIP_HEAD:
            self._raw(self._drip_head())
        elif mode is Mode.PROCESSING:
            self._raw(self._processing())
        elif mode is Mode.BAD_PORT_LINK:
            link = urlsplit(self.state.base_url)
            bad = f"{link.scheme}://{link.hostname}:abc/v1.0/security/{route}?$skip=1"
            self._json(200, {**body, "@odata.nextLink": bad})
        elif mode is Mode.ECHO_AUTHORIZATION:
            echoed = self.headers.get("Authorization", "")
            self._json(
                401,
                {
                    "error": {
                        "code": "InvalidAuthenticationToken",
                        "message": f"Token rejected. You sent Authorization: {echoed}",
                        "innerError": {"headers": dict(self.headers.items())},
                    }
                },
            )
        elif mode is Mode.CONTROL_BYTES:
            self._error(400, "Bad\x1b[2JRequest", CONTROL_MESSAGE)
        elif mode is Mode.NO_NEXT_LINK:
            self._json(200, {k: v for k, v in body.items() if k != "@odata.nextLink"})
        elif mode is Mode.FUTURE_DATE:
            self._send(200, json.dumps(body).encode(), ahead=86_400)
        elif mode is Mode.PARTIAL:
            warning = '199 - "Microsoft/DefenderForEndpoint/500/Provider answered with an error"'
            partial = {**body, "value": items[1:]}
            self._send(206, json.dumps(partial).encode(), Warning=warning)

    def _deep_body(self, body: dict[str, Any], items: list[dict[str, Any]]) -> bytes:
        levels = self.state.deep_levels
        deep = (
            '{"id":"' + DEEP_ID + '","displayName":"deep","nested":' + "[" * levels + "]" * levels
        ) + "}"
        texts = [json.dumps(item) for item in items]
        texts.insert(len(texts) // 2, deep)
        envelope = {k: v for k, v in body.items() if k != "value"}
        head = json.dumps(envelope)[:-1] + (', "value": [' if envelope else '"value": [')
        return (head + ", ".join(texts) + "]}").encode()

    def _huge(self) -> None:
        total = self.state.huge_bytes
        record = json.dumps(incident(0, datetime(2025, 1, 1))).encode() + b","
        filler = record * max(1, (64 * 1024) // len(record))

        def chunks() -> Iterator[bytes]:
            yield b'{"value":['
            sent = len(b'{"value":[')
            while sent + len(filler) + 2 < total:
                yield filler
                sent += len(filler)
            yield b"{}" + b" " * max(0, total - sent - 4) + b"]}"

        self._stream(chunks(), total if self.state.huge_declares_length else None)

    def _raw(self, chunks: Iterator[bytes]) -> None:
        """Write bytes as they come, then close: a body, or a head written by hand (http.server
        cannot dribble one)."""
        self.close_connection = True
        try:
            for chunk in chunks:
                if self.state.stopping.is_set():
                    return
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the client hung up: what a good client does with a hostile answer

    def _drip_head(self) -> Iterator[bytes]:
        yield b"HTTP/1.1 200 OK\r\n"
        yield from self._drip(b"X-Slow: " + b"a" * 100_000)

    def _processing(self) -> Iterator[bytes]:
        while True:  # each a whole informational answer; the real one never comes
            yield b"HTTP/1.1 102 Processing\r\n\r\n"
            time.sleep(self.state.drip_interval)

    def _drip(self, text: bytes) -> Iterator[bytes]:
        for index in range(len(text)):
            if index:
                time.sleep(self.state.drip_interval)
            yield text[index : index + 1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state: HostileGraph) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@dataclass
class Running:
    """A started server; ``stop()`` shuts it down and ends hostile streams."""

    state: HostileGraph
    server: _Server
    thread: threading.Thread

    def stop(self) -> None:
        self.state.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def start(state: HostileGraph | None = None) -> Running:
    """Serve ``state`` (a fresh HostileGraph by default) on an ephemeral loopback port."""
    state = state or HostileGraph()
    server = _Server(state)
    host, port = server.server_address[:2]
    state.base_url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, name="hostile-graph", daemon=True)
    thread.start()
    return Running(state, server, thread)


__all__ = [
    "CONTROL_MESSAGE",
    "DEEP_ID",
    "NON_OBJECTS",
    "HostileGraph",
    "Mode",
    "Running",
    "incident",
    "stamp",
    "start",
]
