"""Hub → Microsoft Sentinel (one way): incidents and comments over ARM, alert and evidence
rows over the Logs Ingestion API.

For each incident a batch touches (its own changes, or changes of its alerts), the incident's
*current* state in the hub is written, once per batch: GET (with its etag), merge with what
Sentinel holds, PUT only if something xdrsync manages differs, and on 409 read, merge and try
again. Fields with an analyst's edit from this destination still on its way to Defender keep
what Sentinel holds (``mapping.hold``), so the hub's older value never flaps them back. Then
the Defender comments Sentinel lacks are PUT under deterministic names, leaving analysts
their reserve of places (``comments.ANALYST_RESERVE``). Every
write is idempotent, so a batch delivered twice changes nothing the second time. Alert changes
become rows (every version, as the log tables keep every version), one upload per stream.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import structlog

from xdrsync.config import Config, SentinelDestinationConfig, TenantConfig
from xdrsync.destinations.base import UNMAPPABLE, Rejection
from xdrsync.destinations.sentinel.arm import (
    ArmClient,
    CreatedMeanwhileError,
    EtagConflictError,
    IncidentMissingError,
    IncidentRejectedError,
    modified_before,
)
from xdrsync.destinations.sentinel.comments import (
    MirroredComment,
    mirrored_comments,
    notice_name,
    plan_comments,
    redirect_comment,
)
from xdrsync.destinations.sentinel.ingest import INGESTION_ROLE, LogIngestor, Row, alert_rows
from xdrsync.destinations.sentinel.mapping import (
    SHOWN_AS,
    Desired,
    Held,
    defender_url,
    desired_incident,
    differs,
    hold,
    incident_name,
    merge,
    own_labels,
    with_own_labels,
)
from xdrsync.destinations.sentinel.text import MAX_COMMENTS
from xdrsync.errors import RetriableError
from xdrsync.graph.auth import TokenProvider
from xdrsync.graph.http import Limits, build_http_client
from xdrsync.graph.pacing import holding
from xdrsync.hub import ChangeRow, Hub, RemoteCopy
from xdrsync.hub.payload import ticks_from_text
from xdrsync.models import Incident
from xdrsync.tables.alert_rows import alert_for_rows
from xdrsync.twoway.edits import waiting
from xdrsync.twoway.fields import TAGS
from xdrsync.twoway.merge import in_order_made

log = structlog.get_logger(__name__)

#: How often one incident's write meets a concurrent edit before the batch is retried later.
MAX_CONFLICTS: Final = 4


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SentinelDestination:
    """One ``[[destinations]]`` entry of type ``sentinel``."""

    kind = "sentinel"
    # Small batches: each incident costs ARM calls, and an acknowledgement per batch keeps
    # the work a crash repeats short.
    batch_size = 20

    def __init__(
        self,
        entry: SentinelDestinationConfig,
        config: Config,
        hub: Hub,
        *,
        arm: ArmClient,
        ingestor: LogIngestor | None = None,
        ingest_tokens: TokenProvider | None = None,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.entry = entry
        self.hub = hub
        self.arm = arm
        self.ingestor = ingestor
        self._ingest_tokens = ingest_tokens
        self._http = http
        self.clock = clock
        self._tenants: dict[str, TenantConfig] = {
            t.tenant_id.lower(): t for t in config.tenants_of(entry)
        }
        # Counters for the bench and metrics.
        self.puts = 0  # incident PUTs that succeeded
        self.skipped_unchanged = 0  # incidents Sentinel already showed as Defender does
        self.conflicts = 0  # 409s met (each followed by a fresh read and merge)
        self.stale_reads = 0  # reads older than our last write (read again, never merged)
        self.recreated = 0  # incidents deleted in Sentinel, written again from the hub
        self.incidents_rejected = 0
        self.comments_put = 0
        # Defender comments with no place left (see the notice), per incident, as last found.
        self._left_out: dict[str, int] = {}
        self.comments_rejected = 0
        # Two-way: told of every Sentinel incident read after it changed under us.
        self.on_read: Callable[[str, str, dict[str, Any]], object] | None = None
        # Held while an incident is written (read, merged, PUT, its copy saved) and while the
        # two-way reader, in its own thread, lists a page and compares it with the copies: a
        # page listed before a write must not be compared with the copy that write saved.
        # Waited for with ``pacing.holding``: the reader may hold it through ARM's throttling
        # or a request that hangs, and a drain at its deadline, or a stop, must not wait.
        self.lock = threading.Lock()

    @classmethod
    def connect(
        cls, entry: SentinelDestinationConfig, config: Config, hub: Hub
    ) -> SentinelDestination:
        """Build the destination; no network call is made until the first delivery."""
        http = build_http_client(entry, config.sync)
        limits = Limits.of(config.sync)
        arm = ArmClient(entry, config.sync, http=http)
        ingestor: LogIngestor | None = None
        ingest_tokens: TokenProvider | None = None
        if entry.ingestion_endpoint is not None and entry.rule_id is not None:
            scope = f"{entry.ingestion_audience}/.default"
            ingest_tokens = TokenProvider(entry, http, limits, scope=scope)
            ingestor = LogIngestor(entry, config.sync, ingest_tokens)
        return cls(
            entry, config, hub, arm=arm, ingestor=ingestor, ingest_tokens=ingest_tokens, http=http
        )

    # -- the Destination protocol -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def arm_calls(self) -> int:
        return self.arm.calls

    @property
    def rows_uploaded(self) -> int:
        return self.ingestor.rows_uploaded if self.ingestor is not None else 0

    def position(self) -> int | None:
        return None  # the hub's cursor: Sentinel keeps no record of our change numbers

    def accepts(self, change: ChangeRow) -> bool:
        return change.tenant_id.lower() in self._tenants

    def deliver(self, changes: Sequence[ChangeRow]) -> Sequence[Rejection]:
        if self.ingestor is not None and changes:
            # Uploads remembered from an earlier try of this batch stay (rows Logs Ingestion
            # accepted are not sent twice); those of batches before it were acknowledged.
            self.ingestor.begin_batch(changes[0].seq)
        reasons: dict[int, list[str]] = {}
        # Per incident: its own changes, and its alerts' (which write it too).
        touched: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        for change in changes:
            itself = change.entity_type == "incident"
            incident_id = change.entity_id if itself else change.incident_id
            if incident_id:
                found = touched.setdefault((change.tenant_id, incident_id), ([], []))
                found[0 if itself else 1].append(change.seq)
        for (tenant_id, incident_id), (own, of_alerts) in touched.items():
            # A refusal is the incident's own changes' dead letter; its alerts' rows went
            # (or go) up whatever the incident's write: an alert change is one only when no
            # change of the incident came with it, so that the refusal is never lost.
            for reason in self._write_incident(tenant_id, incident_id):
                for seq in own or of_alerts:
                    reasons.setdefault(seq, []).append(reason)
        alerts = [c for c in changes if c.entity_type == "alert"]
        if alerts and self.ingestor is not None:
            for seq, reason in self._upload_alerts(alerts).items():
                reasons.setdefault(seq, []).append(reason)
        return [Rejection(seq, "; ".join(found)) for seq, found in sorted(reasons.items())]

    def replay_from(self, seq: int) -> None:
        """Every write is idempotent (names, merge, ``XdrSeq``); only the uploads remembered
        for a batch under way are forgotten, so the rows go again."""
        if self.ingestor is not None:
            self.ingestor.forget()

    def close(self) -> None:
        if self.ingestor is not None:
            self.ingestor.close()
        self.arm.close()
        if self._http is not None:
            self._http.close()

    # -- xdrsync check ------------------------------------------------------------------------

    def check(self) -> list[str]:
        """One cheap call per API; lines to show. Raises ``ConfigError``/``RetriableError``."""
        self.arm.check()
        lines = [f"{self.name}: signed in, incidents of workspace {self.entry.workspace} readable"]
        if self._ingest_tokens is not None:
            self._ingest_tokens.token()
            lines.append(
                f"{self.name}: signed in for Logs Ingestion (the {INGESTION_ROLE} role on rule "
                f"{self.entry.rule_id} is proved by the first upload)"
            )
        return lines

    # -- incidents ------------------------------------------------------------------------------

    def _write_incident(self, tenant_id: str, incident_id: str) -> list[str]:
        """Write one incident and its comments; reasons Sentinel refused something, if any."""
        with holding(self.lock):
            return self._write_incident_locked(tenant_id, incident_id)

    def _write_incident_locked(self, tenant_id: str, incident_id: str) -> list[str]:
        tenant = self._tenants[tenant_id.lower()]
        incident = self.hub.get_incident(tenant_id, incident_id)
        if incident is None:  # an alert whose incident the hub has not read yet
            return []
        copy = self.hub.get_remote_copy(self.name, incident_name(tenant_id, incident_id))
        desired = desired_incident(
            incident,
            tenant_id=tenant_id,
            tenant_name=tenant.name,
            earlier_tags=self._earlier_tags(tenant_id, incident_id),
            written_labels=own_labels(copy.properties) if copy is not None else None,
        )
        try:
            try:
                return self._write(incident, tenant, tenant_id, desired)
            except IncidentMissingError:
                # Deleted in Sentinel since xdrsync wrote it: what the copy says is there is
                # not. Written again from the hub (once: a second 404 is retried later).
                self._forget(desired.name)
                self.recreated += 1
                log.warning(
                    "sentinel incident deleted outside xdrsync; writing it again",
                    destination=self.name,
                    incident=desired.name,
                )
                return self._write(incident, tenant, tenant_id, desired)
        except IncidentRejectedError as refused:
            self.incidents_rejected += 1
            return [f"Sentinel refused incident {desired.name}: {refused.reason}"]

    def _write(
        self, incident: Incident, tenant: TenantConfig, tenant_id: str, desired: Desired
    ) -> list[str]:
        """The incident, then its comments; reasons Sentinel refused a comment, if any."""
        version = ticks_from_text(str(incident.raw.get("lastUpdateDateTime") or ""))
        created = self._put_incident(desired, tenant_id, incident.id or "", version)
        return self._mirror_comments(incident, tenant, tenant_id, desired.name, created)

    def _forget(self, name: str) -> None:
        """Drop the copy's etag, so the incident is read (found missing) and created again
        with a PUT without an etag. Its properties and the comments it names stay, the base a
        read is compared with: a 404 that was only a lagging replica finds the incident, and
        only its users' real edits and new comments are news. The PUT that creates the
        incident anew drops the comments (``_put_incident``)."""
        copy = self.hub.get_remote_copy(self.name, name)
        if copy is not None:
            self.hub.save_remote_copy(self.name, replace(copy, etag="", pending=None))

    def _earlier_tags(self, tenant_id: str, incident_id: str) -> set[str]:
        tags: set[str] = set()
        for version in self.hub.incident_history(tenant_id, incident_id):
            for key in ("customTags", "tags"):
                found = version.payload.get(key)
                if isinstance(found, list):
                    tags.update(t for t in found if isinstance(t, str))
        return tags

    def _put_incident(
        self, desired: Desired, tenant_id: str, incident_id: str, version: int | None
    ) -> bool:
        """GET, merge, PUT if it differs; True if the incident was created.

        The copy the hub keeps of what xdrsync last wrote (or read) there — its etag and
        properties — stands in for the GET: when Defender's state is what it shows, nothing
        is sent; otherwise the PUT carries its etag, and an edit made in Sentinel since then
        makes it a 409, after which the incident is read and merged as usual. What analysts
        changed there that is still on its way to Defender is kept as Sentinel holds it
        (``mapping.hold``; ``version``: the hub's version of the incident)."""
        copy = self.hub.get_remote_copy(self.name, desired.name)
        # A copy without an etag was saved just before a write that may not have landed.
        known = (copy.etag, copy.properties) if copy is not None and copy.etag else None
        # The labels xdrsync derived at its last write: a read does not change them.
        written = own_labels(copy.properties) if copy is not None else None

        def remember(
            etag: str | None,
            properties: dict[str, Any],
            pending: dict[str, Any] | None = None,
            labels: tuple[str, ...] | None = None,  # None: ``written``
        ) -> None:
            if etag is not None:
                children = copy.children if copy is not None else frozenset()
                kept = with_own_labels(properties, written if labels is None else labels)
                self.hub.save_remote_copy(
                    self.name,
                    RemoteCopy(desired.name, tenant_id, incident_id, etag, kept, children, pending),
                )

        for _ in range(MAX_CONFLICTS):
            etag: str | None = None
            current: dict[str, Any] | None = None
            if known is not None:
                (etag, current), known = known, None
            elif (found := self.arm.get(desired.name)) is not None:
                etag, current = found
                if copy is not None and modified_before(current, copy.properties):
                    # Older than what Sentinel answered our last write with: a lagging read,
                    # neither an analyst's edit nor a base to write on. Read it again.
                    self.stale_reads += 1
                    continue
                if copy is not None and etag is not None and self.on_read is not None:
                    # Sentinel changed since our last write: its users' edits go to Defender
                    # (two-way) before this write puts Defender's values over them.
                    self.on_read(desired.name, etag, current)
                    # It saved the copy with the comments it forwarded: kept from here on,
                    # or the next read would take them for new and forward them again.
                    copy = self.hub.get_remote_copy(self.name, desired.name) or copy
                remember(etag, current)
            # Asked after the read: a 409's read has just queued its analysts' edits.
            wanted = hold(desired, current, self._held(tenant_id, incident_id, version))
            if current is not None and not differs(current, wanted):
                self.skipped_unchanged += 1
                return False
            if current is not None and etag is None:
                raise RetriableError(
                    f"destination {self.name!r}: incident {desired.name} came without an etag; "
                    "not overwriting it blindly"
                )
            body = merge(current, wanted)
            if current is None and copy is not None:
                # The PUT creates the incident anew: the comments the copy names went with
                # the one deleted in Sentinel, and are written again.
                copy = replace(copy, children=frozenset())
            # What is about to be written, first: if the process dies after the PUT, the
            # reader still knows these values for ours (and an edit since for theirs), and a
            # creation the labels it derived.
            remember(
                etag or "", current or {}, pending=body, labels=None if etag else wanted.labels
            )
            try:
                new_etag, answered = self.arm.put(desired.name, body, etag)
            except EtagConflictError:
                self.conflicts += 1
                continue
            except CreatedMeanwhileError:
                # Created, its answer lost: read it and write with its etag. Read against the
                # copy saved just above, as after a crash: an analyst's save on the new
                # incident is theirs, and goes to Defender.
                copy = self.hub.get_remote_copy(self.name, desired.name)
                written = own_labels(copy.properties) if copy is not None else None
                continue
            self.puts += 1
            # Sentinel's stamp of this write: a later read older than it is a lagging one.
            stamp = answered.get("lastModifiedTimeUtc")
            answered_body = body if stamp is None else {**body, "lastModifiedTimeUtc": stamp}
            remember(new_etag, answered_body, labels=wanted.labels)
            return current is None
        raise RetriableError(
            f"destination {self.name!r}: incident {desired.name} changed under every one of "
            f"{MAX_CONFLICTS} writes (409), or read older than our last write; trying again later"
        )

    def _held(self, tenant_id: str, incident_id: str, version: int | None) -> Held:
        """What this destination's analysts changed that has not come back from Defender yet
        (their edits still ``waiting`` against the hub's ``version``), as ``mapping.hold``
        keeps it."""
        edits = self.hub.edits(tenant_id=tenant_id, entity=("incident", incident_id))
        ours = [e for e in edits if e.origin == self.origin and waiting(e, version)]
        if not ours:
            return Held()
        added: set[str] = set()
        removed: set[str] = set()
        for edit in in_order_made(e for e in ours if e.field == TAGS):
            for tag in edit.wanted.get("add") or ():
                added.add(tag.casefold())
                removed.discard(tag.casefold())
            for tag in edit.wanted.get("remove") or ():
                removed.add(tag.casefold())
                added.discard(tag.casefold())
        fields = frozenset(e.field for e in ours if e.field in SHOWN_AS)
        return Held(fields, frozenset(added), frozenset(removed))

    def _mirror_comments(
        self, incident: Incident, tenant: TenantConfig, tenant_id: str, name: str, created: bool
    ) -> list[str]:
        incident_id = incident.id or ""
        wanted = self.mirrored(tenant_id, incident_id)
        redirect = redirect_comment(incident, tenant_id=tenant_id, tenant_name=tenant.name)
        if redirect is not None:
            wanted.insert(0, redirect)  # where the story goes on matters most
        if not wanted:
            return []
        copy = self.hub.get_remote_copy(self.name, name)
        written = copy.children if copy is not None else frozenset()
        names = {c.name for c in wanted}
        if not created and len(wanted) < MAX_COMMENTS and names <= written:
            return []  # every comment was written before: no need to list them
        existing = {} if created else {c.name: c.message for c in self.arm.list_comments(name)}
        plan = plan_comments(
            wanted,
            existing,
            notice=notice_name(tenant_id, incident_id),
            url=defender_url(incident, tenant_id),
        )
        self._count_left_out(name, plan.left_out, noticed=plan.notice is not None)
        reasons: list[str] = []
        there = (names | {plan.notice.name} if plan.notice else names) & set(existing)
        for comment in plan.puts:
            try:
                self.arm.put_comment(name, comment.name, comment.message)
            except IncidentRejectedError as refused:
                self.comments_rejected += 1
                reasons.append(f"Sentinel refused a comment on incident {name}: {refused.reason}")
                continue
            self.comments_put += 1
            there.add(comment.name)
        if copy is not None and not there <= written:
            self.hub.save_remote_copy(self.name, replace(copy, children=written | frozenset(there)))
        return reasons

    def _count_left_out(self, name: str, left_out: int, *, noticed: bool) -> None:
        """Remember how many of the incident's Defender comments found no place; warned once
        per incident and number, not at every delivery that finds the same ones missing."""
        before = self._left_out.get(name, 0)
        if left_out == before:
            return
        if left_out:
            self._left_out[name] = left_out
            log.warning(
                "sentinel incident has no room for more comments",
                destination=self.name,
                incident=name,
                left_out=left_out,
                notice=noticed,
            )
        else:
            del self._left_out[name]

    @property
    def comments_left_out(self) -> int:
        """Defender comments with no place left in Sentinel, over the incidents this
        destination wrote since it started (each incident counted as last found)."""
        return sum(self._left_out.values())

    @property
    def origin(self) -> str:
        """The outbox origin of edits read back from this destination (two-way)."""
        return f"sentinel:{self.name}"

    def mirrored(self, tenant_id: str, incident_id: str) -> list[MirroredComment]:
        """The incident's Defender comments as this destination shows them, less those that
        came from it (an analyst's Sentinel comment, posted to Defender for them)."""
        rows = self.hub.list_comments(tenant_id, incident_id)
        return mirrored_comments(
            tenant_id, incident_id, [r for r in rows if r.written_from != self.origin]
        )

    # -- alerts -------------------------------------------------------------------------------

    def _upload_alerts(self, changes: Sequence[ChangeRow]) -> dict[int, str]:
        assert self.ingestor is not None
        started = self.clock()
        alert_table: list[Row] = []
        evidence_table: list[Row] = []
        unmapped: dict[int, str] = {}
        for offset, change in enumerate(changes):
            tenant = self._tenants[change.tenant_id.lower()]
            twin = (
                incident_name(change.tenant_id, change.incident_id) if change.incident_id else None
            )
            try:
                alert, items = alert_for_rows(change.payload)
                row, evidence = alert_rows(
                    alert,
                    items,
                    seq=change.seq,
                    time_generated=started + timedelta(microseconds=offset),
                    tenant_id=change.tenant_id,
                    tenant=tenant.name,
                    incident=twin,
                )
            except UNMAPPABLE as bad:  # this alert's rows only: the others are uploaded
                unmapped[change.seq] = f"no rows for Sentinel: {type(bad).__name__}: {bad}"
                continue
            alert_table.append(row)
            evidence_table.extend(evidence)
        refused = self.ingestor.upload(self.entry.alert_stream, alert_table)
        for seq, reason in self.ingestor.upload(self.entry.evidence_stream, evidence_table).items():
            refused.setdefault(seq, reason)
        return refused | unmapped

    def stats(self) -> dict[str, Any]:
        """The counters, for the bench and metrics."""
        return {
            "arm_calls": self.arm_calls,
            "puts": self.puts,
            "skipped_unchanged": self.skipped_unchanged,
            "conflicts": self.conflicts,
            "recreated": self.recreated,
            "incidents_rejected": self.incidents_rejected,
            "comments_put": self.comments_put,
            "comments_left_out": self.comments_left_out,
            "comments_rejected": self.comments_rejected,
            "rows_uploaded": self.rows_uploaded,
            "rows_not_resent": self.ingestor.rows_not_resent if self.ingestor is not None else 0,
        }


__all__ = ["MAX_CONFLICTS", "SentinelDestination"]
