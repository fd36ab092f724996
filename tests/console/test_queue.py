"""The queue (console/queue.py): filters, sorts, keyset pages, tenant scoping, sync state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from consoledata import (
    BASE,
    NAMES,
    TENANT_A,
    TENANT_B,
    alert_json,
    at,
    commit,
    incident_json,
    index,
    open_hub,
    rows,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from xdrsync.console.index import decode_list
from xdrsync.console.queue import (
    SORTS,
    QueueFilter,
    QueueItem,
    list_queue,
    queue_stats,
    severity_name,
)
from xdrsync.hub import Hub
from xdrsync.hub import schema as s
from xdrsync.hub.payload import ticks_from_text
from xdrsync.hub.records import NewEdit, Settlement

BOTH = [TENANT_A, TENANT_B]
SEVERITIES = ["high", "medium", "low", "informational"]
STATUSES = ["active", "inProgress", "resolved"]
OWNERS = ["ana@contoso.com", None, "Éva@Contoso.com"]  # a capital beyond ASCII
NAMED = {13: "Password spray 500 hits", 14: "50% discount", 15: "Phish_kit found"}


def _incident(tenant: str, n: int) -> dict[str, Any]:
    incident_id = str(n + 1)
    sources = ["microsoftDefenderForEndpoint", "microsoftDefenderForOffice365"]
    alerts = [
        alert_json(
            tenant,
            f"da{incident_id}-{k}",
            incident_id,
            source=sources[(n + k) % 2],
            first=n % 6,
            last=n % 6 + 3,
        )
        for k in range(n % 3)
    ]
    tags = (["phish"] if n % 2 else []) + (["50%_off"] if n % 5 == 0 else [])
    tags += ["Überprüfung"] if n % 4 == 1 else []
    return incident_json(
        tenant,
        incident_id,
        updated=(n % 5) * 60 * 24 if tenant == TENANT_A else n % 5,
        created=None if n % 7 == 0 else n % 4,
        severity=SEVERITIES[n % 4],
        status=STATUSES[n % 3],
        owner=OWNERS[n % 3],
        tags=tags,
        alerts=alerts,
        name=NAMED.get(n),
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    for hub in open_hub(tmp_path_factory.mktemp("queue")):
        commit(hub, TENANT_A, [_incident(TENANT_A, n) for n in range(40)])
        commit(hub, TENANT_B, [_incident(TENANT_B, n) for n in range(10)])
        index(hub)
        yield hub


def _all(hub: Hub, flt: QueueFilter, visible: list[str], top: int = 7) -> list[QueueItem]:
    items: list[QueueItem] = []
    token = None
    for _ in range(1000):
        page = list_queue(hub, flt, visible, top=top, after=token)
        assert len(page.items) <= top
        items.extend(page.items)
        token = page.next_token
        if token is None:
            return items
        assert len(page.items) == top
    raise AssertionError("paging never ended")


def _keys(items: list[QueueItem]) -> list[tuple[str, str]]:
    return [(i.tenant_id, i.incident_id) for i in items]


def _expected(hub: Hub, flt: QueueFilter, visible: list[str]) -> list[tuple[str, str]]:
    """The same filter and order, worked out in Python from the index rows."""
    chosen = []
    for key, row in rows(hub).items():
        if key[0] not in visible or (flt.tenant_ids and key[0] not in flt.tenant_ids):
            continue
        if flt.statuses and row["status"].lower() not in {v.lower() for v in flt.statuses}:
            continue
        if flt.severities and severity_name(row["severity"]) not in {
            v.lower() for v in flt.severities
        }:
            continue
        tags = [t.lower() for t in decode_list(row["tags"])]
        if flt.tags and not any(t.lower() in tags for t in flt.tags):
            continue
        products = [p.lower() for p in decode_list(row["products"])]
        if flt.products and not any(p.lower() in products for p in flt.products):
            continue
        owner = row["assigned_to"]
        if flt.owner == "unassigned" and owner:
            continue
        if flt.owner not in (None, "unassigned") and (owner or "").lower() != flt.owner.lower():
            continue
        if flt.since and row["last_update_at"] < flt.since:
            continue
        if flt.until and row["last_update_at"] >= flt.until:
            continue
        if flt.search and not _searched(hub, flt.search, key, row["search"]):
            continue
        chosen.append({**row, "tenant_id": key[0], "incident_id": key[1]})
    names = (*SORTS[flt.sort], "tenant_id", "incident_id")

    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple((row[n] is not None, row[n]) for n in names)

    chosen.sort(key=order, reverse=flt.descending)
    return [(r["tenant_id"], r["incident_id"]) for r in chosen]


def _searched(hub: Hub, text: str, key: tuple[str, str], search: str) -> bool:
    """The search's text in the incident's, or the whole of its id or an alert's."""
    with hub.reading() as conn:
        alert_ids = conn.execute(
            select(s.alert.c.id).where(
                s.alert.c.tenant_id == key[0], s.alert.c.incident_id == key[1]
            )
        ).scalars()
        return text.lower() in search or text in (key[1], *alert_ids)


