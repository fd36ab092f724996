"""``commit_batch``'s transaction body: version guard, history, change log, state, audit.

The caller (``store.Hub``) opens the write transaction; everything here runs inside it, so a
failure anywhere leaves neither the data nor the stream's state behind (architecture §3.2).
Every lookup is one query per batch (chunked), every write an executemany: a page of 50
incidents with their alerts and evidence costs a fixed, small number of round trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Table, and_, bindparam, select, tuple_, update

from xdrsync.hub import schema as s
from xdrsync.hub.audit import write_decisions, write_quarantine, write_summary
from xdrsync.hub.bulk import insert_rows
from xdrsync.hub.candidates import Candidate, batch_candidates
from xdrsync.hub.chunks import chunks
from xdrsync.hub.guard import CHANGES, RECORDED, Verdict, Version, decide, needs_history
from xdrsync.hub.membership import departures, record_departures
from xdrsync.hub.records import (
    ApplyResult,
    EntityCounts,
    EntityType,
    InboundBatch,
    Quarantined,
)
from xdrsync.hub.state import clear_error_and_save, lock_and_read_counter, write_counter
from xdrsync.hub.unparsed import UnparsedTally
from xdrsync.models import Alert, UnparsedEvidence


@dataclass
class _Kind:
    """Where one entity type lives."""

    entity_type: EntityType
    table: Table

    @property
    def history(self) -> Table:
        return s.history_of(self.table)[0]

    @property
    def history_key(self) -> str:
        return s.history_of(self.table)[1]


_INCIDENTS: Final = _Kind("incident", s.incident)
_ALERTS: Final = _Kind("alert", s.alert)


@dataclass
class _Plan:
    """The verdicts for one entity type, in seq order, and the stored versions they met."""

    kind: _Kind
    verdicts: list[Verdict[Candidate]] = field(default_factory=list)
    existing: set[str] = field(default_factory=set)
    #: Alerts only: the incident each stored alert named before the batch.
    owners: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedBatch:
    """A batch with its keys, versions and hashes computed: the CPU-heavy part, done before
    the write lock is taken so that other writers wait as little as possible."""

    batch: InboundBatch
    incidents: list[Candidate]
    alerts: list[Candidate]
    quarantined: list[Quarantined]


def prepare_batch(batch: InboundBatch) -> PreparedBatch:
    incident_rows, alert_rows, rejected = batch_candidates(batch.incidents, batch.alerts)
    quarantined = [*batch.quarantined, *(Quarantined(r.raw, r.reason) for r in rejected)]
    return PreparedBatch(batch, incident_rows, alert_rows, quarantined)


def apply_batch(conn: Connection, prepared: PreparedBatch, now: datetime) -> ApplyResult:
    """Write one prepared batch inside the caller's transaction. Returns what was decided."""
    batch, quarantined = prepared.batch, prepared.quarantined
    seq = lock_and_read_counter(conn)
    first_seq = seq + 1
    plans = [
        _plan(conn, batch.tenant_id, _INCIDENTS, prepared.incidents),
        _plan(conn, batch.tenant_id, _ALERTS, prepared.alerts),
    ]
    seqs: dict[int, int] = {}  # id(verdict) -> seq
    for plan in plans:
        for verdict in plan.verdicts:
            if verdict.decision in CHANGES:
                seq += 1
                seqs[id(verdict)] = seq
    for plan in plans:
        _write(conn, batch, plan, seqs, now)
    # Alerts that moved: the incidents they left or joined, not in this batch, get a change.
    moved = departures(plans[1].owners, plans[1].verdicts)
    if moved:
        changed = set(_changed_ids(plans[0]))
        seq = record_departures(conn, batch, moved, changed, seq, now)
    write_quarantine(conn, batch, quarantined, now)
    unparsed = _unparsed(plans[1], now)
    clear_error_and_save(conn, batch.tenant_id, batch.stream, batch.state, now, unparsed=unparsed)
    result = ApplyResult(
        incidents=_counts(plans[0]),
        alerts=_counts(plans[1]),
        quarantined=len(quarantined),
        first_seq=first_seq if seq >= first_seq else None,
        last_seq=seq if seq >= first_seq else None,
        changed_incident_ids=_changed_ids(plans[0]),
        changed_alert_ids=_changed_ids(plans[1]),
    )
    write_summary(conn, batch, result, now)
    if seq >= first_seq:
        write_counter(conn, seq)
    return result


# -- deciding ------------------------------------------------------------------------------


