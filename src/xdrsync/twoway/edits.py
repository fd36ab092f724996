"""From "the user wants this" to outbox rows: checks first, then one row per field (pure).

The value the user saw is what the user's page showed when the client says so
(``EditRequest.seen``: a console page may be older than the hub's last read, and a change made
in Defender since then must reach the merge as a conflict, not pass for what the user saw);
otherwise the workspace's view of the record at submit: Defender's version as last read, with
the edits still on their way applied on top (``view``). Checks refuse, with one line,
anything Defender would refuse; nothing is queued unless every part of the request is valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from xdrsync.errors import EditRefusedError
from xdrsync.hub.payload import ticks_from_text
from xdrsync.hub.records import EntityType, NewEdit, OutboxRow
from xdrsync.twoway import fields as f
from xdrsync.twoway.merge import in_order_made, same
from xdrsync.twoway.pusher import theirs_of

#: Fields a user may ask about that Defender does not take in a PATCH (reference §2.9).
READ_ONLY_FIELDS = {
    "incident": ("severity", "displayName", "description", "summary"),
    "alert": ("severity", "title", "description", "customTags"),
}


@dataclass(frozen=True)
class EditRequest:
    """What a user asked for; None / empty means "leave as is". ``owner=""`` unassigns.
    ``seen`` is the record as the user's page showed it (Graph's names); a field it leaves
    out is taken as the workspace shows it now. ``at`` is when the user made the edit, where
    the client knows it (else: when it is queued)."""

    status: str | None = None
    owner: str | None = None
    classification: str | None = None
    determination: str | None = None
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    comment: str | None = None
    other: Mapping[str, Any] | None = None  # any other field named (always refused)
    seen: Mapping[str, Any] | None = None
    at: datetime | None = None


def view(record: Mapping[str, Any], edits: Sequence[OutboxRow]) -> dict[str, Any]:
    """The record as the workspace shows it: Defender's version with the edits that Defender
    has not confirmed yet, or that the hub has not read back yet, applied in the order they
    were made (``in_order_made``)."""
    out = dict(record)
    version = _ticks(record)
    for edit in in_order_made(edits):
        if not waiting(edit, version) or edit.field == f.COMMENT:
            continue
        if edit.field == f.CLASSIFICATION:
            out["classification"] = edit.wanted["classification"]
            out["determination"] = edit.wanted["determination"]
        elif edit.field == f.TAGS:
            tags = [t for t in out.get("customTags") or () if t not in edit.wanted["remove"]]
            out["customTags"] = tags + [t for t in edit.wanted["add"] if t not in tags]
        else:
            out[edit.field] = edit.wanted
    return out


def waiting(edit: OutboxRow, version: int | None) -> bool:
    """Whether ``edit`` is still on its way to the record as the hub holds it at ``version``
    (its ``lastUpdateDateTime`` ticks): open (pending, or a conflict), or confirmed by a
    version of Defender's that the hub has not read yet."""
    return edit.state in ("pending", "conflict") or (
        edit.state == "confirmed"
        and edit.written_version is not None
        and (version is None or edit.written_version > version)
    )


def _ticks(record: Mapping[str, Any]) -> int | None:
    text = record.get("lastUpdateDateTime")
    return ticks_from_text(str(text)) if text else None


def _seen_value(name: str, current: Mapping[str, Any], shown: Mapping[str, Any] | None) -> Any:
    """What the user saw of ``name``: the page's value (``shown``) where it sent one, else the
    workspace's. A page shows enums in one spelling (``truePositive``) where Graph may have
    sent another (``TruePositive``): the same value is kept in the workspace's spelling, so
    that a spelling never passes for a change made in Defender."""
    now = theirs_of(current, name)
    if not shown:
        return now
    saw = theirs_of({**current, **shown}, name)
    return now if _folded(saw) == _folded(now) else saw


def _folded(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _folded(part) for key, part in value.items()}
    return str(value or "").lower()


