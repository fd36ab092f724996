"""The hub: the durable store every other part of xdrsync reads from or writes to.

One object per process; it is thread-safe (each call checks a connection out of the pool) and
several processes may share one database: writers queue on the database's write lock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from xdrsync.hub import destinations, outbox, reads, status
from xdrsync.hub.database import WRITE, create_hub_engine, upgrade
from xdrsync.hub.records import (
    ApplyResult,
    AuditRow,
    ChangeRow,
    CommentRow,
    CursorRow,
    DeadLetterRow,
    EntityType,
    EvidenceRow,
    InboundBatch,
    IncidentSummary,
    NewEdit,
    OutboxRow,
    OutboxState,
    QuarantineRow,
    RemoteCopy,
    Settlement,
    StreamStateRow,
    VersionRow,
    Written,
)
from xdrsync.hub.state import (
    advance_cursor,
    clear_error_and_save,
    lock_and_read_counter,
    save_error,
)

if TYPE_CHECKING:
    from xdrsync.models import Alert, Incident

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Hub:
    """Current state, history, change sequence, sync state, audit and quarantine."""

    def __init__(self, engine: Engine, *, clock: Clock = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    @classmethod
    def open(cls, url: str, *, clock: Clock = _utcnow) -> Hub:
        """Connect and migrate the schema to head (idempotent, safe across processes)."""
        engine = create_hub_engine(url)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, clock=clock)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        # One transaction per read call: multi-query reads see one consistent snapshot.
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def writing(self) -> AbstractContextManager[Connection]:
        """One write transaction, for the parts that keep their own tables in the hub (the
        console's accounts and queue index) with their own queries."""
        return self._write()

    def reading(self) -> AbstractContextManager[Connection]:
        """One read transaction (a consistent snapshot), for the same parts."""
        return self._read()

    # -- inbound ----------------------------------------------------------------------------

    def commit_batch(self, batch: InboundBatch) -> ApplyResult:
        """Apply one page in one transaction: data, history, change log, state and audit."""
        from xdrsync.hub.apply import apply_batch, prepare_batch  # the write path, when it writes

        prepared = prepare_batch(batch)
        with self._write() as conn:
            return apply_batch(conn, prepared, self._clock())

    def record_stream_error(
        self, tenant_id: str, stream: str, message: str, *, retry_at: datetime | None = None
    ) -> None:
        """Remember a stream's failure for ``state show``; the next successful commit clears it.
        ``retry_at``: the stream is not to be read before then (kept in its state document)."""
        with self._write() as conn:
            save_error(conn, tenant_id, stream, message, self._clock(), retry_at=retry_at)

    def save_state(self, tenant_id: str, stream: str, doc: Mapping[str, Any]) -> None:
        """Store a state document outside an inbound batch (e.g. a tenant's permissions)."""
        with self._write() as conn:
            lock_and_read_counter(conn)  # the writer lock: one first save of a stream
            clear_error_and_save(conn, tenant_id, stream, doc, self._clock())

    def get_state(self, tenant_id: str, stream: str) -> dict[str, Any] | None:
        with self._read() as conn:
            return status.get_state(conn, tenant_id, stream)

    def list_states(self) -> list[StreamStateRow]:
        with self._read() as conn:
            return status.list_states(conn)

    # -- current state and history ----------------------------------------------------------

    def get_incident(self, tenant_id: str, incident_id: str) -> Incident | None:
        """The incident as last read, with its current alerts (and their evidence) attached."""
        with self._read() as conn:
            return reads.get_incident(conn, tenant_id, incident_id)

    def current_alerts(
        self,
        keys: Sequence[tuple[str, str]],
        known: Mapping[int, Alert] | None = None,
        parse: Callable[[Mapping[str, Any]], Alert] | None = None,
    ) -> dict[tuple[str, str], list[Alert]]:
        """The current alerts of many (tenant, incident) keys in one read; alerts whose
        current version's change seq is in ``known`` are reused rather than parsed again,
        the others are parsed from their stored JSON by ``parse`` (``Alert.from_graph``)."""
        with self._read() as conn:
            return reads.current_alerts(conn, keys, known or {}, parse)

    def incident_steps(
        self, keys: Sequence[tuple[str, str]], held_from: int, up_to: int
    ) -> dict[tuple[str, str], list[reads.IncidentStep]]:
        """The recorded changes of many (tenant, incident) keys up to seq ``up_to``, oldest
        first, in one read; payloads only below ``held_from`` (``reads.incident_steps``)."""
        with self._read() as conn:
            return reads.incident_steps(conn, keys, held_from, up_to)

    def membership_versions(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[tuple[int, int]]]:
        """The versions the ``membership`` changes of many (tenant, incident) keys stated
        again, with their seqs (``reads.membership_versions``)."""
        with self._read() as conn:
            return reads.membership_versions(conn, keys)

    def alert_activity(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[datetime | None, datetime | None]]:
        """First and last activity of many (tenant, alert) keys, in one read."""
        with self._read() as conn:
            return reads.alert_activity(conn, keys)

    def get_alert(self, tenant_id: str, alert_id: str) -> Alert | None:
        with self._read() as conn:
            return reads.get_alert(conn, tenant_id, alert_id)

    def list_incidents(
        self,
        tenant_id: str | None = None,
        status: object = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[IncidentSummary]:
        """The queue, newest ``lastUpdateDateTime`` first; ``status`` is a wire value or enum."""
        with self._read() as conn:
            return reads.list_incidents(conn, tenant_id, status, limit, offset)

    def incident_history(self, tenant_id: str, incident_id: str) -> list[VersionRow]:
        """Every stored version of an incident, oldest first."""
        with self._read() as conn:
            return reads.history(conn, "incident", tenant_id, incident_id)

    def alert_history(self, tenant_id: str, alert_id: str) -> list[VersionRow]:
        with self._read() as conn:
            return reads.history(conn, "alert", tenant_id, alert_id)

    def get_merged_from(self, tenant_id: str, incident_id: str) -> list[str]:
        """Ids of the incidents Defender merged into this one (also through chains of merges)."""
        with self._read() as conn:
            return reads.merged_from(conn, tenant_id, incident_id)

    def list_comments(self, tenant_id: str, incident_id: str) -> list[CommentRow]:
        """The incident's comments plus those left on incidents merged into it."""
        with self._read() as conn:
            return reads.comments(conn, tenant_id, incident_id)

    def list_evidence(self, tenant_id: str, incident_id: str) -> list[EvidenceRow]:
        with self._read() as conn:
            return reads.evidence(conn, tenant_id, incident_id)

    # -- change sequence and destinations ---------------------------------------------------

    def changes_after(
        self, seq: int, limit: int = 500, *, payloads: bool = True
    ) -> list[ChangeRow]:
        """Changes with a seq above ``seq``, in seq order (without ``payloads``: with none,
        for a reader of their own columns)."""
        with self._read() as conn:
            return reads.changes_after(conn, seq, limit, payloads=payloads)

    def max_seq(self) -> int:
        with self._read() as conn:
            return status.max_seq(conn)

    def get_cursor(self, name: str) -> int:
        """A destination's acknowledged seq (0 before its first ack)."""
        with self._read() as conn:
            return status.get_cursor(conn, name)

    def set_cursor(self, name: str, seq: int) -> int:
        """Acknowledge up to ``seq``. A lower value than the stored one is ignored (a late or
        repeated ack must not replay); returns the cursor in effect."""
        with self._write() as conn:
            return advance_cursor(conn, name, seq, self._clock(), reset=False)

    def reset_cursor(self, name: str, seq: int = 0) -> int:
        """Move a cursor anywhere, backwards included: replay from ``seq``."""
        with self._write() as conn:
            return advance_cursor(conn, name, seq, self._clock(), reset=True)

    def list_cursors(self) -> list[CursorRow]:
        with self._read() as conn:
            return status.list_cursors(conn)

    def record_delivery(
        self, name: str, seq: int, dead: Sequence[tuple[int, str, str, str, str]] = ()
    ) -> int:
        """A destination took everything up to ``seq``, except ``dead`` — (seq, tenant_id,
        entity_type, entity_id, reason) it rejected for good — in one transaction: the
        cursor never passes a rejected change without its dead letter."""
        now = self._clock()
        with self._write() as conn:
            destinations.add_dead_letters(conn, name, dead, now)
            return destinations.record_delivery(conn, name, seq, now)

    def record_delivery_failure(self, name: str, error: str) -> None:
        with self._write() as conn:
            destinations.record_failure(conn, name, error, self._clock())

    def list_dead_letters(self, name: str | None = None, limit: int = 100) -> list[DeadLetterRow]:
        with self._read() as conn:
            return destinations.list_dead_letters(conn, name, limit)

    def clear_dead_letters(self, name: str) -> int:
        """Forget one destination's dead letters; how many (``destinations.clear_dead_letters``)."""
        with self._write() as conn:
            return destinations.clear_dead_letters(conn, name, self._clock())

    def dead_letter_counts(self) -> dict[str, int]:
        with self._read() as conn:
            return destinations.dead_letter_counts(conn)

    def get_remote_copy(self, destination: str, name: str) -> RemoteCopy | None:
        """A record as xdrsync last wrote or read it in ``destination``."""
        with self._read() as conn:
            return destinations.get_remote_copy(conn, destination, name)

    def save_remote_copy(
        self,
        destination: str,
        copy: RemoteCopy,
        edits: Sequence[NewEdit] = (),
        *,
        restate: str | None = None,
    ) -> list[int]:
        """Store (replace) the copy, ``children`` included, and queue ``edits`` (what was read
        from it for Defender) in the same transaction: returns their outbox ids. An edit is
        then never queued twice, nor lost, whatever stops the reader in between. ``restate``
        (why) states the copy's incident again in the same transaction (``outbox.restate``):
        the reader refused an edit read from it, and the twin must be put back to Defender's
        value, which a copy saved without it would leave to Defender's next version."""
        now = self._clock()
        with self._write() as conn:
            destinations.save_remote_copy(conn, destination, copy, now)
            if restate is not None:
                outbox.restate(conn, copy.tenant_id, copy.entity_id, now, restate)
            return outbox.enqueue(conn, edits, now) if edits else []

    def change_time(self, seq: int) -> datetime | None:
        """When the first change after ``seq`` was recorded (None: nothing after it)."""
        with self._read() as conn:
            return destinations.change_time(conn, seq)

    # -- two-way outbox ---------------------------------------------------------------------

    def enqueue_edits(self, edits: Sequence[NewEdit]) -> list[int]:
        """Queue workspace edits for Defender, all in one transaction; returns their ids."""
        with self._write() as conn:
            return outbox.enqueue(conn, edits, self._clock())

    def edits_pending(self, tenant_ids: Collection[str] | None = None) -> bool:
        """Whether any edit is pending, due now or waiting for its retry: the pusher's look,
        five times a second, at an outbox that is mostly empty (about half the CPU of
        `due_edits`, whose query it then skips). With ``tenant_ids``, of those tenants
        only: the edits of a tenant the service does not sync (one removed from the
        config) wait for it, and must not make every look a whole query."""
        with self._read() as conn:
            return outbox.any_pending(conn, tenant_ids)

    def due_edits(
        self,
        limit: int = 200,
        tenant_id: str | None = None,
        after_id: int = 0,
        tenant_ids: Collection[str] | None = None,
    ) -> list[OutboxRow]:
        """Pending edits of the records with an edit due now, oldest first (ids above
        ``after_id``; of ``tenant_id``, or ``tenant_ids``, only when given): a record's
        pending edits go together (``outbox.due``)."""
        with self._read() as conn:
            return outbox.due(conn, self._clock(), limit, tenant_id, after_id, tenant_ids)

    def edits(
        self,
        *,
        ids: Sequence[int] | None = None,
        tenant_id: str | None = None,
        entity: tuple[EntityType, str] | None = None,
        states: Sequence[OutboxState] | None = None,
        limit: int = 500,
    ) -> list[OutboxRow]:
        """Outbox rows, oldest first (the newest ``limit`` of those that match)."""
        with self._read() as conn:
            return outbox.rows(
                conn, ids=ids, tenant_id=tenant_id, entity=entity, states=states, limit=limit
            )

    def mark_sent(self, ids: Sequence[int]) -> None:
        """A write for these edits goes out now (kept before sending, so that after a crash a
        comment is looked for in Defender before it is posted again)."""
        with self._write() as conn:
            outbox.mark_sent(conn, ids, self._clock())

    def settle_edits(
        self, settlements: Sequence[Settlement], written: Written | None = None
    ) -> None:
        """Record what became of edits, and the version Defender made of the write, at once."""
        now = self._clock()
        with self._write() as conn:
            if written is not None:
                outbox.record_written(
                    conn,
                    written.tenant_id,
                    written.entity_type,
                    written.entity_id,
                    written.version,
                    written.author,
                    written.origin,
                    written.fields,
                    now,
                )
            for item in settlements:
                outbox.settle(
                    conn,
                    item.row,
                    item.state,
                    now,
                    item.decision,
                    item.detail,
                    written_version=item.written_version,
                    comment_key=item.comment_key,
                    entity_id=item.entity_id,
                    theirs=item.theirs,
                    reseen=item.reseen,
                )

    def claimed_comment_keys(
        self, tenant_id: str, entity_type: EntityType, entity_id: str
    ) -> set[str]:
        with self._read() as conn:
            return outbox.claimed_comment_keys(conn, tenant_id, entity_type, entity_id)

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """Edits per (tenant, state)."""
        with self._read() as conn:
            return outbox.counts(conn)

    def record_audit(
        self, tenant_id: str, entity_type: str, entity_id: str, decision: str, detail: Any
    ) -> None:
        """One two-way decision that changes no edit (e.g. a tenant found read-only)."""
        with self._write() as conn:
            outbox.audit(conn, self._clock(), tenant_id, entity_type, entity_id, decision, detail)

    # -- operations -------------------------------------------------------------------------

    def list_quarantine(
        self, limit: int = 100, tenant_id: str | None = None
    ) -> list[QuarantineRow]:
        """Quarantined records, newest first."""
        with self._read() as conn:
            return status.list_quarantine(conn, limit, tenant_id)

    def clear_quarantine(self, tenant_id: str | None = None, stream: str | None = None) -> int:
        """Forget the quarantined records (of one tenant, one stream); how many."""
        with self._write() as conn:
            return status.clear_quarantine(conn, self._clock(), tenant_id, stream)

    def quarantine_counts(self) -> dict[tuple[str, str], int]:
        """Quarantined records per (tenant, stream)."""
        with self._read() as conn:
            return status.quarantine_counts(conn)

    def audit_tail(self, limit: int = 100, tenant_id: str | None = None) -> list[AuditRow]:
        with self._read() as conn:
            return status.audit_tail(conn, limit, tenant_id)

    def counts(self) -> dict[str, dict[str, int]]:
        """Stored rows per tenant and kind (incidents, alerts, evidence, comments, versions…)."""
        with self._read() as conn:
            return status.counts(conn)
