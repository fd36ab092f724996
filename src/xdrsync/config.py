"""Configuration: one TOML file, secrets by reference, validated into frozen pydantic models."""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import re
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from xdrsync.configfile import (
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    DEFAULT_WORKSPACE,
    config_path,
    one_line,
    read_config_file,
    resolve_path,
    resolve_secret,
)
from xdrsync.errors import ConfigError
from xdrsync.layout import QUEUE_DESTINATION, TABLES_DESTINATION

GRAPH_URL = "https://graph.microsoft.com"
AUTHORITY_URL = "https://login.microsoftonline.com"
ARM_URL = "https://management.azure.com"
MONITOR_AUDIENCE = "https://monitor.azure.com"

# Names end up in metric labels, log fields and CLI arguments; tenant ids in URL paths.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DIRECTORY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_GUID = re.compile(r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")
_PEM_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._()-]{0,89}$")
_MULTI_TENANT_ALIASES = frozenset({"common", "organizations", "consumers"})
#: The cloud of each Graph and Entra ID host we know: a token from one cloud's Entra ID is
#: never accepted by another cloud's Graph (AADSTS500011), so a pair across clouds is refused.
_CLOUD_OF_HOST: Mapping[str, str] = {
    "graph.microsoft.com": "global",
    "login.microsoftonline.com": "global",
    "login.microsoft.com": "global",
    "login.windows.net": "global",
    "graph.microsoft.us": "US Government",
    "dod-graph.microsoft.us": "US Government",
    "login.microsoftonline.us": "US Government",
    "microsoftgraph.chinacloudapi.cn": "China (21Vianet)",
    "login.chinacloudapi.cn": "China (21Vianet)",
    "login.partner.microsoftonline.cn": "China (21Vianet)",
}


# -- small pure helpers (also used by xdrsync.graph) ---------------------------------------


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ::1)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_service_url(value: str, setting: str) -> str:
    """A Graph or authority root URL, without trailing slash; plain http only on loopback.

    Bearer tokens and client secrets travel to these URLs, so plain http is refused unless the
    other end is this machine (the local emulator).
    """
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{setting} must be an https URL with a host, e.g. {GRAPH_URL}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{setting} must be a plain service root (no credentials, query or #)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"{setting} uses plain http, which is only accepted for a loopback address "
            "(127.0.0.1, ::1, localhost); use https"
        )
    return url


#: What httpx can send through (socks5 with the ``httpx[socks]`` extra).
_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
_PROXY_EXAMPLE = "http://proxy.corp:3128"


def check_proxy_url(value: str) -> str:
    """An outbound proxy's URL (``http://[USER@]host:port``), without trailing slash.

    Its password goes in ``proxy_password`` by reference, never in the URL: config files get
    copied and pasted, and a URL is what messages would name. No message here repeats the
    value, which may hold one."""
    url = value.strip().rstrip("/")
    # Before parsing: a password holding '/', '?' or '#' would end the host part early, and
    # the mistake then be reported as another (up to the last '@' is userinfo, as for curl).
    if ":" in url.partition("://")[2].rpartition("@")[0]:
        raise ValueError(
            'the proxy\'s password goes in proxy_password = "env:NAME" (or "file:PATH"), '
            "never in the URL"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is no number (or out of range)
    except ValueError:  # an unclosed [IPv6 address, a port that is no number
        raise ValueError(f"proxy is not a URL such as {_PROXY_EXAMPLE}") from None
    if parts.scheme.lower() not in _PROXY_SCHEMES or not parts.hostname:
        raise ValueError(
            f"proxy must be an http://, https://, socks5:// or socks5h:// URL with a host, "
            f"e.g. {_PROXY_EXAMPLE}"
        )
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"proxy is a host and port only, e.g. {_PROXY_EXAMPLE} (no path, ?, #)")
    if parts.scheme.lower().startswith("socks") and importlib.util.find_spec("socksio") is None:
        raise ValueError("a socks5 proxy needs the socksio package: pip install 'httpx[socks]'")
    return url


