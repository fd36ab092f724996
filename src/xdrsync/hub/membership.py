"""Alerts that moved between incidents Graph did not show again: their rows made again.

Defender moves an alert to another incident without a merge (an analyst links it elsewhere,
or correlation re-homes it), and a merge moves all of them. The alert's ``incidentId`` and
``lastUpdateDateTime`` change, the incident it joins lists it; whether the incident it left
gets a new ``lastUpdateDateTime`` is undocumented (reference §1.6), and even when it does,
the alert may be read first (from alerts_v2, or on an earlier page). The hub's reads already
take the alert out of the incident it left (``reads._members``: the later statement wins),
but destinations make an incident's rows only from a change *of that incident*: without one,
the log tables' latest SecurityIncident row, the Sentinel incident and the like would go on
showing the alert under the incident it left.

So when a batch applies an alert version that names another incident than the alert's
previous one, the incident it left gets a change of its own in the same transaction (kind
``membership``): its current version, shown with the alerts it has now. Its seq comes from
the same counter, so a crash loses or repeats nothing, and every destination delivers it
exactly once like any other change. The incident the alert *joins* gets one too: whether
Defender stamps it is undocumented as well, and until its next version its rows would not
show the alert (when Defender does stamp it, its new version brings rows of the same alerts
again). None is needed, and none is made, when the incident has a change in the same batch
(its rows are made with its current alerts), or when the hub does not hold it. An incident
whose newest listing already leaves the alert out gets one too: its rows were made while the
alert's record still named it, and a listing alone never takes an alert away
(``reads._members``: it may be a part).

The change's ``version`` and ``content_hash`` are those of the incident's current version:
it states that version again, with the alerts the incident has now (a later real version
read afterwards, older than the move, must still come after it: a stamp of the move would
put this change after that version in every order by version). One version can be stated
again more than once (an alert leaves, another joins later): the log tables number them
(``LogTables._restated``, from the audit rows written with them), so that each has a row of
its own in every order.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from xdrsync.hub import schema as s
from xdrsync.hub.bulk import insert_rows
from xdrsync.hub.candidates import Candidate
from xdrsync.hub.chunks import chunks
from xdrsync.hub.guard import CHANGES, Verdict
from xdrsync.hub.payload import version_text
from xdrsync.hub.records import MEMBERSHIP, InboundBatch, restated_rows


@dataclass(frozen=True, slots=True)
class Departure:
    """``alert_id`` left ``incident_id`` for ``joined`` by its version of ``ticks``."""

    incident_id: str
    alert_id: str
    joined: str | None
    ticks: int


def departures(
    owners: Mapping[str, str | None], verdicts: Iterable[Verdict[Candidate]]
) -> list[Departure]:
    """The incidents alerts left in a batch (pure): for each alert, its stored incident
    (``owners``) and then the incident of each of its changes, in order; each step to another
    incident is a departure from the one before."""
    chains: dict[str, list[tuple[str | None, int]]] = {}
    for verdict in verdicts:
        if verdict.decision in CHANGES:
            item = verdict.item
            chains.setdefault(item.id, []).append((item.incident_id, item.version.ticks))
    found: list[Departure] = []
    for alert_id, steps in chains.items():
        before = owners.get(alert_id)
        for incident_id, ticks in steps:
            if before is not None and incident_id != before:
                found.append(Departure(before, alert_id, incident_id, ticks))
            before = incident_id
    return found


def record_departures(
    conn: Connection,
    batch: InboundBatch,
    found: Iterable[Departure],
    changed: Collection[str],
    seq: int,
    now: datetime,
) -> int:
    """Write a ``membership`` change (and its audit row) for each incident an alert left or
    joined that needs one (see the module's notes); returns the last seq used (``seq`` if
    none)."""
    tenant = batch.tenant_id
    moved: dict[str, tuple[list[Departure], list[Departure]]] = {}  # incident: (left, joined)
    for departure in found:
        if departure.incident_id not in changed:
            moved.setdefault(departure.incident_id, ([], []))[0].append(departure)
        if departure.joined is not None and departure.joined not in changed:
            moved.setdefault(departure.joined, ([], []))[1].append(departure)
    if not moved:
        return seq
    i = s.incident
    current: dict[str, tuple[int, str]] = {}
    for part in chunks(sorted(moved)):
        query = select(i.c.id, i.c.version, i.c.content_hash).where(
            i.c.tenant_id == tenant, i.c.id.in_(part)
        )
        current.update((key, (version, digest)) for key, version, digest in conn.execute(query))
    changes: list[dict[str, object]] = []
    audits: list[dict[str, object]] = []
    for incident_id in sorted(current):
        left, joined = moved[incident_id]
        version, digest = current[incident_id]
        seq += 1
        detail = {
            "alerts_left": sorted({d.alert_id for d in left}),
            "joined": sorted({d.joined for d in left if d.joined}),
            "alerts_joined": sorted({d.alert_id for d in joined}),
            "left": sorted({d.incident_id for d in joined}),
            "moved": version_text(max(d.ticks for d in (*left, *joined))),
            "note": "alerts moved between incidents; its rows are made again with its "
            "current alerts",
        }
        change, audit = restated_rows(seq, tenant, incident_id, (version, digest), now)
        changes.append(change)
        audits.append(
            {**audit, "stream": batch.stream, "detail": json.dumps(detail, sort_keys=True)}
        )
    insert_rows(conn, s.change_log, changes)
    insert_rows(conn, s.audit, audits)
    return seq


__all__ = ["MEMBERSHIP", "Departure", "departures", "record_departures"]
