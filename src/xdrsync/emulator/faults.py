"""Fault settings of the emulator (``--faults``) and the per-request decision they imply."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Final


class Fault(Enum):
    """What the emulator does to one request instead of answering it normally."""

    NONE = "none"
    ERROR = "error"  # 500 or 503 with Graph's error body
    RETRY_AFTER_ERROR = "retry_after_error"  # 503 or 504 with Graph's error body and Retry-After
    BARE_THROTTLE = "bare_throttle"  # 429 with Graph's error body and no Retry-After
    HTML_ERROR = "html_error"  # 502, 503 or 504 from a gateway in front: an HTML page, not JSON
    RESET = "reset"  # the connection drops in the middle of the response
    SLOW = "slow"  # the answer comes, but only after ``slow_seconds``


#: The statuses an injected error answers with, one drawn per request.
ERROR_STATUSES: Final[Mapping[Fault, tuple[int, ...]]] = {
    Fault.ERROR: (500, 503),
    Fault.RETRY_AFTER_ERROR: (503, 504),
    Fault.HTML_ERROR: (502, 503, 504),
}
#: The code Graph's and ARM's JSON error bodies give each status.
ERROR_CODES: Final[Mapping[int, str]] = {
    500: "InternalServerError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


@dataclass(frozen=True)
class FaultSettings:
    """Rates are probabilities per Graph request (per record where a field says so: the
    same record then always gets the same answer); ``late_seconds`` delays listing
    visibility."""

    error_rate: float = 0.0
    #: 503 (Graph busy) or 504 (gateway timeout) saying when to come back: ``Retry-After``
    #: of ``retry_after_seconds`` (Graph's throttling guidance honours it on 503 too).
    retry_after_error_rate: float = 0.0
    retry_after_seconds: float = 1.0
    #: 429 without ``Retry-After``: the client has to pick its own backoff.
    bare_throttle_rate: float = 0.0
    #: 502, 503 or 504 whose body is a front door's or proxy's HTML page (text/html).
    html_error_rate: float = 0.0
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    expand_error_rate: float = 0.0
    late_seconds: float = 0.0
    #: Listing requests whose records sharing a stamp come in a new random order (OData
    #: leaves the order among equal ``$orderby`` values to the service).
    tie_shuffle_rate: float = 0.0
    #: Listing requests answered in the default order (newest created first) whatever
    #: ``$orderby`` asks: Microsoft documents no ``$orderby`` for these lists (reference §2.8),
    #: so a client must notice and read otherwise.
    ignored_orderby_rate: float = 0.0
    #: Listing requests with ``$orderby`` refused with OData's 400 ("Query option 'OrderBy'
    #: is not allowed..."): a service without it may refuse it rather than ignore it.
    refused_orderby_rate: float = 0.0
    #: That share of PATCHes setting a classification/determination pair outside the legacy
    #: update page's table (reference §2.3; ``apt`` and ``securityPersonnel`` are in no row,
    #: deprecated since 2022) refused with 400 naming the pair (``validation.unlisted_pair``).
    #: Whether Graph refuses such a pair is not documented; a client must cope if it does.
    refused_pair_rate: float = 0.0
    #: That share of records, chosen by id (the same on every read), read with their enum
    #: values spelled as some of Graph's answers spell them (``validation.as_respelled``).
    respelled_rate: float = 0.0
    #: That share of comments leave their record's ``lastUpdateDateTime`` as it was: whether
    #: a comment moves it is undocumented (reference §2.8), so a client must not rely on it.
    unbumped_comment_rate: float = 0.0
    #: That share of live-activity steps move one alert of an open incident to another open
    #: incident without a merge (an analyst's or correlation's move), stamping the alert and
    #: the incident it joins but not the one it leaves: whether Defender stamps that one is
    #: undocumented (reference §1.6), so a client must not wait for its new version.
    moved_alert_rate: float = 0.0
    #: That share of seeded alerts, chosen by id, carry one more evidence item of a type no
    #: client knows yet (``stories.newer_evidence``): "new types keep appearing" (§2.6).
    new_evidence_rate: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> FaultSettings:
        """Parse ``error_rate=0.05,reset_rate=0.02,...``; unknown keys or bad values raise."""
        settings = cls()
        if not spec:
            return settings
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ValueError(
                    f"unknown fault setting {part!r}; known: {', '.join(sorted(known))}"
                )
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"fault setting {key} needs a number, got {raw!r}") from None
            if value < 0 or (key.endswith("_rate") and value > 1):
                raise ValueError(f"fault setting {key}={raw} is out of range")
            values[key] = value
        return replace(settings, **values)

    @property
    def any_request_faults(self) -> bool:
        return any(rate > 0 for _, rate in self._request_rates())

    def _request_rates(self) -> tuple[tuple[Fault, float], ...]:
        return (
            (Fault.ERROR, self.error_rate),
            (Fault.RETRY_AFTER_ERROR, self.retry_after_error_rate),
            (Fault.BARE_THROTTLE, self.bare_throttle_rate),
            (Fault.HTML_ERROR, self.html_error_rate),
            (Fault.RESET, self.reset_rate),
            (Fault.SLOW, self.slow_rate),
        )

    def draw(self, rng: random.Random) -> Fault:
        """Pick the fault for one request (at most one; rates adding up past 1 leave the
        later faults the rest)."""
        roll = rng.random()
        for fault, rate in self._request_rates():
            if roll < rate:
                return fault
            roll -= rate
        return Fault.NONE

    def expand_fails_for(self, tenant_id: str, incident_id: str) -> bool:
        """Whether ``$expand=alerts`` breaks on this incident.

        Deterministic per incident, like the real failure (it follows big incidents, not
        chance): retrying the same page keeps failing, so only a fallback gets through.
        """
        return _picked(self.expand_error_rate, f"{tenant_id}/{incident_id}")

    def respelled(self, tenant_id: str, record_id: str) -> bool:
        """Whether reads spell this record's enum values otherwise (deterministic per record,
        so a record reads the same every time)."""
        return _picked(self.respelled_rate, f"respelled/{tenant_id}/{record_id}")

    def new_evidence(self, tenant_id: str, alert_id: str) -> bool:
        """Whether this seeded alert carries an evidence item of a type no client knows."""
        return _picked(self.new_evidence_rate, f"new-evidence/{tenant_id}/{alert_id}")


def _picked(rate: float, key: str) -> bool:
    """Whether ``key`` is among the share ``rate`` of all keys (the same answer every time)."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate
