"""Listing /security/incidents and /security/alerts_v2: options, errors, order and paging."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdrsync.emulator.listing import (
    ALERTS,
    INCIDENTS,
    EntitySetSpec,
    ListingError,
    ListPage,
    Paging,
    list_page,
)
from xdrsync.emulator.timefmt import graph_time

ORIGIN = "http://127.0.0.1:8123"
INCIDENTS_URL = f"{ORIGIN}/v1.0/security/incidents"
ALERTS_URL = f"{ORIGIN}/v1.0/security/alerts_v2"
BASE = datetime(2025, 2, 7, 19, 1, 26, tzinfo=UTC)


def incident(n: int, created_s: int, updated_s: int | None = None, **extra: Any) -> dict[str, Any]:
    created = BASE + timedelta(seconds=created_s)
    updated = BASE + timedelta(seconds=updated_s if updated_s is not None else created_s)
    return {
        "id": str(n),
        "createdDateTime": graph_time(created),
        "lastUpdateDateTime": graph_time(updated),
        "status": "active",
        "severity": "medium",
        **extra,
    }


def incidents(count: int, seed: int = 7, spread: int = 100_000) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for n in range(1, count + 1):
        created = rng.randrange(spread)
        out.append(
            incident(
                n,
                created,
                created + rng.randrange(50_000),
                status=rng.choice(["active", "resolved", "Active", "inProgress"]),
            )
        )
    return out


def query_of(link: str) -> dict[str, str]:
    """Decode a next link the way the server's framework will."""
    return dict(parse_qsl(urlsplit(link).query, keep_blank_values=True))


def page(
    records: Sequence[Mapping[str, Any]],
    query: Mapping[str, str] | None = None,
    spec: EntitySetSpec = INCIDENTS,
    paging: Paging = "offset",
) -> ListPage:
    url = INCIDENTS_URL if spec is INCIDENTS else ALERTS_URL
    return list_page(records, query or {}, spec=spec, base_url=url, paging=paging)


def follow(
    records: Sequence[Mapping[str, Any]],
    query: Mapping[str, str],
    spec: EntitySetSpec = INCIDENTS,
    paging: Paging = "offset",
) -> list[list[Mapping[str, Any]]]:
    """Every page of a listing, as a client following @odata.nextLink sees it."""
    pages, current = [], dict(query)
    for _ in range(len(records) + 2):  # every page but the last serves at least one record
        result = page(records, current, spec, paging)
        pages.append(list(result.items))
        if result.next_link is None:
            return pages
        assert result.next_link.startswith((INCIDENTS_URL + "?", ALERTS_URL + "?"))
        current = query_of(result.next_link)
    raise AssertionError("next links never ended")


def ids(items: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(i["id"]) for i in items]


