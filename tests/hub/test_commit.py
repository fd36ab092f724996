"""commit_batch: the version guard, history, change log and audit as a user of the hub sees them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hubdata import (
    OTHER_TENANT,
    TENANT,
    alert_json,
    batch,
    evidence_json,
    incident_json,
    page_of,
    stamp,
)

from xdrsync.console.entities import entities, entity_token
from xdrsync.hub import Hub


def _audit_decisions(hub: Hub) -> list[tuple[str, str | None, str]]:
    return [
        (row.entity_type, row.entity_id, row.decision)
        for row in reversed(hub.audit_tail(1000))
        if row.entity_type != "batch"
    ]


def test_insert_update_unchanged_stale(hub: Hub) -> None:
    first = hub.commit_batch(batch(incident_json("1", stamp(1))))
    assert (first.incidents.inserted, first.first_seq, first.last_seq) == (1, 1, 1)

    newer = hub.commit_batch(batch(incident_json("1", stamp(2), status="inProgress")))
    assert newer.incidents.updated == 1
    again = hub.commit_batch(batch(incident_json("1", stamp(2), status="inProgress")))
    assert again.incidents.unchanged == 1 and again.first_seq is None
    older = hub.commit_batch(batch(incident_json("1", stamp(1))))
    assert older.incidents.stale == 1 and older.first_seq is None

    incident = hub.get_incident(TENANT, "1")
    assert incident is not None
    assert incident.raw["status"] == "inProgress"
    assert [v.version_text for v in hub.incident_history(TENANT, "1")] == [stamp(1), stamp(2)]
    assert _audit_decisions(hub) == [
        ("incident", "1", "insert"),
        ("incident", "1", "update"),
    ]


def test_a_reread_of_a_whole_batch_changes_nothing(hub: Hub) -> None:
    page = page_of(50, stamp(5))
    first = hub.commit_batch(batch(*page, state={"watermark": "a"}))
    assert (first.incidents.inserted, first.alerts.inserted) == (50, 200)
    seq, counts, audit = hub.max_seq(), hub.counts(), len(hub.audit_tail(10_000))

    again = hub.commit_batch(batch(*page, state={"watermark": "a"}))

    assert (again.inserted, again.updated, again.stale) == (0, 0, 0)
    assert (again.incidents.unchanged, again.alerts.unchanged) == (50, 200)
    assert again.first_seq is None
    assert hub.max_seq() == seq
    assert hub.counts() == counts
    assert counts[TENANT]["evidence"] == 1000
    assert counts[TENANT]["comments"] == 50
    assert counts[TENANT]["versions"] == 250
    assert hub.changes_after(seq, 10) == []
    # Nor any audit row: an idle tenant re-reads its lookback every few seconds.
    assert len(hub.audit_tail(10_000)) == audit


def test_a_page_that_changes_something_leaves_one_summary(hub: Hub) -> None:
    hub.commit_batch(batch(incident_json("1", stamp(1)), state={"watermark": "a"}))
    hub.commit_batch(batch(state={"watermark": "b"}))  # an empty page: no row
    hub.commit_batch(batch(incident_json("1", stamp(1))))  # a re-read: no row
    hub.commit_batch(batch(incident_json("1", stamp(0))))  # an older version: a row
    summaries = [row for row in hub.audit_tail(100) if row.entity_type == "batch"]
    assert [
        (s.detail["incidents"]["inserted"], s.detail["incidents"]["stale"]) for s in summaries
    ] == [
        (0, 1),
        (1, 0),
    ]


def test_one_history_row_per_real_version(hub: Hub) -> None:
    v1, v2, v3 = (incident_json("9", stamp(m), name=f"name {m}") for m in (1, 2, 3))
    for payload in (v1, v2, v1, v2, v3, v3, v2, v1):
        hub.commit_batch(batch(payload))
    history = hub.incident_history(TENANT, "9")
    assert [row.payload["displayName"] for row in history] == ["name 1", "name 2", "name 3"]
    assert [row.seq for row in history] == [1, 2, 3]
    assert hub.max_seq() == 3


def test_same_version_with_different_content_is_an_update(hub: Hub) -> None:
    hub.commit_batch(batch(incident_json("5", stamp(1), tags=["a"])))
    result = hub.commit_batch(batch(incident_json("5", stamp(1), tags=["a", "b"])))
    assert result.incidents.updated == 1
    history = hub.incident_history(TENANT, "5")
    assert [row.payload["customTags"] for row in history] == [["a"], ["a", "b"]]
    incident = hub.get_incident(TENANT, "5")
    assert incident is not None and list(incident.custom_tags) == ["a", "b"]
    update = next(row for row in hub.audit_tail(10) if row.decision == "update")
    assert update.old_version == update.new_version == stamp(1)
    assert update.detail["same_version"] is True


def test_each_json_is_stored_once_in_its_history(hub: Hub) -> None:
    """The current rows name their version (version and content hash), whose history row
    holds the JSON. Two contents of one version, the second written with the clock stepped
    back, then an older version read late: the incident, its alert and the alert's evidence
    read as the content the current row names, not as the newest or latest-written row."""
    from sqlalchemy import text

    moments = iter(datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in (12, 11, 13))
    stepped = Hub(hub.engine, clock=lambda: next(moments))

    def page(updated: str, name: str, item: int) -> dict[str, object]:
        alert = alert_json("a1", "1", updated, title=name, evidence=[evidence_json(item)])
        return incident_json("1", updated, name=name, alerts=[alert])

    stepped.commit_batch(batch(page(stamp(2), "first", 1)))
    stepped.commit_batch(batch(page(stamp(2), "current", 2)))  # same version, new content
    stepped.commit_batch(batch(page(stamp(1), "late", 3)))
    with hub.engine.connect() as conn:
        copies = conn.execute(
            text("SELECT payload FROM incident UNION ALL SELECT payload FROM alert")
        )
        assert copies.scalars().all() == ["", ""]
    # The history lists versions by version, then in the order they were applied (the clock
    # stepped back between the two contents): the current content is the last row.
    assert [row.payload["displayName"] for row in hub.incident_history(TENANT, "1")] == [
        "late",
        "first",
        "current",
    ]
    incident = hub.get_incident(TENANT, "1")
    assert incident is not None and incident.display_name == "current"
    assert [a.title for a in incident.alerts] == ["current"]
    found = hub.get_alert(TENANT, "a1")
    assert found is not None and found.title == "current"
    assert [row.payload for row in hub.list_evidence(TENANT, "1")] == [evidence_json(2)]


def test_versions_100ns_apart_are_both_kept(hub: Hub) -> None:
    hub.commit_batch(batch(incident_json("5", stamp(1, extra_ticks=1), name="first")))
    hub.commit_batch(batch(incident_json("5", stamp(1, extra_ticks=2), name="second")))
    hub.commit_batch(batch(incident_json("5", stamp(1, extra_ticks=1), name="first")))
    assert [row.version_text for row in hub.incident_history(TENANT, "5")] == [
        stamp(1, extra_ticks=1),
        stamp(1, extra_ticks=2),
    ]
    assert hub.list_incidents(TENANT)[0].display_name == "second"


def test_many_incidents_with_one_timestamp_survive_overlapping_pages(hub: Hub) -> None:
    tied = page_of(30, stamp(7), alerts=1, evidence=1)
    # Pages overlap and repeat as a `ge` re-read of a tie would make them.
    for page in (tied[0:10], tied[5:20], tied[0:30], tied[15:30]):
        hub.commit_batch(batch(*page))
    listed = hub.list_incidents(TENANT, limit=100)
    assert sorted(row.id for row in listed) == sorted(p["id"] for p in tied)
    assert hub.counts()[TENANT]["incident_versions"] == 30
    assert hub.max_seq() == 60  # 30 incidents + 30 alerts, once each


def test_a_batch_holding_two_versions_records_both_whatever_the_order(hub: Hub) -> None:
    result = hub.commit_batch(
        batch(incident_json("3", stamp(2), name="new"), incident_json("3", stamp(1), name="old"))
    )
    assert (result.incidents.inserted, result.incidents.updated) == (1, 1)
    assert [row.payload["displayName"] for row in hub.incident_history(TENANT, "3")] == [
        "old",
        "new",
    ]
    assert hub.list_incidents(TENANT)[0].display_name == "new"


def test_an_old_version_read_late_goes_to_history_only(hub: Hub) -> None:
    hub.commit_batch(batch(incident_json("4", stamp(3), name="current")))
    seq = hub.max_seq()
    result = hub.commit_batch(batch(incident_json("4", stamp(1), name="older")))
    assert result.incidents.stale == 1
    assert hub.max_seq() == seq  # never fanned out
    history = hub.incident_history(TENANT, "4")
    assert [(row.payload["displayName"], row.seq) for row in history] == [
        ("older", None),
        ("current", 1),
    ]
    assert hub.list_incidents(TENANT)[0].display_name == "current"
    stale = [row for row in hub.audit_tail(10) if row.decision == "stale"]
    assert len(stale) == 1 and stale[0].old_version == stamp(3)
    # Reading that old version again is a plain re-read: no history row, no audit row.
    hub.commit_batch(batch(incident_json("4", stamp(1), name="older")))
    assert len(hub.incident_history(TENANT, "4")) == 2
    assert len([row for row in hub.audit_tail(100) if row.decision == "stale"]) == 1


def test_seq_is_strictly_increasing_and_gap_free_in_commit_order(hub: Hub) -> None:
    ranges = []
    for minute in range(1, 6):
        result = hub.commit_batch(batch(*page_of(3, stamp(minute), alerts=2, evidence=1)))
        ranges.append(result.seqs)
        hub.commit_batch(batch(*page_of(3, stamp(minute), alerts=2, evidence=1)))  # re-read
    assigned = [seq for r in ranges for seq in r]
    assert assigned == list(range(1, 46))
    changes = hub.changes_after(0, 1000)
    assert [c.seq for c in changes] == assigned
    assert hub.max_seq() == 45
    assert [c.seq for c in hub.changes_after(40, 3)] == [41, 42, 43]


def test_change_rows_carry_the_version_payload(hub: Hub) -> None:
    alert = alert_json("a1", "1", stamp(1), evidence=[evidence_json(1)])
    hub.commit_batch(batch(incident_json("1", stamp(1), alerts=[alert])))
    hub.commit_batch(batch(incident_json("1", stamp(2), status="resolved", alerts=[alert])))
    changes = hub.changes_after(0, 10)
    assert [(c.entity_type, c.entity_id, c.kind) for c in changes] == [
        ("incident", "1", "insert"),
        ("alert", "a1", "insert"),
        ("incident", "1", "update"),
    ]
    assert "alerts" not in changes[0].payload
    assert changes[0].alert_ids == ("a1",)
    assert changes[1].incident_id == "1"
    assert changes[1].payload["evidence"][0]["mdeDeviceId"] == "mde-0001"
    assert changes[2].payload["status"] == "resolved"
    assert changes[2].version_text == stamp(2)


def test_changes_without_payloads_are_the_same_changes_with_none(hub: Hub) -> None:
    alert = alert_json("a1", "1", stamp(1), evidence=[evidence_json(1)])
    hub.commit_batch(batch(incident_json("1", stamp(1), alerts=[alert])))
    hub.commit_batch(batch(incident_json("1", stamp(2), status="resolved", alerts=[alert])))
    whole, bare = hub.changes_after(0, 10), hub.changes_after(0, 10, payloads=False)
    assert [replace(c, payload_text="", alert_ids=None) for c in whole] == bare
    assert all(c.payload_text for c in whole)


def test_the_queue_index_is_kept_from_changes_without_payloads(hub: Hub) -> None:
    # The index reads the hub's tables: what it is given of the changes must not matter.
    from xdrsync.console.index import QueueIndex
    from xdrsync.console.queue import QueueFilter, list_queue
    from xdrsync.destinations.runner import DestinationRunner

    alert = alert_json("a1", "1", stamp(1), evidence=[evidence_json(1)])
    hub.commit_batch(batch(incident_json("1", stamp(1), alerts=[alert])))
    hub.commit_batch(batch(incident_json("1", stamp(2), status="resolved", alerts=[alert])))
    asked: list[bool] = []
    read = hub.changes_after

    def changes_after(seq: int, limit: int = 500, *, payloads: bool = True) -> list[Any]:
        asked.append(payloads)
        return read(seq, limit, payloads=payloads)

    hub.changes_after = changes_after  # type: ignore[method-assign]
    assert DestinationRunner(hub, QueueIndex(hub)).publish() == 3
    assert asked and not any(asked)
    (item,) = list_queue(hub, QueueFilter(), [TENANT]).items
    assert (item.incident_id, item.status, item.alert_count) == ("1", "resolved", 1)


def test_an_alert_update_replaces_its_evidence(hub: Hub) -> None:
    three = [evidence_json(1), evidence_json(2, "user"), evidence_json(3)]
    hub.commit_batch(
        batch(
            incident_json("1", stamp(1), alerts=[alert_json("a1", "1", stamp(1), evidence=three)])
        )
    )
    assert len(hub.list_evidence(TENANT, "1")) == 3
    hub.commit_batch(
        batch(
            incident_json(
                "1", stamp(1), alerts=[alert_json("a1", "1", stamp(2), evidence=three[1:])]
            )
        )
    )
    rows = hub.list_evidence(TENANT, "1")
    assert [(row.ordinal, row.kind) for row in rows] == [(0, "user"), (1, "device")]
    assert rows[0].payload["userAccount"]["accountName"] == "user2"
    assert rows[1].entity_key is not None


@pytest.mark.parametrize("search", ["SÉBASTIEN", "sébastien", "Sébastien-pc", "astien-PC"])
def test_an_entity_is_found_by_any_case_of_its_non_ascii_name(hub: Hub, search: str) -> None:
    """SQLite's own lower() folds ASCII letters only: the search lowers every letter of both
    the names and the text searched for, alike on both databases."""
    device = evidence_json(1) | {"hostName": "SÉBASTIEN-PC", "deviceDnsName": "SÉBASTIEN-PC"}
    alert = alert_json("a1", "1", stamp(1), evidence=[device])
    hub.commit_batch(batch(incident_json("1", stamp(1), alerts=[alert])))
    found = entities(hub, [TENANT], None, search, 10)
    assert [e["name"] for e in found] == ["SÉBASTIEN-PC"]
    assert entities(hub, [TENANT], None, "sebastien", 10) == []  # an É is not an e


def test_get_incident_rebuilds_the_graph_payload(hub: Hub) -> None:
    payload = page_of(1, stamp(1), alerts=3, evidence=2)[0]
    hub.commit_batch(batch(payload))
    incident = hub.get_incident(TENANT, payload["id"])
    assert incident is not None
    assert incident.to_graph() == payload
    assert hub.get_incident(TENANT, "nope") is None


def test_standalone_alerts_from_the_alerts_stream(hub: Hub) -> None:
    hub.commit_batch(batch(incident_json("1", stamp(1))))
    result = hub.commit_batch(
        batch(
            alerts=[alert_json("a9", "1", stamp(2), evidence=[evidence_json(4)])], stream="alerts"
        )
    )
    assert result.alerts.inserted == 1
    incident = hub.get_incident(TENANT, "1")
    assert incident is not None and [a.id for a in incident.alerts] == ["a9"]
    # The same alert embedded in its incident is a re-read, not a change.
    again = hub.commit_batch(
        batch(
            incident_json(
                "1", stamp(1), alerts=[alert_json("a9", "1", stamp(2), evidence=[evidence_json(4)])]
            )
        )
    )
    assert again.alerts.unchanged == 1 and again.first_seq is None


def test_two_tenants_with_the_same_ids_stay_apart(hub: Hub) -> None:
    hub.commit_batch(batch(incident_json("1", stamp(1), name="ours")))
    hub.commit_batch(batch(incident_json("1", stamp(1), name="theirs"), tenant=OTHER_TENANT))
    hub.commit_batch(batch(incident_json("1", stamp(2), name="ours again")))
    mine, theirs = hub.get_incident(TENANT, "1"), hub.get_incident(OTHER_TENANT, "1")
    assert mine is not None and mine.display_name == "ours again"
    assert theirs is not None and theirs.display_name == "theirs"
    assert [row.tenant_id for row in hub.list_incidents(OTHER_TENANT)] == [OTHER_TENANT]
    assert len(hub.list_incidents()) == 2
    assert len(hub.incident_history(OTHER_TENANT, "1")) == 1
    assert hub.counts()[TENANT]["incidents"] == hub.counts()[OTHER_TENANT]["incidents"] == 1


def test_list_incidents_newest_first_with_filters_and_paging(hub: Hub) -> None:
    hub.commit_batch(
        batch(
            incident_json("1", stamp(1)),
            incident_json("2", stamp(3), status="resolved"),
            incident_json("3", stamp(2), alerts=[alert_json("a", "3", stamp(2))]),
        )
    )
    assert [row.id for row in hub.list_incidents(TENANT)] == ["2", "3", "1"]
    assert [row.id for row in hub.list_incidents(TENANT, status="resolved")] == ["2"]
    assert [row.id for row in hub.list_incidents(TENANT, status="Resolved")] == ["2"]
    assert [row.id for row in hub.list_incidents(TENANT, limit=1, offset=1)] == ["3"]
    summary = hub.list_incidents(TENANT, limit=2)[1]
    assert (summary.alert_count, summary.status, summary.severity) == (1, "active", "medium")


@pytest.mark.parametrize("bad", ["7\x00", "7\udc80"], ids=["nul", "lone-surrogate"])
def test_a_record_whose_id_no_database_can_key_by_is_quarantined_and_its_incident_kept(
    hub: Hub, bad: str
) -> None:
    """An id holding NUL (PostgreSQL's text has none) or a lone surrogate (no driver encodes
    one) was bound as U+FFFD, so the stored key never equalled the record's own again: its
    next version was taken for a new record and collided with the first, and the whole
    incident was quarantined at every read from then on. Such a record is quarantined at
    once, with the reason, on both databases; its incident goes on without it."""
    first = hub.commit_batch(batch(incident_json(bad, stamp(1))))
    assert (first.incidents.inserted, first.quarantined) == (0, 1)
    alert = alert_json(f"da{bad}", "8", stamp(1))
    kept = hub.commit_batch(batch(incident_json("8", stamp(1), alerts=[alert])))
    assert (kept.incidents.inserted, kept.alerts.inserted, kept.quarantined) == (1, 0, 1)
    renamed = incident_json("8", stamp(2), name="renamed", alerts=[alert])
    again = hub.commit_batch(batch(renamed))
    assert (again.incidents.updated, again.quarantined) == (1, 1)
    reasons = [q.reason for q in hub.list_quarantine(tenant_id=TENANT)]
    assert any("no database can key by" in r for r in reasons)


def test_entities_page_after_a_token_in_the_same_order(hub: Hub) -> None:
    """Each page goes on where the last one ended, ties of incidents sharing broken by kind,
    key and tenant alike on both databases."""
    alerts = [
        alert_json(f"a{n}", str(n), stamp(1), evidence=[evidence_json(n % 4), evidence_json(n)])
        for n in range(1, 13)
    ]
    hub.commit_batch(batch(*(incident_json(a["incidentId"], stamp(1), alerts=[a]) for a in alerts)))
    whole = entities(hub, [TENANT], None, None, 100)
    pages, after = [], None
    while len(pages) < 10:
        page = entities(hub, [TENANT], None, None, 5, after=after)
        pages.append(page)
        if len(page) < 5:
            break
        after = entity_token(page[-1])
    assert [e for page in pages for e in page] == whole and len(pages) == 3
    with pytest.raises(ValueError, match="not one this server made"):
        entities(hub, [TENANT], None, None, 5, after="bm90IGEgdG9rZW4")
