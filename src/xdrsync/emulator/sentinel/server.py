"""Run the Sentinel emulator: in the foreground for the CLI, or on a background thread for tests."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from xdrsync.emulator.sentinel.app import build_app
from xdrsync.emulator.sentinel.service import SentinelEmulator
from xdrsync.emulator.sentinel.settings import SentinelSettings


def _uvicorn_config(emulator: SentinelEmulator, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        build_app(emulator),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )


class SentinelEmulatorServer:
    """A started Sentinel emulator; ``port=0`` picks a free port. Use as a context manager."""

    def __init__(
        self, settings: SentinelSettings, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.emulator = SentinelEmulator(settings)
        self._server = uvicorn.Server(_uvicorn_config(self.emulator, host, port))
        self._thread = threading.Thread(
            target=self._server.run, name="sentinel-emulator", daemon=True
        )
        self.host = host
        self.port = port

    @property
    def settings(self) -> SentinelSettings:
        return self.emulator.settings

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> SentinelEmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Sentinel emulator did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SentinelEmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(settings: SentinelSettings, *, host: str = "127.0.0.1", port: int) -> None:
    """Foreground run for ``xdrsync emulate sentinel``; returns on Ctrl-C or SIGTERM."""
    uvicorn.Server(_uvicorn_config(SentinelEmulator(settings), host, port)).run()
