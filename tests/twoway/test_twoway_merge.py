"""The three-way merge of workspace edits with Defender's current value (twoway.merge), as
the pusher uses it: tables for every policy and case, then properties of whole histories of
edits on both sides (convergence, nothing dropped, tags set-wise, policy respected, no
ping-pong)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdrsync.errors import EditRefusedError
from xdrsync.hub.payload import (
    datetime_from_ticks,
    ticks_from_datetime,
    ticks_from_text,
    version_text,
)
from xdrsync.hub.records import OutboxRow, OutboxState
from xdrsync.twoway.edits import EditRequest, plan_edits, view
from xdrsync.twoway.fields import CLASSIFICATION, OWNER, STATUS, TAGS
from xdrsync.twoway.merge import (
    POLICIES,
    Action,
    FieldPlan,
    Intent,
    Policy,
    Side,
    close_classified,
    merge_field,
    merge_tags,
    same,
    theirs_since,
    write_units,
)
from xdrsync.twoway.pusher import patch_body, theirs_of

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pair(classification: str, determination: str) -> dict[str, str]:
    return {"classification": classification, "determination": determination}


def intent(
    field_name: str, seen: Any, wanted: Any, when: float = 10, id_: int = 1, author: str = "ana"
) -> Intent:
    return Intent(id_, field_name, seen, wanted, at(when), author)


# (field, what the user saw, a value Defender changed it to meanwhile, what the user wants)
FIELD_VALUES: list[tuple[str, Any, Any, Any]] = [
    (STATUS, "active", "resolved", "inProgress"),
    (OWNER, None, "carol@contoso.com", "alice@contoso.com"),
    (OWNER, "bob@contoso.com", None, "alice@contoso.com"),
    (OWNER, "bob@contoso.com", "carol@contoso.com", None),  # the user unassigns
    (
        CLASSIFICATION,
        pair("unknown", "unknown"),
        pair("falsePositive", "notMalicious"),
        pair("truePositive", "malware"),
    ),
    (
        CLASSIFICATION,
        pair("truePositive", "malware"),
        pair("truePositive", "phishing"),  # only the determination changed in Defender
        pair("truePositive", "other"),
    ),
]
FIELD_IDS = [f"{name}-{i}" for i, (name, *_rest) in enumerate(FIELD_VALUES)]


# -- merge_field: every policy x every case --------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("name", "seen", "changed", "wanted"), FIELD_VALUES, ids=FIELD_IDS)
def test_defender_unchanged_writes_the_wanted_value(
    policy: Policy, name: str, seen: Any, changed: Any, wanted: Any
) -> None:
    plan = merge_field(name, [intent(name, seen, wanted, id_=7)], seen, at(20), policy)
    assert plan.action == "write"
    assert plan.value == wanted
    assert (plan.field, plan.intents, plan.theirs, plan.ours) == (name, (7,), seen, wanted)
    assert plan.reason


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("name", "seen", "changed", "wanted"), FIELD_VALUES, ids=FIELD_IDS)
def test_defender_already_has_the_wanted_value(
    policy: Policy, name: str, seen: Any, changed: Any, wanted: Any
) -> None:
    # whoever set it, and whenever: nothing to write, and no conflict
    for theirs_at in (None, at(0), at(10), at(99)):
        plan = merge_field(name, [intent(name, seen, wanted)], wanted, theirs_at, policy)
        assert plan.action == "already"
        assert plan.value is None
        assert plan.intents == (1,)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("workspace_wins", "write"),
        ("defender_wins", "defender_won"),
        ("manual", "conflict"),
    ],
)
@pytest.mark.parametrize(("name", "seen", "changed", "wanted"), FIELD_VALUES, ids=FIELD_IDS)
def test_defender_changed_the_field_the_policy_decides(
    policy: Policy, expected: str, name: str, seen: Any, changed: Any, wanted: Any
) -> None:
    # the times do not matter to these policies
    for theirs_at in (None, at(0), at(10), at(99)):
        plan = merge_field(name, [intent(name, seen, wanted)], changed, theirs_at, policy)
        assert plan.action == expected
        assert plan.value == (wanted if expected == "write" else None)
        assert plan.theirs == changed  # kept for the audit trail and the conflict queue
        assert plan.ours == wanted
        assert policy in plan.reason


@pytest.mark.parametrize(
    ("defender_at", "expected"),
    [
        (None, "write"),  # the hub cannot tell when: the workspace edit wins
        (0, "write"),  # Defender changed it before the edit
        (9.999, "write"),
        (10, "write"),  # at the same time: the workspace wins a tie
        (10.000001, "defender_won"),  # Defender changed it after the edit
        (60, "defender_won"),
    ],
)
@pytest.mark.parametrize(("name", "seen", "changed", "wanted"), FIELD_VALUES, ids=FIELD_IDS)
def test_latest_wins_compares_the_edit_with_defenders_change(
    defender_at: float | None, expected: str, name: str, seen: Any, changed: Any, wanted: Any
) -> None:
    theirs_at = at(defender_at) if defender_at is not None else None
    plan = merge_field(
        name, [intent(name, seen, wanted, when=10)], changed, theirs_at, "latest_wins"
    )
    assert plan.action == expected
    assert plan.value == (wanted if expected == "write" else None)
    assert "latest_wins" in plan.reason


@pytest.mark.parametrize("policy", POLICIES)
def test_an_operators_decision_overrides_the_policy_on_a_conflict(policy: Policy) -> None:
    name, seen, changed, wanted = FIELD_VALUES[0]
    took: dict[Side, FieldPlan] = {
        side: merge_field(name, [intent(name, seen, wanted)], changed, at(99), policy, take=side)
        for side in ("workspace", "defender")
    }
    assert took["workspace"].action == "write"
    assert took["workspace"].value == wanted
    assert "by hand" in took["workspace"].reason
    assert took["defender"].action == "defender_won"
    assert took["defender"].value is None
    assert "by hand" in took["defender"].reason


def test_an_operators_decision_does_not_undo_an_already() -> None:
    plan = merge_field(
        STATUS,
        [intent(STATUS, "active", "resolved")],
        "resolved",
        at(99),
        "manual",
        take="defender",
    )
    assert plan.action == "already"


def test_status_and_owner_compare_without_case() -> None:
    plan = merge_field(
        OWNER,
        [intent(OWNER, "Bob@Contoso.com", "alice@contoso.com")],
        "bob@contoso.com",
        at(99),
        "manual",
    )
    assert plan.action == "write"  # Defender's value is the one the user saw
    already = merge_field(
        STATUS, [intent(STATUS, "active", "inProgress")], "InProgress", at(99), "manual"
    )
    assert already.action == "already"


def test_several_edits_of_one_field_are_one_change() -> None:
    edits = [
        intent(STATUS, "active", "inProgress", when=10, id_=1),
        intent(STATUS, "inProgress", "resolved", when=20, id_=2),
        intent(STATUS, "resolved", "inProgress", when=30, id_=3),
    ]
    # from what the first saw to what the last wants
    plan = merge_field(STATUS, edits, "active", at(0), "manual")
    assert (plan.action, plan.value, plan.intents) == ("write", "inProgress", (1, 2, 3))
    # an intermediate value in Defender is not "what the user saw"
    plan = merge_field(STATUS, edits, "resolved", at(0), "manual")
    assert plan.action == "conflict"
    # an edit undone before it was pushed writes nothing
    undone = [edits[0], intent(STATUS, "inProgress", "active", when=20, id_=2)]
    assert merge_field(STATUS, undone, "active", None, "latest_wins").action == "already"


def test_latest_wins_takes_the_time_of_the_last_edit_of_the_field() -> None:
    edits = [
        intent(OWNER, None, "alice@contoso.com", when=10, id_=1),
        intent(OWNER, "alice@contoso.com", "bob@contoso.com", when=30, id_=2),
    ]
    changed = "carol@contoso.com"
    assert merge_field(OWNER, edits, changed, at(20), "latest_wins").action == "write"
    assert merge_field(OWNER, edits, changed, at(31), "latest_wins").action == "defender_won"


def test_merging_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to merge"):
        merge_field(STATUS, [], "active", None, "latest_wins")


# -- merge_tags -----------------------------------------------------------------------------


def tag_intent(
    add: Sequence[str] = (), remove: Sequence[str] = (), id_: int = 1, seen: Any = None
) -> Intent:
    return Intent(id_, TAGS, seen, {"add": list(add), "remove": list(remove)}, at(10), "ana")


@pytest.mark.parametrize(
    ("theirs", "edits", "expected"),
    [
        # the workspace adds and removes; Defender's other tags stay, in Defender's order
        (["b", "a"], [tag_intent(add=["c"])], ["b", "a", "c"]),
        (["b", "a", "c"], [tag_intent(remove=["a"])], ["b", "c"]),
        (["z", "a"], [tag_intent(add=["m"], remove=["z"])], ["a", "m"]),
        # a tag Defender added meanwhile survives the workspace's edit
        (["a", "defender-new"], [tag_intent(add=["ws-new"], seen=["a"])], None),
        # a tag Defender removed meanwhile stays removed
        ([], [tag_intent(add=["ws-new"], seen=["gone"])], ["ws-new"]),
        # several edits in order
        (["a"], [tag_intent(add=["b"], id_=1), tag_intent(add=["c"], id_=2)], ["a", "b", "c"]),
        (["a"], [tag_intent(add=["b"], id_=1), tag_intent(remove=["a"], id_=2)], ["b"]),
        (
            ["a"],
            [tag_intent(add=["b"], id_=1), tag_intent(remove=["b"], id_=2), tag_intent(add=["b"])],
            ["a", "b"],
        ),
        (None, [tag_intent(add=["x"])], ["x"]),
        (["a", "a"], [tag_intent(add=["b"])], ["a", "b"]),
    ],
)
def test_tags_merge_set_wise(
    theirs: list[str] | None, edits: list[Intent], expected: list[str] | None
) -> None:
    plan = merge_tags(edits, theirs)
    assert plan.action == "write"
    assert plan.field == TAGS
    if expected is None:  # the defender-new case
        assert plan.value == ["a", "defender-new", "ws-new"]
    else:
        assert plan.value == expected
    assert plan.ours == plan.value
    assert plan.theirs == list(dict.fromkeys(theirs or ()))
    assert plan.intents == tuple(i.id for i in edits)


@pytest.mark.parametrize(
    ("theirs", "edits"),
    [
        (["a"], [tag_intent(add=["a"])]),  # Defender has it already
        (["a"], [tag_intent(remove=["b"])]),  # Defender removed it already
        (["a"], [tag_intent(add=["b"], id_=1), tag_intent(remove=["b"], id_=2)]),  # undone
        ([], [tag_intent()]),
        (None, [tag_intent(remove=["x"])]),
        (["b", "a"], [tag_intent(add=["a", "b"])]),
    ],
)
def test_tags_already_in_defender_write_nothing(
    theirs: list[str] | None, edits: list[Intent]
) -> None:
    plan = merge_tags(edits, theirs)
    assert plan.action == "already"
    assert plan.value is None
    assert patch_body([plan]) == {}


# -- close_classified: a close goes with a classification -------------------------------------

TP = pair("truePositive", "malware")
FP = pair("falsePositive", "notMalicious")
NONE = pair("unknown", "unknown")
ANALYST = pair("informationalExpectedActivity", "securityTesting")


def _close(policy: Policy, *, seen: Any, theirs: Any, wanted: Any = TP) -> list[FieldPlan]:
    """A close with a classification, merged per field: the user saw the incident active and
    classified ``seen``; Defender's classification is ``theirs`` now, set after the edit (so
    ``latest_wins`` gives it to Defender)."""
    return [
        merge_field(STATUS, [intent(STATUS, "active", "resolved", id_=1)], "active", None, policy),
        merge_field(
            CLASSIFICATION, [intent(CLASSIFICATION, seen, wanted, id_=2)], theirs, at(99), policy
        ),
    ]


# (policy, Defender's classification now, the status's action, the classification's action,
#  the pair Defender ends with)
CLOSES: list[tuple[Policy, Any, Action, Action, Any]] = [
    # Another analyst classified meanwhile: the close goes with that verdict, and says so.
    ("latest_wins", ANALYST, "write", "defender_won", ANALYST),
    ("defender_wins", ANALYST, "write", "defender_won", ANALYST),
    ("manual", ANALYST, "write", "conflict", ANALYST),
    # Defender's classification was cleared: the closer's goes with the close...
    ("latest_wins", NONE, "write", "write", TP),
    ("defender_wins", NONE, "write", "write", TP),
    # ...unless a human is to decide it: the close waits with it.
    ("manual", NONE, "conflict", "conflict", NONE),
    # The workspace wins the field: as before.
    ("workspace_wins", ANALYST, "write", "write", TP),
    ("workspace_wins", NONE, "write", "write", TP),
]


@pytest.mark.parametrize(("policy", "theirs", "status", "classification", "ends"), CLOSES)
def test_a_close_never_goes_out_without_a_classification(
    policy: Policy, theirs: Any, status: Action, classification: Action, ends: Any
) -> None:
    plans = close_classified(_close(policy, seen=FP, theirs=theirs), "active", theirs)
    st, cl = plans
    assert (st.action, cl.action) == (status, classification), plans
    body = patch_body(plans)
    final = {**theirs, **{k: body[k] for k in ("classification", "determination") if k in body}}
    assert same(CLASSIFICATION, final, ends)
    if st.action == "write":
        assert body["status"] == "resolved" and final["classification"] != "unknown"
    if theirs == ANALYST and cl.action != "write":
        # the trail of the lost classification says which one the close went with
        assert "the close goes with Defender's classification" in cl.reason
    if cl.action == "write" and policy != "workspace_wins":
        assert "Defender has no classification" in cl.reason and policy in cl.reason
    if st.action == "conflict":
        assert "waits with its classification" in st.reason


def test_a_close_whose_classification_was_cleared_meanwhile_is_refused() -> None:
    """A close alone, made on a classified incident whose classification Defender cleared
    since: nothing to close with, as ``plan_edits`` would refuse had it seen the clearing."""
    status = merge_field(
        STATUS, [intent(STATUS, "active", "resolved")], "active", None, "latest_wins"
    )
    (plan,) = close_classified([status], "active", NONE)
    assert plan.action == "refused" and plan.value is None
    assert "needs a classification" in plan.reason
    assert patch_body([plan]) == {}
    # A Sentinel analyst may close as Undetermined: that close goes.
    (lax,) = close_classified([status], "active", NONE, {1: "sentinel:soc"})
    assert lax.action == "write"
    # Defender classified: the close goes with it.
    (fine,) = close_classified([status], "active", ANALYST)
    assert fine == status


@pytest.mark.parametrize(
    ("status_plan", "action"),
    [
        (None, "refused"),  # closed in Defender meanwhile: the clearing is refused
        (("resolved", "latest_wins"), "refused"),  # closed by both sides: refused too
        (("active", "manual"), "conflict"),  # a reopen that waits: the clearing waits with it
        (("active", "workspace_wins"), "write"),  # reopened with it: cleared on an open incident
    ],
)
def test_a_classification_is_not_cleared_on_an_incident_defender_holds_closed(
    status_plan: tuple[str, Policy] | None, action: Action
) -> None:
    clear = merge_field(
        CLASSIFICATION, [intent(CLASSIFICATION, TP, NONE, id_=2)], TP, None, "latest_wins"
    )
    plans = [clear]
    if status_plan is not None:
        wanted, policy = status_plan
        status = merge_field(
            STATUS, [intent(STATUS, "inProgress", wanted)], "resolved", at(99), policy
        )
        plans = [status, clear]
    decided = close_classified(plans, "resolved", TP)[-1]
    assert decided.action == action, decided
    assert (decided.value == NONE) == (action == "write")
    if action == "refused":
        assert "reopen it to clear it" in decided.reason
    # From Sentinel (closed as Undetermined is allowed there): the clearing goes.
    lax = close_classified(plans, "resolved", TP, {1: "sentinel:soc", 2: "sentinel:soc"})
    assert lax == plans


def test_fields_that_need_nothing_of_each_other_pass_unchanged() -> None:
    owner = merge_field(OWNER, [intent(OWNER, None, "alice@contoso.com")], None, None, "manual")
    reopen = merge_field(
        STATUS, [intent(STATUS, "resolved", "active", id_=2)], "resolved", None, "manual"
    )
    classify = merge_field(
        CLASSIFICATION, [intent(CLASSIFICATION, NONE, TP, id_=3)], NONE, None, "manual"
    )
    for plans in ([owner], [owner, reopen], [reopen, classify], [classify]):
        assert close_classified(plans, "active", NONE) == plans
    # A close whose classification is written with it.
    closes = _close("latest_wins", seen=NONE, theirs=NONE)
    assert [p.action for p in closes] == ["write", "write"]
    assert close_classified(closes, "active", NONE) == closes


def _write(name: str, seen: Any, wanted: Any, id_: int) -> FieldPlan:
    return merge_field(name, [intent(name, seen, wanted, id_=id_)], seen, None, "latest_wins")


def test_a_close_and_its_classification_are_one_unit_of_a_refused_patch() -> None:
    """When Graph refuses a PATCH with 400 the pusher sends it again unit by unit: the close
    and its classification go together or not at all (either alone could leave the incident
    closed unclassified); every other field, a reopen with a new verdict included, alone."""
    owner = _write(OWNER, None, "alice@contoso.com", 1)
    close = _write(STATUS, "active", "resolved", 2)
    reopen = _write(STATUS, "resolved", "active", 2)
    classify = _write(CLASSIFICATION, NONE, TP, 3)
    clear = _write(CLASSIFICATION, TP, NONE, 3)
    tags = merge_tags([intent(TAGS, None, {"add": ["bec"], "remove": []}, id_=4)], [])
    kept = merge_field(CLASSIFICATION, [intent(CLASSIFICATION, FP, TP, id_=3)], TP, None, "manual")
    assert write_units([owner, close, tags, classify]) == [(owner,), (close, classify), (tags,)]
    assert write_units([classify, owner, close]) == [(close, classify), (owner,)]
    assert write_units([reopen, clear, owner]) == [(reopen, clear), (owner,)]
    assert write_units([reopen, classify]) == [(reopen,), (classify,)]
    # A close whose classification Defender already has: nothing to tie it to.
    assert kept.action == "already"
    assert write_units([close, kept, owner]) == [(close,), (owner,)]
    assert write_units([classify, owner]) == [(classify,), (owner,)]
    # Edits read back from Sentinel may close unclassified: not tied.
    assert write_units([close, classify], {2: "sentinel:soc", 3: "sentinel:soc"}) == [
        (close,),
        (classify,),
    ]
    assert write_units([close, classify], {2: "cli", 3: "sentinel:soc"}) == [(close, classify)]


# -- theirs_since ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "theirs", "history", "expected"),
    [
        (STATUS, "resolved", [(1, "active"), (2, "resolved"), (3, "resolved")], 2),
        # the newest unbroken run, not an older one with the same value
        (STATUS, "resolved", [(1, "resolved"), (2, "active"), (3, "resolved")], 3),
        (STATUS, "resolved", [(1, "resolved"), (2, "resolved")], 1),
        # case does not break a run
        (STATUS, "inProgress", [(1, "active"), (2, "InProgress"), (3, "inProgress")], 2),
        (OWNER, None, [(1, "bob@contoso.com"), (2, None), (3, "")], 2),
        (
            CLASSIFICATION,
            pair("truePositive", "malware"),
            [
                (1, pair("truePositive", "phishing")),
                (2, pair("truePositive", "malware")),
                (3, pair("truePositive", "malware")),
            ],
            2,
        ),
        (TAGS, ["a", "b"], [(1, ["a"]), (2, ["b", "a"]), (3, ["a", "b"])], 2),
        # the hub never saw Defender's value: the record's last update
        (STATUS, "resolved", [(1, "active"), (2, "active")], 50),
        (STATUS, "resolved", [(1, "resolved"), (2, "active")], 50),
        (STATUS, "resolved", [], 50),
    ],
)
def test_theirs_since_is_the_start_of_the_newest_run(
    name: str, theirs: Any, history: list[tuple[int, Any]], expected: int
) -> None:
    got = theirs_since(name, theirs, [(at(t), v) for t, v in history], at(50))
    assert got == at(expected)


def test_theirs_since_without_history_or_fallback_is_unknown() -> None:
    assert theirs_since(STATUS, "active", [], None) is None
    assert theirs_since(STATUS, "active", [(at(1), "resolved")], None) is None


# -- same -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "a", "b", "expected"),
    [
        (STATUS, "inProgress", "INPROGRESS", True),
        (STATUS, "active", "resolved", False),
        (STATUS, None, "", True),
        (OWNER, "Alice@Contoso.com", "alice@contoso.com", True),
        (OWNER, "alice@contoso.com", None, False),
        (OWNER, None, None, True),
        (CLASSIFICATION, pair("truePositive", "malware"), pair("truePositive", "malware"), True),
        (CLASSIFICATION, pair("truePositive", "malware"), pair("truePositive", "other"), False),
        (CLASSIFICATION, pair("truePositive", "other"), pair("falsePositive", "other"), False),
        (
            CLASSIFICATION,
            {"classification": None, "determination": None},
            pair("unknown", "unknown"),
            True,
        ),
        # Graph's answers spell members in PascalCase too, and under the older documented
        # names (microsoft-apis.md §2.3): the same member is the same value.
        (STATUS, "Active", "active", True),
        (STATUS, "InProgress", "inProgress", True),
        (STATUS, "New", "new", True),
        (STATUS, "Active", "inProgress", False),
        (STATUS, "Resolved", "redirected", False),
        (STATUS, "sleeping", "Sleeping", True),
        (
            CLASSIFICATION,
            pair("TruePositive", "MultiStagedAttack"),
            pair("truePositive", "multiStagedAttack"),
            True,
        ),
        (
            CLASSIFICATION,
            pair("FalsePositive", "Clean"),
            pair("falsePositive", "notMalicious"),
            True,
        ),
        (
            CLASSIFICATION,
            pair("truePositive", "compromisedUser"),
            pair("truePositive", "compromisedAccount"),
            True,
        ),
        (
            CLASSIFICATION,
            pair("falsePositive", "InsufficientData"),
            pair("falsePositive", "notEnoughDataToValidate"),
            True,
        ),
        (
            CLASSIFICATION,
            pair("informationalExpectedActivity", "confirmedUserActivity"),
            pair("informationalExpectedActivity", "confirmedActivity"),
            True,
        ),
        (CLASSIFICATION, pair("TruePositive", "Malware"), pair("truePositive", "phishing"), False),
        (
            CLASSIFICATION,
            pair("FalsePositive", "Clean"),
            pair("falsePositive", "notEnoughDataToValidate"),
            False,
        ),
        (CLASSIFICATION, pair("FalsePositive", "Other"), pair("truePositive", "other"), False),
        (CLASSIFICATION, pair("Unknown", "Unknown"), None, False),
        (TAGS, ["a", "b"], ["b", "a"], True),
        (TAGS, ["a", "a"], ["a"], True),
        (TAGS, None, [], True),
        (TAGS, ["a"], ["a", "b"], False),
        (TAGS, ["A"], ["a"], False),
        ("comment", "x", "x", True),
        ("comment", "x", "X", False),
    ],
)
def test_same_is_what_defender_would_call_the_same(
    name: str, a: Any, b: Any, expected: bool
) -> None:
    assert same(name, a, b) is expected
    assert same(name, b, a) is expected


# -- theirs_of and patch_body (what the pusher reads and sends) ------------------------------


def test_theirs_of_reads_a_graph_record_in_the_outboxs_form() -> None:
    record = {
        "status": "active",
        "assignedTo": None,
        "classification": "truePositive",
        "customTags": ["a"],
    }
    assert theirs_of(record, STATUS) == "active"
    assert theirs_of(record, OWNER) is None
    assert theirs_of(record, CLASSIFICATION) == pair("truePositive", "unknown")
    assert theirs_of({}, CLASSIFICATION) == pair("unknown", "unknown")
    assert theirs_of({}, TAGS) == []
    tags = theirs_of(record, TAGS)
    tags.append("b")
    assert record["customTags"] == ["a"]  # a copy: merging never edits the record read


def test_patch_body_sends_only_the_fields_to_write() -> None:
    def plan(name: str, action: Action, value: Any) -> FieldPlan:
        return FieldPlan(name, action, value, (1,), None, value, "")

    body = patch_body(
        [
            plan(STATUS, "write", "resolved"),
            plan(OWNER, "write", None),  # unassign: an explicit null
            plan(CLASSIFICATION, "write", pair("truePositive", "malware")),
            plan(TAGS, "already", None),
        ]
    )
    assert body == {
        "status": "resolved",
        "assignedTo": None,
        "classification": "truePositive",
        "determination": "malware",
    }
    assert patch_body([plan(STATUS, "defender_won", None), plan(OWNER, "conflict", None)]) == {}
    assert patch_body([plan(TAGS, "write", ["a"])]) == {"customTags": ["a"]}


# == Properties: whole histories of edits on both sides ======================================

TENANT = "tenant-1"
INCIDENT = "42"
SCALARS = (STATUS, OWNER, CLASSIFICATION)
ALL_FIELDS = (*SCALARS, TAGS)
TAG_POOL = ("t1", "t2", "t3", "t4")
PAIRS = (
    ("truePositive", "malware"),
    ("truePositive", "phishing"),
    ("falsePositive", "notMalicious"),
    ("informationalExpectedActivity", "other"),
    ("unknown", "unknown"),
)
OWNERS = ("alice@contoso.com", "bob@contoso.com")


def field_value(record: Mapping[str, Any], name: str) -> Any:
    return theirs_of(record, name)


@dataclass
class FakeDefender:
    """Defender's truth for one incident: the record, its version, and the version in which
    each field last changed (what a perfect observer would know). Versions are ticks (100 ns),
    as Graph's ``lastUpdateDateTime``: two of them can fall within one microsecond."""

    record: dict[str, Any]
    ticks: int
    changed_in: dict[str, int] = field(default_factory=dict)
    patches: int = 0
    #: Classifications Graph answers 400 to, refusing the whole PATCH that sets one, as it
    #: may a pair outside its table (the emulator's ``refused_pair_rate``); the portal's
    #: edits are not refused.
    refused: frozenset[str] = frozenset()

    def refuses(self, body: Mapping[str, Any]) -> bool:
        return "classification" in body and body["classification"] in self.refused

    @classmethod
    def new(cls, tags: Sequence[str]) -> FakeDefender:
        ticks = ticks_from_datetime(T0)
        record = {
            "id": INCIDENT,
            "status": "active",
            "assignedTo": None,
            "classification": "unknown",
            "determination": "unknown",
            "customTags": list(tags),
            "lastUpdateDateTime": version_text(ticks),
        }
        return cls(record, ticks, dict.fromkeys(ALL_FIELDS, ticks))

    @property
    def updated(self) -> datetime:
        return datetime_from_ticks(self.ticks)

    def apply(self, changes: Mapping[str, Any], now: datetime) -> None:
        """A PATCH (from the portal or from us): a new version, later than the last."""
        before = {name: field_value(self.record, name) for name in ALL_FIELDS}
        self.record.update(copy.deepcopy(dict(changes)))
        self.ticks = max(self.ticks + 1, ticks_from_datetime(now))
        self.record["lastUpdateDateTime"] = version_text(self.ticks)
        for name in ALL_FIELDS:
            if not same(name, before[name], field_value(self.record, name)):
                self.changed_in[name] = self.ticks