def check_ca_bundle(path: Path) -> ssl.SSLContext:
    """The TLS context trusting the CA bundle at ``path`` (a PEM file, or a folder hashed by
    ``c_rehash``); ``ValueError`` naming the file if it holds no PEM certificate or cannot be
    read (a DER file, the wrong file), so the mistake is one line, not a TLS failure later."""
    try:
        if path.is_dir():
            return ssl.create_default_context(capath=str(path))
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError:
        raise ValueError(
            f"CA bundle {path} holds no PEM certificate (convert a DER one with "
            "`openssl x509 -inform der -in FILE -out FILE.pem`)"
        ) from None
    except OSError as problem:
        raise ValueError(f"cannot read CA bundle {path}: {problem.strerror}") from None


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context if isinstance(info.context, Mapping) else {}
    base = context.get("base_dir")
    return base if isinstance(base, Path) else None


# -- models ---------------------------------------------------------------------------------


class _Frozen(BaseModel):
    # Every duration and limit is finite: `inf` (TOML has it) would wait or read forever.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class WorkspaceConfig(_Frozen):
    """Where the embedded stores live, or the database URL of a shared hub."""

    # Relative paths are taken from the config file's folder, as every other path here.
    path: Path = Field(default=DEFAULT_WORKSPACE, validate_default=True)
    # May hold a database password, hence secret; `env:`/`file:` references work here too.
    database_url: SecretStr | None = None

    @field_validator("path", mode="after")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, _base_dir(info))

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_reference(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return _sqlite_relative_to(resolve_secret(value, _base_dir(info)), _base_dir(info))


def _sqlite_relative_to(url: str, base_dir: Path | None) -> str:
    """``url`` with the file of a relative SQLite URL (``sqlite:///hub.db``) taken from
    ``base_dir`` (the config file's folder) rather than the current one; any other URL, an
    absolute or in-memory SQLite one among them, as it is."""
    scheme, sep, rest = url.partition("://")
    if base_dir is None or not sep or scheme.split("+")[0].lower() != "sqlite":
        return url
    if not rest.startswith("/"):
        return url
    database, mark, query = rest[1:].partition("?")
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    if Path(database).is_absolute():
        return url
    resolved = resolve_path(Path(database), base_dir)  # ~ expanded, else the config's folder
    if not resolved.exists() and Path(database).exists():
        # Read from the current folder before: a service started elsewhere would quietly
        # open a new, empty hub instead of its own.
        raise ValueError(
            f"{database} is read from the config's folder ({resolved}), where there is no "
            f"hub, and not from the current folder ({Path(database).resolve()}), where there "
            "is one: write its absolute path"
        )
    if any(char in str(resolved) for char in "?%#"):
        raise ValueError("the config's folder cannot be written into a URL: use an absolute path")
    return f"{scheme}:///{resolved}{mark}{query}"


class DeferredSecret(SecretStr):
    """A ``client_secret`` or ``certificate_password`` reference (``env:NAME``,
    ``file:PATH``). It is read again at each ``get_secret_value()``, when the client signs in
    with a new app: a secret rotated in its file is taken without a restart
    (``auth.TokenProvider``). One that could not be read when the config loaded raises
    ``ConfigError`` naming its owner while it still cannot be: that tenant fails alone (its
    streams record the error) and the others sync.

    ``repr``, ``str`` and ``len`` see the reference, never a secret; two compare equal when
    they hold the same reference."""

    def __init__(
        self, reference: str, base_dir: Path | None, owner: str, setting: str = "client_secret"
    ) -> None:
        super().__init__(reference)
        self._base_dir = base_dir
        self._owner = owner
        self._setting = setting

    def get_secret_value(self) -> str:
        try:
            return resolve_secret(self._secret_value, self._base_dir)
        except ValueError as problem:
            raise ConfigError(f"{self._owner}: {self._setting}: {problem}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeferredSecret) and (self._secret_value, self._base_dir) == (
            other._secret_value,
            other._base_dir,
        )

    def __hash__(self) -> int:
        return hash((self._secret_value, self._base_dir))


def _tenant_id_spelling(text: str) -> str:
    """A tenant id as the config keeps it: without surrounding spaces or braces, lower case
    (a GUID compares without regard to case; Graph writes it lower case)."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    return text.lower()


_TENANT_GUID_ONLY = (
    "a Defender tenant's tenant_id is its directory (tenant) ID, a GUID (Entra admin center, "
    "Overview), not a domain name"
)


class AppCredentials(_Frozen):
    """An app registration in one Entra tenant, and how xdrsync signs in with it.

    ``client_secret`` takes ``env:NAME`` or ``file:PATH`` (resolved at load). A literal secret
    is accepted but discouraged: config files get copied, committed and pasted into tickets.

    For a Defender tenant (``defers_credentials``) in a whole config, a secret reference or
    certificate file that cannot be read at load is not an error of the config: it is read
    again when the tenant's client is built, and fails that tenant alone (``DeferredSecret``;
    ``graph.auth.certificate_credential``).
    """

    defers_credentials: ClassVar[bool] = False
    # Whether ``tenant_id`` may be a verified domain name (a destination's sign-in may use
    # one; a Defender tenant's may not, see ``TenantConfig._tenant_guid``).
    domain_tenant_id: ClassVar[bool] = True

    name: str
    tenant_id: str
    client_id: str
    client_secret: SecretStr | None = None
    # A PEM file holding the private key and its certificate, or a PKCS#12 file (.pfx/.p12).
    certificate_path: Path | None = None
    # Opens an encrypted PEM key or a .pfx; a reference (env:NAME, file:PATH) as client_secret.
    certificate_password: SecretStr | None = None
    authority_url: str = AUTHORITY_URL
    verify_tls: bool | str = True  # or the path of a CA bundle
    # The outbound proxy of every call these credentials make (sign-in, Graph or ARM, Logs
    # Ingestion), ``http://[USER@]host:port``; None: the environment's (HTTPS_PROXY, ...).
    proxy: str | None = None
    # The proxy user's password, by reference only (env:NAME, file:PATH): never inline.
    proxy_password: SecretStr | None = None

    @classmethod
    def owner_label(cls, name: object) -> str:
        """How messages name the owner of these credentials: ``tenant 'contoso'`` (a Defender
        tenant), ``destination 'soc'``."""
        return f"{'tenant' if cls.defers_credentials else 'destination'} {str(name)!r}"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use 1-64 letters, digits, '.', '_' or '-' (starting alphanumeric)")
        return value

    @field_validator("tenant_id", "client_id")
    @classmethod
    def _directory_id(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not _DIRECTORY_ID.match(value):
            if info.field_name == "client_id":
                raise ValueError("expected the app's application (client) ID, a GUID")
            if cls.domain_tenant_id:
                raise ValueError(
                    "expected the directory (tenant) ID, a GUID, or a verified domain name"
                )
            raise ValueError(_TENANT_GUID_ONLY)
        if info.field_name == "tenant_id" and value.lower() in _MULTI_TENANT_ALIASES:
            # An app signs in to one tenant's directory; these aliases name none.
            raise ValueError(f"{value!r} is not a tenant; use the tenant's GUID")
        return value

    @field_validator("client_secret", "certificate_password", "proxy_password", mode="before")
    @classmethod
    def _secret_reference(cls, value: object, info: ValidationInfo) -> object:
        setting = info.field_name or "client_secret"
        if isinstance(value, str):
            if not value.strip():
                # Would be sent as no secret at all, and refused by Entra ID with a puzzle.
                raise ValueError(f"{setting} is empty; use env:NAME or file:PATH")
            if setting == "proxy_password" and not value.startswith(("env:", "file:")):
                # A new setting, so no inline value to keep accepting: references only.
                raise ValueError("proxy_password takes a reference only: env:NAME or file:PATH")
            if not value.startswith(("env:", "file:")) and _loading_file(info):
                # The standard library's logging, not structlog: a command that configures
                # no logging (`query`, `state show`, `incidents show --json`) then has it on
                # stderr (logging's last resort) rather than in its output on stdout, which
                # is structlog's default; `logs.configure` sends it to the service's log.
                logging.getLogger(__name__).warning(
                    "%s is written inline in the config file; prefer env:NAME or file:PATH",
                    setting,
                )
            if value.startswith(("env:", "file:")) and value.partition(":")[2].strip():
                try:
                    resolve_secret(value, _base_dir(info))  # readable now, as it should be
                except ValueError:
                    if not _defers(cls, info):
                        raise
                    # unset or unreadable now: tried again at sign-in
                owner = cls.owner_label(info.data.get("name"))
                return DeferredSecret(value, _base_dir(info), owner, setting)
            return resolve_secret(value, _base_dir(info))
        return value

    @field_validator("certificate_path", mode="after")
    @classmethod
    def _certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = resolve_path(value, _base_dir(info))
        try:
            pem = path.read_bytes()
        except OSError as problem:
            if _defers(cls, info):
                return path  # read again at sign-in, where it fails this tenant alone
            raise ValueError(f"cannot read certificate file {path}: {problem.strerror}") from None
        # A PKCS#12 file is DER (an ASN.1 SEQUENCE): opened, with its password, at sign-in.
        pkcs12 = pem[:1] == b"\x30" and path.suffix.lower() in (".pfx", ".p12")
        if not pkcs12 and (not _PEM_KEY.search(pem) or _PEM_CERT not in pem):
            raise ValueError(
                f"{path} must be a PEM file holding the private key and certificate "
                "(or a PKCS#12 .pfx/.p12 file)"
            )
        return path

    @field_validator("authority_url")
    @classmethod
    def _authority_url(cls, value: str, info: ValidationInfo) -> str:
        url = check_service_url(value, info.field_name or "url")
        if urlsplit(url).path.strip("/"):
            # The tenant is added from tenant_id: a pasted endpoint URL would ask Entra ID
            # for the metadata of a tenant named by its path, and fail as an unknown tenant.
            raise ValueError(
                f"authority_url is the sign-in host only, e.g. {AUTHORITY_URL}: "
                "without a tenant or /oauth2 path (tenant_id names the tenant)"
            )
        return url

    @field_validator("verify_tls", mode="after")
    @classmethod
    def _ca_bundle(cls, value: bool | str, info: ValidationInfo) -> bool | str:
        if value is False and _loading_file(info):
            logging.getLogger(__name__).warning(
                "%s: verify_tls = false: TLS certificates are not checked, so the client "
                "secret and access tokens go to whoever answers; give a CA bundle path instead",
                info.data.get("name"),
            )
        if isinstance(value, bool):
            return value
        if not value.strip():
            raise ValueError("verify_tls is true, false or the path of a CA bundle")
        path = resolve_path(Path(value), _base_dir(info))
        if not path.exists():
            raise ValueError(f"CA bundle {path} does not exist (or use true/false)")
        check_ca_bundle(path)
        return str(path)

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        return None if value is None else check_proxy_url(value)

    @model_validator(mode="after")
    def _proxy_user(self) -> Self:
        if self.proxy_password is None:
            return self
        if self.proxy is None:
            raise ValueError("proxy_password goes with proxy")
        if not urlsplit(self.proxy).username:
            raise ValueError(
                "proxy_password needs the proxy's user name in proxy (http://USER@proxy.corp:3128)"
            )
        return self

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if (self.client_secret is None) == (self.certificate_path is None):
            raise ValueError("set exactly one of client_secret or certificate_path")
        if self.certificate_password is not None and self.certificate_path is None:
            raise ValueError("certificate_password goes with certificate_path")
        return self


class TenantConfig(AppCredentials):
    """One Defender tenant: its app registration and where its Graph API is."""

    defers_credentials: ClassVar[bool] = True
    domain_tenant_id: ClassVar[bool] = False

    graph_url: str = GRAPH_URL
    # Our own pacing budget: Graph allows 150 requests/min per app per tenant on /security.
    rate_limit_per_minute: int = Field(default=120, ge=1, le=10_000)
    # Two-way sync for this tenant: false makes it read-only; None and true follow
    # [two_way] enabled, which wins (false there makes every tenant read-only).
    two_way: bool | None = None

    @field_validator("tenant_id", mode="before")
    @classmethod
    def _tenant_spelling(cls, value: object) -> object:
        # A GUID compares without regard to case, and is written with or without braces; the
        # hub, the log tables, the console's scopes and the outbox key a tenant by this text,
        # and Graph writes it lower case. So one spelling, whatever the config says: the
        # tenant of `{72F988BF-...}` is the tenant of `72f988bf-...` (not a second one).
        return _tenant_id_spelling(value) if isinstance(value, str) else value

    @field_validator("tenant_id")
    @classmethod
    def _tenant_guid(cls, value: str) -> str:
        # Graph's records carry the tenant's GUID (tenantId), and the tables, the console's
        # tenant scopes and Sentinel's incident names are keyed by it: a domain name here
        # would key the hub apart from all of them (a destination may still sign in by one).
        if not _GUID.match(value.strip()):
            raise ValueError(_TENANT_GUID_ONLY)
        return value

    @field_validator("graph_url")
    @classmethod
    def _graph_url(cls, value: str) -> str:
        url = check_service_url(value, "graph_url")
        if urlsplit(url).path.rstrip("/").lower().endswith(("/v1.0", "/beta")):
            raise ValueError("graph_url is the service root, without /v1.0 (or /beta)")
        return url

    @model_validator(mode="after")
    def _one_cloud(self) -> Self:
        graph = _CLOUD_OF_HOST.get(urlsplit(self.graph_url).hostname or "")
        authority = _CLOUD_OF_HOST.get(urlsplit(self.authority_url).hostname or "")
        if graph and authority and graph != authority:
            raise ValueError(
                f"graph_url is in the {graph} cloud but authority_url in the {authority} "
                "cloud: set both to the same cloud (US Government: https://graph.microsoft.us "
                "with https://login.microsoftonline.us)"
            )
        return self

    @property
    def scope(self) -> str:
        """The OAuth scope of Graph for client credentials."""
        return f"{self.graph_url}/.default"


class SentinelDestinationConfig(AppCredentials):
    """A Microsoft Sentinel workspace that Defender incidents go to (docs/destinations/sentinel.md).

    The app registration lives in the workspace's Entra tenant, which may differ from every
    Defender tenant. It needs *Microsoft Sentinel Responder* on the workspace (incidents and
    comments) and *Monitoring Metrics Publisher* on the data collection rule (log data).
    """

    type: Literal["sentinel"]
    subscription_id: str
    resource_group: str
    workspace: str
    arm_url: str = ARM_URL
    # The Logs Ingestion endpoint (a DCR's logsIngestion endpoint or a DCE) and the rule's
    # immutable id; without them only incidents are sent, no alert or evidence rows.
    ingestion_endpoint: str | None = None
    rule_id: str | None = None
    ingestion_audience: str = MONITOR_AUDIENCE
    alert_stream: str = "Custom-XdrSecurityAlert"
    evidence_stream: str = "Custom-XdrAlertEvidence"
    # The Defender tenants (by name) whose incidents go here; empty: every tenant.
    tenants: tuple[str, ...] = ()
    # Sentinel edits (status, owner, classification, labels) flow back to Defender.
    two_way: bool = False
    readback_interval_seconds: float = Field(default=5, gt=0)  # how often Sentinel is read
    # Our own pacing of ARM calls, at 80% of ARM's refill rates per subscription and service
    # principal (reads 25/s, writes 10/s), so retries and other calls keep some room.
    reads_per_minute: int = Field(default=1200, ge=1, le=100_000)
    writes_per_minute: int = Field(default=480, ge=1, le=100_000)

    @field_validator("subscription_id", "resource_group", "workspace")
    @classmethod
    def _arm_name(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not _ARM_NAME.match(value):
            raise ValueError(f"{info.field_name} is not a valid Azure resource name")
        return value

    @field_validator("arm_url", "ingestion_endpoint", "ingestion_audience")
    @classmethod
    def _endpoint(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_service_url(value, info.field_name or "url")

    @model_validator(mode="after")
    def _ingestion_pair(self) -> SentinelDestinationConfig:
        if (self.ingestion_endpoint is None) != (self.rule_id is None):
            raise ValueError("set both ingestion_endpoint and rule_id, or neither")
        return self

    @property
    def scope(self) -> str:
        """The OAuth scope of Azure Resource Manager for client credentials."""
        return f"{self.arm_url}/.default"

    @property
    def workspace_path(self) -> str:
        """The ARM path of the workspace's Microsoft.SecurityInsights provider."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.OperationalInsights/workspaces/{self.workspace}"
            "/providers/Microsoft.SecurityInsights"
        )


