"""Which alerts an incident has: as Defender states it in the incident's own ``alerts``
listing, and as each alert's ``incidentId`` states it for alerts read after that listing."""

from __future__ import annotations

import json
from pathlib import Path

from hubdata import TENANT, alert_json, batch, incident_json, members, stamp

from xdrsync.hub import Hub
from xdrsync.models import Alert

DOCS = Path(__file__).parents[1] / "models" / "data" / "list_incidents_expand_alerts.json"


def test_microsofts_documented_example_keeps_the_alert_the_incident_lists(hub: Hub) -> None:
    # Graph's documented $expand=alerts answer: incident 2972395 lists an alert whose own
    # incidentId is 28282. The incident's listing is Defender's word on membership.
    documented = json.loads(DOCS.read_text("utf-8"))["value"][0]
    (alert,) = documented["alerts"]
    assert alert["incidentId"] != documented["id"]
    hub.commit_batch(batch(documented))
    assert members(hub, documented["id"]) == ([alert["id"]], [alert["id"]], 1)


def test_an_alert_read_after_the_listing_joins_through_its_incident_id(hub: Hub) -> None:
    listed = alert_json("da1", "7", stamp(1), created=stamp(1))
    hub.commit_batch(batch(incident_json("7", stamp(1), alerts=[listed])))
    later = alert_json("da2", "7", stamp(2), created=stamp(0))
    hub.commit_batch(batch(alerts=[later], stream="alerts"))
    # Creation order, as get_incident always gave it: da2 was created first.
    assert members(hub, "7") == (["da2", "da1"], ["da2", "da1"], 2)


def test_the_newest_listing_decides_and_an_alert_moved_away_leaves(hub: Hub) -> None:
    first = [alert_json(f"da{n}", "7", stamp(1), created=stamp(n)) for n in (1, 2)]
    hub.commit_batch(batch(incident_json("7", stamp(1), alerts=first)))
    # Defender moves da2 to incident 8: the alert now names 8, and 7's new listing drops it.
    moved = alert_json("da2", "8", stamp(2), created=stamp(2))
    hub.commit_batch(
        batch(
            incident_json("7", stamp(2), alerts=[first[0]]),
            incident_json("8", stamp(2), alerts=[moved]),
        )
    )
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    assert members(hub, "8") == (["da2"], ["da2"], 1)


def test_an_incident_read_without_its_alerts_keeps_its_last_listing(hub: Hub) -> None:
    listed = alert_json("da1", "28282", stamp(1))
    hub.commit_batch(batch(incident_json("7", stamp(1), alerts=[listed])))
    bare = incident_json("7", stamp(2), status="inProgress")
    del bare["alerts"]  # read without $expand: the version says nothing about its alerts
    hub.commit_batch(batch(bare))
    assert members(hub, "7") == (["da1"], ["da1"], 1)


def test_an_alert_listed_by_two_incidents_belongs_to_both(hub: Hub) -> None:
    shared = alert_json("da1", "7", stamp(1))
    hub.commit_batch(
        batch(
            incident_json("7", stamp(1), alerts=[shared]),
            incident_json("9", stamp(1), alerts=[shared]),
        )
    )
    assert members(hub, "7")[1] == ["da1"]
    assert members(hub, "9")[1] == ["da1"]


def test_current_alerts_reuses_the_callers_parsed_versions_and_reads_the_rest(hub: Hub) -> None:
    listed = [alert_json(f"da{n}", "7", stamp(1), created=stamp(n)) for n in (1, 2, 3)]
    hub.commit_batch(batch(incident_json("7", stamp(1), alerts=listed)))
    seqs = {c.entity_id: c.seq for c in hub.changes_after(0) if c.entity_type == "alert"}
    mine = Alert.from_graph({**listed[1], "title": "parsed by the caller"})
    stale = Alert.from_graph({**listed[2], "title": "an older version"})
    # da2's current version is known; the seq given for da3 is not its current one.
    known = {seqs["da2"]: mine, seqs["da3"] - 1000: stale}
    current = hub.current_alerts([(TENANT, "7"), (TENANT, "8")], known)
    assert [a.id for a in current[(TENANT, "7")]] == ["da1", "da2", "da3"]
    assert current[(TENANT, "7")][1] is mine
    assert [a.title for a in current[(TENANT, "7")]] == [
        listed[0]["title"],
        "parsed by the caller",
        listed[2]["title"],
    ]
    assert current[(TENANT, "8")] == []


def _seven_and_eight(hub: Hub) -> list[dict[str, object]]:
    """Incident 7 lists da1 and da2, incident 8 lists db1 (all as of minute 1)."""
    sevens = [alert_json(f"da{n}", "7", stamp(1), created=stamp(n)) for n in (1, 2)]
    hub.commit_batch(
        batch(
            incident_json("7", stamp(1), alerts=sevens),
            incident_json("8", stamp(1), alerts=[alert_json("db1", "8", stamp(1))]),
        )
    )
    return sevens


