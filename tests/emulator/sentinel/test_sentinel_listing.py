"""Listing incidents: $top, nextLink paging by offset, $filter and $orderby."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


def test_top_above_1000_or_below_1_is_refused(sentinel: Any) -> None:
    s = sentinel()
    for top in ("1001", "0", "ten"):
        reply = s.arm("GET", "/incidents", params={"$top": top})
        assert reply.status_code == 400, top
        assert reply.json()["error"]["code"] == "BadRequest"
    assert s.arm("GET", "/incidents", params={"$top": "1000"}).status_code == 200


def test_paging_2500_incidents_serves_each_once_when_nothing_changes(sentinel: Any) -> None:
    s = sentinel(incidents=2500)
    first = s.arm("GET", "/incidents", params={"$top": "1000"})
    assert len(first.json()["value"]) == 1000
    link = first.json()["nextLink"]
    query = parse_qs(urlsplit(link).query)
    assert query["$top"] == ["1000"]
    assert query["api-version"] == ["2025-09-01"]
    assert "$skipToken" in query
    items = s.list_all(**{"$top": "1000"})
    names = [i["name"] for i in items]
    assert len(names) == 2500
    assert len(set(names)) == 2500
    numbers = [i["properties"]["incidentNumber"] for i in items]
    assert numbers == sorted(numbers)  # default order: oldest first
    # The default page size is 50.
    assert len(s.arm("GET", "/incidents").json()["value"]) == 50


def test_filter_and_orderby_on_last_modified_time(sentinel: Any) -> None:
    s = sentinel(incidents=30)
    everything = s.list_all()
    times = sorted(i["properties"]["lastModifiedTimeUtc"] for i in everything)
    cut = times[10]
    newer = s.list_all(
        **{
            "$filter": f"properties/lastModifiedTimeUtc ge {cut}",
            "$orderby": "properties/lastModifiedTimeUtc asc",
            "$top": "7",
        }
    )
    got = [i["properties"]["lastModifiedTimeUtc"] for i in newer]
    assert got == times[10:]
    window = s.list_all(
        **{
            "$filter": (
                f"properties/lastModifiedTimeUtc gt {times[3]} and "
                f"properties/lastModifiedTimeUtc lt '{times[8]}'"
            ),
            "$orderby": "properties/lastModifiedTimeUtc desc",
        }
    )
    assert [i["properties"]["lastModifiedTimeUtc"] for i in window] == times[7:3:-1]
    created = s.list_all(**{"$orderby": "properties/createdTimeUtc desc"})
    stamps = [i["properties"]["createdTimeUtc"] for i in created]
    assert stamps == sorted(stamps, reverse=True)
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert s.list_all(**{"$filter": f"properties/createdTimeUtc le {later}"}) != []
    assert s.list_all(**{"$filter": f"properties/createdTimeUtc gt {later}"}) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("$filter", "properties/lastModifiedTimeUtc ge 'soon'"),
        ("$filter", "not (properties/status eq 'New')"),
        ("$filter", "properties/owner/assignedTo eq 'Ann'"),
        ("$filter", "startswith(properties/title, 'x')"),
        ("$filter", "properties/status gt 'New'"),
        ("$orderby", "properties/title asc"),
        ("$orderby", "properties/lastModifiedTimeUtc sideways"),
        ("$skipToken", "not-a-token"),
    ],
)
def test_unsupported_query_options_are_400(sentinel: Any, option: str, value: str) -> None:
    s = sentinel()
    reply = s.arm("GET", "/incidents", params={option: value})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "BadRequest"


def test_an_edit_while_paging_shifts_records_across_offset_pages(sentinel: Any) -> None:
    """The conservative reading: skip tokens are offsets over a fresh evaluation."""
    s = sentinel(incidents=20)
    params = {"$orderby": "properties/lastModifiedTimeUtc asc", "$top": "5"}
    first = s.arm("GET", "/incidents", params=params).json()
    # An analyst edits a record already served: it moves to the end of the order.
    s.control("POST", f"/incidents/{first['value'][0]['name']}", json={"status": "Active"})
    second = s.arm("GET", first["nextLink"]).json()
    everything = [i["name"] for i in s.list_all(**params)]
    assert second["value"][0]["name"] == everything[5]  # the one at index 4 now was skipped
    assert everything[4] not in {i["name"] for i in first["value"] + second["value"]}


def test_comments_list_pages_with_next_links(sentinel: Any) -> None:
    s = sentinel()
    s.put_incident("inc")
    for n in range(7):
        s.arm("PUT", f"/incidents/inc/comments/c{n}", json={"properties": {"message": f"m{n}"}})
    page = s.arm("GET", "/incidents/inc/comments", params={"$top": "3"}).json()
    assert len(page["value"]) == 3
    assert "nextLink" in page
    comments = s.list_all("/incidents/inc/comments", **{"$top": "3"})
    assert [c["name"] for c in comments] == [f"c{n}" for n in range(7)]
