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
    cpu_seconds: float = float("nan")  # user + system: every thread, and its own children
    worker_peak_rss_mib: float = 0.0  # the largest child it waited for (the tables' worker)


def run_xdrsync(*args: str, timeout: float = 3600, source: Path | None = None) -> Measured:
    """Run the CLI in a child that reports its peak RSS and CPU time when it exits, its own
    children's (the log tables' worker process) included.

    ``source``: another ``src`` tree of xdrsync to run instead of this one (a baseline)."""
    report = (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"xdrsync-rss-{os.getpid()}-{time.monotonic_ns()}"
    )
    code = (
        "import atexit, resource, sys\n"
        "def _report():\n"
        "    use = resource.getrusage(resource.RUSAGE_SELF)\n"
        "    kids = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "    cpu = use.ru_utime + use.ru_stime + kids.ru_utime + kids.ru_stime\n"
        f"    open({str(report)!r}, 'w').write(f'{{use.ru_maxrss}} {{cpu}} {{kids.ru_maxrss}}')\n"
        "atexit.register(_report)\n"
        f"sys.argv = ['xdrsync', *{list(args)!r}]\n"
        "import runpy\nrunpy.run_module('xdrsync', run_name='__main__')\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=source_env(source),
    )
    seconds = time.perf_counter() - started
    peak, cpu, worker = float("nan"), float("nan"), 0.0
    if report.exists():
        rss, used, child = report.read_text().split()
        peak, cpu, worker = int(rss) / 1024, float(used), int(child) / 1024
    report.unlink(missing_ok=True)
    return Measured(seconds, peak, done.returncode, done.stdout + done.stderr, cpu, worker)


def source_env(source: Path | None) -> dict[str, str] | None:
    """The environment that runs ``source`` (a ``src`` tree) instead of this one."""
    if source is None:
        return None
    return {**os.environ, "PYTHONPATH": str(source)}


def source_tree(revision: str, into: Path) -> Path:
    """The ``src`` tree of ``revision`` of this repository, exported to ``into``: run with
    it first on ``PYTHONPATH`` to measure that revision beside the current one."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))
