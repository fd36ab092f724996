"""The outbox's look for pending edits, on each backend: what the pusher asks five times a
second of an outbox that is mostly empty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xdrsync.hub import Hub
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
