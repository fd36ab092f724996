"""Evidence items the models kept unparsed (``models.UnparsedEvidence``), counted per stream.

Graph changing the shape of a property costs no record (the item is kept whole), but the
operator has to be able to see that it happens long after the log's warning scrolled away.
The hub counts such items in the stream's state document, under ``KEY``, in the transaction
that stores their alert's version (``hub.apply``): a crash neither loses nor doubles a count.
Items are counted once per alert version stored, not per read: the lookback reads the same
version every cycle, and a re-read stores nothing.

Pure (no models, no database): ``state show`` reads it without the sync machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

#: Where the tally lives in a stream's state document. The hub owns it: a state document
#: the engine saves (``StreamState.to_doc`` knows nothing of it) keeps the stored tally.
KEY: Final = "unparsed_evidence"


@dataclass(frozen=True)
class UnparsedTally:
    """How many evidence items of stored alert versions did not fit their type, and the
    latest of them: its reason (types only, never values), @odata.type, alert and when."""

    items: int = 0
    reason: str = ""
    evidence_type: str = ""
    alert_id: str = ""
    last_seen: datetime | None = None

    def plus(self, later: UnparsedTally) -> UnparsedTally:
        """This tally with ``later``'s items added; the latest item is ``later``'s."""
        if not later.items:
            return self
        return replace(later, items=self.items + later.items)

    def to_doc(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "reason": self.reason,
            "evidence_type": self.evidence_type,
            "alert_id": self.alert_id,
            "last_seen": None if self.last_seen is None else self.last_seen.isoformat(),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> UnparsedTally:
        """The tally a stream's state document holds (none: zero items)."""
        kept = (doc or {}).get(KEY)
        if not isinstance(kept, Mapping):
            return cls()
        items = kept.get("items")
        seen = kept.get("last_seen")
        try:
            last_seen = datetime.fromisoformat(seen) if isinstance(seen, str) and seen else None
        except ValueError:
            last_seen = None
        if last_seen is not None and last_seen.tzinfo is None:
            last_seen = last_seen.replace(tzinfo=UTC)
        return cls(
            items=items if isinstance(items, int) and not isinstance(items, bool) else 0,
            reason=str(kept.get("reason") or ""),
            evidence_type=str(kept.get("evidence_type") or ""),
            alert_id=str(kept.get("alert_id") or ""),
            last_seen=last_seen,
        )


#: What an operator does about it, said wherever the count is shown. (A `backfill` alone does
#: not help: the same version read again has the same content, and the guard stores nothing.)
ADVICE: Final = (
    "Nothing is lost: each item is kept whole in the hub (its alert's payload) and in "
    "AlertEvidence's AdditionalFields. An xdrsync upgrade that knows the new shape reads it "
    "from the hub, and stores the alert's next version in full; `xdrsync destinations "
    "replay tables --from-seq N` rewrites the log tables' rows from change N on."
)


__all__ = ["ADVICE", "KEY", "UnparsedTally"]
