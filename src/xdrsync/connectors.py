"""Connecting a Defender tenant, as Sentinel's Defender connector page walks through it: the
app registration steps and Graph permissions (as data, for ``xdrsync init`` and the console),
a check of what works (``check_tenant``: sign-in, each permission, one cheap read of incidents
and of alerts_v2), and the ``[[tenants]]`` block to add to the config, its secret by reference.

Importing this module loads neither msal nor the HTTP stack; ``check_tenant`` does, when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import SecretStr, ValidationError

from xdrsync.config import (
    AUTHORITY_URL,
    GRAPH_URL,
    SyncConfig,
    TenantConfig,
    describe_validation_error,
)
from xdrsync.errors import XdrSyncError
from xdrsync.graph.permissions import (
    ALERT_READ,
    ALERT_READ_WRITE,
    INCIDENT_READ,
    INCIDENT_READ_WRITE,
)

if TYPE_CHECKING:
    from xdrsync.graph.auth import CertificateCredential
    from xdrsync.graph.security import DefenderApi, ListPage
    from xdrsync.sync.listing import PageQuery

# -- what to do in Entra ID, as data --------------------------------------------------------

Purpose = Literal["read", "two-way"]


@dataclass(frozen=True, slots=True)
class Permission:
    """A Microsoft Graph application permission xdrsync asks for."""

    name: str
    purpose: Purpose
    why: str
    # A permission that also grants this one (Graph's ReadWrite.All includes Read.All).
    implied_by: str | None = None


PERMISSIONS: Final[tuple[Permission, ...]] = (
    Permission(INCIDENT_READ, "read", "list and read incidents", implied_by=INCIDENT_READ_WRITE),
    Permission(ALERT_READ, "read", "list and read alerts (alerts_v2)", implied_by=ALERT_READ_WRITE),
    Permission(
        INCIDENT_READ_WRITE,
        "two-way",
        "update incidents (status, owner, classification, tags) and comment on them",
    ),
    Permission(
        ALERT_READ_WRITE,
        "two-way",
        "update alerts (status, owner, classification) and comment on them",
    ),
)


def required_permissions(two_way: bool) -> tuple[Permission, ...]:
    """The permissions a tenant needs: the Read.All pair, and the ReadWrite.All pair too for
    two-way sync."""
    return tuple(p for p in PERMISSIONS if two_way or p.purpose == "read")


@dataclass(frozen=True, slots=True)
class SetupStep:
    title: str
    detail: str
    items: tuple[str, ...] = ()

    def __str__(self) -> str:
        """One line: ``title: detail item; item``."""
        return f"{self.title}: {self.detail}" + (f" {'; '.join(self.items)}" if self.items else "")


def setup_steps(two_way: bool = True) -> tuple[SetupStep, ...]:
    """The app registration steps in the Entra admin center (docs/operations.md §1-2)."""
    permissions = tuple(f"{p.name}: {p.why}" for p in required_permissions(two_way))
    if not two_way:
        permissions += (
            f"(for two-way sync later: {INCIDENT_READ_WRITE} and {ALERT_READ_WRITE}; "
            "without them the tenant stays read-only)",
        )
    return (
        SetupStep(
            "Register an application",
            "Entra admin center → App registrations → New registration: name it e.g. "
            "xdrsync; single tenant; no redirect URI.",
        ),
        SetupStep(
            "Add the Graph permissions",
            "API permissions → Add a permission → Microsoft Graph → Application permissions:",
            permissions,
        ),
        SetupStep(
            "Grant admin consent",
            "API permissions → Grant admin consent for the tenant (a Global or Privileged Role "
            "Administrator); the permissions are not in effect before.",
        ),
        SetupStep(
            "Create a credential",
            "Certificates & secrets: upload a certificate (recommended; xdrsync reads a PEM "
            "holding the private key and the certificate) or create a client secret and keep "
            "its value in an environment variable or a file only the service user can read.",
        ),
        SetupStep(
            "Note the ids",
            "Overview: the Directory (tenant) ID and the Application (client) ID.",
        ),
    )


# -- the check ------------------------------------------------------------------------------

PermissionState = Literal["granted", "implied", "missing", "unknown"]
CallState = Literal["ok", "error", "skipped"]


@dataclass(frozen=True, slots=True)
class PermissionCheck:
    """One permission as the access token's ``roles`` claim tells it. ``implied``: not
    granted itself but included in one that is; ``unknown``: the token names no roles."""

    name: str
    purpose: Purpose
    needed: bool
    state: PermissionState

    @property
    def ok(self) -> bool:
        return self.state in ("granted", "implied")


@dataclass(frozen=True, slots=True)
class CallCheck:
    """One cheap Graph read. ``forbidden``: Graph answered 403 (a permission is missing)."""

    state: CallState
    error: str | None = None
    forbidden: bool = False
    server_time: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True, slots=True)
class ConnectorCheck:
    """What works for one tenant's app registration, and what is missing."""

    tenant: str
    tenant_id: str
    two_way: bool
    checked_at: datetime
    token_ok: bool
    token_error: str | None
    roles: frozenset[str]
    permissions: tuple[PermissionCheck, ...]
    incidents: CallCheck
    alerts: CallCheck
    notes: tuple[str, ...] = field(default=())

    @property
    def missing(self) -> tuple[str, ...]:
        """Needed permissions the token does not carry (none when it names no roles)."""
        return tuple(p.name for p in self.permissions if p.needed and p.state == "missing")

    @property
    def readable(self) -> bool:
        """Signed in, and both incidents and alerts could be read."""
        return self.token_ok and self.incidents.ok and self.alerts.ok

    @property
    def ok(self) -> bool:
        """Everything the tenant is configured for works and no needed permission is missing."""
        return self.readable and not self.missing

    def to_dict(self) -> dict[str, Any]:
        """As JSON for the console's connector page."""

        def call(check: CallCheck) -> dict[str, Any]:
            return {
                "state": check.state,
                "error": check.error,
                "forbidden": check.forbidden,
                "serverTime": check.server_time.isoformat() if check.server_time else None,
            }

        return {
            "tenant": self.tenant,
            "tenantId": self.tenant_id,
            "twoWay": self.two_way,
            "checkedAt": self.checked_at.isoformat(),
            "token": {"ok": self.token_ok, "error": self.token_error},
            "roles": sorted(self.roles),
            "permissions": [
                {"name": p.name, "purpose": p.purpose, "needed": p.needed, "state": p.state}
                for p in self.permissions
            ],
            "incidents": call(self.incidents),
            "alerts": call(self.alerts),
            "missing": list(self.missing),
            "ok": self.ok,
            "notes": list(self.notes),
        }