FILTERS = [
    QueueFilter(),
    QueueFilter(statuses=("inprogress",)),  # any spelling Graph accepts
    QueueFilter(statuses=("active", "resolved")),
    QueueFilter(severities=("high", "LOW")),
    QueueFilter(severities=("unknown",)),
    QueueFilter(tenant_ids=(TENANT_B,)),
    QueueFilter(products=("microsoftDefenderForOffice365",)),
    QueueFilter(products=("MICROSOFTDEFENDERFORENDPOINT",)),
    QueueFilter(tags=("phish",)),
    QueueFilter(tags=("50%_off",)),
    QueueFilter(tags=("50%",)),  # a member is matched whole, never by prefix
    QueueFilter(tags=("überprüfung",)),
    QueueFilter(owner="ana@contoso.com"),
    QueueFilter(owner="éva@contoso.com"),
    QueueFilter(owner="Éva@Contoso.com"),
    QueueFilter(owner="ÉVA@CONTOSO.COM"),
    QueueFilter(owner="unassigned"),
    QueueFilter(since=at(60 * 24)),
    QueueFilter(since=at(60 * 24), until=at(3 * 60 * 24)),
    QueueFilter(search="SPRAY"),
    QueueFilter(search="50%"),
    QueueFilter(search="h_kit"),
    QueueFilter(search="0%_"),  # no incident: _ and % are literal
    QueueFilter(search="7"),  # incident 7 in each tenant, and the texts with a 7
    QueueFilter(search="da12-1"),  # an alert's id
    QueueFilter(statuses=("active",), severities=("high",), owner="ana@contoso.com"),
]