@dataclass
class Workspace:
    """The hub's side: Defender's record as last read, the versions read (history), and the
    outbox."""

    record: dict[str, Any]
    history: list[tuple[datetime, dict[str, Any]]]
    outbox: list[OutboxRow] = field(default_factory=list)

    def read(self, defender: FakeDefender) -> None:
        """The inbound sync: a version not seen before is kept and becomes the record."""
        if self.record["lastUpdateDateTime"] == defender.record["lastUpdateDateTime"]:
            return
        self.record = copy.deepcopy(defender.record)
        self.history.append((defender.updated, copy.deepcopy(defender.record)))

    def view(self) -> dict[str, Any]:
        return view(self.record, self.outbox)

    def edit(self, request: EditRequest, now: datetime) -> list[OutboxRow]:
        try:
            planned = plan_edits(
                "incident", TENANT, INCIDENT, self.view(), request, author="ana", origin="cli"
            )
        except EditRefusedError:
            return []
        rows = []
        for new in planned:
            row = OutboxRow(
                id=len(self.outbox) + 1,
                tenant_id=new.tenant_id,
                entity_type=new.entity_type,
                entity_id=new.entity_id,
                field=new.field,
                seen=copy.deepcopy(new.seen),
                wanted=copy.deepcopy(new.wanted),
                author=new.author,
                origin=new.origin,
                created_at=now,
                state="pending",
                attempts=0,
                next_attempt_at=None,
                sent_at=None,
                done_at=None,
                outcome=None,
                written_version=None,
                comment_key=None,
            )
            self.outbox.append(row)
            rows.append(row)
        return rows

    def replace(self, row_id: int, **changes: Any) -> None:
        index = row_id - 1
        self.outbox[index] = dataclasses.replace(self.outbox[index], **changes)

    def pending(self) -> list[OutboxRow]:
        return [r for r in self.outbox if r.state == "pending"]

    def conflicted(self) -> set[str]:
        return {r.field for r in self.outbox if r.state == "conflict"}