DestinationConfig = SentinelDestinationConfig  # a union as more destination types arrive


def _loading_file(info: ValidationInfo) -> bool:
    return isinstance(info.context, Mapping) and bool(info.context.get("from_file"))


def _defers(model: type[AppCredentials], info: ValidationInfo) -> bool:
    """Whether an unreadable credential of ``model`` waits for sign-in: Defender tenants in a
    whole config (``parse_config``); a tenant validated alone (``xdrsync init``) is checked
    at once."""
    deferring = isinstance(info.context, Mapping) and bool(info.context.get("defer_credentials"))
    return deferring and model.defers_credentials


class SyncConfig(_Frozen):
    """How often and how much to read from Graph, and how hard to try."""

    poll_interval_seconds: float = Field(default=5, gt=0)
    # After a cycle that found nothing new, the tenant's next cycle waits this long instead
    # (at least the poll interval): half the Graph calls of an idle tenant, and a change is
    # still seen within it. Any change brings the poll interval back.
    idle_poll_interval_seconds: float = Field(default=10, gt=0)
    # alerts_v2 is read at most this often (at least every poll interval). Incidents are read
    # with their alerts, so an alert change that reaches its incident comes with it; this
    # stream is for alert changes that do not.
    alerts_poll_interval_seconds: float = Field(default=10, gt=0)
    lookback_seconds: float = Field(default=300, ge=0)
    # Most cycles re-read only this much before the watermark (Graph's clock, a short
    # indexing delay); every sweep_interval_seconds (at most half the lookback) a sweep
    # re-reads the whole lookback for late-indexed updates. Equal to the lookback: no sweeps.
    fresh_lookback_seconds: float = Field(default=20, ge=0)
    sweep_interval_seconds: float = Field(default=60, gt=0)
    # Every reconcile_interval_seconds a cycle re-reads reconcile_days before the watermark:
    # what Defender changed without moving lastUpdateDateTime (undocumented for comments,
    # merges and moved alerts) arrives within that interval. 0 days: never.
    reconcile_days: float = Field(default=7, ge=0)
    reconcile_interval_seconds: float = Field(default=6 * 3600, gt=0)
    initial_backfill_days: float = Field(default=30, ge=0)
    page_size_incidents: int = Field(default=50, ge=1, le=50)  # Graph rejects $top > 50
    page_size_alerts: int = Field(default=500, ge=1, le=1000)  # Graph caps $top at 1000
    request_timeout_seconds: float = Field(default=30, gt=0)  # per read (httpx)
    # A whole request, however slowly the server drips its answer; then it is retried.
    request_deadline_seconds: float = Field(default=120, gt=0)
    # The largest response body read; a full page of 50 incidents with alerts and evidence
    # is a few MB on real tenants, so 64 MiB leaves room and still bounds memory.
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    max_attempts: int = Field(default=6, ge=1, le=20)


