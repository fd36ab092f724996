"""The version guard as a pure function: what each incoming copy of one record does to the hub.

Rules (design §3, architecture §4.6), per key ``(tenant_id, id)``:

* new key → **insert**;
* a later ``lastUpdateDateTime``, or the same one with different content → **update**;
* the same version and content → **unchanged** (a re-read: nothing is written);
* an earlier version → **stale**: the current row stays. If that version was never stored
  before it is still written to the history (**late**): the history keeps every version that
  was ever read, but destinations never see it, because it is not the current state.

Two refinements keep re-reads silent:

* copies of one key inside a batch are applied oldest first, so a page that holds two versions
  of a record records both, whatever order Graph listed them in;
* at the current version, content that the history already holds counts as unchanged. The
  same alert reaches the hub from two streams (embedded in its incident and from alerts_v2);
  were their shapes ever to differ at one version, the streams would otherwise take turns
  "updating" it forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

Decision = Literal["insert", "update", "unchanged", "stale", "late"]
CHANGES: frozenset[Decision] = frozenset({"insert", "update"})
RECORDED: frozenset[Decision] = frozenset({"insert", "update", "late"})


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """A record version: ``lastUpdateDateTime`` in 100-ns ticks, then the content hash."""

    ticks: int
    content_hash: str


@dataclass(frozen=True, slots=True)
class Verdict(Generic[T]):
    """The decision for one incoming copy; ``previous`` is the current version it met."""

    item: T
    version: Version
    decision: Decision
    previous: Version | None


def needs_history(stored: Version | None, incoming: Iterable[Version]) -> bool:
    """Whether deciding needs the key's stored history (rare: only older or same-time-but-
    different copies need it), so the common path costs no extra query."""
    if stored is None:
        return False
    return any(
        version.ticks <= stored.ticks and version.content_hash != stored.content_hash
        for version in incoming
    )


def decide(
    stored: Version | None,
    incoming: Sequence[tuple[Version, T]],
    known: Iterable[Version] = (),
) -> list[Verdict[T]]:
    """Verdicts for every incoming copy of one key, oldest first (ties keep arrival order).

    ``stored`` is the current row's version, ``known`` the versions its history holds.
    """
    seen = set(known)
    if stored is not None:
        seen.add(stored)
    current = stored
    verdicts: list[Verdict[T]] = []
    for version, item in sorted(incoming, key=lambda pair: pair[0].ticks):
        decision = _one(current, version, seen)
        verdicts.append(Verdict(item, version, decision, current))
        if decision in RECORDED:
            seen.add(version)
        if decision in CHANGES:
            current = version
    return verdicts


def _one(current: Version | None, version: Version, seen: set[Version]) -> Decision:
    if current is None:
        return "insert"
    if version.ticks > current.ticks:
        return "update"
    if version.ticks == current.ticks:
        return "unchanged" if version in seen else "update"
    return "stale" if version in seen else "late"
