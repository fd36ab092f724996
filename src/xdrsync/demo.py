"""``xdrsync demo``: an emulated Defender tenant with live activity, synced into the workspace
and on into an emulated Microsoft Sentinel, shown live.

It is the production path end to end: msal sign-in, the Graph client with its retry policy,
the inbound engine, the hub, the KQL tables, the fan-out to Sentinel — only Defender and
Sentinel on the other side are local.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from xdrsync.config import load_config
from xdrsync.destinations.status import destination_statuses
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.sentinel import SentinelEmulatorServer, destination_toml
from xdrsync.emulator.sentinel import settings_for as sentinel_settings_for
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.errors import ConfigError
from xdrsync.layout import make_private
from xdrsync.logs import configure
from xdrsync.serving import ServerThread, listen_error
from xdrsync.sync.engine import CycleReport, SyncService
from xdrsync.sync.lock import WorkspaceLock
from xdrsync.views import incident_table
from xdrsync.workspace import Workspace, inbound_settings

# Hostile enough to show retries and the $expand fallback, mild enough that the first
# cycle (300 incidents) finishes in seconds: $expand fails per incident, so 0.002 makes
# about one page in ten fall back to one call per incident (0.03 made most pages do so,
# and the first cycle took minutes of Graph budget).
DEMO_USER = "analyst"
DEMO_EMAIL = "analyst@contoso.com"
DEMO_FAULTS = "error_rate=0.02,reset_rate=0.01,expand_error_rate=0.002,late_seconds=3"
#: Written into every folder the demo makes: only such a folder is ever emptied by a demo.
DEMO_MARKER = ".xdrsync-demo"


class _Feed:
    """What the live view shows besides the queue: the last cycles, as one-line events."""

    def __init__(self) -> None:
        self.events: deque[str] = deque(maxlen=6)
        self.cycles = 0
        self.lock = threading.Lock()

    def on_report(self, report: CycleReport) -> None:
        with self.lock:
            self.cycles += 1
            for stream in report.streams:
                changed = stream.inserted + stream.updated
                if changed or stream.quarantined:
                    stamp = datetime.now(UTC).strftime("%H:%M:%S")
                    self.events.append(
                        f"{stamp} {report.tenant}/{stream.stream}: {stream.inserted} new, "
                        f"{stream.updated} updated ({stream.records} read)"
                    )
            for stream_name, error in report.errors.items():
                self.events.append(f"{report.tenant}/{stream_name}: retrying after {error[:80]}")


def _view(
    workspace: Workspace,
    server: EmulatorServer,
    sentinel: SentinelEmulatorServer,
    feed: _Feed,
    config_path: Path,
    names: dict[str, str],
    login: str,
) -> Group:
    stats = server.emulator.stats_snapshot()
    counts = workspace.hub.counts()
    totals = {
        k: sum(per.get(k, 0) for per in counts.values())
        for k in ("incidents", "alerts", "evidence", "comments", "incident_versions")
    }
    faults = sum(stats["faults"].values())
    header = Text.assemble(
        ("xdrsync demo", "bold"),
        "  console ",
        (login, "bold green"),
        "\n",
        f"  Defender emulator {server.base_url}  ·  Graph calls {stats['requests']}"
        f" (429: {stats['throttled']}, injected faults: {faults})  ·  sync cycles {feed.cycles}\n",
        f"workspace: {totals['incidents']} incidents, {totals['alerts']} alerts, "
        f"{totals['evidence']} evidence, {totals['comments']} comments, "
        f"{totals['incident_versions']} incident versions\n",
        _sentinel_line(workspace, sentinel),
    )
    with feed.lock:
        events = Text("\n".join(feed.events) or "waiting for the first cycle…", style="dim")
    queue = incident_table(workspace.hub.list_incidents(limit=12), names)
    config = shlex.quote(str(config_path.resolve()))  # pasted into a shell as printed
    command = this_command()
    hint = Text(
        f"\nIn another terminal:  {command} query -c {config} "
        "'SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName"
        " | summarize count() by Status'\n"
        f"                      {command} incidents show ID -c {config}"
        "      Ctrl-C stops.",
        style="cyan",
    )
    return Group(header, queue, events, hint)


def this_command() -> str:
    """xdrsync as this process was started, to paste into a shell (another terminal, another
    folder): ``xdrsync`` when that is what ran and the PATH finds it, else the script's path,
    else ``python -m xdrsync`` with this interpreter. A fixed ``.venv/bin/xdrsync`` named a
    file that exists only in a checkout's folder."""
    started = Path(sys.argv[0])
    if started.name in ("xdrsync", "xdrsync.exe"):
        found = shutil.which("xdrsync")
        if found is not None and Path(found).resolve() == started.resolve():
            return "xdrsync"
        return shlex.quote(str(started.resolve()))
    return f"{shlex.quote(sys.executable)} -m xdrsync"


