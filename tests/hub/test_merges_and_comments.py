"""Comments exactly once, merges that keep absorbed comments reachable, alerts that move."""

from __future__ import annotations

from hubdata import TENANT, alert_json, batch, comment_json, incident_json, stamp

from xdrsync.hub import Hub


def test_comments_are_stored_exactly_once_across_rereads(hub: Hub) -> None:
    first = comment_json("isolating the device", 1)
    second = comment_json("reimaged", 2, author="Bob")
    hub.commit_batch(batch(incident_json("1", stamp(1), comments=[first])))
    hub.commit_batch(batch(incident_json("1", stamp(1), comments=[first])))
    hub.commit_batch(batch(incident_json("1", stamp(2), comments=[first, second])))
    hub.commit_batch(batch(incident_json("1", stamp(2), comments=[first, second])))
    hub.commit_batch(batch(incident_json("1", stamp(1), comments=[first])))  # stale re-read
    listed = hub.list_comments(TENANT, "1")
    assert [(c.comment, c.created_by) for c in listed] == [
        ("isolating the device", "Ann Analyst"),
        ("reimaged", "Bob"),
    ]
    assert hub.counts()[TENANT]["comments"] == 2


def test_the_same_text_twice_by_different_people_is_two_comments(hub: Hub) -> None:
    hub.commit_batch(
        batch(
            incident_json(
                "1",
                stamp(1),
                comments=[comment_json("ack", 1, "Ann"), comment_json("ack", 1, "Bob")],
            )
        )
    )
    assert len(hub.list_comments(TENANT, "1")) == 2


def test_comments_are_never_deleted(hub: Hub) -> None:
    hub.commit_batch(batch(incident_json("1", stamp(1), comments=[comment_json("kept", 1)])))
    hub.commit_batch(batch(incident_json("1", stamp(2), comments=[])))
    assert [c.comment for c in hub.list_comments(TENANT, "1")] == ["kept"]


def test_merge_links_the_absorbed_incident_and_moves_its_alert(hub: Hub) -> None:
    alert_on_a = alert_json("x", "A", stamp(1))
    hub.commit_batch(
        batch(
            incident_json("A", stamp(1), alerts=[alert_on_a], comments=[comment_json("on A", 1)]),
            incident_json(
                "B",
                stamp(1),
                alerts=[alert_json("y", "B", stamp(1))],
                comments=[comment_json("on B", 2)],
            ),
        )
    )
    # Defender merges A into B: A is redirected and keeps its comments; B gets A's alert.
    hub.commit_batch(
        batch(
            incident_json(
                "B",
                stamp(5),
                alerts=[alert_json("y", "B", stamp(1)), alert_json("x", "B", stamp(5))],
                comments=[comment_json("on B", 2)],
            ),
            incident_json(
                "A", stamp(5), status="redirected", redirect="B", comments=[comment_json("on A", 1)]
            ),
        )
    )
    # A lookback re-read of the old A (still listing the alert) must not pull it back.
    hub.commit_batch(batch(incident_json("A", stamp(1), alerts=[alert_on_a])))

    assert hub.get_merged_from(TENANT, "B") == ["A"]
    assert hub.get_merged_from(TENANT, "A") == []
    survivor = hub.get_incident(TENANT, "B")
    absorbed = hub.get_incident(TENANT, "A")
    assert survivor is not None and absorbed is not None
    assert sorted(str(a.id) for a in survivor.alerts) == ["x", "y"]
    assert list(absorbed.alerts) == []
    assert [(c.comment, c.incident_id) for c in hub.list_comments(TENANT, "B")] == [
        ("on A", "A"),
        ("on B", "B"),
    ]
    assert [(c.comment, c.incident_id) for c in hub.list_comments(TENANT, "A")] == [("on A", "A")]
    listed = {row.id: row for row in hub.list_incidents(TENANT)}
    assert listed["A"].merged_into == "B" and listed["A"].status == "redirected"
    assert (listed["A"].alert_count, listed["B"].alert_count) == (0, 2)
    assert [v.payload["incidentId"] for v in hub.alert_history(TENANT, "x")] == ["A", "B"]


def test_chained_merges_reach_every_absorbed_incident(hub: Hub) -> None:
    hub.commit_batch(
        batch(
            incident_json(
                "A", stamp(2), status="redirected", redirect="B", comments=[comment_json("a", 1)]
            ),
            incident_json(
                "B", stamp(3), status="redirected", redirect="C", comments=[comment_json("b", 2)]
            ),
            incident_json("C", stamp(4), comments=[comment_json("c", 3)]),
        )
    )
    assert hub.get_merged_from(TENANT, "C") == ["A", "B"]
    assert [c.comment for c in hub.list_comments(TENANT, "C")] == ["a", "b", "c"]


def test_a_comment_a_merge_copied_to_the_survivor_is_listed_once(hub: Hub) -> None:
    """Defender's comment migration (in preview, reference §1.6) may copy the source's
    comments to the survivor: the same comment (time, author, text) is then both incidents'.
    The survivor lists it once, as its own (so Sentinel mirrors it once); a comment that
    stayed behind is still listed as the source's."""
    copied, stayed = comment_json("isolated the laptop", 1), comment_json("left on A", 2)
    hub.commit_batch(
        batch(
            incident_json(
                "A", stamp(5), status="redirected", redirect="B", comments=[copied, stayed]
            ),
            incident_json("B", stamp(5), comments=[comment_json("on B", 3), copied]),
        )
    )
    assert [(c.comment, c.incident_id) for c in hub.list_comments(TENANT, "B")] == [
        ("isolated the laptop", "B"),
        ("left on A", "A"),
        ("on B", "B"),
    ]


def test_alert_comments_are_kept_with_the_alert_payload(hub: Hub) -> None:
    alert = alert_json("x", "1", stamp(1), comments=[comment_json("alert note", 1)])
    hub.commit_batch(batch(incident_json("1", stamp(1), alerts=[alert])))
    hub.commit_batch(batch(incident_json("1", stamp(1), alerts=[alert])))
    assert hub.counts()[TENANT]["comments"] == 1
    stored = hub.get_alert(TENANT, "x")
    assert stored is not None and [c.comment for c in stored.comments] == ["alert note"]
    assert hub.list_comments(TENANT, "1") == []  # incident comments only
