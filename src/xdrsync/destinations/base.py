"""The seam every destination plugs into.

A destination receives the hub's changes in ``seq`` order, in batches. For each batch it either
takes it — all of it, except the changes it rejects for good, which it names with a reason — or
raises: ``RetriableError`` (``ThrottledError`` with the wait the server asked for) when the
same batch may succeed later, ``ConfigError`` when an operator must act (a missing role, a
wrong workspace). The runner (``runner.py``) turns that into a cursor, dead letters, backoff
and health; a destination does no bookkeeping of its own.

Delivery is at-least-once across crashes: a batch delivered but not yet acknowledged is
delivered again, so ``deliver`` must be idempotent per change (a deterministic id, a row that
carries its change number) — the contract suite in tests/destinations checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

from xdrsync.hub import ChangeRow


@dataclass(frozen=True, slots=True)
class Rejection:
    """A change the destination will never take, and why (kept as a dead letter)."""

    seq: int
    reason: str


#: What a row builder raises on values of a shape no one foresaw (the models keep unknown
#: evidence types as Graph sends them), or nested deeper than Python recurses: that change is
#: rejected as a dead letter, not the batch, so the changes after it go on.
UNMAPPABLE: Final = (
    AttributeError,
    LookupError,
    TypeError,
    ValueError,
    OverflowError,
    RecursionError,
)


class Destination(Protocol):
    """What the fan-out needs of a destination."""

    @property
    def name(self) -> str:
        """Unique among the configured destinations; names its cursor in the hub."""
        ...

    @property
    def batch_size(self) -> int:
        """Changes per delivery (and per acknowledgement)."""
        ...

    def position(self) -> int | None:
        """The destination's own record of the last change it holds, when it keeps one in
        the same transaction as the data (the log tables do); None to use the hub's cursor."""
        ...

    def accepts(self, change: ChangeRow) -> bool:
        """Whether this change is for this destination at all (e.g. its tenants only)."""
        ...

    def deliver(self, changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        """Send these changes (a non-empty batch, in seq order); return the ones rejected for
        good. Raise ``RetriableError``/``ConfigError`` to have the whole batch retried later."""
        ...

    def replay_from(self, seq: int) -> None:
        """Prepare to receive every change from ``seq`` on again (``destinations replay``)."""
        ...

    def check(self) -> list[str]:
        """One cheap call per API it uses (``xdrsync check``): lines saying what works; raises
        ``ConfigError`` naming what is missing, ``RetriableError`` if unreachable."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ReadsNoPayloads(Protocol):
    """A destination that reads only the changes' own columns (the console's queue index
    reads the hub's tables): its batches come without payloads (``ChangeRow.payload_text``
    empty, ``alert_ids`` None), which spares a backlog's worker reading about 27 MB of
    payload text per 1,000 incidents for it."""

    reads_payloads: Literal[False]


@runtime_checkable
class KeepsRefusals(Protocol):
    """A destination that keeps its own position (``Destination.position``) and, in the same
    transaction, the changes it rejected for good: after a crash between its commit and the
    hub's acknowledgement, the runner records their dead letters from here."""

    def refused_after(self, seq: int) -> dict[int, str]:
        """The changes after ``seq`` it rejected for good, with their reasons, by seq."""
        ...
