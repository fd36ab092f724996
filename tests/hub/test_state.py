"""Stream state saved with the data, stream errors, quarantine, and destination cursors."""

from __future__ import annotations

import pytest
from hubdata import (
    BASE,
    OTHER_TENANT,
    TENANT,
    alert_json,
    batch,
    evidence_json,
    incident_json,
    page_of,
    stamp,
)

import xdrsync.hub.apply
from xdrsync.hub import Hub, InboundBatch, Quarantined
from xdrsync.hub.unparsed import UnparsedTally


def test_state_is_saved_with_the_batch_and_none_leaves_it_alone(hub: Hub) -> None:
    assert hub.get_state(TENANT, "incidents") is None
    hub.commit_batch(batch(incident_json("1", stamp(1)), state={"watermark": stamp(1), "v": 1}))
    assert hub.get_state(TENANT, "incidents") == {"watermark": stamp(1), "v": 1}
    hub.commit_batch(batch(incident_json("2", stamp(2)), state=None))  # a backfill page
    assert hub.get_state(TENANT, "incidents") == {"watermark": stamp(1), "v": 1}
    assert hub.get_state(OTHER_TENANT, "incidents") is None
    assert hub.get_state(TENANT, "alerts") is None


def test_a_failure_inside_the_transaction_keeps_neither_data_nor_state(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.commit_batch(batch(incident_json("1", stamp(1)), state={"watermark": "old"}))
    before = (hub.max_seq(), hub.counts(), len(hub.audit_tail(1000)))

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    # The state write comes after every data write of the batch.
    monkeypatch.setattr(xdrsync.hub.apply, "clear_error_and_save", crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        hub.commit_batch(
            batch(
                incident_json("1", stamp(2), status="resolved"),
                *page_of(5, stamp(2)),
                state={"watermark": "new"},
            )
        )
    monkeypatch.undo()

    assert (hub.max_seq(), hub.counts(), len(hub.audit_tail(1000))) == before
    assert hub.get_state(TENANT, "incidents") == {"watermark": "old"}
    incident = hub.get_incident(TENANT, "1")
    assert incident is not None and incident.raw["status"] == "active"
    assert hub.get_incident(TENANT, "10000") is None
    # The retry of the same batch then goes through completely.
    result = hub.commit_batch(
        batch(incident_json("1", stamp(2), status="resolved"), state={"watermark": "new"})
    )
    assert result.seqs == range(2, 3)
    assert hub.get_state(TENANT, "incidents") == {"watermark": "new"}


def test_stream_errors_show_until_the_next_successful_commit(hub: Hub) -> None:
    hub.record_stream_error(TENANT, "alerts", "RetriableError: 503 from Graph")
    (row,) = hub.list_states()
    assert (row.stream, row.doc, row.last_error) == (
        "alerts",
        None,
        "RetriableError: 503 from Graph",
    )
    assert row.last_error_at is not None

    hub.commit_batch(InboundBatch(tenant_id=TENANT, stream="alerts", state={"w": 1}))
    (row,) = hub.list_states()
    assert (row.doc, row.last_error, row.last_error_at) == ({"w": 1}, None, None)
    assert row.updated_at is not None and row.last_commit_at is not None


def test_quarantined_records_are_visible_and_counted_per_stream(hub: Hub) -> None:
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT,
            stream="alerts",
            quarantined=[
                Quarantined(raw='{"id": 5, "lastUpdateDateTime": "soon"}', reason="bad date"),
                Quarantined(raw="{not json", reason="malformed JSON"),
            ],
            state={"w": 2},
        )
    )
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT, stream="incidents", quarantined=[Quarantined(raw="[]", reason="list")]
        )
    )
    listed = hub.list_quarantine(10)
    assert [(q.stream, q.reason) for q in listed] == [
        ("incidents", "list"),
        ("alerts", "malformed JSON"),
        ("alerts", "bad date"),
    ]
    assert listed[1].raw == "{not json"
    assert hub.quarantine_counts() == {(TENANT, "alerts"): 2, (TENANT, "incidents"): 1}
    assert {row.stream: row.quarantined for row in hub.list_states()} == {
        "alerts": 2,
        "incidents": 1,
    }
    assert hub.counts()[TENANT]["quarantined"] == 3
    decisions = [row.decision for row in hub.audit_tail(10)]
    assert decisions.count("quarantine") == 3
    assert hub.get_state(TENANT, "alerts") == {"w": 2}