# -- errors: status, code and Graph's text -----------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "query", "message"),
    [
        (
            INCIDENTS,
            {"$top": "100"},
            "The limit of '50' for Top query has been exceeded. "
            "The value from the incoming request is '100'.",
        ),
        (
            INCIDENTS,
            {"$top": "51"},
            "The limit of '50' for Top query has been exceeded. "
            "The value from the incoming request is '51'.",
        ),
        (
            ALERTS,
            {"$top": "1001"},
            "The limit of '1000' for Top query has been exceeded. "
            "The value from the incoming request is '1001'.",
        ),
        (
            ALERTS,
            {"$skip": "501"},
            "The limit of '500' for Skip query has been exceeded. "
            "The value from the incoming request is '501'.",
        ),
        (
            INCIDENTS,
            {"$skip": "600"},
            "The limit of '500' for Skip query has been exceeded. "
            "The value from the incoming request is '600'.",
        ),
        (INCIDENTS, {"$top": "-1"}, "Invalid value '-1' for $top query option found."),
        (INCIDENTS, {"$top": "ten"}, "The $top query option requires a non-negative integer"),
        (INCIDENTS, {"$top": "2.5"}, "Invalid value '2.5' for $top"),
        (INCIDENTS, {"$top": ""}, "Invalid value '' for $top"),
        (INCIDENTS, {"$top": "٣"}, "Invalid value '٣' for $top"),
        (INCIDENTS, {"$top": "9" * 5000}, "for $top query option found"),
        (ALERTS, {"$skip": "-3"}, "Invalid value '-3' for $skip query option found."),
        (ALERTS, {"$skip": "x"}, "The $skip query option requires a non-negative integer"),
        (INCIDENTS, {"$count": "yes"}, "'yes' is not a valid count option."),
        (INCIDENTS, {"$orderby": "id desc"}, "The property 'id' cannot be used in the $orderby"),
        (INCIDENTS, {"$orderby": "severity"}, "The property 'severity' cannot be used"),
        (INCIDENTS, {"$orderby": "createdDateTime sideways"}, "Syntax error"),
        (INCIDENTS, {"$orderby": "createdDateTime desc asc"}, "Syntax error"),
        (INCIDENTS, {"$orderby": ""}, "Syntax error"),
        (
            INCIDENTS,
            {"$orderby": "createdDateTime desc,lastUpdateDateTime asc"},
            "Only one property can be used in the $orderby query option.",
        ),
        (ALERTS, {"$expand": "evidence"}, "Query option 'Expand' is not allowed."),
        (
            INCIDENTS,
            {"$expand": "comments"},
            "Could not find a property named 'comments' on type "
            "'microsoft.graph.security.incident'.",
        ),
        (INCIDENTS, {"$expand": "alerts,comments"}, "named 'comments'"),
        (
            INCIDENTS,
            {"$filter": "investigationState eq 'running'"},
            "The property 'investigationState' cannot be used in the $filter query option.",
        ),
        (ALERTS, {"$filter": "investigationState eq 'running'"}, "'investigationState'"),
        (INCIDENTS, {"$filter": "serviceSource eq 'x'"}, "'serviceSource' cannot be used"),
        (INCIDENTS, {"$filter": "evidence/any(e: e/verdict eq 'x')"}, "'evidence' cannot be"),
        (INCIDENTS, {"$filter": "status eq 'active"}, "unterminated string literal"),
        (INCIDENTS, {"$filter": ""}, "Expression expected at position 0"),
        (INCIDENTS, {"$select": "id"}, "The query parameter '$select' is not supported."),
        (ALERTS, {"$search": "x"}, "The query parameter '$search' is not supported."),
        (INCIDENTS, {"$top": "5", "$TOP": "6"}, "Query option '$top' was specified more than once"),
        (INCIDENTS, {"$skiptoken": "abc"}, "The query parameter '$skiptoken' is not supported."),
        (ALERTS, {"$SkipToken": "abc"}, "The query parameter '$SkipToken' is not supported."),
    ],
)
def test_refused_requests_answer_400_bad_request_with_graphs_text(
    spec: EntitySetSpec, query: dict[str, str], message: str
) -> None:
    with pytest.raises(ListingError) as caught:
        page(incidents(3), query, spec)
    assert caught.value.status == 400
    assert caught.value.code == "BadRequest"
    assert message in caught.value.message


@pytest.mark.parametrize(
    "token",
    ["garbage!", "", "ü", "WzEsImFiYyIsMSwiMSJd"],  # the last one lacks the MAC
)
def test_keyset_mode_refuses_tokens_it_did_not_make(token: str) -> None:
    with pytest.raises(ListingError) as caught:
        page(incidents(3), {"$skiptoken": token}, paging="keyset")
    assert caught.value.status == 400
    assert "$skiptoken" in caught.value.message


def test_unknown_paging_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="paging"):
        page(incidents(3), paging="cursor")  # type: ignore[arg-type]


