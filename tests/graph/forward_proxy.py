"""A tiny forward proxy on 127.0.0.1 for the proxy tests: plain-http requests in absolute form
(``GET http://127.0.0.1:P/path``, what a client sends an http proxy for an http URL) are
relayed to their server, one connection each, and counted by method and path. With
``credentials`` set, a request without that ``Proxy-Authorization: Basic ...`` gets 407."""

from __future__ import annotations

import base64
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO
from urllib.parse import urlsplit


@dataclass
class ForwardProxy:
    credentials: tuple[str, str] | None = None
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path) relayed
    refused: int = 0  # answered 407
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy._relay(self.rfile, self.connection)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def paths(self) -> list[str]:
        with self._lock:
            return [path for _, path in self.seen]

    def _relay(self, rfile: BinaryIO, client: socket.socket) -> None:
        line = rfile.readline(65536).decode("latin-1")
        if not line.strip():
            return
        method, target, _ = line.split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            raw = rfile.readline(65536).decode("latin-1")
            if raw in ("\r\n", "\n", ""):
                break
            name, _, value = raw.partition(":")
            headers.append((name.strip(), value.strip()))
        found = {name.lower(): value for name, value in headers}
        body = rfile.read(int(found.get("content-length", "0")))
        if self.credentials is not None:
            expected = base64.b64encode(":".join(self.credentials).encode()).decode()
            if found.get("proxy-authorization") != f"Basic {expected}":
                with self._lock:
                    self.refused += 1
                client.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="corp"\r\nContent-Length: 0\r\n'
                    b"Connection: close\r\n\r\n"
                )
                return
        parts = urlsplit(target)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        with self._lock:
            self.seen.append((method, parts.path))
        kept = [
            (name, value)
            for name, value in headers
            if name.lower() not in ("proxy-authorization", "proxy-connection", "connection")
        ]
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in kept)
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=30) as server:
            server.sendall(head.encode("latin-1") + b"Connection: close\r\n\r\n" + body)
            while chunk := server.recv(65536):
                client.sendall(chunk)
