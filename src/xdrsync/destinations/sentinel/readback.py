"""Sentinel → Defender (``two_way = true``): what analysts change on the Sentinel twin of a
Defender incident becomes a workspace edit, pushed to Defender through the same outbox, merge,
conflict policy and echo suppression as an edit made with ``xdrsync incidents update``
(origin ``sentinel:<destination>``), and only to the tenant the incident came from.

**Reading.** Sentinel incidents are listed by ``lastModifiedTimeUtc`` with the time-boundary
paging Defender's streams use (``sync/listing.keyset_scan``; Sentinel's ``nextLink`` pages by
offset too), from a watermark the hub keeps, re-reading a lookback on every poll.

**Telling edits from echoes.** The hub keeps a copy of each Sentinel incident as xdrsync last
wrote or read it (``remote_copy``). An incident whose etag is the copy's is our own write read
back. Otherwise the fields that differ from the copy are what Sentinel's users changed: only
they are submitted, so a Defender value Sentinel has not been sent yet is never taken for an
edit. The edit is queued before the copy moves on, so a crash in between repeats the edit
(which finds it already queued) rather than losing it. The destination calls the same code
when a write meets a 409, before it puts Defender's values over the new version. A page is
listed and compared under the destination's lock, which every write holds too: a page listed
before a write is never compared with the copy that write saved (our own write would look
like an analyst undoing it). Nor is a read older than the copy by Sentinel's own
``lastModifiedTimeUtc`` (the copy keeps the stamp Sentinel answered our last write with): a
listing that lagged behind that write would show our own write undone.

**Comments.** When an incident read back holds more comments (``commentsCount``) than xdrsync
knows of on it (the ones it mirrored from Defender and the ones it forwarded), its comments are
listed and the new ones are posted to Defender for their author. Their echo is not mirrored
back: a hub comment posted from this destination is left out of the mirror. A comment alone
is seen when the incident is next listed: whether a new comment moves Sentinel's
``lastModifiedTimeUtc`` is not documented (the emulator assumes it does not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from xdrsync.config import Config
from xdrsync.destinations.sentinel.arm import IncidentMissingError, ListedPage, modified_before
from xdrsync.destinations.sentinel.comments import notice_name
from xdrsync.destinations.sentinel.destination import SentinelDestination
from xdrsync.destinations.sentinel.mapping import (
    INCIDENT_LABEL_PREFIX,
    REDIRECTED_LABEL,
    own_labels,
    with_own_labels,
)
from xdrsync.errors import EditRefusedError, FatalSyncError
from xdrsync.hub import Hub, RemoteCopy
from xdrsync.hub.payload import (
    TICKS_PER_SECOND,
    ticks_from_datetime,
    ticks_from_text,
    version_text,
)
from xdrsync.sync.listing import PageQuery, keyset_scan
from xdrsync.tables.vocab import PRODUCTS, UNDETERMINED
from xdrsync.twoway.edits import EditRequest
from xdrsync.twoway.submit import Tenant, submit

log = structlog.get_logger(__name__)

STREAM: Final = "sentinel-readback"
#: Each poll reads this much before the watermark again.
LOOKBACK: Final = timedelta(seconds=60)
PAGE_SIZE: Final = 200
#: Sentinel's classification → Defender's: the inverse of the connector's table
#: (``tables.vocab.CLASSIFICATION``, microsoft-apis.md §1.3); Undetermined is Defender's unset.
DEFENDER_CLASSIFICATION: Final[dict[str, str]] = {
    "truepositive": "truePositive",
    "falsepositive": "falsePositive",
    "benignpositive": "informationalExpectedActivity",
    UNDETERMINED.casefold(): "unknown",
}
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
    full: bool = False  # ARM's nextLink is trusted (see ``arm.ListedPage``)


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
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.destination = destination
        self.hub = hub
        self.lookback = lookback
        self.clock = clock
        self._tenants = {
            t.tenant_id.lower(): Tenant(t.name, t.tenant_id, config.writes_to(t))
            for t in config.tenants_of(destination.entry)
        }
        self._state_key = f"destination:{destination.name}"
        self.edits_queued = 0
        self.echoes = 0
        self.stale = 0
        destination.on_read = self.observe

    @property
    def origin(self) -> str:
        return self.destination.origin

    def poll(self) -> int:
        """Read what changed in Sentinel since the watermark (less the lookback); returns
        how many edits were queued for Defender."""
        state = self.hub.get_state(self._state_key, STREAM) or {}
        mark = state.get("watermark")
        # The first poll starts at now: edits made before two-way was on are not replayed.
        start = ticks_from_text(mark) if isinstance(mark, str) else None
        since = (start or ticks_from_datetime(self.clock())) - int(
            self.lookback.total_seconds() * TICKS_PER_SECOND
        )
        queued = 0
        # No write may land between listing a page and comparing it with the copies.
        with self.destination.lock:
            for read in keyset_scan(self._fetch, since):
                queued += sum(self._observe_listed(item["resource"]) for item in read.page.items)
                if read.through is not None:
                    watermark = version_text(read.through)
                    self.hub.save_state(self._state_key, STREAM, {"watermark": watermark})
        return queued

    def _observe_listed(self, resource: Mapping[str, Any]) -> int:
        name, etag = resource.get("name"), resource.get("etag")
        properties = resource.get("properties")
        if isinstance(name, str) and isinstance(etag, str) and isinstance(properties, dict):
            return self.observe(name, etag, properties)
        return 0

    def _fetch(self, query: PageQuery) -> _Page:
        if query.skip or query.count:
            raise FatalSyncError(
                f"more than {PAGE_SIZE} Sentinel incidents share one lastModifiedTimeUtc; "
                "Sentinel cannot page within them by time"
            )
        text = query.filter_text.replace("lastUpdateDateTime", "properties/lastModifiedTimeUtc")
        page: ListedPage = self.destination.arm.list_page(text, PAGE_SIZE)
        items = []
        for resource in page.items:
            properties = resource.get("properties")
            stamp = properties.get("lastModifiedTimeUtc") if isinstance(properties, dict) else None
            if isinstance(stamp, str) and ticks_from_text(stamp) is not None:
                items.append({"lastUpdateDateTime": stamp, "resource": resource})
        return _Page(items=items, server_date=page.server_date, more=page.more)

    def observe(self, name: str, etag: str, properties: dict[str, Any]) -> int:
        """One Sentinel incident as read now: queue its users' edits; returns how many."""
        copy = self.hub.get_remote_copy(self.destination.name, name)
        if copy is None:
            return 0  # not one xdrsync wrote (Sentinel's own analytics, another connector)
        if copy.etag == etag:
            self.echoes += 1
            return 0
        if modified_before(properties, copy.properties):
            self.stale += 1  # lags behind a write Sentinel already answered: not news
            return 0
        tenant = self._tenants.get(copy.tenant_id.lower())
        queued = 0
        request = edit_request(
            copy.properties, properties, tenant.name if tenant else "", copy.pending
        )
        if tenant is not None and request is not None:
            try:
                queued = len(
                    submit(
                        self.hub,
                        tenant,
                        "incident",
                        copy.entity_id,
                        request,
                        author=f"Microsoft Sentinel ({self.destination.name})",
                        origin=self.origin,
                        closing_needs_classification=False,
                    )
                )
            except EditRefusedError as refused:
                log.warning(
                    "a Sentinel edit cannot go to Defender",
                    destination=self.destination.name,
                    incident=copy.entity_id,
                    tenant=tenant.name,
                    reason=str(refused),
                )
        children = copy.children
        if tenant is not None and self._new_comments(copy, properties):
            forwarded, known = self._forward_comments(tenant, copy)
            queued += forwarded
            children = children | known
        self.hub.save_remote_copy(
            self.destination.name,
            replace(
                copy,
                etag=etag,
                properties=with_own_labels(properties, own_labels(copy.properties)),
                children=children,
            ),
        )
        self.edits_queued += queued
        return queued

    @staticmethod
    def _new_comments(copy: RemoteCopy, properties: Mapping[str, Any]) -> bool:
        """Whether Sentinel holds more comments than xdrsync knows of on this incident."""
        extra = properties.get("additionalData")
        count = extra.get("commentsCount") if isinstance(extra, Mapping) else None
        return isinstance(count, int) and count > len(copy.children)

    def _forward_comments(self, tenant: Tenant, copy: RemoteCopy) -> tuple[int, frozenset[str]]:
        """Post the incident's new Sentinel comments to Defender; (edits queued, the names of
        every comment now accounted for)."""
        ours = {c.name for c in self.destination.mirrored(copy.tenant_id, copy.entity_id)}
        ours.add(notice_name(copy.tenant_id, copy.entity_id))
        known: set[str] = set()
        queued = 0
        try:
            comments = self.destination.arm.list_comments(copy.name)
        except IncidentMissingError:  # deleted since it was listed: the next write recreates it
            return 0, copy.children
        for comment in comments:
            known.add(comment.name)
            if comment.name in copy.children or comment.name in ours or not comment.message:
                continue
            author = comment.author or "an analyst"
            try:
                queued += len(
                    submit(
                        self.hub,
                        tenant,
                        "incident",
                        copy.entity_id,
                        EditRequest(comment=comment.message),
                        author=f"{author} (Microsoft Sentinel)",
                        origin=self.origin,
                    )
                )
            except EditRefusedError as refused:
                log.warning(
                    "a Sentinel comment cannot go to Defender",
                    destination=self.destination.name,
                    incident=copy.entity_id,
                    reason=str(refused),
                )
        return queued, frozenset(known)
