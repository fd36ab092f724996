"""The running Sentinel emulator: its store, token issuer, rate limiters, faults and counters.

Rate limiting is the Defender emulator's sliding one-minute :class:`RateLimiter`, one for ARM
calls and one for ingestion calls. Request faults are drawn with the Defender emulator's
:class:`~xdrsync.emulator.faults.FaultSettings`; pausing suspends faults, not rate limits.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

from xdrsync.emulator.faults import ERROR_STATUSES, Fault
from xdrsync.emulator.sentinel.auth import WorkspaceIssuer
from xdrsync.emulator.sentinel.settings import SentinelFaults, SentinelSettings
from xdrsync.emulator.sentinel.store import WorkspaceStore
from xdrsync.emulator.service import RateLimiter
from xdrsync.emulator.tenants import TenantSpec

ARM = "arm"
INGESTION = "ingestion"


class SentinelEmulator:
    """State shared by every request; the HTTP layer lives in ``app``, ``arm``, ``ingestion``."""

    def __init__(self, settings: SentinelSettings) -> None:
        self.settings = settings
        self.faults: SentinelFaults = settings.faults
        self.paused = False
        self.store = WorkspaceStore(settings.workspace_path, settings.streams)
        if settings.incidents:
            self.store.seed(settings.incidents, settings.seed)
        self.tenant = TenantSpec(
            name=settings.tenant_name,
            tenant_id=settings.tenant_id,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            certificate_pem=settings.certificate_pem,
        )
        self.sign_in_keys = {
            settings.tenant_id: self.tenant,
            f"{settings.tenant_name}.onmicrosoft.com": self.tenant,
        }
        self.issuer = WorkspaceIssuer(self.sign_in_keys, settings.token_lifetime_seconds)
        self.limiters: dict[str, RateLimiter] = {}
        if settings.rate_limit_per_minute:
            self.limiters[ARM] = RateLimiter(settings.rate_limit_per_minute)
        if settings.ingest_rate_limit_per_minute:
            self.limiters[INGESTION] = RateLimiter(settings.ingest_rate_limit_per_minute)
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._rng = random.Random(f"xdrsync-sentinel-faults/{settings.seed}")
        self._rng_lock = threading.Lock()

    # -- per-request decisions -------------------------------------------------------------------

    def throttle(self, surface: str) -> float:
        """0 when the call is admitted, else the seconds until it would be."""
        limiter = self.limiters.get(surface)
        return limiter.admit() if limiter else 0.0

    def draw_fault(self) -> Fault:
        if self.paused or not self.faults.requests.any_request_faults:
            return Fault.NONE
        with self._rng_lock:
            return self.faults.requests.draw(self._rng)

    def error_status(self, fault: Fault) -> int:
        """The status an injected error answers with this time (``faults.ERROR_STATUSES``)."""
        with self._rng_lock:
            return self._rng.choice(ERROR_STATUSES[fault])

    def draw_conflict(self) -> bool:
        """Whether a concurrent writer saves the incident just before this PUT."""
        if self.paused or self.faults.conflict_rate <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < self.faults.conflict_rate

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    # -- counters --------------------------------------------------------------------------------

    def count(self, *keys: str) -> None:
        with self._stats_lock:
            for key in keys:
                self._stats[key] += 1

    def count_dropped(self, stream: str, lost: Counter[str]) -> None:
        """Values an upload lost to the rule's declaration (``ingestion.shape_rows``)."""
        with self._stats_lock:
            for key, n in lost.items():
                self._stats[f"dropped:{stream} {key}"] += n

    def stats_snapshot(self) -> dict[str, Any]:
        with self._stats_lock:
            stats = dict(self._stats)

        def group(prefix: str) -> dict[str, int]:
            return {k[len(prefix) :]: v for k, v in sorted(stats.items()) if k.startswith(prefix)}

        by_route = group("route:")
        by_status = group("status:")
        return {
            "requests": sum(by_route.values()),
            "by_route": by_route,
            "by_status": by_status,
            "throttled": group("throttled:"),
            "faults": group("fault:"),
            "conflicts": by_status.get("409", 0),
            "unauthorized": by_status.get("401", 0),
            "forbidden": by_status.get("403", 0),
            "tokens_issued": stats.get("tokens", 0),
            "paused": self.paused,
            "incidents": self.store.count(),
            "log_rows": self.store.row_counts(),
            # "<stream> column: <name>" (undeclared or reserved, dropped) and
            # "<stream> type: <name>" (not of the declared type, made null) → values.
            "ingestion_dropped": group("dropped:"),
        }
