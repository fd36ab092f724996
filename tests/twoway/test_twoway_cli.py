"""`xdrsync incidents update` / `alerts update` / `conflicts` as users run them: real
processes, a real emulator. Every refusal is one clear line and leaves the outbox untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from xdrsync.config import load_config
from xdrsync.emulator.activity import Merge
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.hub import Hub, default_url

PYTHON = sys.executable


def xdrsync(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "xdrsync", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(settings_for(seed=5, incidents=10, tenants=2, read_only_tenants=[1])) as s:
        yield s


@pytest.fixture(scope="module")
def config(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("cli")
    path = write_client_config(
        folder,
        emulator.base_url,
        emulator.emulator.settings.tenants,
        workspace="ws",
        sync={"poll_interval_seconds": 0.5},
    )
    done = xdrsync("sync", "--once", "--config", str(path))
    assert done.returncode == 0, done.stderr
    return str(path)


def outbox(config: str) -> list[Any]:
    loaded = load_config(Path(config))
    with Hub.open(default_url(loaded.workspace.path)) as hub:
        return hub.edits()


def truth(emulator: EmulatorServer, tenant: str, incident_id: str) -> dict[str, Any]:
    reply = httpx.get(f"{emulator.base_url}/_emulator/truth", params={"tenant": tenant})
    return next(i for i in reply.json()["value"] if i["id"] == incident_id)


def open_incident(emulator: EmulatorServer, tenant: str, skip: int = 0) -> str:
    reply = httpx.get(f"{emulator.base_url}/_emulator/truth", params={"tenant": tenant})
    ids = [i["id"] for i in reply.json()["value"] if i["status"] in ("active", "inProgress")]
    return ids[skip]


def test_version() -> None:
    done = xdrsync("--version")
    assert done.returncode == 0 and done.stdout.startswith("xdrsync ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["incidents", "update", "999999", "--status", "active"], "no incident 999999"),
        (["incidents", "update", "{id}", "--status", "redirected"], "status 'redirected' is not"),
        (["incidents", "update", "{id}", "--status", "resolved"], "needs a classification"),
        (["incidents", "update", "{id}", "--owner", "bob"], "'bob' is not an address"),
        (
            [
                "incidents",
                "update",
                "{id}",
                "--classification",
                "falsePositive",
                "--determination",
                "malware",
            ],
            "does not go with classification 'falsePositive'",
        ),
        (["incidents", "update", "{id}", "--classification", "maybe"], "classification 'maybe'"),
        (["incidents", "update", "{id}", "--tag", "x" * 129], "at most 128"),
        (["incidents", "update", "{id}"], "nothing to change"),
        (["alerts", "update", "any", "--tag", "x"], "customTags is read-only on an alert"),
        (
            ["incidents", "update", "{id}", "--tenant", "fabrikam", "--owner", "a@b.io"],
            "SecurityIncident.ReadWrite.All",
        ),
    ],
)
def test_bad_edits_are_refused_with_one_line_and_nothing_queued(
    emulator: EmulatorServer, config: str, args: list[str], message: str
) -> None:
    incident = open_incident(emulator, "contoso")
    if "fabrikam" in args:
        incident = open_incident(emulator, "fabrikam")
    if "--tenant" not in args:
        args = [*args, "--tenant", "contoso"]
    done = xdrsync(*(a.replace("{id}", incident) for a in args), "--config", config)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert message in lines[0]
    assert outbox(config) == []


def test_several_tenants_need_a_tenant(config: str) -> None:
    done = xdrsync("incidents", "update", "1", "--owner", "a@b.io", "--config", config)
    assert done.returncode != 0 and "--tenant" in done.stderr
    assert outbox(config) == []


def test_update_without_a_service_pushes_itself_and_wait_fails_on_a_refused_edit(
    emulator: EmulatorServer, config: str
) -> None:
    incident = open_incident(emulator, "contoso", skip=1)
    done = xdrsync(
        "incidents",
        "update",
        incident,
        "--tenant",
        "contoso",
        "--owner",
        "dana@contoso.com",
        "--comment",
        "on it",
        "--as",
        "dana@contoso.com",
        "--config",
        config,
    )
    assert done.returncode == 0, done.stderr
    assert "confirmed by Defender" in done.stdout
    assert truth(emulator, "contoso", incident)["assignedTo"] == "dana@contoso.com"
    # Defender merges the incident away before the next edit is pushed: refused, exit 1.
    target = open_incident(emulator, "contoso", skip=2)
    tenant_id = emulator.emulator.settings.tenants[0].tenant_id
    emulator.emulator.store(tenant_id).apply(Merge(incident, target))
    done = xdrsync(
        "incidents",
        "update",
        incident,
        "--tenant",
        "contoso",
        "--owner",
        "erin@contoso.com",
        "--wait",
        "--config",
        config,
    )
    assert done.returncode == 1
    assert "failed" in done.stdout and f"merged incident {incident} into {target}" in done.stdout
    shown = xdrsync("incidents", "show", incident, "--tenant", "contoso", "--config", config)
    assert "failed" in shown.stdout and "Workspace edits" in shown.stdout
    state = xdrsync("state", "show", "--config", config)
    assert "Edits to Defender" in state.stdout
    assert f"merged incident {incident} into {target}" in " ".join(state.stdout.split())


def test_with_the_service_running_an_edit_leaves_at_once(
    emulator: EmulatorServer, config: str
) -> None:
    incident = open_incident(emulator, "contoso", skip=3)
    service = subprocess.Popen(
        [PYTHON, "-m", "xdrsync", "run", "--config", config, "--log-json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        time.sleep(3)  # the service is up and has synced once
        queued = xdrsync(
            "incidents",
            "update",
            incident,
            "--tenant",
            "contoso",
            "--tag",
            "svc",
            "--config",
            config,
        )
        assert queued.returncode == 0, queued.stderr
        assert "the running xdrsync service pushes them" in queued.stdout
        for _ in range(100):
            if "svc" in (truth(emulator, "contoso", incident).get("customTags") or ()):
                break
            time.sleep(0.1)
        assert "svc" in truth(emulator, "contoso", incident)["customTags"]
        waited = xdrsync(
            "incidents",
            "update",
            incident,
            "--tenant",
            "contoso",
            "--untag",
            "svc",
            "--wait",
            "--config",
            config,
        )
        assert waited.returncode == 0, waited.stderr
        assert "confirmed by Defender" in waited.stdout
    finally:
        service.send_signal(signal.SIGTERM)
        _, err = service.communicate(timeout=60)
    # One info line per stream per cycle, and one per push.
    assert '"stream synced"' in err and '"edits pushed"' in err
