"""The ``xdrsync`` command line: parses arguments and calls into the package; no logic here."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import typer

from xdrsync import __version__
from xdrsync.errors import ConfigError, XdrSyncError
from xdrsync.layout import QUEUE_DESTINATION, TABLES_DESTINATION
from xdrsync.terminal import console, err_console, notice, print_error, report_failure

if TYPE_CHECKING:
    from xdrsync.config import Config, SyncConfig, TenantConfig
    from xdrsync.console.accounts import Accounts
    from xdrsync.destinations.runner import Fanout
    from xdrsync.hub import Hub
    from xdrsync.hub.records import OutboxRow
    from xdrsync.serving import ServerThread
    from xdrsync.sync.engine import CycleReport, TenantSource
    from xdrsync.sync.inbound import StreamReport, WindowDone
    from xdrsync.sync.lock import WorkspaceLock
    from xdrsync.twoway.pusher import Pusher, PushReport
    from xdrsync.workspace import Workspace

T = TypeVar("T")

#: The commands' docstrings are their help: written as Markdown, so that `--help` flows a
#: paragraph to the terminal's width (typer's default keeps every line break after the first
#: paragraph) and shows `code` and lists as such.
HELP_MARKUP: Final = "markdown"

# Never a traceback with local variables (typer before 0.20 shows them by default): a
# database URL or a secret would be among them.
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=HELP_MARKUP,
    help="Lossless, multi-tenant, two-way sync of Microsoft Defender XDR incidents.",
)


def _group(name: str, help: str) -> typer.Typer:
    """A command group of ``app``."""
    group = typer.Typer(
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        rich_markup_mode=HELP_MARKUP,
        help=help,
    )
    app.add_typer(group, name=name)
    return group


emulate_app = _group("emulate", "Local emulators of the services xdrsync talks to.")
state_app = _group("state", "Inspect sync state.")
incidents_app = _group("incidents", "The workspace's incidents.")
alerts_app = _group("alerts", "The workspace's alerts.")
destinations_app = _group(
    "destinations", "Where the workspace's changes go: status, dead letters, replay."
)
conflicts_app = _group("conflicts", "Edits waiting for a decision (fields with policy manual).")
users_app = _group("users", "Who may use the console and REST API.")
tokens_app = _group("tokens", "Personal API tokens for scripts.")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default ./xdrsync.toml or $XDRSYNC_CONFIG)."),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    print_error(message)
    return typer.Exit(code)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"xdrsync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Lossless, multi-tenant, two-way sync of Microsoft Defender XDR incidents."""
    # Every command's log lines go to stderr, warnings and worse by default (structlog's own
    # default is stdout, where they would mix into a command's output); `run`, `sync` and
    # the others that log more set their level, and `run --log-json` the format, over this.
    from xdrsync.logs import configure

    configure("warning")


