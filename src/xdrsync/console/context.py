"""What every console route works with: the workspace's stores, the users, the tenants, and
the workspace's ids for incidents and alerts (``tenant~id``: unique across tenants)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import structlog
from fastapi import HTTPException

from xdrsync.config import Config
from xdrsync.console.accounts import Accounts, User
from xdrsync.hub import Hub
from xdrsync.tables.logstore import LogStore

log = structlog.get_logger(__name__)

#: Between the tenant's name and Defender's id in a workspace id; never in a tenant name.
ID_SEPARATOR: Final = "~"


@dataclass
class ConsoleContext:
    config: Config
    hub: Hub
    logs: LogStore
    accounts: Accounts = field(init=False)
    # Called after an edit is queued, so the pusher sends it now instead of at its next poll.
    wake_pusher: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.accounts = Accounts(self.hub)
        # Scopes a hub kept by name before 0014, resolved once with this config.
        for warning in self.accounts.settle_scopes(self.config.tenants):
            log.warning(warning)

    @property
    def names(self) -> dict[str, str]:
        """tenant_id → tenant name, for every configured tenant."""
        return {t.tenant_id: t.name for t in self.config.tenants}

    @property
    def ids(self) -> dict[str, str]:
        """tenant name → tenant_id."""
        return {t.name: t.tenant_id for t in self.config.tenants}

    def visible_tenant_ids(self, user: User) -> list[str]:
        """The tenant ids this user may see (every configured tenant for an unscoped user; by
        id, so a tenant that took a removed one's name is not a scoped user's)."""
        return [t.tenant_id for t in self.config.tenants if user.sees(t.tenant_id)]

    def visible_names(self, user: User) -> list[str]:
        """The names of the configured tenants this user may see, sorted."""
        return sorted(t.name for t in self.config.tenants if user.sees(t.tenant_id))

    def workspace_id(self, tenant_id: str, entity_id: str) -> str:
        return f"{self.names.get(tenant_id, tenant_id)}{ID_SEPARATOR}{entity_id}"

    def resolve(self, user: User, workspace_id: str, kind: str = "incident") -> tuple[str, str]:
        """(tenant_id, Defender's id) of a workspace id this user may see; 404 otherwise —
        the same answer whether the record is in another tenant or nowhere."""
        name, sep, entity_id = workspace_id.partition(ID_SEPARATOR)
        tenant_id = self.ids.get(name)
        if not sep or not entity_id or tenant_id is None or not user.sees(tenant_id):
            raise HTTPException(404, f"no {kind} {workspace_id}")
        return tenant_id, entity_id


__all__ = ["ID_SEPARATOR", "ConsoleContext"]