def test_limits_themselves_are_accepted() -> None:
    records = incidents(60)
    assert len(page(records, {"$top": "50"}).items) == 50
    assert page(records, {"$skip": "500"}).items == ()
    assert len(page(records, {"$top": "1000"}, ALERTS).items) == 60


def _token_of(result: ListPage) -> str:
    assert result.next_link is not None
    return query_of(result.next_link)["$skiptoken"]


def test_keyset_mode_refuses_a_tampered_skiptoken() -> None:
    records = incidents(20)
    token = _token_of(page(records, {"$top": "5"}, paging="keyset"))
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(ListingError) as caught:
            page(records, {"$top": "5", "$skiptoken": flipped}, paging="keyset")
        assert caught.value.status == 400


def test_keyset_skiptoken_only_resumes_the_query_it_came_from() -> None:
    records = incidents(20)
    token = _token_of(
        page(records, {"$top": "5", "$filter": "status eq 'active'"}, paging="keyset")
    )
    for other in (
        {"$filter": "status eq 'resolved'"},
        {},
        {"$filter": "status eq 'active'", "$orderby": "lastUpdateDateTime desc"},
    ):
        with pytest.raises(ListingError):
            page(records, {**other, "$skiptoken": token}, paging="keyset")
    with pytest.raises(ListingError):  # and only on its own entity set
        page(records, {"$filter": "status eq 'active'", "$skiptoken": token}, ALERTS, "keyset")
    with pytest.raises(ListingError):  # and only in keyset mode
        page(records, {"$filter": "status eq 'active'", "$skiptoken": token})
    resumed = page(
        records,
        {"$top": "9", "$filter": "status eq 'active'", "$skiptoken": token},
        paging="keyset",
    )
    assert resumed.items  # a different page size is fine


# -- defaults, order, options ---------------------------------------------------------------------


def test_default_page_sizes_are_50_for_incidents_and_1000_for_alerts() -> None:
    records = incidents(1500)
    first = page(records)
    assert len(first.items) == 50
    assert first.next_link is not None
    assert query_of(first.next_link) == {"$skip": "50"}  # the default size, not a $top
    assert len(page(records, spec=ALERTS).items) == 1000


def test_default_order_is_newest_created_first_with_ties_by_id_descending() -> None:
    records = [incident(n, created_s=10 if n % 2 else 20) for n in (1, 2, 3, 4, 9, 10, 11)]
    assert ids(page(records).items) == ["10", "4", "2", "11", "9", "3", "1"]


def test_non_numeric_alert_ids_break_ties_as_text() -> None:
    alerts = [
        {"id": f"da63755122767756081{n}_-9614", "createdDateTime": "2021-04-27T12:19:27Z"}
        for n in (3, 1, 2)
    ]
    assert ids(page(alerts, spec=ALERTS).items) == [
        "da637551227677560813_-9614",
        "da637551227677560812_-9614",
        "da637551227677560811_-9614",
    ]


@pytest.mark.parametrize(
    ("orderby", "field", "newest_first"),
    [
        ("lastUpdateDateTime asc", "lastUpdateDateTime", False),
        ("lastUpdateDateTime desc", "lastUpdateDateTime", True),
        ("createdDateTime asc", "createdDateTime", False),
        ("createdDateTime", "createdDateTime", False),  # OData's default direction
        ("  LastUpdateDateTime   DESC ", "lastUpdateDateTime", True),
    ],
)
def test_orderby_on_either_timestamp_and_direction(
    orderby: str, field: str, newest_first: bool
) -> None:
    records = incidents(300)
    seen = [r for p in follow(records, {"$orderby": orderby, "$top": "37"}) for r in p]
    stamps = [r[field] for r in seen]
    assert stamps == sorted(stamps, reverse=newest_first)
    assert sorted(ids(seen)) == sorted(ids(records))


def test_option_names_match_in_any_case_and_plain_names_are_ignored() -> None:
    records = incidents(30)
    assert len(page(records, {"$TOP": "3", "$Filter": "status eq 'active'"}).items) == 3
    assert len(page(records, {"top": "3", "api-version": "x"}).items) == 30