@emulate_app.command("defender")
def emulate_defender(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8650,
    seed: Annotated[int, typer.Option(help="Seed of the generated tenants and stories.")] = 7,
    incidents: Annotated[int, typer.Option(help="Incidents per tenant at start.")] = 200,
    big_incident_alerts: Annotated[
        int,
        typer.Option(
            help="Grow each tenant's newest incident to this many alerts (over 1,000, its "
            "$expand=alerts fails as Graph's does).",
        ),
    ] = 0,
    tenants: Annotated[int, typer.Option(help="How many tenants to serve.")] = 1,
    load: Annotated[
        Path | None,
        typer.Option(help="Serve Graph-shaped incidents from this JSON file, as given."),
    ] = None,
    activity: Annotated[float, typer.Option(help="Live changes per minute per tenant.")] = 0.0,
    rate_limit: Annotated[
        int | None, typer.Option(help="Graph calls per minute per tenant before 429.")
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(
            help="e.g. error_rate=0.05,reset_rate=0.02,slow_rate=0.05,slow_seconds=2,"
            "expand_error_rate=0.1,late_seconds=20"
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (keep it on loopback).")] = "127.0.0.1",
    read_only: Annotated[
        list[str] | None,
        typer.Option(
            "--read-only",
            help="A tenant (name, id or index) whose app has read permissions only: its "
            "tokens carry Read.All roles and writes get Graph's 403.",
        ),
    ] = None,
    write_config: Annotated[
        Path | None,
        typer.Option(
            help="Write FOLDER/xdrsync.toml (and each tenant's secret file) for a workspace "
            "in FOLDER that syncs from this emulator; refused if the file exists.",
        ),
    ] = None,
) -> None:
    """Serve the Microsoft Graph security API v1.0 (Defender XDR) locally."""
    from xdrsync.emulator.clientconfig import write_client_config
    from xdrsync.emulator.server import serve_forever
    from xdrsync.emulator.service import settings_for

    try:
        settings = settings_for(
            seed=seed,
            incidents=incidents,
            tenants=tenants,
            activity_per_minute=activity,
            rate_limit_per_minute=rate_limit,
            faults=faults,
            load_file=load,
            read_only_tenants=read_only or (),
            big_incident_alerts=big_incident_alerts,
        )
    except ValueError as bad:
        raise _fail(str(bad)) from None
    if write_config is not None and (write_config / "xdrsync.toml").exists():
        raise _fail(f"{write_config / 'xdrsync.toml'} exists; not overwritten")
    sock = _listening(host, port)  # before printing: with --port 0, the port printed is bound
    port = int(sock.getsockname()[1])
    base = f"http://{host}:{port}"
    if write_config is not None:
        written = write_client_config(write_config, base, settings.tenants, console={})
        console.print(f"Wrote {written}: use it with --config or XDRSYNC_CONFIG", markup=False)
    console.print(
        f"Defender XDR emulator on [bold]{base}[/bold]  (Graph API under {base}/v1.0/security)"
    )
    for tenant in settings.tenants:
        console.print(
            f"  tenant {tenant.name}: tenant_id={tenant.tenant_id} client_id={tenant.client_id} "
            f"client_secret={tenant.client_secret}"
            + (" (read-only app)" if tenant.read_only else "")
        )
    first = settings.tenants[0]
    console.print(
        "Try:\n"
        f"  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={first.client_id} "
        f"-d client_secret={first.client_secret} -d scope=https://graph.microsoft.com/.default "
        f"{base}/{first.tenant_id}/oauth2/v2.0/token | python3 -c 'import json,sys; "
        'print(json.load(sys.stdin)["access_token"])\')\n'
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1.0/security/incidents?$top=5'"
    )
    try:
        serve_forever(settings, host=host, port=port, sock=sock)
    except OSError as bad:
        raise _fail(f"cannot serve on {base}: {bad}") from None
    finally:
        sock.close()


def _listening(host: str, port: int) -> socket.socket:
    """The emulator's socket, bound before anything is printed (``serving.listening``)."""
    from xdrsync.serving import listening

    try:
        return listening(host, port)
    except OSError as bad:
        raise _fail(f"cannot serve on http://{host}:{port}: {bad}") from None


#: The variable `emulate sentinel`'s printed block reads the emulator's app secret from.
SENTINEL_SECRET_VARIABLE: Final = "XDRSYNC_SENTINEL_SECRET"  # noqa: S105 (a name)


@emulate_app.command("sentinel")
def emulate_sentinel(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8660,
    seed: Annotated[int, typer.Option(help="Seed of the workspace's ids and secret.")] = 7,
    incidents: Annotated[int, typer.Option(help="Sentinel incidents present at start.")] = 0,
    rate_limit: Annotated[int | None, typer.Option(help="ARM calls per minute before 429.")] = None,
    ingest_rate_limit: Annotated[
        int, typer.Option(help="Logs Ingestion calls per minute before 429.")
    ] = 12_000,
    faults: Annotated[
        str | None,
        typer.Option(help="e.g. error_rate=0.05,reset_rate=0.02,slow_rate=0.05,conflict_rate=0.1"),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="The app may read incidents only (writes: 403).")
    ] = False,
    no_ingest_permission: Annotated[
        bool,
        typer.Option(
            "--no-ingest-permission",
            help="The app lacks Monitoring Metrics Publisher on the rule (uploads: 403).",
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="Address to bind (keep it on loopback).")] = "127.0.0.1",
) -> None:
    """Serve Microsoft Sentinel locally: the ARM incidents API, Logs Ingestion and sign-in."""
    from xdrsync.emulator.sentinel import destination_toml, serve_forever, settings_for

    try:
        settings = settings_for(
            seed=seed,
            incidents=incidents,
            rate_limit_per_minute=rate_limit,
            ingest_rate_limit_per_minute=ingest_rate_limit,
            faults=faults,
            read_only=read_only,
            ingest_permission=not no_ingest_permission,
        )
    except ValueError as bad:
        raise _fail(str(bad)) from None
    sock = _listening(host, port)  # before printing: with --port 0, the port printed is bound
    port = int(sock.getsockname()[1])
    base = f"http://{host}:{port}"
    console.print(f"Microsoft Sentinel emulator on [bold]{base}[/bold]")
    # The secret by reference, as every config should hold one (the emulator's own is no
    # secret, but a pasted literal would be warned about at every command).
    console.print(
        "Set its app's secret where xdrsync runs, and add this to xdrsync.toml:\n"
        f"  export {SENTINEL_SECRET_VARIABLE}={settings.client_secret}",
        markup=False,
        highlight=False,
    )
    reference = f"env:{SENTINEL_SECRET_VARIABLE}"
    console.print(
        destination_toml(settings, base, client_secret=reference), markup=False, highlight=False
    )
    try:
        serve_forever(settings, host=host, port=port, sock=sock)
    except OSError as bad:
        raise _fail(f"cannot serve on {base}: {bad}") from None
    finally:
        sock.close()


# -- shared plumbing --------------------------------------------------------------------------


def _load(config_file: Path | None) -> Config:
    from xdrsync.config import load_config
    from xdrsync.logs import register_secrets

    config = load_config(config_file)
    readable = []
    for tenant in config.tenants:
        if tenant.client_secret is None:
            continue
        try:
            readable.append(tenant.client_secret.get_secret_value())
        except ConfigError:  # not readable now: that tenant alone fails, at sign-in
            continue
    register_secrets(readable)
    if config.workspace.database_url is not None:
        register_secrets([config.workspace.database_url.get_secret_value()])
    return config


@contextmanager
def _errors() -> Iterator[None]:
    """Every expected failure becomes one clear line and a non-zero exit code."""
    try:
        yield
    except XdrSyncError as bad:
        raise typer.Exit(report_failure(bad)) from None


def _database_error(config: Config, failure: Exception) -> ConfigError:
    """A SQLAlchemy or driver error from opening the hub as one line: the database's
    address (driver, host, port, database; never the user's password) and the reason."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from xdrsync.configfile import one_line
    from xdrsync.hub import configured_url

    url = configured_url(config.workspace)
    setting = "[workspace] database_url" if config.workspace.database_url else "[workspace] path"
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a port that is not a number raises here
    except (ArgumentError, ValueError):
        return ConfigError(
            f"{setting} is not a database URL (e.g. postgresql+psycopg://USER:PASSWORD@HOST/DB)"
        )
    where = f"{parsed.drivername}://"
    if parsed.host:
        where += parsed.host + (f":{parsed.port}" if parsed.port else "")
    where += f"/{parsed.database or ''}"
    cause = failure.orig if isinstance(failure, DBAPIError) else failure
    lines = [line for line in str(cause).splitlines() if line.strip()]
    reason = one_line(lines[0]) if lines else type(cause).__name__
    for secret in (url, parsed.password):
        if secret:
            reason = reason.replace(str(secret), "***")
    return ConfigError(f"cannot open the hub at {where}: {reason}; check {setting}")


def _make_folder(config: Config) -> None:
    """The workspace folder, made if missing; a ``ConfigError`` if it cannot be (a file in
    the way, no permission on its parent)."""
    path = config.workspace.path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise _folder_error(path, failure.strerror or type(failure).__name__) from None


def _folder_error(path: Path, reason: str) -> ConfigError:
    return ConfigError(
        f"cannot create the workspace folder {path}: {reason}; check [workspace] path "
        "and that the account running xdrsync may write there"
    )


@contextmanager
def _workspace(config: Config, *, lock: bool | WorkspaceLock) -> Iterator[Workspace]:
    """The workspace, opened; with ``lock``, under its writer lock (or under this one, which
    ``run`` keeps to ask afterwards whether it was lost)."""
    from sqlalchemy.exc import SQLAlchemyError

    from xdrsync.sync.lock import WorkspaceLock
    from xdrsync.workspace import Workspace

    _make_folder(config)
    if isinstance(lock, WorkspaceLock):
        guard: WorkspaceLock | None = lock
    else:
        guard = WorkspaceLock.for_config(config) if lock else None
    if guard is not None:
        try:
            guard.acquire()  # on PostgreSQL, the hub's lock too: the hub's first connection
        except (SQLAlchemyError, ValueError) as failure:
            raise _database_error(config, failure) from None
    try:
        try:
            opened = Workspace.open(config)
        except SQLAlchemyError as failure:
            raise _database_error(config, failure) from None
        with opened as workspace:
            yield workspace
    finally:
        if guard is not None:
            guard.release()


def _require_hub(config: Config) -> None:
    """A ``ConfigError`` when the workspace has no hub file yet: a command that reads the
    hub, or acts on what it holds (an edit of an incident, a replay, a decision), refuses a
    mistyped path rather than making an empty, new workspace there and answering from it."""
    import errno
    import os

    from xdrsync.layout import HUB_FILE

    hub_file = config.workspace.path / HUB_FILE
    if config.workspace.database_url is None and not hub_file.exists():
        # A file where the folder should be is said as `_make_folder` says it, without
        # making anything on the way.
        path = config.workspace.path
        found = next((p for p in (path, *path.parents) if p.exists()), None)
        if found is not None and not found.is_dir():
            raise _folder_error(path, os.strerror(errno.ENOTDIR))
        raise ConfigError(
            f"no hub at {hub_file}: run `xdrsync sync --once` first, or check [workspace] path"
        )


@contextmanager
def _hub(config: Config, *, existing: bool = False) -> Iterator[Hub]:
    """The workspace's hub alone, for commands that only read it or queue edits in it: none
    of the sync machinery (Graph client, log tables, fan-out) is loaded. ``existing``: a
    command that only reads refuses a workspace with no hub file rather than making one (a
    mistyped path would otherwise answer with an empty, new hub)."""
    from sqlalchemy.exc import SQLAlchemyError

    from xdrsync.hub import Hub, configured_url
    from xdrsync.layout import make_private

    if existing:
        _require_hub(config)
    _make_folder(config)
    make_private(config.workspace.path)  # as private as the sync makes it, if this creates it
    try:
        hub = Hub.open(configured_url(config.workspace))
    except SQLAlchemyError as failure:
        raise _database_error(config, failure) from None
    try:
        yield hub
    finally:
        hub.close()


@contextmanager
def _publishing(workspace: Workspace) -> Iterator[Fanout]:
    """The destinations fill in the background while the block syncs, and take the rest when
    it ends; a failure of that last run is raised here rather than logged."""
    fanout = workspace.fanout().start()
    try:
        yield fanout
    finally:
        fanout.stop()
    fanout.publish()


def _print_delivered(fanout: Fanout) -> None:
    for runner in fanout.runners:
        label = "workspace tables" if runner.name == TABLES_DESTINATION else runner.name
        console.print(f"{label}: {runner.delivered} changes published", markup=False)


def _names(config: Config) -> dict[str, str]:
    return {t.tenant_id: t.name for t in config.tenants}


def _parse_time(text: str, option: str) -> datetime:
    """An ISO-8601 date or time given to ``option``, in UTC: one without an offset is UTC;
    ``Z`` in either case, as RFC 3339 allows. In UTC at once, so that a moment whose UTC
    falls outside the calendar (``0001-01-01T00:00+01:00``) is refused here, as one line,
    rather than failing every stream of the backfill later."""
    try:
        moment = datetime.fromisoformat(text.strip().upper().replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise _fail(
            f"{option} {text!r} is not an ISO-8601 date or time (e.g. 2026-12-01, "
            "2026-12-01T10:00:00Z, 2026-12-01T10:00:00+02:00; without an offset, UTC)"
        ) from None
    except OverflowError:
        raise _fail(f"{option} {text!r} is out of range in UTC") from None


class _WindowProgress:
    """A progress bar per tenant and stream, moved by the engine's window callbacks."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.lock = threading.Lock()  # tenants are synced on threads of their own

    def tracker(self, tenant: str) -> Callable[[WindowDone], None]:
        def advance(done: WindowDone) -> None:
            name = f"{tenant}/{done.report.stream}"
            total = max((done.end - done.start).total_seconds(), 1.0)
            with self.lock:
                if name not in self.tasks:
                    self.tasks[name] = self.bars.add_task(name, total=total, done="")
            self.bars.update(
                self.tasks[name],
                completed=(done.reached - done.start).total_seconds(),
                done=f"{done.report.records} read, "
                f"{done.report.inserted + done.report.updated} changed",
            )

        return advance


@contextmanager
def _progress() -> Iterator[_WindowProgress]:
    progress = _WindowProgress()
    with progress.bars:
        yield progress


# -- sync -------------------------------------------------------------------------------------


@app.command("sync")
def sync_command(
    config_file: ConfigOption = None,
    once: Annotated[bool, typer.Option("--once", help="One full cycle, then exit.")] = False,
) -> None:
    """One full sync cycle: two-way destinations read back; then each tenant, on a thread of
    its own, gets its due edits pushed to Defender and is read; then every destination.

    Exit code 1 if a tenant or stream failed, or was not read because Graph asked us to wait
    (Retry-After) until later, or if an edit failed for good in the write-back (refused by
    Defender, or out of attempts); an edit left pending for a retry, in conflict waiting for
    a person's decision (`xdrsync conflicts list`), or ended because Defender merged or
    deleted its incident, does not fail it. 2 for a config
    error, or when another process holds the workspace."""
    from rich.markup import escape

    from xdrsync.logs import configure
    from xdrsync.sync.engine import sync_tenant
    from xdrsync.twoway.pusher import PushReport
    from xdrsync.workspace import inbound_settings

    if not once:
        raise _fail("use `xdrsync sync --once` for one cycle, or `xdrsync run` for the service")
    configure("warning")
    with _errors():
        config = _load(config_file)
        with (
            _workspace(config, lock=True) as workspace,
            _abandoning(),
            _publishing(workspace) as publisher,
        ):
            failed = False
            for name, read_back, _seconds in workspace.readbacks():
                try:
                    read_back()
                except XdrSyncError as bad:
                    failed = True
                    err_console.print(f"[red]{escape(name)} failed:[/red] {_shown(bad)}")
            pusher = workspace.pusher()
            sources = workspace.sources()
            settings = inbound_settings(config)

            def cycle(tenant: TenantSource) -> tuple[PushReport | str, CycleReport]:
                """The tenant's due edits pushed, then the tenant read: on the tenant's own
                thread, so that one whose Graph hangs holds up none of the others; the push
                first, so that the read brings back what Defender made of the edits."""
                return _push_tenant(pusher, tenant), sync_tenant(
                    workspace.hub, tenant, settings, on_window=progress.tracker(tenant.name)
                )

            with _progress() as progress:
                cycles = _each_tenant(sources, cycle)
            pushed = PushReport()
            for tenant, (push, _) in zip(sources, cycles, strict=True):
                if isinstance(push, str):
                    failed = True
                    err_console.print(
                        f"[red]{escape(tenant.name)} write-back failed:[/red] {escape(push)}"
                    )
                else:
                    pushed.merge(push)
            if pushed.states:
                console.print(f"write-back: {_push_summary(pushed.states)}")
            failed = failed or pushed.refused > 0
            for tenant, (_, report) in zip(sources, cycles, strict=True):
                for stream in report.streams:
                    if stream.waiting_until is not None:  # not read at all this cycle
                        failed = True
                        until = stream.waiting_until.astimezone(UTC)
                        err_console.print(
                            f"[yellow]{escape(tenant.name)}/{stream.stream} skipped:[/yellow] "
                            f"Graph asked us to wait until {until:%H:%M:%S} UTC; not read"
                        )
                        continue
                    console.print(_stream_line(tenant.name, stream), markup=False)
                for stream_name, error in report.errors.items():
                    failed = True
                    err_console.print(
                        f"[red]{escape(tenant.name)}/{stream_name} failed:[/red] {escape(error)}"
                    )
        _print_delivered(publisher)
    if failed:
        raise typer.Exit(1)


def _shown(error: BaseException) -> str:
    """An error's text for a rich line: secrets scrubbed, brackets shown, not read as markup
    (a server's message may hold ``[/x]``)."""
    from rich.markup import escape

    from xdrsync.logs import scrub

    return escape(scrub(str(error)))


def _push_tenant(pusher: Pusher, tenant: TenantSource) -> PushReport | str:
    """``pusher.push_due`` for one tenant; what went wrong instead, if it raised (the
    tenant's read goes on: its edits are pushed again at the next cycle)."""
    import structlog

    from xdrsync.logs import clean

    try:
        return pusher.push_due(tenant.tenant_id)
    except Exception as failure:  # the tenant's push alone; a stop (BaseException) goes on up
        structlog.get_logger(__name__).exception("write-back crashed", tenant=tenant.name)
        return clean(f"{type(failure).__name__}: {failure}")


def _each_tenant(sources: Sequence[TenantSource], work: Callable[[TenantSource], T]) -> list[T]:
    """``work`` for several tenants at once (``engine.each_tenant``); Ctrl-C is said at once."""
    from xdrsync.sync.engine import INTERRUPT_SECONDS, each_tenant

    def stopping() -> None:
        err_console.print(
            f"stopping: each tenant ends before its next Graph call (at most "
            f"{INTERRUPT_SECONDS:g} s; Ctrl-C again to leave at once)"
        )

    return each_tenant(sources, work, on_interrupt=stopping)


@contextmanager
def _abandoning() -> Iterator[None]:
    """Inside the workspace (its lock held), outside the fan-out and the progress bars: after
    Ctrl-C, while a tenant is still at work (``engine.still_at_work``), the process ends here
    without releasing the workspace, as ``run`` does: the kernel drops the lock only once
    that thread is gone. The fan-out and the bars have been stopped on the way out."""
    try:
        yield
    except KeyboardInterrupt:  # ``Interrupted``, or a Ctrl-C again on the way out
        from xdrsync.sync.engine import still_at_work

        left = still_at_work()
        if left:
            import os
            import sys

            err_console.print(f"interrupted; left still at work: {', '.join(left)}", markup=False)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise


@app.command("run")
def run_command(
    config_file: ConfigOption = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log JSON lines.")] = False,
) -> None:
    """The sync service: every tenant in a loop, until SIGTERM or Ctrl-C. Exit code 1 if it
    stopped because its PostgreSQL hub's writer lock was lost; 2 for a config error, or when
    another process holds the workspace."""
    from xdrsync import collector
    from xdrsync.logs import configure
    from xdrsync.sync.engine import SyncService
    from xdrsync.sync.lock import WorkspaceLock
    from xdrsync.workspace import inbound_settings

    configure("info", json=log_json)
    with _errors():
        config = _load(config_file)
        # Kept: its watchdog stops the service with the SIGTERM an operator's stop sends, and
        # only `lost` tells the two apart. A lost lock is a failure (exit 1), so that a
        # supervisor restarting on failure alone starts the service again.
        guard = WorkspaceLock.for_config(config)
        with _workspace(config, lock=guard) as workspace:
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            service = SyncService(
                workspace.hub,
                workspace.sources(),
                inbound_settings(config),
                poll_interval=config.sync.poll_interval_seconds,
                idle_poll_interval=config.sync.idle_poll_interval_seconds,
                alerts_interval=config.sync.alerts_poll_interval_seconds,
                fanout=workspace.fanout(),
                push=workspace.pusher().push_due,
                push_interval=config.two_way.poll_seconds,
                periodic=workspace.readbacks(),
            )
            server = _start_console(config, workspace, service.wake_pusher)
            collector.freeze_startup()  # all made, nothing synced yet
            service.start()
            notice(
                f"xdrsync {__version__}: syncing {len(config.tenants)} tenant(s) into "
                f"{config.workspace.path} every {config.sync.poll_interval_seconds:g}s",
                version=__version__,
                tenants=len(config.tenants),
                workspace=str(config.workspace.path),
            )
            # Bounded waits: the kernel may hand SIGTERM to any thread, and Python runs the
            # handler in the main thread only when it next wakes (an unbounded wait never did).
            while not stop.wait(0.5):
                pass
            notice("stopping…")
            if server is not None:
                server.stop()
            if not service.stop():
                # A thread is still inside a Graph request after the stop's deadline: it
                # starts no other call and commits no other page, but leave nothing to
                # chance. Exit now without releasing the workspace lock: the kernel drops it
                # only once this process, and that thread with it, is gone, so no other
                # writer starts beside it. What was committed is whole, as after a kill.
                import os
                import sys

                notice("stopped; a request still under way was abandoned")
                if guard.lost:
                    print_error(_LOCK_LOST)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1 if guard.lost else 0)
        if guard.lost:
            raise _fail(_LOCK_LOST, code=1)


