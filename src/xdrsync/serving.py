"""Serving an app with uvicorn: on a background thread (the console in ``run`` and ``demo``,
tests, benches) or in the foreground (``xdrsync emulate ...``). Shared by the console and the
Defender and Sentinel emulators."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn


def uvicorn_config(app: Any, host: str, port: int, **extra: Any) -> uvicorn.Config:
    """``extra``: more uvicorn settings (the console's ``ssl_certfile``/``ssl_keyfile``).

    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are ignored: uvicorn would otherwise take
    them from any loopback client (or the addresses in ``FORWARDED_ALLOW_IPS``), letting any
    local process choose the client address an app sees. The console honours them from its
    configured ``trusted_proxies`` only (``console/app.py``)."""
    settings: dict[str, Any] = {"proxy_headers": False, **extra}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        **settings,
    )


def listen_error(host: str, port: int) -> OSError | None:
    """Why ``port`` on ``host`` cannot be listened on now (None: it can; port 0 always can),
    bound as uvicorn binds. Asked first, so that a port in use is one line of the caller's,
    not uvicorn's bind error on stderr beside it."""
    if port == 0:
        return None
    try:
        listening(host, port).close()
    except OSError as refused:
        return refused
    return None


class ServerThread:
    """``app`` served on a daemon thread; ``port=0`` picks a free port, known after start."""

    def __init__(self, app: Any, *, host: str, port: int, name: str, **extra: Any) -> None:
        self._server = uvicorn.Server(uvicorn_config(app, host, port, **extra))
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)
        self.name = name
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        scheme = "https" if self._server.config.ssl_certfile else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def listening(host: str, port: int) -> socket.socket:
    """A socket bound to ``port`` on ``host`` as uvicorn binds one, for ``serve``: bound
    first, a server on ``port=0`` knows the port the system picked before it says where it
    is. Raises OSError when the port cannot be bound (in use)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(app: Any, *, host: str, port: int, sock: socket.socket | None = None) -> None:
    """In the foreground until Ctrl-C or SIGTERM; on ``sock`` when given (``listening``)."""
    server = uvicorn.Server(uvicorn_config(app, host, port))
    server.run(sockets=[sock] if sock is not None else None)