def test_an_operator_clears_the_quarantine_and_the_dead_letters_and_the_audit_says_so(
    hub: Hub,
) -> None:
    """Counts that only ever go up hide the next problem: once a cause is dealt with, the
    rows go, by tenant and stream, or by destination, and the audit keeps how many."""
    for tenant, stream, n in (
        (TENANT, "alerts", 2),
        (TENANT, "incidents", 1),
        ("other", "alerts", 1),
    ):
        hub.commit_batch(
            InboundBatch(
                tenant_id=tenant,
                stream=stream,
                quarantined=[Quarantined(raw=f"[{i}]", reason="bad") for i in range(n)],
            )
        )
    assert hub.clear_quarantine(TENANT, "alerts") == 2
    assert hub.quarantine_counts() == {(TENANT, "incidents"): 1, ("other", "alerts"): 1}
    assert hub.clear_quarantine() == 2
    assert hub.quarantine_counts() == {} and hub.clear_quarantine() == 0
    cleared = [r for r in hub.audit_tail(20) if r.decision == "quarantine_cleared"]
    assert sorted((r.tenant_id, r.stream, r.detail["records"]) for r in cleared) == [
        (TENANT, "alerts", 2),
        (TENANT, "incidents", 1),
        ("other", "alerts", 1),
    ]
    hub.commit_batch(batch(*page_of(2, stamp(1), alerts=0, evidence=0)))
    hub.record_delivery("splunk", 2, [(1, TENANT, "incident", "i1", "too big")])
    hub.record_delivery("elastic", 2, [(2, TENANT, "incident", "i2", "refused")])
    assert hub.clear_dead_letters("splunk") == 1
    assert hub.dead_letter_counts() == {"elastic": 1}
    assert hub.get_cursor("splunk") == 2  # the cursor stays where it was
    (row,) = [r for r in hub.audit_tail(5) if r.decision == "dead_letters_cleared"]
    assert (row.entity_id, row.detail) == ("splunk", {"dead_letters": 1})


def test_a_change_rejected_again_after_a_replay_is_one_dead_letter(hub: Hub) -> None:
    """`destinations replay` delivers rejected changes again: one rejected again (its cause
    not dealt with) had a second row, so `destinations status` counted it twice."""
    hub.commit_batch(batch(*page_of(3, stamp(1), alerts=0, evidence=0)))
    hub.record_delivery("splunk", 3, [(1, TENANT, "incident", "i1", "too big")])
    hub.record_delivery("elastic", 3, [(1, TENANT, "incident", "i1", "refused")])
    hub.reset_cursor("splunk", 0)  # replay from the first change
    hub.record_delivery(
        "splunk",
        3,
        [(1, TENANT, "incident", "i1", "still too big"), (2, TENANT, "incident", "i2", "odd")],
    )
    assert hub.dead_letter_counts() == {"splunk": 2, "elastic": 1}
    letters = hub.list_dead_letters("splunk")
    assert sorted((d.seq, d.reason) for d in letters) == [(1, "still too big"), (2, "odd")]
    (first,) = [d for d in letters if d.seq == 1]
    (other,) = hub.list_dead_letters("elastic")
    assert first.at >= other.at  # the latest rejection's time


def test_cursors_only_move_forward_unless_reset(hub: Hub) -> None:
    hub.commit_batch(batch(*page_of(3, stamp(1), alerts=1, evidence=0)))
    assert hub.max_seq() == 6
    assert hub.get_cursor("splunk") == 0
    assert hub.set_cursor("splunk", 4) == 4
    assert hub.set_cursor("splunk", 2) == 4  # a late ack never replays
    assert hub.get_cursor("splunk") == 4
    assert hub.set_cursor("splunk", 6) == 6
    with pytest.raises(ValueError, match="never assigned"):
        hub.set_cursor("splunk", 7)
    assert hub.reset_cursor("splunk", 1) == 1
    assert hub.get_cursor("splunk") == 1
    assert hub.get_cursor("elastic") == 0
    assert [(c.name, c.seq) for c in hub.list_cursors()] == [("splunk", 1)]
    assert [c.seq for c in hub.changes_after(hub.get_cursor("splunk"), 100)] == [2, 3, 4, 5, 6]