_LOCK_LOST = (
    "the service stopped: the hub's writer lock was lost (its database session ended: a "
    "server restart, a failover, an idle timeout); a restart takes it again"
)


def _start_console(
    config: Config, workspace: Workspace, wake: Callable[[], None]
) -> ServerThread | None:
    """The console beside the sync, when ``[console] enabled`` (the default)."""
    if not config.console.enabled:
        return None
    from xdrsync.console.accounts import Accounts
    from xdrsync.console.server import console_server
    from xdrsync.serving import listen_error

    try:
        refused = listen_error(config.console.host, config.console.port)
        if refused is not None:
            raise OSError(refused.errno, refused.strerror)  # before uvicorn prints its own
        server = console_server(config, workspace.hub, workspace.logs, wake_pusher=wake).start()
    except (OSError, RuntimeError) as failure:
        raise _fail(
            f"the console could not listen on {config.console.host}:{config.console.port} "
            f"({failure}); change [console] port, or set enabled = false"
        ) from None
    notice(f"console and REST API on {server.base_url}", url=server.base_url)
    if not Accounts(workspace.hub).users():
        notice("no console users yet: add one with  xdrsync users add NAME --role admin")
    return server


@app.command("backfill")
def backfill_command(
    from_: Annotated[
        str, typer.Option("--from", help="Start (ISO-8601, inclusive; without an offset, UTC).")
    ],
    to: Annotated[
        str, typer.Option("--to", help="End (ISO-8601, exclusive; without an offset, UTC).")
    ],
    config_file: ConfigOption = None,
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant (name or id, any case).")
    ] = None,
    stream: Annotated[str | None, typer.Option(help="incidents or alerts (default both).")] = None,
) -> None:
    """Re-read a period from Graph into the workspace; the sync watermark is not touched.
    Each tenant's streams are said with what they read (as `sync --once` says them). A
    tenant or stream that fails is reported and the others go on; the exit code is then 1.
    A period that starts in the future, or ends before it starts, is refused (exit 2)."""
    import structlog
    from rich.markup import escape

    from xdrsync.logs import configure, scrub
    from xdrsync.sync.inbound import STREAMS, backfill_stream
    from xdrsync.workspace import inbound_settings

    configure("warning")
    lower, upper = _parse_time(from_, "--from"), _parse_time(to, "--to")
    if upper <= lower:
        raise _fail(f"--to ({upper.isoformat()}) must be after --from ({lower.isoformat()})")
    # Nothing can have been updated after now: a period wholly in the future (a year typed
    # wrong) read nothing and said "backfill done", as if it had re-read something.
    now = datetime.now(UTC)
    if lower > now + CLOCK_LEEWAY:  # a time copied from Graph, whose clock may lead this one
        raise _fail(
            f"--from {lower.isoformat()} is in the future (now {now.isoformat(timespec='seconds')})"
            ": nothing to re-read"
        )
    streams = STREAMS if stream is None else (stream,)
    if not set(streams) <= set(STREAMS):
        raise _fail(f"--stream must be one of {', '.join(STREAMS)}")
    failed = False
    with _errors():
        config = _load(config_file)
        # As every other command takes it (any case, an id in braces), and before the lock:
        # an exact match alone refused `--tenant CONTOSO` as "no tenant in the config".
        wanted = None if tenant is None else config.tenant(tenant).tenant_id
        settings = inbound_settings(config)
        with (
            _workspace(config, lock=True) as workspace,
            _abandoning(),
            _publishing(workspace) as publisher,
        ):
            sources = [s for s in workspace.sources() if wanted in (None, s.tenant_id)]

            def backfill_tenant(source: TenantSource) -> list[StreamReport | str]:
                """The tenant's streams, one after the other: what each read, or the line
                saying how it failed."""
                done: list[StreamReport | str] = []
                for name in streams:
                    try:
                        done.append(
                            backfill_stream(
                                workspace.hub,
                                source.source,
                                tenant_id=source.tenant_id,
                                stream=name,
                                lower=lower,
                                upper=upper,
                                settings=settings,
                                on_window=progress.tracker(source.name),
                            )
                        )
                    except Exception as bad:  # one stream's failure stays its own
                        text = str(bad)
                        if not isinstance(bad, XdrSyncError):  # a bug: keep the traceback
                            structlog.get_logger(__name__).exception(
                                "backfill crashed", tenant=source.name, stream=name
                            )
                            text = f"{type(bad).__name__}: {bad}"
                        done.append(
                            f"[red]{escape(source.name)}/{name} failed:[/red] {escape(scrub(text))}"
                        )
                return done

            try:
                with _progress() as progress:
                    found = _each_tenant(sources, backfill_tenant)
            except KeyboardInterrupt:  # each page read was committed as it came
                err_console.print(
                    "backfill interrupted: what it read is kept; the same backfill again "
                    "reads the whole period, and what is already held is skipped",
                    markup=False,
                )
                raise
            for source, done in zip(sources, found, strict=True):
                for result in done:
                    if isinstance(result, str):
                        failed = True
                        err_console.print(result)
                    else:
                        console.print(_stream_line(source.name, result), markup=False)
        console.print("backfill done" + (", with failures (above)" if failed else ""))
        _print_delivered(publisher)
    if failed:
        raise typer.Exit(1)