def _plan(conn: Connection, tenant_id: str, kind: _Kind, rows: list[Candidate]) -> _Plan:
    by_key: dict[str, list[tuple[Version, Candidate]]] = {}
    for row in rows:
        by_key.setdefault(row.id, []).append((row.version, row))
    owners: dict[str, str | None] = {}
    stored = _stored_versions(conn, tenant_id, kind, list(by_key), owners)
    doubtful = [
        key
        for key, copies in by_key.items()
        if needs_history(stored.get(key), (version for version, _ in copies))
    ]
    known = _known_versions(conn, tenant_id, kind, doubtful)
    plan = _Plan(kind, existing=set(stored), owners=owners)
    for key, copies in by_key.items():
        plan.verdicts.extend(decide(stored.get(key), copies, known.get(key, ())))
    return plan


def _stored_versions(
    conn: Connection,
    tenant_id: str,
    kind: _Kind,
    keys: Sequence[str],
    owners: dict[str, str | None],
) -> dict[str, Version]:
    """The stored version of each key; for alerts, ``owners`` gets the incident each names
    (in the same query: a move is told by the incident changing)."""
    table = kind.table
    alerts = kind.entity_type == "alert"
    columns = [table.c.id, table.c.version, table.c.content_hash]
    if alerts:
        columns.append(table.c.incident_id)
    found: dict[str, Version] = {}
    for part in chunks(keys):
        query = select(*columns).where(table.c.tenant_id == tenant_id, table.c.id.in_(part))
        for row in conn.execute(query):
            found[row.id] = Version(row.version, row.content_hash)
            if alerts:
                owners[row.id] = row.incident_id
    return found


def _known_versions(
    conn: Connection, tenant_id: str, kind: _Kind, keys: Sequence[str]
) -> dict[str, set[Version]]:
    history = kind.history
    key_column = history.c[kind.history_key]
    found: dict[str, set[Version]] = {}
    for part in chunks(keys):
        query = select(key_column, history.c.version, history.c.content_hash).where(
            history.c.tenant_id == tenant_id, key_column.in_(part)
        )
        for key, ticks, digest in conn.execute(query):
            found.setdefault(key, set()).add(Version(ticks, digest))
    return found


def _counts(plan: _Plan) -> EntityCounts:
    tally = {"insert": 0, "update": 0, "unchanged": 0, "stale": 0, "late": 0}
    for verdict in plan.verdicts:
        tally[verdict.decision] += 1
    return EntityCounts(
        inserted=tally["insert"],
        updated=tally["update"],
        unchanged=tally["unchanged"],
        stale=tally["stale"] + tally["late"],
    )


def _unparsed(plan: _Plan, now: datetime) -> UnparsedTally:
    """The evidence items kept unparsed in the alert versions this batch stores (``RECORDED``:
    a re-read of a stored version counts nothing), with the last of them."""
    items = 0
    last: tuple[str, UnparsedEvidence] | None = None
    for verdict in plan.verdicts:
        if verdict.decision not in RECORDED or not isinstance(verdict.item.record, Alert):
            continue
        for item in verdict.item.record.evidence:
            if isinstance(item, UnparsedEvidence):
                items += 1
                last = (verdict.item.id, item)
    if last is None:
        return UnparsedTally()
    alert_id, item = last
    return UnparsedTally(items, item.problem, item.odata_type or "", alert_id, now)


def _changed_ids(plan: _Plan) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.item.id for v in plan.verdicts if v.decision in CHANGES))


# -- writing -------------------------------------------------------------------------------


def _write(
    conn: Connection, batch: InboundBatch, plan: _Plan, seqs: Mapping[int, int], now: datetime
) -> None:
    tenant = batch.tenant_id
    recorded = [v for v in plan.verdicts if v.decision in RECORDED]
    if not recorded:
        return
    final: dict[str, Verdict[Candidate]] = {}
    for verdict in plan.verdicts:
        if verdict.decision in CHANGES:
            final[verdict.item.id] = verdict  # the newest change of each key wins
    _write_current(conn, tenant, plan, final, seqs, now)
    _write_history(conn, tenant, plan.kind, recorded, seqs, now)
    _write_change_log(conn, tenant, plan.kind, recorded, seqs, now)
    if plan.kind.entity_type == "alert":
        _write_evidence(conn, tenant, list(final.values()))
    _write_comments(conn, tenant, plan.kind.entity_type, [v.item for v in recorded], now)
    write_decisions(conn, batch, plan.kind.entity_type, recorded, seqs, now)


def _current_row(verdict: Verdict[Candidate], seq: int, now: datetime) -> dict[str, Any]:
    item = verdict.item
    return {
        **item.columns,
        "version": item.version.ticks,
        "content_hash": item.version.content_hash,
        "seq": seq,
        "empty_payload": "",  # the JSON is the version's, in the history (``current_payload``)
        "updated_at": now,
    }


