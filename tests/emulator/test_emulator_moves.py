"""The emulator moves an alert to another incident as Defender does without a merge: the alert
and the incident it joins are stamped, the incident it leaves is not (undocumented, so the
harder reading), and listing shows every alert once, under its new incident."""

from __future__ import annotations

import time
from typing import Any


def _open_pair(caller: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    truth = caller.control("GET", "/truth").json()["value"]
    open_ = [i for i in truth if i["status"] in ("active", "inProgress")]
    source = next(i for i in open_ if len(i["alerts"]) >= 2)
    target = next(i for i in open_ if i["id"] != source["id"])
    return source, target


def test_a_move_stamps_the_alert_and_the_incident_it_joins_only(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=20)
    source, target = _open_pair(caller)
    alert = source["alerts"][0]
    reply = caller.control("POST", f"/alerts/{alert['id']}/move", json={"incidentId": target["id"]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["from"], body["to"]) == (source["id"], target["id"])
    moved = body["alert"]
    assert moved["incidentId"] == target["id"]
    assert moved["incidentWebUrl"] == target["incidentWebUrl"]
    assert moved["lastUpdateDateTime"] > alert["lastUpdateDateTime"]
    # Graph's reads: the incident it left lists it no more and keeps its stamp.
    left = caller.get(f"/incidents/{source['id']}", params={"$expand": "alerts"}).json()
    assert alert["id"] not in {a["id"] for a in left["alerts"]}
    assert left["lastUpdateDateTime"] == source["lastUpdateDateTime"]
    joined = caller.get(f"/incidents/{target['id']}", params={"$expand": "alerts"}).json()
    assert alert["id"] in {a["id"] for a in joined["alerts"]}
    assert joined["lastUpdateDateTime"] == moved["lastUpdateDateTime"]
    # Listing from the move on finds the incident it joined, not the one it left.
    since = moved["lastUpdateDateTime"]
    changed = caller.all_pages(
        "/incidents", params={"$filter": f"lastUpdateDateTime ge {since}", "$expand": "alerts"}
    )
    assert [i["id"] for i in changed] == [target["id"]]
    alerts = caller.all_pages("/alerts_v2")
    assert [a["incidentId"] for a in alerts if a["id"] == alert["id"]] == [target["id"]]
    assert caller.get(f"/alerts_v2/{alert['id']}").json()["incidentId"] == target["id"]


def test_a_move_it_cannot_make_is_refused(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=20)
    source, target = _open_pair(caller)
    alert_id = source["alerts"][0]["id"]
    same = caller.control("POST", f"/alerts/{alert_id}/move", json={"incidentId": source["id"]})
    assert same.status_code == 409
    nowhere = caller.control("POST", f"/alerts/{alert_id}/move", json={"incidentId": "999999"})
    assert nowhere.status_code == 404
    unknown = caller.control("POST", "/alerts/nope/move", json={"incidentId": target["id"]})
    assert unknown.status_code == 404
    bare = caller.control("POST", f"/alerts/{alert_id}/move", json={})
    assert bare.status_code == 400
    truth = {i["id"]: i for i in caller.control("GET", "/truth").json()["value"]}
    assert truth[source["id"]] == source  # nothing moved


def test_live_activity_moves_alerts_when_asked_for(run_emulator: Any) -> None:
    (caller,) = run_emulator(incidents=30, activity_per_minute=1200, faults="moved_alert_rate=0.5")
    before = caller.control("GET", "/truth").json()["value"]
    homes = {a["id"]: i["id"] for i in before for a in i["alerts"]}
    time.sleep(2.5)
    caller.control("POST", "/pause")
    after = caller.control("GET", "/truth").json()["value"]
    assert caller.control("GET", "/stats").json()["paused"]
    now = {a["id"]: i["id"] for i in after for a in i["alerts"]}
    assert any(now.get(alert_id) not in (None, home) for alert_id, home in homes.items())
    for incident in after:
        assert all(a["incidentId"] == incident["id"] for a in incident["alerts"])
    listed = [a["id"] for a in caller.all_pages("/alerts_v2")]
    assert len(listed) == len(set(listed)) == len(now)  # each alert once, where it is now