def test_count_is_every_match_on_every_page() -> None:
    records = incidents(120)
    active = sum(r["status"].lower() == "active" for r in records)
    query = {"$filter": "status eq 'active'", "$count": "true", "$top": "10"}
    current = dict(query)
    while True:
        result = page(records, current)
        assert result.count == active
        if result.next_link is None:
            break
        current = query_of(result.next_link)
    assert page(records, {"$count": "TRUE"}).count == 120
    assert page(records, {"$count": "false"}).count is None
    assert page(records).count is None


def test_top_zero_counts_without_paging() -> None:
    result = page(incidents(10), {"$top": "0", "$count": "true"})
    assert result.items == ()
    assert result.count == 10
    assert result.next_link is None


def test_next_links_page_by_offset_as_graph_does() -> None:
    records = incidents(40)
    everything = ids(page(records, {"$top": "40"}).items)
    first = page(records, {"$skip": "5", "$top": "10"})
    assert ids(first.items) == everything[5:15]
    assert first.next_link == f"{INCIDENTS_URL}?$top=10&$skip=15"
    rest = [r for p in follow(records, {"$skip": "5", "$top": "10"}) for r in p]
    assert ids(rest) == everything[5:]
    assert page(records, {"$skip": "40"}).items == ()
    assert page(records, {"$skip": "40"}).next_link is None
    assert page(records, {"$skip": "30", "$top": "10"}).next_link is None  # exactly the end


def test_next_link_keeps_the_options_and_their_encoding_and_adds_skip() -> None:
    records = incidents(200)
    since = graph_time(BASE + timedelta(seconds=10_000))
    query = {
        "$filter": f"lastUpdateDateTime ge {since}",
        "$orderby": "lastUpdateDateTime asc",
        "$top": "50",
        "$skip": "50",
    }
    result = page(records, query)
    assert result.next_link == (
        f"{INCIDENTS_URL}?$filter=lastUpdateDateTime%20ge%20{since}"
        "&$orderby=lastUpdateDateTime%20asc&$top=50&$skip=100"
    )
    keyset = page(records, query, paging="keyset")  # the opt-in mode: a token, no $skip
    assert keyset.next_link is not None
    assert set(query_of(keyset.next_link)) == {"$filter", "$orderby", "$top", "$skiptoken"}


def test_next_link_repeats_filter_order_top_expand_and_count() -> None:
    records = incidents(30)
    query = {
        "$filter": "status eq 'active' or status eq 'O''Brien & co+1=2 #x %41'",
        "$orderby": "lastUpdateDateTime asc",
        "$top": "2",
        "$expand": "alerts",
        "$count": "true",
        "custom": "dropped",
    }
    result = page(records, query)
    assert result.next_link is not None
    resumed = query_of(result.next_link)
    assert set(resumed) == {"$filter", "$orderby", "$top", "$expand", "$count", "$skip"}
    for name in ("$filter", "$orderby", "$top", "$expand", "$count"):
        assert resumed[name] == query[name]
    assert resumed["$skip"] == "2"
    assert " " not in result.next_link


def test_no_next_link_on_the_last_page_even_when_it_is_full() -> None:
    records = incidents(20)
    pages = follow(records, {"$top": "10"})
    assert [len(p) for p in pages] == [10, 10]


def test_context_urls() -> None:
    assert page([]).context == f"{ORIGIN}/v1.0/$metadata#security/incidents"
    assert page([], spec=ALERTS).context == f"{ORIGIN}/v1.0/$metadata#security/alerts_v2"
    assert page([]).items == ()
    assert page([]).next_link is None


def test_items_are_the_callers_records_not_copies() -> None:
    records = incidents(5)
    served = page(records).items
    assert all(any(s is r for r in records) for s in served)


