"""Who the emulator serves: its tenants, their credentials and budgets, and its own settings."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from xdrsync.emulator.faults import FaultSettings

_NAMESPACE = uuid.UUID("5b0f3c1e-8a47-4c51-9d7e-6f1f2c9b7a10")
_NAMES = ("contoso", "fabrikam", "northwind", "tailspin", "woodgrove", "adatum", "litware")

# The Graph application permissions an app registration can be granted on security data; Entra
# lists the granted ones in the access token's ``roles`` claim, and Graph checks them per call.
INCIDENT_READ = "SecurityIncident.Read.All"
INCIDENT_READ_WRITE = "SecurityIncident.ReadWrite.All"
ALERT_READ = "SecurityAlert.Read.All"
ALERT_READ_WRITE = "SecurityAlert.ReadWrite.All"
READ_WRITE_ROLES = (INCIDENT_READ_WRITE, ALERT_READ_WRITE)
READ_ONLY_ROLES = (INCIDENT_READ, ALERT_READ)


@dataclass(frozen=True)
class TenantSpec:
    """One emulated Entra tenant: the credentials its app registration accepts, its data."""

    name: str
    tenant_id: str
    client_id: str
    client_secret: str
    incidents: int = 200
    rate_limit_per_minute: int | None = None
    certificate_pem: bytes | None = None  # public certificate for client-assertion sign-in
    read_only: bool = False  # the app was granted the Read.All permissions only

    @property
    def roles(self) -> tuple[str, ...]:
        """The application permissions granted to the app, as its tokens' ``roles`` claim."""
        return READ_ONLY_ROLES if self.read_only else READ_WRITE_ROLES

    @classmethod
    def derived(cls, seed: int, index: int, **overrides: object) -> TenantSpec:
        """A reproducible tenant: the same seed and index always give the same ids and secret."""
        name = _NAMES[index % len(_NAMES)] + ("" if index < len(_NAMES) else str(index))
        digest = hashlib.sha256(f"xdrsync-emulator/{seed}/{index}".encode()).hexdigest()
        values: dict[str, object] = {
            "name": name,
            "tenant_id": str(uuid.uuid5(_NAMESPACE, f"tenant/{seed}/{index}")),
            "client_id": str(uuid.uuid5(_NAMESPACE, f"client/{seed}/{index}")),
            "client_secret": f"emu~{digest[:40]}",
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything ``xdrsync emulate defender`` takes on its command line."""

    tenants: tuple[TenantSpec, ...]
    seed: int = 7
    activity_per_minute: float = 0.0
    faults: FaultSettings = field(default_factory=FaultSettings)
    load_file: Path | None = None
    token_lifetime_seconds: int = 3599
    history_days: int = 30
    #: The newest generated incident of each tenant grows to this many alerts (0: as
    #: generated): a detection firing on a whole fleet (``stories.swell``).
    big_incident_alerts: int = 0
    #: ``$expand=alerts`` answers 500 for a page holding an incident with more alerts than
    #: this, on every request: Graph's lasting failure on big incidents (microsoft-apis.md
    #: §0.4, §6; the size at which it starts is not published). 0: never.
    expand_alert_limit: int = 1000
