"""One incident or alert as the console shows it (console/detail.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from consoledata import (
    NAMES,
    TENANT_A,
    TENANT_B,
    alert_json,
    at,
    comment,
    commit,
    evidence,
    incident_json,
    index,
)

from xdrsync.console.detail import alert_detail, incident_detail
from xdrsync.hub import Hub
from xdrsync.hub.payload import comment_key, ticks_from_text
from xdrsync.hub.records import NewEdit, Settlement, Written
from xdrsync.models.wire import parse_datetime


def _world(hub: Hub) -> None:
    shared = evidence("device", "pc01", verdict="malicious", minute=3)
    a1 = alert_json(TENANT_A, "da1", "1", first=5, last=9, category="InitialAccess", items=[shared])
    a2 = alert_json(
        TENANT_A,
        "da2",
        "1",
        created=1,
        first=2,
        last=4,
        items=[evidence("device", "pc01", verdict="suspicious"), evidence("ip", "10.0.0.1")],
    )
    other = alert_json(TENANT_A, "da3", "2", items=[evidence("device", "pc01")])
    commit(
        hub,
        TENANT_A,
        [
            incident_json(
                TENANT_A, "1", updated=10, alerts=[a1, a2], comments=[comment("first look", 6)]
            ),
            incident_json(TENANT_A, "2", updated=10, alerts=[other]),
            incident_json(TENANT_A, "3", updated=10, status="redirected", redirect="1"),
        ],
    )
    # A second version of incident 1: its severity changed.
    commit(
        hub,
        TENANT_A,
        [
            incident_json(
                TENANT_A,
                "1",
                updated=20,
                severity="high",
                alerts=[a1, a2],
                comments=[comment("first look", 6)],
            )
        ],
    )
    commit(hub, TENANT_B, [incident_json(TENANT_B, "1", alerts=[alert_json(TENANT_B, "db1", "1")])])
    index(hub)


def test_an_incident_page_has_every_part(hub: Hub) -> None:
    _world(hub)
    page = incident_detail(hub, TENANT_A, "1", NAMES)
    assert page is not None
    assert page["id"] == "contoso~1"
    assert page["severity"] == "high"
    assert page["alertCount"] == 2
    assert page["description"] == "About 1"
    assert page["incidentWebUrl"].endswith("/incidents/1")
    assert page["mergedFrom"] == ["contoso~3"]
    assert [a["id"] for a in page["alerts"]] == ["contoso~da1", "contoso~da2"]
    assert page["alerts"][0]["mitreTechniques"] == ["T1059.001"]
    assert page["alerts"][0]["firstActivityDateTime"] == "2026-11-01T10:05:00Z"
    devices = page["entities"]["device"]
    (pc01,) = devices
    assert pc01["alertIds"] == ["contoso~da1", "contoso~da2"]
    assert pc01["verdict"] == "malicious"  # the most telling of its mentions
    assert pc01["otherIncidents"] == 1  # incident 2 has it too
    # Its key attributes, by advanced hunting's names.
    assert pc01["attributes"]["DeviceName"] == "pc01.contoso.com"
    assert pc01["attributes"]["DeviceId"] == "mde-pc01"
    assert page["entities"]["ip"][0]["otherIncidents"] == 0
    nodes = {n["id"]: n["kind"] for n in page["graph"]["nodes"]}
    assert nodes["contoso~1"] == "incident" and nodes["contoso~da2"] == "alert"
    edges = {(e["source"], e["target"]) for e in page["graph"]["edges"]}
    pc = next(n for n in nodes if n.startswith("entity:device:"))
    assert {("contoso~1", "contoso~da1"), ("contoso~da1", pc), ("contoso~da2", pc)} <= edges
    times = [t["at"] for t in page["timeline"] if t["at"] is not None]
    assert times == sorted(times, key=parse_datetime)
    assert {t["kind"] for t in page["timeline"]} == {"alert", "evidence", "comment", "version"}
    assert page["comments"][0]["text"] == "first look"
    assert page["comments"][0]["source"] == "defender"
    assert [h["changed"] for h in page["history"]] == [
        {},
        {"severity": {"from": "medium", "to": "high"}},
    ]
    assert [a["decision"] for a in page["audit"]] == ["insert", "update"]
    assert page["auditTotal"] == 2
    assert page["edits"] == []


def test_pending_edits_show_on_the_page(hub: Hub) -> None:
    _world(hub)
    hub.enqueue_edits(
        [
            NewEdit(TENANT_A, "incident", "1", "status", "active", "resolved", "ana", "console"),
            NewEdit(TENANT_A, "incident", "1", "comment", None, "on it", "ana", "console"),
            NewEdit(TENANT_A, "alert", "da1", "status", "new", "inProgress", "bo", "sentinel:s1"),
        ]
    )
    page = incident_detail(hub, TENANT_A, "1", NAMES)
    assert page is not None
    assert (page["status"], page["syncState"]) == ("resolved", "pending")
    assert page["alerts"][0]["status"] == "inProgress"
    assert [(e["field"], e["state"], e["entityId"]) for e in page["edits"]] == [
        ("status", "pending", "contoso~1"),
        ("comment", "pending", "contoso~1"),
        ("status", "pending", "contoso~da1"),
    ]
    queued = [c for c in page["comments"] if c["state"] == "pending"]
    assert [(c["text"], c["source"], c["createdBy"]) for c in queued] == [
        ("on it", "workspace", "ana")
    ]


def test_unknown_and_other_tenants_records_are_none(hub: Hub) -> None:
    _world(hub)
    assert incident_detail(hub, TENANT_A, "404", NAMES) is None
    assert incident_detail(hub, TENANT_B, "2", NAMES) is None
    assert alert_detail(hub, TENANT_B, "da1", NAMES) is None


def test_an_alert_page(hub: Hub) -> None:
    _world(hub)
    page = alert_detail(hub, TENANT_A, "da2", NAMES)
    assert page is not None
    assert (page["id"], page["alertId"], page["incidentId"]) == ("contoso~da2", "da2", "contoso~1")
    assert [e["kind"] for e in page["evidence"]] == ["device", "ip"]
    assert page["evidence"][1]["entityKey"] == "10.0.0.1"
    assert page["history"][0]["changed"] == {}
    assert page["edits"] == []


def test_alerts_show_their_enum_values_as_members_however_graph_spelled_them(hub: Hub) -> None:
    # Some of Graph's answers say "Resolved", "High", "FalsePositive", and "Clean" for
    # notMalicious (microsoft-apis.md §2.3): the page's styles and labels go by members.
    spelled = alert_json(TENANT_A, "sp1", "9", status="Resolved")
    spelled.update(severity="High", classification="FalsePositive", determination="Clean")
    commit(hub, TENANT_A, [incident_json(TENANT_A, "9", updated=10, alerts=[spelled])])
    for page in (
        alert_detail(hub, TENANT_A, "sp1", NAMES),
        incident_detail(hub, TENANT_A, "9", NAMES),
    ):
        assert page is not None
        shown = page if "alertId" in page else page["alerts"][0]
        assert [shown[k] for k in ("status", "severity", "classification", "determination")] == [
            "resolved",
            "high",
            "falsePositive",
            "notMalicious",
        ]


def _posted(hub: Hub, text: str, key: str | None) -> None:
    """A comment written in the console that Defender has confirmed (``key``: the comment
    Defender's answer listed; None when it listed none)."""
    (edit_id,) = hub.enqueue_edits(
        [NewEdit(TENANT_A, "incident", "1", "comment", None, text, "ana", "console")]
    )
    (row,) = hub.edits(ids=[edit_id])
    hub.settle_edits([Settlement(row, "confirmed", "comment_posted", {}, comment_key=key)])


def _ours(hub: Hub) -> list[tuple[str, str, str, str]]:
    page = incident_detail(hub, TENANT_A, "1", NAMES)
    assert page is not None
    return [
        (c["text"], c["state"], c["source"], c["createdBy"])
        for c in page["comments"]
        if c["text"] != "first look"
    ]


def _read_back(hub: Hub, *texts: str, made: datetime | None = None) -> None:
    """The next sync reads incident 1 with these comments, made by xdrsync's app (at
    ``made``; by default 30 minutes after BASE)."""
    posted = [comment(text, 30, author="xdrsync app") for text in texts]
    if made is not None:
        for item in posted:
            item["createdDateTime"] = made.isoformat().replace("+00:00", "Z")
    commit(
        hub,
        TENANT_A,
        [incident_json(TENANT_A, "1", updated=40, comments=[comment("first look", 6), *posted])],
    )


def test_a_confirmed_comment_stays_shown_until_it_is_read_back(hub: Hub) -> None:
    _world(hub)
    _posted(hub, "contained", comment_key(at(30), "xdrsync app", "contained"))
    # Defender has it; the sync has not read it yet: still shown, as confirmed.
    assert _ours(hub) == [("contained", "confirmed", "workspace", "ana")]
    _read_back(hub, "contained")
    # Read back: shown once, as the stored comment, still by its author.
    assert _ours(hub) == [("contained", "synced", "workspace", "ana")]


def test_a_confirmed_comment_defender_did_not_list_is_matched_by_its_text(hub: Hub) -> None:
    _world(hub)
    _posted(hub, "escalated", None)
    assert _ours(hub) == [("escalated", "confirmed", "workspace", "ana")]
    _read_back(hub, "escalated", made=datetime.now(UTC))
    assert [(text, state) for text, state, _, _ in _ours(hub)] == [("escalated", "synced")]


def test_comments_and_the_timeline_are_in_time_order_within_a_second(hub: Hub) -> None:
    # Times on a whole second are written without a fraction (`10:06:00Z`), which sorts
    # after `10:06:00.300000Z` as text, though it comes first.
    notes = [comment("later", 6.005), comment("sooner", 6)]
    commit(hub, TENANT_A, [incident_json(TENANT_A, "7", comments=notes)])
    index(hub)
    page = incident_detail(hub, TENANT_A, "7", NAMES)
    assert page is not None
    assert [c["text"] for c in page["comments"]] == ["sooner", "later"]
    said = [t["text"] for t in page["timeline"] if t["kind"] == "comment"]
    assert said == ["sooner", "later"]


def test_the_history_says_who_made_each_version(hub: Hub) -> None:
    # Defender's own identity (an automation, an analyst), or the workspace user whose edit
    # a version is the echo of (Defender names only the app for it).
    first = incident_json(TENANT_A, "5", updated=1)
    first["lastModifiedBy"] = "Automation"
    commit(hub, TENANT_A, [first])
    echo = incident_json(TENANT_A, "5", updated=2, status="inProgress")
    echo["lastModifiedBy"] = "API-App:00000000-0000-0000-0000-000000000001"
    version = ticks_from_text(echo["lastUpdateDateTime"])
    assert version is not None
    hub.settle_edits([], Written(TENANT_A, "incident", "5", version, "ana", "console", {}))
    commit(hub, TENANT_A, [echo])
    portal = incident_json(TENANT_A, "5", updated=3, status="inProgress", severity="high")
    portal["lastModifiedBy"] = "bob@contoso.com"
    commit(hub, TENANT_A, [portal])
    index(hub)
    page = incident_detail(hub, TENANT_A, "5", NAMES)
    assert page is not None
    shown = [(v["modifiedBy"], v["viaWorkspace"], v["changed"]) for v in page["history"]]
    assert shown == [
        ("Automation", False, {}),
        ("ana", True, {"status": {"from": "active", "to": "inProgress"}}),
        ("bob@contoso.com", False, {"severity": {"from": "medium", "to": "high"}}),
    ]
