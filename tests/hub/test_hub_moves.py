"""An alert Defender moves to another incident without a merge: the incident it left gets a
``membership`` change when Graph does not show that incident again, in the same transaction,
so that every destination makes its rows again with the alerts it has now."""

from __future__ import annotations

from typing import Any

import pytest
from hubdata import TENANT, alert_json, batch, incident_json, members, stamp

import xdrsync.hub.apply as apply
from xdrsync.hub import ChangeRow, Hub
from xdrsync.hub.payload import version_text


def _seven_and_eight(hub: Hub) -> int:
    """Incident 7 lists da1 and da2, incident 8 lists db1 (all as of minute 1); the seq."""
    sevens = [alert_json(f"da{n}", "7", stamp(1), created=stamp(n)) for n in (1, 2)]
    hub.commit_batch(
        batch(
            incident_json("7", stamp(1), alerts=sevens),
            incident_json("8", stamp(1), alerts=[alert_json("db1", "8", stamp(1))]),
        )
    )
    return hub.max_seq()


def _since(hub: Hub, seq: int) -> list[ChangeRow]:
    return hub.changes_after(seq)


def _kinds(changes: list[ChangeRow]) -> list[tuple[str, str, str]]:
    return [(c.entity_type, c.entity_id, c.kind) for c in changes]


def test_the_incident_an_alert_left_unstamped_gets_a_membership_change(hub: Hub) -> None:
    before = _seven_and_eight(hub)
    # The alert is read from alerts_v2, naming 8 at minute 5; neither incident is read again.
    hub.commit_batch(batch(alerts=[alert_json("da2", "8", stamp(5))], stream="alerts"))
    changes = _since(hub, before)
    assert _kinds(changes) == [
        ("alert", "da2", "update"),
        ("incident", "7", "membership"),
        ("incident", "8", "membership"),
    ]
    left, joined = changes[1], changes[2]
    # 7's own version (minute 1), stated again with the alerts it has now.
    assert left.payload["lastUpdateDateTime"] == stamp(1)
    assert left.version_text == version_text(_ticks(stamp(1)))
    assert left.incident_id == "7" and left.alert_ids is None
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    # 8, which Defender did not stamp either, is stated again with da2 among its alerts.
    assert joined.payload["lastUpdateDateTime"] == stamp(1) and joined.alert_ids is None
    assert members(hub, "8")[1] == ["da2", "db1"]
    audits = {
        a.entity_id: a for a in hub.audit_tail(tenant_id=TENANT) if a.decision == "membership"
    }
    assert (audits["7"].entity_type, audits["7"].seq) == ("incident", left.seq)
    assert audits["7"].detail["alerts_left"] == ["da2"] and audits["7"].detail["joined"] == ["8"]
    assert audits["8"].detail["alerts_joined"] == ["da2"] and audits["8"].detail["left"] == ["7"]
    # The same version read again (the lookback, the other stream) changes nothing.
    seq = hub.max_seq()
    hub.commit_batch(batch(alerts=[alert_json("da2", "8", stamp(5))], stream="alerts"))
    hub.commit_batch(batch(incident_json("8", stamp(1), alerts=[alert_json("db1", "8", stamp(1))])))
    assert hub.max_seq() == seq


def test_read_with_the_incident_it_joined_the_one_it_left_gets_one_too(hub: Hub) -> None:
    before = _seven_and_eight(hub)
    moved = alert_json("da2", "8", stamp(5), created=stamp(2))
    hub.commit_batch(
        batch(incident_json("8", stamp(5), alerts=[alert_json("db1", "8", stamp(1)), moved]))
    )
    assert _kinds(_since(hub, before)) == [
        ("incident", "8", "update"),
        ("alert", "da2", "update"),
        ("incident", "7", "membership"),
    ]


def test_no_membership_change_when_the_incident_it_left_comes_in_the_same_batch(
    hub: Hub,
) -> None:
    before = _seven_and_eight(hub)
    first = alert_json("da1", "7", stamp(1), created=stamp(1))
    moved = alert_json("da2", "8", stamp(5), created=stamp(2))
    hub.commit_batch(
        batch(
            incident_json("7", stamp(5), alerts=[first]),
            incident_json("8", stamp(5), alerts=[alert_json("db1", "8", stamp(1)), moved]),
        )
    )
    assert [k for k in _kinds(_since(hub, before)) if k[2] == "membership"] == []
    assert members(hub, "7") == (["da1"], ["da1"], 1)