#: How far ahead of this machine's clock a backfill's --from may be before it is refused as
#: in the future.
CLOCK_LEEWAY: Final = timedelta(minutes=5)


def _stream_line(tenant: str, stream: StreamReport) -> str:
    """What one stream of a tenant read, as `sync --once` and `backfill` say it."""
    n = stream.alerts_within
    within = f" (with {n} alert{'' if n == 1 else 's'})" if n else ""
    return (
        f"{tenant}/{stream.stream}: {stream.records} read{within}, {stream.inserted} new, "
        f"{stream.updated} updated, {stream.quarantined} quarantined"
    )


#: How many tenants ``check`` checks at once (each waits on the network, not the CPU).
CHECK_THREADS = 32


@dataclass
class _TenantCheck:
    """What ``check`` found for one tenant: lines to print (``ok`` None: a warning), and the
    permissions its token carries, to record in the hub."""

    lines: list[tuple[bool | None, str]] = field(default_factory=list)
    roles: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return all(ok is not False for ok, _ in self.lines)


def _check_tenant(tenant: TenantConfig, config: Config, sync: SyncConfig) -> _TenantCheck:
    """Sign in and read the last minute's incidents, once: a failure, a 429 among them, is
    the answer at once (its Retry-After is told, never slept through)."""
    from xdrsync.connectors import probe_incidents, signing_certificate
    from xdrsync.errors import ServerBusyError, ThrottledError
    from xdrsync.graph.security import DefenderApi
    from xdrsync.logs import scrub
    from xdrsync.twoway.access import read_only_reasons

    found = _TenantCheck()
    try:
        api = DefenderApi.connect(tenant, sync)  # a secret that cannot be read fails here
    except XdrSyncError as bad:
        found.lines.append((False, f"{tenant.name}: {scrub(str(bad))}"))
        return found
    try:
        page = probe_incidents(api)
        found.lines.append(
            (
                True,
                f"{tenant.name}: signed in, incidents readable "
                f"(server time {page.server_date.isoformat(timespec='seconds')})",
            )
        )
        certificate = signing_certificate(api)
        if certificate is not None:  # signed in with it: say its end
            now = datetime.now(UTC)
            line = f"{tenant.name}: {certificate.expiry_note(now)}"
            found.lines.append((None if certificate.expires_soon(now) else True, line))
        found.roles = api.granted_roles()
        refused = read_only_reasons(tenant.name, config.writes_to(tenant), found.roles)
        if not refused:
            known = "" if found.roles else " (the token names no permissions: Graph decides)"
            found.lines.append((True, f"{tenant.name}: two-way sync on{known}"))
        found.lines.extend((None, reason) for reason in dict.fromkeys(refused.values()))
    except ThrottledError as bad:
        what = "busy" if isinstance(bad, ServerBusyError) else "throttled"
        wait = f"Graph asks to retry after {bad.retry_after:.0f} s" if bad.retry_after else ""
        text = f"{what}: {wait} ({scrub(str(bad))})" if wait else scrub(str(bad))
        found.lines.append((False, f"{tenant.name}: {text}"))
    except XdrSyncError as bad:
        found.lines.append((False, f"{tenant.name}: {scrub(str(bad))}"))
    finally:
        api.close()
    return found


