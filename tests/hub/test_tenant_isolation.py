"""Two tenants whose Defender ids collide (incident "1" exists in every tenant): each keeps its
own versions, history, evidence and comments, and a re-read of one never touches the other."""

from __future__ import annotations

from pathlib import Path

from hubdata import alert_json, batch, comment_json, evidence_json, incident_json, stamp
from sqlalchemy import select

from xdrsync.console.index import QueueIndex
from xdrsync.destinations.runner import DestinationRunner
from xdrsync.destinations.tables import LogTables
from xdrsync.hub import Hub, InboundBatch
from xdrsync.hub import schema as s
from xdrsync.tables.logstore import LogStore
from xdrsync.twoway import submit
from xdrsync.twoway.edits import EditRequest

A, B = "tenant-a", "tenant-b"


def _incident(version: float, note: str) -> dict[str, object]:
    return incident_json(
        "1",
        stamp(version),
        name=f"incident of {note}",
        # One comment alike in both tenants (same time, author, text), one of each's own.
        comments=[comment_json("shared words", 0), comment_json(f"comment of {note}", version)],
        alerts=[
            alert_json(
                "da1",
                "1",
                stamp(version),
                evidence=[evidence_json(int(version) + (0 if note == A else 50))],
                title=f"alert of {note}",
            )
        ],
    )


def test_colliding_ids_in_two_tenants_stay_apart(hub: Hub) -> None:
    first = hub.commit_batch(batch(_incident(1, A), tenant=A))
    second = hub.commit_batch(batch(_incident(1, B), tenant=B))
    assert first.changed_incident_ids == second.changed_incident_ids == ("1",)
    assert second.inserted == first.inserted  # B's copy is new, not "unchanged" against A's

    a, b = hub.get_incident(A, "1"), hub.get_incident(B, "1")
    assert a is not None and b is not None
    assert a.to_graph()["displayName"] == "incident of tenant-a"
    assert b.to_graph()["displayName"] == "incident of tenant-b"
    assert sorted(c.comment or "" for c in hub.list_comments(A, "1")) == [
        "comment of tenant-a",
        "shared words",
    ]
    assert sorted(c.comment or "" for c in hub.list_comments(B, "1")) == [
        "comment of tenant-b",
        "shared words",
    ]
    evidence_a = {row.entity_key for row in hub.list_evidence(A, "1")}
    evidence_b = {row.entity_key for row in hub.list_evidence(B, "1")}
    assert evidence_a and evidence_b and evidence_a.isdisjoint(evidence_b)

    # A newer version in A: B's history and current row do not move.
    later = hub.commit_batch(batch(_incident(2, A), tenant=A))
    assert later.changed_incident_ids == ("1",)
    assert len(hub.incident_history(A, "1")) == 2
    assert len(hub.incident_history(B, "1")) == 1
    assert len(hub.alert_history(B, "da1")) == 1
    assert hub.get_incident(B, "1") == b
    assert {row.entity_key for row in hub.list_evidence(B, "1")} == evidence_b

    # Re-reading B's version changes nothing, whatever A holds.
    again = hub.commit_batch(batch(_incident(1, B), tenant=B))
    assert again.changed_incident_ids == () and again.inserted == again.updated == 0


def test_a_new_version_of_one_alert_leaves_other_alerts_evidence_and_comment_times_alone(
    hub: Hub,
) -> None:
    def incident(version: float) -> dict[str, object]:
        return incident_json(
            "7",
            stamp(version),
            comments=[comment_json("first look", 3)],
            alerts=[
                alert_json("da7_1", "7", stamp(version), evidence=[evidence_json(1)]),
                alert_json("da7_2", "7", stamp(1), evidence=[evidence_json(2), evidence_json(3)]),
            ],
        )

    hub.commit_batch(batch(incident(1), tenant=A))
    before = {row.entity_key for row in hub.list_evidence(A, "7")}
    assert len(before) == 3
    hub.commit_batch(batch(incident(2), tenant=A))  # only da7_1 (and the incident) changed
    assert {row.entity_key for row in hub.list_evidence(A, "7")} == before
    (comment,) = hub.list_comments(A, "7")
    assert comment.created_date_time is not None
    assert comment.created_date_time.isoformat().startswith(stamp(3)[:19])


def test_our_write_in_one_tenant_is_not_taken_for_the_same_version_in_another(hub: Hub) -> None:
    from sqlalchemy import text

    from xdrsync.hub.payload import ticks_from_text
    from xdrsync.hub.records import Written

    version = ticks_from_text(stamp(2))
    assert version is not None
    hub.settle_edits([], Written(A, "incident", "1", version, "alice@a.example", "cli", {}))
    hub.commit_batch(batch(_incident(2, B), tenant=B))  # the same id and version, in B
    hub.commit_batch(batch(_incident(2, A), tenant=A))  # the echo of alice's write, in A
    with hub.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tenant_id, origin, modified_by FROM change_log"
                " WHERE entity_type = 'incident' ORDER BY seq"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (B, "graph", None),
        (A, "workspace", "alice@a.example"),
    ]
    changes = [c for c in hub.changes_after(0) if c.entity_type == "incident"]
    assert [c.modified_by for c in changes] == [None, "alice@a.example"]


