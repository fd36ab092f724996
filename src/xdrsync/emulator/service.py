"""The running emulator: tenants' stores, tokens, throttling, faults, live activity and stats."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from xdrsync.emulator.activity import ActivityGenerator, AlertMove
from xdrsync.emulator.auth import TokenIssuer
from xdrsync.emulator.faults import ERROR_STATUSES, Fault, FaultSettings
from xdrsync.emulator.store import TenantStore
from xdrsync.emulator.stories import generate_incidents, newer_evidence, swell
from xdrsync.emulator.tenants import EmulatorSettings, TenantSpec
from xdrsync.emulator.timefmt import utcnow
from xdrsync.emulator.validation import as_respelled


class RateLimiter:
    """Sliding one-minute window per tenant; answers how long to wait when over the limit."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, now: float | None = None) -> float:
        """0 if the call is admitted (and counted), else the seconds until it would be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._calls and self._calls[0] <= now - 60.0:
                self._calls.popleft()
            if len(self._calls) >= self.per_minute:
                return max(self._calls[0] + 60.0 - now, 0.001)
            self._calls.append(now)
            return 0.0


def load_incidents(path: Path) -> list[dict[str, Any]]:
    """Read Graph-shaped incidents from a file: a list, or an object with a ``value`` list."""
    data = json.loads(path.read_text(encoding="utf-8"))
    incidents = data.get("value") if isinstance(data, dict) else data
    if not isinstance(incidents, list) or not all(
        isinstance(i, dict) and isinstance(i.get("id"), str) for i in incidents
    ):
        raise ValueError(f"{path}: expected a JSON list of incidents, each with a string 'id'")
    return incidents


class Emulator:
    """State shared by every request; the HTTP layer lives in ``emulator.app``."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.faults = settings.faults
        self.paused = False
        self.started_at = utcnow()
        self.tenants: dict[str, TenantSpec] = {}
        self.stores: dict[str, TenantStore] = {}
        self.limiters: dict[str, RateLimiter] = {}
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._rng = random.Random(settings.seed)
        self._rng_lock = threading.Lock()
        loaded = load_incidents(settings.load_file) if settings.load_file else None
        for index, tenant in enumerate(settings.tenants):
            self.tenants[tenant.tenant_id] = tenant
            if loaded is not None:
                mine = [
                    i
                    for i in loaded
                    if i.get("tenantId") == tenant.tenant_id
                    or (
                        index == 0
                        and i.get("tenantId") not in {t.tenant_id for t in settings.tenants}
                    )
                ]
            else:
                mine = generate_incidents(
                    seed=settings.seed * 1000 + index,
                    count=tenant.incidents,
                    tenant_id=tenant.tenant_id,
                    now=self.started_at,
                    span=timedelta(days=settings.history_days),
                )
                if mine and settings.big_incident_alerts:
                    swell(mine[-1], settings.big_incident_alerts)
                for incident in mine:
                    for alert in incident.get("alerts") or ():
                        if self.faults.new_evidence(tenant.tenant_id, str(alert["id"])):
                            alert["evidence"].append(newer_evidence(alert))
            self.stores[tenant.tenant_id] = TenantStore(
                tenant.tenant_id,
                mine,
                late_seconds=self._late_seconds,
                comment_bumps=self._comment_bumps,
            )
            if tenant.rate_limit_per_minute:
                self.limiters[tenant.tenant_id] = RateLimiter(tenant.rate_limit_per_minute)
        self._keys = self._sign_in_keys()
        self.issuer = TokenIssuer(self._keys, settings.token_lifetime_seconds)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- tenants -------------------------------------------------------------------------

    def _sign_in_keys(self) -> dict[str, TenantSpec]:
        """Tokens may be requested by tenant id or by the tenant's domain-like name."""
        keys: dict[str, TenantSpec] = {}
        for tenant in self.tenants.values():
            keys[tenant.tenant_id] = tenant
            keys[f"{tenant.name}.onmicrosoft.com"] = tenant
        return keys

    def issuer_keys(self) -> dict[str, TenantSpec]:
        return self._keys

    def store(self, tenant_id: str) -> TenantStore:
        return self.stores[tenant_id]

    def default_tenant(self) -> str:
        return self.settings.tenants[0].tenant_id

    def set_faults(self, faults: FaultSettings) -> None:
        self.faults = faults

    def _late_seconds(self) -> float:
        return 0.0 if self.paused else self.faults.late_seconds

    # -- per-request decisions -----------------------------------------------------------

    def throttle(self, tenant_id: str) -> float:
        limiter = self.limiters.get(tenant_id)
        return limiter.admit() if limiter else 0.0

    def draw_fault(self) -> Fault:
        if self.paused or not self.faults.any_request_faults:
            return Fault.NONE
        with self._rng_lock:
            return self.faults.draw(self._rng)

    def tie_order(self) -> random.Random | None:
        """For one listing request: the order in which its records sharing a stamp come, when
        ``tie_shuffle_rate`` draws a new one (None: by id, as always)."""
        if self.paused or not self.faults.tie_shuffle_rate:
            return None
        with self._rng_lock:
            if self._rng.random() >= self.faults.tie_shuffle_rate:
                return None
            return random.Random(self._rng.getrandbits(64))

    def _comment_bumps(self) -> bool:
        """For one comment: whether it moves its record's lastUpdateDateTime."""
        if self.paused or not self.faults.unbumped_comment_rate:
            return True
        with self._rng_lock:
            return self._rng.random() >= self.faults.unbumped_comment_rate

    def order_ignored(self) -> bool:
        """For one listing request: whether ``ignored_orderby_rate`` has it ignore $orderby."""
        return self._drawn(self.faults.ignored_orderby_rate, "ignored_orderby")

    def order_refused(self) -> bool:
        """For one listing request with ``$orderby``: whether ``refused_orderby_rate`` has
        it refused."""
        return self._drawn(self.faults.refused_orderby_rate, "refused_orderby")

    def pair_refused(self) -> bool:
        """For one PATCH setting a pair outside the documented table: whether
        ``refused_pair_rate`` has it refused."""
        return self._drawn(self.faults.refused_pair_rate, "refused_pair")

    def _drawn(self, rate: float, fault: str) -> bool:
        """Whether a fault of this ``rate`` strikes one request (counted; never while
        paused)."""
        if self.paused or not rate:
            return False
        with self._rng_lock:
            struck = self._rng.random() < rate
        if struck:
            self.count(f"fault:{fault}")
        return struck

    def error_status(self, fault: Fault) -> int:
        """The status an injected error answers with this time (``faults.ERROR_STATUSES``)."""
        with self._rng_lock:
            return self._rng.choice(ERROR_STATUSES[fault])

    def as_read(self, tenant_id: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """``record`` as a read answers it: respelled when ``respelled_rate`` picks it (an
        incident's alerts each by its own id)."""
        if self.paused or not self.faults.respelled_rate or not isinstance(record, Mapping):
            return record  # (a replayed file may hold anything)
        alerts = record.get("alerts")
        if isinstance(alerts, list):
            record = {**record, "alerts": [self.as_read(tenant_id, a) for a in alerts]}
        if self.faults.respelled(tenant_id, str(record.get("id"))):
            return as_respelled(record)
        return record

    def expand_fails(self, tenant_id: str, incidents: Sequence[Mapping[str, Any]]) -> bool:
        """Whether ``$expand=alerts`` answers 500 for a page of these incidents: one of them
        is too big (always, as Graph does), or ``expand_error_rate`` picked one."""
        if self.too_big_to_expand(incidents):
            return True  # counted as expand_big_incident
        if self.paused:
            return False
        if any(self.faults.expand_fails_for(tenant_id, str(i.get("id"))) for i in incidents):
            self.count("fault:expand")
            return True
        return False

    def too_big_to_expand(self, incidents: Sequence[Mapping[str, Any]]) -> bool:
        """Whether one of these incidents has more alerts than ``expand_alert_limit``."""
        limit = self.settings.expand_alert_limit
        if limit and any(len(i.get("alerts") or ()) > limit for i in incidents):
            self.count("fault:expand_big_incident")
            return True
        return False

    def count(self, *keys: str) -> None:
        with self._stats_lock:
            for key in keys:
                self.stats[key] += 1

    def stats_snapshot(self) -> dict[str, Any]:
        with self._stats_lock:
            stats = dict(self.stats)
        routes = {k[6:]: v for k, v in stats.items() if k.startswith("route:")}
        return {
            "requests": sum(routes.values()),
            "by_route": routes,
            "throttled": stats.get("throttled", 0),
            "faults": {k[6:]: v for k, v in stats.items() if k.startswith("fault:")},
            "unauthorized": stats.get("unauthorized", 0),
            "forbidden": stats.get("forbidden", 0),
            "tokens_issued": stats.get("tokens", 0),
            "by_tenant": {k[7:]: v for k, v in stats.items() if k.startswith("tenant:")},
            "paused": self.paused,
            "incidents": {t: s.count() for t, s in self.stores.items()},
        }

    # -- live activity -------------------------------------------------------------------

    def pause(self) -> None:
        self.paused = True
        for store in self.stores.values():
            store.flush_pending()

    def resume(self) -> None:
        self.paused = False

    def start_activity(self) -> None:
        if self.settings.activity_per_minute <= 0:
            return
        for index, tenant_id in enumerate(self.tenants):
            thread = threading.Thread(
                target=self._activity_loop,
                args=(tenant_id, self.settings.seed * 1000 + index),
                name=f"activity-{tenant_id[:8]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _activity_loop(self, tenant_id: str, seed: int) -> None:
        generator = ActivityGenerator(seed=seed, tenant_id=tenant_id)
        pace = random.Random(seed)
        store = self.stores[tenant_id]
        mean_gap = 60.0 / self.settings.activity_per_minute
        while not self._stop.wait(pace.expovariate(1.0 / mean_gap)):
            if self.paused:
                continue
            with store.lock:
                change = generator.next_change(
                    store.incidents_view(), utcnow(), move_rate=self.faults.moved_alert_rate
                )
                store.apply(change)
            self.count("activity")
            if isinstance(change, AlertMove):
                self.count("fault:moved_alert")


def _tenant_index(specs: list[TenantSpec], wanted: int | str) -> int:
    """Where ``wanted`` (an index, also as digits, a tenant name or id) sits in ``specs``."""
    for i, spec in enumerate(specs):
        if wanted in (spec.name, spec.tenant_id) or str(wanted) == str(i):
            return i
    raise ValueError(f"read-only tenant {wanted!r} is not one of the {len(specs)} tenants")


def settings_for(
    *,
    seed: int = 7,
    incidents: int = 200,
    tenants: int = 1,
    activity_per_minute: float = 0.0,
    rate_limit_per_minute: int | None = None,
    faults: str | None = None,
    load_file: Path | None = None,
    token_lifetime_seconds: int = 3599,
    read_only_tenants: Collection[int | str] = (),
    big_incident_alerts: int = 0,
) -> EmulatorSettings:
    """Settings as the command line builds them: ``tenants`` derived tenants sharing the knobs.

    ``read_only_tenants`` names the tenants whose app was granted read permissions only, by
    index (0 is the first, as an int or digits), name or tenant id; one that matches no tenant
    is a ValueError. ``big_incident_alerts``: see ``EmulatorSettings``.
    """
    specs = [
        TenantSpec.derived(
            seed, i, incidents=incidents, rate_limit_per_minute=rate_limit_per_minute
        )
        for i in range(tenants)
    ]
    for wanted in read_only_tenants:
        index = _tenant_index(specs, wanted)
        specs[index] = replace(specs[index], read_only=True)
    return EmulatorSettings(
        tenants=tuple(specs),
        seed=seed,
        activity_per_minute=activity_per_minute,
        faults=FaultSettings.parse(faults),
        load_file=load_file,
        token_lifetime_seconds=token_lifetime_seconds,
        big_incident_alerts=big_incident_alerts,
    )