def test_audit_rows_name_entity_versions_and_seq(hub: Hub) -> None:
    hub.commit_batch(batch(incident_json("1", stamp(1))))
    hub.commit_batch(
        InboundBatch(
            tenant_id=TENANT,
            stream="incidents",
            incidents=batch(incident_json("1", stamp(2))).incidents,
            note="backfill 2024-05",
        )
    )
    summary, update = hub.audit_tail(2)
    assert (update.decision, update.old_version, update.new_version, update.seq) == (
        "update",
        stamp(1),
        stamp(2),
        2,
    )
    assert summary.entity_type == "batch" and summary.detail["note"] == "backfill 2024-05"
    assert summary.detail["seq"] == [2, 2]


def test_records_without_an_id_are_quarantined_not_stored(hub: Hub) -> None:
    keyless = incident_json("x", stamp(1))
    del keyless["id"]
    result = hub.commit_batch(batch(keyless, incident_json("2", stamp(1))))
    assert (result.incidents.inserted, result.quarantined) == (1, 1)
    (row,) = hub.list_quarantine(5)
    assert row.reason == "incident without an id"
    assert '"displayName":"Incident x"' in row.raw


MISFIT = {"@odata.type": "#microsoft.graph.security.processEvidence", "processId": "abc"}
ODD_IP = {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": 12}


def unparsed(hub: Hub, stream: str = "incidents") -> UnparsedTally:
    return UnparsedTally.from_doc(hub.get_state(TENANT, stream))


def test_evidence_kept_unparsed_is_counted_once_per_stored_version_and_kept_by_every_save(
    hub: Hub,
) -> None:
    """`state show`'s count of evidence items that did not fit their type: one per item of
    each alert version stored, in the page's transaction. The lookback re-reads the same
    version every cycle, and the other stream reads it too: neither counts it again. The
    engine's state documents (which know nothing of the count) and a stream error keep it."""
    first = alert_json("a1", "1", stamp(1), evidence=[evidence_json(1), MISFIT])
    page = incident_json("1", stamp(1), alerts=[first])
    hub.commit_batch(batch(page, state={"watermark": stamp(1)}))
    tally = unparsed(hub)
    assert (tally.items, tally.evidence_type, tally.alert_id) == (
        1,
        MISFIT["@odata.type"],
        "a1",
    )
    assert tally.reason == "ProcessEvidence: field 'processId': expected an integer, got a string"
    assert tally.last_seen is not None
    for _ in range(3):  # the lookback, and the alerts stream, read the same version again
        hub.commit_batch(batch(page, state={"watermark": stamp(1)}))
        hub.commit_batch(batch(alerts=[first], stream="alerts", state={"watermark": stamp(1)}))
    assert unparsed(hub).items == 1
    assert unparsed(hub, "alerts").items == 0
    # A new version of the alert holds both items again, and another: 3 more; a backfill
    # page (no state) counts too, and leaves the watermark alone.
    second = alert_json("a1", "1", stamp(2), evidence=[MISFIT, ODD_IP], status="inProgress")
    hub.commit_batch(batch(alerts=[second], stream="alerts"))
    assert unparsed(hub, "alerts").items == 2
    assert unparsed(hub, "alerts").reason == (
        "IpEvidence: field 'ipAddress': expected a string, got a number"
    )
    hub.commit_batch(batch(incident_json("1", stamp(2), alerts=[second]), state=None))
    assert unparsed(hub).items == 1  # the same version: stored already (by the alerts stream)
    hub.commit_batch(batch(incident_json("2", stamp(3)), state={"watermark": stamp(3), "v": 2}))
    hub.record_stream_error(TENANT, "incidents", "RetriableError: 503", retry_at=BASE)
    doc = hub.get_state(TENANT, "incidents")
    assert doc is not None and (doc["watermark"], doc["v"]) == (stamp(3), 2)
    assert unparsed(hub).items == 1
    (row,) = [r for r in hub.list_states() if r.stream == "incidents"]
    assert UnparsedTally.from_doc(row.doc).items == 1  # what `state show` reads


def test_a_failed_commit_counts_no_unparsed_evidence(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count is written with the page: a page that fails is counted when it is read
    again and stored, once."""
    page = incident_json("1", stamp(1), alerts=[alert_json("a1", "1", stamp(1), evidence=[MISFIT])])

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(xdrsync.hub.apply, "write_summary", crash)  # after the state's write
    with pytest.raises(RuntimeError, match="disk on fire"):
        hub.commit_batch(batch(page, state={"watermark": stamp(1)}))
    monkeypatch.undo()
    assert hub.get_state(TENANT, "incidents") is None
    hub.commit_batch(batch(page, state={"watermark": stamp(1)}))
    hub.commit_batch(batch(page, state={"watermark": stamp(1)}))
    assert unparsed(hub).items == 1
