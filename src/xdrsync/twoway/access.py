"""Whether a tenant takes workspace edits: the configuration, and what its app may do.

A tenant is read-only when ``[two_way] enabled = false`` (or its own ``two_way = false``), or
when its app registration lacks the write permission, which the ``roles`` claim of its token
tells (``graph.permissions``). ``xdrsync check`` and the pusher record what they found in the
hub (state stream ``two_way``), so that ``update`` can refuse an edit up front without signing
in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Final

from xdrsync.hub.records import EntityType

STREAM: Final = "two_way"
KINDS: Final[tuple[EntityType, ...]] = ("incident", "alert")


def read_only_reasons(
    tenant: str, enabled: bool, roles: Collection[str] | None
) -> dict[EntityType, str]:
    """Why each kind of record of ``tenant`` may not be edited (no entry: it may).
    ``roles`` None or empty means not known yet: edits are let through and Graph decides."""
    from xdrsync.graph.permissions import WRITE_PERMISSION, can_write  # not for mere readers

    if not enabled:
        reason = f"tenant {tenant} is read-only ([two_way] enabled = false in the config)"
        return dict.fromkeys(KINDS, reason)
    reasons: dict[EntityType, str] = {}
    for kind in KINDS:
        if roles and can_write(roles, kind) is False:
            reasons[kind] = (
                f"tenant {tenant} is read-only for {kind}s: its app registration lacks the "
                f"application permission {WRITE_PERMISSION[kind]} (grant it with admin "
                "consent, then run `xdrsync check`)"
            )
    return reasons


def capability_doc(roles: Collection[str], checked_at: datetime) -> dict[str, Any]:
    """What the hub keeps about a tenant's permissions."""
    return {"roles": sorted(roles), "checked_at": checked_at.isoformat()}


def recorded_roles(doc: Mapping[str, Any] | None) -> frozenset[str] | None:
    if not doc or not isinstance(doc.get("roles"), list):
        return None
    return frozenset(str(r) for r in doc["roles"])


__all__ = ["KINDS", "STREAM", "capability_doc", "read_only_reasons", "recorded_roles"]