ConflictPolicy = Literal["latest_wins", "defender_wins", "workspace_wins", "manual"]


class ConflictPolicies(_Frozen):
    """Who wins when the same field changed in the workspace and in Defender (docs/two-way.md).
    Tags always merge set-wise and comments append, so they never conflict."""

    status: ConflictPolicy = "latest_wins"
    owner: ConflictPolicy = "latest_wins"
    classification: ConflictPolicy = "latest_wins"  # with the determination, as one pair


class TwoWayConfig(_Frozen):
    """Workspace edits pushed to Defender (the outbox and its pusher)."""

    enabled: bool = True
    policy: ConflictPolicies = ConflictPolicies()
    # How often the pusher looks for new edits; an edit is picked up within this time.
    poll_seconds: float = Field(default=0.2, gt=0, le=60)
    # A write that failed for a transient reason is retried after this, doubling to the max.
    retry_seconds: float = Field(default=2, gt=0)
    max_retry_seconds: float = Field(default=300, gt=0)


class QueryConfig(_Frozen):
    """Limits on every KQL query over the workspace (CLI, console, API)."""

    timeout_seconds: float = Field(default=30, gt=0)
    memory_limit_mb: int = Field(default=2048, ge=64)
    threads: int = Field(default=2, ge=1, le=64)
    max_rows: int = Field(default=100_000, ge=1)


