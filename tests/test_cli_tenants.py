"""What an operator running many tenants sees from the command line when some are sick: a
tenant that never synced, one Graph asked to wait, one throttled or slow during `check`, one
removed from the config, one whose secret cannot be read. Real processes, the emulator on
127.0.0.1, one workspace shared by several config files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xdrsync.config import Config, load_config
from xdrsync.connectors import probe_incidents
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.emulator.tenants import TenantSpec
from xdrsync.graph.security import DefenderApi
from xdrsync.hub import Hub, configured_url

#: Wide enough that rich never wraps or cuts a cell of `state show`.
WIDE = {**os.environ, "COLUMNS": "400"}


def xdrsync(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdrsync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=WIDE,
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(settings_for(seed=41, incidents=8, tenants=2)) as server:
        yield server


def config_for(folder: Path, server: EmulatorServer, tenants: list[TenantSpec], ws: Path) -> str:
    """``folder/xdrsync.toml`` for ``tenants``, its workspace ``ws`` (shared between files)."""
    return str(write_client_config(folder, server.base_url, tenants, workspace=str(ws)))


def stream_rows(text: str) -> dict[tuple[str, str], str]:
    """`state show`'s inbound stream rows: (tenant cell, stream) -> the whole line."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[2] in ("incidents", "alerts"):
            rows[(cells[1], cells[2])] = line
    return rows


