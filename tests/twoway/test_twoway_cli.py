"""`xdrsync incidents update` / `alerts update` / `conflicts` as users run them: real
processes, a real emulator. Every refusal is one clear line and leaves the outbox untouched."""

from __future__ import annotations

import json
import os
import signal
import socket
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


def xdrsync(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "xdrsync", *args], capture_output=True, text=True, timeout=timeout, env=env
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
    # Every line JSON: one per push; a stream's cycle at info only when it read something
    # (a quiet one is at debug: an idle tenant wrote 11 such lines a minute).
    events = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(e.get("event") == "edits pushed" for e in events), err
    assert not [e for e in events if e.get("event") == "stream synced" and not e.get("read")]


# -- what an operator scripting around the edits sees --------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unreachable(config: Path, base_url: str) -> None:
    """``config`` with Graph at a closed port: edits queued with it wait in the outbox."""
    config.write_text(
        config.read_text().replace(
            f'graph_url = "{base_url}"', f'graph_url = "http://127.0.0.1:{_closed_port()}"'
        )
    )


@pytest.fixture(scope="module")
def synced(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A workspace with both tenants synced: ``good`` config, and ``dead`` (same workspace,
    Graph unreachable, one attempt per call) to leave edits pending."""
    folder = tmp_path_factory.mktemp("scripted")
    ws = str(folder / "ws")
    tenants = emulator.emulator.settings.tenants
    good = write_client_config(folder / "good", emulator.base_url, tenants, workspace=ws)
    dead = write_client_config(
        folder / "dead", emulator.base_url, tenants, workspace=ws, sync={"max_attempts": 1}
    )
    _unreachable(dead, emulator.base_url)
    done = xdrsync("sync", "--once", "--config", str(good))
    assert done.returncode == 0, done.stderr
    return {
        "good": str(good),
        "dead": str(dead),
        "tenant": tenants[0].name,
        "other": tenants[1].name,
    }


def test_alerts_show_prints_json_alone_on_stdout_and_pending_edits_on_stderr(
    synced: dict[str, str],
) -> None:
    """`alerts show ID | jq`: with an edit waiting for Defender, the edits table goes to
    stderr, so stdout stays one JSON document (the edit applied in it)."""
    incident = xdrsync(
        "incidents", "show", "1", "--tenant", synced["tenant"], "--json", "--config", synced["good"]
    )
    alert = str(json.loads(incident.stdout)["alerts"][0]["id"])
    queued = xdrsync(
        "alerts", "update", alert, "--tenant", synced["tenant"], "--status", "inProgress",
        "--config", synced["dead"],
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    shown = xdrsync(
        "alerts", "show", alert, "--tenant", synced["tenant"], "--config", synced["good"]
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "inProgress"
    assert "Workspace edits" in shown.stderr


def test_incidents_show_json_stays_json_alone_with_a_pending_edit(synced: dict[str, str]) -> None:
    queued = xdrsync(
        "incidents", "update", "1", "--tenant", synced["tenant"], "--owner", "eve@contoso.com",
        "--config", synced["dead"],
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    shown = xdrsync(
        "incidents", "show", "1", "--tenant", synced["tenant"], "--json", "--config", synced["good"]
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == "1"
    assert "Workspace edits" in shown.stderr


def test_update_writes_its_log_lines_to_stderr_not_stdout(synced: dict[str, str]) -> None:
    """`incidents update` pushes inline when no service runs: the pusher's log lines
    ("graph call failed", "edits pushed") go to stderr, stdout keeps the command's answer."""
    done = xdrsync(
        "incidents", "update", "2", "--tenant", synced["tenant"], "--owner", "bob@contoso.com",
        "--config", synced["dead"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    noise = [line for line in done.stdout.splitlines() if "graph call" in line or "pushed" in line]
    assert noise == [], done.stdout
    assert "queued 1 edit" in done.stdout
    assert "graph call failed" in done.stderr


def test_update_says_what_each_queued_edit_asks_in_defenders_words(
    synced: dict[str, str],
) -> None:
    """`--status Active` is Sentinel's Active, Defender's inProgress, while the console
    shows Defender's active as "Active": the queued line said only "#12", so nobody saw
    which one was meant. It now says what each edit asks of Defender."""

    def status(incident: str) -> str:
        shown = xdrsync(
            "incidents", "show", incident, "--tenant", synced["tenant"], "--json",
            "--config", synced["dead"],
        )  # fmt: skip
        return str(json.loads(shown.stdout)["status"])

    incident = next(
        str(n) for n in range(3, 30) if status(str(n)) not in ("inProgress", "redirected")
    )
    done = xdrsync(
        "incidents", "update", incident, "--tenant", synced["tenant"], "--status", "Active",
        "--owner", "bob@contoso.com", "--classification", "truePositive",
        "--determination", "malware", "--tag", "triage", "--comment", "[b]not markup[/b]",
        "--config", synced["dead"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (line,) = [row for row in done.stdout.splitlines() if row.startswith("queued ")]
    for said in (
        "status → inProgress",
        "assignedTo → bob@contoso.com",
        "classification → truePositive / malware",
        "customTags → +triage",
    ):
        assert said in line, line
    assert "comment" in line and "not markup" not in line, line


def test_show_refuses_an_id_several_tenants_have_and_names_the_tenant_in_its_heading(
    synced: dict[str, str],
) -> None:
    """Incident ids are per tenant (every tenant has an incident 1): without --tenant,
    `incidents show 1` refuses as `update` does, naming the tenants, rather than showing the
    first tenant's; with it, the heading names the tenant."""
    wide = {**os.environ, "COLUMNS": "400"}
    refused = xdrsync("incidents", "show", "1", "--config", synced["good"])
    assert refused.returncode == 2, refused.stdout
    assert refused.stdout == ""
    assert "several tenants" in refused.stderr and "--tenant" in refused.stderr
    assert synced["tenant"] in refused.stderr and synced["other"] in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    for name in (synced["tenant"], synced["other"]):
        shown = xdrsync(
            "incidents", "show", "1", "--tenant", name, "--config", synced["good"], env=wide
        )
        assert shown.returncode == 0, shown.stderr
        assert f"(tenant {name})" in shown.stdout.splitlines()[0]
    # An alert id is one tenant's: found without --tenant, in the tenant that has it.
    incident = xdrsync(
        "incidents", "show", "1", "--tenant", synced["other"], "--json", "--config", synced["good"]
    )
    alert = str(json.loads(incident.stdout)["alerts"][0]["id"])
    found = xdrsync("alerts", "show", alert, "--config", synced["good"])
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["id"] == alert
    missing = xdrsync("alerts", "show", "no-such-alert", "--config", synced["good"])
    assert missing.returncode == 1 and "no alert no-such-alert in any tenant" in missing.stderr


@pytest.fixture(scope="module")
def twin_emulators() -> Iterator[tuple[EmulatorServer, EmulatorServer]]:
    """The same tenant twice (same seed): its app with write permissions, then with Read.All
    permissions only (Graph answers writes with 403), as after consent was taken back."""
    with (
        EmulatorServer(settings_for(seed=54, incidents=6, tenants=1)) as writable,
        EmulatorServer(
            settings_for(seed=54, incidents=6, tenants=1, read_only_tenants=["0"])
        ) as read_only,
    ):
        yield writable, read_only


def test_sync_once_exits_1_when_defender_refuses_a_write_back(
    twin_emulators: tuple[EmulatorServer, EmulatorServer], tmp_path: Path
) -> None:
    """design.md: `sync --once` is one full cycle, write-back included, with a non-zero exit
    on failure: an edit Defender refuses (403: the app lost its write permission) fails the
    command, so a cron job hears of it."""
    writable, read_only = twin_emulators
    tenants = writable.emulator.settings.tenants
    ws = str(tmp_path / "ws")
    first = write_client_config(tmp_path / "a", writable.base_url, tenants, workspace=ws)
    assert xdrsync("sync", "--once", "--config", str(first)).returncode == 0
    dead = write_client_config(
        tmp_path / "dead", writable.base_url, tenants, workspace=ws, sync={"max_attempts": 1}
    )
    _unreachable(dead, writable.base_url)
    queued = xdrsync(
        "incidents", "update", "1", "--owner", "ana@contoso.com", "--config", str(dead)
    )
    assert "queued 1 edit" in queued.stdout, queued.stdout + queued.stderr
    time.sleep(3)  # past the edit's retry backoff ([two_way] retry_seconds = 2)
    ro = write_client_config(tmp_path / "ro", read_only.base_url, tenants, workspace=ws)
    done = xdrsync("sync", "--once", "--config", str(ro))
    assert "write-back: 1 failed" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    # The inbound read went well: the write-back alone failed the command.
    assert "/incidents failed" not in done.stderr and "/alerts failed" not in done.stderr
