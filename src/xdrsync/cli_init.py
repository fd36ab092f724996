"""``xdrsync init``: connect a Defender tenant. Shows the app registration steps and Graph
permissions, asks for what the config needs (each answer also an option, for scripts), writes
``xdrsync.toml`` (the secret by reference only), and checks what works.

Registered in ``cli.py`` as ``app.command("init")(init_command)``; importing this module loads
only typer and rich, the rest is loaded when the command runs.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from xdrsync.terminal import print_error

if TYPE_CHECKING:
    from xdrsync.config import SyncConfig, TenantConfig
    from xdrsync.connectors import ConnectorCheck

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_WORKSPACE = "./xdrsync-data"


def _interactive() -> bool:
    """Whether answers can be asked for: stdin is a terminal (never wait on a pipe or /dev/null)."""
    stdin = sys.stdin
    try:
        return stdin is not None and stdin.isatty()
    except (ValueError, OSError):  # closed or detached
        return False


def _fail(message: str, code: int = 2) -> typer.Exit:
    print_error(message)  # brackets in a path or a server's words: shown, not styled
    return typer.Exit(code)


def _ask_credential() -> tuple[str | None, str | None]:
    """(secret reference, certificate path) from one prompt. Anything that is neither a
    reference nor a readable PEM is refused without being echoed: it may be a pasted secret."""
    from xdrsync.connectors import check_secret_reference

    while True:
        answer = str(
            typer.prompt(
                "Client secret reference (env:NAME or file:PATH), or the certificate's PEM path"
            )
        ).strip()
        if answer.startswith(("env:", "file:")):
            try:
                return check_secret_reference(answer), None
            except ValueError as bad:
                err_console.print(f"[yellow]![/yellow] {escape(str(bad))}")
                continue
        if answer and Path(answer).expanduser().is_file():
            return None, answer
        err_console.print(
            "[yellow]![/yellow] that is neither env:NAME, file:PATH nor an existing file; the "
            "secret itself is never written to the config (put it in a variable or a file)"
        )


def _needs_password(certificate: Path) -> bool:
    """Whether the certificate file is opened with a password: an encrypted PEM key
    (``ENCRYPTED PRIVATE KEY``, or OpenSSL's older ``Proc-Type: 4,ENCRYPTED``) or a PKCS#12
    file, which usually has one. False when it cannot be read here (the check says why)."""
    path = Path(certificate).expanduser()
    if path.suffix.lower() in (".pfx", ".p12"):
        return True
    try:
        return b"ENCRYPTED" in path.read_bytes()
    except OSError:
        return False


def _ask_password_reference(certificate: Path) -> str | None:
    """The certificate password's reference (None: a .pfx without one). Anything that is not
    a reference is refused without being echoed: it may be the password itself."""
    from xdrsync.connectors import check_secret_reference

    pkcs12 = Path(certificate).suffix.lower() in (".pfx", ".p12")
    text = "Certificate password reference (env:NAME or file:PATH)" + (
        "; empty if the file has none" if pkcs12 else ""
    )
    while True:
        answer = str(typer.prompt(text, default="", show_default=False)).strip()
        if not answer and pkcs12:
            return None
        try:
            return check_secret_reference(answer, "the certificate password")
        except ValueError as bad:
            err_console.print(f"[yellow]![/yellow] {escape(str(bad))}")


#: Valid values of the other settings, so that one answer can be checked on its own.
_CHECKED_WITH: dict[str, str] = {
    "name": "tenant",
    "tenant_id": "00000000-0000-0000-0000-000000000000",
    "client_id": "00000000-0000-0000-0000-000000000000",
}


def _refusal(setting: str, answer: str) -> str | None:
    """Why the config would refuse ``answer`` for this tenant setting (None: it takes it)."""
    from pydantic import SecretStr, ValidationError

    from xdrsync.config import TenantConfig, describe_validation_error

    secret = SecretStr("checked-by-reference")  # nothing is resolved here
    candidate = {**_CHECKED_WITH, "client_secret": secret, setting: answer.strip()}
    try:
        TenantConfig.model_validate(candidate)
    except ValidationError as invalid:
        return describe_validation_error(invalid, candidate).removeprefix(f"{setting}: ")
    return None


def _ask(text: str, setting: str, default: str | None = None) -> str:
    """An answer the config takes for ``setting``, asked again until it is one."""
    while True:
        answer = str(typer.prompt(text, default=default))
        refused = _refusal(setting, answer)
        if refused is None:
            return answer
        err_console.print(f"[yellow]![/yellow] {escape(refused)}")


def _for_config(path: str, config_file: Path) -> str:
    """A path typed by the user, which a shell takes from the current folder, as the config
    reads it (from its own folder): absolute, unless it names the same file either way or
    no file here (then it is left for the config's folder, as given)."""
    given = Path(path.strip()).expanduser()
    if given.is_absolute():
        return str(given)
    here = Path(os.path.abspath(given))
    if not here.exists():
        return path.strip()
    beside = config_file.resolve().parent / given
    if beside.exists() and beside.resolve() == here.resolve():
        return path.strip()
    return str(here)


def _reference_for_config(reference: str | None, config_file: Path) -> str | None:
    """A secret's reference as the config reads it: a ``file:`` one's path by ``_for_config``,
    any other as given."""
    if reference is None or not reference.strip().startswith("file:"):
        return reference
    return "file:" + _for_config(reference.strip()[5:], config_file)


def _print_steps() -> None:
    from xdrsync.connectors import setup_steps

    console.print("[bold]Connect a Microsoft Defender XDR tenant[/bold]")
    for number, step in enumerate(setup_steps(two_way=True), start=1):
        console.print(f"{number}. [bold]{step.title}[/bold]: {step.detail}")
        for item in step.items:
            console.print(f"     - {item}")
    console.print(
        "Read-only sync needs the two Read.All permissions; two-way sync (status, owner, "
        "classification, tags, comments) the two ReadWrite.All ones.\n"
    )


def _existing(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as problem:
        raise _fail(
            f"{file}: cannot read: {getattr(problem, 'strerror', None) or problem}"
        ) from None
    except tomllib.TOMLDecodeError as problem:
        raise _fail(f"{file}: invalid TOML: {problem}") from None


def _write(file: Path, text: str) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_name(f".{file.name}.init-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        if file.exists():
            temporary.chmod(file.stat().st_mode & 0o777)
        os.replace(temporary, file)
    except OSError as problem:
        temporary.unlink(missing_ok=True)
        raise _fail(f"cannot write {file}: {problem.strerror or problem}") from None


def _load_tenant(file: Path, data: dict[str, Any], name: str) -> tuple[TenantConfig, SyncConfig]:
    """The new tenant as the config loader reads it (its secret resolved), and ``[sync]``;
    other tenants' secrets are not touched. ``ValueError`` with one line if it cannot be."""
    from pydantic import ValidationError

    from xdrsync.config import SyncConfig, TenantConfig, describe_validation_error

    entries = [t for t in data.get("tenants", ()) if isinstance(t, dict) and t.get("name") == name]
    context = {"base_dir": file.resolve().parent, "from_file": True}
    try:
        tenant = TenantConfig.model_validate(entries[-1], context=context)
        sync = SyncConfig.model_validate(data.get("sync", {}), context=context)
    except ValidationError as invalid:
        raise ValueError(describe_validation_error(invalid, {"tenants": entries})) from None
    return tenant, sync


def _writes(data: dict[str, Any], tenant: TenantConfig) -> bool:
    """Whether the written config sends this tenant's edits to Defender (``Config.writes_to``):
    ``[two_way] enabled = false`` wins over the tenant's own ``two_way``."""
    section = data.get("two_way")
    enabled = section.get("enabled", True) if isinstance(section, dict) else True
    return enabled is not False and tenant.two_way is not False


def _mark(ok: bool | None) -> str:
    return {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]?[/yellow]"}[ok]


def print_check(result: ConnectorCheck) -> None:
    """What works and what is missing, as a table, then what to do about it in plain words."""
    from rich.table import Table

    table = Table(title=f"Tenant {result.tenant}", title_justify="left")
    for column in ("", "what", "result"):
        table.add_column(column, overflow="fold")
    table.add_row(
        _mark(result.token_ok), "sign-in (access token)", escape(result.token_error or "signed in")
    )
    for permission in result.permissions:
        need = "needed" if permission.needed else "not needed (read-only)"
        shown = {
            "granted": "granted",
            "implied": "included in the ReadWrite.All permission",
            "missing": "MISSING",
            "unknown": "unknown (the token does not say)",
        }[permission.state]
        mark = _mark(None if permission.state == "unknown" else permission.ok)
        if not permission.needed and not permission.ok:
            mark = "[dim]-[/dim]"
        table.add_row(mark, f"{permission.name} ({permission.purpose}, {need})", shown)
    for label, call in (("read incidents", result.incidents), ("read alerts_v2", result.alerts)):
        if call.state == "ok":
            when = call.server_time.isoformat(timespec="seconds") if call.server_time else ""
            table.add_row(_mark(True), label, f"ok (server time {when})")
        else:
            table.add_row(
                _mark(None if call.state == "skipped" else False), label, escape(call.error or "")
            )
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]![/yellow] {escape(note)}")
    if result.missing:
        console.print(
            f"[yellow]![/yellow] Missing permission(s): {', '.join(result.missing)}. Add them "
            "(Microsoft Graph → Application permissions), grant admin consent, then run "
            "`xdrsync check`."
        )
        if result.two_way and all(p.ok for p in result.permissions if p.purpose == "read"):
            console.print(
                f"  Until then tenant {result.tenant} syncs read-only: workspace edits are "
                "not sent to Defender."
            )
    elif result.ok:
        console.print(f"[green]✓[/green] tenant {result.tenant} is connected; everything works.")


def init_command(
    workspace: Annotated[
        str | None,
        typer.Option(help=f"Workspace folder (default {DEFAULT_WORKSPACE}, beside the config)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A short name for the tenant, e.g. contoso.")
    ] = None,
    tenant_id: Annotated[
        str | None, typer.Option("--tenant-id", help="Directory (tenant) ID.")
    ] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Application (client) ID.")
    ] = None,
    secret_ref: Annotated[
        str | None,
        typer.Option("--secret-ref", help="The client secret by reference: env:NAME or file:PATH."),
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option(
            "--certificate", help="PEM with the private key and certificate (instead of a secret)."
        ),
    ] = None,
    certificate_password_ref: Annotated[
        str | None,
        typer.Option(
            "--certificate-password-ref",
            help="The certificate's password by reference, env:NAME or file:PATH (an "
            "encrypted PEM key or a .pfx).",
        ),
    ] = None,
    two_way: Annotated[
        bool | None,
        typer.Option(
            "--two-way/--read-only",
            help="Write workspace edits back to Defender (default: as [two_way] enabled says).",
            show_default=False,
        ),
    ] = None,
    graph_url: Annotated[
        str | None,
        typer.Option("--graph-url", help="Graph service root (default Microsoft's)."),
    ] = None,
    authority_url: Annotated[
        str | None,
        typer.Option("--authority-url", help="Entra ID sign-in root (default Microsoft's)."),
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option(
            "--proxy",
            help="Outbound proxy, http://[USER@]host:port (default: the environment's, "
            "HTTPS_PROXY).",
        ),
    ] = None,
    proxy_password_ref: Annotated[
        str | None,
        typer.Option(
            "--proxy-password-ref",
            help="The proxy user's password by reference: env:NAME or file:PATH.",
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="The file to write (default ./xdrsync.toml or $XDRSYNC_CONFIG)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
    add_tenant: Annotated[
        bool, typer.Option("--add-tenant", help="Add the tenant to an existing config.")
    ] = False,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Write the config without signing in.")
    ] = False,
) -> None:
    """Connect a Defender tenant: the app registration steps, then xdrsync.toml, then a check
    of sign-in, permissions and one read of incidents and alerts."""
    from xdrsync.config import AUTHORITY_URL, GRAPH_URL, config_path
    from xdrsync.connectors import check_tenant, render_tenant_toml
    from xdrsync.errors import ConfigError
    from xdrsync.logs import configure, register_secrets, scrub

    configure("error")
    file = config_path(config_file)
    if force and add_tenant:
        raise _fail("--force replaces the config and --add-tenant extends it: use one")
    exists = file.exists()
    if exists and not (force or add_tenant):
        raise _fail(
            f"{file} already exists: pass --add-tenant to add this tenant to it, or --force "
            "to replace it"
        )
    if add_tenant and not exists:
        raise _fail(f"{file} does not exist: run init without --add-tenant to create it")
    if add_tenant and workspace is not None:
        raise _fail(f"--add-tenant keeps the workspace of {file}: leave out --workspace")
    if secret_ref is not None and certificate is not None:
        raise _fail("give --secret-ref or --certificate, not both")
    if certificate_password_ref is not None and secret_ref is not None:
        raise _fail("--certificate-password-ref goes with --certificate, not --secret-ref")
    current = _existing(file) if add_tenant else {}

    interactive = _interactive()
    if not interactive:
        missing = [
            option
            for option, value in (
                ("--name", name),
                ("--tenant-id", tenant_id),
                ("--client-id", client_id),
                ("--secret-ref or --certificate", secret_ref or certificate),
            )
            if value is None
        ]
        if missing:
            raise _fail(
                "no terminal to ask on (stdin is not interactive): pass " + ", ".join(missing)
            )

    _print_steps()
    if interactive:
        if workspace is None and not add_tenant:
            workspace = str(typer.prompt("Workspace folder", default=DEFAULT_WORKSPACE))
        if name is None:
            name = _ask("Tenant name (short, e.g. contoso)", "name")
        if tenant_id is None:
            tenant_id = _ask("Directory (tenant) ID", "tenant_id")
        if client_id is None:
            client_id = _ask("Application (client) ID", "client_id")
        if secret_ref is None and certificate is None:
            secret_ref, cert_answer = _ask_credential()
            certificate = Path(cert_answer) if cert_answer is not None else None
        if (
            certificate is not None
            and certificate_password_ref is None
            and _needs_password(certificate)
        ):
            certificate_password_ref = _ask_password_reference(certificate)
        if two_way is None:
            two_way = bool(
                typer.confirm("Two-way sync (send workspace edits to Defender)?", default=True)
            )
        if graph_url is None:
            graph_url = _ask("Graph URL", "graph_url", GRAPH_URL)
        if authority_url is None:
            authority_url = _ask("Authority (sign-in) URL", "authority_url", AUTHORITY_URL)
    assert name is not None and tenant_id is not None and client_id is not None
    # Paths typed here are the current folder's; the config takes its own folder's.
    if workspace is not None and workspace.strip():
        workspace = _for_config(workspace, file)
    secret_ref = _reference_for_config(secret_ref, file)
    if certificate is not None and str(certificate).strip():
        certificate = Path(_for_config(str(certificate), file))
    certificate_password_ref = _reference_for_config(certificate_password_ref, file)
    proxy_password_ref = _reference_for_config(proxy_password_ref, file)

    try:
        block = render_tenant_toml(
            name,
            tenant_id,
            client_id,
            secret_ref=secret_ref,
            certificate_path=certificate,
            certificate_password_ref=certificate_password_ref,
            graph_url=graph_url or GRAPH_URL,
            authority_url=authority_url or AUTHORITY_URL,
            two_way=two_way,  # written only when asked: None follows [two_way] enabled
            proxy=proxy,
            proxy_password_ref=proxy_password_ref,
        )
    except ValueError as bad:
        raise _fail(str(bad)) from None
    name = name.strip()

    if add_tenant:
        for entry in current.get("tenants", ()):
            if not isinstance(entry, dict):
                continue
            if str(entry.get("name", "")).lower() == name.lower():
                raise _fail(f"{file} already has a tenant named {name!r}")
            if str(entry.get("tenant_id", "")).lower() == tenant_id.strip().lower():
                raise _fail(f"{file} already has tenant {tenant_id.strip()} (as {entry['name']!r})")
        text = file.read_text(encoding="utf-8")
        text = text + ("" if text.endswith("\n") or not text else "\n") + "\n" + block
    else:
        from xdrsync.connectors import toml_string

        text = (
            "# Written by `xdrsync init`; see docs/configuration.md for every setting.\n"
            "# Secrets are never written here: client_secret, certificate_password and\n"
            "# proxy_password are env:NAME or file:PATH.\n\n"
            "[workspace]\n"
            f"path = {toml_string(workspace or DEFAULT_WORKSPACE)}\n\n" + block
        )
    try:
        written = tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:  # e.g. tenants written inline in the old file
        raise _fail(f"{file}: adding the tenant would not be valid TOML ({problem})") from None
    _write(file, text)
    console.print(f"[green]✓[/green] wrote {escape(str(file))} (tenant {name})")

    if no_check:
        console.print("check skipped (--no-check): run `xdrsync check` when ready")
        return
    try:
        tenant, sync = _load_tenant(file, written, name)
    except ValueError as bad:
        err_console.print(
            f"[red]✗[/red] cannot check tenant {name}: {escape(scrub(str(bad)))}; fix it, then run "
            "`xdrsync check`"
        )
        raise typer.Exit(1) from None
    for secret in (tenant.client_secret, tenant.certificate_password, tenant.proxy_password):
        if secret is not None:
            try:
                register_secrets([secret.get_secret_value()])
            except ConfigError:  # unreadable now: the check says so
                continue
    console.print(f"Checking tenant {name}…")
    result = check_tenant(tenant, sync, two_way=_writes(written, tenant))
    print_check(result)
    # A missing permission is reported, not failed: the config is right and consent can come
    # later. A sign-in that fails, or a read that fails for another reason, is an error.
    broken = [
        c for c in (result.incidents, result.alerts) if c.state == "error" and not c.forbidden
    ]
    if not result.token_ok or broken:
        raise typer.Exit(1)


__all__ = ["init_command", "print_check"]
