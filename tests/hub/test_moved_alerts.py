"""An alert Defender moved to another incident belongs to that one only, even when the incident
it left is not read again (whether a move bumps that incident's ``lastUpdateDateTime`` is
undocumented): between the incident's listing and the alert's own ``incidentId``, the later
version wins. The hub reads for the log tables' moves: an alert's incident before a seq, and
when each incident step was committed."""

from __future__ import annotations

from hubdata import TENANT, alert_json, batch, incident_json, members, stamp

from xdrsync.hub import Hub


def _two_incidents(hub: Hub) -> list[dict[str, object]]:
    """Incident 7 lists da1 and da2, incident 8 lists db1 (all as of minute 1)."""
    sevens = [alert_json(f"da{n}", "7", stamp(1), created=stamp(n)) for n in (1, 2)]
    hub.commit_batch(
        batch(
            incident_json("7", stamp(1), alerts=sevens),
            incident_json("8", stamp(1), alerts=[alert_json("db1", "8", stamp(1))]),
        )
    )
    return sevens


def test_an_alert_moved_away_leaves_the_incident_whose_old_listing_names_it(hub: Hub) -> None:
    sevens = _two_incidents(hub)
    # Defender moves da2 to incident 8: 8 is bumped and lists it, 7 is read unchanged (same
    # version, so its listing in the hub still names da2), da2 names 8 at a later version.
    moved = alert_json("da2", "8", stamp(5), created=stamp(2))
    hub.commit_batch(
        batch(
            incident_json("7", stamp(1), alerts=sevens),
            incident_json("8", stamp(5), alerts=[alert_json("db1", "8", stamp(1)), moved]),
        )
    )
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    assert sorted(members(hub, "8")[1]) == ["da2", "db1"]


def test_the_move_counts_when_only_the_alerts_stream_reads_it(hub: Hub) -> None:
    _two_incidents(hub)
    # Neither incident is read again: the alert's own newer record is all the hub knows.
    hub.commit_batch(batch(alerts=[alert_json("da2", "8", stamp(5))], stream="alerts"))
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    assert members(hub, "8") == (["da2", "db1"], ["da2", "db1"], 2)


def test_at_the_listings_version_or_before_the_listing_still_decides(hub: Hub) -> None:
    # The same alert read at the listing's own version naming another incident: Defender's
    # listing wins a tie, as it wins for its documented example (an older alert).
    tied = alert_json("da1", "28282", stamp(3))
    hub.commit_batch(batch(incident_json("7", stamp(3), alerts=[tied])))
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    hub.commit_batch(batch(alerts=[alert_json("da1", "28282", stamp(4))], stream="alerts"))
    assert members(hub, "7") == ([], [], 0)


def test_an_alerts_incident_before_a_seq_and_when_incident_steps_were_committed(
    hub: Hub,
) -> None:
    _two_incidents(hub)
    before = hub.max_seq() + 1
    hub.commit_batch(batch(alerts=[alert_json("da2", "8", stamp(5))], stream="alerts"))
    keys = [(TENANT, "da1"), (TENANT, "da2"), (TENANT, "nope")]
    assert hub.alert_incidents_before(keys, before) == {(TENANT, "da1"): "7", (TENANT, "da2"): "7"}
    after = hub.max_seq() + 1
    assert hub.alert_incidents_before(keys, after)[(TENANT, "da2")] == "8"
    changes = {c.seq: c for c in hub.changes_after(0)}
    steps = hub.incident_steps([(TENANT, "7"), (TENANT, "8")], after, after)
    for step in (*steps[(TENANT, "7")], *steps[(TENANT, "8")]):
        assert step.recorded_at == changes[step.seq].at