def _write_current(
    conn: Connection,
    tenant: str,
    plan: _Plan,
    final: Mapping[str, Verdict[Candidate]],
    seqs: Mapping[int, int],
    now: datetime,
) -> None:
    table = plan.kind.table
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, verdict in final.items():
        row = _current_row(verdict, seqs[id(verdict)], now)
        if key in plan.existing:
            updates.append({**row, "b_tenant": tenant, "b_id": key})
        else:
            inserts.append({**row, "tenant_id": tenant, "id": key, "first_seen_at": now})
    if inserts:
        insert_rows(conn, table, inserts)
    if updates:
        # executemany: the SET clause comes from each row's column keys; the WHERE clause
        # binds under other names (b_*), which SQLAlchemy reserves the column names against.
        statement = update(table).where(
            and_(table.c.tenant_id == bindparam("b_tenant"), table.c.id == bindparam("b_id"))
        )
        conn.execute(statement, updates)


def _write_history(
    conn: Connection,
    tenant: str,
    kind: _Kind,
    recorded: Iterable[Verdict[Candidate]],
    seqs: Mapping[int, int],
    now: datetime,
) -> None:
    rows: list[dict[str, Any]] = []
    for verdict in recorded:
        item = verdict.item
        row: dict[str, Any] = {
            "tenant_id": tenant,
            kind.history_key: item.id,
            "version": item.version.ticks,
            "content_hash": item.version.content_hash,
            "seq": seqs.get(id(verdict)),
            "payload": item.payload_text,
            "recorded_at": now,
        }
        if kind.entity_type == "incident":
            row["alert_ids"] = item.alert_ids
        else:
            row["incident_id"] = item.incident_id
        rows.append(row)
    insert_rows(conn, kind.history, rows)


def _write_change_log(
    conn: Connection,
    tenant: str,
    kind: _Kind,
    recorded: Iterable[Verdict[Candidate]],
    seqs: Mapping[int, int],
    now: datetime,
) -> None:
    changed = [v for v in recorded if v.decision in CHANGES]
    ours = _our_writes(conn, tenant, kind.entity_type, changed)
    rows = []
    for v in changed:
        author = ours.get((v.item.id, v.item.version.ticks))
        rows.append(
            {
                "seq": seqs[id(v)],
                "tenant_id": tenant,
                "entity_type": kind.entity_type,
                "entity_id": v.item.id,
                "incident_id": v.item.incident_id,
                "version": v.item.version.ticks,
                "content_hash": v.item.version.content_hash,
                "kind": v.decision,
                "origin": "graph" if author is None else "workspace",
                "at": now,
                "modified_by": author,
            }
        )
    if rows:
        insert_rows(conn, s.change_log, rows)


def _our_writes(
    conn: Connection, tenant: str, entity_type: EntityType, changed: Sequence[Verdict[Candidate]]
) -> dict[tuple[str, int], str]:
    """Which of these versions Defender made of our own writes (two-way echo), and who made
    each edit: such a version is the workspace user's change, not a remote one."""
    w = s.written
    found: dict[tuple[str, int], str] = {}
    keys = list({v.item.id for v in changed})
    for part in chunks(keys):
        query = select(w.c.entity_id, w.c.version, w.c.author).where(
            w.c.tenant_id == tenant, w.c.entity_type == entity_type, w.c.entity_id.in_(part)
        )
        for entity_id, version, author in conn.execute(query):
            found[(entity_id, version)] = author
    return found


def _write_evidence(conn: Connection, tenant: str, changed: Sequence[Verdict[Candidate]]) -> None:
    # An alert's evidence list is replaced whole: Graph sends the full list with every
    # version, and items carry no id that would let us match them one by one.
    ids = [verdict.item.id for verdict in changed]
    for part in chunks(ids):
        conn.execute(
            s.evidence.delete().where(
                s.evidence.c.tenant_id == tenant, s.evidence.c.alert_id.in_(part)
            )
        )
    rows = [
        {**row, "tenant_id": tenant, "alert_id": v.item.id, "incident_id": v.item.incident_id}
        for v in changed
        for row in v.item.evidence
    ]
    if rows:
        insert_rows(conn, s.evidence, rows)


def _write_comments(
    conn: Connection,
    tenant: str,
    entity_type: EntityType,
    items: Sequence[Candidate],
    now: datetime,
) -> None:
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        for c in item.comments:
            wanted.setdefault(
                (item.id, c.key),
                {
                    "tenant_id": tenant,
                    "entity_type": entity_type,
                    "entity_id": item.id,
                    "comment_key": c.key,
                    "incident_id": item.incident_id,
                    "created_date_time": c.created,
                    "created_by": c.author,
                    "comment": c.text,
                    "first_seen_at": now,
                },
            )
    if not wanted:
        return
    table = s.comment
    keys = list(wanted)
    for part in chunks(keys):
        query = select(table.c.entity_id, table.c.comment_key).where(
            table.c.tenant_id == tenant,
            table.c.entity_type == entity_type,
            tuple_(table.c.entity_id, table.c.comment_key).in_(part),
        )
        for entity_id, key in conn.execute(query):
            wanted.pop((entity_id, key), None)
    if wanted:
        insert_rows(conn, table, list(wanted.values()))
