"""The hub's typed inputs and outputs: what the sync engine hands in and what readers get back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, Literal

from xdrsync import jsontext
from xdrsync.hub.payload import version_text

if TYPE_CHECKING:
    from xdrsync.models import Alert, Incident

EntityType = Literal["incident", "alert"]
ChangeKind = Literal["insert", "update", "membership"]
#: The kind of change an incident gets when alerts left it and Graph did not show it again
#: (``hub.membership``): its current version, shown with the alerts it has now.
MEMBERSHIP: Final = "membership"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record that could not be parsed: kept verbatim with the reason, never dropped."""

    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class InboundBatch:
    """One page of one stream, committed in one transaction with the stream's new state.

    ``state=None`` leaves the stored state as it is (backfill and mid-window pages).
    """

    tenant_id: str
    stream: str
    incidents: Sequence[Incident] = ()
    alerts: Sequence[Alert] = ()
    quarantined: Sequence[Quarantined] = ()
    state: Mapping[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class EntityCounts:
    """How many records of one type got each version-guard decision."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one ``commit_batch`` did. ``first_seq..last_seq`` is the change range it assigned
    (both None when nothing changed)."""

    incidents: EntityCounts = EntityCounts()
    alerts: EntityCounts = EntityCounts()
    quarantined: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    changed_incident_ids: tuple[str, ...] = ()
    changed_alert_ids: tuple[str, ...] = ()

    @property
    def inserted(self) -> int:
        return self.incidents.inserted + self.alerts.inserted

    @property
    def updated(self) -> int:
        return self.incidents.updated + self.alerts.updated

    @property
    def unchanged(self) -> int:
        return self.incidents.unchanged + self.alerts.unchanged

    @property
    def stale(self) -> int:
        return self.incidents.stale + self.alerts.stale

    @property
    def seqs(self) -> range:
        if self.first_seq is None or self.last_seq is None:
            return range(0)
        return range(self.first_seq, self.last_seq + 1)


@dataclass(frozen=True, slots=True)
class StreamStateRow:
    """One (tenant, stream): the engine's state document plus what ``state show`` needs."""

    tenant_id: str
    stream: str
    doc: dict[str, Any] | None
    updated_at: datetime | None  # when the document last changed
    last_commit_at: datetime | None  # when any batch of this stream last committed
    last_error: str | None
    last_error_at: datetime | None
    quarantined: int = 0


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    """One line of the incident queue."""

    tenant_id: str
    id: str
    display_name: str | None
    status: str | None
    severity: str | None
    classification: str | None
    determination: str | None
    assigned_to: str | None
    created_date_time: datetime | None
    last_update_date_time: datetime
    merged_into: str | None
    alert_count: int
    seq: int


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One stored version of an incident or alert. ``seq`` is None for a version that arrived
    after a newer one (kept for the record, never fanned out)."""

    tenant_id: str
    entity_type: EntityType
    entity_id: str
    version: datetime
    version_text: str
    content_hash: str
    seq: int | None
    recorded_at: datetime
    payload: dict[str, Any]
    alert_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ChangeRow:
    """One entry of the change sequence that destinations read in ``seq`` order.

    ``payload`` is that version's Graph payload (an incident's without its alerts; they have
    their own rows), parsed from ``payload_text`` on first use: a destination that needs only
    the columns (the queue's index) never pays for parsing it. ``incident_id`` is the alert's
    incident, or the incident's own id.

    A ``membership`` change (``kind``) is an incident's whose alerts changed without a new
    version of it (``hub.membership``): ``payload`` and ``version`` are its current version
    then, stated again, ``alert_ids`` None.
    """

    seq: int
    tenant_id: str
    entity_type: EntityType
    entity_id: str
    incident_id: str | None
    version: datetime
    version_text: str
    kind: ChangeKind
    at: datetime
    payload_text: str
    alert_ids: tuple[str, ...] | None = None
    modified_by: str | None = None  # the workspace user, when the version echoes our write

    @cached_property
    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = jsontext.loads(self.payload_text)
        return parsed


@dataclass(frozen=True, slots=True)
class CommentRow:
    """A comment as shown on an incident; ``incident_id`` is where Defender keeps it (an
    absorbed incident's id when it reached the survivor through a merge)."""

    tenant_id: str
    incident_id: str
    entity_type: EntityType
    entity_id: str
    created_date_time: datetime | None
    created_by: str | None
    comment: str | None
    first_seen_at: datetime
    written_by: str | None = None  # the workspace user, when xdrsync posted it for them
    written_from: str | None = None  # where that user wrote it (the outbox's origin)
    comment_key: str | None = None  # the hub's key of the comment (what an edit names)


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """One evidence item of one alert."""

    tenant_id: str
    alert_id: str
    incident_id: str | None
    ordinal: int
    odata_type: str | None
    kind: str | None
    entity_kind: str | None
    entity_key: str | None
    display_name: str | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    id: int
    tenant_id: str
    stream: str
    at: datetime
    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One sync decision (or a batch summary, ``entity_type == "batch"``)."""

    id: int
    at: datetime
    tenant_id: str
    stream: str | None
    entity_type: str
    entity_id: str | None
    decision: str
    old_version: str | None
    new_version: str | None
    seq: int | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CursorRow:
    """A destination's acknowledged position and how its deliveries are going."""

    name: str
    seq: int
    updated_at: datetime
    delivered_at: datetime | None = None
    error: str | None = None  # the last failure, kept until a delivery succeeds
    failing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class RemoteCopy:
    """A record as xdrsync last wrote (or read) it in a destination."""

    name: str
    tenant_id: str
    entity_id: str
    etag: str
    properties: dict[str, Any]
    children: frozenset[str] = frozenset()  # e.g. the comments xdrsync wrote on it
    pending: dict[str, Any] | None = None  # being written now (a write may have landed)


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A change one destination rejected for good, and why."""

    id: int
    destination: str
    seq: int
    tenant_id: str
    entity_type: str
    entity_id: str
    reason: str
    at: datetime


OutboxState = Literal["pending", "confirmed", "failed", "conflict", "overridden", "replaced"]


@dataclass(frozen=True, slots=True)
class NewEdit:
    """One edit of one field (or one comment) to queue for Defender."""

    tenant_id: str
    entity_type: EntityType
    entity_id: str
    field: str
    seen: Any
    wanted: Any
    author: str
    origin: str
    #: When the user made the edit, where the client knows it (Sentinel's
    #: ``lastModifiedTimeUtc``); None: when it is queued. ``latest_wins`` compares it.
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An edit in the outbox. ``state``: pending (to push), confirmed (Defender has it),
    failed (Defender refused it, or it cannot be pushed), conflict (a ``manual`` field
    waiting for ``conflicts resolve``), overridden (Defender's concurrent change won),
    replaced (a conflict the user settled by editing the same field again)."""

    id: int
    tenant_id: str
    entity_type: EntityType
    entity_id: str
    field: str
    seen: Any
    wanted: Any
    author: str
    origin: str
    created_at: datetime
    state: OutboxState
    attempts: int
    next_attempt_at: datetime | None
    sent_at: datetime | None
    done_at: datetime | None
    outcome: str | None
    written_version: int | None
    comment_key: str | None
    theirs: Any = None
    #: Tries in a row Defender answered 409 Conflict (``Pusher._failed_call``): 0 once a try
    #: fails otherwise or the edit is settled.
    conflicts: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of one edit, as the pusher decided it (see ``hub.outbox.settle``)."""

    row: OutboxRow
    state: OutboxState
    decision: str
    detail: Mapping[str, Any]
    written_version: int | None = None
    comment_key: str | None = None
    entity_id: str | None = None  # retargeted (a comment on an incident merged away)
    # Defender's value at the merge (kept with a conflict), boxed so that None can be one: a
    # conflict against an unassigned owner must not keep the owner an earlier merge saw.
    theirs: tuple[Any] | None = None
    # A new "seen", boxed so that None can be one (a conflict resolved for the workspace is
    # merged again from the value Defender had).
    reseen: tuple[Any] | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """A version Defender made of our write, and who asked for it."""

    tenant_id: str
    entity_type: EntityType
    entity_id: str
    version: int
    author: str
    origin: str
    fields: Mapping[str, Any]


def restated_rows(
    seq: int, tenant_id: str, incident_id: str, current: tuple[int, str], now: datetime
) -> tuple[dict[str, object], dict[str, object]]:
    """The change-log row and the audit row (without its stream and detail) of a
    ``membership`` change: the incident's current version (``current``: its version and
    content hash) stated again at ``seq``, so that every destination delivers it again
    (``hub.membership``, ``hub.outbox.restate``)."""
    version, digest = current
    change: dict[str, object] = {
        "seq": seq,
        "tenant_id": tenant_id,
        "entity_type": "incident",
        "entity_id": incident_id,
        "incident_id": incident_id,
        "version": version,
        "content_hash": digest,
        "kind": MEMBERSHIP,
        "origin": "graph",
        "at": now,
        "modified_by": None,
    }
    audit: dict[str, object] = {
        "at": now,
        "tenant_id": tenant_id,
        "entity_type": "incident",
        "entity_id": incident_id,
        "decision": MEMBERSHIP,
        "old_version": version_text(version),
        "new_version": version_text(version),
        "seq": seq,
    }
    return change, audit
