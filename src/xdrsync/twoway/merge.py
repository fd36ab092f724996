"""The three-way merge of workspace edits with Defender's current value (pure).

For each field the pusher knows what the user saw when editing (``seen``), what the user wants
(``wanted``) and what Defender has now (``theirs``):

* Defender already has the wanted value → **already** (confirmed, nothing to write);
* Defender still has what the user saw → **write** the wanted value;
* Defender changed the field meanwhile → a **conflict**, decided by the field's policy:
  ``latest_wins`` (the later change wins; the workspace wins a tie), ``defender_wins``,
  ``workspace_wins`` or ``manual`` (kept for ``xdrsync conflicts resolve``).

Several pending edits of one field are one change: from what the first one saw to what the
last one wants. Tags are not a value but a set: each edit's adds and removes are applied to
Defender's current set, so both sides' changes survive and nothing conflicts. Comments append.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from xdrsync.hub.records import OutboxRow
from xdrsync.models.enums import AlertStatus, IncidentStatus
from xdrsync.twoway.fields import CLASSIFICATION, OWNER, STATUS, TAGS, Pair

Policy = Literal["latest_wins", "defender_wins", "workspace_wins", "manual"]
POLICIES: Final[tuple[Policy, ...]] = ("latest_wins", "defender_wins", "workspace_wins", "manual")
Side = Literal["workspace", "defender"]
Action = Literal["write", "already", "defender_won", "conflict"]


_BEFORE_ALL: Final = datetime.min.replace(tzinfo=UTC)


def in_order_made(edits: Iterable[OutboxRow]) -> list[OutboxRow]:
    """Edits in the order their users made them, so that a field's latest is last: by when
    each was made, then queued (an edit read back from Sentinel is dated by Sentinel and may
    be queued after a later one). Tag edits keep the order they were queued in: they merge
    as sets, and the pusher takes a sent prefix of them as written (``_tags_landed``)."""
    return sorted(edits, key=lambda e: (_BEFORE_ALL if e.field == TAGS else e.created_at, e.id))


@dataclass(frozen=True)
class Intent:
    """One pending edit of one field, as the outbox holds it (values in JSON form)."""

    id: int
    field: str
    seen: Any
    wanted: Any
    at: datetime
    author: str


@dataclass(frozen=True)
class FieldPlan:
    """What to do with one field's pending edits, and why (for the audit trail)."""

    field: str
    action: Action
    value: Any  # what to PATCH when action == "write"; else None
    intents: tuple[int, ...]
    theirs: Any
    ours: Any
    reason: str
    #: When Defender's value was set, as far as the hub can tell: what ``latest_wins``
    #: compares with the edit's time (None: not known, or not a policy field).
    theirs_at: datetime | None = None


def same(field: str, a: Any, b: Any) -> bool:
    """Whether two values of ``field`` are the same to Defender.

    Enum values compare as the models parse them: Graph answers in camelCase or PascalCase
    (its documented PATCH answer says ``"TruePositive"``, ``"MultiStagedAttack"``,
    ``"Active"``) and under the older documented names (``clean`` is ``notMalicious``), all
    the same member (reference §2.3). Any other difference is a different value."""
    if field == CLASSIFICATION:
        return _pair(a) == _pair(b)
    if field == TAGS:
        return set(a or ()) == set(b or ())
    if field == STATUS:
        return _status(a) == _status(b)
    if field == OWNER:
        return (a or "").lower() == (b or "").lower()
    return bool(a == b)


def _pair(value: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """A classification/determination pair as canonical member names (None when unset)."""
    pair = Pair.from_json(value)
    return (pair.classification, pair.determination) if pair is not None else None


def _status(value: Any) -> str:
    """An incident's or an alert's status as its member's name; case-folded if neither
    enum knows it (``same`` is not told which kind of record the value is from)."""
    text = str(value or "")
    for enum in (IncidentStatus, AlertStatus):
        parsed = enum.parse(text)
        if parsed.is_known:
            return parsed.value
    return text.casefold()


def merge_field(
    field: str,
    intents: Sequence[Intent],
    theirs: Any,
    theirs_at: datetime | None,
    policy: Policy,
    *,
    take: Side | None = None,
) -> FieldPlan:
    """Decide one scalar field (status, owner, classification pair).

    ``theirs_at`` is when Defender's value was set (as close as the hub can tell);
    ``take`` is an operator's decision on a ``manual`` conflict.
    """
    if not intents:
        raise ValueError("nothing to merge")
    ids = tuple(i.id for i in intents)
    seen, wanted = intents[0].seen, intents[-1].wanted
    edit_at = intents[-1].at

    def plan(action: Action, reason: str) -> FieldPlan:
        value = wanted if action == "write" else None
        return FieldPlan(field, action, value, ids, theirs, wanted, reason, theirs_at)

    if same(field, theirs, wanted):
        return plan("already", "Defender already has the wanted value")
    if same(field, theirs, seen):
        return plan("write", "Defender still has the value the user saw")
    changed = "Defender changed the field since the user saw it"
    if take == "workspace":
        return plan("write", f"{changed}; resolved by hand: workspace")
    if take == "defender":
        return plan("defender_won", f"{changed}; resolved by hand: Defender")
    if policy == "workspace_wins":
        return plan("write", f"{changed}; policy workspace_wins")
    if policy == "defender_wins":
        return plan("defender_won", f"{changed}; policy defender_wins")
    if policy == "manual":
        return plan("conflict", f"{changed}; policy manual: waiting for a decision")
    if theirs_at is None or edit_at >= theirs_at:
        return plan("write", f"{changed}; latest_wins: the workspace edit is later")
    return plan("defender_won", f"{changed}; latest_wins: Defender's change is later")


def merge_tags(intents: Sequence[Intent], theirs: Sequence[str] | None) -> FieldPlan:
    """Apply each edit's adds and removes, in order, to Defender's current set. Defender's
    order is kept and new tags are appended, so a write changes only what was asked."""
    current = list(dict.fromkeys(theirs or ()))
    result = list(current)
    for intent in intents:
        change: Mapping[str, Any] = intent.wanted or {}
        removed = set(change.get("remove") or ())
        result = [tag for tag in result if tag not in removed]
        for tag in change.get("add") or ():
            if tag not in result:
                result.append(tag)
    ids = tuple(i.id for i in intents)
    if set(result) == set(current):
        return FieldPlan(TAGS, "already", None, ids, current, result, "Defender has these tags")
    return FieldPlan(TAGS, "write", result, ids, current, result, "tags merged set-wise")


def theirs_since(
    field: str, theirs: Any, history: Sequence[tuple[datetime, Any]], fallback: datetime | None
) -> datetime | None:
    """When Defender's current value of ``field`` was set: the oldest version of the newest
    unbroken run of versions holding it (``history`` is oldest first, as read into the hub);
    ``fallback`` (the record's ``lastUpdateDateTime``) when the hub never saw the value."""
    since: datetime | None = None
    for at, value in reversed(history):
        if not same(field, value, theirs):
            break
        since = at
    return since if since is not None else fallback


__all__ = [
    "POLICIES",
    "FieldPlan",
    "Intent",
    "Policy",
    "Side",
    "merge_field",
    "merge_tags",
    "same",
    "theirs_since",
]
