"""The command line as users run it: real processes, a real emulator, a config file."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
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

from xdrsync import collector
from xdrsync.config import load_config
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for

PYTHON = sys.executable


def xdrsync(*args: str, timeout: float = 180, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "xdrsync", *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(settings_for(seed=31, incidents=60, activity_per_minute=120)) as server:
        yield server


def write_config(folder: Path, server: EmulatorServer, *, secret: str | None = None) -> Path:
    tenants = server.emulator.settings.tenants
    return write_client_config(
        folder,
        server.base_url,
        tenants,
        workspace="ws",
        sync={"poll_interval_seconds": 0.5},
        secrets={tenants[0].name: secret} if secret else None,
    )


def test_sync_once_then_query_list_show_and_state(emulator: EmulatorServer, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, emulator))
    done = xdrsync("sync", "--once", "--config", config)
    assert done.returncode == 0, done.stderr
    # The alerts read with the incidents are said where they are counted new (they were
    # left out of the read count only).
    said = re.search(r"contoso/incidents: (\d+) read \(with (\d+) alerts\), (\d+) new", done.stdout)
    assert said is not None, done.stdout
    assert 0 < int(said[1]) < int(said[3]) <= int(said[1]) + int(said[2])  # pages overlap
    counted = xdrsync(
        "query",
        "--config",
        config,
        "--format",
        "json",
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber | count",
    )
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout)[0]["Count"] >= 60
    csv = xdrsync(
        "query",
        "--config",
        config,
        "--format",
        "csv",
        "SecurityAlert | take 3 | project SystemAlertId, ProductName",
    )
    assert csv.stdout.splitlines()[0] == "SystemAlertId,ProductName"
    assert len(csv.stdout.splitlines()) == 4
    bad = xdrsync("query", "--config", config, "SecurityIncident | frobnicate")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    listed = xdrsync("incidents", "list", "--config", config, "--limit", "5")
    assert listed.returncode == 0 and "5 incidents" in listed.stdout
    some_id = json.loads(
        xdrsync(
            "query",
            "--config",
            config,
            "--format",
            "json",
            "SecurityIncident | take 1 | project ProviderIncidentId",
        ).stdout
    )[0]["ProviderIncidentId"]
    shown = xdrsync("incidents", "show", some_id, "--config", config)
    assert (
        shown.returncode == 0
        and f"Incident {some_id}" in shown.stdout
        and "Version history" in shown.stdout
    )
    as_json = json.loads(xdrsync("incidents", "show", some_id, "--config", config, "--json").stdout)
    assert as_json["id"] == some_id and "alerts" in as_json
    state = xdrsync("state", "show", "--config", config)
    assert state.returncode == 0 and "incidents" in state.stdout and "alerts" in state.stdout
    backfill = xdrsync("backfill", "--config", config, "--from", "2020-01-01", "--to", "2030-01-01")
    assert backfill.returncode == 0, backfill.stderr
    check = xdrsync("check", "--config", config)
    assert check.returncode == 0 and "signed in" in check.stdout


def test_check_tries_an_unreachable_destination_once_as_a_tenant(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """`check` makes each call once: a destination was tried six times, with backoff (about
    20 s), before its line said so."""
    config = write_config(tmp_path, emulator)
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
        destination = f"""
[[destinations]]
name = "soc"
type = "sentinel"
subscription_id = "22222222-2222-2222-2222-222222222222"
resource_group = "soc"
workspace = "soc-law"
tenant_id = "33333333-3333-3333-3333-333333333333"
client_id = "44444444-4444-4444-4444-444444444444"
client_secret = "file:{tenant_secret_file(config)}"
authority_url = "{nobody}"
arm_url = "{nobody}"
"""
        config.write_text(config.read_text() + destination)
        check = xdrsync("check", "--config", str(config))
    assert check.returncode == 1, check.stdout
    assert "signed in" in check.stdout  # the tenant
    (line,) = [x for x in check.stderr.splitlines() if x.startswith("✗ soc:")]
    assert "failed after 1 attempt(s)" in line and "Connection refused" in line, line


def tenant_secret_file(config: Path) -> Path:
    """The file holding the emulator tenant's secret that ``write_config`` wrote."""
    return next(config.parent.glob("*.secret"))


