"""From "the user wants this" to outbox rows (twoway.edits): the refusals `update` answers
with, the rows it queues, and the record as the workspace shows it while edits are on their
way (``view``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xdrsync.config import ConflictPolicies
from xdrsync.errors import EditRefusedError, FatalSyncError, RetriableError
from xdrsync.hub import Hub, InboundBatch
from xdrsync.hub.payload import ticks_from_datetime, ticks_from_text, version_text
from xdrsync.hub.records import EntityType, NewEdit, OutboxRow, OutboxState
from xdrsync.models import Incident
from xdrsync.twoway.edits import READ_ONLY_FIELDS, EditRequest, check_request, plan_edits, view
from xdrsync.twoway.fields import OWNER, TAGS
from xdrsync.twoway.merge import in_order_made
from xdrsync.twoway.pusher import Pusher, PushTarget

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
VERSION = "2024-05-01T10:00:00.5000000Z"
_TICKS = ticks_from_text(VERSION)
assert _TICKS is not None
TICKS: int = _TICKS


def incident(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "42",
        "status": "active",
        "assignedTo": None,
        "classification": "unknown",
        "determination": "unknown",
        "customTags": ["keep", "drop"],
        "lastUpdateDateTime": VERSION,
    }
    record.update(fields)
    return record


def alert(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "da1",
        "status": "new",
        "assignedTo": None,
        "classification": None,
        "determination": None,
        "lastUpdateDateTime": VERSION,
    }
    record.update(fields)
    return record


def row(
    field: str,
    wanted: Any,
    state: OutboxState = "pending",
    *,
    seen: Any = None,
    written_version: int | None = None,
    id_: int = 1,
    created_at: datetime = T0,
) -> OutboxRow:
    return OutboxRow(
        id=id_,
        tenant_id="t1",
        entity_type="incident",
        entity_id="42",
        field=field,
        seen=seen,
        wanted=wanted,
        author="ana@contoso.com",
        origin="cli",
        created_at=created_at,
        state=state,
        attempts=0,
        next_attempt_at=None,
        sent_at=None,
        done_at=None,
        outcome=None,
        written_version=written_version,
        comment_key=None,
    )


def plan(
    current: Mapping[str, Any], kind: EntityType = "incident", **request: Any
) -> list[NewEdit]:
    entity_id = str(current.get("id", "42"))
    return plan_edits(
        kind,
        "t1",
        entity_id,
        current,
        EditRequest(**request),
        author="ana@contoso.com",
        origin="cli",
    )


def refusal(current: Mapping[str, Any], kind: EntityType = "incident", **request: Any) -> str:
    with pytest.raises(EditRefusedError) as refused:
        plan(current, kind, **request)
    message = str(refused.value)
    assert "\n" not in message  # one clear line
    return message


def by_field(edits: list[NewEdit]) -> dict[str, NewEdit]:
    fields = [e.field for e in edits]
    assert len(fields) == len(set(fields)), fields  # one row per field
    return {e.field: e for e in edits}


# -- check_request --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "other", "what", "accepted"),
    [
        ("incident", {"severity": "high"}, "is read-only in Defender", "customTags"),
        ("incident", {"displayName": "x"}, "is read-only in Defender", "customTags"),
        ("incident", {"description": "x"}, "is read-only in Defender", "customTags"),
        ("incident", {"summary": "x"}, "is read-only in Defender", "customTags"),
        ("incident", {"colour": "red"}, "is not a field", "customTags"),
        ("alert", {"severity": "high"}, "is read-only in Defender", None),
        ("alert", {"title": "x"}, "is read-only in Defender", None),
        ("alert", {"customTags": ["x"]}, "is read-only in Defender", None),
        ("alert", {"colour": "red"}, "is not a field", None),
    ],
)
def test_a_field_defender_does_not_take_is_refused_naming_what_it_takes(
    kind: EntityType, other: dict[str, Any], what: str, accepted: str | None
) -> None:
    request = EditRequest(status="resolved", other=other)  # valid parts do not save it
    with pytest.raises(EditRefusedError) as refused:
        check_request(kind, request)
    message = str(refused.value)
    name = next(iter(other))
    assert message.startswith(f"{name} {what}")
    assert "status, assignedTo, classification" in message
    assert "comments" in message
    if accepted is not None:
        assert accepted in message
    else:
        assert "customTags" not in message.split(":", 1)[1]
    # plan_edits refuses the same way
    current = incident() if kind == "incident" else alert()
    with pytest.raises(EditRefusedError, match=what):
        plan(current, kind, status="resolved", other=other)


def test_several_unknown_fields_are_refused_by_the_first_name() -> None:
    with pytest.raises(EditRefusedError, match=r"^colour is not a field"):
        check_request("incident", EditRequest(other={"zone": 1, "colour": 2}))


def test_the_read_only_lists_are_not_writable_fields() -> None:
    assert "status" not in READ_ONLY_FIELDS["incident"]
    assert "customTags" in READ_ONLY_FIELDS["alert"]


@pytest.mark.parametrize(
    ("kind", "request_"),
    [
        ("incident", EditRequest(other={"severity": "high"})),
        ("alert", EditRequest(other={"severity": "high"})),
        ("alert", EditRequest(add_tags=("x",))),
    ],
)
def test_the_refusal_reads_as_english(kind: EntityType, request_: EditRequest) -> None:
    with pytest.raises(EditRefusedError) as refused:
        check_request(kind, request_)
    assert f"on an {kind}" in str(refused.value)


@pytest.mark.parametrize(
    "request_",
    [
        EditRequest(add_tags=("x",)),
        EditRequest(remove_tags=("x",)),
        EditRequest(status="resolved", add_tags=("x",)),
    ],
)
def test_tags_on_an_alert_are_refused(request_: EditRequest) -> None:
    with pytest.raises(EditRefusedError) as refused:
        check_request("alert", request_)
    message = str(refused.value)
    assert message.startswith("customTags is read-only on a")
    assert "alerts_v2 PATCH takes no tags" in message


def test_tags_on_an_incident_pass_the_check() -> None:
    check_request("incident", EditRequest(add_tags=("x",)))
    check_request("incident", EditRequest(remove_tags=("x",)))


@pytest.mark.parametrize("kind", ["incident", "alert"])
def test_an_empty_request_is_refused(kind: EntityType) -> None:
    with pytest.raises(EditRefusedError) as refused:
        check_request(kind, EditRequest())
    assert str(refused.value) == "nothing to change: name at least one field or a comment"


@pytest.mark.parametrize(
    "request_",
    [
        EditRequest(owner=""),  # unassigning is a change
        EditRequest(status="active"),
        EditRequest(classification="truePositive"),
        EditRequest(determination="malware"),
        EditRequest(comment="looked at it"),
    ],
)
def test_any_one_field_is_a_request(request_: EditRequest) -> None:
    check_request("incident", request_)
    if not request_.add_tags:
        check_request("alert", request_)


# -- plan_edits: refusals --------------------------------------------------------------------


@pytest.mark.parametrize("closed", ["resolved", "Resolved", "Closed", "closed"])
def test_closing_an_incident_needs_a_classification(closed: str) -> None:
    message = refusal(incident(), status=closed)
    assert message == (
        "closing an incident needs a classification (--classification), as in Sentinel"
    )
    # "unknown" is no classification
    assert refusal(incident(), status=closed, classification="unknown") == message


def test_closing_with_a_classification_in_the_same_edit_is_fine() -> None:
    edits = by_field(plan(incident(), status="Closed", classification="falsePositive"))
    assert edits["status"].wanted == "resolved"
    assert edits["classification"].wanted == {
        "classification": "falsePositive",
        "determination": "other",
    }


def test_closing_an_incident_that_is_already_classified_is_fine() -> None:
    current = incident(classification="truePositive", determination="malware")
    edits = by_field(plan(current, status="resolved"))
    assert set(edits) == {"status"}
    assert edits["status"].wanted == "resolved"


def test_a_closed_incident_cannot_lose_its_classification() -> None:
    """Clearing the classification of an incident that stays closed leaves it closed and
    unclassified, as closing it unclassified would: refused the same way."""
    closed = incident(status="resolved", classification="truePositive", determination="malware")
    message = refusal(closed, classification="unknown")
    assert message == (
        "a closed incident needs a classification: reopen it to clear its classification"
    )
    assert "closing an incident needs" in refusal(
        closed, status="resolved", classification="unknown"
    )


def test_reopening_and_clearing_the_classification_together_is_fine() -> None:
    closed = incident(status="resolved", classification="truePositive", determination="malware")
    edits = by_field(plan(closed, status="active", classification="unknown"))
    assert set(edits) == {"status", "classification"}


def test_a_closed_unclassified_incident_still_takes_other_edits() -> None:
    """Defender may show an incident closed and unclassified (closed there, or from
    Sentinel): what leaves its classification alone is not refused."""
    edits = by_field(
        plan(incident(status="resolved"), owner="ana@contoso.com", comment="seen", add_tags=["x"])
    )
    assert set(edits) == {"assignedTo", "customTags", "comment"}


def test_closing_with_only_a_determination_is_refused_by_the_pair() -> None:
    message = refusal(incident(), status="resolved", determination="malware")
    assert "does not go with classification 'unknown'" in message


def test_closing_an_alert_needs_no_classification() -> None:
    edits = by_field(plan(alert(), "alert", status="Closed"))
    assert edits["status"].wanted == "resolved"


@pytest.mark.parametrize("status", ["active", "New", "inProgress"])
@pytest.mark.parametrize("classification", ["truePositive", "unknown"])
def test_reopening_is_allowed(status: str, classification: str) -> None:
    current = incident(status="resolved", classification=classification, determination="other")
    edits = by_field(plan(current, status=status))
    assert edits["status"].seen == "resolved"
    assert edits["status"].wanted in ("active", "inProgress")


@pytest.mark.parametrize("status", ["redirected", "Redirected"])
def test_an_incident_defender_merged_away_is_refused_naming_the_survivor(status: str) -> None:
    current = incident(status=status, redirectIncidentId="77")
    for request in (
        {"status": "active"},
        {"owner": "alice@contoso.com"},
        {"add_tags": ("x",)},
        {"comment": "anyone?"},
    ):
        message = refusal(current, **request)
        assert message == "incident 42 was merged into 77 by Defender; edit that one"
    no_survivor = incident(status="redirected", redirectIncidentId=None)
    assert "merged into another incident" in refusal(no_survivor, comment="x")


def test_a_tag_both_added_and_removed_is_refused() -> None:
    message = refusal(incident(), add_tags=("new", "x"), remove_tags=(" x ",))
    assert message == "tag 'x' is both added and removed"


@pytest.mark.parametrize(
    ("request_", "starts"),
    [
        ({"status": "redirected"}, "status 'redirected' is not one Defender accepts"),
        ({"status": "awaitingAction"}, "status 'awaitingAction' is not one Defender accepts"),
        ({"owner": "alice"}, "owner 'alice' is not an address"),
        ({"classification": "maybe"}, "classification 'maybe' is not one Defender accepts"),
        (
            {"classification": "falsePositive", "determination": "malware"},
            "determination 'malware' does not go with classification 'falsePositive'",
        ),
        ({"add_tags": ("",)}, "a tag cannot be empty"),
        ({"add_tags": ("x" * 129,)}, "tag 'xxxx"),
        ({"comment": "  "}, "a comment needs text"),
    ],
)
def test_bad_values_are_refused_before_anything_is_planned(
    request_: dict[str, Any], starts: str
) -> None:
    # a valid part in the same request does not get queued on its own
    message = refusal(incident(), **{"status": "inProgress", **request_})
    assert message.startswith(starts)


# -- plan_edits: the rows ------------------------------------------------------------------


def test_each_field_is_one_row_with_what_the_user_saw() -> None:
    current = incident(assignedTo="bob@contoso.com", customTags=["keep"])
    edits = by_field(
        plan(
            current,
            status="inProgress",
            owner="alice@contoso.com",
            classification="truePositive",
            determination="compromisedUser",
            add_tags=("new",),
            comment="Contained.",
        )
    )
    assert {name: (e.seen, e.wanted) for name, e in edits.items()} == {
        "status": ("active", "inProgress"),
        "assignedTo": ("bob@contoso.com", "alice@contoso.com"),
        "classification": (
            {"classification": "unknown", "determination": "unknown"},
            {"classification": "truePositive", "determination": "compromisedAccount"},
        ),
        "customTags": (["keep"], {"add": ["new"], "remove": []}),
        "comment": (None, "Contained."),
    }
    for edit in edits.values():
        assert (edit.tenant_id, edit.entity_type, edit.entity_id) == ("t1", "incident", "42")
        assert (edit.author, edit.origin) == ("ana@contoso.com", "cli")


@pytest.mark.parametrize(
    "request_",
    [
        {"status": "active"},
        {"status": "New"},  # Sentinel's name for Defender's active
        {"status": "ACTIVE"},
        {"owner": ""},
        {"owner": "  "},
        {"classification": "unknown"},
        {"add_tags": ("keep",)},
        {"remove_tags": ("absent",)},
        {"add_tags": ("keep",), "remove_tags": ("absent",)},
    ],
)
def test_fields_already_at_the_wanted_value_are_left_out(request_: dict[str, Any]) -> None:
    assert plan(incident(), **request_) == []


def test_owner_and_pair_already_there_are_left_out() -> None:
    current = incident(
        assignedTo="Alice@Contoso.com", classification="truePositive", determination="malware"
    )
    assert plan(current, owner="alice@contoso.com") == []
    assert plan(current, classification="truePositive") == []
    assert plan(current, determination="malware") == []
    assert plan(current, classification="truePositive", determination="malware") == []
    edits = by_field(plan(current, owner="", determination="phishing"))
    assert edits["assignedTo"].wanted is None  # unassign
    assert edits["assignedTo"].seen == "Alice@Contoso.com"
    assert edits["classification"].wanted == {
        "classification": "truePositive",
        "determination": "phishing",
    }


def test_tag_edits_carry_only_real_adds_and_removes() -> None:
    edits = by_field(
        plan(
            incident(customTags=["keep", "drop"]),
            add_tags=("keep", "new", "new"),
            remove_tags=("drop", "absent"),
        )
    )
    assert edits["customTags"].wanted == {"add": ["new"], "remove": ["drop"]}
    assert edits["customTags"].seen == ["keep", "drop"]
    only_remove = by_field(plan(incident(customTags=["keep"]), remove_tags=("keep",)))
    assert only_remove["customTags"].wanted == {"add": [], "remove": ["keep"]}


def test_a_comment_is_always_a_row_of_its_own() -> None:
    edits = plan(incident(), status="active", comment="no change, but a note")
    assert [(e.field, e.seen, e.wanted) for e in edits] == [
        ("comment", None, "no change, but a note")
    ]


def test_alert_edits() -> None:
    current = alert(assignedTo="bob@contoso.com")
    edits = by_field(
        plan(current, "alert", status="Active", owner="", classification="falsePositive")
    )
    assert (edits["status"].seen, edits["status"].wanted) == ("new", "inProgress")
    assert (edits["assignedTo"].seen, edits["assignedTo"].wanted) == ("bob@contoso.com", None)
    assert edits["classification"].seen == {
        "classification": "unknown",
        "determination": "unknown",
    }
    assert all(e.entity_type == "alert" and e.entity_id == "da1" for e in edits.values())


def test_seen_is_the_workspace_view_with_edits_on_their_way() -> None:
    record = incident()
    waiting = [
        row("status", "inProgress", id_=1, seen="active"),
        row("customTags", {"add": ["new"], "remove": ["drop"]}, id_=2),
    ]
    current = view(record, waiting)
    assert plan(current, status="inProgress") == []  # already asked for
    again = by_field(plan(current, status="active", add_tags=("new",), remove_tags=("keep",)))
    assert (again["status"].seen, again["status"].wanted) == ("inProgress", "active")
    assert again["customTags"].seen == ["keep", "new"]
    assert again["customTags"].wanted == {"add": [], "remove": ["keep"]}


# -- view -----------------------------------------------------------------------------------


def test_view_applies_edits_still_on_their_way() -> None:
    record = incident()
    before = copy.deepcopy(record)
    shown = view(
        record,
        [
            row("status", "inProgress", "pending", id_=1),
            row("assignedTo", "alice@contoso.com", "conflict", id_=2),
            row(
                "classification",
                {"classification": "truePositive", "determination": "malware"},
                id_=3,
            ),
            row("customTags", {"add": ["new", "keep"], "remove": ["drop"]}, id_=4),
        ],
    )
    assert shown["status"] == "inProgress"
    assert shown["assignedTo"] == "alice@contoso.com"
    assert (shown["classification"], shown["determination"]) == ("truePositive", "malware")
    assert shown["customTags"] == ["keep", "new"]
    assert shown["lastUpdateDateTime"] == VERSION
    assert record == before  # the record read is not changed


def test_view_applies_edits_in_order() -> None:
    shown = view(
        incident(),
        [
            row("status", "inProgress", id_=1),
            row("status", "resolved", id_=2),
            row("customTags", {"add": ["a"], "remove": []}, id_=3),
            row("customTags", {"add": [], "remove": ["a"]}, id_=4),
            row("customTags", {"add": ["b"], "remove": []}, id_=5),
        ],
    )
    assert shown["status"] == "resolved"
    assert shown["customTags"] == ["keep", "drop", "b"]


@pytest.mark.parametrize(
    ("written", "applied"),
    [
        (TICKS + 1, True),  # Defender made a newer version with it: not read back yet
        (TICKS + 10**7, True),
        (TICKS, False),  # the version read is the one our write made
        (TICKS - 1, False),  # read back long ago (Defender may have changed it since)
        (None, False),  # confirmed without a write: Defender already had it
    ],
)
def test_view_applies_confirmed_edits_only_until_they_are_read_back(
    written: int | None, applied: bool
) -> None:
    edit = row("status", "inProgress", "confirmed", written_version=written)
    shown = view(incident(), [edit])
    assert shown["status"] == ("inProgress" if applied else "active")


@pytest.mark.parametrize("state", ["failed", "overridden"])
def test_view_leaves_out_edits_that_did_not_make_it(state: OutboxState) -> None:
    edit = row("status", "inProgress", state, written_version=TICKS + 1)
    assert view(incident(), [edit])["status"] == "active"


@pytest.mark.parametrize("state", ["pending", "conflict", "confirmed"])
def test_view_never_shows_a_comment_as_a_field(state: OutboxState) -> None:
    record = incident()
    shown = view(record, [row("comment", "hello", state, written_version=TICKS + 1)])
    assert shown == record


def test_view_of_a_record_without_a_version_keeps_confirmed_writes() -> None:
    record = incident()
    del record["lastUpdateDateTime"]
    shown = view(record, [row("status", "inProgress", "confirmed", written_version=TICKS)])
    assert shown["status"] == "inProgress"


def test_view_of_a_record_without_tags() -> None:
    record = incident()
    del record["customTags"]
    shown = view(record, [row("customTags", {"add": ["a"], "remove": ["b"]})])
    assert shown["customTags"] == ["a"]


# -- the view over a real outbox, after the pusher decided -----------------------------------


class OneIncident:
    """Defender's side for the pusher: one incident, each PATCH a new version."""

    def __init__(self) -> None:
        self.at = T0
        self.record = incident(customTags=[])
        self.record["lastUpdateDateTime"] = version_text(ticks_from_datetime(self.at))
        self.patches: list[dict[str, Any]] = []

    def change(self, changes: Mapping[str, Any]) -> None:
        self.record.update(changes)
        self.at += timedelta(seconds=1)
        self.record["lastUpdateDateTime"] = version_text(ticks_from_datetime(self.at))

    def get_incident(self, incident_id: str, *, expand_alerts: bool = True) -> dict[str, Any]:
        return copy.deepcopy(self.record)

    def patch_incident(self, incident_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        self.patches.append(dict(changes))
        self.change(changes)
        return copy.deepcopy(self.record)

    def add_incident_comment(self, incident_id: str, text: str) -> list[dict[str, Any]]:
        raise AssertionError("no comments here")

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        raise AssertionError("no alerts here")

    def patch_alert(self, alert_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        raise AssertionError("no alerts here")

    def add_alert_comment(self, alert_id: str, text: str) -> list[dict[str, Any]]:
        raise AssertionError("no alerts here")


def test_a_later_edit_of_a_field_replaces_its_manual_conflict(tmp_path: Path) -> None:
    """policy manual for status: the user sets inProgress while a Defender analyst resolves
    the incident; the edit waits in the conflict queue. The user then agrees with Defender and
    sets the status to resolved: Defender already has it, and the workspace must show it."""
    hub = Hub.open(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    try:
        defender = OneIncident()
        defender.change({"classification": "truePositive", "determination": "malware"})
        pusher = Pusher(
            hub, [PushTarget("contoso", "t1", defender)], ConflictPolicies(status="manual")
        )
        read = copy.deepcopy(defender.record)  # the workspace's last read

        def shown() -> dict[str, Any]:
            return view(read, hub.edits(tenant_id="t1", entity=("incident", "42")))

        hub.enqueue_edits(plan(shown(), status="inProgress"))
        defender.change({"status": "resolved"})  # in the Defender portal, meanwhile
        assert pusher.push_due().states == {"conflict": 1}
        read = copy.deepcopy(defender.record)
        assert shown()["status"] == "inProgress"  # the conflict waits for a decision

        hub.enqueue_edits(plan(shown(), status="resolved"))
        assert pusher.push_due().states == {"confirmed": 1}  # Defender already had it
        read = copy.deepcopy(defender.record)
        assert defender.patches == []
        assert shown()["status"] == "resolved"
    finally:
        hub.close()


class Flaky(OneIncident):
    """Defender whose next PATCHes (or comment POSTs) fail as given (a 503 from Graph, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.record["comments"] = []
        self.failures: list[Exception] = []
        self.comment_failures: list[Exception] = []

    def patch_incident(self, incident_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        return super().patch_incident(incident_id, changes)

    def add_incident_comment(self, incident_id: str, text: str) -> list[dict[str, Any]]:
        if self.comment_failures:
            raise self.comment_failures.pop(0)
        self.change({})
        self.record["comments"].append(
            {"comment": text, "createdByDisplayName": "xdrsync", "createdDateTime": VERSION}
        )
        return copy.deepcopy(self.record["comments"])


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("first", "then", "field", "ends"),
    [
        ({"owner": "bob@contoso.com"}, {"owner": ""}, "assignedTo", None),
        (
            {"owner": "bob@contoso.com"},
            {"owner": "eve@contoso.com"},
            "assignedTo",
            "eve@contoso.com",
        ),
        ({"add_tags": ("X",)}, {"remove_tags": ("X",)}, "customTags", []),
        ({"status": "inProgress"}, {"status": "resolved"}, "status", "resolved"),
    ],
    ids=["owner-unset", "owner-changed", "tag-removed", "status-changed"],
)
@pytest.mark.parametrize("policy", ["latest_wins", "defender_wins", "workspace_wins", "manual"])
def test_an_edit_waiting_to_retry_is_never_written_over_a_later_one(
    tmp_path: Path, policy: Any, first: dict[str, Any], then: dict[str, Any], field: str, ends: Any
) -> None:
    """The user's second edit of a field arrives while the first waits out a 503: Defender
    must end with the second, whatever the order the two come due in."""
    clock = Clock()
    hub = Hub.open(f"sqlite:///{tmp_path / 'hub.sqlite3'}", clock=clock)
    try:
        defender = Flaky()
        defender.change({"classification": "truePositive", "determination": "malware"})
        policies = ConflictPolicies(status=policy, owner=policy, classification=policy)
        pusher = Pusher(
            hub, [PushTarget("contoso", "t1", defender)], policies, retry_seconds=30, clock=clock
        )
        read = copy.deepcopy(defender.record)  # the workspace's last read

        def shown() -> dict[str, Any]:
            return view(read, hub.edits(tenant_id="t1", entity=("incident", "42")))

        hub.enqueue_edits(plan(shown(), **first))
        defender.failures.append(RetriableError("503 from Graph"))
        assert pusher.push_due().states == {"pending": 1}  # waits 30 s for its retry
        clock.now += timedelta(seconds=1)
        hub.enqueue_edits(plan(shown(), **then))
        pusher.push_due()
        clock.now += timedelta(seconds=120)
        pusher.push_due()
        assert (defender.record[field] or None) == (ends or None)
        edits = hub.edits(tenant_id="t1", entity=("incident", "42"))
        assert {e.state for e in edits} == {"confirmed"}
    finally:
        hub.close()


def test_a_comment_defender_refuses_fails_alone(tmp_path: Path) -> None:
    """A 400 on one comment is that comment's refusal: the status, the owner and the next
    comment of the same record still reach Defender."""
    hub = Hub.open(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    try:
        defender = Flaky()
        pusher = Pusher(hub, [PushTarget("contoso", "t1", defender)], ConflictPolicies())
        read = copy.deepcopy(defender.record)
        first = hub.enqueue_edits(plan(read, status="inProgress", owner="bob@contoso.com"))
        refused = hub.enqueue_edits(plan(read, comment="x" * 40))
        later = hub.enqueue_edits(plan(read, comment="second note"))
        defender.comment_failures.append(FatalSyncError("400 Bad Request: comment too long"))
        pusher.push_due()
        assert defender.record["status"] == "inProgress"
        assert defender.record["assignedTo"] == "bob@contoso.com"
        assert [c["comment"] for c in defender.record["comments"]] == ["second note"]
        states = {e.id: e.state for e in hub.edits()}
        assert [states[i] for i in first + later] == ["confirmed"] * 3
        (failed,) = hub.edits(ids=refused)
        assert failed.state == "failed" and "comment too long" in str(failed.outcome)
    finally:
        hub.close()


def test_a_write_found_landed_after_a_crash_shows_until_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after Defender took the PATCH, before the hub recorded it. The next
    push finds the value in Defender and confirms the edit; the workspace must go on showing
    it until it reads Defender's version, or the user's next edit of the field is planned from
    the old value and "conflicts" with our own write (overridden under defender_wins)."""
    hub = Hub.open(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    try:
        defender = Flaky()
        pusher = Pusher(
            hub, [PushTarget("contoso", "t1", defender)], ConflictPolicies(owner="defender_wins")
        )
        read = copy.deepcopy(defender.record)  # the hub does not read Defender in between

        def shown() -> dict[str, Any]:
            return view(read, hub.edits(tenant_id="t1", entity=("incident", "42")))

        def dies(*_args: Any, **_kwargs: Any) -> None:
            raise OSError("the process dies here")

        hub.enqueue_edits(plan(shown(), owner="bob@contoso.com"))
        with monkeypatch.context() as crash:
            crash.setattr(hub, "settle_edits", dies)
            with pytest.raises(OSError, match="dies"):
                pusher.push_due()
        assert defender.record["assignedTo"] == "bob@contoso.com"  # the PATCH had landed
        assert pusher.push_due().states == {"confirmed": 1}
        assert shown()["assignedTo"] == "bob@contoso.com"
        (then,) = hub.enqueue_edits(plan(shown(), owner="eve@contoso.com"))
        assert pusher.push_due().states == {"confirmed": 1}
        assert defender.record["assignedTo"] == "eve@contoso.com"
        assert hub.edits(ids=[then])[0].state == "confirmed"
    finally:
        hub.close()


class LostAnswer(Flaky):
    """Defender that applies the next PATCH but whose answer never arrives (a timeout)."""

    lose_next = False

    def patch_incident(self, incident_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        answer = super().patch_incident(incident_id, changes)
        if self.lose_next:
            self.lose_next = False
            raise RetriableError("timed out reading Graph's answer")
        return answer


def test_a_tag_write_that_landed_unanswered_is_not_applied_over_a_later_change(
    tmp_path: Path,
) -> None:
    """The PATCH adding a tag landed but its answer was lost; the hub then read Defender's
    version with the tag, and a Defender analyst removed it. The retry must not add it back."""
    clock = Clock()
    hub = Hub.open(f"sqlite:///{tmp_path / 'hub.sqlite3'}", clock=clock)
    try:
        defender = LostAnswer()
        pusher = Pusher(
            hub, [PushTarget("contoso", "t1", defender)], ConflictPolicies(), clock=clock
        )

        def read_defender() -> None:
            record = Incident.from_graph(copy.deepcopy(defender.record))
            hub.commit_batch(InboundBatch(tenant_id="t1", stream="incidents", incidents=[record]))

        defender.at = clock.now  # Defender's clock: its versions come after the send
        read_defender()
        (edit,) = hub.enqueue_edits(plan(defender.record, add_tags=("X",)))
        defender.lose_next = True
        assert pusher.push_due().states == {"pending": 1}
        assert defender.record["customTags"] == ["X"]
        read_defender()  # the hub reads the version our write made
        defender.change({"customTags": []})  # an analyst takes X away
        clock.now += timedelta(minutes=1)
        assert pusher.push_due().states == {"confirmed": 1}
        assert defender.record["customTags"] == []
        assert hub.edits(ids=[edit])[0].state == "confirmed"
    finally:
        hub.close()


class Respelled(OneIncident):
    """Defender that applies a PATCH and answers with its enum values spelled otherwise:
    PascalCase, as Graph's documented PATCH answer, or under older documented names."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        super().__init__()
        self.answer = dict(answer)

    def patch_incident(self, incident_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return {**super().patch_incident(incident_id, changes), **self.answer}


def test_a_write_answered_in_other_spellings_of_the_sent_values_is_confirmed(
    tmp_path: Path,
) -> None:
    """Graph spells enums in PascalCase in some answers and names four determinations two
    ways (microsoft-apis.md §2.3): "FalsePositive"/"Clean"/"Resolved" is what was sent, so
    the edits are confirmed and Defender's version of the write is recorded as ours."""
    hub = Hub.open(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    try:
        defender = Respelled(
            {"classification": "FalsePositive", "determination": "Clean", "status": "Resolved"}
        )
        pusher = Pusher(hub, [PushTarget("contoso", "t1", defender)], ConflictPolicies())
        read = copy.deepcopy(defender.record)
        ids = hub.enqueue_edits(
            plan(read, status="resolved", classification="falsePositive", determination="clean")
        )
        assert pusher.push_due().states == {"confirmed": 2}
        assert defender.patches == [
            {
                "status": "resolved",
                "classification": "falsePositive",
                "determination": "notMalicious",
            }
        ]
        written = ticks_from_text(defender.record["lastUpdateDateTime"])
        assert [(e.state, e.written_version) for e in hub.edits(ids=ids)] == [
            ("confirmed", written)
        ] * 2
    finally:
        hub.close()


def test_a_write_answered_with_another_value_still_fails(tmp_path: Path) -> None:
    """Only spellings of the sent member pass: an answer naming another determination is a
    write Defender did not apply as asked."""
    hub = Hub.open(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    try:
        defender = Respelled(
            {"classification": "FalsePositive", "determination": "NotEnoughDataToValidate"}
        )
        pusher = Pusher(hub, [PushTarget("contoso", "t1", defender)], ConflictPolicies())
        read = copy.deepcopy(defender.record)
        (edit,) = hub.enqueue_edits(
            plan(read, classification="falsePositive", determination="notMalicious")
        )
        assert pusher.push_due().states == {"failed": 1}
        (row,) = hub.edits(ids=[edit])
        assert "Defender answered the write with" in str(row.outcome)
        assert row.written_version is None
    finally:
        hub.close()


def test_edits_apply_in_the_order_made_but_tags_in_the_order_queued() -> None:
    # A Sentinel edit read back later (higher id) but made earlier is not the owner shown or
    # written; tag edits merge as sets and keep their queue order (a sent prefix of them is
    # taken as written: reordered, an unsent one could be taken for written and lost).
    earlier = T0 - timedelta(minutes=1)
    carol = row(OWNER, "carol@contoso.com", id_=1)
    ann = row(OWNER, "ann@contoso.com", id_=2, created_at=earlier)
    tag_y = row(TAGS, {"add": ["Y"], "remove": []}, id_=3)
    tag_x = row(TAGS, {"add": ["X"], "remove": []}, id_=4, created_at=earlier)
    ordered = in_order_made([carol, ann, tag_y, tag_x])
    assert [e.id for e in ordered if e.field == OWNER] == [2, 1]
    assert [e.id for e in ordered if e.field == TAGS] == [3, 4]
    shown = view({"assignedTo": None, "customTags": []}, [carol, ann, tag_y, tag_x])
    assert shown["assignedTo"] == "carol@contoso.com"
    assert shown["customTags"] == ["Y", "X"]
