"""What ``xdrsync emulate sentinel`` takes: the workspace's identity, limits, faults and grants.

Every identifier (Entra tenant, app, secret, subscription, data collection rule) is derived from
the seed, so the same seed always gives the same workspace and the same client config. Nothing
here depends on the port: the emulator's URLs come from the request that reaches it.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace

from xdrsync.emulator.faults import FaultSettings

_NAMESPACE = uuid.UUID("0d6f3b52-4f7e-4d0a-9a8e-2c5b1e7f9a31")

ALERT_STREAM = "Custom-XdrSecurityAlert"
EVIDENCE_STREAM = "Custom-XdrAlertEvidence"
STREAMS = (ALERT_STREAM, EVIDENCE_STREAM)
# The Logs Ingestion API's documented limit per DCR (microsoft-apis.md §4).
INGESTION_REQUESTS_PER_MINUTE = 12_000

# Fault keys the Sentinel emulator understands; the request faults are the Defender emulator's.
# ``bare_throttle_rate`` (a 429 without Retry-After) stays refused: the Logs Ingestion API
# documents its 429 with Retry-After (microsoft-apis.md §4 [S51]), as ARM's throttling page does
# for ARM's (§3.6 cites it as [S41]), and both emulated surfaces always send one; a 429 without
# it is only reported of Graph (§2.10 [S16]), whose emulator has that fault.
_REQUEST_FAULT_KEYS = (
    "error_rate",
    "retry_after_error_rate",
    "retry_after_seconds",
    "html_error_rate",
    "reset_rate",
    "slow_rate",
    "slow_seconds",
)
_FAULT_KEYS = (*_REQUEST_FAULT_KEYS, "conflict_rate")


@dataclass(frozen=True)
class SentinelFaults:
    """``requests``: errors (ARM's JSON, with or without ``Retry-After``, or a gateway's HTML
    page), resets and slow answers per ARM or ingestion request (the Defender emulator's
    machinery); ``conflict_rate``: the chance that an incident PUT meets a concurrent
    edit that has just changed the stored etag."""

    requests: FaultSettings = field(default_factory=FaultSettings)
    conflict_rate: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> SentinelFaults:
        """Parse ``error_rate=..,retry_after_error_rate=..,retry_after_seconds=..,
        html_error_rate=..,reset_rate=..,slow_rate=..,slow_seconds=..,conflict_rate=..``.

        Unknown keys, values that are not numbers and rates outside [0, 1] raise ValueError.
        """
        if not spec or not spec.strip():
            return cls()
        request_parts: list[str] = []
        conflict_rate = 0.0
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in _FAULT_KEYS:
                raise ValueError(
                    f"unknown fault setting {part!r}; known: {', '.join(sorted(_FAULT_KEYS))}"
                )
            if key == "conflict_rate":
                conflict_rate = _rate(key, raw)
            else:
                request_parts.append(f"{key}={raw.strip()}")
        return cls(FaultSettings.parse(",".join(request_parts)), conflict_rate)

    @property
    def any(self) -> bool:
        return self.requests.any_request_faults or self.conflict_rate > 0


def _rate(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"fault setting {key} needs a number, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"fault setting {key}={raw.strip()} is out of range")
    return value


def _uuid(seed: int, what: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"sentinel/{what}/{seed}"))


def _hex(seed: int, what: str) -> str:
    return hashlib.sha256(f"xdrsync-sentinel-emulator/{what}/{seed}".encode()).hexdigest()


@dataclass(frozen=True)
class SentinelSettings:
    """One Sentinel workspace, its Entra tenant and app, its DCR, and how the emulator behaves.

    Build it with :meth:`derived` (or :func:`settings_for`) to get seed-derived identifiers.
    """

    seed: int
    tenant_id: str
    client_id: str
    client_secret: str
    subscription_id: str
    resource_group: str
    workspace: str
    rule_id: str
    streams: tuple[str, ...] = STREAMS
    incidents: int = 0  # incidents already in the workspace at start
    rate_limit_per_minute: int | None = None  # ARM calls per minute before 429
    ingest_rate_limit_per_minute: int | None = INGESTION_REQUESTS_PER_MINUTE
    faults: SentinelFaults = field(default_factory=SentinelFaults)
    read_only: bool = False  # the app may read incidents but not write them (ARM 403)
    ingest_permission: bool = True  # the app holds Monitoring Metrics Publisher on the DCR
    token_lifetime_seconds: int = 3599
    certificate_pem: bytes | None = None  # the app's registered certificate, if it has one
    tenant_name: str = "contoso-soc"  # signs in as ``{tenant_name}.onmicrosoft.com`` too

    @classmethod
    def derived(cls, seed: int = 7, **overrides: object) -> SentinelSettings:
        """A reproducible workspace: the same seed always gives the same ids and secret."""
        settings = cls(
            seed=seed,
            tenant_id=_uuid(seed, "tenant"),
            client_id=_uuid(seed, "client"),
            client_secret=f"emu~{_hex(seed, 'secret')[:40]}",
            subscription_id=_uuid(seed, "subscription"),
            resource_group="rg-xdrsync-sentinel",
            workspace="law-xdrsync-sentinel",
            rule_id=f"dcr-{_hex(seed, 'dcr')[:32]}",
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]

    @property
    def workspace_path(self) -> str:
        """The workspace's ARM resource id."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.OperationalInsights/workspaces/{self.workspace}"
        )


def settings_for(
    *,
    seed: int = 7,
    incidents: int = 0,
    rate_limit_per_minute: int | None = None,
    ingest_rate_limit_per_minute: int | None = INGESTION_REQUESTS_PER_MINUTE,
    faults: str | None = None,
    read_only: bool = False,
    ingest_permission: bool = True,
    token_lifetime_seconds: int = 3599,
) -> SentinelSettings:
    """Settings as the command line builds them; a bad value raises ValueError naming it."""
    if incidents < 0:
        raise ValueError(f"incidents must be 0 or more, not {incidents}")
    for name, value in (
        ("rate limit", rate_limit_per_minute),
        ("ingestion rate limit", ingest_rate_limit_per_minute),
    ):
        if value is not None and value < 1:
            raise ValueError(f"the {name} must be at least 1 call per minute, not {value}")
    if token_lifetime_seconds < 1:
        raise ValueError(f"token lifetime must be at least 1 second, not {token_lifetime_seconds}")
    try:
        parsed = SentinelFaults.parse(faults)
    except ValueError as bad:
        raise ValueError(f"--faults {faults!r}: {bad}") from None
    return SentinelSettings.derived(
        seed,
        incidents=incidents,
        rate_limit_per_minute=rate_limit_per_minute,
        ingest_rate_limit_per_minute=ingest_rate_limit_per_minute,
        faults=parsed,
        read_only=read_only,
        ingest_permission=ingest_permission,
        token_lifetime_seconds=token_lifetime_seconds,
    )
