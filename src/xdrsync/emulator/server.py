"""Run the emulator: in the foreground for the CLI, or on a background thread for tests."""

from __future__ import annotations

import gc
import socket

from xdrsync.emulator.app import build_app
from xdrsync.emulator.service import Emulator
from xdrsync.emulator.tenants import EmulatorSettings
from xdrsync.serving import ServerThread, serve


class EmulatorServer(ServerThread):
    """A started emulator on 127.0.0.1; ``port=0`` picks a free port. Use as a context manager."""

    def __init__(
        self, settings: EmulatorSettings, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.emulator = Emulator(settings)
        super().__init__(build_app(self.emulator), host=host, port=port, name="emulator")

    def start(self, timeout: float = 30.0) -> EmulatorServer:
        super().start(timeout)
        self.emulator.start_activity()
        return self

    def stop(self) -> None:
        self.emulator.stop()
        super().stop()


def serve_forever(
    settings: EmulatorSettings, *, host: str, port: int, sock: socket.socket | None = None
) -> None:
    """Foreground run for ``xdrsync emulate defender``, on ``sock`` when given (bound by the
    caller, ``serving.listening``); returns on Ctrl-C or SIGTERM."""
    emulator = Emulator(settings)
    # The seeded tenants are millions of objects that live as long as the process: kept out
    # of every collection (reference counting still frees what an update replaces), a full
    # collection takes milliseconds instead of stopping the server for a second or more.
    gc.freeze()
    emulator.start_activity()
    try:
        serve(build_app(emulator), host=host, port=port, sock=sock)
    finally:
        emulator.stop()