def _since_a_minute_ago() -> PageQuery:
    from xdrsync.hub.payload import ticks_from_datetime
    from xdrsync.sync.listing import PageQuery

    return PageQuery(ticks_from_datetime(datetime.now(UTC) - timedelta(minutes=1)))


def signing_certificate(api: DefenderApi) -> CertificateCredential | None:
    """The certificate ``api`` signed in with, once it has (None: a client secret), whose
    end ``check`` says."""
    from xdrsync.graph.auth import CertificateCredential

    certificate = getattr(api.client.tokens, "certificate", None)
    return certificate if isinstance(certificate, CertificateCredential) else None


def probe_incidents(api: DefenderApi) -> ListPage:
    """The cheap incidents read of ``xdrsync check``: the last minute's, without alerts."""
    return api.incidents_page(_since_a_minute_ago(), expand_alerts=False)


def probe_alerts(api: DefenderApi) -> ListPage:
    """The cheap alerts_v2 read: the last minute's."""
    return api.alerts_page(_since_a_minute_ago())


def permission_states(roles: frozenset[str], two_way: bool) -> tuple[PermissionCheck, ...]:
    """Each of ``PERMISSIONS`` against the token's roles (all ``unknown`` if it names none)."""
    needed = {p.name for p in required_permissions(two_way)}
    checks = []
    for permission in PERMISSIONS:
        state: PermissionState
        if not roles:
            state = "unknown"
        elif permission.name in roles:
            state = "granted"
        elif permission.implied_by is not None and permission.implied_by in roles:
            state = "implied"
        else:
            state = "missing"
        checks.append(
            PermissionCheck(permission.name, permission.purpose, permission.name in needed, state)
        )
    return tuple(checks)