def test_our_write_is_one_records_version_only(hub: Hub) -> None:
    from sqlalchemy import text

    from xdrsync.hub.payload import ticks_from_text
    from xdrsync.hub.records import Written

    version = ticks_from_text(stamp(3))
    assert version is not None
    # Written: incident "2", and an incident whose id is the alert's, at the very same version.
    hub.settle_edits([], Written(A, "incident", "2", version, "alice@a.example", "cli", {}))
    hub.settle_edits([], Written(A, "incident", "da1", version, "alice@a.example", "cli", {}))
    hub.commit_batch(batch(_incident(3, A), tenant=A))  # incident "1" and its alert "da1"
    with hub.engine.connect() as conn:
        rows = conn.execute(text("SELECT entity_type, entity_id, origin FROM change_log")).all()
    assert sorted(tuple(r) for r in rows) == [("alert", "da1", "graph"), ("incident", "1", "graph")]


def test_incident_1_of_two_tenants_stays_apart_in_merges_edits_the_queue_and_the_tables(
    hub: Hub, tmp_path: Path
) -> None:
    """Defender's ids are small integers per tenant: incident "1" (with alert "da1") and "2"
    exist in both. In one "2" is merged into "1", in the other it is not. Every consumer of
    the hub keeps them apart: the merge, an edit and a comment queued for one, the change
    sequence, the console's queue index and the log tables (and a scoped query of them)."""
    ta, tb = "0000000a-0000-4000-8000-00000000000a", "0000000b-0000-4000-8000-00000000000b"

    def world(tenant: str, note: str, merged: bool) -> InboundBatch:
        alert = alert_json("da1", "1", stamp(1), title=f"alert of {note}")
        first = incident_json("1", stamp(1), name=f"one of {note}", alerts=[alert])
        second = incident_json(
            "2",
            stamp(2),
            name=f"two of {note}",
            status="redirected" if merged else "active",
            redirect="1" if merged else None,
        )
        return batch(first, second, tenant=tenant)

    hub.commit_batch(world(ta, "a", merged=True))
    hub.commit_batch(world(tb, "b", merged=False))
    changes = hub.changes_after(0)
    assert sorted((c.tenant_id, c.entity_type, c.entity_id) for c in changes) == sorted(
        (t, kind, key)
        for t in (ta, tb)
        for kind, key in (("incident", "1"), ("incident", "2"), ("alert", "da1"))
    )

    # A comment on A's merged "2" goes to A's survivor "1"; B's "1" and "2" get nothing.
    a = submit.Tenant("a", ta, writes=True)
    b = submit.Tenant("b", tb, writes=True)
    submit.submit(hub, a, "incident", "2", EditRequest(comment="for a"), author="x", origin="api")
    submit.submit(
        hub, b, "incident", "2", EditRequest(status="inProgress"), author="y", origin="api"
    )
    assert [(e.entity_id, e.field) for e in hub.edits(tenant_id=ta)] == [("1", "comment")]
    assert [(e.entity_id, e.field) for e in hub.edits(tenant_id=tb)] == [("2", "status")]
    assert submit.survivor(hub, tb, "2") == "2" and submit.survivor(hub, ta, "2") == "1"

    # The queue's index: four rows, each with its own tenant's values.
    DestinationRunner(hub, QueueIndex(hub)).publish()
    q = s.queue_entry
    with hub.reading() as conn:
        indexed = {
            (r.tenant_id, r.incident_id): (r.display_name, r.status)
            for r in conn.execute(
                select(q.c.tenant_id, q.c.incident_id, q.c.display_name, q.c.status)
            )
        }
    assert indexed == {
        (ta, "1"): ("one of a", "active"),
        (ta, "2"): ("two of a", "redirected"),
        (tb, "1"): ("one of b", "active"),
        (tb, "2"): ("two of b", "active"),
    }

    # The log tables: one current row per tenant and incident, and a scoped query sees its own.
    store = LogStore(tmp_path / "logs.duckdb")
    DestinationRunner(hub, LogTables(hub, store)).publish()
    current = (
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName"
        " | project TenantId, ProviderIncidentId, Title, Status | sort by Title asc"
    )
    assert [tuple(r) for r in store.query(current).rows] == [
        (ta, "1", "one of a", "New"),
        (tb, "1", "one of b", "New"),
        (ta, "2", "two of a", "Closed"),
        (tb, "2", "two of b", "New"),
    ]
    assert [r[2] for r in store.query(current, tenant_ids=[tb]).rows] == ["one of b", "two of b"]
    alerts = "SecurityAlert | summarize arg_max(TimeGenerated, *) by SystemAlertId, TenantId"
    assert sorted(store.query(f"{alerts} | project AlertName").column("AlertName")) == [
        "alert of a",
        "alert of b",
    ]