class ConsoleConfig(_Frozen):
    """Where and how ``xdrsync run`` serves the console and REST API.

    It binds to loopback unless told otherwise: any other address needs TLS (``tls_certfile``
    and ``tls_keyfile``), or ``allow_plain_http = true`` behind a proxy that terminates TLS.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (printed at start)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    allow_plain_http: bool = False
    # The reverse proxies in front of the console (addresses or networks): from these only,
    # X-Forwarded-For names the client (for the per-address login pause) and the Host header
    # is the proxy's to check. Empty: no proxy, the forwarding headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # A session ends this long after login, or after this long without a request.
    session_hours: float = Field(default=12, gt=0, le=24 * 30)
    idle_minutes: float = Field(default=60, gt=0)
    # Failed logins per user name (and per client address) before a pause of this length.
    login_attempts: int = Field(default=5, ge=1)
    login_pause_seconds: float = Field(default=300, gt=0)

    @field_validator("tls_certfile", "tls_keyfile", mode="after")
    @classmethod
    def _tls_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = resolve_path(value, _base_dir(info))  # from the config's folder, as every path
        try:
            with path.open("rb"):
                pass
        except OSError as problem:
            raise ValueError(f"cannot read {path}: {problem.strerror}") from None
        return path

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _proxy_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"console: trusted_proxies holds addresses or networks "
                    f"(127.0.0.1, 10.0.0.0/8), not {item!r}"
                ) from None
        return tuple(item.strip() for item in value)

    @model_validator(mode="after")
    def _exposed_needs_tls(self) -> ConsoleConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("console: set both tls_certfile and tls_keyfile, or neither")
        plain = self.tls_certfile is None
        if plain and not self.allow_plain_http and not is_loopback_host(self.host):
            raise ValueError(
                f"console: host {self.host!r} is not loopback; set tls_certfile and "
                "tls_keyfile, or allow_plain_http = true behind a TLS proxy"
            )
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None


class EmulatorTenant(Protocol):
    """Anything describing an emulator tenant (e.g. ``emulator.tenants.TenantSpec``)."""

    @property
    def name(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> str: ...


class Config(_Frozen):
    """The whole configuration of one xdrsync installation."""

    workspace: WorkspaceConfig = WorkspaceConfig()
    tenants: tuple[TenantConfig, ...] = Field(default=(), validate_default=True)
    sync: SyncConfig = SyncConfig()
    query: QueryConfig = QueryConfig()
    console: ConsoleConfig = ConsoleConfig()
    two_way: TwoWayConfig = TwoWayConfig()
    destinations: tuple[DestinationConfig, ...] = ()

    def writes_to(self, tenant: TenantConfig) -> bool:
        """Whether workspace edits of this tenant go to Defender (else it is read-only):
        ``[two_way] enabled = false`` makes every tenant read-only, whatever its own
        ``two_way`` says; a tenant's ``two_way = false`` makes it read-only alone."""
        return self.two_way.enabled and tenant.two_way is not False

    @model_validator(mode="before")
    @classmethod
    def _workspace_section(cls, data: object) -> object:
        # An absent [workspace] still gets its default path resolved like a written one.
        if isinstance(data, Mapping) and "workspace" not in data:
            return {**data, "workspace": {}}
        return data

    @field_validator("tenants", mode="after")
    @classmethod
    def _some_tenants(cls, value: tuple[TenantConfig, ...]) -> tuple[TenantConfig, ...]:
        if not value:
            raise ValueError("add at least one [[tenants]] table")
        return value

    @model_validator(mode="after")
    def _unique_tenants(self) -> Config:
        for attribute in ("name", "tenant_id"):
            seen: set[str] = set()
            for tenant in self.tenants:
                key = getattr(tenant, attribute).lower()
                if key in seen:
                    raise ValueError(f"two tenants share the {attribute} {key!r}")
                seen.add(key)
        return self

    @model_validator(mode="after")
    def _destinations_known(self) -> Config:
        names = {t.name.lower() for t in self.tenants}
        seen: set[str] = {TABLES_DESTINATION, QUEUE_DESTINATION}
        for destination in self.destinations:
            if destination.name.lower() in seen:
                raise ValueError(
                    f"destination name {destination.name!r} is taken "
                    f"({TABLES_DESTINATION!r} and {QUEUE_DESTINATION!r} name the workspace's "
                    "own log tables and console queue)"
                )
            seen.add(destination.name.lower())
            unknown = [t for t in destination.tenants if t.lower() not in names]
            if unknown:
                raise ValueError(
                    f"destination {destination.name!r} names unknown tenants: " + ", ".join(unknown)
                )
        return self

    def destination(self, name: str) -> DestinationConfig:
        """The configured destination with this name (case-insensitive)."""
        for destination in self.destinations:
            if destination.name.lower() == name.lower():
                return destination
        known = ", ".join(
            [TABLES_DESTINATION, QUEUE_DESTINATION, *(d.name for d in self.destinations)]
        )
        raise ConfigError(f"no destination named {name!r} (known: {known})")

    def tenants_of(self, destination: DestinationConfig) -> tuple[TenantConfig, ...]:
        """The Defender tenants whose incidents go to ``destination``."""
        if not destination.tenants:
            return self.tenants
        wanted = {t.lower() for t in destination.tenants}
        return tuple(t for t in self.tenants if t.name.lower() in wanted)

    def tenant(self, name_or_id: str) -> TenantConfig:
        """The tenant with this name or tenant id (case-insensitive; an id also in braces)."""
        wanted = name_or_id.lower()
        for tenant in self.tenants:
            if wanted == tenant.name.lower() or _tenant_id_spelling(wanted) == tenant.tenant_id:
                return tenant
        known = ", ".join(t.name for t in self.tenants)
        raise ConfigError(f"no tenant named {name_or_id!r} in the config (known: {known})")

    @classmethod
    def for_emulator(
        cls,
        base_url: str,
        tenants: Iterable[EmulatorTenant | tuple[str, str, str] | tuple[str, str, str, str]],
        *,
        workspace_path: Path | str = DEFAULT_WORKSPACE,
        sync: SyncConfig | None = None,
        console: ConsoleConfig | None = None,
        rate_limit_per_minute: int = 120,
    ) -> Config:
        """A config for the local emulator at ``base_url``, built without a file.

        ``tenants`` holds ``(tenant_id, client_id, secret)`` or
        ``(name, tenant_id, client_id, secret)`` tuples, or emulator tenant specs.
        """
        entries: list[dict[str, Any]] = []
        for index, tenant in enumerate(tenants, start=1):
            if isinstance(tenant, tuple):
                name, tenant_id, client_id, secret = (
                    tenant if len(tenant) == 4 else (f"tenant-{index}", *tenant)
                )
            else:
                name, tenant_id, client_id, secret = (
                    tenant.name,
                    tenant.tenant_id,
                    tenant.client_id,
                    tenant.client_secret,
                )
            entries.append(
                {
                    "name": name,
                    "tenant_id": tenant_id,
                    "client_id": client_id,
                    # Already a value, never a reference: wrap it so it is not resolved.
                    "client_secret": SecretStr(secret),
                    "graph_url": base_url,
                    "authority_url": base_url,
                    "rate_limit_per_minute": rate_limit_per_minute,
                }
            )
        data: dict[str, Any] = {
            "workspace": {"path": Path(workspace_path)},
            "tenants": entries,
            "sync": sync or SyncConfig(),
            "console": console or ConsoleConfig(),
        }
        return parse_config(data, label="emulator config")