def test_alerts_filter_on_service_source_and_evidence() -> None:
    alerts = [
        {
            "id": f"a{n}",
            "createdDateTime": graph_time(BASE + timedelta(minutes=n)),
            "serviceSource": "microsoftDefenderForEndpoint" if n % 2 else "microsoftSentinel",
            "evidence": [
                {
                    "@odata.type": "#microsoft.graph.security.deviceEvidence",
                    "deviceDnsName": f"pc{n}.contoso.com",
                }
            ],
        }
        for n in range(6)
    ]
    mde = page(alerts, {"$filter": "serviceSource eq 'microsoftDefenderForEndpoint'"}, ALERTS)
    assert ids(mde.items) == ["a5", "a3", "a1"]
    device = (
        "evidence/any(e: e/microsoft.graph.security.deviceEvidence/deviceDnsName "
        "eq 'PC4.contoso.com')"
    )
    assert ids(page(alerts, {"$filter": device}, ALERTS).items) == ["a4"]


def test_incidents_expand_alerts_in_any_case() -> None:
    assert len(page(incidents(3), {"$expand": "Alerts"}).items) == 3


# -- the $skip ceiling: next links are handed out past it, and following them then fails --------


def test_following_next_links_stalls_with_400_past_the_skip_ceiling() -> None:
    records = incidents(1200)
    served: list[str] = []
    current: dict[str, str] = {"$top": "50"}
    for _ in range(11):  # offsets 0, 50, ..., 500: the ceiling itself is still served
        result = page(records, current)
        served += ids(result.items)
        assert result.next_link is not None
        current = query_of(result.next_link)
    assert current == {"$top": "50", "$skip": "550"}  # the link is handed out all the same
    with pytest.raises(ListingError) as caught:
        page(records, current)
    assert caught.value.status == 400
    assert caught.value.message == (
        "The limit of '500' for Skip query has been exceeded. "
        "The value from the incoming request is '550'."
    )
    assert served == ids(page(records, {"$top": "50"}).items) + [
        i
        for n in range(50, 550, 50)
        for i in ids(page(records, {"$top": "50", "$skip": str(n)}).items)
    ]
    assert len(served) == len(set(served)) == 550


def test_alerts_default_page_links_straight_past_the_ceiling() -> None:
    alerts = [dict(r, id=f"da{r['id']}") for r in incidents(1500)]
    first = page(alerts, {}, ALERTS)
    assert len(first.items) == 1000
    assert first.next_link == f"{ALERTS_URL}?$skip=1000"
    with pytest.raises(ListingError) as caught:
        page(alerts, query_of(first.next_link), ALERTS)
    assert caught.value.status == 400
    assert "The value from the incoming request is '1000'." in caught.value.message
    small = page(alerts, {"$top": "100", "$skip": "500"}, ALERTS)  # the ceiling itself is fine
    assert len(small.items) == 100
    assert small.next_link == f"{ALERTS_URL}?$top=100&$skip=600"


# -- $skip with $filter and $orderby ----------------------------------------------------------


@pytest.mark.parametrize("spec", [INCIDENTS, ALERTS], ids=["incidents", "alerts_v2"])
@pytest.mark.parametrize(
    "orderby", ["lastUpdateDateTime asc", "lastUpdateDateTime desc", "createdDateTime asc"]
)
def test_skip_counts_matches_in_the_requested_order(spec: EntitySetSpec, orderby: str) -> None:
    records = incidents(300, seed=11)
    if spec is ALERTS:
        records = [dict(r, id=f"da{int(r['id']):06d}") for r in records]
    since = graph_time(BASE + timedelta(seconds=40_000))
    flt = f"lastUpdateDateTime ge {since} and status ne 'resolved'"
    field, _, direction = orderby.partition(" ")
    wanted = sorted(
        (r for r in records if r["lastUpdateDateTime"] >= since and r["status"] != "resolved"),
        key=lambda r: (r[field], r["id"] if spec is ALERTS else int(r["id"])),
        reverse=direction == "desc",
    )
    query = {"$filter": flt, "$orderby": orderby, "$top": "20", "$skip": "30", "$count": "true"}
    result = page(records, query, spec)
    assert ids(result.items) == ids(wanted[30:50])
    assert result.count == len(wanted)
    assert result.next_link is not None
    assert query_of(result.next_link) == {**query, "$skip": "50"}
    rest = [r for p in follow(records, query, spec) for r in p]
    assert ids(rest) == ids(wanted[30:])