def test_secrets_never_appear_in_output_logs_or_errors(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    wrong = "wr0ng-secret-Z9x8c7v6b5n4m3"
    config = str(write_config(tmp_path, emulator, secret=wrong))
    outputs = [
        xdrsync("sync", "--once", "--config", config),
        xdrsync("check", "--config", config),
        xdrsync("state", "show", "--config", config),
    ]
    assert outputs[0].returncode != 0 and outputs[1].returncode != 0
    assert "AADSTS7000215" in outputs[1].stdout + outputs[1].stderr
    said = tmp_path / "run.err"
    with said.open("w") as sink:
        run = subprocess.Popen(
            [PYTHON, "-m", "xdrsync", "run", "--config", config],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )
        # Stopped once it runs (a SIGTERM before its handler is set ends it as SIGTERM does
        # any process: a loaded machine once took more than the 4 s this waited to start it).
        deadline = time.monotonic() + 60
        while "syncing 1 tenant(s)" not in said.read_text() and time.monotonic() < deadline:
            assert run.poll() is None, said.read_text()
            time.sleep(0.1)
        time.sleep(2)  # a cycle or two, failing to sign in
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)
    err = said.read_text()
    assert run.returncode == 0, err
    text = "\n".join(o.stdout + o.stderr for o in outputs) + out + err
    assert "wrong" not in text.lower() or wrong not in text
    assert wrong not in text
    # The right secret, with a working sync, never shows up either.
    real = emulator.emulator.settings.tenants[0].client_secret
    good = str(write_config(tmp_path, emulator))
    ran = xdrsync("sync", "--once", "--config", good)
    shown = xdrsync("state", "show", "--config", good)
    assert real not in ran.stdout + ran.stderr + shown.stdout + shown.stderr


