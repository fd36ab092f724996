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

Fields are merged one by one, but an incident's status and classification depend on each
other: a closed incident has a classification. ``close_classified`` settles what the per-field
merges of one push would leave breaking that (a close that lost its classification), and
``write_units`` keeps a close and its classification together when Graph refuses a PATCH and
the pusher sends it again in parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from xdrsync.hub.records import OutboxRow
from xdrsync.models.enums import AlertStatus, IncidentStatus
from xdrsync.twoway.fields import (
    CLASSIFICATION,
    OWNER,
    STATUS,
    TAGS,
    Pair,
    classified,
    is_closed,
    may_close_unclassified,
)

Policy = Literal["latest_wins", "defender_wins", "workspace_wins", "manual"]
POLICIES: Final[tuple[Policy, ...]] = ("latest_wins", "defender_wins", "workspace_wins", "manual")
Side = Literal["workspace", "defender"]
Action = Literal["write", "already", "defender_won", "conflict", "refused"]


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


def close_classified(
    plans: Sequence[FieldPlan],
    status_theirs: Any,
    pair_theirs: Mapping[str, Any] | None,
    origins: Mapping[int, str] | None = None,
) -> list[FieldPlan]:
    """An incident's field plans of one push (``merge_field`` per field; a field's last plan
    decides it), settled so that no close goes out without a classification and no write
    leaves a closed incident without one. ``status_theirs`` and ``pair_theirs`` are Defender's
    values now; ``origins`` the edits' origins by id (None: the workspace's own).

    The rule, for a close (the status written is ``resolved``) whose classification edit
    lost to the field's policy (Defender's classification changed meanwhile):

    ================================ ===========================================================
    Defender's classification now    what goes out
    ================================ ===========================================================
    a real one (another human's)     the close, with Defender's classification: the audit of
                                     the lost classification says the close went with it
    none, the edit lost to policy    the close with the closer's classification: a close needs
                                     one, and the closer's is the only judgement there is
    none, the edit waits (manual)    nothing: the close waits with it, as a conflict (the
                                     policy asks a human for the classification, and the close
                                     needs it)
    ================================ ===========================================================

    A close with no classification to go with it (Defender's cleared since the user saw it,
    and none edited) is *refused*: the edit fails, as ``edits.plan_edits`` refuses it when the
    clearing is seen (classify and close again). A classification cleared on an incident
    Defender holds closed is refused the same way, or waits with a reopen that waits as a
    conflict. Neither refusal, nor the wait of the last row, applies when every edit of the
    two fields comes from where an incident may close unclassified (Sentinel closes as
    Undetermined: ``fields.may_close_unclassified``); the first two rows do.

    Why: a SOC closes an incident with a verdict. Another analyst's later verdict is as good a
    one, and the policy chose it; closing with it keeps the field-level merge (status and
    classification each decided as configured) and the promise, and the trail says whose
    verdict it went with. A verdict cleared meanwhile is no verdict, so the closer's is the
    one that makes the close possible; only a conflict kept for a human (``manual``) is not
    decided here. Tested table-driven and, over any history, by the merge's property test."""
    last = {plan.field: index for index, plan in enumerate(plans)}
    out = list(plans)
    if STATUS not in last and CLASSIFICATION not in last:
        return out
    st = out[last[STATUS]] if STATUS in last else None
    cl = out[last[CLASSIFICATION]] if CLASSIFICATION in last else None
    strict = origins is None or not all(
        may_close_unclassified(origins.get(i, ""))
        for plan in (st, cl)
        if plan is not None
        for i in plan.intents
    )
    theirs_classified = classified(Pair.from_json(pair_theirs))

    def put(plan: FieldPlan, action: Action, reason: str) -> None:
        value = plan.ours if action == "write" else None
        out[last[plan.field]] = replace(plan, action=action, value=value, reason=reason)

    closes = st is not None and st.action == "write" and is_closed("incident", st.value)
    if closes:
        assert st is not None
        if cl is not None and cl.action in ("defender_won", "conflict"):
            wanted = classified(Pair.from_json(cl.ours))
            if theirs_classified:
                put(cl, cl.action, f"{cl.reason}; the close goes with Defender's classification")
                return out
            if wanted and cl.action == "defender_won":
                put(
                    cl,
                    "write",
                    f"{cl.reason}; but Defender has no classification and a close needs one: "
                    "the closer's goes with the close",
                )
                return out
            if wanted and strict:
                put(
                    st,
                    "conflict",
                    "the close waits with its classification, in conflict: Defender has none, "
                    "and a closed incident needs one",
                )
                return out
        final = cl.value if cl is not None and cl.action == "write" else pair_theirs
        if strict and not classified(Pair.from_json(final)):
            put(
                st,
                "refused",
                "a closed incident needs a classification, and Defender's incident has none "
                "(cleared since the edit was made?): classify it and close again",
            )
        return out
    closed = is_closed(
        "incident",
        str((st.ours if st is not None and st.action == "write" else status_theirs) or ""),
    )
    clears = cl is not None and cl.action == "write" and not classified(Pair.from_json(cl.value))
    if strict and closed and clears:
        assert cl is not None
        if st is not None and st.action == "conflict" and not is_closed("incident", st.ours):
            put(cl, "conflict", "the classification cleared waits with the reopen, in conflict")
        else:
            put(
                cl,
                "refused",
                "Defender's incident is closed, and a closed incident keeps its "
                "classification: reopen it to clear it",
            )
    return out


def write_units(
    plans: Sequence[FieldPlan], origins: Mapping[int, str] | None = None
) -> list[tuple[FieldPlan, ...]]:
    """The writes of an incident's push (``plans`` as ``close_classified`` settled them) as
    the units Graph must take or refuse whole: when Graph refuses a PATCH with 400, the
    pusher sends it again in parts, unit by unit (``Pusher._patch``), and a unit it refuses
    fails whole.

    A close and the classification written with it are one unit, and so are a reopen and
    the classification it clears: either half landing alone (the close, its classification
    refused; the clearing, the reopen refused) could leave the incident closed unclassified,
    which ``close_classified`` settled never to happen. Every other write is a unit of its
    own, so that the fields Graph takes are still written. The unit stands where its first
    write stands. Edits that may close unclassified (Sentinel's, ``origins``; None: the
    workspace's own) are not tied, as ``close_classified`` does not hold them to the rule.
    Incidents only: an alert may be resolved unclassified."""
    writes = [plan for plan in plans if plan.action == "write"]
    st = next((p for p in writes if p.field == STATUS), None)
    cl = next((p for p in writes if p.field == CLASSIFICATION), None)
    tied = (
        st is not None
        and cl is not None
        and (is_closed("incident", str(st.value or "")) or not classified(Pair.from_json(cl.value)))
        and (
            origins is None
            or not all(
                may_close_unclassified(origins.get(i, "")) for p in (st, cl) for i in p.intents
            )
        )
    )
    if not tied:
        return [(plan,) for plan in writes]
    assert st is not None and cl is not None
    units: list[tuple[FieldPlan, ...]] = []
    for plan in writes:
        if plan is not st and plan is not cl:
            units.append((plan,))
        elif (st, cl) not in units:
            units.append((st, cl))
    return units


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
    "close_classified",
    "merge_field",
    "merge_tags",
    "same",
    "theirs_since",
    "write_units",
]