def _call(read: Callable[[], ListPage]) -> CallCheck:
    from xdrsync.graph.errors import ForbiddenError
    from xdrsync.logs import scrub

    try:
        page = read()
    except XdrSyncError as failure:
        forbidden = isinstance(failure, ForbiddenError)
        return CallCheck("error", scrub(str(failure)), forbidden=forbidden)
    return CallCheck("ok", server_time=page.server_date)


def check_tenant(
    tenant: TenantConfig,
    sync_config: SyncConfig,
    *,
    two_way: bool | None = None,
    connect: Callable[[TenantConfig, SyncConfig], DefenderApi] | None = None,
) -> ConnectorCheck:
    """Sign in as the tenant's app, read the permissions its token carries, and make one
    cheap call to incidents and one to alerts_v2. Never raises for what it checks: every
    failure is in the answer (secrets scrubbed). ``two_way``: whether the write permissions
    are needed (default: the tenant's own ``two_way``, else yes, as ``[two_way]`` defaults)."""
    from xdrsync.graph.security import DefenderApi
    from xdrsync.logs import scrub

    wants_writes = tenant.two_way if two_way is None else two_way
    wants_writes = True if wants_writes is None else wants_writes
    started = datetime.now(UTC)
    notes: list[str] = []
    api = (connect or DefenderApi.connect)(tenant, sync_config)
    try:
        try:
            roles = api.granted_roles()  # signs in; no Graph call
        except XdrSyncError as failure:
            skipped = CallCheck("skipped", "not tried: sign-in failed")
            return ConnectorCheck(
                tenant=tenant.name,
                tenant_id=tenant.tenant_id,
                two_way=wants_writes,
                checked_at=started,
                token_ok=False,
                token_error=scrub(str(failure)),
                roles=frozenset(),
                permissions=permission_states(frozenset(), wants_writes),
                incidents=skipped,
                alerts=skipped,
            )
        if not roles:
            notes.append(
                "the access token names no permissions (not a readable JWT): Graph decides "
                "on each call"
            )
        certificate = signing_certificate(api)
        if certificate is not None and certificate.expires_soon(started):
            notes.append(certificate.expiry_note(started))  # a warning, as every note is
        incidents = _call(lambda: probe_incidents(api))
        alerts = _call(lambda: probe_alerts(api))
    finally:
        api.close()
    return ConnectorCheck(
        tenant=tenant.name,
        tenant_id=tenant.tenant_id,
        two_way=wants_writes,
        checked_at=started,
        token_ok=True,
        token_error=None,
        roles=roles,
        permissions=permission_states(roles, wants_writes),
        incidents=incidents,
        alerts=alerts,
        notes=tuple(notes),
    )


# -- the config block -----------------------------------------------------------------------

_REFERENCE_PREFIXES = ("env:", "file:")


