"""Sentinel → Defender (``two_way = true``): what analysts change on the Sentinel twin of a
Defender incident becomes a workspace edit, pushed to Defender through the same outbox, merge,
conflict policy and echo suppression as an edit made with ``xdrsync incidents update``
(origin ``sentinel:<destination>``), and only to the tenant the incident came from.

**Reading.** Sentinel incidents are listed by ``lastModifiedTimeUtc`` with the time-boundary
paging Defender's streams use (``sync/listing.keyset_scan``; Sentinel's ``nextLink`` pages by
offset too), from a watermark the hub keeps, re-reading a lookback on every poll. As in the
inbound engine, the watermark follows the pages, and a poll read to its end moves it to
Sentinel's ``Date`` at the first page (never later than our clock, never back): an edit
stamped before that but listed only later is in the next poll's lookback.

**Telling edits from echoes.** The hub keeps a copy of each Sentinel incident as xdrsync last
wrote or read it (``remote_copy``). An incident whose etag is the copy's is our own write read
back. Otherwise the fields that differ from the copy are what Sentinel's users changed: only
they are submitted, so a Defender value Sentinel has not been sent yet is never taken for an
edit. What the analyst saw (``EditRequest.seen``) is the Defender value behind what the copy
shows, and the edit is dated by Sentinel's ``lastModifiedTimeUtc``: a Defender change made
meanwhile is a conflict for the field's policy, not a value the analyst saw. The edits are
queued in the transaction that moves the copy on, after everything is read from Sentinel: a
failed read or a crash queues nothing, and the next poll finds the edits still new, once. The
destination calls the same code when a write meets a 409, before it puts Defender's values over
the new version. A page is listed and compared under the destination's lock, which every write
holds too: a page listed before a write is never compared with the copy that write saved (our
own write would look like an analyst undoing it). Nor is a read older than the copy by
Sentinel's own ``lastModifiedTimeUtc`` (the copy keeps the stamp Sentinel answered our last
write with): a listing that lagged behind that write would show our own write undone.

**Comments.** Sentinel gives no documented sign on an incident that its comments changed
but ``additionalData.commentsCount`` (microsoft-apis.md §3.2-3.3: a comment is a resource of
its own, with its own etag; whether adding or deleting one moves the incident's etag or
``lastModifiedTimeUtc`` is not documented, and the emulator assumes it does not), and
comments can be listed only incident by incident, one ARM read each. A count alone misses a
comment deleted and another added between two reads. So an incident read back has its
comments listed when

* it holds more comments than xdrsync knows of on it (the ones it mirrored from Defender and
  the ones it forwarded), even when it is otherwise our own write read back; or
* it was changed in Sentinel since xdrsync last wrote or read it (its etag is not the
  copy's), whatever its count: analysts comment while they work an incident, and this costs
  one listing per change an analyst saves, not one per incident and poll.

The new ones are posted to Defender for their author. Their echo is not mirrored back: a hub
comment posted from this destination is left out of the mirror. The design's blind spot,
chosen over listing every incident's comments on every poll: a comment deleted and another
added on an incident nobody otherwise changed in Sentinel keeps the count and the etag, and
is not seen (a later save of the incident in Sentinel brings it). A comment alone is seen
when the incident is next listed: in the lookback, after a write, or by the sweep of the open
incidents every ``SWEEP`` (``SentinelReadback._sweep``), which compares their counts alone.

**Merged incidents.** Defender keeps a merged incident's comments where they were, reachable
from the incident it was merged into: a comment (or closing note) on a merged incident's twin
is posted there. Its fields are another incident's now: an edit of them is refused, and the
audit trail says so (``edit_refused``).

**Refusals are put right.** A change the reader refuses itself (a read-only tenant, a merged
incident, a value Defender would not take, a property Graph cannot write, an owner with no
address) never reaches the outbox, so no settlement states the incident again as it does for
an edit that loses in Defender (``hub.outbox.restate``); and the copy saved here shows the
analyst's value, so nothing would write the twin before Defender's next version, which a
quiet incident may never make. The reader states the incident again itself, in the
transaction that saves the copy: the next delivery writes Defender's value, once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from xdrsync.config import Config
from xdrsync.destinations.sentinel.arm import (
    IncidentMissingError,
    ListedPage,
    SentinelComment,
    modified_before,
)
from xdrsync.destinations.sentinel.comments import notice_name, redirect_comment
from xdrsync.destinations.sentinel.destination import SentinelDestination
from xdrsync.destinations.sentinel.mapping import (
    INCIDENT_LABEL_PREFIX,
    REDIRECTED_LABEL,
    own_labels,
    sentinel_owner,
    shown_alike,
    with_own_labels,
)
from xdrsync.errors import EditRefusedError, FatalSyncError
from xdrsync.graph.pacing import holding
from xdrsync.hub import Hub, RemoteCopy
from xdrsync.hub.payload import (
    TICKS_PER_SECOND,
    datetime_from_ticks,
    ticks_from_datetime,
    ticks_from_text,
    version_text,
)
from xdrsync.hub.records import NewEdit
from xdrsync.sync.listing import PageQuery, keyset_scan
from xdrsync.tables.vocab import CLASSIFICATION, INCIDENT_STATUS, PRODUCTS, UNDETERMINED, key
from xdrsync.twoway import fields as f
from xdrsync.twoway.edits import EditRequest
from xdrsync.twoway.pusher import theirs_of
from xdrsync.twoway.submit import Tenant, current_view, prepare, survivor

log = structlog.get_logger(__name__)

STREAM: Final = "sentinel-readback"
#: Each poll reads this much before the watermark again.
LOOKBACK: Final = timedelta(seconds=60)
#: How often a poll also lists the open incidents whatever their stamp, for comments alone
#: (``SentinelReadback._sweep``).
SWEEP: Final = timedelta(minutes=10)
#: The sweep's incidents: an analyst comments on incidents they work.
_OPEN: Final = "properties/status ne 'Closed'"
PAGE_SIZE: Final = 200
#: Sentinel's classification → Defender's: the inverse of the connector's table
#: (``tables.vocab.CLASSIFICATION``, microsoft-apis.md §1.3); Undetermined is Defender's unset.
DEFENDER_CLASSIFICATION: Final[dict[str, str]] = {
    "truepositive": "truePositive",
    "falsepositive": "falsePositive",
    "benignpositive": "informationalExpectedActivity",
    UNDETERMINED.casefold(): "unknown",
}
#: Properties xdrsync manages on the twin that no edit can carry to Defender: Graph's PATCH
#: takes status, assignedTo, classification, determination and customTags only
#: (microsoft-apis.md §2.9: severity is documented as not writable; title and description
#: are not in the list), and the activity times are the alerts'.
NOT_WRITABLE: Final = (
    "title",
    "description",
    "severity",
    "firstActivityTimeUtc",
    "lastActivityTimeUtc",
)
_WRITABLE: Final = "status, assignedTo, classification, determination and customTags"
_SHOWN_CHARS: Final = 200  # of a refused value, in the audit trail
_DERIVED_LABELS: Final = frozenset(
    {p.product_name.casefold() for p in PRODUCTS.values()} | {REDIRECTED_LABEL.casefold()}
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Page:
    """A listing page in the shape ``keyset_scan`` reads (``lastUpdateDateTime`` stamps)."""

    items: list[dict[str, Any]]
    server_date: datetime
    more: bool
    count: int | None = None
    full: bool = False  # see ``arm.ListedPage``


def edit_request(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    tenant_name: str,
    pending: Mapping[str, Any] | None = None,
) -> EditRequest | None:
    """The Defender edit that turns ``before`` (our copy) into ``after`` (Sentinel now), in
    the fields two-way sync carries; None when none of them changed. A value equal to
    ``pending`` (what xdrsync was writing when it last stopped) is our own write landed."""
    ours = [before] if pending is None else [before, pending]

    def changed(read: Callable[[Mapping[str, Any]], object]) -> bool:
        return all(read(after) != read(known) for known in ours)

    changes: dict[str, Any] = {}
    if changed(lambda p: _text(p, "status")) and _text(after, "status"):
        changes["status"] = _text(after, "status")
    if changed(lambda p: _text(p, "classification")):
        wanted = _text(after, "classification").casefold()
        if wanted in DEFENDER_CLASSIFICATION:
            changes["classification"] = DEFENDER_CLASSIFICATION[wanted]
    owner_now = _upn(after.get("owner"))
    if changed(lambda p: _upn(p.get("owner"))) and owner_now is not None:
        changes["owner"] = owner_now  # "" unassigns
    comment = _text(after, "classificationComment")
    if comment and changed(lambda p: _text(p, "classificationComment")):
        changes["comment"] = comment
    own = {tenant_name.casefold()} | _DERIVED_LABELS
    labels_now, labels_then = _labels(after, own), _labels(before, own)
    writing = set(_labels(pending, own)) if pending is not None else None
    added = tuple(sorted(set(labels_now) - set(labels_then) - (writing or set())))
    removed = tuple(
        sorted(
            label
            for label in set(labels_then) - set(labels_now)
            if writing is None or label in writing  # not one we were taking away
        )
    )
    if not changes and not added and not removed:
        return None
    return EditRequest(
        status=changes.get("status"),
        owner=changes.get("owner"),
        classification=changes.get("classification"),
        add_tags=tuple(labels_now[k] for k in added),
        remove_tags=tuple(labels_then[k] for k in removed),
        comment=changes.get("comment"),
    )


def uncarried(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    pending: Mapping[str, Any] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The changes from ``before`` (our copy) to ``after`` (Sentinel now) that no edit can
    carry to Defender, each as (reason, what the analyst set): a managed property Graph
    cannot write (``NOT_WRITABLE``), and an owner that names no address for Defender's
    ``assignedTo``. ``edit_request`` leaves them out; the reader refuses them as it refuses
    an edit Defender would not take, and puts the twin back. A value equal to ``pending`` is
    our own write landed."""
    ours = [before] if pending is None else [before, pending]

    def changed(name: str) -> bool:
        return all(not shown_alike(name, after.get(name), known.get(name)) for known in ours)

    refused: list[tuple[str, dict[str, Any]]] = []
    fixed = {name: _shown(after.get(name)) for name in NOT_WRITABLE if changed(name)}
    if fixed:
        what = ", ".join(fixed)
        refused.append(
            (f"{what} cannot be changed in Defender (Graph's PATCH takes only {_WRITABLE})", fixed)
        )
    owner = after.get("owner")
    if _upn(owner) is None and changed("owner"):
        refused.append(
            (
                "Sentinel's owner names no address (userPrincipalName or email) that "
                "Defender's assignedTo could take",
                {"owner": _shown(_assignee(owner))},
            )
        )
    return refused


