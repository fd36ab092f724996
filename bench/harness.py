"""Shared plumbing: the emulator and xdrsync in their own processes, measured from outside."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.tenants import TenantSpec

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graph_calls(stats: dict[str, Any]) -> int:
    """Requests the tenants made to Graph routes (not the control surface or sign-in)."""
    return sum(int(n) for n in stats["by_tenant"].values())


@dataclass
class Emulator:
    base_url: str
    process: subprocess.Popen[bytes]
    tenant: TenantSpec

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.base_url}/_emulator/stats", timeout=60).json())

    def graph_calls(self) -> int:
        return graph_calls(self.stats())

    def truth(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.base_url}/_emulator/truth", timeout=300).json()["value"])


@contextmanager
def emulator(*args: str, seed: int = 7) -> Iterator[Emulator]:
    """``xdrsync emulate defender`` in its own process, so its memory is not ours."""
    port = free_port()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "xdrsync",
            "emulate",
            "defender",
            "--port",
            str(port),
            "--seed",
            str(seed),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        try:
            httpx.get(f"{base}/_emulator/stats", timeout=5).raise_for_status()
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start") from None
            time.sleep(0.2)
    try:
        yield Emulator(base, process, TenantSpec.derived(seed, 0))
    finally:
        process.terminate()
        process.wait(timeout=30)


def write_config(folder: Path, emu: Emulator, **sync: Any) -> Path:
    rate = sync.pop("rate_limit_per_minute", 10_000)
    return write_client_config(
        folder, emu.base_url, [emu.tenant], sync=sync, rate_limit_per_minute=rate
    )


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mib: float
    returncode: int
    output: str
    cpu_seconds: float = float("nan")  # user + system, every thread of the child


def run_xdrsync(*args: str, timeout: float = 3600) -> Measured:
    """Run the CLI in a child that reports its own peak RSS and CPU time when it exits."""
    report = (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"xdrsync-rss-{os.getpid()}-{time.monotonic_ns()}"
    )
    code = (
        "import atexit, resource, sys\n"
        "def _report():\n"
        "    use = resource.getrusage(resource.RUSAGE_SELF)\n"
        f"    open({str(report)!r}, 'w').write(f'{{use.ru_maxrss}} {{use.ru_utime + use.ru_stime}}')\n"
        "atexit.register(_report)\n"
        f"sys.argv = ['xdrsync', *{list(args)!r}]\n"
        "from xdrsync.cli import main\nmain()\n"
    )
    started = time.perf_counter()
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    peak, cpu = float("nan"), float("nan")
    if report.exists():
        rss, used = report.read_text().split()
        peak, cpu = int(rss) / 1024, float(used)
    report.unlink(missing_ok=True)
    return Measured(seconds, peak, done.returncode, done.stdout + done.stderr, cpu)


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))
