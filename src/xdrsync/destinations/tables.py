"""Hub → the workspace's log tables: the change sequence becomes Sentinel-shaped rows, each
change exactly once.

The log store keeps the ``_Seq`` of every row it holds, so its position *is* the highest
``_Seq`` it stores, committed in the same DuckDB transaction as the rows. A crash between
the append and anything else therefore neither loses nor repeats a change; the hub's cursor
named ``tables`` only mirrors that position for ``destinations status``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from xdrsync import jsontext
from xdrsync.destinations.base import UNMAPPABLE, Rejection
from xdrsync.hub import ChangeRow, Hub
from xdrsync.hub.payload import datetime_from_ticks, ticks_from_text
from xdrsync.hub.reads import IncidentStep
from xdrsync.hub.records import MEMBERSHIP
from xdrsync.layout import TABLES_DESTINATION
from xdrsync.models import Alert, Incident
from xdrsync.tables.alert_rows import EvidenceJson, alert_for_rows
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.sentinel import (
    IncidentTimes,
    IncidentVersion,
    alert_evidence_values,
    alert_info_row,
    incident_status,
    incident_times,
    security_alert_row,
    security_incident_row,
)
from xdrsync.tables.vocab import CLOSED

Row = dict[str, Any]
log = structlog.get_logger(__name__)
#: How far behind the latest row stored this machine's clock may be before a delivery says so
#: (a clock that was far ahead once, and rows stamped then, hold later rows in the future).
CLOCK_BEHIND = timedelta(minutes=1)
#: How much later than the version it states again a change's row is modified, times the
#: number of changes that stated that version before it (`LogTables._restated`).
RESTATED = timedelta(microseconds=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LogTables:
    """The workspace's own Sentinel-shaped log tables, as a destination."""

    #: Changes per delivery: one DuckDB transaction each. Fewer, larger transactions cost
    #: less: DuckDB checkpoints the file at every commit (a 2,000-incident backlog appended
    #: in 4.3 s of CPU at 1,000, 3.1 s at 3,000, and the file was 61 MB against 43 MB).
    batch_size = 3000
    #: Changes per delivery of the log tables' worker process (`destinations.worker`), which
    #: runs only on a backlog (a backfill, a catch-up): fewer transactions, so fewer
    #: checkpoints, for more memory; the thread keeps `batch_size`, for latency. The
    #: 2,000-incident hub's 10,069 changes replayed into an empty file, four times each in
    #: turns (CPU-s best / median; peak RSS): 3,000: 4.97 / 5.35, 265 MiB; 6,000: 4.21 /
    #: 4.82, 318 MiB; 12,000: 4.38 / 4.84, 385 MiB. Beyond 6,000 only memory grows: a batch's
    #: changes are held with their payloads (about 9 MiB per 1,000) and DuckDB's cache fills
    #: its limit (`logstore._WRITER_MEMORY`); at 24,000 a 10,000-incident replay peaked at
    #: 552 MiB against 384 for 2,000 incidents, where 6,000 gave 340 against 318.
    backlog_batch_size = 6000
    #: Changes mapped at a time within a delivery; their rows go to the store's staged files
    #: as they are made, so memory follows this, not the batch.
    chunk_size = 1000

    def __init__(
        self,
        hub: Hub,
        store: LogStore,
        *,
        name: str = TABLES_DESTINATION,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.hub = hub
        self.store = store
        self.name = name
        self.clock = clock
        #: The earliest `TimeGenerated` the next delivery may use: after every row written
        #: (read from the store at the first delivery), whatever this machine's clock says.
        self._next_time: datetime | None = None
        self._said_behind = False

    def position(self) -> int:
        # Read when the runner starts and after another writer (its worker process, a replay):
        # the latest TimeGenerated is read afresh too, at the next delivery (`_start`).
        self._next_time = None
        return self.store.max_seq() or 0

    def accepts(self, change: ChangeRow) -> bool:
        return True  # every tenant's changes

    def deliver(self, changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        """Each change's rows, in one transaction. A change whose rows cannot be made or
        stored (hostile values the models let through, such as an unknown evidence type
        with odd shapes) is rejected alone, as a dead letter: the changes after it go on."""
        refused: dict[int, str] = {}
        refused.update(self.store.append_changes(self._rows(changes, refused), refused))
        return [Rejection(seq, reason) for seq, reason in sorted(refused.items())]

    def refused_after(self, seq: int) -> dict[int, str]:
        return self.store.refused_after(seq)

    def replay_from(self, seq: int) -> None:
        """Remove the rows of changes from ``seq`` on, so they are written once again."""
        self.store.remove_from_seq(seq)

    def check(self) -> list[str]:
        self.store.initialize()
        return [f"{self.name}: the log tables in {self.store.path} are writable"]

    def close(self) -> None:
        return None

    def _rows(
        self, changes: Sequence[ChangeRow], refused: dict[int, str]
    ) -> Iterator[tuple[int, list[tuple[str, Row]]]]:
        """(seq, its (table, row)s) for every change, made at most `chunk_size` changes at a
        time (`_chunks`); a change whose rows cannot be made goes to ``refused`` with the
        reason."""
        started = self._start()
        self._next_time = started + timedelta(microseconds=len(changes))
        for first, chunk in _chunks(changes, self.chunk_size):
            context = self._context(chunk)
            for offset, change in enumerate(chunk, start=first):
                # Later changes get later TimeGenerated, so `arg_max(TimeGenerated, *)` picks
                # the newest version even when one batch carries several of an incident.
                now = started + timedelta(microseconds=offset)
                try:
                    made = self._change_rows(change, now, context)
                except UNMAPPABLE as bad:
                    refused[change.seq] = f"no log table rows: {type(bad).__name__}: {bad}"
                    continue
                yield change.seq, made

    def _start(self) -> datetime:
        """The first `TimeGenerated` of a delivery: now, or just after every row already
        written if the clock has stepped back (NTP, a resumed VM), so that the newest version
        stays the latest row for `arg_max(TimeGenerated, *)`."""
        if self._next_time is None:
            latest = self.store.latest_time_generated()
            self._next_time = latest + timedelta(microseconds=1) if latest else None
        now = self.clock()
        if self._next_time is None or now >= self._next_time:
            self._said_behind = False
            return now
        if self._next_time - now > CLOCK_BEHIND and not self._said_behind:
            self._said_behind = True  # once, until the clock catches up
            log.warning(
                "the log tables hold rows stamped after this machine's clock: new rows are "
                "stamped after them until it catches up",
                latest=self._next_time.isoformat(),
                behind_seconds=round((self._next_time - now).total_seconds()),
            )
        return self._next_time

    def _context(self, changes: Sequence[ChangeRow]) -> _Context:
        # Each alert version is parsed once: for its own rows and, when it is the current
        # version, for the incident rows that summarise it. The payloads are parsed here
        # rather than through `ChangeRow.payload`, which would keep them for the whole batch.
        # Evidence stays JSON: the rows read it as such (`alert_rows.evidence_json`).
        alerts: dict[int, Alert] = {}
        evidence: dict[int, EvidenceJson] = {}
        incidents: dict[int, dict[str, Any]] = {}
        for c in changes:
            if c.entity_type == "alert":
                alerts[c.seq], evidence[c.seq] = alert_for_rows(jsontext.loads(c.payload_text))
            else:
                incidents[c.seq] = jsontext.loads(c.payload_text)
        keys = sorted({(c.tenant_id, c.entity_id) for c in changes if c.entity_type == "incident"})
        if not keys:
            return _Context(alerts, evidence, incidents, {}, {}, {}, {})
        current = self.hub.current_alerts(keys, alerts, _alert_only)
        # The times Sentinel sets once come from the incidents' recorded versions up to this
        # chunk's last: those before the chunk are read with their payloads, the chunk's own
        # are parsed above. Only an incident with no alerts now has its listings read.
        steps = self.hub.incident_steps(keys, changes[0].seq, changes[-1].seq)
        # A membership change has no version of its own: it takes the times of the version
        # recorded last before it (the one it shows).
        remade: dict[tuple[str, str], list[int]] = {}
        for c in changes:
            if c.kind == MEMBERSHIP:
                remade.setdefault((c.tenant_id, c.entity_id), []).append(c.seq)
        restated = self._restated(changes, steps)
        times: dict[int, IncidentTimes] = {}
        for key, recorded in steps.items():
            found = incident_times(_versions(recorded, incidents, named=not current.get(key)))
            times.update((seq, found[seq]) for seq in found.keys() & incidents.keys())
            for seq in remade.get(key, ()):
                before = [step.seq for step in recorded if step.seq < seq]
                if before:
                    times[seq] = found[max(before)]
        listed = sorted(
            {(c.tenant_id, a) for c in changes if c.seq in times for a in times[c.seq].listed}
        )
        activity = self.hub.alert_activity(listed) if listed else {}
        return _Context(alerts, evidence, incidents, current, times, activity, restated)

    def _restated(
        self, changes: Sequence[ChangeRow], steps: Mapping[tuple[str, str], Sequence[IncidentStep]]
    ) -> dict[int, int]:
        """For each incident change that states a version stated before, by seq: how many
        changes before it stated that version (its recorded versions, ``steps``, and its
        ``membership`` changes). Only incidents with a ``membership`` change in the chunk or
        a version recorded twice (new content at one stamp) can have one."""
        keys = {(c.tenant_id, c.entity_id) for c in changes if c.kind == MEMBERSHIP}
        keys |= {
            key for key, found in steps.items() if len({s.version for s in found}) < len(found)
        }
        if not keys:
            return {}
        memberships = self.hub.membership_versions(sorted(keys))
        restated: dict[int, int] = {}
        for c in changes:
            key = (c.tenant_id, c.entity_id)
            if c.entity_type != "incident" or key not in keys:
                continue
            ticks = ticks_from_text(c.version_text)
            stated = [s.seq for s in steps[key] if s.version == ticks]
            stated += [seq for version, seq in memberships.get(key, ()) if version == ticks]
            n = sum(1 for seq in stated if seq < c.seq)
            if c.kind == MEMBERSHIP:
                n = max(n, 1)  # at least after the version it states, whatever is recorded
            if n:
                restated[c.seq] = n
        return restated

    @staticmethod
    def _change_rows(change: ChangeRow, now: datetime, context: _Context) -> list[tuple[str, Row]]:
        tenant = change.tenant_id
        if change.entity_type == "incident":
            # Every version, the latest or an older one in a backlog, is shown with the
            # alerts the incident has now (the hub keeps no history of membership).
            incident = Incident.from_graph(context.incidents[change.seq]).model_copy(
                update={"alerts": tuple(context.current[(tenant, change.entity_id)])}
            )
            times = context.times.get(change.seq)
            if times is not None and times.listed:
                times = _with_activity(times, tenant, context.activity)
            row = security_incident_row(
                incident, time_generated=now, workspace_tenant_id=tenant, times=times
            )
            if change.modified_by:  # the echo of a workspace edit: its author, not the app
                row["ModifiedBy"] = change.modified_by
            if change.seq in context.restated:
                # Its version stated again: with the alerts it has now, alerts having left or
                # joined it without a new version (`hub.membership`), or (rare) with content
                # Defender changed without a new stamp. The n-th time, n microseconds after
                # that version, so that `arg_max(LastModifiedTime, *)` takes it over the
                # earlier statements, and any later version over it.
                row["LastModifiedTime"] = change.version + RESTATED * context.restated[change.seq]
            return [_mark("SecurityIncident", row, change)]
        alert, items = context.alerts[change.seq], context.evidence[change.seq]
        return [
            _mark(
                "SecurityAlert",
                security_alert_row(alert, time_generated=now, tenant_id=tenant, evidence=items),
                change,
            ),
            _mark("AlertInfo", alert_info_row(alert, time_generated=now, tenant_id=tenant), change),
            # Only the columns each evidence row sets: the store leaves nulls out.
            *(
                _mark("AlertEvidence", row, change)
                for row in alert_evidence_values(
                    alert, time_generated=now, tenant_id=tenant, evidence=items
                )
            ),
        ]


@dataclass(frozen=True)
class _Context:
    """What a chunk's rows share: its alerts parsed once, their evidence JSON, its incident
    payloads, the current alerts of its incidents, the times their versions set (by seq), the
    activity of the alerts listed by incidents that have none now, and how many changes had
    stated the version of each change that states it again (by seq)."""

    alerts: dict[int, Alert]
    evidence: dict[int, EvidenceJson]
    incidents: dict[int, dict[str, Any]]
    current: Mapping[tuple[str, str], Sequence[Alert]]
    times: Mapping[int, IncidentTimes]
    activity: Mapping[tuple[str, str], tuple[datetime | None, datetime | None]]
    restated: Mapping[int, int]


def _chunks(changes: Sequence[ChangeRow], size: int) -> Iterator[tuple[int, Sequence[ChangeRow]]]:
    """(index of its first change, the chunk) for chunks of at most ``size`` changes, each
    ended, where its second half allows, before an incident change that follows an alert
    change. A page commits its incidents and then their alerts (`hub.apply`), so a chunk cut
    there holds the alerts of its incidents, and their context takes them from the chunk's
    own parse. Cut anywhere, the incidents at a chunk's end had their alerts read and parsed
    from the hub, and parsed again in the next chunk: 1,203 of the 8,069 alerts of a
    2,000-incident backfill in chunks of 1,000, against 149 cut so (all where a delivery's
    6,000 changes end in the middle of a page). Where a chunk is cut changes no row."""
    size = max(size, 1)
    first = 0
    while first < len(changes):
        end = min(first + size, len(changes))
        if end < len(changes):
            cut = end
            while cut > first + size // 2 and not _page_starts(changes, cut):
                cut -= 1
            if cut > first + size // 2:
                end = cut
        yield first, changes[first:end]
        first = end


def _page_starts(changes: Sequence[ChangeRow], at: int) -> bool:
    return changes[at].entity_type == "incident" and changes[at - 1].entity_type == "alert"


def _versions(
    steps: Sequence[IncidentStep], held: Mapping[int, Mapping[str, Any]], *, named: bool
) -> Iterator[IncidentVersion]:
    """An incident's recorded changes as `incident_times` reads them; ``held``: the payloads
    of the chunk's versions; ``named``: whether to read the alerts each version listed."""
    for step in steps:
        payload = held.get(step.seq, {}) if step.payload is None else jsontext.loads(step.payload)
        redirected = bool(payload.get("redirectIncidentId"))
        yield IncidentVersion(
            seq=step.seq,
            modified=datetime_from_ticks(step.version) if step.version else None,
            closed=incident_status(payload.get("status"), redirected) == CLOSED,
            alert_ids=jsontext.loads(step.alert_ids) if named and step.alert_ids else None,
        )


def _with_activity(
    times: IncidentTimes,
    tenant: str,
    activity: Mapping[tuple[str, str], tuple[datetime | None, datetime | None]],
) -> IncidentTimes:
    """``times`` with the first and last activity of the alerts it lists."""
    known = [activity[(tenant, a)] for a in times.listed if (tenant, a) in activity]
    return replace(
        times,
        first_activity=min((first for first, _ in known if first), default=None),
        last_activity=max((last for _, last in known if last), default=None),
    )


def _alert_only(payload: Mapping[str, Any]) -> Alert:
    """An alert for the incident rows, which summarise alerts but read none of their evidence."""
    return alert_for_rows(payload)[0]


def _mark(table: str, row: Row, change: ChangeRow) -> tuple[str, Row]:
    row["_Seq"] = change.seq
    row["_TimeReceived"] = change.at  # when the hub received this version from Graph
    return table, row
