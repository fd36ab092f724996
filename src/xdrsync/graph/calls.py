"""Graph calls made by this process, per tenant: what the console's health page and
``/metrics`` report (requests, retries, 429s, failures...).

Every ``GraphClient`` adds its counts here as well as to its own ``stats()``, so the figures
survive a client being closed and rebuilt and are summed over all clients of a tenant. They are
in-process only: they start at zero when the process starts (``started_at``) and are never
stored. Pure and thread-safe; importing it loads nothing of the HTTP stack.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: The counters always reported, even when zero (``GraphClient`` records these names).
COUNTERS = ("requests", "retries", "throttled", "failures", "token_refreshes")


@dataclass(frozen=True, slots=True)
class TenantCalls:
    """One tenant's counters, and when it was last throttled (429) by Graph."""

    counts: dict[str, int] = field(default_factory=dict)
    last_throttled_at: datetime | None = None

    def get(self, name: str) -> int:
        return self.counts.get(name, 0)


_lock = threading.Lock()
_counts: dict[str, Counter[str]] = {}
_throttled_at: dict[str, datetime] = {}
_started_at = datetime.now(UTC)


def record(tenant_id: str, counter: str, amount: int = 1) -> None:
    """Add ``amount`` to one tenant's counter (called by ``GraphClient.record``)."""
    with _lock:
        _counts.setdefault(tenant_id, Counter())[counter] += amount
        if counter == "throttled":
            _throttled_at[tenant_id] = datetime.now(UTC)


def tenant_calls(tenant_id: str) -> TenantCalls:
    """The counters of one tenant (every name of ``COUNTERS``, zero if never counted)."""
    with _lock:
        found = _counts.get(tenant_id, Counter())
        counts = dict.fromkeys(COUNTERS, 0) | {name: int(n) for name, n in found.items()}
        return TenantCalls(counts=counts, last_throttled_at=_throttled_at.get(tenant_id))


def started_at() -> datetime:
    """Since when this process counts (the counters are not kept across restarts)."""
    return _started_at


def reset() -> None:
    """Forget every count (tests)."""
    global _started_at
    with _lock:
        _counts.clear()
        _throttled_at.clear()
        _started_at = datetime.now(UTC)


__all__ = ["COUNTERS", "TenantCalls", "record", "reset", "started_at", "tenant_calls"]
