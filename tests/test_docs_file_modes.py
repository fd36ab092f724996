"""docs/security.md: "another local user on the machine [reaches] nothing of xdrsync's on
disk: the workspace is `0700`, its files `0600`". The demo's workspace had its marker, log,
config and the emulated Sentinel's secret at 0644: they were written before the workspace's
private umask was set."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path


def test_every_file_of_the_demo_workspace_is_private(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    command = ["demo", "--duration", "1", "--console-port", "0", "--workspace", str(workspace)]
    done = subprocess.run(
        [sys.executable, "-m", "xdrsync", *command],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(workspace.stat().st_mode) == 0o700
    secret = workspace / "sentinel.secret"
    assert secret.is_file()
    loose = sorted(
        f"{path.name} {stat.S_IMODE(path.stat().st_mode):o}"
        for path in workspace.iterdir()
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077
    )
    assert loose == []