def test_an_alert_moved_later_leaves_an_incident_not_read_again(hub: Hub) -> None:
    # Whether a move bumps the incident the alert left is undocumented: when Defender does
    # not, only the alert's own newer record says it moved, and that later statement wins.
    _seven_and_eight(hub)
    hub.commit_batch(batch(alerts=[alert_json("da2", "8", stamp(5))], stream="alerts"))
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    assert members(hub, "8") == (["da2", "db1"], ["da2", "db1"], 2)


def test_a_move_read_with_the_joined_incident_leaves_the_other_too(hub: Hub) -> None:
    sevens = _seven_and_eight(hub)
    # 8 is bumped and lists da2 (now naming 8 at minute 5); 7 is read at its old version,
    # so its newest listing in the hub still names da2.
    moved = alert_json("da2", "8", stamp(5), created=stamp(2))
    hub.commit_batch(
        batch(
            incident_json("7", stamp(1), alerts=sevens),
            incident_json("8", stamp(5), alerts=[alert_json("db1", "8", stamp(1)), moved]),
        )
    )
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    assert sorted(members(hub, "8")[1]) == ["da2", "db1"]


def test_at_the_listings_version_or_before_the_listing_still_decides(hub: Hub) -> None:
    # Read at the listing's own version and naming another incident: Defender's listing wins
    # the tie, as it does for its documented example (an older alert).
    tied = alert_json("da1", "28282", stamp(3))
    hub.commit_batch(batch(incident_json("7", stamp(3), alerts=[tied])))
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    hub.commit_batch(batch(alerts=[alert_json("da1", "28282", stamp(4))], stream="alerts"))
    assert members(hub, "7") == ([], [], 0)


def test_an_alert_moved_without_a_new_stamp_leaves_the_incident_it_left(hub: Hub) -> None:
    # Whether a move bumps the alert's own lastUpdateDateTime is undocumented: the reconcile
    # may bring it at its old stamp, naming its new incident (new content at one stamp).
    seven = incident_json("7", stamp(2), alerts=[alert_json("da1", "7", stamp(1))])
    eight = incident_json("8", stamp(2), alerts=[alert_json("db1", "8", stamp(1))])
    hub.commit_batch(batch(seven, eight))
    before = hub.max_seq()
    moved = alert_json("da1", "8", stamp(1))
    hub.commit_batch(
        batch(
            incident_json("8", stamp(2), alerts=[alert_json("db1", "8", stamp(1)), moved]),
            incident_json("7", stamp(2), alerts=[]),
        )
    )
    kinds = [(c.entity_id, c.kind) for c in hub.changes_after(before)]
    assert ("da1", "update") in kinds and ("7", "membership") in kinds
    assert members(hub, "8") == (["da1", "db1"], ["da1", "db1"], 2)
    assert members(hub, "7") == ([], [], 0)


def test_an_alert_that_changes_at_its_stamp_stays_where_the_listing_put_it(hub: Hub) -> None:
    # An alert that never named the listing incident (Microsoft's documented example), new
    # content at its stamp read after the listing: the listing still decides.
    documented = alert_json("da1", "28282", stamp(1))
    hub.commit_batch(batch(incident_json("7", stamp(2), alerts=[documented])))
    hub.commit_batch(batch(alerts=[{**documented, "title": "renamed"}], stream="alerts"))
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    # Moved at its stamp, then listed by the incident it left in a version read after that:
    # the listing is the later statement.
    hub.commit_batch(batch(incident_json("9", stamp(2), alerts=[alert_json("dc1", "9", stamp(1))])))
    hub.commit_batch(batch(alerts=[alert_json("dc1", "8", stamp(1))], stream="alerts"))
    assert members(hub, "9") == ([], [], 0)
    listed = alert_json("dc1", "8", stamp(1))
    hub.commit_batch(batch(incident_json("9", stamp(3), alerts=[listed])))
    assert members(hub, "9") == (["dc1"], ["dc1"], 1)


def test_two_contents_of_one_stamp_on_one_page_list_the_alerts_of_the_current_one(
    hub: Hub,
) -> None:
    """Both copies are recorded and the later one on the page is current: the incident lists
    that copy's alerts and its history ends with it, whatever their content hashes."""
    # x belongs to incident 8; a copy of 70 and of 71 lists it too (as Microsoft's documented
    # example lists an alert whose incidentId names another incident).
    x = alert_json("x", "8", stamp(1))
    hub.commit_batch(batch(incident_json("8", stamp(1), alerts=[x])))
    shown = {}
    for incident, with_x_first in (("70", True), ("71", False)):
        own = alert_json(f"{incident}a", incident, stamp(1))
        listings = ([own, x], [own]) if with_x_first else ([own], [own, x])
        first = incident_json(incident, stamp(2), alerts=listings[0], name="first")
        second = incident_json(incident, stamp(2), alerts=listings[1], name="second")
        hub.commit_batch(batch(first, second))
        current = hub.get_incident(TENANT, incident)
        assert current is not None and current.display_name == "second"
        history = hub.incident_history(TENANT, incident)
        assert [v.payload["displayName"] for v in history] == ["first", "second"]
        shown[incident] = sorted(str(a.id) for a in current.alerts)
    # 70's current copy leaves x out; 71's current copy lists it.
    assert shown == {"70": ["70a"], "71": ["71a", "x"]}