@pytest.fixture(scope="module")
def shared(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One workspace, its first tenant synced; config files naming the first tenant, both,
    and the second alone (the first removed)."""
    folder = tmp_path_factory.mktemp("shared")
    first, second = emulator.emulator.settings.tenants
    ws = folder / "ws"
    configs = {
        "first": config_for(folder / "first", emulator, [first], ws),
        "both": config_for(folder / "both", emulator, [first, second], ws),
        "second": config_for(folder / "second", emulator, [second], ws),
    }
    synced = xdrsync("sync", "--once", "--config", configs["first"])
    assert synced.returncode == 0, synced.stderr
    return configs


def test_state_show_lists_a_tenant_that_never_synced(
    emulator: EmulatorServer, shared: dict[str, str]
) -> None:
    first, second = emulator.emulator.settings.tenants
    shown = xdrsync("state", "show", "--config", shared["both"])
    assert shown.returncode == 0, shown.stderr
    rows = stream_rows(shown.stdout)
    assert set(rows) == {(t.name, s) for t in (first, second) for s in ("incidents", "alerts")}
    assert all("never synced" in rows[(second.name, s)] for s in ("incidents", "alerts"))
    assert not any("never synced" in rows[(first.name, s)] for s in ("incidents", "alerts"))
    lines = shown.stdout.splitlines()
    assert lines.index(rows[(first.name, "incidents")]) < lines.index(
        rows[(second.name, "incidents")]
    )  # config order

    # Its last error, when one is recorded, with the wait Graph asked for.
    until = datetime.now(UTC) + timedelta(minutes=7)
    with Hub.open(configured_url(load_config(Path(shared["both"])).workspace)) as hub:
        hub.record_stream_error(second.tenant_id, "alerts", "ThrottledError: 429", retry_at=until)
    shown = xdrsync("state", "show", "--config", shared["both"])
    row = stream_rows(shown.stdout)[(second.name, "alerts")]
    assert "never synced; failed" in row and "ThrottledError: 429" in row
    assert f"waiting until {until:%H:%M:%S} UTC" in row


def test_state_show_leaves_out_a_removed_tenant_unless_asked(
    emulator: EmulatorServer, shared: dict[str, str]
) -> None:
    first, second = emulator.emulator.settings.tenants
    shown = xdrsync("state", "show", "--config", shared["second"])
    assert shown.returncode == 0, shown.stderr
    assert set(stream_rows(shown.stdout)) == {(second.name, "incidents"), (second.name, "alerts")}
    assert "2 stream(s) of 1 tenant(s) no longer in the config not shown" in shown.stdout
    every = xdrsync("state", "show", "--all", "--config", shared["second"])
    gone = {k: v for k, v in stream_rows(every.stdout).items() if first.tenant_id in k[0]}
    assert {k[0] for k in gone} == {f"{first.tenant_id} (not in config)"} and len(gone) == 2
    for line in gone.values():
        lag = [c.strip() for c in line.split("│")][4]
        assert lag == "—"  # no age that grows for ever: nothing will catch it up


def test_sync_once_says_a_stream_was_skipped_for_a_retry_after_and_exits_1(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    first, second = emulator.emulator.settings.tenants
    config = config_for(tmp_path, emulator, [first, second], tmp_path / "ws")
    assert xdrsync("sync", "--once", "--config", config).returncode == 0
    until = datetime.now(UTC) + timedelta(minutes=10)
    with Hub.open(configured_url(load_config(Path(config)).workspace)) as hub:
        hub.record_stream_error(
            second.tenant_id, "incidents", "ThrottledError: 429", retry_at=until
        )
    done = xdrsync("sync", "--once", "--config", config)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"{second.name}/incidents skipped: Graph asked us to wait until {until:%H:%M:%S} UTC"
        in " ".join(done.stderr.split())
    )
    assert f"{second.name}/incidents:" not in done.stdout  # not "0 read" as if it had been
    assert f"{first.name}/incidents:" in done.stdout and f"{second.name}/alerts:" in done.stdout


def _sick_emulator() -> EmulatorServer:
    """Five tenants whose every Graph answer takes 4 s; the last may make one call a
    minute (then 429 with a Retry-After of up to 60 s)."""
    settings = settings_for(seed=43, incidents=3, tenants=5, faults="slow_rate=1,slow_seconds=4")
    *healthy, throttled = settings.tenants
    tenants = (*healthy, replace(throttled, rate_limit_per_minute=1))
    return EmulatorServer(replace(settings, tenants=tenants))


def test_check_reports_throttling_at_once_and_checks_tenants_side_by_side(
    tmp_path: Path,
) -> None:
    with _sick_emulator() as server:
        tenants = list(server.emulator.settings.tenants)
        config = config_for(tmp_path, server, tenants, tmp_path / "ws")
        throttled = tenants[-1]
        used = Config.for_emulator(server.base_url, [throttled], workspace_path=tmp_path / "x")
        api = DefenderApi.connect(used.tenants[0], used.sync)
        try:
            probe_incidents(api)  # its one call of the minute
        finally:
            api.close()
        began = time.monotonic()
        done = xdrsync("check", "--config", config, timeout=100)
        took = time.monotonic() - began
    # One after the other, the four slow tenants alone took 16 s, and the throttled one
    # slept through its Retry-After up to six times.
    assert took < 14, f"check took {took:.0f} s"
    assert done.returncode == 1
    said = " ".join(done.stderr.split())
    found = re.search(rf"✗ {throttled.name}: throttled: Graph asks to retry after (\d+) s", said)
    assert found is not None, done.stderr
    assert 1 <= int(found.group(1)) <= 60
    signed_in = [
        line.split()[1].rstrip(":") for line in done.stdout.splitlines() if "signed in" in line
    ]
    assert signed_in == [t.name for t in tenants[:-1]]  # in config order


def _without_secret(folder: Path, server: EmulatorServer) -> tuple[str, Any, Any]:
    first, second = server.emulator.settings.tenants
    config = config_for(folder, server, [first, second], folder / "ws")
    (folder / f"{second.name}.secret").unlink()  # an offboarded customer's secret, deleted
    return config, first, second


def test_a_tenant_whose_secret_is_gone_fails_alone_in_check_and_state_show(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config, first, second = _without_secret(tmp_path, emulator)
    done = xdrsync("check", "--config", config)
    assert done.returncode == 1, done.stderr  # not 2: the config itself is fine
    assert f"✓ {first.name}: signed in" in done.stdout
    said = " ".join(done.stderr.split())
    assert f"✗ {second.name}: tenant '{second.name}': client_secret: cannot read secret" in said
    assert f"{second.name}.secret" in said
    shown = xdrsync("state", "show", "--config", config)
    assert shown.returncode == 0, shown.stderr


def test_a_tenant_whose_secret_is_gone_does_not_stop_the_others(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config, first, second = _without_secret(tmp_path, emulator)
    done = xdrsync("sync", "--once", "--config", config)
    assert done.returncode == 1, done.stderr  # a failed tenant, not a refused config (2)
    assert f"{first.name}/incidents:" in done.stdout
    assert f"{second.name}/incidents failed: ConfigError: tenant '{second.name}'" in " ".join(
        done.stderr.split()
    )
    row = stream_rows(xdrsync("state", "show", "--config", config).stdout)
    assert "client_secret" in row[(second.name, "incidents")]