# -- paging under change: every page is a new evaluation, so records shift across pages -------


def _stamp(seconds: int) -> str:
    return graph_time(BASE + timedelta(seconds=seconds))


def _updated(record: Mapping[str, Any], seconds: int) -> dict[str, Any]:
    """A new version of ``record`` (the store publishes a new object and a new listing)."""
    return {**record, "lastUpdateDateTime": _stamp(seconds)}


def test_an_update_on_page_one_shifts_the_next_record_out_of_reach_under_orderby_asc() -> None:
    records = [incident(n, created_s=n, updated_s=100 + n) for n in range(1, 31)]
    query = {"$orderby": "lastUpdateDateTime asc", "$top": "10"}
    first = page(records, query)
    assert ids(first.items) == [str(n) for n in range(1, 11)]
    boundary = "11"  # the first record of page 2, as the listing stood
    moved = first.items[3]  # an analyst edits incident 4: it moves to the end of the order
    records = [_updated(r, 10_000) if r is moved else r for r in records]
    second = page(records, query_of(first.next_link or ""))
    assert ids(second.items) == [str(n) for n in range(12, 22)]  # one place forward
    rest = [r for p in follow(records, query_of(second.next_link or "")) for r in p]
    served = ids(first.items) + ids(second.items) + ids(rest)
    assert boundary not in served  # never served in this run
    assert served.count("4") == 2  # and the edited one comes round again at the end
    assert ids(rest)[-1] == "4"


def test_an_update_that_leaves_a_closed_window_shifts_the_next_record_out_of_reach() -> None:
    records = [incident(n, created_s=n, updated_s=100 + n) for n in range(1, 31)]
    window = f"lastUpdateDateTime ge {_stamp(100)} and lastUpdateDateTime lt {_stamp(200)}"
    query = {"$filter": window, "$top": "10", "$count": "true"}  # newest created first
    first = page(records, query)
    assert ids(first.items) == [str(n) for n in range(30, 20, -1)]
    assert first.count == 30
    moved = first.items[0]  # incident 30 is updated: it now lies after the window
    records = [_updated(r, 10_000) if r is moved else r for r in records]
    second = page(records, query_of(first.next_link or ""))
    assert ids(second.items) == [str(n) for n in range(19, 9, -1)]
    assert second.count == 29  # the count of this evaluation, not of the first page's
    rest = [r for p in follow(records, query_of(second.next_link or "")) for r in p]
    served = ids(first.items) + ids(second.items) + ids(rest)
    assert "20" not in served  # the first record of page 2 was never served
    assert len(served) == 29


def test_a_record_inserted_ahead_of_the_offset_is_served_twice_at_the_boundary() -> None:
    records = [incident(n, created_s=n) for n in range(1, 31)]  # newest created first
    first = page(records, {"$top": "10"})
    assert ids(first.items)[-1] == "21"
    records = [incident(99, created_s=1000), *records]  # a new incident arrives at the head
    second = page(records, query_of(first.next_link or ""))
    assert ids(second.items)[0] == "21"  # served again
    assert "99" not in ids(first.items) + ids(second.items)


def test_a_record_removed_behind_the_offset_shifts_the_rest() -> None:
    records = incidents(60)
    first = page(records, {"$top": "10"})
    expected_second = ids(page(records, {"$top": "10", "$skip": "11"}).items)
    shrunk = [r for r in records if r is not first.items[-1]]
    assert ids(page(shrunk, query_of(first.next_link or "")).items) == expected_second


