"""The queue index (console/index.py): queue_entry follows the hub's change sequence."""

from __future__ import annotations

import random
from typing import Any

import pytest
from consoledata import (
    TENANT_A,
    TENANT_B,
    alert_json,
    at,
    comment,
    commit,
    evidence,
    incident_json,
    index,
    rows,
    runner,
)
from sqlalchemy import select

from xdrsync.console.index import (
    QUEUE_DESTINATION,
    SEARCH_CAP,
    QueueIndex,
    compute_rows,
    decode_list,
    encode_list,
    search_text,
    severity_rank,
    upsert_rows,
)
from xdrsync.hub import Hub
from xdrsync.hub import schema as s


def _world(hub: Hub) -> None:
    a1 = alert_json(
        TENANT_A,
        "da1",
        "1",
        source="microsoftDefenderForEndpoint",
        category="InitialAccess",
        first=5,
        last=9,
        items=[evidence("device", "pc01"), evidence("user", "Bob")],
        comments=[comment("Alert Note")],
    )
    a2 = alert_json(
        TENANT_A,
        "da2",
        "1",
        source="microsoftDefenderForOffice365",
        category="Phishing",  # not a MITRE tactic
        first=2,
        last=7,
        items=[evidence("ip", "10.0.0.1")],
    )
    commit(
        hub,
        TENANT_A,
        [
            incident_json(
                TENANT_A,
                "1",
                updated=10,
                severity="high",
                owner="ana@contoso.com",
                tags=["phish", "a|b"],
                alerts=[a1, a2],
                comments=[comment("Looked at it, CALLED the user")],
                name="Multi-stage Attack",
            ),
            incident_json(TENANT_A, "2", updated=11, severity="informational", created=None),
        ],
    )
    commit(
        hub,
        TENANT_B,
        [
            incident_json(
                TENANT_B, "1", updated=12, severity="unknownFutureValue", status="resolved"
            )
        ],
    )


def test_rows_match_the_incidents(hub: Hub) -> None:
    _world(hub)
    assert index(hub) == hub.max_seq()
    found = rows(hub)
    assert set(found) == {(TENANT_A, "1"), (TENANT_A, "2"), (TENANT_B, "1")}
    one = found[(TENANT_A, "1")]
    assert one["display_name"] == "Multi-stage Attack"
    assert (one["severity"], one["severity_rank"]) == ("high", 3)
    assert one["assigned_to"] == "ana@contoso.com"
    assert decode_list(one["tags"]) == ["phish", "a|b"]
    assert one["products"] == "|microsoftDefenderForEndpoint|microsoftDefenderForOffice365|"
    assert decode_list(one["tactics"]) == ["InitialAccess"]
    assert one["alert_count"] == 2
    assert one["first_activity_at"] == at(2)
    assert one["last_activity_at"] == at(9)
    assert one["created_at"] == at(0)
    assert one["last_update_at"] == at(10)
    assert one["merged_into"] is None
    for text in ("multi-stage attack", "pc01", "bob", "10.0.0.1", "called the user", "alert note"):
        assert text in one["search"]
    assert one["search"] == one["search"].lower()
    two = found[(TENANT_A, "2")]
    assert (two["severity_rank"], two["alert_count"], two["created_at"]) == (0, 0, None)
    assert (two["tags"], two["products"], two["first_activity_at"]) == ("|", "|", None)
    assert found[(TENANT_B, "1")]["severity_rank"] == -1
    assert hub.get_cursor(QUEUE_DESTINATION) == hub.max_seq()


def test_an_alert_change_updates_its_incidents_row(hub: Hub) -> None:
    _world(hub)
    index(hub)
    changed = alert_json(
        TENANT_A,
        "da2",
        "1",
        updated=20,
        source="microsoftDefenderForIdentity",
        category="LateralMovement",
        first=1,
        last=30,
        items=[evidence("ip", "192.168.7.7")],
    )
    commit(hub, TENANT_A, alerts=[changed])
    assert index(hub) == 1
    one = rows(hub)[(TENANT_A, "1")]
    assert decode_list(one["products"]) == [
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForIdentity",
    ]
    assert decode_list(one["tactics"]) == ["InitialAccess", "LateralMovement"]
    assert (one["first_activity_at"], one["last_activity_at"]) == (at(1), at(30))
    assert "192.168.7.7" in one["search"] and "10.0.0.1" not in one["search"]


