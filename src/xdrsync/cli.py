"""The ``xdrsync`` command line: parses arguments and calls into the package; no logic here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from xdrsync import __version__

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Lossless, multi-tenant, two-way sync of Microsoft Defender XDR incidents.",
)
emulate_app = typer.Typer(no_args_is_help=True, help="Local emulators of the services xdrsync talks to.")
app.add_typer(emulate_app, name="emulate")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"xdrsync {__version__}")
        raise typer.Exit()


@emulate_app.command("defender")
def emulate_defender(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8650,
    seed: Annotated[int, typer.Option(help="Seed of the generated tenants and stories.")] = 7,
    incidents: Annotated[int, typer.Option(help="Incidents per tenant at start.")] = 200,
    tenants: Annotated[int, typer.Option(help="How many tenants to serve.")] = 1,
    load: Annotated[
        Path | None, typer.Option(help="Serve Graph-shaped incidents from this JSON file, as given.")
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
) -> None:
    """Serve the Microsoft Graph security API v1.0 (Defender XDR) locally."""
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
        )
    except ValueError as bad:
        raise _fail(str(bad)) from None
    base = f"http://{host}:{port}"
    console.print(f"Defender XDR emulator on [bold]{base}[/bold]  (Graph API under {base}/v1.0/security)")
    for tenant in settings.tenants:
        console.print(
            f"  tenant {tenant.name}: tenant_id={tenant.tenant_id} client_id={tenant.client_id} "
            f"client_secret={tenant.client_secret}"
        )
    first = settings.tenants[0]
    console.print(
        "Try:\n"
        f"  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={first.client_id} "
        f"-d client_secret={first.client_secret} -d scope=https://graph.microsoft.com/.default "
        f"{base}/{first.tenant_id}/oauth2/v2.0/token | python3 -c 'import json,sys; "
        "print(json.load(sys.stdin)[\"access_token\"])')\n"
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1.0/security/incidents?$top=5'"
    )
    try:
        serve_forever(settings, host=host, port=port)
    except OSError as bad:
        raise _fail(f"cannot serve on {base}: {bad}") from None


def main() -> None:
    app()