def test_count_follows_the_listing_as_it_is_on_each_page() -> None:
    records = incidents(40)
    query = {"$filter": "status eq 'active'", "$count": "true", "$top": "5"}
    first = page(records, query)
    active = sum(r["status"].lower() == "active" for r in records)
    assert first.count == active
    records = [*records, incident(500, created_s=1, status="active")]
    assert page(records, query_of(first.next_link or "")).count == active + 1


def test_keyset_mode_neither_repeats_nor_shifts_when_records_arrive_or_go() -> None:
    records = incidents(100, spread=1000)
    expected = ids(page(records, {"$top": "50"}).items) + ids(
        page(records, {"$top": "50", "$skip": "50"}).items
    )
    first = page(records, {"$top": "10"}, paging="keyset")
    seen = ids(first.items)
    current = query_of(first.next_link or "")
    n = 1000
    while True:
        n += 1  # a brand-new incident arrives before every request
        records = [incident(n, created_s=10_000 + n), *records]
        result = page(records, current, paging="keyset")
        seen += ids(result.items)
        if result.next_link is None:
            break
        current = query_of(result.next_link)
    assert seen == expected

    records = incidents(60)
    first = page(records, {"$top": "10"}, paging="keyset")
    shrunk = [r for r in records if r is not first.items[-1]]  # the cursor's own record goes
    rest = [r for p in follow(shrunk, query_of(first.next_link or ""), paging="keyset") for r in p]
    assert ids(first.items) + ids(rest) == ids(page(records, {"$top": "50"}).items) + ids(
        page(records, {"$top": "50", "$skip": "50"}).items
    )


def test_a_changed_listing_is_seen_on_the_next_request() -> None:
    records = incidents(10)
    assert len(page(records).items) == 10
    records.append(incident(99, created_s=10**6))  # same list object, new length
    assert ids(page(records).items)[0] == "99"


def test_keyset_paging_through_10000_incidents_serves_each_exactly_once() -> None:
    records = incidents(10_000)
    cut = graph_time(BASE + timedelta(seconds=60_000))
    for query in (
        {},
        {"$filter": f"lastUpdateDateTime ge {cut}"},
        {"$filter": f"lastUpdateDateTime ge {cut}", "$orderby": "lastUpdateDateTime asc"},
    ):
        pages = follow(records, query, paging="keyset")
        seen = ids([r for p in pages for r in p])
        flt = query.get("$filter")
        wanted = [r for r in records if flt is None or r["lastUpdateDateTime"] >= cut]
        assert len(seen) == len(set(seen)) == len(wanted)
        assert set(seen) == set(ids(wanted))
        assert all(len(p) == 50 for p in pages[:-1])


# -- property: next links serve every match exactly once, in order, whatever the ties ------------

STATUS_VALUES = ["active", "resolved", "inProgress"]


@st.composite
def listings(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, str]]:
    n = draw(st.integers(0, 60))
    instants = draw(st.integers(1, 4))  # few distinct timestamps: ties span page boundaries
    id_numbers = draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n, unique=True))
    records = []
    for number in id_numbers:
        created = draw(st.integers(0, instants - 1))
        updated = draw(st.integers(0, instants - 1))
        record = incident(number, created, updated, status=draw(st.sampled_from(STATUS_VALUES)))
        if draw(st.integers(0, 9)) == 0:
            del record["createdDateTime"]  # records without the sort key still page correctly
        records.append(record)
    query: dict[str, str] = {"$top": str(draw(st.integers(1, 7)))}
    order = draw(
        st.sampled_from(
            [None, "createdDateTime desc", "createdDateTime asc", "lastUpdateDateTime asc"]
        )
    )
    if order:
        query["$orderby"] = order
    flt = draw(
        st.sampled_from(
            [
                None,
                "status eq 'active'",
                "status ne 'resolved' and lastUpdateDateTime ge 2025-02-07T19:01:27Z",
                f"lastUpdateDateTime lt {graph_time(BASE + timedelta(seconds=2))}",
            ]
        )
    )
    if flt:
        query["$filter"] = flt
    if draw(st.booleans()):
        query["$skip"] = str(draw(st.integers(0, 5)))
    return records, query