def test_queries_work_while_the_service_runs(emulator: EmulatorServer, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, emulator))
    said = (tmp_path / "run.err").open("w")
    service = subprocess.Popen(
        [PYTHON, "-m", "xdrsync", "run", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=said,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ws").is_dir():  # `query` refuses a workspace not made yet
            assert time.monotonic() < deadline and service.poll() is None
            time.sleep(0.1)
        seen: list[int] = []
        while time.monotonic() < deadline and len(seen) < 6:
            done = xdrsync(
                "query", "--config", config, "--format", "json", "SecurityIncident | count"
            )
            assert done.returncode == 0, done.stderr
            seen.append(json.loads(done.stdout)[0]["Count"])
            time.sleep(0.5)
        assert seen[-1] >= 60  # the backfill landed while we kept querying
        # ... and the console is served beside the sync, at the address `run` printed
        found = re.search(
            r"console and REST API on (http://\S+)", (tmp_path / "run.err").read_text()
        )
        assert found, (tmp_path / "run.err").read_text()
        served = httpx.get(f"{found[1]}/healthz", timeout=10)
        assert served.json()["status"] == "ok"
        login = httpx.get(f"{found[1]}/", headers={"accept": "text/html"})
        assert login.status_code == 303 and login.headers["location"].startswith("/login")
        second = xdrsync("sync", "--once", "--config", config)
        assert second.returncode == 2 and "another xdrsync process" in second.stderr
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        said.close()
    assert service.returncode == 0


def test_destinations_status_and_a_replay_of_the_log_tables(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path, emulator))
    assert xdrsync("sync", "--once", "--config", config).returncode == 0

    def count() -> int:
        done = xdrsync("query", "--config", config, "--format", "json", "SecurityAlert | count")
        assert done.returncode == 0, done.stderr
        return int(json.loads(done.stdout)[0]["Count"])

    before = count()
    status = xdrsync("destinations", "status", "--config", config)
    assert status.returncode == 0, status.stderr
    assert "tables" in status.stdout and " 0 changes" in status.stdout  # caught up
    replay = xdrsync("destinations", "replay", "tables", "--from-seq", "1", "--config", config)
    assert replay.returncode == 0, replay.stderr
    assert count() == 0  # the rows of the replayed changes are gone until delivered again
    behind = xdrsync("destinations", "status", "--config", config)
    rows = [line for line in behind.stdout.splitlines() if line.startswith("│ tables ")]
    assert rows and " 0 changes" not in rows[0]  # the log tables are behind (not the console's)
    assert xdrsync("sync", "--once", "--config", config).returncode == 0
    assert count() >= before  # written again (the emulator's activity may add some) ...
    twice = xdrsync(
        "query",
        "--config",
        config,
        "--format",
        "json",
        "SecurityAlert | summarize n = count() by SystemAlertId, _TimeReceived "
        "| where n > 1 | count",
    )
    assert json.loads(twice.stdout)[0]["Count"] == 0, twice.stderr  # ... and only once
    unknown = xdrsync("destinations", "replay", "elastic", "--from-seq", "1", "--config", config)
    assert unknown.returncode == 2 and "no destination named 'elastic'" in unknown.stderr
    letters = xdrsync("destinations", "dead-letters", "--config", config)
    assert letters.returncode == 0 and "0 dead letters" in letters.stdout
    queue = xdrsync("destinations", "dead-letters", "console", "--config", config)
    assert queue.returncode == 0 and "0 dead letters" in queue.stdout, queue.stderr
    cleared = xdrsync("destinations", "clear-dead-letters", "tables", "--config", config)
    assert cleared.returncode == 0 and "tables: 0 dead letters cleared" in cleared.stdout
    quarantine = xdrsync("state", "clear-quarantine", "--stream", "alerts", "--config", config)
    assert quarantine.returncode == 0 and "0 quarantined records cleared" in quarantine.stdout
    wrong = xdrsync("state", "clear-quarantine", "--stream", "evidence", "--config", config)
    assert wrong.returncode == 2 and "incidents or alerts" in wrong.stderr


def test_demo_runs_and_shows_the_emulator_and_the_sync(tmp_path: Path) -> None:
    done = xdrsync("demo", "--duration", "12", "--workspace", str(tmp_path / "demo"), timeout=240)
    assert done.returncode == 0, done.stderr
    assert "Defender emulator http://127.0.0.1:" in done.stdout
    sentinel = [line for line in done.stdout.splitlines() if "Sentinel emulator http" in line]
    assert sentinel, done.stdout  # the demo goes on into an emulated Sentinel ...
    shown = int(sentinel[-1].split("·")[1].split()[0])
    assert shown > 0  # ... which has received incidents
    assert "incidents" in done.stdout and "Demo stopped" in done.stdout
    assert (tmp_path / "demo" / "xdrsync.toml").exists()


def test_demo_on_an_emulator_port_in_use_is_one_plain_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = xdrsync(
            "demo", "--duration", "1", "--port", str(port), "--workspace", str(tmp_path / "d")
        )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error:") and f"127.0.0.1:{port}" in line and "--port" in line, line


def test_demo_moves_off_a_console_port_in_use_without_an_error(tmp_path: Path) -> None:
    """README: the console is on 8080 "unless that port is taken": then on another, quietly."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = xdrsync(
            "demo",
            "--duration",
            "1",
            "--console-port",
            str(port),
            "--workspace",
            str(tmp_path / "d"),
            timeout=240,
        )
    assert done.returncode == 0, done.stderr
    (console_line,) = [line for line in done.stdout.splitlines() if line.startswith("Console:")]
    assert "http://127.0.0.1:" in console_line and f":{port} " not in console_line
    assert "error" not in done.stderr.lower(), done.stderr  # nothing that reads as a failure


def test_demo_says_it_is_stopping_as_soon_as_ctrl_c_is_pressed(tmp_path: Path) -> None:
    """Stopping takes seconds (the sync and the fan-out finish their turn): said at once, not
    after a silent wait that looks like a hang."""
    demo = subprocess.Popen(
        [PYTHON, "-m", "xdrsync", "demo", "--console-port", "0", "--workspace", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        first = demo.stdout.readline()  # the console's address and login come first
        assert first.startswith("Console:"), first
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, err
    lines = out.splitlines()
    said = [n for n, line in enumerate(lines) if line.startswith("Stopping")]
    done = [n for n, line in enumerate(lines) if line.startswith("Demo stopped")]
    assert said and done and said[0] < done[0], out


def test_the_query_the_demo_prints_at_the_end_runs_as_printed(tmp_path: Path) -> None:
    """Pasted into a shell as printed, in another folder (another terminal), whatever the
    workspace folder's name (here a relative one with a space). It named
    `.venv/bin/xdrsync` and a relative config: neither is there from another folder."""
    started, elsewhere = tmp_path / "started here", tmp_path / "elsewhere"
    started.mkdir()
    elsewhere.mkdir()
    done = xdrsync("demo", "--duration", "1", "--workspace", "my demo", cwd=started, timeout=240)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    printed = lines[lines.index(next(x for x in lines if x.startswith("Demo stopped"))) + 1]
    assert shlex.split(printed)[:3] == [PYTHON, "-m", "xdrsync"], printed  # as it was started
    ran = subprocess.run(
        ["bash", "-c", printed.strip()], capture_output=True, text=True, timeout=120, cwd=elsewhere
    )
    assert ran.returncode == 0 and "Count" in ran.stdout, (printed, ran.stderr)


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    """`demo --workspace` pointed at a live workspace must leave it alone."""
    live = tmp_path / "live"
    live.mkdir()
    (live / "hub.sqlite3").write_text("the service's hub")
    done = xdrsync("demo", "--duration", "1", "--workspace", str(live), timeout=60)
    assert done.returncode == 2, done.stdout
    assert len(done.stderr.strip().splitlines()) == 1 and "not made by" in done.stderr
    assert sorted(p.name for p in live.iterdir()) == ["hub.sqlite3"]  # not even a lock file
    assert (live / "hub.sqlite3").read_text() == "the service's hub"


def test_demo_takes_the_workspace_lock_before_deleting_anything(tmp_path: Path) -> None:
    from xdrsync.sync.lock import WorkspaceLock

    earlier = tmp_path / "demo"
    earlier.mkdir()
    (earlier / ".xdrsync-demo").write_text("")  # made by an earlier demo
    (earlier / "hub.sqlite3").write_text("in use")
    with WorkspaceLock(earlier):  # a service (or another demo) syncs this workspace
        done = xdrsync("demo", "--duration", "1", "--workspace", str(earlier), timeout=60)
    assert done.returncode == 2 and "another xdrsync process" in done.stderr, done.stderr
    assert (earlier / "hub.sqlite3").read_text() == "in use"


def test_demo_empties_a_folder_an_earlier_demo_made(tmp_path: Path) -> None:
    from xdrsync.demo import DEMO_MARKER, _claim

    earlier = tmp_path / "demo"
    (earlier / "kql-cache").mkdir(parents=True)
    (earlier / DEMO_MARKER).write_text("")
    (earlier / "hub.sqlite3").write_text("old run")
    lock = _claim(earlier)
    try:
        assert sorted(p.name for p in earlier.iterdir()) == [DEMO_MARKER, "sync.lock"]
    finally:
        lock.release()
    fresh = tmp_path / "new" / "demo"
    _claim(fresh).release()
    assert (fresh / DEMO_MARKER).is_file()  # so the next run may empty it
    # A demo workspace from before the marker (`make demo` run by an earlier version).
    older = tmp_path / "older" / "demo"
    older.mkdir(parents=True)
    (older / "sentinel.secret").write_text("s")
    (older / "xdrsync.toml").write_text('[[tenants]]\ngraph_url = "http://127.0.0.1:40001"\n')
    _claim(older).release()
    assert sorted(p.name for p in older.iterdir()) == [DEMO_MARKER, "sync.lock"]


def test_backfill_goes_on_past_a_tenant_that_fails(tmp_path: Path) -> None:
    with EmulatorServer(settings_for(seed=37, incidents=6, tenants=2)) as server:
        first, second = server.emulator.settings.tenants
        config = str(
            write_client_config(
                tmp_path,
                server.base_url,
                (first, second),
                workspace="ws",
                secrets={first.name: "wrong-secret-for-the-first-tenant"},
            )
        )
        done = xdrsync("backfill", "--config", config, "--from", "2020-01-01", "--to", "2030-01-01")
        listed = xdrsync("incidents", "list", "--tenant", second.name, "--config", config)
    assert done.returncode == 1, done.stderr
    failures = [line for line in done.stderr.splitlines() if "failed:" in line]
    assert len(failures) == 2 and all(line.startswith(first.name) for line in failures)
    assert "Traceback" not in done.stderr and "wrong-secret" not in done.stderr
    assert "backfill done" in done.stdout
    assert listed.returncode == 0 and "6 incidents" in listed.stdout, listed.stdout


def test_a_backfill_stream_that_crashes_costs_only_itself(tmp_path: Path) -> None:
    """An unforeseen exception in one tenant's stream (a bug, a hub that stays locked) is
    that stream's failure, told on one line: the tenants read beside it finish."""
    with EmulatorServer(settings_for(seed=37, incidents=6, tenants=3)) as server:
        first, *others = server.emulator.settings.tenants
        config = str(
            write_client_config(tmp_path, server.base_url, [first, *others], workspace="ws")
        )
        # The command in a process of its own, one stream made to crash in it.
        crash = f"""
import sys
from xdrsync.sync import inbound
real = inbound.backfill_stream
def crashing(hub, source, *, tenant_id, stream, **kw):
    if tenant_id == {first.tenant_id!r} and stream == "incidents":
        raise RuntimeError("database is locked")
    return real(hub, source, tenant_id=tenant_id, stream=stream, **kw)
inbound.backfill_stream = crashing
sys.argv = ["xdrsync", "backfill", "--config", {config!r}, "--from", "2020-01-01", "--to", "2030-01-01"]
from xdrsync.entry import main
main()
"""
        done = subprocess.run(
            [sys.executable, "-c", crash], capture_output=True, text=True, timeout=180
        )
    assert done.returncode == 1, done.stderr
    assert f"{first.name}/incidents failed: RuntimeError: database is locked" in done.stderr
    for tenant in others:
        listed = xdrsync("incidents", "list", "--tenant", tenant.name, "--config", config)
        assert "6 incidents" in listed.stdout, listed.stdout


def test_a_hub_database_that_cannot_be_opened_is_one_line_without_the_password(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = "Sup3rS3cretPw-xdr"
    config = write_config(tmp_path, emulator)
    text = config.read_text()
    assert 'path = "ws"\n' in text
    config.write_text(
        text.replace('path = "ws"\n', 'path = "ws"\ndatabase_url = "env:XDR_TEST_DB"\n')
    )
    env = {**os.environ}
    for url in (
        f"postgresql+psycopg://xdr:{password}@127.0.0.1:{port}/xdrhub",  # unreachable
        f"postgres://xdr:{password}@127.0.0.1:{port}/xdrhub",  # no such SQLAlchemy dialect
    ):
        env["XDR_TEST_DB"] = url
        for args in (["state", "show"], ["sync", "--once"]):
            done = xdrsync(*args, "--config", str(config), env=env, timeout=60)
            assert done.returncode == 2, (args, done.stderr)
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert f"127.0.0.1:{port}/xdrhub" in done.stderr
            assert password not in done.stdout + done.stderr


def test_tracebacks_never_show_local_variables() -> None:
    import typer

    from xdrsync import cli

    groups = [value for value in vars(cli).values() if isinstance(value, typer.Typer)]
    assert cli.app in groups and len(groups) > 1
    assert all(group.pretty_exceptions_show_locals is False for group in groups)


def test_a_console_port_in_use_is_one_plain_line(emulator: EmulatorServer, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_client_config(
            tmp_path,
            emulator.base_url,
            emulator.emulator.settings.tenants,
            workspace="ws",
            console={"port": port},
        )
        done = xdrsync("run", "--config", str(config), timeout=120)
    assert done.returncode == 2, done.stderr
    # One error, not uvicorn's own bind error beside it (`run` logs its start at info).
    (line,) = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert line.startswith("error:"), line
    assert f"127.0.0.1:{port}" in line and "change [console] port" in line, line


def test_errors_are_one_line_with_non_zero_exit(tmp_path: Path) -> None:
    missing = xdrsync("state", "show", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "nope.toml" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[[tenants]]\nname = 'x'\n")
    invalid = xdrsync("state", "show", "--config", str(bad))
    assert invalid.returncode == 2 and len(invalid.stderr.strip().splitlines()) == 1


def test_a_command_that_reads_refuses_a_workspace_without_a_hub(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A mistyped workspace path must not answer with an empty, newly made hub."""
    config = write_config(tmp_path, emulator)
    for args in (["incidents", "list"], ["state", "show"], ["destinations", "status"]):
        done = xdrsync(*args, "--config", str(config))
        assert done.returncode == 2, done.stdout
        assert "no hub at" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ws" / "hub.sqlite3").exists()
    refused = xdrsync("incidents", "list", "--limit", "0", "--config", str(config))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


_LOADED = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('LOADED', *sorted(sys.modules), file=sys.stderr))\n"
    "sys.argv = ['xdrsync', *sys.argv[1:]]\n"
    "from xdrsync.entry import main\n"
    "main()\n"
)
#: What a command that only reads must never load: the sync machinery and its libraries.
_SYNC = {"msal", "alembic", "xdrsync.graph.client", "xdrsync.sync.inbound", "xdrsync.emulator"}
#: ... nor, when it lists or counts, the hub's write path and the models.
_WRITES = {"xdrsync.hub.apply", "xdrsync.models"}


@pytest.mark.parametrize(
    ("args", "present", "absent"),
    [
        # the query's short path (cli_query.py): no command-line framework, no config models
        (
            ["query", "SecurityIncident | count"],
            "duckdb",
            _SYNC | {"sqlalchemy", "xdrsync.hub", "typer", "pydantic", "xdrsync.config"},
        ),
        (
            ["incidents", "list"],
            "typer",
            _SYNC | _WRITES | {"duckdb", "duckdb_kql", "xdrsync.destinations.runner"},
        ),
        (
            ["state", "show"],
            "typer",
            _SYNC | _WRITES | {"duckdb", "duckdb_kql", "xdrsync.destinations.runner"},
        ),
    ],
)
def test_commands_that_read_load_only_what_they_use(
    emulator: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
    args: list[str],
    present: str,
    absent: set[str],
) -> None:
    folder = tmp_path_factory.getbasetemp() / "lean-reads"
    config = str(folder / "xdrsync.toml")
    if not (folder / "ws").exists():
        write_config(folder, emulator)
        assert xdrsync("sync", "--once", "--config", config).returncode == 0
    done = subprocess.run(
        [PYTHON, "-c", _LOADED, *args, "--config", config],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("LOADED ")]
    loaded = set(line.split()[1:])
    assert present in loaded  # the probe saw the command's modules
    assert not absent & loaded


def test_the_command_line_tunes_the_collector_and_importing_does_not() -> None:
    # The collector's thresholds are the process's (collector.py): the command line sets them,
    # a program that only imports xdrsync keeps its own.
    script = (
        "import atexit, gc, sys\n"
        "print(gc.get_threshold())\n"
        "import xdrsync.cli, xdrsync.entry\n"
        "print(gc.get_threshold())\n"
        "atexit.register(lambda: print(gc.get_threshold()))\n"
        "sys.argv = ['xdrsync', '--help']\n"
        "xdrsync.entry.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0] == lines[1] != str(collector.THRESHOLDS)
    assert lines[-1] == str(collector.THRESHOLDS)


def test_run_stops_on_a_sigterm_that_lands_on_another_thread(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # The kernel may hand a process's SIGTERM to any of its threads (kill(2) on a thread's id
    # makes that thread the one that gets it). Python runs the handler in the main thread,
    # which must therefore wake up by itself to notice.
    config = str(write_config(tmp_path, emulator))
    service = subprocess.Popen(
        [PYTHON, "-m", "xdrsync", "run", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        others: list[int] = []
        while time.monotonic() < deadline and len(others) < 3:
            time.sleep(0.5)
            tasks = Path(f"/proc/{service.pid}/task")
            others = [int(t.name) for t in tasks.iterdir() if int(t.name) != service.pid]
        assert others, "the service started no threads"
        time.sleep(2)
        os.kill(others[0], signal.SIGTERM)
        assert service.wait(timeout=30) == 0
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(timeout=30)


def test_the_emulator_writes_a_workspace_config_that_syncs_from_it(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "soc"
    emulate = [
        PYTHON, "-m", "xdrsync", "emulate", "defender", "--port", str(port), "--incidents", "7",
        "--write-config", str(folder),
    ]  # fmt: skip
    log = tmp_path / "emulator.log"
    with log.open("w") as out:
        server = subprocess.Popen(emulate, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        config = str(folder / "xdrsync.toml")
        assert xdrsync("sync", "--once", "--config", config).returncode == 0
        counted = xdrsync(
            "query", "--config", config, "--format", "json", "SecurityIncident | count"
        )
        assert counted.returncode == 0, counted.stderr
        assert json.loads(counted.stdout)[0]["Count"] >= 7
        again = xdrsync(*emulate[3:], timeout=60)  # the folder's config is never overwritten
        assert again.returncode == 2 and "exists" in again.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_sentinel_emulators_block_takes_its_secret_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """design.md: secrets by reference, never inline in examples. The block `emulate
    sentinel` prints to paste reads the app's secret from a variable, and the line to set it
    comes with it: pasted as printed, the config loads with no inline-secret warning."""
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "emulator.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [PYTHON, "-m", "xdrsync", "emulate", "sentinel", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "[[destinations]]" not in log.read_text() or "rule_id" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    printed = log.read_text()
    (export,) = [line.strip() for line in printed.splitlines() if "export " in line]
    name, _, secret = export.removeprefix("export ").partition("=")
    block = printed[printed.index("[[destinations]]") :]
    assert f'client_secret = "env:{name}"' in block
    assert secret and secret not in block
    (tmp_path / "t.secret").write_text("s3cret")
    tenant = (
        '[[tenants]]\nname = "contoso"\ntenant_id = "11111111-2222-3333-4444-555555555555"\n'
        'client_id = "11111111-2222-3333-4444-555555555556"\nclient_secret = "file:t.secret"\n'
    )
    (tmp_path / "xdrsync.toml").write_text(f'[workspace]\npath = "./ws"\n\n{tenant}\n{block}')
    monkeypatch.setenv(name, secret)
    with caplog.at_level(logging.WARNING):
        config = load_config(tmp_path / "xdrsync.toml")
    (destination,) = config.destinations
    assert destination.client_secret is not None
    assert destination.client_secret.get_secret_value() == secret
    assert not [r for r in caplog.records if "inline" in r.getMessage()]


def _json_lines(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(the lines that are JSON objects, the others)."""
    events, plain = [], []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            plain.append(line)
    return events, plain


def test_run_log_json_writes_only_json_lines_to_stderr(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """operations.md §4: `--log-json` writes one JSON object per line to stderr. What `run`
    tells its operator (the console's address, no users yet, what it syncs, stopping) comes
    as log events then, and so does an error."""
    config = str(write_config(tmp_path, emulator))
    err = tmp_path / "run.err"
    with err.open("w") as sink:
        service = subprocess.Popen(
            [PYTHON, "-m", "xdrsync", "run", "--config", config, "--log-json"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "syncing" not in err.read_text():
                time.sleep(0.2)
            time.sleep(1)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=60)
    assert service.returncode == 0, err.read_text()[-2000:]
    events, plain = _json_lines(err.read_text())
    assert plain == []
    said = " | ".join(str(e.get("event")) for e in events)
    for words in ("console and REST API on http://", "no console users yet", "syncing", "stopping"):
        assert words in said, said
    refused = xdrsync("run", "--log-json", "--config", str(tmp_path / "missing.toml"))
    assert refused.returncode == 2
    events, plain = _json_lines(refused.stderr)
    assert plain == [] and events[-1]["level"] == "error", refused.stderr


def test_a_workspace_folder_that_cannot_be_made_is_one_error_line(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A `[workspace] path` that cannot be created (a file in the way, or no permission) is
    one `error:` line and exit 2, for every command that opens the workspace."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = write_client_config(
        tmp_path / "cfg",
        emulator.base_url,
        emulator.emulator.settings.tenants,
        workspace=str(blocker / "ws"),
    )
    commands = (
        ["sync", "--once"],
        ["check"],
        ["backfill", "--from", "2026-01-01", "--to", "2026-01-02"],
        ["incidents", "update", "1", "--owner", "a@contoso.com"],
        ["conflicts", "resolve", "1", "--take", "defender"],
    )
    for command in commands:
        done = xdrsync(*command, "--config", str(config))
        assert "Traceback" not in done.stderr, f"{command}: {done.stderr[-400:]}"
        assert done.returncode == 2, command
        assert done.stderr.startswith("error: cannot create the workspace folder"), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_incidents_list_refuses_an_unknown_status_and_takes_updates_aliases(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A typo in `incidents list --status` is one error line (exit 2), not an empty queue;
    the statuses `update --status` takes are taken and mapped the same way (Sentinel's
    `Closed` is `resolved`)."""
    config = str(write_config(tmp_path, emulator))
    assert xdrsync("sync", "--once", "--config", config).returncode == 0
    typo = xdrsync("incidents", "list", "--status", "activ", "--config", config)
    assert typo.returncode == 2 and typo.stdout == ""
    assert "--status 'activ' is not an incident status" in typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1
    listed = {}
    for status in ("resolved", "Closed", "RESOLVED", "redirected", "inprogress", "Active"):
        done = xdrsync(
            "incidents", "list", "--status", status, "--limit", "500", "--config", config
        )
        assert done.returncode == 0, done.stderr
        listed[status] = done.stdout.splitlines()[0]
    assert listed["resolved"] == listed["Closed"] == listed["RESOLVED"]
    assert listed["inprogress"] == listed["Active"]  # Sentinel's Active is inProgress
    assert listed["resolved"] != "0 incidents"


@pytest.fixture
def bracket_graph() -> Iterator[str]:
    """A Graph on 127.0.0.1 that answers every GET with a 400 whose message holds brackets,
    as Graph's and gateways' messages may ("... [/lastUpdateDateTime] ...")."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            message = "Invalid filter clause [/lastUpdateDateTime] [red]severity[/red]"
            body = json.dumps({"error": {"code": "BadRequest", "message": message}}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_servers_error_text_with_brackets_is_shown_not_read_as_markup(
    emulator: EmulatorServer, tmp_path: Path, bracket_graph: str
) -> None:
    """Graph's error text reaches the terminal as it is: `[/x]` must not stop `sync --once`,
    `check` or `state show` with rich's MarkupError, nor `[red]` restyle it."""
    first = emulator.emulator.settings.tenants[0]
    config = write_client_config(
        tmp_path / "cfg",
        emulator.base_url,
        [first],
        workspace=str(tmp_path / "ws"),
        sync={"max_attempts": 1},
    )
    config.write_text(
        config.read_text().replace(
            f'graph_url = "{emulator.base_url}"', f'graph_url = "{bracket_graph}"'
        )
    )
    for command in (["sync", "--once"], ["check"], ["state", "show"]):
        done = xdrsync(*command, "--config", str(config), env={**os.environ, "COLUMNS": "400"})
        assert "Traceback" not in done.stderr, f"{command}: {done.stderr[-300:]}"
        assert done.returncode == (0 if command == ["state", "show"] else 1), command
        shown = done.stdout + done.stderr
        assert "[/lastUpdateDateTime] [red]severity[/red]" in shown, command


def _first_sync_failed(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """A workspace in ``tmp_path`` whose one tenant's first `sync --once` failed for
    configuration (its secret's variable is unset): the command line and environment to run
    more commands there."""
    (tmp_path / "xdrsync.toml").write_text(
        '[workspace]\npath = "./ws"\n\n[[tenants]]\nname = "tailspin"\n'
        'tenant_id = "11111111-2222-3333-4444-555555555555"\n'
        'client_id = "11111111-2222-3333-4444-555555555556"\n'
        'client_secret = "env:XDRSYNC_TEST_UNSET_SECRET"\n'
        'graph_url = "http://127.0.0.1:9"\nauthority_url = "http://127.0.0.1:9"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "COLUMNS": "400"}
    env.pop("XDRSYNC_TEST_UNSET_SECRET", None)
    run = [sys.executable, "-m", "xdrsync"]
    synced = subprocess.run(
        [*run, "sync", "--once"], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert synced.returncode == 1
    return run, env


def test_a_stream_left_unread_after_its_tenant_failed_says_why_in_state_show(
    tmp_path: Path,
) -> None:
    """After a tenant's first stream fails for configuration (here its secret's variable is
    unset), its other stream is not started. `state show` listed that one as never synced
    with no error, which operations.md explains as a hung first request: it says why now."""
    run, env = _first_sync_failed(tmp_path)
    shown = subprocess.run(
        [*run, "state", "show"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    ).stdout
    rows = {
        stream: [
            line for line in shown.splitlines() if "tailspin" in line and f"│ {stream} " in line
        ]
        for stream in ("incidents", "alerts")
    }
    for (row,) in rows.values():
        assert "XDRSYNC_TEST_UNSET_SECRET" in row, shown
    assert "incidents failed first" in rows["alerts"][0], shown


def test_state_show_before_the_first_sync_shows_the_workspace_totals_at_zero(
    tmp_path: Path,
) -> None:
    """A workspace nothing was synced into yet (the first sync failed: its secret's variable
    is unset) has a hub and no rows. `state show`'s Workspace table had a tenant column and
    nothing else; it shows the tenant with every total at 0."""
    run, env = _first_sync_failed(tmp_path)
    shown = subprocess.run(
        [*run, "state", "show"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    table = lines[lines.index("Workspace") :]
    header = [cell.strip() for cell in table[2].strip("┃").split("┃")]
    row = next(line for line in table if "tailspin" in line)
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert header[0] == "tenant" and {"incidents", "alerts", "quarantined"} <= set(header)
    assert cells == ["tailspin", *["0"] * (len(header) - 1)], shown.stdout


@pytest.mark.parametrize(("which", "extra"), [("defender", ("--incidents", "3")), ("sentinel", ())])
def test_an_emulator_on_port_0_prints_the_port_it_bound(
    tmp_path: Path, which: str, extra: tuple[str, ...]
) -> None:
    """`--port 0` lets the system pick a free port: the URLs and commands the emulator prints
    name that port, not 0, and it answers there."""
    log = tmp_path / "emulator.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [PYTHON, "-m", "xdrsync", "emulate", which, "--port", "0", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "emulator on" not in log.read_text() or "127.0.0.1:" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(0.5)  # the rest of the printed block
        printed = log.read_text()
        ports = set(re.findall(r"http://127\.0\.0\.1:(\d+)", printed))
        (port,) = ports
        assert port != "0", printed
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
