"""The audit trail's rows for one batch: decisions that wrote something, and a summary.

Unchanged re-reads and already-known stale copies appear only in the batch summary's counts
(a page of re-reads alone leaves no row): re-reads happen every cycle and would drown the
trail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from xdrsync.hub import schema as s
from xdrsync.hub.bulk import insert_rows
from xdrsync.hub.candidates import Candidate
from xdrsync.hub.guard import Verdict
from xdrsync.hub.payload import version_text
from xdrsync.hub.records import ApplyResult, EntityCounts, EntityType, InboundBatch, Quarantined


def write_decisions(
    conn: Connection,
    batch: InboundBatch,
    entity_type: EntityType,
    recorded: Iterable[Verdict[Candidate]],
    seqs: Mapping[int, int],
    now: datetime,
) -> None:
    rows = [
        {
            "at": now,
            "tenant_id": batch.tenant_id,
            "stream": batch.stream,
            "entity_type": entity_type,
            "entity_id": v.item.id,
            "decision": "stale" if v.decision == "late" else v.decision,
            "old_version": version_text(v.previous.ticks) if v.previous else None,
            "new_version": version_text(v.item.version.ticks),
            "seq": seqs.get(id(v)),
            "detail": _why(v),
        }
        for v in recorded
    ]
    insert_rows(conn, s.audit, rows)


def _why(verdict: Verdict[Candidate]) -> str | None:
    if verdict.decision == "late":
        return json.dumps({"late": True, "note": "older than the current version; history only"})
    previous = verdict.previous
    if previous is not None and previous.ticks == verdict.version.ticks:
        return json.dumps({"same_version": True, "note": "content changed at the same version"})
    return None


def write_quarantine(
    conn: Connection, batch: InboundBatch, quarantined: Sequence[Quarantined], now: datetime
) -> None:
    # A record quarantined once stays quarantined once: the lookback and every retry re-read
    # it, and a list that grows by the same rows each cycle hides the new ones.
    raws = list(dict.fromkeys(bad.raw for bad in quarantined))
    known: set[str] = set()
    for start in range(0, len(raws), 200):
        known.update(
            conn.execute(
                select(s.quarantine.c.raw).where(
                    s.quarantine.c.tenant_id == batch.tenant_id,
                    s.quarantine.c.stream == batch.stream,
                    s.quarantine.c.raw.in_(raws[start : start + 200]),
                )
            ).scalars()
        )
    fresh: dict[str, Quarantined] = {}
    for bad in quarantined:
        if bad.raw not in known:
            fresh.setdefault(bad.raw, bad)
    quarantined = list(fresh.values())
    if not quarantined:
        return
    rows = [
        {
            "tenant_id": batch.tenant_id,
            "stream": batch.stream,
            "at": now,
            "reason": bad.reason,
            "raw": bad.raw,
        }
        for bad in quarantined
    ]
    conn.execute(s.quarantine.insert(), rows)
    audit_rows = [
        {
            "at": now,
            "tenant_id": batch.tenant_id,
            "stream": batch.stream,
            "entity_type": "record",
            "entity_id": None,
            "decision": "quarantine",
            "detail": json.dumps({"reason": bad.reason}),
        }
        for bad in quarantined
    ]
    conn.execute(s.audit.insert(), audit_rows)


def write_summary(
    conn: Connection, batch: InboundBatch, result: ApplyResult, now: datetime
) -> None:
    """One audit row for a page that changed something, met an older version or quarantined
    a record. A page of re-reads leaves none: an idle tenant commits a page every few
    seconds, and its rows grew the table by about 17,000 a day per tenant, saying nothing."""
    quiet = result.first_seq is None and not result.quarantined
    if quiet and not result.incidents.stale and not result.alerts.stale:
        return
    detail: dict[str, Any] = {
        "incidents": as_dict(result.incidents),
        "alerts": as_dict(result.alerts),
        "quarantined": result.quarantined,
        "state": batch.state is not None,
    }
    if batch.note:
        detail["note"] = batch.note
    if result.first_seq is not None:
        detail["seq"] = [result.first_seq, result.last_seq]
    conn.execute(
        s.audit.insert(),
        {
            "at": now,
            "tenant_id": batch.tenant_id,
            "stream": batch.stream,
            "entity_type": "batch",
            "entity_id": None,
            "decision": "summary",
            "seq": result.last_seq,
            "detail": json.dumps(detail, sort_keys=True),
        },
    )


def as_dict(counts: EntityCounts) -> dict[str, int]:
    return {
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "stale": counts.stale,
    }