def test_a_listing_newer_than_the_move_still_gets_a_membership_change(hub: Hub) -> None:
    """A merge's source read on a page before its alerts: its newer listing leaves them out,
    but a listing only adds alerts (it may be a part), so they stay under it, and in the
    rows made of that version, until their new records come; then the source gets a
    membership change that shows it without them."""
    before = _seven_and_eight(hub)
    first = alert_json("da1", "7", stamp(1), created=stamp(1))
    hub.commit_batch(batch(incident_json("7", stamp(5), alerts=[first])))
    # da2's stored record (minute 1) still names 7: it stays there for now.
    assert members(hub, "7") == (["da1", "da2"], ["da1", "da2"], 2)
    hub.commit_batch(batch(alerts=[alert_json("da2", "8", stamp(5))], stream="alerts"))
    assert _kinds(_since(hub, before)) == [
        ("incident", "7", "update"),
        ("alert", "da2", "update"),
        ("incident", "7", "membership"),
        ("incident", "8", "membership"),
    ]
    assert members(hub, "7") == (["da1"], ["da1"], 1)
    assert members(hub, "8")[1] == ["da2", "db1"]


def test_an_incident_stored_without_its_alerts_keeps_those_that_name_it(hub: Hub) -> None:
    """An incident whose alerts route answered 404 is stored with an empty listing: the
    alerts whose records name it are not taken away (they would be under no incident)."""
    _seven_and_eight(hub)
    hub.commit_batch(batch(incident_json("7", stamp(5), alerts=[])))
    assert members(hub, "7") == (["da1", "da2"], ["da1", "da2"], 2)


def test_an_alert_new_to_the_hub_or_an_incident_it_does_not_hold_make_no_change(
    hub: Hub,
) -> None:
    """A new alert joining an incident is no move (Defender stamps the incident); an
    incident the hub does not hold gets no change, the one it holds does."""
    before = _seven_and_eight(hub)
    hub.commit_batch(batch(alerts=[alert_json("dx1", "8", stamp(5))], stream="alerts"))
    hub.commit_batch(batch(alerts=[alert_json("dy1", "99", stamp(5))], stream="alerts"))
    assert [k for k in _kinds(_since(hub, before)) if k[2] == "membership"] == []
    hub.commit_batch(batch(alerts=[alert_json("dy1", "8", stamp(6))], stream="alerts"))
    moved = [k for k in _kinds(_since(hub, before)) if k[2] == "membership"]
    assert moved == [("incident", "8", "membership")]


def test_moves_within_one_batch_and_away_from_two_incidents(hub: Hub) -> None:
    before = _seven_and_eight(hub)
    hub.commit_batch(
        batch(
            alerts=[
                alert_json("da2", "8", stamp(5)),
                alert_json("da2", "7", stamp(6)),  # and back again
                alert_json("db1", "7", stamp(7)),
            ],
            stream="alerts",
        )
    )
    changes = _since(hub, before)
    membership = {c.entity_id: c.version_text for c in changes if c.kind == "membership"}
    # Each states its incident's own version again (minute 1), with the alerts it has now.
    assert membership == {"7": version_text(_ticks(stamp(1))), "8": version_text(_ticks(stamp(1)))}
    shown, current, count = members(hub, "7")
    assert sorted(shown) == sorted(current) == ["da1", "da2", "db1"] and count == 3
    assert members(hub, "8") == ([], [], 0)


def test_a_failure_after_the_membership_change_leaves_nothing_behind(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _seven_and_eight(hub)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(apply, "write_summary", broken)
    with pytest.raises(RuntimeError):
        hub.commit_batch(batch(alerts=[alert_json("da2", "8", stamp(5))], stream="alerts"))
    assert hub.max_seq() == before and _since(hub, before) == []
    monkeypatch.undo()
    hub.commit_batch(batch(alerts=[alert_json("da2", "8", stamp(5))], stream="alerts"))
    assert [c.seq for c in _since(hub, before)] == [before + 1, before + 2, before + 3]


def _ticks(text: str) -> int:
    from xdrsync.hub.payload import ticks_from_text

    ticks = ticks_from_text(text)
    assert ticks is not None
    return ticks
