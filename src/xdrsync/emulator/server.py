"""Run the emulator: in the foreground for the CLI, or on a background thread for tests."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from xdrsync.emulator.app import build_app
from xdrsync.emulator.service import Emulator
from xdrsync.emulator.tenants import EmulatorSettings


def _uvicorn_config(emulator: Emulator, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        build_app(emulator),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )


class EmulatorServer:
    """A started emulator on 127.0.0.1; ``port=0`` picks a free port. Use as a context manager."""

    def __init__(
        self, settings: EmulatorSettings, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.emulator = Emulator(settings)
        self._server = uvicorn.Server(_uvicorn_config(self.emulator, host, port))
        self._thread = threading.Thread(target=self._server.run, name="emulator", daemon=True)
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        sockets = self._server.servers[0].sockets
        self.port = sockets[0].getsockname()[1]
        self.emulator.start_activity()
        return self

    def stop(self) -> None:
        self.emulator.stop()
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(settings: EmulatorSettings, *, host: str, port: int) -> None:
    """Foreground run for ``xdrsync emulate defender``; returns on Ctrl-C or SIGTERM."""
    emulator = Emulator(settings)
    server = uvicorn.Server(_uvicorn_config(emulator, host, port))
    emulator.start_activity()
    try:
        server.run()
    finally:
        emulator.stop()