def check_request(kind: EntityType, request: EditRequest) -> None:
    """Refuse what no record of this kind takes, before looking the record up."""
    if request.other:
        name = sorted(request.other)[0]
        allowed = ", ".join(n for n in f.FIELDS[kind] if n != f.COMMENT)
        what = "is read-only in Defender" if name in READ_ONLY_FIELDS[kind] else "is not a field"
        raise EditRefusedError(
            f"{name} {what} on an {kind}: Graph's PATCH takes only {allowed}, and comments"
        )
    if (request.add_tags or request.remove_tags) and f.TAGS not in f.FIELDS[kind]:
        raise EditRefusedError(
            f"customTags is read-only on an {kind}: Graph's alerts_v2 PATCH takes no tags"
        )
    if not any(
        (
            request.status is not None,
            request.owner is not None,
            request.classification is not None,
            request.determination is not None,
            request.add_tags,
            request.remove_tags,
            request.comment is not None,
        )
    ):
        raise EditRefusedError("nothing to change: name at least one field or a comment")


def _check_closed_keeps_classification(
    request: EditRequest,
    wanted: Mapping[str, Any],
    current: Mapping[str, Any],
    pair_now: f.Pair | None,
) -> None:
    """An incident is never left closed without a classification: neither by closing it
    unclassified nor by clearing the classification of an incident that stays closed (the
    status the edit wants, else the status it has). An incident Defender already shows closed
    and unclassified keeps taking the edits that leave its classification alone."""
    if f.is_closed("incident", wanted.get(f.STATUS)):
        raise EditRefusedError(
            "closing an incident needs a classification (--classification), as in Sentinel"
        )
    stays_closed = request.status is None and f.is_closed(
        "incident", str(current.get("status") or "")
    )
    if stays_closed and f.classified(pair_now):
        raise EditRefusedError(
            "a closed incident needs a classification: reopen it to clear its classification"
        )


def plan_edits(
    kind: EntityType,
    tenant_id: str,
    entity_id: str,
    current: Mapping[str, Any],
    request: EditRequest,
    *,
    author: str,
    origin: str,
    closing_needs_classification: bool = True,
) -> list[NewEdit]:
    """The outbox rows for ``request`` against the workspace's view ``current``; raises
    ``EditRefusedError`` for anything Defender would not accept. Fields the workspace already
    shows at the wanted value are left out (an empty list: nothing to change); each row's
    ``seen`` is what the user's page showed (``request.seen``), else ``current``."""
    check_request(kind, request)
    if str(current.get("status") or "").lower() == "redirected":
        survivor = current.get("redirectIncidentId") or "another incident"
        raise EditRefusedError(
            f"incident {entity_id} was merged into {survivor} by Defender; edit that one"
        )
    wanted: dict[str, Any] = {}
    if request.status is not None:
        wanted[f.STATUS] = f.status(kind, request.status)
    if request.owner is not None:
        wanted[f.OWNER] = f.owner(request.owner)
    pair_now = f.Pair.from_json(theirs_of(current, f.CLASSIFICATION))
    new_pair = pair_now
    if request.classification is not None or request.determination is not None:
        new_pair = f.pair(request.classification, request.determination, pair_now)
        wanted[f.CLASSIFICATION] = new_pair.to_json()
    if closing_needs_classification and kind == "incident" and not f.classified(new_pair):
        _check_closed_keeps_classification(request, wanted, current, pair_now)
    adds, removes = f.tags(request.add_tags), f.tags(request.remove_tags)
    both = set(adds) & set(removes)
    if both:
        raise EditRefusedError(f"tag {sorted(both)[0]!r} is both added and removed")
    comment = f.comment(request.comment) if request.comment is not None else None

    edits: list[NewEdit] = []

    def add(name: str, seen: Any, value: Any) -> None:
        edits.append(
            NewEdit(
                tenant_id,
                kind,
                entity_id,
                name,
                seen,
                value,
                author=author,
                origin=origin,
                at=request.at,
            )
        )

    for name, value in wanted.items():
        if not same(name, theirs_of(current, name), value):
            add(name, _seen_value(name, current, request.seen), value)
    if adds or removes:
        tags_now = theirs_of(current, f.TAGS)
        real_adds = [t for t in adds if t not in tags_now]
        real_removes = [t for t in removes if t in tags_now]
        if real_adds or real_removes:
            add(f.TAGS, tags_now, {"add": real_adds, "remove": real_removes})
    if comment is not None:
        add(f.COMMENT, None, comment)
    return edits


__all__ = ["READ_ONLY_FIELDS", "EditRequest", "check_request", "plan_edits", "view", "waiting"]