@app.command("check")
def check_command(config_file: ConfigOption = None) -> None:
    """Validate the config, sign in, and make one cheap call per tenant and destination.
    Tenants are checked at once, each call tried once: a throttled, slow or unreachable
    tenant is reported (with Graph's Retry-After), never waited for; output in config order.
    Exit code 1 if any tenant or destination fails."""
    from concurrent.futures import ThreadPoolExecutor

    from rich.markup import escape

    from xdrsync.logs import configure
    from xdrsync.twoway.access import STREAM, capability_doc

    configure("error")
    with _errors():
        config = _load(config_file)
        console.print(
            f"config OK: {len(config.tenants)} tenant(s), workspace {config.workspace.path}",
            markup=False,
        )
        once = config.sync.model_copy(update={"max_attempts": 1})
        failed = 0
        granted: dict[str, frozenset[str]] = {}
        marks = {True: "[green]✓[/green]", None: "[yellow]![/yellow]"}
        with ThreadPoolExecutor(
            max_workers=min(len(config.tenants), CHECK_THREADS), thread_name_prefix="check"
        ) as pool:
            checks = [pool.submit(_check_tenant, t, config, once) for t in config.tenants]
            for tenant, pending in zip(config.tenants, checks, strict=True):
                found = pending.result()
                for ok, line in found.lines:  # a server's words in them: shown, not styled
                    if ok is False:
                        err_console.print(f"[red]✗[/red] {escape(line)}")
                    else:
                        console.print(f"{marks[ok]} {escape(line)}")
                failed += not found.ok
                if found.roles:
                    granted[tenant.tenant_id] = found.roles
        if granted:
            with _hub(config) as hub:
                for tenant_id, roles in granted.items():
                    hub.save_state(tenant_id, STREAM, capability_doc(roles, datetime.now(UTC)))
        # Each call once, as a tenant's: an unreachable destination took six tries and their
        # backoff (about 20 s) before its line.
        failed += _check_destinations(config.model_copy(update={"sync": once}))
    if failed:
        raise typer.Exit(1)


def _check_destinations(config: Config) -> int:
    """Sign in to each configured destination and make its cheap calls; how many failed."""
    from rich.markup import escape

    from xdrsync.destinations.factory import build_destination

    failed = 0
    if not config.destinations:
        return 0
    with _workspace(config, lock=False) as workspace:
        for entry in config.destinations:
            destination = build_destination(entry, config, workspace.hub)
            try:
                for line in destination.check():
                    console.print(f"[green]✓[/green] {escape(line)}")
            except XdrSyncError as bad:
                failed += 1
                err_console.print(f"[red]✗[/red] {escape(entry.name)}: {_shown(bad)}")
            finally:
                destination.close()
    return failed


@state_app.command("show")
def state_show(
    config_file: ConfigOption = None,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Also the streams of tenants no longer in the config (no lag shown)."
        ),
    ] = False,
) -> None:
    """Cursors, lag, errors and quarantine per stream of every configured tenant ("never
    synced" until a read succeeds); stored totals; destinations."""
    from xdrsync.destinations.status import destination_statuses
    from xdrsync.views import state_tables

    with _errors():
        config = _load(config_file)
        with _hub(config, existing=True) as hub:
            statuses = destination_statuses(hub, config)
            for table in state_tables(
                hub, _names(config), statuses, hide_unconfigured=not show_all
            ):
                console.print(table)
            quarantined = hub.list_quarantine(limit=5)
            if quarantined:
                console.print("Recently quarantined records:")
                for row in quarantined:
                    console.print(
                        f"  {row.at.isoformat(timespec='seconds')} {row.stream}: {row.reason}",
                        markup=False,
                    )


@app.command("query")
def query_command(
    kql: Annotated[str, typer.Argument(help="A KQL query over the workspace tables.")],
    config_file: ConfigOption = None,
    output: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
) -> None:
    """Run KQL over SecurityIncident, SecurityAlert, AlertEvidence and AlertInfo."""
    # `xdrsync query` usually runs in `cli_query.quick` without reaching this command: here
    # come the arguments and configs it leaves to typer and pydantic (their help and errors).
    from xdrsync.cli_query import run_query
    from xdrsync.tables.output import FORMATS

    if output not in FORMATS:
        raise _fail(f"--format must be {', '.join(FORMATS[:-1])} or {FORMATS[-1]}")
    with _errors():
        config = _load(config_file)
        run_query(config.workspace.path, config.query, kql, output)