def toml_string(value: str) -> str:
    """A TOML basic string holding exactly ``value``."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def check_secret_reference(reference: str, setting: str = "the client secret") -> str:
    """``env:NAME`` or ``file:PATH``, trimmed; a literal secret (anything else) is refused.
    ``setting`` names what the reference is of, in the refusal."""
    reference = reference.strip()
    if not reference.startswith(_REFERENCE_PREFIXES):
        raise ValueError(
            f"{setting} is written by reference only: env:NAME (an environment "
            "variable) or file:PATH (a file holding it), never the secret itself"
        )
    rest = reference.split(":", 1)[1].strip()
    if not rest:
        raise ValueError(f"{reference!r} needs a name after the prefix, e.g. env:CONTOSO_SECRET")
    if reference.startswith("env:") and not rest.replace("_", "").isalnum():
        raise ValueError(f"{rest!r} is not an environment variable name")
    return f"{reference.split(':', 1)[0]}:{rest}"


def render_tenant_toml(
    name: str,
    tenant_id: str,
    client_id: str,
    *,
    secret_ref: str | None = None,
    certificate_path: Path | str | None = None,
    certificate_password_ref: str | None = None,
    graph_url: str = GRAPH_URL,
    authority_url: str = AUTHORITY_URL,
    two_way: bool | None = None,
    proxy: str | None = None,
    proxy_password_ref: str | None = None,
) -> str:
    """A ``[[tenants]]`` block. The secret goes in by reference (``env:NAME`` or
    ``file:PATH``), never as a value; or a certificate path, with the password of an
    encrypted key or a .pfx by reference too (``certificate_password_ref``). Everything is
    validated as the config loader would, without resolving a secret or reading the
    certificate; ``ValueError`` (one line, no values) if anything is wrong. ``two_way`` None
    leaves it to ``[two_way] enabled``; ``proxy`` None, to the environment's proxy (its
    user's password by reference too, ``proxy_password_ref``)."""
    if (secret_ref is None) == (certificate_path is None):
        raise ValueError("give exactly one of a secret reference or a certificate path")
    if certificate_password_ref is not None and certificate_path is None:
        raise ValueError("a certificate password goes with a certificate path")
    reference = check_secret_reference(secret_ref) if secret_ref is not None else None
    password = (
        check_secret_reference(certificate_password_ref, "the certificate password")
        if certificate_password_ref is not None
        else None
    )
    proxy_password = (
        check_secret_reference(proxy_password_ref, "the proxy password")
        if proxy_password_ref is not None
        else None
    )
    candidate: Mapping[str, Any] = {
        "name": name.strip(),
        "tenant_id": tenant_id.strip(),
        "client_id": client_id.strip(),
        "client_secret": SecretStr("checked-by-reference"),  # nothing is resolved here
        "graph_url": graph_url,
        "authority_url": authority_url,
        "proxy": proxy.strip() if proxy is not None else None,
        "proxy_password": SecretStr("checked-by-reference") if proxy_password else None,
    }
    try:
        checked = TenantConfig.model_validate(candidate)
    except ValidationError as invalid:
        raise ValueError(describe_validation_error(invalid, candidate)) from None
    if certificate_path is not None and not str(certificate_path).strip():
        raise ValueError("the certificate path is empty")
    lines = [
        "[[tenants]]",
        f"name = {toml_string(checked.name)}",
        f"tenant_id = {toml_string(checked.tenant_id)}",
        f"client_id = {toml_string(checked.client_id)}",
    ]
    if reference is not None:
        lines.append(f"client_secret = {toml_string(reference)}")
    else:
        lines.append(f"certificate_path = {toml_string(str(certificate_path).strip())}")
        if password is not None:
            lines.append(f"certificate_password = {toml_string(password)}")
    lines += [
        f"graph_url = {toml_string(checked.graph_url)}",
        f"authority_url = {toml_string(checked.authority_url)}",
    ]
    if checked.proxy is not None:
        lines.append(f"proxy = {toml_string(checked.proxy)}")
    if proxy_password is not None:
        lines.append(f"proxy_password = {toml_string(proxy_password)}")
    if two_way is not None:
        lines.append(f"two_way = {'true' if two_way else 'false'}")
    return "\n".join(lines) + "\n"


__all__ = [
    "PERMISSIONS",
    "CallCheck",
    "ConnectorCheck",
    "Permission",
    "PermissionCheck",
    "SetupStep",
    "check_secret_reference",
    "check_tenant",
    "permission_states",
    "probe_alerts",
    "probe_incidents",
    "render_tenant_toml",
    "required_permissions",
    "setup_steps",
    "signing_certificate",
    "toml_string",
]
