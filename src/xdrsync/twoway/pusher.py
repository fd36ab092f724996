"""The pusher: takes pending workspace edits from the outbox to Defender.

For each record with pending edits it reads Defender's current value once, merges every field
three ways (``merge``), sends one PATCH with the fields that need writing (sent again in
halves when Graph refuses a value in it, so that only the refused field fails: ``_patch``),
checks Defender's answer, and posts new comments. Every decision is settled in the hub
with an audit row; a crash anywhere leaves the edit pending, and the next attempt starts
again from Defender's current value, so a field is never written twice and a comment is
looked for before it is posted again.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import structlog

from xdrsync.config import ConflictPolicies
from xdrsync.errors import (
    ConflictError,
    FatalSyncError,
    RetriableError,
    ServerBusyError,
    ThrottledError,
    XdrSyncError,
)
from xdrsync.graph.errors import BadRequestError, ForbiddenError, NotFoundError
from xdrsync.hub import Hub, VersionRow
from xdrsync.hub.payload import comment_key, datetime_from_ticks, ticks_from_text
from xdrsync.hub.records import EntityType, OutboxRow, OutboxState, Settlement, Written
from xdrsync.logs import clean
from xdrsync.models.comment import Comment
from xdrsync.twoway import access
from xdrsync.twoway.fields import CLASSIFICATION, COMMENT, OWNER, STATUS, TAGS
from xdrsync.twoway.merge import (
    FieldPlan,
    Intent,
    Policy,
    close_classified,
    in_order_made,
    merge_field,
    merge_tags,
    same,
    write_units,
)
from xdrsync.twoway.merge import theirs_since as field_since

log = structlog.get_logger(__name__)

#: How long before our first attempt a comment found in Defender may have been made and still
#: be ours (clocks of two machines): only comments with our exact text are considered.
COMMENT_CLOCK_SKEW = timedelta(minutes=5)

#: How Defender names the author of a comment an application posted: this prefix and the app,
#: its client id (the emulator) or its registration's display name (as Graph answers have
#: shown it). People's comments carry their own names.
APP_AUTHOR = "API-App:"
_CLIENT_ID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")

#: How many tries of an edit in a row Defender may answer 409 Conflict before it fails. Graph
#: documents no 409 for these calls; Azure's APIs answer it to a write that raced another
#: ("Newer version of resource exists. Data was not saved", microsoft-apis.md §3.4), which a
#: later try, merged again from Defender's current record, gets past. One that persists is
#: not a race: the edit fails with Defender's answer instead of waiting forever.
MAX_CONFLICT_TRIES = 4


class DefenderWriter(Protocol):
    """What the pusher needs of a tenant's Graph API (``graph.DefenderApi`` has it)."""

    def get_incident(
        self, incident_id: str, *, expand_alerts: bool = True
    ) -> dict[str, Any] | None: ...
    def patch_incident(self, incident_id: str, changes: Mapping[str, Any]) -> dict[str, Any]: ...
    def add_incident_comment(self, incident_id: str, text: str) -> list[dict[str, Any]]: ...
    def get_alert(self, alert_id: str) -> dict[str, Any] | None: ...
    def patch_alert(self, alert_id: str, changes: Mapping[str, Any]) -> dict[str, Any]: ...
    def add_alert_comment(self, alert_id: str, text: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class PushTarget:
    """One tenant the pusher writes to. ``writes``: the configuration lets its edits through
    (``Config.writes_to``); whether its app may write is what the hub last recorded of its
    roles, read again at every push (``twoway.access``). ``app_id``: its app's client id,
    to tell our comments from others' (``_ours_by_author``). ``sign_in_again``: forgets the
    tenant's access token, so that the next call signs in afresh (``Pusher._refused``).
    ``granted_roles``: signs in and reads the permissions the app was granted, which the
    pusher records at its first push of the tenant (``Pusher._sign_in``)."""

    name: str
    tenant_id: str
    api: DefenderWriter
    writes: bool = True
    app_id: str | None = None
    sign_in_again: Callable[[], None] | None = None
    granted_roles: Callable[[], Collection[str]] | None = None


#: How many times one push follows a comment from a merged incident to its survivor.
MAX_RETARGET_PASSES = 8


#: Why an edit may end failed with nothing for an operator to do: Defender merged its
#: incident into another (field edits are not carried over) or deleted the record.
ENDED_BY_DEFENDER: Final = frozenset({"merged_away", "gone"})


@dataclass
class PushReport:
    """What one ``push_due`` did; ``writes`` counts PATCH and comment requests sent."""

    reads: int = 0
    writes: int = 0
    states: dict[str, int] = field(default_factory=dict)
    # Comments moved to the survivor of a merge in this push: pushed again before it ends.
    retargeted: list[int] = field(default_factory=list)
    # Edits settled in this push (a failure after them leaves them as they were settled).
    settled: set[int] = field(default_factory=set)
    # Edits that failed for a reason an operator may have to act on (Defender refused them,
    # or they ran out of attempts), not because Defender merged or deleted their record.
    refused: int = 0
    # Records (tenant, kind, id) whose edits this push left waiting for a retry.
    waiting: set[tuple[str, str, str]] = field(default_factory=set)

    def count(self, state: str) -> None:
        self.states[state] = self.states.get(state, 0) + 1

    def merge(self, other: PushReport) -> None:
        self.reads += other.reads
        self.writes += other.writes
        for state, n in other.states.items():
            self.states[state] = self.states.get(state, 0) + n
        self.retargeted.extend(other.retargeted)
        self.settled |= other.settled
        self.refused += other.refused
        self.waiting |= other.waiting


def _utcnow() -> datetime:
    return datetime.now(UTC)


def theirs_of(record: Mapping[str, Any], name: str) -> Any:
    """A field's current value in a Graph record, in the outbox's JSON form."""
    if name == CLASSIFICATION:
        return {
            "classification": record.get("classification") or "unknown",
            "determination": record.get("determination") or "unknown",
        }
    if name == TAGS:
        return list(record.get("customTags") or ())
    return record.get(name)


def _graph_keys(name: str) -> tuple[str, ...]:
    """The Graph properties a workspace field is (the pair is two; `theirs_of`)."""
    return ("classification", "determination") if name == CLASSIFICATION else (name,)


def patch_body(plans: Sequence[FieldPlan]) -> dict[str, Any]:
    """The PATCH for the fields that need writing (the pair as its two Graph properties)."""
    body: dict[str, Any] = {}
    for plan in plans:
        if plan.action != "write":
            continue
        keys = _graph_keys(plan.field)
        body.update({k: plan.value[k] for k in keys} if len(keys) > 1 else {keys[0]: plan.value})
    return body


#: What any write changes in its record besides what it sets (``alerts``: the hub keeps an
#: incident's alerts apart, and a read may or may not carry them).
_WRITE_BUMPED = frozenset({"lastUpdateDateTime", "lastModifiedBy", "alerts"})


def _unchanged_beyond(record: Mapping[str, Any], keys: Collection[str]) -> dict[str, Any]:
    """A record's properties but ``keys`` (what a write set) and those any write changes."""
    return {
        k: v
        for k, v in record.items()
        if k not in keys and k not in _WRITE_BUMPED and not k.startswith("@")
    }


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """The properties that differ between two versions of a record, but those any write
    changes (``_WRITE_BUMPED``)."""
    keys = (before.keys() | after.keys()) - _WRITE_BUMPED
    return {k for k in keys if not k.startswith("@") and before.get(k) != after.get(k)}


def _redirected(record: Mapping[str, Any]) -> str | None:
    target = record.get("redirectIncidentId")
    if str(record.get("status") or "").lower() == "redirected" or target:
        return str(target) if target else ""
    return None


class Pusher:
    """Pushes due edits; ``push_due`` is one pass, safe to call from one thread at a time."""

    def __init__(
        self,
        hub: Hub,
        targets: Sequence[PushTarget],
        policies: ConflictPolicies,
        *,
        retry_seconds: float = 2.0,
        max_retry_seconds: float = 300.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.hub = hub
        self.targets = {t.tenant_id: t for t in targets}
        self.policies = policies
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.clock = clock
        # One push at a time per tenant (a record's edits stay in order); tenants apart.
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # Why a tenant's kinds of record may not be written, read once per push (``_refused``),
        # and when the roles it was read from were recorded.
        self._read_only: dict[str, dict[EntityType, str]] = {}
        self._checked = {tid: self._capability(tid).get("checked_at") for tid in self.targets}
        # Tenants whose granted roles are still to be read (``_sign_in``).
        self._unsigned = {t.tenant_id for t in targets if t.granted_roles is not None}

    def policy(self, name: str) -> Policy:
        if name == STATUS:
            return self.policies.status
        if name == OWNER:
            return self.policies.owner
        return self.policies.classification

    # -- one pass -------------------------------------------------------------------------

    def push_due(self, tenant_id: str | None = None, batch: int = 200) -> PushReport:
        """Push every edit due now (of one tenant, or of each tenant in turn), each once,
        ``batch`` edits read at a time; returns what was done.

        Thread-safe: pushes of one tenant run one at a time, those of different tenants side
        by side (the service pushes each tenant on its own thread, so a tenant whose Graph
        hangs holds up only its own edits)."""
        if tenant_id is None:
            report = PushReport()
            for each in self.targets:
                report.merge(self.push_due(each, batch))
            return report
        report = PushReport()
        began = time.monotonic()
        seen = 0
        after = 0
        carry: list[OutboxRow] = []
        with self._lock_of(tenant_id):
            self._read_only.pop(tenant_id, None)
            self._sign_in(tenant_id)
            while True:
                rows = self.hub.due_edits(batch, tenant_id, after_id=after)
                if not rows and not carry:
                    break
                full = len(rows) == batch
                after = rows[-1].id if rows else after
                seen += len(rows)
                rows, carry = carry + rows, []
                # A record whose push in this pass left an edit waiting for its retry (its
                # edits went on past the batch read with it): its later edits wait with it,
                # and go together at its retry (``due`` hands a record's edits over together,
                # the older merged first). Pushed alone now, a later edit would be written
                # before the earlier one, which, out of its wait, would be written over it.
                rows = [r for r in rows if _record(r) not in report.waiting]
                if full and rows:
                    # The last record's edits may go on in the next batch: keep them for it,
                    # so that one record's edits still make one PATCH.
                    last = _record(rows[-1])
                    held = [r for r in rows if _record(r) == last]
                    if len(held) < len(rows):
                        carry = held
                        rows = [r for r in rows if _record(r) != last]
                self._push_rows(rows, report)
            # A comment moved to a merge's survivor goes there in this same push, not the
            # next: the edits after a merge converge within the cycle that found it. A chain
            # of merges moves it again; the passes are bounded all the same.
            for _ in range(MAX_RETARGET_PASSES):
                moved, report.retargeted = report.retargeted, []
                rows = (
                    [r for r in self.hub.edits(ids=moved) if r.state == "pending"] if moved else []
                )
                if not rows:
                    break
                seen += len(rows)
                self._push_rows(rows, report)
        if seen:
            target = self.targets.get(tenant_id)
            log.info(
                "edits pushed",
                tenant=target.name if target is not None else tenant_id,
                edits=seen,
                writes=report.writes,
                reads=report.reads,
                seconds=round(time.monotonic() - began, 3),
                **report.states,
            )
        return report

    def _lock_of(self, tenant_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(tenant_id, threading.Lock())

    def _sign_in(self, tenant_id: str) -> None:
        """Read the permissions the tenant's app was granted and record them in the hub, where
        ``update``, the health page and ``_refused`` read them; once, at the tenant's first
        push (again at the next, if it failed). Here, on the thread pushing this tenant, and
        not when the pusher is built: a tenant whose sign-in hangs then holds up no other
        tenant, nor the start of the service, nor its stop."""
        target = self.targets.get(tenant_id)
        if tenant_id not in self._unsigned or target is None or target.granted_roles is None:
            return
        try:
            roles = target.granted_roles()
        except XdrSyncError as failure:
            log.warning(
                "could not read the app's permissions", tenant=target.name, error=str(failure)
            )
            return
        self._unsigned.discard(tenant_id)
        if roles:
            doc = access.capability_doc(roles, self.clock())
            self.hub.save_state(tenant_id, access.STREAM, doc)
            # Read from the token we hold: no need to sign in again for them (``_refused``).
            self._checked[tenant_id] = doc["checked_at"]

    def _lost_permission(self, target: PushTarget) -> None:
        """Graph refused a call for a missing permission: the roles the hub recorded are out
        of date (revoked since, the token in hand being newer than them). Read them again from
        that token now, so that ``update`` and the rest of this push refuse edits up front
        rather than queue them to fail the same way."""
        if target.granted_roles is None:
            return
        self._unsigned.add(target.tenant_id)
        self._sign_in(target.tenant_id)
        self._read_only.pop(target.tenant_id, None)

    def _refused(self, target: PushTarget, kind: EntityType) -> str | None:
        """Why ``kind`` records of the tenant may not be written (None: they may), from the
        roles the hub has recorded, read once per push and tenant: a permission granted and
        recorded (``xdrsync check``) counts from the next push, as it does for ``update``
        (``submit``), without restarting the service."""
        reasons = self._read_only.get(target.tenant_id)
        if reasons is None:
            doc = self._capability(target.tenant_id)
            checked = doc.get("checked_at")
            if checked != self._checked.get(target.tenant_id) and target.sign_in_again:
                # Checked again since: the token we hold names the permissions of its own
                # sign-in, and Graph would refuse a permission granted after it.
                target.sign_in_again()
            self._checked[target.tenant_id] = checked
            roles = access.recorded_roles(doc)
            reasons = access.read_only_reasons(target.name, target.writes, roles)
            self._read_only[target.tenant_id] = reasons
        return reasons.get(kind)

    def _capability(self, tenant_id: str) -> Mapping[str, Any]:
        return self.hub.get_state(tenant_id, access.STREAM) or {}

    def _push_rows(self, rows: list[OutboxRow], report: PushReport) -> None:
        groups: dict[tuple[str, str, str], list[OutboxRow]] = {}
        for row in rows:
            groups.setdefault(_record(row), []).append(row)
        for (tenant, _kind, _entity), edits in groups.items():
            target = self.targets.get(tenant)
            if target is None:
                continue  # a tenant no longer configured: its edits wait
            report.merge(self._push_record(target, edits))

    def _push_record(self, target: PushTarget, edits: list[OutboxRow]) -> PushReport:
        report = PushReport()
        refused = self._refused(target, edits[0].entity_type)
        if refused is not None:
            self._settle(report, [_done(e, "failed", "refused", refused) for e in edits])
            return report
        try:
            self._merge_and_write(target, edits, report)
        except XdrSyncError as failure:
            self._failed_call(report, edits, failure)
            if isinstance(failure, ForbiddenError):
                self._lost_permission(target)
        except Exception as failure:  # a bug must not lose an edit: retried later
            log.exception("push crashed", tenant=target.name, entity=edits[0].entity_id)
            self._failed_call(report, edits, failure)
        return report

    def _merge_and_write(
        self, target: PushTarget, edits: list[OutboxRow], report: PushReport
    ) -> None:
        kind, entity_id = edits[0].entity_type, edits[0].entity_id
        fields = [e for e in edits if e.field != COMMENT]
        comments = [e for e in edits if e.field == COMMENT]
        record: dict[str, Any] | None = None
        # Defender's current record is read when a field must be merged, or when a comment
        # may already have been posted by an attempt that did not live to record it.
        if fields or any(c.sent_at is not None for c in comments):
            record = self._read(target, kind, entity_id, report)
            if record is None:
                reason = f"Defender has no {kind} {entity_id} (deleted, or past retention)"
                self._settle(report, [_done(e, "failed", "gone", reason) for e in edits])
                return
            merged_into = _redirected(record) if kind == "incident" else None
            if merged_into is not None:
                # A comment an attempt posted before the merge stays where Defender keeps it.
                left = [e for e in comments if not self._found_comment(target, e, record, report)]
                self._merged_away(report, [*fields, *left], merged_into)
                return
        elif kind == "incident":
            current = self.hub.get_incident(target.tenant_id, entity_id)
            if current is not None and current.is_redirected:
                self._merged_away(report, edits, current.redirect_incident_id or "")
                return
        # Comments first: a comment bumps the record's version too, so the PATCH's answer is
        # then the newest version, the one remembered as ours.
        posted = [e for e in comments if self._comment(target, e, record, report)]
        if fields:
            assert record is not None
            self._write_fields(target, kind, entity_id, fields, record, report)
        elif posted:
            self._remember_comment_version(target, kind, entity_id, posted[-1], report)

    # -- fields ---------------------------------------------------------------------------

    def _write_fields(
        self,
        target: PushTarget,
        kind: EntityType,
        entity_id: str,
        edits: list[OutboxRow],
        record: Mapping[str, Any],
        report: PushReport,
    ) -> None:
        by_field: dict[str, list[OutboxRow]] = {}
        for edit in in_order_made(edits):  # a field's latest last: the value written
            by_field.setdefault(edit.field, []).append(edit)
        history: list[tuple[datetime, dict[str, Any]]] | None = None

        def undone(group: Sequence[OutboxRow]) -> bool:
            """Whether a write of these edits of one field (those not found landed) landed and
            was undone since: the record has a new version since their first send, changed in
            nothing that can be seen but that field. Measured from their own sends: an
            earlier edit of the field that landed, or another field's write, went out before
            them, and a version it made says nothing of whether theirs landed."""
            changed = self._changed_since_sent(target, kind, entity_id, group, record, report)
            return changed is not None and changed <= set(_graph_keys(group[0].field))

        plans: list[FieldPlan] = []
        for name, group in by_field.items():
            theirs = theirs_of(record, name)
            if name == TAGS and any(e.sent_at is not None for e in group):
                history = history or self._history(target.tenant_id, kind, entity_id)
                landed = _tags_landed(group, history)
            else:
                landed = _landed(name, group, theirs)
            if landed:
                # An attempt that did not live to confirm had written these: they are done,
                # and the later edits are merged from the value they left in Defender.
                plans.append(
                    FieldPlan(
                        name,
                        "already",
                        None,
                        tuple(e.id for e in landed),
                        theirs,
                        theirs,
                        "Defender has the value an earlier attempt wrote",
                    )
                )
                group = group[len(landed) :]
                if not group:
                    continue
            if name == TAGS:
                plans.append(merge_tags([_intent(e) for e in group], theirs))
                continue
            if history is None:
                history = self._history(target.tenant_id, kind, entity_id)
            plans.append(self._merge(name, group, record, history, undone))
        if kind == "incident":  # a close goes with a classification (merge.close_classified)
            origins = {e.id: e.origin for e in edits}
            plans = close_classified(
                plans, record.get(STATUS), theirs_of(record, CLASSIFICATION), origins
            )
        body = patch_body(plans)
        rows = {e.id: e for e in edits}
        if not body:
            decided = [s for p in plans for s in self._decided(p, rows, record)]
            ours = (
                self._landed_version(target, entity_id, plans, rows, record, report)
                if kind == "incident"
                else None
            )
            self._settle(report, decided, ours)
            return
        writes = [p for p in plans if p.action == "write"]
        self.hub.mark_sent([i for p in writes for i in p.intents])
        # The fields decided without a write are settled with the first answer Defender gives.
        decided = [s for p in plans if p.action != "write" for s in self._decided(p, rows, record)]
        # What Graph must take or refuse whole if it refuses the PATCH: a close goes only
        # with its classification (merge.write_units); an alert's fields each alone.
        units = (
            write_units(plans, {e.id: e.origin for e in edits})
            if kind == "incident"
            else [(p,) for p in writes]
        )
        self._patch(target, kind, entity_id, units, rows, record, report, decided)

    def _patch(
        self,
        target: PushTarget,
        kind: EntityType,
        entity_id: str,
        units: Sequence[tuple[FieldPlan, ...]],
        rows: Mapping[int, OutboxRow],
        record: Mapping[str, Any],
        report: PushReport,
        decided: list[Settlement],
    ) -> bool:
        """PATCH the fields ``units`` write in one request, and settle them (with
        ``decided``, emptied once settled) from Defender's answer; False when the answer
        came from another record (merged meanwhile).

        Graph answers a PATCH that sets one value it does not take (a classification and
        determination that do not go together, a status it does not accept) with 400 for
        the whole request. The fields are then sent again in halves, down to the unit
        Graph refuses: that one fails alone, with Graph's message (``edit_refused``), and
        the fields Graph takes are written, the user's valid edits not dropped with it. A
        unit is one field, or a close and its classification (``merge.write_units``): a
        close whose classification Graph refuses is not written either, since it would
        leave the incident closed unclassified (``merge.close_classified``).
        Sending a half again is safe whether or not the refused PATCH applied any of it
        (Graph documents no partial update; the emulator applies none): it sets the same
        values. A record's fields number four at most, so one refused field costs at most
        four more PATCHes (two more when the record has two), and a refusal of every field
        at most six. A half that fails otherwise (5xx, no answer) propagates as a PATCH
        does, leaving what is not settled yet to the retry, merged afresh; after a half
        whose answer shows the record merged into another, no other half is sent (Graph
        would apply it to the survivor): the retry finds the merge."""
        plans = [plan for unit in units for plan in unit]
        body = patch_body(plans)
        report.writes += 1
        try:
            if kind == "incident":
                answer = target.api.patch_incident(entity_id, body)
            else:
                answer = target.api.patch_alert(entity_id, body)
        except BadRequestError as refused:
            if len(units) > 1:
                half = len(units) // 2
                return all(  # stops after a half whose answer came from another record
                    self._patch(target, kind, entity_id, part, rows, record, report, decided)
                    for part in (units[:half], units[half:])
                )
            (unit,) = units
            reason = clean(f"Graph answered {refused.detail or refused}")
            log.warning(
                "defender refused a field's value",
                tenant=target.name,
                entity=entity_id,
                field=",".join(plan.field for plan in unit),
                reason=reason,
            )
            failed: list[Settlement] = []
            for plan in unit:
                why = reason
                if len(unit) > 1:
                    others = " and ".join(p.field for p in unit if p is not plan)
                    why = (
                        f"{reason} (refused together with {others}: a closed incident "
                        "needs its classification)"
                    )
                detail = _detail(plan, record, why)
                failed.extend(
                    Settlement(rows[i], "failed", "edit_refused", detail) for i in plan.intents
                )
            self._settle(report, [*decided, *failed])
            decided.clear()
            return True
        settlements, written = self._answered(target, kind, entity_id, plans, rows, record, answer)
        self._settle(report, [*decided, *settlements], written)
        decided.clear()
        return str(answer.get("id") or entity_id) == entity_id

    def _answered(
        self,
        target: PushTarget,
        kind: EntityType,
        entity_id: str,
        plans: Sequence[FieldPlan],
        rows: Mapping[int, OutboxRow],
        record: Mapping[str, Any],
        answer: Mapping[str, Any],
    ) -> tuple[list[Settlement], Written | None]:
        """What Defender's answer to a PATCH of ``plans`` says of each field written, and the
        version it made of the write (None when it shows none of them written)."""
        # A third party reports that Graph applies an update of a merged incident to the
        # survivor (reference §1.6, unverified): merged between the read and the PATCH, the
        # answer is the survivor's. The fields then fail here, saying where they went; what
        # the answer shows written is remembered as that record's version by the user, so
        # the inbound read does not take it for a change made in Defender.
        answered = str(answer.get("id") or entity_id)
        elsewhere = (
            f"Defender applied the write to {kind} {answered}, not to this one (merged into "
            f"it meanwhile?): check {answered} and edit it there"
            if answered != entity_id
            else None
        )
        version = ticks_from_text(str(answer.get("lastUpdateDateTime") or ""))
        settlements: list[Settlement] = []
        applied: dict[str, Any] = {}
        for plan in plans:
            got = theirs_of(answer, plan.field)
            if same(plan.field, got, plan.value):
                applied[plan.field] = plan.value
                if elsewhere is None:
                    detail = _detail(plan, record, "written; Defender confirmed")
                    settlements.extend(
                        Settlement(rows[i], "confirmed", "pushed", detail, written_version=version)
                        for i in plan.intents
                    )
                    continue
            if elsewhere is not None:
                decision, reason = "merged_away", elsewhere
            else:
                decision = "not_applied"
                reason = f"Defender answered the write with {got!r}, not {plan.value!r}"
            detail = _detail(plan, record, reason)
            settlements.extend(
                Settlement(rows[i], "failed", decision, detail) for i in plan.intents
            )
        last = in_order_made(rows[i] for p in plans for i in p.intents)[-1]
        written = (
            Written(target.tenant_id, kind, answered, version, last.author, last.origin, applied)
            if version is not None and applied
            else None
        )
        return settlements, written

    def _merge(
        self,
        name: str,
        group: Sequence[OutboxRow],
        record: Mapping[str, Any],
        history: Sequence[tuple[datetime, Mapping[str, Any]]],
        undone: Callable[[Sequence[OutboxRow]], bool],
    ) -> FieldPlan:
        """Merge a field's edits (but those found landed) with Defender's value.

        An earlier write of the field whose answer never came may have landed and Defender's
        value been changed since: put back to what the user saw, say, by an analyst who
        un-assigned. Defender then holds what the user saw, which reads as "nothing changed",
        and writing again would undo the analyst's later change. So when a version the hub
        read shows the write landed (``_written``), Defender's value is a change made after
        it: merged as if the user had seen the value the write left, under the field's
        policy, as a change to a third value is. When that is only inferred (``undone``: a
        newer record that differs in nothing visible), it is a conflict for the user to
        settle, whatever the policy. A write that cannot be told to have landed is merged
        from Defender's value as it stands (sent again)."""
        intents = [_intent(e) for e in group]
        theirs = theirs_of(record, name)
        stamp = _time(record.get("lastUpdateDateTime"))
        after = _written(name, group, history)
        policy = self.policy(name)
        sent = any(e.sent_at is not None for e in group)
        # Defender holding what the user saw is the one case a write undone reads wrongly
        # (any other value is a change since the user looked, merged as such below).
        if after is None and sent and same(name, theirs, intents[0].seen) and undone(group):
            after = max(i for i, e in enumerate(group) if e.sent_at is not None)
            # Only inferred: a version that changed nothing visible may also be Defender's
            # own (an alert updated, an automation's save) over a write that never landed.
            # Neither writing again nor giving up is safe to decide alone: the user does.
            policy = "manual"
        if after is None:
            values = [(at, theirs_of(payload, name)) for at, payload in history]
            since = field_since(name, theirs, values, stamp)
            return merge_field(name, intents, theirs, since, policy)
        landed = group[after]
        assert landed.sent_at is not None
        intents[0] = replace(intents[0], seen=landed.wanted)
        # When Defender's value was set after the write: as the hub read it since, else the
        # record's version.
        values = [(at, theirs_of(payload, name)) for at, payload in history if at >= landed.sent_at]
        plan = merge_field(name, intents, theirs, field_since(name, theirs, values, stamp), policy)
        if plan.action == "already":
            return plan
        reason = (
            f"the write of {landed.wanted!r}, its answer lost, landed and was changed in "
            f"Defender since; {plan.reason}"
        )
        return replace(plan, reason=reason)

    def _changed_since_sent(
        self,
        target: PushTarget,
        kind: EntityType,
        entity_id: str,
        edits: Sequence[OutboxRow],
        record: Mapping[str, Any],
        report: PushReport,
    ) -> set[str] | None:
        """The properties in which Defender's record differs from the version the hub read
        before the first send of ``edits`` (one field's edits not found landed: ``undone`` in
        ``_write_fields``; but what any write changes, and the comments our app made before
        it), when the record is newer than that send; None when it is not (nothing changed it
        since: the write never landed), when the hub read no version before it, or when the
        incident's alerts changed too or cannot be compared. An earlier send (of an edit of
        the field that landed, or of another field) is not the measure: a record newer than it
        only is no sign that these edits' write landed.

        That tells a write put back from one that never landed when no version the hub read
        shows it (``_written``: the undo may follow within seconds, before any read). A field
        that Defender holds as the user saw it, in a record with a new version since our write
        of it that changed nothing that can be seen but that field: the one change known to
        have been on its way was our write, and it was undone (``undone`` in
        ``_write_fields``). A change seen anywhere else (a comment, ours too, another field,
        even one our write set, an alert correlated) may have made the new version on its own,
        the write never having landed (a 5xx that did not act on it, a crash before it left):
        the field is written again, as it always was. That misses an undo that came with other
        changes (unless the hub read the write); taking them for one would end edits
        overridden by others' changes to other fields (an analyst resolving the incident as
        the user did), a loss of the user's write that nobody contradicted. Stamps are
        compared with no allowance for clock skew, as for tags (``_tags_landed``)."""
        sent = [e.sent_at for e in edits if e.sent_at is not None]
        stamp = _time(record.get("lastUpdateDateTime"))
        if not sent or stamp is None or stamp < min(sent):
            return None
        first = min(sent)
        before = [
            row for row in self._versions(target.tenant_id, kind, entity_id) if row.version < first
        ]
        if not before:
            return None
        changed = _changed(
            _others_comments(before[-1].payload, target.app_id, first),
            _others_comments(record, target.app_id, first),
        )
        written = {k for e in edits if e.sent_at is not None for k in _graph_keys(e.field)}
        if not changed <= written or kind != "incident":
            return changed  # beyond our writes no field is taken for undone: alerts not read
        listed = [row.alert_ids for row in before if row.alert_ids is not None]
        if not listed:
            return None
        alerts = self._alert_ids(target, entity_id, record, report)
        return changed if alerts is not None and alerts == sorted(listed[-1]) else None

    def _alert_ids(
        self, target: PushTarget, entity_id: str, record: Mapping[str, Any], report: PushReport
    ) -> list[str] | None:
        """The ids of the alerts the incident lists at ``record``'s version, read again with
        them (sorted); None when that cannot be read, or the incident has moved on since."""
        report.reads += 1
        try:
            expanded = target.api.get_incident(entity_id)
        except XdrSyncError:
            return None
        if expanded is None or expanded.get("lastUpdateDateTime") != record.get(
            "lastUpdateDateTime"
        ):
            return None
        return sorted(
            str(a.get("id")) for a in expanded.get("alerts") or () if isinstance(a, Mapping)
        )

    def _landed_version(
        self,
        target: PushTarget,
        entity_id: str,
        plans: Sequence[FieldPlan],
        rows: Mapping[int, OutboxRow],
        record: Mapping[str, Any],
        report: PushReport,
    ) -> Written | None:
        """The incident's version as the workspace user's (ModifiedBy, no echo), as it would
        have been had the answer come, when an earlier attempt's write landed though its
        answer was lost and nothing else changed the incident since the hub last read it:
        Defender names our app as the last modifier, the version is newer than the hub's, it
        differs from the hub's in the landed fields and our app's comments alone, and it lists
        the same alerts (read again with them). Anything less is left as Defender's change.
        Only fields an attempt was sent for: a value found already there before any attempt
        was set by someone else (another app, a playbook), whatever its last modifier."""
        plans = [
            p
            for p in plans
            if p.action == "already" and any(rows[i].sent_at is not None for i in p.intents)
        ]
        landed = [i for p in plans for i in p.intents]
        version = ticks_from_text(str(record.get("lastUpdateDateTime") or ""))
        modifier = record.get("lastModifiedBy")
        if not landed or version is None or not isinstance(modifier, str):
            return None
        stored = self.hub.get_incident(target.tenant_id, entity_id)
        if not _ours_by_author(modifier, target.app_id) or stored is None:
            return None
        before = ticks_from_text(str(stored.raw.get("lastUpdateDateTime") or ""))
        if before is None or version <= before:
            return None
        keys = {k for p in plans if p.action == "already" for k in _graph_keys(p.field)}
        before_write = _unchanged_beyond(_others_comments(stored.raw, target.app_id), keys)
        if before_write != _unchanged_beyond(_others_comments(record, target.app_id), keys):
            return None
        alerts = self._alert_ids(target, entity_id, record, report)
        if alerts is None or alerts != sorted(str(a.id) for a in stored.alerts):
            return None
        last = in_order_made(rows[i] for i in landed)[-1]
        fields = {p.field: p.theirs for p in plans if p.action == "already"}
        return Written(
            target.tenant_id, "incident", entity_id, version, last.author, last.origin, fields
        )

    def _decided(
        self, plan: FieldPlan, rows: Mapping[int, OutboxRow], record: Mapping[str, Any]
    ) -> list[Settlement]:
        state, decision = _OUTCOMES[plan.action]
        detail = _detail(plan, record, plan.reason)
        # Defender's record holds the value from the version read: until the hub reads that
        # version, the workspace shows the value (``edits.view``), not its older read.
        version = ticks_from_text(str(record.get("lastUpdateDateTime") or ""))
        held = version if state == "confirmed" else None
        if state == "conflict":
            # The conflict settles what the earlier write did: resolved for the workspace, the
            # edit is written over the value Defender had, not taken for that write undone.
            detail["sent_at"] = None
        return [
            Settlement(
                rows[i], state, decision, detail, written_version=held, theirs=(plan.theirs,)
            )
            for i in plan.intents
        ]

    # -- comments -------------------------------------------------------------------------

    def _remember_comment_version(
        self,
        target: PushTarget,
        kind: EntityType,
        entity_id: str,
        edit: OutboxRow,
        report: PushReport,
    ) -> None:
        """A comment makes a new version of its record, but Graph's answer to the POST is the
        comment list only: read the record once to learn that version, so that the inbound
        stream recognises it as ours. Only when that version is newer than the hub's and
        differs from it in its comments alone: a change made in Defender that the hub has not
        read yet (an analyst resolving it meanwhile), or a comment that made no new version
        (whether Graph makes one is not documented), stays Defender's; so does one that also
        holds a comment someone else made meanwhile."""
        try:
            record = self._read(target, kind, entity_id, report)
        except XdrSyncError:
            return  # only the attribution is lost: the version reads as Defender's
        version = ticks_from_text(str((record or {}).get("lastUpdateDateTime") or ""))
        stored = (
            self.hub.get_incident(target.tenant_id, entity_id)
            if kind == "incident"
            else self.hub.get_alert(target.tenant_id, entity_id)
        )
        if stored is not None and record is not None:
            before = ticks_from_text(str(stored.raw.get("lastUpdateDateTime") or ""))
            if version is not None and before is not None and version <= before:
                return  # the comment made no version of its own
            # Others' comments count as changes (an analyst commenting meanwhile); only our
            # app's comments are the push's own.
            if _with_others_comments(stored.raw, target.app_id) != _with_others_comments(
                record, target.app_id
            ):
                return  # others' changes are in that version too: not ours to claim
        if version is not None:
            written = Written(
                target.tenant_id,
                kind,
                entity_id,
                version,
                edit.author,
                edit.origin,
                {COMMENT: edit.wanted},
            )
            self.hub.settle_edits([], written)

    def _comment(
        self,
        target: PushTarget,
        edit: OutboxRow,
        record: Mapping[str, Any] | None,
        report: PushReport,
    ) -> bool:
        """Post one comment (or find it already posted); True when it was posted now."""
        text = str(edit.wanted)
        kind, entity_id = edit.entity_type, edit.entity_id
        if self._found_comment(target, edit, record, report):
            return False
        claimed = self.hub.claimed_comment_keys(target.tenant_id, kind, entity_id)
        self.hub.mark_sent([edit.id])
        sent_at = edit.sent_at or self.clock()
        report.writes += 1
        try:
            if kind == "incident":
                comments = target.api.add_incident_comment(entity_id, text)
            else:
                comments = target.api.add_alert_comment(entity_id, text)
        except (FatalSyncError, ConflictError) as refused:
            # Defender answered this comment alone (a 400 with its reason, a 409): it fails or
            # waits alone, and the record's other edits go on. What stops every edit of the
            # record (403, 404, 5xx, no connection) propagates.
            self._failed_call(report, [edit], refused)
            return False
        key = _our_comment(comments, text, sent_at, claimed, target.app_id)
        if key is None:
            # The answer did not list it (cut short): Defender's record does, once posted.
            try:
                since = self._read(target, kind, entity_id, report)
            except XdrSyncError:
                since = None
            found = (since or {}).get("comments") or ()
            key = _our_comment(found, text, sent_at, claimed, target.app_id)
        detail = {
            "reason": "posted"
            if key
            else "posted; neither Defender's answer nor its record lists it: the workspace "
            "shows it as the app's"
        }
        self._settle(
            report, [Settlement(edit, "confirmed", "comment_posted", detail, comment_key=key)]
        )
        return True

    def _found_comment(
        self,
        target: PushTarget,
        edit: OutboxRow,
        record: Mapping[str, Any] | None,
        report: PushReport,
    ) -> bool:
        """Whether an earlier attempt that did not live to record it had posted the comment:
        then it is confirmed as the one found, and not posted again."""
        if edit.sent_at is None or record is None:
            return False
        claimed = self.hub.claimed_comment_keys(target.tenant_id, edit.entity_type, edit.entity_id)
        found = _our_comment(
            record.get("comments") or (), str(edit.wanted), edit.sent_at, claimed, target.app_id
        )
        if found is None:
            return False
        detail = {"reason": "found in Defender: an earlier attempt had posted it"}
        self._settle(
            report, [Settlement(edit, "confirmed", "comment_found", detail, comment_key=found)]
        )
        return True

    # -- outcomes -------------------------------------------------------------------------

    def _merged_away(self, report: PushReport, edits: list[OutboxRow], survivor: str) -> None:
        """The documented rule for an incident Defender merged into another: comments move to
        the survivor (they are append-only and still belong to the case); field edits fail,
        since the survivor's fields are another incident's and were not what the user saw."""
        settlements: list[Settlement] = []
        for edit in edits:
            if edit.field == COMMENT and survivor:
                detail = {
                    "reason": f"incident merged into {survivor}: comment moved there",
                    "next_attempt_at": None,
                }
                settlements.append(
                    Settlement(edit, "pending", "retargeted", detail, entity_id=survivor)
                )
                report.retargeted.append(edit.id)
            else:
                where = f" into {survivor}" if survivor else ""
                reason = (
                    f"Defender merged incident {edit.entity_id}{where}; the edit was not "
                    f"applied there — edit incident {survivor or 'the survivor'} instead"
                )
                settlements.append(Settlement(edit, "failed", "merged_away", {"reason": reason}))
        self._settle(report, settlements)

    def _failed_call(
        self, report: PushReport, edits: list[OutboxRow], failure: BaseException
    ) -> None:
        message = clean(f"{type(failure).__name__}: {failure}")
        # Defender refused the edit itself (403 naming the permission, 400 with its reason,
        # 404): that is final. A 409 is tried again, merged from Defender's record as it is
        # then, up to MAX_CONFLICT_TRIES. Anything else (5xx, 429, sign-in trouble, a bug) is
        # not the edit's fault: it waits and is tried again.
        final = isinstance(failure, ForbiddenError | FatalSyncError | NotFoundError)
        unsent = _never_sent(failure)
        before = {e.id: e for e in edits}
        current = [
            e
            for e in self.hub.edits(ids=list(before))
            # not settled before the failure (a comment of the record, posted or refused)
            if e.state == "pending" and e.id not in report.settled
        ]
        # Every try counts, whether it got as far as a write (``mark_sent`` counted those) or
        # not: the record's edits wait together, doubling with the record's tries, so a record
        # whose read keeps failing backs off as one whose write does.
        tries = {e.id: max(e.attempts, before[e.id].attempts + 1) for e in current}
        wait = self.retry_seconds * 2 ** min(max(tries.values(), default=1) - 1, 16)
        if isinstance(failure, ThrottledError) and failure.retry_after:
            wait = max(wait, failure.retry_after)
        next_attempt_at = self.clock() + timedelta(seconds=min(self.max_retry_seconds, wait))
        settlements: list[Settlement] = []
        for edit in current:
            if final:
                decision = (
                    "refused"
                    if isinstance(failure, ForbiddenError)
                    # a write answered 404: the record is gone, as when a read finds it so
                    else "gone"
                    if isinstance(failure, NotFoundError)
                    else "rejected"
                )
                settlements.append(Settlement(edit, "failed", decision, {"reason": message}))
                continue
            detail: dict[str, Any] = {"reason": message}
            if isinstance(failure, ConflictError):
                # Only 409s in a row count (the outbox's ``conflicts``): a try that failed
                # otherwise (an outage) is no race, and ends the run (``outbox.settle``).
                conflicts = before[edit.id].conflicts + 1
                detail["conflicts"] = conflicts
                if conflicts >= MAX_CONFLICT_TRIES:
                    detail["reason"] = (
                        f"{message} (after {conflicts} tries; Defender kept refusing)"
                    )
                    settlements.append(Settlement(edit, "failed", "rejected", detail))
                    continue
                detail["reason"] = f"{message} (409 answer {conflicts} of {MAX_CONFLICT_TRIES})"
            detail.update(attempts=tries[edit.id], next_attempt_at=next_attempt_at)
            if unsent and before[edit.id].sent_at is None and edit.sent_at is not None:
                # The write never reached Graph: nothing to look for before sending it again
                # (a comment found then would be someone else's with the same text).
                detail["sent_at"] = None
            settlements.append(Settlement(edit, "pending", "push_retry", detail))
            report.waiting.add(_record(edit))
        self._settle(report, settlements)

    def _settle(
        self, report: PushReport, settlements: list[Settlement], written: Written | None = None
    ) -> None:
        if settlements or written is not None:
            self.hub.settle_edits(settlements, written)
        for item in settlements:
            report.count(item.state)
            report.settled.add(item.row.id)
            if item.state == "failed" and item.decision not in ENDED_BY_DEFENDER:
                report.refused += 1

    # -- reads ----------------------------------------------------------------------------

    def _read(
        self, target: PushTarget, kind: EntityType, entity_id: str, report: PushReport
    ) -> dict[str, Any] | None:
        report.reads += 1
        try:
            if kind == "incident":
                return target.api.get_incident(entity_id, expand_alerts=False)
            return target.api.get_alert(entity_id)
        except NotFoundError:
            return None

    def _history(
        self, tenant_id: str, kind: EntityType, entity_id: str
    ) -> list[tuple[datetime, dict[str, Any]]]:
        return [(row.version, row.payload) for row in self._versions(tenant_id, kind, entity_id)]

    def _versions(self, tenant_id: str, kind: EntityType, entity_id: str) -> list[VersionRow]:
        if kind == "incident":
            return self.hub.incident_history(tenant_id, entity_id)
        return self.hub.alert_history(tenant_id, entity_id)


_OUTCOMES: dict[str, tuple[OutboxState, str]] = {
    "already": ("confirmed", "already_in_defender"),
    "defender_won": ("overridden", "conflict_defender_won"),
    "conflict": ("conflict", "conflict_manual"),
    "refused": ("failed", "edit_refused"),
}


def _landed(name: str, group: Sequence[OutboxRow], theirs: Any) -> list[OutboxRow]:
    """The leading edits of a field that an earlier attempt already wrote: up to the last one
    that was sent and whose wanted value Defender holds now (tags: ``_tags_landed``)."""
    for index in range(len(group) - 1, -1, -1):
        edit = group[index]
        if edit.sent_at is not None and same(name, theirs, edit.wanted):
            return list(group[: index + 1])
    return []


def _written(
    name: str, group: Sequence[OutboxRow], history: Sequence[tuple[datetime, Mapping[str, Any]]]
) -> int | None:
    """The index of the last edit of a field that was sent and that a version the hub read
    since shows applied (Defender may hold another value now: ``Pusher._merge``). Only versions
    stamped after the first send count, as for tags (``_tags_landed``)."""
    for index in range(len(group) - 1, -1, -1):
        edit = group[index]
        if edit.sent_at is None:
            continue
        sent_at = edit.sent_at
        if any(at >= sent_at and same(name, theirs_of(p, name), edit.wanted) for at, p in history):
            return index
    return None


def _tags_landed(
    group: Sequence[OutboxRow], history: Sequence[tuple[datetime, Mapping[str, Any]]]
) -> list[OutboxRow]:
    """The leading tag edits an earlier attempt wrote: up to the last one that was sent and
    that a version the hub read since shows applied. Defender's tags now cannot tell: a write
    whose answer was lost may have landed and been undone in Defender since, and applying it
    again would undo that. Only versions stamped after the first send count (no allowance for
    clock skew: a version from before it may show the tags for another reason). A version the
    hub never read is not seen: the edit then applies again, as set edits do."""
    for index in range(len(group) - 1, -1, -1):
        edit = group[index]
        if edit.sent_at is None:
            continue
        add, remove = set(edit.wanted.get("add") or ()), set(edit.wanted.get("remove") or ())
        for at, payload in history:
            tags = set(theirs_of(payload, TAGS))
            if at >= edit.sent_at and add <= tags and not remove & tags:
                return list(group[: index + 1])
    return []


def _record(row: OutboxRow) -> tuple[str, str, str]:
    return (row.tenant_id, row.entity_type, row.entity_id)


def _intent(row: OutboxRow) -> Intent:
    return Intent(row.id, row.field, row.seen, row.wanted, row.created_at, row.author)


def _time(text: Any) -> datetime | None:
    ticks = ticks_from_text(str(text)) if text else None
    return datetime_from_ticks(ticks) if ticks is not None else None


def _detail(plan: FieldPlan, record: Mapping[str, Any], reason: str) -> dict[str, Any]:
    detail = {
        "reason": reason,
        "defender": plan.theirs,
        "defender_modified_by": record.get("lastModifiedBy"),
        "defender_updated": record.get("lastUpdateDateTime"),
        "workspace": plan.ours,
    }
    if plan.reason != reason:  # how the merge decided a write (a close's classification)
        detail["merge"] = plan.reason
    if plan.theirs_at is not None:
        # When Defender's value was set (``latest_wins`` compares it with the edit's time):
        # the record's last update may be a later change of another field.
        detail["defender_changed_at"] = plan.theirs_at
    return detail


def _done(edit: OutboxRow, state: OutboxState, decision: str, reason: str) -> Settlement:
    return Settlement(edit, state, decision, {"reason": reason})


def _our_comment(
    comments: Sequence[Any], text: str, sent_at: datetime, claimed: set[str], app_id: str | None
) -> str | None:
    """The key of the newest comment with exactly our text, posted by our app, made no earlier
    than our first attempt (less clock skew) and not already matched to another edit."""
    for raw in reversed(list(comments)):
        if not isinstance(raw, Mapping) or raw.get("comment") != text:
            continue
        try:
            parsed = Comment.from_graph(raw)
        except (ValueError, XdrSyncError):  # not a comment we could have made
            continue
        if not _ours_by_author(parsed.created_by_display_name, app_id):
            continue
        created = parsed.created_date_time
        if created is not None and created < sent_at - COMMENT_CLOCK_SKEW:
            continue
        key = comment_key(created, parsed.created_by_display_name, parsed.comment)
        if key not in claimed:
            return key
    return None


def _others_comments(
    record: Mapping[str, Any], app_id: str | None, before: datetime | None = None
) -> Mapping[str, Any]:
    """``record`` without the comments our app wrote (the push posts them before its PATCH),
    or only those it wrote ``before`` a moment."""
    comments = record.get("comments")
    if not isinstance(comments, list):
        return record
    others = [c for c in comments if not _ours_before(c, app_id, before)]
    return {**record, "comments": others}


def _with_others_comments(record: Mapping[str, Any], app_id: str | None) -> dict[str, Any]:
    """A record's properties but those any write changes, its comments those our app did not
    write (none when it lists none)."""
    others = _others_comments(record, app_id)
    return {**_unchanged_beyond(others, ()), "comments": others.get("comments") or []}


def _ours_before(comment: Any, app_id: str | None, before: datetime | None) -> bool:
    """Whether our app wrote a Graph comment (``before`` a moment, when given). Read through
    the model, as ``_our_comment`` reads: Graph's documented incident answers also show the
    older shape (``createdBy``, ``createdTime``)."""
    if not isinstance(comment, Mapping):
        return False
    try:
        parsed = Comment.from_graph(comment)
    except (ValueError, XdrSyncError):  # not a comment we could have made
        return False
    if not _ours_by_author(parsed.created_by_display_name, app_id):
        return False
    made = parsed.created_date_time
    return before is None or (made is not None and made < before)


def _ours_by_author(author: str | None, app_id: str | None) -> bool:
    """Whether a comment's author can be our app: ``API-App:`` and our client id, or a name
    (Graph shows the app registration's display name, which the config does not hold), but
    not another app's client id. A comment without an author is not taken as ours: taking
    someone's comment would leave ours never posted and show theirs under our user, while
    posting ours again only risks a visible duplicate (and Graph names every comment's
    author, so this is for an answer that breaks its contract)."""
    if not author or not author.startswith(APP_AUTHOR):
        return False
    app = author.removeprefix(APP_AUTHOR)
    return app_id is None or app.lower() == app_id.lower() or not _CLIENT_ID.fullmatch(app)


def _never_sent(failure: BaseException) -> bool:
    """Whether the failure proves the request never reached Graph, so nothing of it can have
    landed: a 429 (Graph did not act on it), or no connection or no token."""
    if isinstance(failure, ThrottledError):
        return not isinstance(failure, ServerBusyError)  # a 5xx may have acted on it
    return isinstance(failure, RetriableError) and failure.unsent


__all__ = ["DefenderWriter", "PushReport", "PushTarget", "Pusher", "patch_body", "theirs_of"]