def test_an_alert_that_moves_updates_both_incidents(hub: Hub) -> None:
    _world(hub)
    index(hub)
    moved = alert_json(TENANT_A, "da2", "2", updated=20)
    # The new incident lists it; the old one's newest listing drops it.
    commit(
        hub,
        TENANT_A,
        [
            incident_json(TENANT_A, "1", updated=21, alerts=[alert_json(TENANT_A, "da1", "1")]),
            incident_json(TENANT_A, "2", updated=21, alerts=[moved]),
        ],
    )
    index(hub)
    found = rows(hub)
    assert found[(TENANT_A, "1")]["alert_count"] == 1
    assert found[(TENANT_A, "2")]["alert_count"] == 1
    # An alert-only move (no new listing): the old incident's row is recomputed as well.
    commit(hub, TENANT_A, alerts=[alert_json(TENANT_A, "da1", "2", updated=30)])
    index(hub)
    found = rows(hub)
    assert found == _fresh(hub)


def _fresh(hub: Hub) -> dict[tuple[str, str], dict[str, Any]]:
    """What every row would be if computed now from scratch."""
    with hub.reading() as conn:
        keys = [(r.tenant_id, r.id) for r in conn.execute(select(s.incident))]
        computed = compute_rows(conn, keys, 0)
    return {
        (r["tenant_id"], r["incident_id"]): {k: v for k, v in r.items() if k != "seq"}
        for r in computed
    }


def test_a_merge_fills_merged_into(hub: Hub) -> None:
    _world(hub)
    commit(
        hub,
        TENANT_A,
        [incident_json(TENANT_A, "2", updated=40, status="redirected", redirect="1")],
    )
    index(hub)
    assert rows(hub)[(TENANT_A, "2")]["merged_into"] == "1"


@pytest.mark.parametrize("batch_size", [1, 3, 500])
def test_any_batch_size_gives_the_same_rows(hub: Hub, batch_size: int) -> None:
    _world(hub)
    commit(hub, TENANT_A, alerts=[alert_json(TENANT_A, "da1", "1", updated=50, last=60)])
    index(hub, batch_size)
    assert rows(hub) == _fresh(hub)


def test_replay_rebuilds_the_table(hub: Hub) -> None:
    _world(hub)
    index(hub)
    before = rows(hub)
    with hub.writing() as conn:
        conn.exec_driver_sql("UPDATE queue_entry SET display_name = 'wrong', alert_count = 99")
        conn.exec_driver_sql(
            "INSERT INTO queue_entry SELECT 'ghost', incident_id, seq, display_name, severity, "
            "severity_rank, status, assigned_to, classification, determination, tags, products, "
            "tactics, alert_count, created_at, last_update_at, first_activity_at, "
            f"last_activity_at, merged_into, search FROM queue_entry WHERE tenant_id = '{TENANT_A}'"
        )
    again = runner(hub)
    again.replay_from(1)
    assert hub.get_cursor(QUEUE_DESTINATION) == 0
    assert rows(hub) == {}
    again.publish()
    assert rows(hub) == before


def test_a_partial_replay_keeps_the_rows_and_moves_the_cursor_back(hub: Hub) -> None:
    _world(hub)
    index(hub)
    before = rows(hub)
    again = runner(hub)
    again.replay_from(3)
    assert hub.get_cursor(QUEUE_DESTINATION) == 2
    assert rows(hub) == before
    assert again.publish() == hub.max_seq() - 2
    assert rows(hub) == before