def test_an_incident_or_alert_id_pasted_into_the_search_finds_its_incident(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """An email or a ticket gives an incident's id (4512) or an alert's; pasted into the
    search, it found nothing unless a title happened to hold it. Whole ids, as written, in
    the tenants the caller sees."""
    alert = alert_json(TENANT_A, "da6392977338_1527929519", "4512", title="Credential theft")
    for hub in open_hub(tmp_path_factory.mktemp("ids")):
        commit(hub, TENANT_A, [incident_json(TENANT_A, "4512", name="Phishing", alerts=[alert])])
        commit(hub, TENANT_B, [incident_json(TENANT_B, "77", name="Seen as 4512 elsewhere")])
        index(hub)

        def found(text: str, visible: list[str] = BOTH, hub: Hub = hub) -> list[tuple[str, str]]:
            return _keys(_all(hub, QueueFilter(search=text), visible))

        assert found("4512") == [(TENANT_B, "77"), (TENANT_A, "4512")]  # the id, and a text
        assert found(" da6392977338_1527929519 ") == [(TENANT_A, "4512")]
        assert found("da6392977338_1527929519", [TENANT_B]) == []
        assert found("da6392977338") == []  # an alert's id is matched whole
        assert found("DA6392977338_1527929519") == []  # and as Defender writes it


@pytest.mark.parametrize("flt", FILTERS)
def test_every_filter_matches_the_index_rows(world: Hub, flt: QueueFilter) -> None:
    assert _keys(_all(world, flt, BOTH)) == _expected(world, flt, BOTH)


def test_filters_find_what_they_should(world: Hub) -> None:
    def count(**kw: Any) -> int:
        return len(_all(world, QueueFilter(**kw), BOTH))

    assert count() == 50
    assert count(search="spray") == 1
    assert count(search="50%") == 1
    assert count(search="0%_") == 0
    assert count(tags=("50%",)) == 0
    assert count(tags=("50%_OFF",)) == 10
    # Addresses and tags match in any case of any letter, on SQLite as on PostgreSQL ("assigned
    # to me" for éva@contoso.com finds Éva@Contoso.com).
    assert count(owner="Éva@Contoso.com") == count(owner="éva@contoso.com") == 16
    assert count(owner="ÉVA@CONTOSO.COM") == 16
    assert count(tags=("überprüfung",)) == count(tags=("ÜBERPRÜFUNG",)) == 13
    assert count(owner="ana@contoso.com") == count(owner="ANA@contoso.com") == 18


@pytest.mark.parametrize("sort", sorted(SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_every_sort_pages_through_everything_once(world: Hub, sort: str, descending: bool) -> None:
    flt = QueueFilter(sort=sort, descending=descending)
    got = _keys(_all(world, flt, BOTH, top=4))
    assert got == _expected(world, flt, BOTH)
    assert len(set(got)) == len(got) == 50


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sort=st.sampled_from(sorted(SORTS)),
    descending=st.booleans(),
    top=st.integers(1, 12),
    index=st.integers(0, len(FILTERS) - 1),
    visible=st.sampled_from([[TENANT_A], [TENANT_B], BOTH]),
)
def test_keyset_pages_return_each_incident_exactly_once(
    world: Hub, sort: str, descending: bool, top: int, index: int, visible: list[str]
) -> None:
    base = FILTERS[index]
    flt = QueueFilter(**{**base.__dict__, "sort": sort, "descending": descending})
    got = _keys(_all(world, flt, visible, top=top))
    assert got == _expected(world, flt, visible)
    assert {tenant for tenant, _ in got} <= set(visible)


def test_tenant_scoping_never_leaks(world: Hub) -> None:
    assert {i.tenant_id for i in _all(world, QueueFilter(), [TENANT_A])} == {TENANT_A}
    # Asking for a tenant one may not see gives nothing, not that tenant.
    assert _all(world, QueueFilter(tenant_ids=(TENANT_B,)), [TENANT_A]) == []
    assert _all(world, QueueFilter(), []) == []
    # A token made for a user who sees both tenants shows the next user only theirs.
    page = list_queue(world, QueueFilter(), BOTH, top=3)
    rest = _all_from(world, QueueFilter(), [TENANT_B], page.next_token)
    assert {i.tenant_id for i in rest} <= {TENANT_B}


def _all_from(hub: Hub, flt: QueueFilter, visible: list[str], token: str | None) -> list[Any]:
    items = []
    while token is not None:
        page = list_queue(hub, flt, visible, top=5, after=token)
        items.extend(page.items)
        token = page.next_token
    return items


def test_a_bad_or_foreign_token_is_refused(world: Hub) -> None:
    page = list_queue(world, QueueFilter(), BOTH, top=2)
    assert page.next_token is not None
    with pytest.raises(ValueError, match="another sort"):
        list_queue(world, QueueFilter(sort="created"), BOTH, after=page.next_token)
    for bad in ("garbage!", "e30", "WzEsMiwzXQ"):
        with pytest.raises(ValueError, match="token"):
            list_queue(world, QueueFilter(), BOTH, after=bad)
    with pytest.raises(ValueError, match="sort"):
        list_queue(world, QueueFilter(sort="nope"), BOTH)


def test_an_item_is_the_documented_json(world: Hub) -> None:
    (item,) = list_queue(world, QueueFilter(search="spray"), BOTH).items
    body = item.to_json(NAMES)
    assert list(body) == [
        "id",
        "incidentId",
        "tenant",
        "tenantId",
        "displayName",
        "severity",
        "status",
        "assignedTo",
        "classification",
        "determination",
        "customTags",
        "productSources",
        "tactics",
        "alertCount",
        "createdDateTime",
        "lastUpdateDateTime",
        "firstActivityDateTime",
        "lastActivityDateTime",
        "mergedInto",
        "syncState",
    ]
    assert body["id"] == "contoso~14"
    assert body["incidentId"] == "14"
    assert body["tenant"] == "contoso"
    assert body["tenantId"] == TENANT_A
    assert body["alertCount"] == 1
    assert body["productSources"] == ["microsoftDefenderForOffice365"]
    assert body["tactics"] == ["Execution"]
    assert body["lastUpdateDateTime"] == "2026-11-04T10:00:00Z"
    assert body["firstActivityDateTime"] == "2026-11-01T10:01:00Z"
    assert body["syncState"] == "synced"


def test_stats_count_what_the_queue_lists(world: Hub) -> None:
    flt = QueueFilter(tenant_ids=(TENANT_A,))
    stats = queue_stats(world, flt, BOTH)
    items = _all(world, flt, BOTH)
    assert stats["total"] == len(items) == 40
    assert stats["bySeverity"] == {s: 10 for s in SEVERITIES}
    assert sum(stats["byStatus"].values()) == 40
    assert stats["overTime"]["bucket"] == "day"
    points = stats["overTime"]["points"]
    assert [p["count"] for p in points] == [8, 8, 8, 8, 8]
    assert points[0]["start"] == "2026-11-01T00:00:00Z"
    hourly = queue_stats(world, QueueFilter(tenant_ids=(TENANT_B,)), BOTH)["overTime"]
    assert hourly["bucket"] == "hour"
    assert sum(p["count"] for p in hourly["points"]) == 10
    # A range from the filter is filled with empty buckets.
    ranged = queue_stats(
        world, QueueFilter(since=BASE - timedelta(days=3), until=BASE + timedelta(days=7)), BOTH
    )
    assert len(ranged["overTime"]["points"]) == 11
    assert queue_stats(world, QueueFilter(), [])["total"] == 0


def _edit(field: str, seen: Any, wanted: Any) -> NewEdit:
    return NewEdit(TENANT_A, "incident", "1", field, seen, wanted, author="ana", origin="console")


def _one(hub: Hub) -> QueueItem:
    (item,) = list_queue(hub, QueueFilter(), [TENANT_A]).items
    return item


def test_sync_state_and_the_workspace_view(hub: Hub) -> None:
    commit(hub, TENANT_A, [incident_json(TENANT_A, "1", tags=["old"])])
    index(hub)
    assert _one(hub).sync_state == "synced"
    [status_edit] = hub.enqueue_edits([_edit("status", "active", "inProgress")])
    hub.enqueue_edits([_edit("customTags", ["old"], {"add": ["new"], "remove": ["old"]})])
    item = _one(hub)
    assert (item.sync_state, item.status, item.custom_tags) == ("pending", "inProgress", ("new",))
    # The filter is on Defender's values as last read; the item shows the workspace's view.
    assert list_queue(hub, QueueFilter(statuses=("inProgress",)), [TENANT_A]).items == []
    (row,) = hub.edits(ids=[status_edit])
    hub.settle_edits([Settlement(row, "conflict", "conflict", {"reason": "both changed"})])
    assert _one(hub).sync_state == "conflict"
    hub.settle_edits([Settlement(row, "failed", "refused", {"reason": "Defender said no"})])
    assert _one(hub).sync_state == "failed"
    assert _one(hub).status == "active"  # a failed edit is not shown as made
    later = list_queue(
        hub, QueueFilter(), [TENANT_A], now=row.created_at + timedelta(days=2)
    ).items[0]
    assert later.sync_state == "pending"  # the tags edit is still on its way


def test_a_confirmed_edit_shows_until_the_index_has_the_version_that_holds_it(hub: Hub) -> None:
    # Defender's answer to a close is read back (version 2) before the queue index runs:
    # the row's values are still version 1's, so the close is shown as on its way, never
    # as the open incident marked "synced".
    commit(hub, TENANT_A, [incident_json(TENANT_A, "1", updated=1)])
    index(hub)
    [edit] = hub.enqueue_edits([_edit("status", "active", "resolved")])
    read_back = incident_json(TENANT_A, "1", updated=5, status="resolved")
    commit(hub, TENANT_A, [read_back])
    (row,) = hub.edits(ids=[edit])
    written = ticks_from_text(read_back["lastUpdateDateTime"])
    hub.settle_edits([Settlement(row, "confirmed", "written", {}, written_version=written)])
    item = _one(hub)
    assert (item.status, item.sync_state) == ("resolved", "pending")
    index(hub)
    item = _one(hub)
    assert (item.status, item.sync_state) == ("resolved", "synced")


def test_a_status_the_counts_call_unknown_is_what_the_unknown_filter_lists(hub: Hub) -> None:
    bare = incident_json(TENANT_A, "1")
    del bare["status"]  # Defender sent none
    commit(hub, TENANT_A, [bare, incident_json(TENANT_A, "2")])
    index(hub)
    stats = queue_stats(hub, QueueFilter(), [TENANT_A])
    assert stats["byStatus"] == {"active": 1, "unknown": 1}
    listed = list_queue(hub, QueueFilter(statuses=("unknown",)), [TENANT_A]).items
    assert [i.incident_id for i in listed] == ["1"]


def test_a_newer_severity_counts_filters_and_sorts_as_high(hub: Hub) -> None:
    # Graph's `critical` (newer than this version's enum) is High, as the log tables and
    # Sentinel read it (tables.vocab.NEWER_SEVERITY); `unknown`, `unknownFutureValue` and
    # none are the queue's "unknown". The item keeps Defender's word.
    sent = {"1": "critical", "2": "high", "3": "unknownFutureValue", "4": None, "5": "low"}
    incidents = []
    for incident_id, severity in sent.items():
        incident = incident_json(TENANT_A, incident_id, updated=int(incident_id))
        incident["severity"] = severity
        incidents.append(incident)
    commit(hub, TENANT_A, incidents)
    index(hub)
    assert [severity_name(v) for v in sent.values()] == [
        "high",
        "high",
        "unknown",
        "unknown",
        "low",
    ]
    stats = queue_stats(hub, QueueFilter(), [TENANT_A])
    assert stats["bySeverity"] == {"high": 2, "low": 1, "unknown": 2}

    def listed(*severities: str, sort: str = "lastUpdate") -> list[str]:
        flt = QueueFilter(severities=severities, sort=sort)
        return [i.incident_id for i in list_queue(hub, flt, [TENANT_A]).items]

    assert listed("high") == ["2", "1"]
    assert listed("unknown") == ["4", "3"]
    assert listed("critical") == ["1"]  # asked for as written, it is found too
    assert listed(sort="severity") == ["2", "1", "5", "4", "3"]
    (item,) = [i for i in list_queue(hub, QueueFilter(), [TENANT_A]).items if i.incident_id == "1"]
    assert item.severity == "critical"