def _shown(value: object) -> object:
    """A refused value as the audit trail keeps it: long text (a description) cut."""
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        return value[:_SHOWN_CHARS] + " …"
    return value


def _text(properties: Mapping[str, Any], name: str) -> str:
    value = properties.get(name)
    return value.strip() if isinstance(value, str) else ""


def _upn(owner: object) -> str | None:
    """The owner's address; "" when unassigned; None when it names no address (an owner
    Sentinel knows only by name or object id cannot be given to Defender)."""
    if not isinstance(owner, Mapping):
        return ""
    for field in ("userPrincipalName", "email", "assignedTo"):
        value = owner.get(field)
        if isinstance(value, str) and "@" in value:
            return value.strip()
    return "" if not any(owner.get(f) for f in ("assignedTo", "objectId")) else None


def _labels(properties: Mapping[str, Any], own: frozenset[str] | set[str]) -> dict[str, str]:
    """Labels a user can mean as Defender tags: case-folded name → name as written."""
    found: dict[str, str] = {}
    labels = properties.get("labels")
    for label in labels if isinstance(labels, list) else []:
        name = label.get("labelName") if isinstance(label, Mapping) else None
        if not isinstance(name, str) or not name.strip():
            continue
        folded = name.strip().casefold()
        if folded in own or folded.startswith(INCIDENT_LABEL_PREFIX):
            continue
        found.setdefault(folded, name.strip())
    return found


