"""Run the Sentinel emulator: in the foreground for the CLI, or on a background thread for tests."""

from __future__ import annotations

import socket

from xdrsync.emulator.sentinel.app import build_app
from xdrsync.emulator.sentinel.service import SentinelEmulator
from xdrsync.emulator.sentinel.settings import SentinelSettings
from xdrsync.serving import ServerThread, serve


class SentinelEmulatorServer(ServerThread):
    """A started Sentinel emulator; ``port=0`` picks a free port. Use as a context manager."""

    def __init__(
        self, settings: SentinelSettings, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.emulator = SentinelEmulator(settings)
        super().__init__(build_app(self.emulator), host=host, port=port, name="Sentinel emulator")

    @property
    def settings(self) -> SentinelSettings:
        return self.emulator.settings

    def start(self, timeout: float = 30.0) -> SentinelEmulatorServer:
        super().start(timeout)
        return self


def serve_forever(
    settings: SentinelSettings,
    *,
    host: str = "127.0.0.1",
    port: int,
    sock: socket.socket | None = None,
) -> None:
    """Foreground run for ``xdrsync emulate sentinel``, on ``sock`` when given (bound by the
    caller, ``serving.listening``); returns on Ctrl-C or SIGTERM."""
    serve(build_app(SentinelEmulator(settings)), host=host, port=port, sock=sock)