_SETTLED: dict[str, OutboxState] = {
    "write": "confirmed",
    "already": "confirmed",
    "defender_won": "overridden",
    "conflict": "conflict",
    "refused": "failed",
}


def plan_push(
    workspace: Workspace, record: Mapping[str, Any], policies: Mapping[str, Policy]
) -> list[FieldPlan]:
    """The pusher's merge step (Pusher._write_fields): one plan per field with due edits."""
    by_field: dict[str, list[OutboxRow]] = {}
    for row in workspace.pending():
        by_field.setdefault(row.field, []).append(row)
    updated = _record_time(record)
    plans = []
    for name, group in by_field.items():
        intents = [Intent(r.id, r.field, r.seen, r.wanted, r.created_at, r.author) for r in group]
        theirs = theirs_of(record, name)
        if name == TAGS:
            plans.append(merge_tags(intents, theirs))
            continue
        since = theirs_since(
            name,
            theirs,
            [(version, theirs_of(payload, name)) for version, payload in workspace.history],
            updated,
        )
        plans.append(merge_field(name, intents, theirs, since, policies[name]))
    return plans


def settle_push(plans: list[FieldPlan], record: Mapping[str, Any]) -> list[FieldPlan]:
    """The incident's plans with the close's classification settled, as the pusher does."""
    return close_classified(plans, record["status"], theirs_of(record, CLASSIFICATION))


