"""Queueing an edit from the workspace (CLI, console and REST API), waiting for its outcome,
and resolving a ``manual`` conflict: the steps around the pure ``edits`` and the ``Pusher``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xdrsync.errors import ConfigError, EditRefusedError
from xdrsync.hub import Hub
from xdrsync.hub.records import EntityType, NewEdit, OutboxRow, Settlement
from xdrsync.twoway import access
from xdrsync.twoway.edits import EditRequest, check_request, plan_edits, view
from xdrsync.twoway.merge import in_order_made

if TYPE_CHECKING:
    from xdrsync.workspace import Workspace


@dataclass(frozen=True)
class Tenant:
    name: str
    tenant_id: str
    writes: bool  # the config lets edits through (``Config.writes_to``)


def current_view(
    hub: Hub, tenant_id: str, kind: EntityType, entity_id: str
) -> dict[str, Any] | None:
    """The record as the workspace shows it (Defender's last read + edits on their way)."""
    if kind == "incident":
        incident = hub.get_incident(tenant_id, entity_id)
        record = incident.to_graph() if incident is not None else None
    else:
        alert = hub.get_alert(tenant_id, entity_id)
        record = alert.to_graph() if alert is not None else None
    if record is None:
        return None
    return view(record, hub.edits(tenant_id=tenant_id, entity=(kind, entity_id)))


def submit(
    hub: Hub,
    tenant: Tenant,
    kind: EntityType,
    entity_id: str,
    request: EditRequest,
    *,
    author: str,
    origin: str,
    closing_needs_classification: bool = True,
) -> list[int]:
    """Check and queue an edit; returns the outbox ids (empty: nothing to change). What the
    user saw is ``request.seen`` where the client sent it (a page drawn before the hub's last
    read), else the workspace's view now.
    ``closing_needs_classification=False`` lets an incident close unclassified (Sentinel
    closes as Undetermined; the workspace's own commands ask for a classification)."""
    edits = prepare(
        hub,
        tenant,
        kind,
        entity_id,
        request,
        author=author,
        origin=origin,
        closing_needs_classification=closing_needs_classification,
    )
    return hub.enqueue_edits(edits) if edits else []


def prepare(
    hub: Hub,
    tenant: Tenant,
    kind: EntityType,
    entity_id: str,
    request: EditRequest,
    *,
    author: str,
    origin: str,
    closing_needs_classification: bool = True,
) -> list[NewEdit]:
    """``submit`` without the queueing: the checked outbox rows, for a caller that queues
    them in one transaction with its own writes."""
    check_request(kind, request)
    roles = access.recorded_roles(hub.get_state(tenant.tenant_id, access.STREAM))
    refused = access.read_only_reasons(tenant.name, tenant.writes, roles).get(kind)
    if refused is not None:
        raise EditRefusedError(refused)
    record = current_view(hub, tenant.tenant_id, kind, entity_id)
    if record is None:
        raise EditRefusedError(f"no {kind} {entity_id} in tenant {tenant.name}")
    target = entity_id
    if kind == "incident" and _only_a_comment(request) and _is_merged(record):
        # The pusher's rule for a merged incident: comments move on to the survivor.
        target = survivor(hub, tenant.tenant_id, entity_id)
        record = current_view(hub, tenant.tenant_id, kind, target)
        if record is None:
            raise EditRefusedError(
                f"incident {entity_id} was merged into {target} by Defender, which the "
                f"workspace has not read yet: comment on {target} once it has"
            )
    return plan_edits(
        kind,
        tenant.tenant_id,
        target,
        record,
        request,
        author=author,
        origin=origin,
        closing_needs_classification=closing_needs_classification,
    )


def survivor(hub: Hub, tenant_id: str, incident_id: str) -> str:
    """Where a comment on ``incident_id`` goes: the incident Defender merged it into (through
    every later merge), as its comments stay reachable from there; else itself."""
    passed = {incident_id}
    incident = hub.get_incident(tenant_id, incident_id)
    while incident is not None and incident.is_redirected:
        into = incident.redirect_incident_id
        if not into or into in passed:
            break
        incident_id = into
        passed.add(into)
        incident = hub.get_incident(tenant_id, incident_id)
    return incident_id


def _only_a_comment(request: EditRequest) -> bool:
    return request.comment is not None and request == EditRequest(
        comment=request.comment, seen=request.seen, at=request.at
    )


def _is_merged(record: dict[str, Any]) -> bool:
    return str(record.get("status") or "").lower() == "redirected"


def _wait(
    hub: Hub,
    ids: Sequence[int],
    *,
    timeout: float,
    push: Callable[[], object] | None = None,
    interval: float = 0.2,
) -> list[OutboxRow]:
    """Wait until none of ``ids`` is pending (pushing them meanwhile with ``push`` when no
    service runs); returns their rows as they stand at the end."""
    deadline = time.monotonic() + timeout
    while True:
        if push is not None:
            push()
        rows = hub.edits(ids=ids)
        if all(r.state != "pending" for r in rows) or time.monotonic() >= deadline:
            return rows
        time.sleep(interval)


def deliver(
    workspace: Workspace, tenant_id: str, ids: Sequence[int], *, wait: bool, timeout: float
) -> list[OutboxRow] | None:
    """Get queued edits to Defender. Without a running service (the workspace lock is free)
    push them now, under the lock so that no service starts pushing beside us; with one,
    leave them to its pusher. Returns the edits' rows (after waiting for their outcome when
    ``wait``), or None when the service has them and nobody waits."""
    from xdrsync.sync.lock import WorkspaceLock

    guard = WorkspaceLock.for_config(workspace.config)
    try:
        guard.acquire()
    except ConfigError:  # `xdrsync run` holds it: its pusher takes the edits
        return _wait(workspace.hub, ids, timeout=timeout) if wait else None
    try:
        pusher = workspace.pusher()

        def push() -> None:
            pusher.push_due(tenant_id)

        push()
        return (
            _wait(workspace.hub, ids, timeout=timeout, push=push)
            if wait
            else (workspace.hub.edits(ids=ids))
        )
    finally:
        guard.release()


def resolve(hub: Hub, outbox_id: int, take: str) -> OutboxRow:
    """Decide a ``manual`` conflict: ``defender`` keeps Defender's value (the edit is
    overridden), ``workspace`` pushes the edit again over the value Defender had then.

    The decision is the field's, not one edit's: several edits of one field waiting together
    are one change (``merge.merge_field``) and went to conflict together, so naming any of
    them settles them all. Defender's side overrides every one; the workspace's sends the one
    made last (``in_order_made``: what the change wants), the others replaced by it, as a new
    edit of the field replaces them (``outbox.enqueue``). One left in conflict would stay in
    ``conflicts list`` for good, and the workspace's view, which shows a waiting edit's value
    (``edits.view``), would show its stale one. Returns the edit that carries the decision:
    the one sent again, or the one named."""
    if take not in ("workspace", "defender"):  # first: a typo is said as such, whatever the edit
        raise EditRefusedError(f"--take is workspace or defender, not {take!r}")
    found = hub.edits(ids=[outbox_id])
    if not found:
        raise EditRefusedError(f"no edit {outbox_id} in the outbox")
    row = found[0]
    if row.state != "conflict":
        raise EditRefusedError(f"edit {outbox_id} is {row.state}, not in conflict")
    waiting = hub.edits(
        tenant_id=row.tenant_id, entity=(row.entity_type, row.entity_id), states=["conflict"]
    )
    *earlier, latest = in_order_made(e for e in waiting if e.field == row.field)
    if take == "defender":
        reason = "resolved by hand: Defender's value kept"
        settlements = [
            Settlement(e, "overridden", "conflict_resolved", {"reason": reason, "take": take})
            for e in (*earlier, latest)
        ]
        decided = row
    else:
        reason = (
            f"resolved by hand: replaced by edit #{latest.id}, the latest of the field, "
            "which goes to Defender"
        )
        settlements = [
            Settlement(
                e,
                "replaced",
                "conflict_resolved",
                {"reason": reason, "take": take, "replaced_by": latest.id},
            )
            for e in earlier
        ]
        settlements.append(
            Settlement(
                latest,
                "pending",
                "conflict_resolved",
                {
                    "reason": "resolved by hand: the workspace edit goes to Defender",
                    "take": take,
                    "next_attempt_at": None,
                },
                reseen=(latest.theirs,),
            )
        )
        decided = latest
    hub.settle_edits(settlements)
    return hub.edits(ids=[decided.id])[0]


__all__ = ["Tenant", "current_view", "deliver", "prepare", "resolve", "submit", "survivor"]