def reference_listing(records: list[dict[str, Any]], query: dict[str, str]) -> list[str]:
    field, _, direction = query.get("$orderby", "createdDateTime desc").partition(" ")
    flt = query.get("$filter")

    def wanted(r: dict[str, Any]) -> bool:
        if flt == "status eq 'active'":
            return bool(r["status"] == "active")
        if flt and flt.startswith("status ne"):
            return bool(
                r["status"] != "resolved"
                and r["lastUpdateDateTime"] >= graph_time(BASE + timedelta(seconds=1))
            )
        if flt:
            return bool(r["lastUpdateDateTime"] < graph_time(BASE + timedelta(seconds=2)))
        return True

    def key(r: dict[str, Any]) -> tuple[str, int]:
        return (r.get(field, ""), int(r["id"]))

    ordered = sorted((r for r in records if wanted(r)), key=key, reverse=direction == "desc")
    return ids(ordered)[int(query.get("$skip", "0")) :]


@pytest.mark.parametrize("paging", ["offset", "keyset"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=listings())
def test_following_next_links_serves_each_match_once_in_order(
    paging: Paging, case: tuple[list[dict[str, Any]], dict[str, str]]
) -> None:
    """On an unchanging listing (well under the $skip ceiling) both modes serve it all."""
    records, query = case
    pages = follow(records, query, paging=paging)
    served = ids([r for p in pages for r in p])
    assert served == reference_listing(records, query)
    top = int(query["$top"])
    assert all(len(p) == top for p in pages[:-1])
    assert len(pages[-1]) <= top


def test_equal_stamps_in_a_new_order_per_request_overlap_across_offset_pages() -> None:
    # tie_shuffle_rate: OData leaves the order among equal $orderby values to the service.
    tied = [incident(n, created_s=n, updated_s=50) for n in range(1, 41)]
    around = [incident(100 + n, created_s=n, updated_s=n) for n in (10, 90)]
    records = [*tied, *around]
    query = {"$orderby": "lastUpdateDateTime asc", "$top": "10"}
    rng = random.Random(4)
    served: list[str] = []
    for skip in range(0, 50, 10):
        served += ids(
            list_page(
                records, {**query, "$skip": str(skip)}, spec=INCIDENTS, base_url=INCIDENTS_URL,
                ties=rng,
            ).items
        )  # fmt: skip
    assert len(served) == 42
    assert served[0] == "110" and served[-1] == "190"  # the stamps' order holds
    assert len(set(served)) < 42  # some tied records twice, so others never
    assert served[1:41] != sorted(served[1:41], key=int)  # not by id
    # Without a draw, the order is by id and the pages partition the listing.
    plain = [
        i for s in range(0, 50, 10) for i in ids(page(records, {**query, "$skip": str(s)}).items)
    ]
    assert sorted(plain, key=int) == sorted(ids(records), key=int)


def test_a_refused_orderby_is_answered_in_odatas_words_and_only_when_asked_for() -> None:
    records = incidents(5)
    ordered = {"$orderby": "lastUpdateDateTime asc"}
    for spec in (INCIDENTS, ALERTS):
        url = INCIDENTS_URL if spec is INCIDENTS else ALERTS_URL
        with pytest.raises(ListingError) as caught:
            list_page(records, ordered, spec=spec, base_url=url, order_refused=True)
        assert caught.value.status == 400
        assert caught.value.message.startswith("Query option 'OrderBy' is not allowed.")
        plain = list_page(records, {"$top": "3"}, spec=spec, base_url=url, order_refused=True)
        assert len(plain.items) == 3