# -- loading --------------------------------------------------------------------------------


def load_config(path: Path | None = None) -> Config:
    """Read and validate the config file; any problem is one ``ConfigError`` line."""
    file = config_path(path)
    return parse_config(read_config_file(file), source=file)


def parse_config(
    data: Mapping[str, Any], *, source: Path | None = None, label: str | None = None
) -> Config:
    """Validate an already-parsed config document; relative paths are taken from ``source``."""
    context = {
        "base_dir": source.resolve().parent if source is not None else None,
        "from_file": source is not None,
        "defer_credentials": True,
    }
    message: str | None = None
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as invalid:
        # Described from locations and messages only; pydantic's own text embeds input
        # values, which may be secrets. Raised outside this block so it is not chained.
        message = describe_validation_error(invalid, data)
    raise ConfigError(f"{label or source or 'config'}: {message}")


def describe_validation_error(error: ValidationError, data: Mapping[str, Any]) -> str:
    """``tenants[0].client_secret (tenant 'contoso'): why`` — joined on one line."""
    parts = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        location = _location(item["loc"], data)
        parts.append(f"{location}: {_message(item)}" if location else _message(item))
    return one_line("; ".join(parts))


def _location(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if len(loc) >= 2 and loc[0] in ("tenants", "destinations") and isinstance(loc[1], int):
        entries = data.get(str(loc[0]))
        if isinstance(entries, list | tuple) and loc[1] < len(entries):
            entry = entries[loc[1]]
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str):
                kind = "tenant" if loc[0] == "tenants" else "destination"
                text += f" ({kind} {name!r})"
    return text


def _message(item: Mapping[str, Any]) -> str:
    kind = item.get("type")
    if kind == "extra_forbidden":
        return "unknown setting"
    if kind == "missing":
        return "required setting is missing"
    text = str(item.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


__all__ = [
    "ARM_URL",
    "AUTHORITY_URL",
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "GRAPH_URL",
    "MONITOR_AUDIENCE",
    "AppCredentials",
    "Config",
    "ConsoleConfig",
    "DeferredSecret",
    "DestinationConfig",
    "EmulatorTenant",
    "QueryConfig",
    "SentinelDestinationConfig",
    "SyncConfig",
    "TenantConfig",
    "WorkspaceConfig",
    "check_ca_bundle",
    "check_proxy_url",
    "check_service_url",
    "config_path",
    "is_loopback_host",
    "load_config",
    "parse_config",
    "resolve_secret",
]