@state_app.command("clear-quarantine")
def state_clear_quarantine(
    config_file: ConfigOption = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (name or id).")] = None,
    stream: Annotated[
        str | None, typer.Option(help="Only this stream: incidents or alerts.")
    ] = None,
) -> None:
    """Forget quarantined records once their cause is dealt with (after an upgrade that reads
    them, `backfill` their period first); the audit keeps how many."""
    with _errors():
        config = _load(config_file)
        tenant_id = config.tenant(tenant).tenant_id if tenant else None
        if stream is not None and stream not in ("incidents", "alerts"):
            raise ConfigError(f"--stream is incidents or alerts, not {stream!r}")
        with _hub(config, existing=True) as hub:
            console.print(f"{hub.clear_quarantine(tenant_id, stream)} quarantined records cleared")


def _listed_status(value: str) -> str:
    """An incident status to list, in Defender's spelling: what `incidents update --status`
    takes, mapped the same way (Sentinel's ``New``, ``Active``, ``Closed`` included), and
    ``redirected``; a ``ConfigError`` for anything else (a typo must not list nothing)."""
    from xdrsync.errors import EditRefusedError
    from xdrsync.twoway.fields import SENTINEL_STATUS, SETTABLE_STATUS
    from xdrsync.twoway.fields import status as settable

    if value.strip().lower() == "redirected":
        return "redirected"
    try:
        return settable("incident", value)
    except EditRefusedError:
        known = ", ".join((*SETTABLE_STATUS["incident"], "redirected"))
        aliases = ", ".join(name.capitalize() for name in SENTINEL_STATUS["incident"])
        raise ConfigError(
            f"--status {value!r} is not an incident status: {known} (or {aliases})"
        ) from None


@incidents_app.command("list")
def incidents_list(
    config_file: ConfigOption = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant name or id.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="active, inProgress, resolved or redirected (or, as `update` takes them, "
            "New, Active, Closed)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many.")] = 25,
) -> None:
    """The incident queue, most recently updated first."""
    from xdrsync.views import incident_table

    with _errors():
        wanted = None if status is None else _listed_status(status)
        config = _load(config_file)
        tenant_id = config.tenant(tenant).tenant_id if tenant else None
        with _hub(config, existing=True) as hub:
            rows = hub.list_incidents(tenant_id, wanted, limit=limit)
            console.print(incident_table(rows, _names(config)))


def _find_in_tenants(
    config: Config,
    tenant: str | None,
    what: str,
    find: Callable[[str], T | None],
    *,
    missing: int = 1,
) -> tuple[TenantConfig, T]:
    """``find(tenant_id)`` in the tenant named; with none named, in every configured tenant:
    ids are per tenant, so an id that several tenants have is refused (naming them) rather
    than one of them picked. Exit ``missing`` if none has it: 1 for a look (``show``), 2 for
    a change, refused as a change of one tenant's missing record is (``submit``)."""
    if tenant is not None:
        chosen = config.tenant(tenant)
        found = find(chosen.tenant_id)
        if found is None:
            raise _fail(f"no {what} in tenant {chosen.name}", missing)
        return chosen, found
    hits = [(t, found) for t in config.tenants if (found := find(t.tenant_id)) is not None]
    if len(hits) > 1:
        names = ", ".join(t.name for t, _ in hits)
        raise _fail(f"{what} is in several tenants ({names}): name one with --tenant")
    if not hits:
        where = f"tenant {config.tenants[0].name}" if len(config.tenants) == 1 else "any tenant"
        raise _fail(f"no {what} in {where}", missing)
    return hits[0]


IdTenantOption = Annotated[
    str | None,
    typer.Option(help="Tenant name or id (needed when several tenants have the id)."),
]


@incidents_app.command("show")
def incidents_show(
    incident_id: Annotated[str, typer.Argument(help="Defender incident id.")],
    config_file: ConfigOption = None,
    tenant: IdTenantOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Defender's version as Graph JSON, alone on stdout (edits on their way are "
            "listed on stderr).",
        ),
    ] = False,
) -> None:
    """One incident: fields, alerts, evidence by entity, comments, history, edits. Without
    --tenant, looked for in every tenant; refused if several have the id."""
    from xdrsync.twoway.submit import current_view
    from xdrsync.views import edits_table, incident_detail, to_json

    with _errors():
        config = _load(config_file)
        with _hub(config, existing=True) as hub:
            tenant_config, incident = _find_in_tenants(
                config,
                tenant,
                f"incident {incident_id}",
                lambda tenant_id: hub.get_incident(tenant_id, incident_id),
            )
            if as_json:
                typer.echo(to_json(incident.to_graph()))
                edits = hub.edits(
                    tenant_id=tenant_config.tenant_id, entity=("incident", incident_id)
                )
                if edits:  # stdout stays JSON alone, for jq
                    err_console.print(edits_table(edits))
                return
            shown = current_view(hub, tenant_config.tenant_id, "incident", incident_id)
            for part in incident_detail(hub, incident, shown, tenant_name=tenant_config.name):
                console.print(part)


# -- two-way: edits to Defender ---------------------------------------------------------------


def _push_summary(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items()))


_DONE_WORDS = {
    "confirmed": "[green]confirmed by Defender[/green]",
    "failed": "[red]failed[/red]",
    "conflict": "[yellow]in conflict (decide with `xdrsync conflicts resolve`)[/yellow]",
    "overridden": "[yellow]not applied: Defender's change won[/yellow]",
    "pending": "pending",
}


def _queued_text(row: OutboxRow) -> str:
    """``#12 status → inProgress``: what a queued edit asks of Defender, in Defender's words,
    so that a value typed in Sentinel's (``--status Active``) shows what it became."""
    wanted = row.wanted
    if row.field == "customTags" and isinstance(wanted, dict):
        changes = [f"+{t}" for t in wanted.get("add") or ()]
        changes += [f"-{t}" for t in wanted.get("remove") or ()]
        shown = " ".join(changes)
    elif row.field == "classification" and isinstance(wanted, dict):
        shown = " / ".join(
            str(wanted.get(k) or "unknown") for k in ("classification", "determination")
        )
    elif row.field == "assignedTo":
        shown = str(wanted) if wanted else "nobody"
    elif row.field == "status":
        shown = str(wanted)
    else:  # a comment: its text is the user's own
        return f"#{row.id} {row.field}"
    return f"#{row.id} {row.field} → {shown}"


def _update(
    kind: str,
    entity_id: str,
    request: Any,
    *,
    config_file: Path | None,
    tenant: str | None,
    author: str | None,
    wait: bool,
    timeout: float,
) -> None:
    import getpass

    from rich.markup import escape

    from xdrsync.twoway import submit

    with _errors():
        config = _load(config_file)
        _require_hub(config)
        with _workspace(config, lock=False) as workspace:
            if tenant is None and len(config.tenants) > 1:
                # Found as `show` finds it: ids are per tenant, so one that several tenants
                # have is refused, naming them (it had needed --tenant whenever several
                # tenants were configured, even for an id only one of them has).
                hub = workspace.hub
                get = hub.get_incident if kind == "incident" else hub.get_alert
                tenant_config, _ = _find_in_tenants(
                    config, None, f"{kind} {entity_id}", lambda t: get(t, entity_id), missing=2
                )
            else:
                tenant_config = config.tenant(tenant) if tenant else config.tenants[0]
            target = submit.Tenant(
                tenant_config.name, tenant_config.tenant_id, config.writes_to(tenant_config)
            )
            ids = submit.submit(
                workspace.hub,
                target,
                kind,  # type: ignore[arg-type]
                entity_id,
                request,
                author=author or getpass.getuser(),
                origin="cli",
            )
            if not ids:
                console.print(
                    f"nothing to change: {kind} {entity_id} already has these values",
                    markup=False,
                )
                return
            queued = ", ".join(map(_queued_text, workspace.hub.edits(ids=ids)))
            console.print(f"queued {len(ids)} edit(s) for Defender: {queued}", markup=False)
            rows = submit.deliver(
                workspace, tenant_config.tenant_id, ids, wait=wait, timeout=timeout
            )
            if rows is None:
                console.print("the running xdrsync service pushes them to Defender")
                return
        for row in rows:
            line = f"#{row.id} {row.field}: {_DONE_WORDS.get(row.state, row.state)}"
            if row.state != "confirmed" and row.outcome:
                line += f" — {escape(row.outcome)}"  # Defender's words: shown, not styled
            console.print(line)
        if any(r.state in ("failed", "overridden", "conflict") for r in rows):
            raise typer.Exit(1)
        if wait and any(r.state == "pending" for r in rows):
            err_console.print(f"still pending after {timeout:g}s; it will be retried")
            raise typer.Exit(1)