def test_a_kill_between_delivery_and_ack_is_harmless(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    _world(hub)
    first = runner(hub, batch_size=2)

    def killed(*_args: object, **_kw: object) -> int:
        raise KeyboardInterrupt("killed before the ack")

    monkeypatch.setattr(hub, "record_delivery", killed)
    with pytest.raises(KeyboardInterrupt):
        first.publish()
    monkeypatch.undo()
    # The rows of the first batch and its cursor were written together.
    assert hub.get_cursor(QUEUE_DESTINATION) == 2
    # A new process delivers everything (again, where the ack was lost): same rows.
    index(hub)
    assert rows(hub) == _fresh(hub)
    # Delivering the same changes twice changes nothing.
    destination = QueueIndex(hub)
    changes = hub.changes_after(0, 100)
    destination.deliver(changes)
    destination.deliver(changes)
    assert rows(hub) == _fresh(hub)
    assert hub.get_cursor(QUEUE_DESTINATION) == hub.max_seq()


def test_a_row_read_earlier_never_replaces_a_newer_one(hub: Hub) -> None:
    _world(hub)
    index(hub)
    with hub.reading() as conn:
        old = compute_rows(conn, [(TENANT_A, "1")], 1)
    old[0]["display_name"] = "stale"
    with hub.writing() as conn:
        upsert_rows(conn, old)
    assert rows(hub)[(TENANT_A, "1")]["display_name"] == "Multi-stage Attack"


def test_the_search_text_is_capped(hub: Hub) -> None:
    many = [comment("x" * 1000 + str(n), minute=n) for n in range(40)]
    commit(hub, TENANT_A, [incident_json(TENANT_A, "9", comments=many)])
    index(hub)
    assert len(rows(hub)[(TENANT_A, "9")]["search"]) <= 16 * 1024


def _search_text_plainly(texts: list[str]) -> str:
    """`search_text` as first written: each text cleaned, then the distinct ones kept until
    the cap."""
    out: list[str] = []
    size = 0
    for text in dict.fromkeys(t.strip().lower() for t in texts):
        if not text:
            continue
        out.append(text)
        size += len(text) + 1
        if size >= SEARCH_CAP:
            break
    return "\n".join(out)[:SEARCH_CAP]


@pytest.mark.parametrize("seed", range(20))
def test_the_search_text_is_the_plain_one(seed: int) -> None:
    # Texts that differ only in case or spaces, repeats, blanks, and totals on either side
    # of the cap (the fast path returns everything joined only below it).
    pick = random.Random(seed)
    words = [pick.choice(["Alpha", "alpha ", " ALPHA", "", "  ", "b" * pick.randint(1, 9000)])]
    words += [f"{pick.choice(['x', 'X', ' x'])}{n}" * pick.randint(1, 400) for n in range(30)]
    texts = [pick.choice(words) for _ in range(pick.randint(0, 60))]
    for extra in range(-3, 4):  # exactly around the cap
        fill = "y" * max(0, SEARCH_CAP - 6 - 1 + extra)
        assert search_text(["ab12c", fill, *texts]) == _search_text_plainly(["ab12c", fill, *texts])
    assert search_text(texts) == _search_text_plainly(texts)


def test_comments_stay_searchable_on_an_incident_with_many_entities(hub: Hub) -> None:
    # The search text is capped: evidence (150 long names here) goes after the comments, so
    # what the cap cuts is never an analyst's note.
    items = [evidence("user", f"user-{n:03d}-" + "y" * 120) for n in range(150)]
    note = comment("Ransom note found on the file server")
    alert = alert_json(TENANT_A, "da9", "9", items=items, comments=[comment("Alert triage")])
    commit(hub, TENANT_A, [incident_json(TENANT_A, "9", alerts=[alert], comments=[note])])
    index(hub)
    search = rows(hub)[(TENANT_A, "9")]["search"]
    assert len(search) <= 16 * 1024 and "user-000" in search
    assert "ransom note found" in search and "alert triage" in search


def test_list_encoding_round_trips_awkward_values() -> None:
    values = ["plain", "with|bar", "100%", "a_b", "%7C"]
    assert decode_list(encode_list(values)) == values
    assert encode_list([]) == "|"
    known = ("informational", "LOW", "medium", "high")
    assert [severity_rank(v) for v in known] == [0, 1, 2, 3]
    # Missing or unknown: the queue's "unknown"; newer than this version: High's rank, as
    # the log tables and Sentinel read it (tables.vocab.NEWER_SEVERITY).
    assert [severity_rank(v) for v in (None, "", "unknown", "unknownFutureValue")] == [-1] * 4
    assert [severity_rank(v) for v in ("critical", "x")] == [3, 3]


def test_long_hostile_categories_are_read_but_not_kept_in_memory() -> None:
    import json

    from xdrsync.console import index
    from xdrsync.tables import vocab

    long_name = "Initial" + " " * 300 + "Access"  # a tactic's name, however it is spaced
    listed = json.dumps([long_name, "x" * 2000, "Execution"])
    before = (
        vocab._cached_tactic.cache_info().currsize,
        index._cached_tactics.cache_info().currsize,
    )
    assert index._tactics(listed) == ("InitialAccess", "Execution")
    after = (
        vocab._cached_tactic.cache_info().currsize,
        index._cached_tactics.cache_info().currsize,
    )
    assert after[1] == before[1]  # the long list is not kept
    assert after[0] <= before[0] + 1  # only "Execution" may be new there