def _record_time(record: Mapping[str, Any]) -> datetime:
    ticks = ticks_from_text(str(record["lastUpdateDateTime"]))
    assert ticks is not None
    return datetime_from_ticks(ticks)


@dataclass
class PushOutcome:
    due: list[OutboxRow]
    record_before: dict[str, Any]
    changed_before: dict[str, int]  # the version in which Defender last changed each field
    plans: list[FieldPlan]
    body: dict[str, Any]
    merged: list[FieldPlan] = field(default_factory=list)  # per field, before close_classified
    refused: set[str] = field(default_factory=set)  # fields Graph refused with 400
    applied: dict[str, Any] = field(default_factory=dict)  # what Graph took of the body


def push(
    workspace: Workspace,
    defender: FakeDefender,
    policies: Mapping[str, Policy],
    now: datetime,
) -> PushOutcome:
    """One pass of the pusher over the incident: read, merge, one PATCH, settle. A PATCH
    Graph refuses with 400 is sent again in halves, down to the unit it refuses, which
    fails whole (``Pusher._patch`` over ``merge.write_units``)."""
    due = workspace.pending()
    record = copy.deepcopy(defender.record)
    changed = dict(defender.changed_in)
    if not due:
        return PushOutcome(due, record, changed, [], {})
    merged = plan_push(workspace, record, policies)
    plans = settle_push(merged, record)
    body = patch_body(plans)
    version: int | None = None
    refused: set[str] = set()
    applied: dict[str, Any] = {}

    def send(units: Sequence[tuple[FieldPlan, ...]]) -> None:
        nonlocal version
        part = patch_body([plan for unit in units for plan in unit])
        defender.patches += 1
        if not defender.refuses(part):
            defender.apply(part, now)
            applied.update(part)
            version = defender.ticks
        elif len(units) > 1:
            send(units[: len(units) // 2])
            send(units[len(units) // 2 :])
        else:
            refused.update(plan.field for plan in units[0])

    if body:
        send(write_units(plans))
    plans = [
        dataclasses.replace(p, action="refused", value=None) if p.field in refused else p
        for p in plans
    ]
    for plan in plans:
        for row_id in plan.intents:
            state = _SETTLED[plan.action]
            workspace.replace(
                row_id,
                state=state,
                written_version=version if plan.action == "write" else None,
                theirs=plan.theirs if plan.action == "conflict" else None,
            )
    return PushOutcome(due, record, changed, plans, body, merged, refused, applied)


def resolve(workspace: Workspace, take: Side) -> int | None:
    """`xdrsync conflicts resolve` on the oldest conflict (submit.resolve): Defender's value
    kept, or the edit pending again over the value Defender had at the conflict."""
    for row in workspace.outbox:
        if row.state == "conflict":
            if take == "defender":
                workspace.replace(row.id, state="overridden")
            else:
                workspace.replace(row.id, state="pending", seen=row.theirs)
            return row.id
    return None


def apply_tag_ops(tags: list[str], ops: Sequence[tuple[str, str]]) -> set[str]:
    result = set(tags)
    for op, tag in ops:
        if op == "add":
            result.add(tag)
        else:
            result.discard(tag)
    return result


# -- strategies -----------------------------------------------------------------------------

statuses = st.sampled_from(("active", "inProgress", "resolved", "New", "Closed"))
requests = st.one_of(
    st.builds(
        EditRequest,
        status=statuses,
        classification=st.sampled_from((None, "truePositive", "falsePositive")),
    ),
    st.builds(EditRequest, owner=st.sampled_from((*OWNERS, ""))),
    st.sampled_from(PAIRS).map(lambda p: EditRequest(classification=p[0], determination=p[1])),
    st.builds(
        EditRequest,
        add_tags=st.lists(st.sampled_from(TAG_POOL), max_size=2).map(tuple),
        remove_tags=st.lists(st.sampled_from(TAG_POOL), max_size=2).map(tuple),
    ),
    # anything at all, refusals included (a refused request queues nothing)
    st.builds(
        EditRequest,
        status=st.none() | statuses,
        owner=st.none() | st.sampled_from((*OWNERS, "")),
        classification=st.none() | st.sampled_from([c for c, _ in PAIRS]),
        determination=st.none() | st.sampled_from([d for _, d in PAIRS]),
        add_tags=st.lists(st.sampled_from(TAG_POOL), max_size=2).map(tuple),
        remove_tags=st.lists(st.sampled_from(TAG_POOL), max_size=2).map(tuple),
    ),
)
defender_changes = st.one_of(
    st.tuples(st.just(STATUS), st.sampled_from(("active", "inProgress", "resolved"))),
    st.tuples(
        st.just(OWNER),
        st.sampled_from((None, *OWNERS, "Alice@Contoso.com", "carol@contoso.com")),
    ),
    st.tuples(st.just(CLASSIFICATION), st.sampled_from(PAIRS)),
    st.tuples(st.sampled_from(("add", "remove")), st.sampled_from(TAG_POOL)),
)
event = st.tuples(
    st.sampled_from((0, 0, 1, 2)),  # seconds before the event: ties happen
    st.one_of(
        st.tuples(st.just("workspace"), requests),
        st.tuples(st.just("defender"), defender_changes),
        st.tuples(st.just("read"), st.none()),
        st.tuples(st.just("resolve"), st.sampled_from(("workspace", "defender"))),
    ),
)
#: Rounds of edits on both sides (and inbound reads) in any order, each ended by a push, a
#: cycle (push then read), or nothing (the pusher is down: the edits pile up).
steps = st.lists(
    st.tuples(
        st.lists(event, min_size=1, max_size=6),
        st.sampled_from(("push", "cycle", "none")),
    ),
    min_size=1,
    max_size=8,
).map(
    lambda rounds: [
        e for events, end in rounds for e in [*events, (1, (end, None))] if e[1][0] != "none"
    ]
)
policy_sets = st.fixed_dictionaries({name: st.sampled_from(POLICIES) for name in SCALARS})


def defender_patch(change: tuple[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    name, value = change
    if name == CLASSIFICATION:
        return {"classification": value[0], "determination": value[1]}
    if name in ("add", "remove"):
        tags = [t for t in record["customTags"] if t != value]
        return {"customTags": [*tags, value] if name == "add" else tags}
    return {name: value}


@dataclass
class Run:
    """One simulated history and everything the properties look at."""

    defender: FakeDefender
    workspace: Workspace
    policies: dict[str, Policy]
    decisions: dict[int, list[str]] = field(default_factory=dict)
    tag_ops: list[tuple[str, str]] = field(default_factory=list)
    initial_tags: list[str] = field(default_factory=list)
    now: datetime = T0

    def do_push(self) -> PushOutcome:
        outcome = push(self.workspace, self.defender, self.policies, self.now)
        decided = [i for plan in outcome.plans for i in plan.intents]
        # (a) every due edit is decided, once, in the pass that took it
        assert sorted(decided) == sorted(r.id for r in outcome.due)
        for plan in outcome.plans:
            for i in plan.intents:
                self.decisions.setdefault(i, []).append(plan.action)
        check_policy(outcome, self.defender, self.policies, self.workspace.history)
        check_closed_classified(outcome, self.defender)
        check_retry_writes_nothing(self.workspace, outcome, self.defender, self.policies)
        # workspace tag edits take effect in Defender when they are pushed
        for plan in outcome.plans:
            if plan.field == TAGS:
                for i in plan.intents:
                    wanted = self.workspace.outbox[i - 1].wanted
                    self.tag_ops.extend(("remove", t) for t in wanted["remove"])
                    self.tag_ops.extend(("add", t) for t in wanted["add"])
        return outcome


def read_the_change(
    name: str, history: Sequence[tuple[datetime, Mapping[str, Any]]], changed_in: int
) -> bool:
    """Whether the hub read both the version in which Defender last changed ``name`` and the
    one before it, so that it knows when that change happened. Versions are told apart by
    their ticks: the times the history keeps (microseconds) can be one for two versions."""
    versions = [ticks_from_text(str(payload["lastUpdateDateTime"])) for _, payload in history]
    if changed_in not in versions:
        return False
    i = versions.index(changed_in)
    return i > 0 and not same(
        name, theirs_of(history[i - 1][1], name), theirs_of(history[i][1], name)
    )


def check_policy(
    outcome: PushOutcome,
    defender: FakeDefender,
    policies: Mapping[str, Policy],
    history: Sequence[tuple[datetime, Mapping[str, Any]]],
) -> None:
    """(d) the field's policy decided each conflict, and Defender holds the winner; but where
    a close's classification overrode the field's merge (``close_classified``): a close held
    back or a clearing refused leaves Defender's value, and a classification that lost to the
    policy goes with a close only when Defender has none."""
    rows = {r.id: r for r in outcome.due}
    merged = {p.field: p for p in outcome.merged}
    for plan in outcome.plans:
        if plan.field == TAGS:
            continue
        first, last = rows[plan.intents[0]], rows[plan.intents[-1]]
        before = theirs_of(outcome.record_before, plan.field)
        now = theirs_of(defender.record, plan.field)
        if plan.field in outcome.refused:  # Graph refused it: Defender's value stands
            assert same(plan.field, now, before), plan
            continue
        if plan.action != merged[plan.field].action:
            was = merged[plan.field].action
            if plan.action == "write":
                assert (plan.field, was) == (CLASSIFICATION, "defender_won"), plan
                assert before["classification"] == "unknown"
                assert outcome.body.get("status") == "resolved"
                assert same(plan.field, now, last.wanted)
            else:
                assert (was, plan.action) in (("write", "conflict"), ("write", "refused")), plan
                assert same(plan.field, now, before), plan
            continue
        changed = not same(plan.field, before, first.seen) and not same(
            plan.field, before, last.wanted
        )
        policy = policies[plan.field]
        if not changed or policy == "workspace_wins":
            # nothing concurrent, or the workspace wins: its last wanted value is in Defender
            assert same(plan.field, now, last.wanted), (plan, now)
        elif policy == "defender_wins":
            assert plan.action == "defender_won"
            assert same(plan.field, now, before)
        elif policy == "manual":
            assert plan.action == "conflict"
            assert same(plan.field, now, before)
        else:  # latest_wins
            assert plan.action in ("write", "defender_won")
            if last.created_at >= _record_time(outcome.record_before):
                # the edit is later than anything Defender did: the workspace wins
                assert plan.action == "write"
            changed_in = outcome.changed_before[plan.field]
            if read_the_change(plan.field, history, changed_in):
                changed_at = datetime_from_ticks(changed_in)
                # the hub saw when Defender made its change: the later side wins, the
                # workspace a tie
                later = "write" if last.created_at >= changed_at else "defender_won"
                assert plan.action == later, (plan, last.created_at, changed_at)
            expected = last.wanted if plan.action == "write" else before
            assert same(plan.field, now, expected)


def check_closed_classified(outcome: PushOutcome, defender: FakeDefender) -> None:
    """(f) a push that writes the status or the classification never leaves the incident
    closed without a classification (Defender may close one unclassified on its own, and
    a push whose writes of them Graph refused changed neither)."""
    if {"status", "classification", "determination"} & outcome.applied.keys():
        record = defender.record
        closed = str(record["status"]).lower() == "resolved"
        assert not closed or record["classification"] != "unknown", (outcome.plans, record)


def check_retry_writes_nothing(
    workspace: Workspace,
    outcome: PushOutcome,
    defender: FakeDefender,
    policies: Mapping[str, Policy],
) -> None:
    """(e) a pass that died after its PATCH and before it recorded the outcome is run again
    over the same edits: Defender has them now, so nothing is written twice."""
    if not outcome.body:
        return
    replay = Workspace(workspace.record, workspace.history, list(outcome.due))
    again = settle_push(plan_push(replay, defender.record, policies), defender.record)
    written = {p.field for p in outcome.plans if p.action == "write"}
    assert all(p.action == "already" for p in again if p.field in written), again
    assert patch_body([p for p in again if p.field in written]) == {}


def check_converged(run: Run) -> None:
    """(b) with nothing pending and Defender read again, the workspace shows Defender's values
    for every field without a conflict waiting for a decision."""
    shown = run.workspace.view()
    for name in ALL_FIELDS:
        if name in run.workspace.conflicted():
            continue
        assert same(name, theirs_of(shown, name), theirs_of(run.defender.record, name)), name


def simulate(
    policies: dict[str, Policy],
    tags: list[str],
    history: Any,
    refused: frozenset[str] = frozenset(),
) -> Run:
    defender = FakeDefender.new(tags)
    defender.refused = refused
    workspace = Workspace({"lastUpdateDateTime": None}, [])
    workspace.read(defender)
    run = Run(defender, workspace, policies, initial_tags=list(tags))
    for seconds, (kind, arg) in history:
        run.now += timedelta(seconds=seconds)
        if kind == "workspace":
            workspace.edit(arg, run.now)
        elif kind == "defender":
            patch = defender_patch(arg, defender.record)
            defender.apply(patch, run.now)
            if arg[0] in ("add", "remove"):
                run.tag_ops.append((arg[0], arg[1]))
        elif kind == "push":
            run.do_push()
        elif kind == "cycle":
            run.do_push()
            workspace.read(defender)
            if not workspace.pending():
                check_converged(run)
        elif kind == "read":
            workspace.read(defender)
            if not workspace.pending():
                check_converged(run)
        else:
            resolved = resolve(workspace, arg)
            if resolved is not None:
                run.decisions.setdefault(resolved, []).append(f"resolved:{arg}")
    # then one full cycle: push, read
    run.now += timedelta(seconds=1)
    run.do_push()
    workspace.read(defender)
    return run


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policies=policy_sets,
    tags=st.lists(st.sampled_from(TAG_POOL), unique=True),
    history=steps,
    refused=st.frozensets(st.sampled_from([c for c, _ in PAIRS]), max_size=2),
)
def test_both_sides_converge_and_no_edit_is_lost(
    policies: dict[str, Policy],
    tags: list[str],
    history: Any,
    refused: frozenset[str],
) -> None:
    """Any policy per field, any interleaving of workspace edits (through ``plan_edits`` on
    the workspace's view), Defender-side edits, inbound reads, pushes and manual resolutions,
    with Graph refusing (400) any PATCH that sets some classifications; then one push and one
    read.
    Checked along the way: every push decides each due edit once and Defender ends with the
    winner of the field's policy (or keeps its value, for a field Graph refused); no push
    leaves the incident closed unclassified, also when Graph refuses the classification of
    a close; a push that died before recording its outcome writes nothing when run again;
    after any read with nothing pending the workspace shows Defender's values (except a field
    with a conflict waiting)."""
    run = simulate(policies, tags, history, refused)
    outbox = run.workspace.outbox

    # (a) every edit has a decision, and the last one is where it stands; an edit is decided
    # again only after a conflict resolved by hand for the workspace
    for row in outbox:
        assert row.state != "pending", row
        decisions = run.decisions.get(row.id)
        assert decisions, row
        last = decisions[-1]
        assert row.state == ("overridden" if last == "resolved:defender" else _SETTLED[last])
        for before, after in itertools.pairwise(decisions):
            assert before == "conflict" or before.startswith("resolved:"), decisions
            assert after.startswith("resolved:") == (before == "conflict"), decisions

    # (b) one push and one read after the last edit: the workspace shows Defender's values
    check_converged(run)

    # (c) tags: what either side added and nobody removed afterwards is there, and what was
    # removed after its last add is not
    assert set(run.defender.record["customTags"]) == apply_tag_ops(run.initial_tags, run.tag_ops)
    assert len(run.defender.record["customTags"]) == len(set(run.defender.record["customTags"]))

    # (e) idle cycles write nothing: no ping-pong
    version, patches = run.defender.ticks, run.defender.patches
    for _ in range(3):
        run.now += timedelta(seconds=1)
        assert run.do_push().body == {}
        run.workspace.read(run.defender)
        check_converged(run)
    assert (run.defender.ticks, run.defender.patches) == (version, patches)


ONE_FIELD_VALUES: dict[str, tuple[Any, ...]] = {
    STATUS: ("inProgress", "resolved", "active"),
    OWNER: (*OWNERS, "carol@contoso.com", None),
    CLASSIFICATION: PAIRS[:4],
}


def one_field_request(name: str, value: Any) -> EditRequest:
    if name == STATUS:
        return EditRequest(status=str(value), classification="truePositive")
    if name == OWNER:
        return EditRequest(owner=value or "")
    return EditRequest(classification=value[0], determination=value[1])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=st.sampled_from(POLICIES),
    name=st.sampled_from(SCALARS),
    data=st.data(),
)
def test_a_concurrent_edit_of_one_field_ends_as_the_policy_says(
    policy: Policy, name: str, data: st.DataObject
) -> None:
    """(d) one field edited on both sides, with inbound reads anywhere, then one push: with
    workspace_wins the workspace's last value ends in Defender, with defender_wins and manual
    Defender's value stays, with latest_wins the later side wins as far as the hub can tell
    (``check_policy``); after a read the workspace shows Defender's value, or, for a conflict
    waiting for a decision, the value the user asked for."""
    policies: dict[str, Policy] = dict.fromkeys(SCALARS, "latest_wins")
    policies[name] = policy
    defender = FakeDefender.new([])
    workspace = Workspace({"lastUpdateDateTime": None}, [])
    workspace.read(defender)
    run = Run(defender, workspace, policies)
    values = ONE_FIELD_VALUES[name]
    sides = data.draw(
        st.lists(st.sampled_from(("workspace", "defender", "read")), min_size=2, max_size=8)
    )
    for side in sides:
        run.now += timedelta(seconds=data.draw(st.sampled_from((0, 1, 2))))
        value = data.draw(st.sampled_from(values))
        if side == "workspace":
            workspace.edit(one_field_request(name, value), run.now)
        elif side == "defender":
            defender.apply(defender_patch((name, value), defender.record), run.now)
        else:
            workspace.read(defender)
    run.now += timedelta(seconds=data.draw(st.sampled_from((0, 1))))
    mine = [r for r in workspace.pending() if r.field == name]
    run.do_push()  # check_policy: Defender holds the winner
    workspace.read(defender)
    assert not workspace.pending()
    check_converged(run)
    if name in workspace.conflicted():
        assert policy == "manual"
        assert same(name, theirs_of(workspace.view(), name), mine[-1].wanted)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(SCALARS),
    edit_at=st.integers(0, 4),
    defender_at=st.integers(0, 4),
    other_at=st.none() | st.integers(0, 6),
    read_the_change=st.booleans(),
    data=st.data(),
)
def test_latest_wins_lets_the_later_side_win_as_far_as_the_hub_can_tell(
    name: str,
    edit_at: int,
    defender_at: int,
    other_at: int | None,
    read_the_change: bool,
    data: st.DataObject,
) -> None:
    """An edit made from the workspace's view, and a change of the same field in the Defender
    portal, in either order (or at the same second). When the hub read Defender's change, the
    later side wins and the workspace wins a tie; when it did not, the hub only knows the
    record's last update, so the workspace wins only if it is later than that."""
    policies: dict[str, Policy] = dict.fromkeys(SCALARS, "latest_wins")
    defender = FakeDefender.new([])
    workspace = Workspace({"lastUpdateDateTime": None}, [])
    workspace.read(defender)
    start = theirs_of(defender.record, name)
    wanted, theirs = data.draw(
        st.lists(
            st.sampled_from(ONE_FIELD_VALUES[name]).filter(
                lambda v: not same(name, theirs_of(defender_patch((name, v), {}), name), start)
            ),
            min_size=2,
            max_size=2,
            unique=True,
        )
    )
    other = {STATUS: OWNER, OWNER: CLASSIFICATION, CLASSIFICATION: STATUS}[name]
    events: list[tuple[int, int, str]] = [(edit_at, 0, "edit"), (defender_at, 1, "defender")]
    if other_at is not None:
        events.append((other_at, 2, "other"))
    for second, _, what in sorted(events):
        now = at(second)
        if what == "edit":
            rows = workspace.edit(one_field_request(name, wanted), now)
            assert [r.field for r in rows if r.field == name] == [name]
        elif what == "defender":
            defender.apply(defender_patch((name, theirs), defender.record), now)
            if read_the_change:  # the inbound sync reads that version
                workspace.read(defender)
        else:
            defender.apply(defender_patch((other, ONE_FIELD_VALUES[other][1]), {}), now)
    # when Defender's value was set, as far as the hub can tell: the version it read, or
    # else the record's last update
    known = defender_at if read_the_change else max(s for s, _, w in events if w != "edit")
    push(workspace, defender, policies, at(10))
    winner = wanted if edit_at >= known else theirs
    expected = theirs_of(defender_patch((name, winner), {}), name)
    assert same(name, theirs_of(defender.record, name), expected)


tag_events = st.one_of(
    st.tuples(st.just("workspace"), st.sampled_from(("add", "remove")), st.sampled_from(TAG_POOL)),
    st.tuples(st.just("defender"), st.sampled_from(("add", "remove")), st.sampled_from(TAG_POOL)),
    st.tuples(st.sampled_from(("read", "push", "cycle")), st.just(""), st.just("")),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tags=st.lists(st.sampled_from(TAG_POOL), unique=True),
    history=st.lists(tag_events, min_size=1, max_size=20),
)
def test_tags_from_both_sides_survive(tags: list[str], history: Any) -> None:
    """(c) Graph replaces customTags as a whole, yet a tag added on either side and not removed
    afterwards is there, and a tag removed after its last add is not; a workspace edit takes
    effect in Defender when it is pushed. No tag appears twice."""
    defender = FakeDefender.new(tags)
    workspace = Workspace({"lastUpdateDateTime": None}, [])
    workspace.read(defender)
    run = Run(defender, workspace, dict.fromkeys(SCALARS, "latest_wins"), initial_tags=tags)
    for kind, op, tag in [*history, ("cycle", "", "")]:
        run.now += timedelta(seconds=1)
        if kind == "workspace":
            request = (
                EditRequest(add_tags=(tag,)) if op == "add" else EditRequest(remove_tags=(tag,))
            )
            workspace.edit(request, run.now)
        elif kind == "defender":
            defender.apply(defender_patch((op, tag), defender.record), run.now)
            run.tag_ops.append((op, tag))
        if kind in ("push", "cycle"):
            run.do_push()
        if kind in ("read", "cycle"):
            workspace.read(defender)
        now_tags = defender.record["customTags"]
        assert set(now_tags) == apply_tag_ops(run.initial_tags, run.tag_ops)
        assert len(now_tags) == len(set(now_tags))
    check_converged(run)
    assert set(workspace.view()["customTags"]) == set(defender.record["customTags"])
