"""Serving the console beside the sync (``xdrsync run`` and ``xdrsync demo``)."""

from __future__ import annotations

from collections.abc import Callable

from xdrsync.config import Config
from xdrsync.console.app import create_app
from xdrsync.console.context import ConsoleContext
from xdrsync.hub import Hub
from xdrsync.serving import ServerThread
from xdrsync.tables.logstore import LogStore


def console_server(
    config: Config,
    hub: Hub,
    logs: LogStore,
    *,
    wake_pusher: Callable[[], None] | None = None,
    port: int | None = None,
) -> ServerThread:
    """The console on ``[console] host:port`` (or ``port``; 0 picks a free one), with TLS
    when configured; start it with ``.start()``."""
    settings = config.console
    ctx = ConsoleContext(config, hub, logs, wake_pusher=wake_pusher)
    tls = {}
    if settings.tls_certfile is not None and settings.tls_keyfile is not None:
        tls = {
            "ssl_certfile": str(settings.tls_certfile),
            "ssl_keyfile": str(settings.tls_keyfile),
        }
    return ServerThread(
        create_app(ctx),
        host=settings.host,
        port=settings.port if port is None else port,
        name="console",
        **tls,
    )


__all__ = ["console_server"]