def _sentinel_analyst(sentinel: SentinelEmulatorServer, feed: _Feed) -> None:
    """An analyst working the queue in Sentinel: takes a new incident now and then. The edit
    travels back to Defender (two-way) and shows up in the workspace's queue."""
    base = sentinel.base_url
    truth = httpx.get(f"{base}/_emulator/truth", timeout=10).json()
    fresh = [i for i in truth["incidents"] if i["properties"].get("status") == "New"]
    if not fresh:
        return
    incident = fresh[len(fresh) // 2]
    owner = {"userPrincipalName": "sam@contoso.com", "assignedTo": "Sam", "ownerType": "User"}
    reply = httpx.post(
        f"{base}/_emulator/incidents/{incident['name']}",
        json={"status": "Active", "owner": owner},
        timeout=10,
    )
    if reply.is_success:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        title = str(incident["properties"].get("title", ""))[:50]
        with feed.lock:
            feed.events.append(f"{stamp} Sentinel: sam@contoso.com took “{title}” → Defender")


def _sentinel_line(workspace: Workspace, sentinel: SentinelEmulatorServer) -> str:
    store = sentinel.emulator.store
    rows = sum(store.row_counts().values())
    line = f"Sentinel emulator {sentinel.base_url}  ·  {store.count()} incidents, {rows} log rows"
    for status in destination_statuses(workspace.hub, workspace.config):
        if status.kind == "sentinel":
            line += f"  ·  {status.behind} changes behind"
            if status.error:
                line += f" (retrying: {status.error[:60]})"
    return line


def _start_console(
    workspace: Workspace, service: SyncService, port: int
) -> tuple[ServerThread, str, str]:
    """The console on ``port`` (any free port if that one is taken), with a fresh admin user:
    (server, user name, password)."""
    from xdrsync.console.accounts import Accounts
    from xdrsync.console.server import console_server

    password = secrets.token_urlsafe(12)
    Accounts(workspace.hub).add_user(DEMO_USER, password, "admin", email=DEMO_EMAIL)
    # A port seen taken is not tried: uvicorn would print its bind error on the terminal.
    first = 0 if listen_error(workspace.config.console.host, port) else port
    for attempt in dict.fromkeys((first, 0)):
        server = console_server(
            workspace.config,
            workspace.hub,
            workspace.logs,
            wake_pusher=service.wake_pusher,
            port=attempt,
        )
        try:
            return server.start(), DEMO_USER, password
        except (OSError, RuntimeError, SystemExit):
            if attempt == 0:
                raise
    raise AssertionError("unreachable")


def run_demo(
    workspace_dir: Path,
    *,
    duration: float | None,
    port: int,
    console: Console,
    console_port: int = 8080,
) -> None:
    lock = _claim(workspace_dir)
    try:
        config_path = _run(
            workspace_dir, duration=duration, port=port, console=console, console_port=console_port
        )
    finally:
        lock.release()
    config = shlex.quote(str(config_path.resolve()))
    console.print(
        f"Demo stopped. The workspace stays in {workspace_dir}; query it with\n"
        f"  {this_command()} query -c {config} 'SecurityIncident | count'",
        markup=False,  # a folder's name is not markup
    )


def _claim(workspace_dir: Path) -> WorkspaceLock:
    """The demo's workspace, locked and empty but for its marker. A folder that is neither
    new, empty nor made by an earlier demo is refused untouched (it may be a live
    workspace); a locked one (a demo or service running there) fails on the lock before
    anything is deleted."""
    if workspace_dir.exists() and not workspace_dir.is_dir():
        raise ConfigError(f"demo workspace {workspace_dir} is not a folder")
    if not _demo_or_empty(workspace_dir):
        raise ConfigError(
            f"{workspace_dir} is not empty and was not made by `xdrsync demo`: not wiped; "
            "give --workspace a new or empty folder"
        )
    lock = WorkspaceLock(workspace_dir).acquire()
    try:
        # Private from here, as every workspace is (docs/security.md): its marker, log, config
        # and the emulated Sentinel's secret are written before the workspace opens.
        make_private(workspace_dir)
        for entry in workspace_dir.iterdir():
            if entry.name in (DEMO_MARKER, lock.path.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        (workspace_dir / DEMO_MARKER).write_text(
            "Made by `xdrsync demo`, which empties this folder on each run.\n", encoding="utf-8"
        )
    except BaseException:
        lock.release()
        raise
    return lock


def _demo_or_empty(folder: Path) -> bool:
    if not folder.exists() or (folder / DEMO_MARKER).is_file():
        return True
    return next(folder.iterdir(), None) is None or _made_before_the_marker(folder)


def _made_before_the_marker(folder: Path) -> bool:
    """A demo workspace from before the marker: the demo's two emulators' secrets, and a
    config reading Graph from a loopback emulator (no real tenant's workspace looks so)."""
    config = folder / "xdrsync.toml"
    if not ((folder / "sentinel.secret").is_file() and config.is_file()):
        return False
    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return 'graph_url = "http://127.0.0.1:' in text


def _run(
    workspace_dir: Path, *, duration: float | None, port: int, console: Console, console_port: int
) -> Path:
    """The demo in ``workspace_dir``, which the caller holds the lock of; its config file."""
    refused = listen_error("127.0.0.1", port)
    if refused is not None:
        raise ConfigError(
            f"the emulator cannot listen on 127.0.0.1:{port} ({refused.strerror}): pick "
            "another --port, or 0 for any free port"
        )
    settings = settings_for(seed=7, incidents=300, activity_per_minute=60, faults=DEMO_FAULTS)
    with (
        (workspace_dir / "xdrsync.log").open("a", encoding="utf-8") as log_file,
        EmulatorServer(settings, port=port) as server,
        SentinelEmulatorServer(sentinel_settings_for(seed=7)) as sentinel,
    ):
        configure("info", file=log_file)  # the terminal shows the live view; details go here
        config_path = write_client_config(
            workspace_dir,
            server.base_url,
            settings.tenants,
            sync={
                "poll_interval_seconds": 2,
                "idle_poll_interval_seconds": 4,
                "alerts_poll_interval_seconds": 4,
            },
        )
        # Defender → workspace → Sentinel: the emulated Sentinel is a configured destination.
        secret = workspace_dir / "sentinel.secret"
        secret.write_text(sentinel.settings.client_secret + "\n", encoding="utf-8")
        block = destination_toml(
            sentinel.settings, sentinel.base_url, client_secret=f"file:{secret.name}"
        )
        with config_path.open("a", encoding="utf-8") as file:
            file.write("\n" + block + "two_way = true\nreadback_interval_seconds = 3\n")
        config = load_config(config_path)
        names = {t.tenant_id: t.name for t in config.tenants}
        feed = _Feed()
        with Workspace.open(config) as workspace:  # the caller holds its lock
            service = SyncService(
                workspace.hub,
                workspace.sources(),
                inbound_settings(config),
                poll_interval=config.sync.poll_interval_seconds,
                idle_poll_interval=config.sync.idle_poll_interval_seconds,
                alerts_interval=config.sync.alerts_poll_interval_seconds,
                fanout=workspace.fanout(),
                on_report=feed.on_report,
                push=workspace.pusher().push_due,
                push_interval=config.two_way.poll_seconds,
                periodic=[
                    *workspace.readbacks(),
                    ("sentinel-analyst", lambda: _sentinel_analyst(sentinel, feed), 15.0),
                ],
            ).start()
            web, user, password = _start_console(workspace, service, console_port)
            login = f"{web.base_url}  (user {user}, password {password})"
            try:
                console.print(f"Console: {login}", markup=False)
                _show(
                    console,
                    duration,
                    lambda: _view(workspace, server, sentinel, feed, config_path, names, login),
                )
            except KeyboardInterrupt:
                # The sync and the fan-out end their turn first: seconds, said at once.
                console.print("Stopping the demo… (Ctrl-C again quits at once)")
            finally:
                web.stop()
                service.stop()
    return config_path


def _show(console: Console, duration: float | None, view: Callable[[], Group]) -> None:
    """Live in a terminal; otherwise (a pipe, CI) a status line every few seconds."""
    deadline = None if duration is None else time.monotonic() + duration

    def remaining() -> float:
        return float("inf") if deadline is None else deadline - time.monotonic()

    if console.is_terminal:
        with Live(console=console, auto_refresh=False) as live:
            while remaining() > 0:
                live.update(view(), refresh=True)
                time.sleep(1)
        return
    while remaining() > 0:
        time.sleep(min(5.0, remaining()))
        console.print(view().renderables[0])


__all__ = ["run_demo"]
