"""The outbox's look for pending edits, on each backend: what the pusher asks five times a
second of an outbox that is mostly empty."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from xdrsync.hub import Hub, RemoteCopy
from xdrsync.hub.records import NewEdit, Settlement

TENANT = "11111111-1111-1111-1111-111111111111"


def _edit(field: str = "status") -> NewEdit:
    return NewEdit(TENANT, "incident", "1", field, "active", "inProgress", "ana", "cli")


def test_an_edit_is_pending_from_its_queueing_until_it_is_settled(hub: Hub) -> None:
    assert not hub.edits_pending()  # a new outbox
    (edit,) = hub.enqueue_edits([_edit()])
    (row,) = hub.due_edits()
    assert hub.edits_pending() and row.id == edit
    later = datetime.now(UTC) + timedelta(hours=1)
    retry = Settlement(row, "pending", "retry", {"next_attempt_at": later, "attempts": 1})
    hub.settle_edits([retry])
    assert hub.due_edits() == []  # waiting for its retry: not due, still pending
    assert hub.edits_pending()
    (waiting,) = hub.edits(ids=[edit])
    hub.settle_edits([Settlement(waiting, "confirmed", "confirmed", {})])
    assert not hub.edits_pending()  # settled: nothing left to look at


def test_the_look_and_the_due_edits_can_be_of_some_tenants_only(hub: Hub) -> None:
    """The service looks at the edits of the tenants it syncs: another's (a tenant removed
    from the config) wait for it, pending."""
    (edit,) = hub.enqueue_edits([_edit()])
    assert hub.edits_pending([TENANT]) and not hub.edits_pending(["other"])
    assert not hub.edits_pending([])
    assert [r.id for r in hub.due_edits(tenant_ids=[TENANT, "other"])] == [edit]
    assert hub.due_edits(tenant_ids=["other"]) == []


def test_an_edit_is_dated_when_it_was_made_and_never_after_it_was_queued(hub: Hub) -> None:
    made = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    future = datetime.now(UTC) + timedelta(days=1)  # a remote clock ahead of ours
    before = datetime.now(UTC)
    ids = hub.enqueue_edits([replace(_edit(), at=made), replace(_edit(), at=future), _edit()])
    after = datetime.now(UTC)
    earlier, ahead, now = hub.edits(ids=ids)
    assert earlier.created_at == made
    assert before <= ahead.created_at <= after
    assert before <= now.created_at <= after


def test_a_remote_copy_and_the_edits_read_from_it_are_saved_together(hub: Hub) -> None:
    copy = RemoteCopy("twin", TENANT, "1", '"etag-2"', {"status": "Active"}, frozenset({"c1"}))
    (queued,) = hub.save_remote_copy("sentinel", copy, [_edit()])
    assert hub.get_remote_copy("sentinel", "twin") == copy
    (row,) = hub.edits()
    assert (row.id, row.field, row.wanted, row.state) == (queued, "status", "inProgress", "pending")
    assert hub.save_remote_copy("sentinel", replace(copy, etag='"etag-3"')) == []
    assert len(hub.edits()) == 1


def test_a_standing_conflict_is_replaced_only_by_an_edit_made_no_earlier(hub: Hub) -> None:
    """Of one field's edits the one made last decides (a tie: the one queued last), as the
    pusher orders them: an edit made before a waiting conflict is set aside, not the conflict."""
    made = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    (waiting,) = hub.enqueue_edits([replace(_edit(), at=made)])
    (row,) = hub.edits(ids=[waiting])
    hub.settle_edits([Settlement(row, "conflict", "conflict_manual", {"reason": "both"})])
    (older,) = hub.enqueue_edits([replace(_edit(), at=made - timedelta(seconds=1))])
    assert [r.state for r in hub.edits(ids=[waiting, older])] == ["conflict", "replaced"]
    (set_aside,) = hub.edits(ids=[older])
    assert f"made before edit #{waiting}" in (set_aside.outcome or "")
    assert hub.due_edits() == []  # nothing of the older edit goes to Defender
    (other,) = hub.enqueue_edits([replace(_edit("assignedTo"), at=made - timedelta(hours=1))])
    assert hub.edits(ids=[other])[0].state == "pending"  # another field: untouched
    (same_time,) = hub.enqueue_edits([replace(_edit(), at=made)])
    assert [r.state for r in hub.edits(ids=[waiting, same_time])] == ["replaced", "pending"]