AuthorOption = Annotated[
    str | None,
    typer.Option("--as", help="Who makes the edit (default: the account running xdrsync)."),
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Wait for Defender's answer; non-zero exit if refused.")
]
TimeoutOption = Annotated[float, typer.Option(min=0, help="How long --wait waits, in seconds.")]
TenantOption = Annotated[str | None, typer.Option(help="Only this tenant (name or id).")]


@incidents_app.command("update")
def incidents_update(
    incident_id: Annotated[str, typer.Argument(help="Defender incident id.")],
    status: Annotated[
        str | None, typer.Option(help="active, inProgress or resolved (or New, Active, Closed).")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Assign to an address; '' unassigns.")] = None,
    classification: Annotated[
        str | None,
        typer.Option(help="truePositive, falsePositive or informationalExpectedActivity."),
    ] = None,
    determination: Annotated[str | None, typer.Option(help="e.g. malware, phishing.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Add a tag.")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", help="Remove a tag.")] = None,
    comment: Annotated[str | None, typer.Option(help="Add a comment.")] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = 60.0,
    tenant: IdTenantOption = None,
    author: AuthorOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Change an incident in the workspace and in Defender (through the outbox)."""
    from xdrsync.twoway.edits import EditRequest

    request = EditRequest(
        status=status,
        owner=owner,
        classification=classification,
        determination=determination,
        add_tags=tuple(tag or ()),
        remove_tags=tuple(untag or ()),
        comment=comment,
    )
    _update(
        "incident",
        incident_id,
        request,
        config_file=config_file,
        tenant=tenant,
        author=author,
        wait=wait,
        timeout=timeout,
    )


@alerts_app.command("update")
def alerts_update(
    alert_id: Annotated[str, typer.Argument(help="Defender alert id (alerts_v2).")],
    status: Annotated[str | None, typer.Option(help="new, inProgress or resolved.")] = None,
    owner: Annotated[str | None, typer.Option(help="Assign to an address; '' unassigns.")] = None,
    classification: Annotated[str | None, typer.Option(help="As for incidents.")] = None,
    determination: Annotated[str | None, typer.Option(help="As for incidents.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Refused: alerts have no tags.")
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Add a comment.")] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = 60.0,
    tenant: IdTenantOption = None,
    author: AuthorOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Change an alert in the workspace and in Defender (through the outbox)."""
    from xdrsync.twoway.edits import EditRequest

    request = EditRequest(
        status=status,
        owner=owner,
        classification=classification,
        determination=determination,
        add_tags=tuple(tag or ()),
        comment=comment,
    )
    _update(
        "alert",
        alert_id,
        request,
        config_file=config_file,
        tenant=tenant,
        author=author,
        wait=wait,
        timeout=timeout,
    )


@alerts_app.command("show")
def alerts_show(
    alert_id: Annotated[str, typer.Argument(help="Defender alert id.")],
    tenant: IdTenantOption = None,
    config_file: ConfigOption = None,
) -> None:
    """One alert as the workspace has it: Graph JSON, edits on their way applied, alone on
    stdout (for jq); the edits themselves are listed on stderr. Without --tenant, looked for
    in every tenant; refused if several have the id."""
    from xdrsync.twoway.submit import current_view
    from xdrsync.views import edits_table, to_json

    with _errors():
        config = _load(config_file)
        with _hub(config, existing=True) as hub:
            tenant_config, shown = _find_in_tenants(
                config,
                tenant,
                f"alert {alert_id}",
                lambda tenant_id: current_view(hub, tenant_id, "alert", alert_id),
            )
            typer.echo(to_json(shown))
            edits = hub.edits(tenant_id=tenant_config.tenant_id, entity=("alert", alert_id))
            if edits:
                err_console.print(edits_table(edits))


@destinations_app.command("status")
def destinations_status(config_file: ConfigOption = None) -> None:
    """Per destination: position, how far behind, last delivery, last error, dead letters."""
    from xdrsync.destinations.status import destination_statuses
    from xdrsync.views import destinations_view

    with _errors():
        config = _load(config_file)
        with _hub(config, existing=True) as hub:
            for part in destinations_view(destination_statuses(hub, config)):
                console.print(part)


@destinations_app.command("dead-letters")
def destinations_dead_letters(
    name: Annotated[str | None, typer.Argument(help="Only this destination.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    config_file: ConfigOption = None,
) -> None:
    """The changes a destination rejected for good, with its reasons."""
    from xdrsync.views import dead_letters_table

    with _errors():
        config = _load(config_file)
        if name is not None:
            name = _destination_name(config, name)
        with _hub(config, existing=True) as hub:
            console.print(dead_letters_table(hub.list_dead_letters(name, limit), _names(config)))


def _destination_name(config: Config, name: str) -> str:
    """A configured destination's name, or one of the workspace's own (log tables, queue
    index); a ``ConfigError`` naming an unknown one. In any case, as a configured one is
    taken (``Config.destination``): ``TABLES`` was "no destination named 'TABLES'"."""
    for own in (TABLES_DESTINATION, QUEUE_DESTINATION):
        if name.lower() == own:
            return own
    return config.destination(name).name


@destinations_app.command("clear-dead-letters")
def destinations_clear_dead_letters(
    name: Annotated[str, typer.Argument(help="The destination.")],
    config_file: ConfigOption = None,
) -> None:
    """Forget a destination's dead letters once their cause is dealt with (a replay after an
    upgrade, or records that will never go); the audit keeps how many."""
    with _errors():
        config = _load(config_file)
        name = _destination_name(config, name)
        with _hub(config, existing=True) as hub:
            console.print(
                f"{name}: {hub.clear_dead_letters(name)} dead letters cleared", markup=False
            )


@destinations_app.command("replay")
def destinations_replay(
    name: Annotated[
        str,
        typer.Argument(
            help=f"The destination ({TABLES_DESTINATION!r}, {QUEUE_DESTINATION!r} or a name)."
        ),
    ],
    from_seq: Annotated[
        int, typer.Option("--from-seq", min=1, help="The first change number to send again.")
    ],
    config_file: ConfigOption = None,
) -> None:
    """Send every change from --from-seq on to one destination again (the service must be
    stopped: the workspace lock is taken). The log tables drop those rows and rewrite them.
    A replay only goes back: one past what the destination has delivered is refused (it
    would skip the changes between)."""
    with _errors():
        config = _load(config_file)
        name = _destination_name(config, name)
        _require_hub(config)
        with _workspace(config, lock=True) as workspace:
            head = workspace.hub.max_seq()
            if from_seq > head + 1:
                raise _fail(f"--from-seq {from_seq} is past the last change ({head})")
            runner = workspace.fanout().runner(name)
            # The replay sets the destination's position to --from-seq - 1, forward too: from
            # past its position, the changes between would never be delivered.
            position = runner.held()
            if from_seq > position + 1:
                skipped = position + 1, from_seq - 1
                raise _fail(
                    f"{name} has delivered up to change {position}: a replay from {from_seq} "
                    f"would skip {'..'.join(map(str, dict.fromkeys(skipped)))}, never delivered; "
                    f"replay from {position + 1} or earlier"
                )
            if from_seq > head and position <= head:
                console.print(f"{name}: nothing to replay, no change after {head}", markup=False)
                return
            runner.replay_from(from_seq)
        if from_seq > head:  # it held changes past the hub's last (a hub restored from a copy)
            console.print(f"{name}: what it held past change {head} is dropped", markup=False)
            return
        console.print(
            f"{name}: changes {from_seq}..{head} will be delivered again "
            "(now by `xdrsync sync --once`, or by the running service once started)"
        )


@conflicts_app.command("list")
def conflicts_list(tenant: TenantOption = None, config_file: ConfigOption = None) -> None:
    """Edits of fields with policy ``manual`` that Defender changed too."""
    from xdrsync.views import conflicts_table

    with _errors():
        config = _load(config_file)
        tenant_id = config.tenant(tenant).tenant_id if tenant else None
        with _hub(config, existing=True) as hub:
            rows = hub.edits(tenant_id=tenant_id, states=["conflict"])
            console.print(conflicts_table(rows, _names(config)))


@conflicts_app.command("resolve")
def conflicts_resolve(
    edit_id: Annotated[int, typer.Argument(help="The edit's number (#) from `conflicts list`.")],
    take: Annotated[str, typer.Option(help="workspace or defender.")],
    config_file: ConfigOption = None,
) -> None:
    """Keep Defender's value, or send the workspace's edit over it."""
    from xdrsync.twoway.submit import resolve

    with _errors():
        config = _load(config_file)
        with _hub(config, existing=True) as hub:
            row = resolve(hub, edit_id, take)
        word = "goes to Defender" if row.state == "pending" else "dropped: Defender's value kept"
        # The field's conflict is settled whole: its latest edit is the one that goes.
        latest = (
            f" (the field's latest edit; #{edit_id} replaced by it)" if row.id != edit_id else ""
        )
        console.print(f"#{row.id} {row.field}: {word}{latest}", markup=False)


@app.command("demo")
def demo_command(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    workspace_dir: Annotated[
        Path,
        typer.Option(
            "--workspace",
            help="Demo workspace: a new or empty folder, or one an earlier demo made (emptied "
            "first); any other folder is refused.",
        ),
    ] = Path("./xdrsync-data/demo"),
    port: Annotated[int, typer.Option(help="Emulator port (0: any free port).")] = 0,
    console_port: Annotated[
        int, typer.Option(help="Console port (0: any free port; one in use falls back to any).")
    ] = 8080,
) -> None:
    """Emulated Defender with live activity, synced into a workspace with its console, shown
    live."""
    from xdrsync.demo import run_demo

    with _errors():
        run_demo(
            workspace_dir, duration=duration, port=port, console=console, console_port=console_port
        )


from xdrsync.cli_init import init_command  # noqa: E402 - registered beside the others

app.command("init")(init_command)


# -- console users and tokens -----------------------------------------------------------------


def _read_password(password_file: Path | None) -> str:
    import sys

    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as failure:
            raise _fail(f"cannot read {password_file}: {failure.strerror}") from None
        return text.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise _fail("no terminal to ask for the password: use --password-file FILE")
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return str(password)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user's login name.")],
    role: Annotated[str, typer.Option(help="reader, responder or admin.")] = "reader",
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", help="Scope to this tenant (repeat); none: every tenant."),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="Read the password from this file (scripts)."),
    ] = None,
    email: Annotated[
        str | None, typer.Option(help="Their address: what 'assign to me' assigns to.")
    ] = None,
    config_file: ConfigOption = None,
) -> None:
    """Add a console user (or change an existing one's password, role and tenants)."""
    from xdrsync.console.accounts import ROLES, Accounts, check_password, describe, grants

    with _errors():
        config = _load(config_file)
        if role not in ROLES:
            raise _fail(f"--role is one of {', '.join(ROLES)}, not {role!r}")
        # A name or id, any case, kept as the tenant's id: a later tenant of that name is
        # not this user's.
        scopes = grants(config, tenant or ())
        password = _read_password(password_file)
        check_password(password)
        with _hub(config) as hub:
            accounts = Accounts(hub)
            _settle_scopes(accounts, config)
            user = accounts.add_user(name, password, role, scopes, email)
        scope = ", ".join(describe(user.scope, config.tenants)) or "every tenant"
        console.print(f"user {user.name}: {user.role}, {scope}", markup=False)


@users_app.command("list")
def users_list(config_file: ConfigOption = None) -> None:
    """The console's users, their roles and tenants (by their current names)."""
    from xdrsync.console.accounts import Accounts, describe
    from xdrsync.views import Table  # names shown as given, never read as markup

    with _errors():
        config = _load(config_file)
        with _hub(config, existing=True) as hub:
            accounts = Accounts(hub)
            _settle_scopes(accounts, config)
            users = accounts.users()
        table = Table(title=f"{len(users)} console users", title_justify="left")
        for column in ("user", "role", "tenants"):
            table.add_column(column)
        for user in users:
            shown = ", ".join(describe(user.scope, config.tenants)) or "every tenant"
            table.add_row(user.name, user.role, shown)
        console.print(table)


def _settle_scopes(accounts: Accounts, config: Config) -> None:
    """Resolve, once, the tenant names a hub kept as scopes before migration 0014 (the
    console does it too, at its start); a name the config no longer has is said here."""
    for warning in accounts.settle_scopes(config.tenants):
        err_console.print(f"warning: {warning}", markup=False)


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
    config_file: ConfigOption = None,
) -> None:
    """Remove a console user, ending their sessions and revoking their tokens."""
    from xdrsync.console.accounts import Accounts

    with _errors():
        config = _load(config_file)
        with _hub(config) as hub:
            if not Accounts(hub).remove_user(name):
                raise _fail(f"no console user {name!r}")
        console.print(f"user {name} removed", markup=False)


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="The user the token acts as.")],
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    days: Annotated[
        int | None, typer.Option(min=1, help="Expire after this many days (default never).")
    ] = None,
    config_file: ConfigOption = None,
) -> None:
    """Create a personal API token; it is printed once, on the last line."""
    from datetime import timedelta

    from xdrsync.console.accounts import Accounts

    with _errors():
        config = _load(config_file)
        with _hub(config) as hub:
            token, info = Accounts(hub).create_token(
                user, label, timedelta(days=days) if days else None
            )
        err_console.print(
            f"token {info.id} for {info.user_name} ({info.prefix}…); send it as "
            "'Authorization: Bearer TOKEN'. It is shown only now:",
            markup=False,
        )
        print(token)


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's.")] = None,
    config_file: ConfigOption = None,
) -> None:
    """Tokens (never their values): id, user, label, created, last used, state."""
    from xdrsync.console.accounts import Accounts
    from xdrsync.views import Table  # labels shown as given, never read as markup

    with _errors():
        config = _load(config_file)
        with _hub(config, existing=True) as hub:
            tokens = Accounts(hub).tokens(user)
        now = datetime.now(UTC)
        table = Table(title=f"{len(tokens)} API tokens", title_justify="left")
        for column in ("id", "user", "label", "prefix", "created", "last used", "state"):
            table.add_column(column)
        for t in tokens:
            table.add_row(
                str(t.id),
                t.user_name,
                t.label,
                t.prefix + "…",
                t.created_at.isoformat(timespec="seconds"),
                t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never",
                t.state(now),
            )
        console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (tokens list).")],
    config_file: ConfigOption = None,
) -> None:
    """Revoke a token: it stops working at once."""
    from xdrsync.console.accounts import Accounts

    with _errors():
        config = _load(config_file)
        with _hub(config) as hub:
            if not Accounts(hub).revoke_token(token_id):
                raise _fail(f"no active token {token_id}")
        console.print(f"token {token_id} revoked")