class SentinelReadback:
    """Polls one Sentinel destination for its users' edits and queues them for Defender."""

    def __init__(
        self,
        destination: SentinelDestination,
        config: Config,
        hub: Hub,
        *,
        lookback: timedelta = LOOKBACK,
        sweep: timedelta = SWEEP,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.destination = destination
        self.hub = hub
        self.lookback = lookback
        self.sweep = sweep
        self.clock = clock
        self._tenants = {
            t.tenant_id.lower(): Tenant(t.name, t.tenant_id, config.writes_to(t))
            for t in config.tenants_of(destination.entry)
        }
        self._state_key = f"destination:{destination.name}"
        self._author = f"Microsoft Sentinel ({destination.name})"
        self.edits_queued = 0
        self.edits_refused = 0  # refusals of field edits, each put right in Sentinel
        self.echoes = 0
        self.stale = 0
        destination.on_read = self.observe

    @property
    def origin(self) -> str:
        return self.destination.origin

    def poll(self) -> int:
        """Read what changed in Sentinel since the watermark (less the lookback), and when
        one is due, sweep the open incidents for comments (``_sweep``); returns how many
        edits were queued for Defender."""
        state = self.hub.get_state(self._state_key, STREAM) or {}
        mark = state.get("watermark")
        # The first poll starts at now: edits made before two-way was on are not replayed.
        watermark = ticks_from_text(mark) if isinstance(mark, str) else None
        since = (watermark or ticks_from_datetime(self.clock())) - int(
            self.lookback.total_seconds() * TICKS_PER_SECOND
        )
        queued = 0
        started: int | None = None
        # No write may land between listing a page and comparing it with the copies.
        with holding(self.destination.lock):
            for read in keyset_scan(self._fetch, since):
                if started is None:
                    started = self._started(read.page.server_date)
                queued += sum(self._observe_listed(item["resource"]) for item in read.page.items)
                # Read: everything stamped before the page's cursor, and once the scan is
                # done, before the server's clock at its first page. Never later than that
                # clock: a write stamped before it but listed only later is in the lookback.
                if read.done:
                    reached: int | None = started
                else:
                    reached = None if read.through is None else min(read.through, started)
                if reached is not None and (watermark is None or reached > watermark):
                    watermark = reached  # never back
                    state = {**state, "watermark": version_text(watermark)}
                    self.hub.save_state(self._state_key, STREAM, state)
        return queued + self._sweep(state)

    def _sweep(self, state: dict[str, Any]) -> int:
        """Every ``sweep``, the open incidents, whatever their stamp, for comments alone.

        A comment moves neither the incident's etag nor (as far as anything documents, and
        in the emulator) its ``lastModifiedTimeUtc``: on an incident nobody otherwise
        changes, the watermark's reads never list it again, and only its ``commentsCount``
        tells. The sweep takes comments only; field edits are the polls' (so one made before
        two-way sync was on is not replayed; the first poll starts the sweeps' clock, too).
        The sweep's time is kept in the hub, so ``sync --once`` on a timer sweeps no more
        often. Costs a listing of the open incidents, a page per ``PAGE_SIZE``."""
        now = self.clock()
        swept = state.get("swept")
        last = datetime.fromisoformat(swept) if isinstance(swept, str) else None
        if last is not None and last <= now < last + self.sweep:
            return 0
        queued = 0
        if last is not None:
            with holding(self.destination.lock):  # as the polls' pages
                for read in keyset_scan(lambda query: self._fetch(query, also=_OPEN), 0):
                    queued += sum(
                        self._observe_listed(item["resource"], comments_only=True)
                        for item in read.page.items
                    )
        self.hub.save_state(self._state_key, STREAM, {**state, "swept": now.isoformat()})
        return queued

    def _started(self, server_date: datetime) -> int:
        """The poll's start on Sentinel's clock (its first page's ``Date``), never later than
        our own clock: a ``Date`` from the future would carry the watermark past edits not
        yet made (as the inbound engine's ``_Cycle.see``)."""
        return ticks_from_datetime(min(server_date, self.clock()))

    def _observe_listed(self, resource: Mapping[str, Any], *, comments_only: bool = False) -> int:
        """``observe`` for a listed incident; ``comments_only`` (the sweep): only for one that
        reads as our own write and holds more comments than xdrsync knows of."""
        name, etag = resource.get("name"), resource.get("etag")
        properties = resource.get("properties")
        if not (isinstance(name, str) and isinstance(etag, str) and isinstance(properties, dict)):
            return 0
        if comments_only:
            copy = self.hub.get_remote_copy(self.destination.name, name)
            if copy is None or copy.etag != etag or not self._new_comments(copy, properties):
                return 0
        return self.observe(name, etag, properties)

    def _fetch(self, query: PageQuery, also: str | None = None) -> _Page:
        """A page of the listing by ``lastModifiedTimeUtc`` (``also``: a filter besides)."""
        if query.skip or query.count:
            raise FatalSyncError(
                f"more than {PAGE_SIZE} Sentinel incidents share one lastModifiedTimeUtc; "
                "Sentinel cannot page within them by time"
            )
        text = query.filter_text.replace("lastUpdateDateTime", "properties/lastModifiedTimeUtc")
        text = text if also is None else f"({text}) and {also}"
        page: ListedPage = self.destination.arm.list_page(text, PAGE_SIZE)
        items = []
        for resource in page.items:
            properties = resource.get("properties")
            stamp = properties.get("lastModifiedTimeUtc") if isinstance(properties, dict) else None
            if isinstance(stamp, str) and ticks_from_text(stamp) is not None:
                items.append({"lastUpdateDateTime": stamp, "resource": resource})
        return _Page(items=items, server_date=page.server_date, more=page.more, full=page.full)

    def observe(self, name: str, etag: str, properties: dict[str, Any]) -> int:
        """One Sentinel incident as read now: queue its users' edits; returns how many."""
        copy = self.hub.get_remote_copy(self.destination.name, name)
        if copy is None:
            return 0  # not one xdrsync wrote (Sentinel's own analytics, another connector)
        tenant = self._tenants.get(copy.tenant_id.lower())
        ours = copy.etag == etag  # our own write read back: its fields are no edit ...
        if not ours and modified_before(properties, copy.properties):
            self.stale += 1  # lags behind a write Sentinel already answered: not news
            return 0
        # ... but a comment added since is (it keeps the etag); and an incident changed in
        # Sentinel since the copy has its comments listed whatever their count says.
        commented = tenant is not None and (not ours or self._new_comments(copy, properties))
        if ours and not commented:
            self.echoes += 1
            return 0
        # Sentinel is read before anything is queued: a failed read queues nothing, and the
        # next poll finds the incident as unread as this one did.
        comments = self._comments(copy) if commented else None
        edits: list[NewEdit] = []
        refused: list[str] = []
        if tenant is not None and not ours:
            edits, refused = self._field_edits(tenant, copy, properties)
        if tenant is not None and comments:
            edits += self._comment_edits(tenant, copy, comments)
        children = copy.children | {c.name for c in comments or ()}
        if ours:
            copy = replace(copy, children=children)
        else:
            kept = with_own_labels(properties, own_labels(copy.properties))
            copy = replace(copy, etag=etag, properties=kept, children=children)
        # A refused edit stays on the twin until the incident is written again, and nothing
        # else writes it before Defender's next version (the copy saved here shows the
        # analyst's value as read): the incident is stated again, as when an edit loses in
        # Defender (``hub.outbox.restate``), and the next delivery writes Defender's value.
        # Once: the copy now holds the refused value, so the next poll finds nothing new.
        why = f"a Sentinel edit was refused ({'; '.join(refused)})" if refused else None
        # The edits and the copy that no longer shows them as news, in one transaction.
        queued = len(self.hub.save_remote_copy(self.destination.name, copy, edits, restate=why))
        self.edits_queued += queued
        self.edits_refused += len(refused)
        return queued

    def _field_edits(
        self, tenant: Tenant, copy: RemoteCopy, properties: Mapping[str, Any]
    ) -> tuple[list[NewEdit], list[str]]:
        """The edits of the incident's fields (and closing note) made in Sentinel since the
        copy, and the reasons the changes that cannot go to Defender were refused (each
        audited). Each edit is merged in Defender from what the twin showed before it
        (``seen``), at the time Sentinel stamped it: a Defender change made since is a
        conflict, decided by the field's policy, not a value the analyst saw and overwrote."""
        refused: list[str] = []
        for reason, asked in uncarried(copy.properties, properties, copy.pending):
            self._refuse(tenant, copy.entity_id, reason, self._author, asked)
            refused.append(reason)
        request = edit_request(copy.properties, properties, tenant.name, copy.pending)
        if request is None:
            return [], refused
        edits: list[NewEdit] = []
        fields = replace(request, comment=None)
        if fields != EditRequest():
            current = current_view(self.hub, tenant.tenant_id, "incident", copy.entity_id)
            seen = None if current is None else _seen_before(copy, current)
            fields = replace(fields, seen=seen, at=_stamp(properties))
            planned, refusal = self._plan(
                tenant, copy.entity_id, fields, self._author, closing=False
            )
            edits += planned
            # Labels an analyst added stay on the twin whatever Defender says (xdrsync keeps
            # analysts' labels): refused alone, they leave nothing to put back.
            put_back = replace(fields, add_tags=(), seen=None, at=None) != EditRequest()
            if refusal is not None and put_back:
                refused.append(refusal)
        if request.comment is not None:
            # A closing note refused stays as written: Sentinel keeps the analysts' note
            # (``mapping._closing_kept``), so there is nothing to put back.
            note = EditRequest(comment=request.comment)
            edits += self._plan(
                tenant, survivor(self.hub, tenant.tenant_id, copy.entity_id), note, self._author
            )[0]
        return edits, refused

    def _plan(
        self,
        tenant: Tenant,
        entity_id: str,
        request: EditRequest,
        author: str,
        *,
        closing: bool = True,
    ) -> tuple[list[NewEdit], str | None]:
        """The outbox rows for one request from Sentinel, or the reason it was refused: a
        refusal is logged and audited (nothing of the request goes to Defender, and the
        trail says why)."""
        try:
            planned = prepare(
                self.hub,
                tenant,
                "incident",
                entity_id,
                request,
                author=author,
                origin=self.origin,
                closing_needs_classification=closing,
            )
        except EditRefusedError as refused:
            asked = {
                k: v
                for k, v in asdict(request).items()
                if k not in ("seen", "at", "other") and v not in (None, ())
            }
            self._refuse(tenant, entity_id, str(refused), author, asked)
            return [], str(refused)
        return planned, None

    def _refuse(
        self, tenant: Tenant, entity_id: str, reason: str, author: str, asked: Mapping[str, Any]
    ) -> None:
        """Log and audit (``edit_refused``) a change read from Sentinel that cannot go to
        Defender, with what the analyst asked for."""
        log.warning(
            "a Sentinel edit cannot go to Defender",
            destination=self.destination.name,
            incident=entity_id,
            tenant=tenant.name,
            reason=reason,
        )
        self.hub.record_audit(
            tenant.tenant_id,
            "incident",
            entity_id,
            "edit_refused",
            {"reason": reason, "author": author, "origin": self.origin, **asked},
        )

    @staticmethod
    def _new_comments(copy: RemoteCopy, properties: Mapping[str, Any]) -> bool:
        """Whether Sentinel holds more comments than xdrsync knows of on this incident."""
        extra = properties.get("additionalData")
        count = extra.get("commentsCount") if isinstance(extra, Mapping) else None
        return isinstance(count, int) and count > len(copy.children)

    def _comments(self, copy: RemoteCopy) -> list[SentinelComment] | None:
        """The incident's comments in Sentinel; None when it is gone (deleted since it was
        listed: the next write recreates it)."""
        try:
            return self.destination.arm.list_comments(copy.name)
        except IncidentMissingError:
            return None

    def _comment_edits(
        self, tenant: Tenant, copy: RemoteCopy, comments: Sequence[SentinelComment]
    ) -> list[NewEdit]:
        """The incident's new Sentinel comments, to be posted to Defender for their author
        (on the incident Defender merged it into, if it did)."""
        ours = {c.name for c in self.destination.mirrored(copy.tenant_id, copy.entity_id)}
        ours.add(notice_name(copy.tenant_id, copy.entity_id))
        incident = self.hub.get_incident(copy.tenant_id, copy.entity_id)
        if incident is not None:
            redirect = redirect_comment(incident, tenant_id=copy.tenant_id, tenant_name=tenant.name)
            ours.update(() if redirect is None else (redirect.name,))
        target = survivor(self.hub, tenant.tenant_id, copy.entity_id)
        edits: list[NewEdit] = []
        for comment in comments:
            if comment.name in copy.children or comment.name in ours or not comment.message:
                continue
            author = f"{comment.author or 'an analyst'} (Microsoft Sentinel)"
            edits += self._plan(tenant, target, EditRequest(comment=comment.message), author)[0]
        return edits


def _seen_before(copy: RemoteCopy, current: Mapping[str, Any]) -> dict[str, Any]:
    """What Defender held when the twin showed the copy, as ``EditRequest.seen``. Were
    xdrsync writing when it last stopped (``copy.pending``), a field either state shows as
    Defender does now is taken as now (the write may have landed)."""
    seen = defender_seen(copy.properties, current)
    if copy.pending is None:
        return seen
    writing = defender_seen(copy.pending, current)
    return {name: value for name, value in seen.items() if name in writing}


def defender_seen(shown: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """Defender's values (Graph's names) behind what a Sentinel twin shows (``shown``), in
    the fields it shows otherwise than the connector would show ``current``, the workspace's
    view of the incident now. A field shown as ``current``'s is left out: it is taken as
    ``current``'s, with what Sentinel cannot show (an ``awaitingAction``, a determination)."""
    seen: dict[str, Any] = {}
    status = _text(shown, "status")
    if status.casefold() != INCIDENT_STATUS.get(key(current.get("status")), "").casefold():
        mapped = f.SENTINEL_STATUS["incident"].get(status.casefold())
        if mapped is not None:
            seen["status"] = mapped
    now = CLASSIFICATION.get(key(current.get("classification")), (UNDETERMINED, None))[0]
    shown_class = (_text(shown, "classification") or UNDETERMINED).casefold()
    if shown_class != now.casefold() and shown_class in DEFENDER_CLASSIFICATION:
        was = f.Pair.from_json(theirs_of(current, f.CLASSIFICATION))
        seen.update(f.pair(DEFENDER_CLASSIFICATION[shown_class], None, was).to_json())
    owner = _assignee(shown.get("owner"))
    now_owner = _assignee(sentinel_owner(current.get(f.OWNER)))
    if (owner or "").casefold() != (now_owner or "").casefold():
        seen[f.OWNER] = owner
    return seen


def _assignee(owner: object) -> str | None:
    """Defender's ``assignedTo`` for a Sentinel owner: its address, else its name; None when
    it names nobody."""
    upn = _upn(owner)
    if upn is None and isinstance(owner, Mapping):
        upn = _text(owner, "assignedTo")
    return upn or None


def _stamp(properties: Mapping[str, Any]) -> datetime | None:
    """When Sentinel says the incident was last changed (its users' edit, at the latest)."""
    ticks = ticks_from_text(_text(properties, "lastModifiedTimeUtc"))
    return datetime_from_ticks(ticks) if ticks is not None else None
