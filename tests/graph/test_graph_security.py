"""Typed Defender operations against an in-memory fake of Graph /security."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from graph_fakes import GRAPH, Harness, graph_error, graph_json

from xdrsync.config import SyncConfig
from xdrsync.errors import FatalSyncError, RetriableError, ThrottledError
from xdrsync.graph.errors import BadRequestError
from xdrsync.graph.security import EXPAND_ATTEMPTS, DefenderApi
from xdrsync.hub.payload import ticks_from_datetime
from xdrsync.sync.inbound import _parse
from xdrsync.sync.listing import PageQuery, Unordered, stamp_of

Build = Callable[..., Harness]
BASE = f"{GRAPH}/v1.0/security"
LOWER = datetime(2025, 2, 1, tzinfo=UTC)
UPPER = datetime(2025, 2, 7, 19, 1, 26, 123456, tzinfo=UTC)


def _incident(number: int, alerts: int) -> dict[str, Any]:
    return {
        "id": str(number),
        "displayName": f"Incident {number}",
        "status": "active",
        "lastUpdateDateTime": (LOWER + timedelta(minutes=number)).isoformat(),
        "customTags": [],
        "alerts": [
            {
                "id": f"da{number}-{k}",
                "incidentId": str(number),
                "title": f"alert {k}",
                "evidence": [
                    {
                        "@odata.type": "#microsoft.graph.security.ipEvidence",
                        "ipAddress": f"10.0.{number}.{k}",
                    }
                ],
            }
            for k in range(alerts)
        ],
    }


@dataclass
class FakeDefender:
    """Enough of Graph /security: listing with $top/$skip/$expand, get, patch, comments
    (filters are the sync engine's tests' concern, see tests/sync/fakegraph.py)."""

    incidents: list[dict[str, Any]]
    expand_fails_at: set[int] = field(default_factory=set)  # page offsets whose $expand 500s
    alerts_page_size: int = 2
    patches: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1.0/security")
        params = request.url.params
        if request.method == "GET" and path == "/incidents":
            return self._list(request, self.incidents, expandable=True)
        if request.method == "GET" and path == "/alerts_v2":
            alerts = [alert for incident in self.incidents for alert in incident["alerts"]]
            return self._list(request, alerts, expandable=False)
        found = re.fullmatch(r"/(incidents|alerts_v2)/([^/]+)(/alerts|/comments)?", path)
        if found is None:
            return graph_error(400, "BadRequest", f"no route {path}")
        kind, record_id, sub = found.groups()
        record = self._find(kind, record_id)
        if record is None:
            return graph_error(404, "NotFound", f"{kind} {record_id} not found")
        if request.method == "GET" and sub == "/alerts":
            return self._list(
                request, record["alerts"], expandable=False, size=self.alerts_page_size
            )
        if request.method == "GET" and sub is None:
            body = dict(record)
            if kind == "incidents" and "alerts" not in params.get("$expand", ""):
                body.pop("alerts")
            return graph_json({"@odata.context": f"{GRAPH}/v1.0/$metadata#{kind}/$entity", **body})
        if request.method == "PATCH":
            changes = json.loads(request.content)
            self.patches.append(changes)
            record.update(changes)
            return graph_json({k: v for k, v in record.items() if k != "alerts"})
        if request.method == "POST" and sub == "/comments":
            body = json.loads(request.content)
            thread = self.comments.setdefault(record_id, [])
            thread.append({"comment": body["comment"], "createdByDisplayName": "xdrsync"})
            return graph_json({"@odata.context": "x", "value": thread})
        return graph_error(405, "MethodNotAllowed", "no")

    def _find(self, kind: str, record_id: str) -> dict[str, Any] | None:
        for incident in self.incidents:
            if kind == "incidents" and incident["id"] == record_id:
                return incident
            for alert in incident["alerts"]:
                if kind == "alerts_v2" and alert["id"] == record_id:
                    return alert
        return None

    def _list(
        self,
        request: httpx.Request,
        records: list[dict[str, Any]],
        *,
        expandable: bool,
        size: int | None = None,
    ) -> httpx.Response:
        params = request.url.params
        top = size or int(params.get("$top", "100"))
        offset = int(params.get("$skip", params.get("$skiptoken", "0")))
        expand = "alerts" in params.get("$expand", "")
        if expandable and expand and offset in self.expand_fails_at:
            return graph_error(500, "InternalServerError", "An internal server error occurred.")
        chunk = records[offset : offset + top]
        if expandable and not expand:
            chunk = [{k: v for k, v in record.items() if k != "alerts"} for record in chunk]
        body: dict[str, Any] = {"value": chunk}
        if offset + top < len(records):
            # Like Graph: the link keeps the request's options and moves the position.
            kept = [(k, v) for k, v in params.multi_items() if k != "$skiptoken"]
            query = str(httpx.QueryParams([*kept, ("$skiptoken", str(offset + top))]))
            body["@odata.nextLink"] = f"{GRAPH}{request.url.path}?{query}"
        return graph_json(body)


def api_for(harness: Harness, sync: SyncConfig | None = None) -> DefenderApi:
    return DefenderApi(harness.client, sync or SyncConfig())


WINDOW = PageQuery(ticks_from_datetime(LOWER), ticks_from_datetime(UPPER))


def test_a_page_is_asked_for_by_time_boundary_oldest_first_with_alerts(
    harness_factory: Build,
) -> None:
    fake = FakeDefender([_incident(1, 1)])
    h = harness_factory(fake)
    page = api_for(h).incidents_page(WINDOW)
    assert len(page.items) == 1 and page.more is False and page.count is None
    url = h.recorder.urls[0]
    assert url.startswith(f"{BASE}/incidents?")
    params = h.recorder.requests[0].url.params
    assert params["$filter"] == (
        "lastUpdateDateTime ge 2025-02-01T00:00:00.0000000Z "
        "and lastUpdateDateTime lt 2025-02-07T19:01:26.1234560Z"
    )
    assert params["$orderby"] == "lastUpdateDateTime asc"
    assert params["$top"] == "50"
    assert params["$expand"] == "alerts"
    assert "$skip" not in params and "$count" not in params
    assert "'" not in params["$filter"]  # datetimes are unquoted literals


def test_bounds_offsets_counts_and_order_are_written_as_the_query_says(
    harness_factory: Build,
) -> None:
    fake = FakeDefender([_incident(n, 1) for n in range(1, 12)])
    h = harness_factory(fake)
    query = PageQuery(
        ticks_from_datetime(LOWER) + 1234567,
        ticks_from_datetime(UPPER),
        lower_inclusive=False,
        upper_inclusive=True,
        ordered=False,
        skip=5,
        count=True,
    )
    page = api_for(h, SyncConfig(page_size_incidents=3)).incidents_page(query)
    params = h.recorder.requests[0].url.params
    assert params["$filter"] == (
        "lastUpdateDateTime gt 2025-02-01T00:00:00.1234567Z "
        "and lastUpdateDateTime le 2025-02-07T19:01:26.1234560Z"
    )
    assert "$orderby" not in params
    assert (params["$skip"], params["$count"], params["$top"]) == ("5", "true", "3")
    assert [i["id"] for i in page.items] == ["6", "7", "8"]
    assert page.more is True  # Graph linked a next page; the engine decides what to ask next


def test_records_are_returned_untouched(harness_factory: Build) -> None:
    fake = FakeDefender([_incident(1, 3)])
    h = harness_factory(fake)
    page = api_for(h).incidents_page(WINDOW)
    assert page.items == (fake.incidents[0],)
    assert page.alerts_fallback is False
    assert page.server_date.tzinfo is not None


def _pages(api: DefenderApi, size: int, total: int) -> list[Any]:
    return [
        api.incidents_page(PageQuery(WINDOW.lower, WINDOW.upper, skip=skip))
        for skip in range(0, total, size)
    ]


def test_expand_failure_falls_back_to_per_incident_alerts_with_the_same_result(
    harness_factory: Build,
) -> None:
    incidents = [_incident(n, n % 4) for n in range(1, 13)]
    sync = SyncConfig(page_size_incidents=4, max_attempts=2)
    expected = [
        incident
        for page in _pages(api_for(harness_factory(FakeDefender(incidents)), sync), 4, 12)
        for incident in page.items
    ]

    fake = FakeDefender(incidents, expand_fails_at={4})  # the second page
    h = harness_factory(fake, sync=sync)
    pages = _pages(api_for(h, sync), 4, 12)
    got = [incident for page in pages for incident in page.items]

    assert got == expected
    # Only the failing page fell back; the next page tried $expand again, and it worked.
    assert [page.alerts_fallback for page in pages] == [False, True, False]
    assert h.client.stats()["expand_fallbacks"] == 1
    # The failed page was re-read at the same position, just without $expand.
    page_two = [r.url for r in h.recorder.requests if r.url.params.get("$skip") == "4"]
    assert [u.params.get("$expand") for u in page_two] == ["alerts", "alerts", None]
    # Alerts came from each incident's own endpoint, following its nextLinks.
    alert_reads = [r.url for r in h.recorder.requests if r.url.path.endswith("/alerts")]
    assert any(u.params.get("$skiptoken") == "2" for u in alert_reads)


def test_after_a_fallback_each_page_tries_expand_only_once(harness_factory: Build) -> None:
    incidents = [_incident(n, 1) for n in range(1, 13)]
    fake = FakeDefender(incidents, expand_fails_at={4, 8})  # the second and third pages
    sync = SyncConfig(page_size_incidents=4, max_attempts=6)
    h = harness_factory(fake, sync=sync)
    pages = _pages(api_for(h, sync), 4, 12)
    assert [page.alerts_fallback for page in pages] == [False, True, True]
    page_three = [r.url for r in h.recorder.requests if r.url.params.get("$skip") == "8"]
    assert [u.params.get("$expand") for u in page_three] == ["alerts", None]


def test_an_expand_outage_is_one_warning_as_it_starts_and_one_line_as_it_ends(
    harness_factory: Build,
) -> None:
    """While Graph kept failing $expand, the fallback's warning came back every cycle."""
    fake = FakeDefender([_incident(1, 2)], expand_fails_at={0})
    h = harness_factory(fake, sync=SyncConfig(max_attempts=2))
    api = api_for(h, SyncConfig(max_attempts=2))
    expand = "$expand=alerts failed; reading alerts per incident"
    again = "$expand=alerts works again; alerts come with their incidents"

    def cycles(count: int) -> list[dict[str, Any]]:
        with structlog.testing.capture_logs() as events:
            for _ in range(count):
                assert api.incidents_page(WINDOW).items == tuple(fake.incidents)
        return [e for e in events if e["event"] in (expand, again)]

    said = cycles(4)  # an outage of $expand over four cycles
    assert [(e["event"], e["log_level"]) for e in said if e["log_level"] != "debug"] == [
        (expand, "warning")
    ]
    assert said[0]["tenant"] == h.client.tenant.name and "500" in said[0]["error"]
    assert h.client.stats()["expand_fallbacks"] == 4  # each fallback still counted
    fake.expand_fails_at.clear()  # $expand answers again
    assert [(e["event"], e["log_level"]) for e in cycles(3)] == [(again, "info")]
    fake.expand_fails_at.add(0)  # a later outage is said again
    assert [(e["event"], e["log_level"]) for e in cycles(2) if e["log_level"] != "debug"] == [
        (expand, "warning")
    ]


def test_the_expand_fallback_does_not_wait_out_a_full_retry_budget(
    harness_factory: Build,
) -> None:
    fake = FakeDefender([_incident(1, 2)], expand_fails_at={0})
    h = harness_factory(fake, sync=SyncConfig(max_attempts=6))
    page = api_for(h).incidents_page(WINDOW)
    assert page.items == tuple(fake.incidents)
    assert page.alerts_fallback is True
    expanded = [r for r in h.recorder.requests if r.url.params.get("$expand")]
    assert len(expanded) == EXPAND_ATTEMPTS < 6


def test_throttling_during_expand_is_not_mistaken_for_the_expand_bug(
    harness_factory: Build,
) -> None:
    busy = graph_error(429, "TooManyRequests", "busy", **{"Retry-After": "1"})
    h = harness_factory(lambda request: busy, sync=SyncConfig(max_attempts=2))
    with pytest.raises(ThrottledError):
        api_for(h, SyncConfig(max_attempts=2)).incidents_page(WINDOW)
    assert all(r.url.params.get("$expand") == "alerts" for r in h.recorder.requests)


def test_a_network_that_refuses_every_connection_is_not_taken_for_the_expand_bug(
    harness_factory: Build,
) -> None:
    """No connection reaches Graph: a read without $expand would fail the same way, so the
    page fails as what it is, once, without a fallback round logged as $expand's."""

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    h = harness_factory(refused, sync=SyncConfig(max_attempts=2))
    with pytest.raises(RetriableError, match="ConnectError") as raised:
        api_for(h, SyncConfig(max_attempts=2)).incidents_page(WINDOW)
    assert raised.value.unsent
    assert all(r.url.params.get("$expand") == "alerts" for r in h.recorder.requests)
    assert h.client.stats().get("expand_fallbacks", 0) == 0


def test_an_outage_asking_for_a_wait_is_waited_out_after_one_fallback(
    harness_factory: Build,
) -> None:
    down = graph_error(503, "ServiceUnavailable", "maintenance", **{"Retry-After": "600"})
    h = harness_factory(lambda request: down)
    with pytest.raises(ThrottledError) as raised:
        api_for(h).incidents_page(WINDOW)
    assert raised.value.retry_after == 600.0  # kept by the stream: no call for ten minutes
    assert len(h.recorder.requests) == 2  # $expand, then once without it


def test_expand_failures_that_ask_for_a_wait_still_fall_back(harness_factory: Build) -> None:
    fake = FakeDefender([_incident(n, 2) for n in range(1, 4)])

    def expand_busy(request: httpx.Request) -> httpx.Response:
        if "alerts" in request.url.params.get("$expand", ""):
            return graph_error(
                500, "InternalServerError", "An internal error", **{"Retry-After": "30"}
            )
        return fake(request)

    h = harness_factory(expand_busy)
    page = api_for(h).incidents_page(WINDOW)
    assert page.alerts_fallback and [i["id"] for i in page.items] == ["1", "2", "3"]
    assert all(len(i["alerts"]) == 2 for i in page.items)


def test_a_heavy_alert_shrinks_its_page_and_later_pages_grow_back(harness_factory: Build) -> None:
    incidents = [_incident(n, 1) for n in range(1, 17)]
    heavy = incidents[2]["alerts"][0]
    heavy["evidence"][0]["detail"] = "x" * 50_000  # fits alone, not with seven others
    for incident in incidents:
        if incident["alerts"][0] is not heavy:
            incident["alerts"][0]["evidence"][0]["detail"] = "y" * 4_000
    sync = SyncConfig(page_size_alerts=8, max_response_bytes=64 * 1024, max_attempts=2)
    h = harness_factory(FakeDefender(incidents), sync=sync)
    api = api_for(h, sync)
    read = 0
    while read < 16:
        read += len(api.alerts_page(PageQuery(WINDOW.lower, WINDOW.upper, skip=read)).items)
    tops = [int(r.url.params["$top"]) for r in h.recorder.requests if "alerts_v2" in r.url.path]
    assert tops[:4] == [8, 8, 4, 8]  # two attempts at 8, half as many, then 8 again
    assert read == 16


def test_alerts_are_listed_from_alerts_v2_with_their_page_size(harness_factory: Build) -> None:
    fake = FakeDefender([_incident(n, 3) for n in range(1, 5)])
    h = harness_factory(fake)
    page = api_for(h, SyncConfig(page_size_alerts=5)).alerts_page(WINDOW)
    assert len(page.items) == 5 and page.more
    first = h.recorder.requests[0].url
    assert first.path == "/v1.0/security/alerts_v2"
    assert first.params["$top"] == "5"
    assert first.params["$orderby"] == "lastUpdateDateTime asc"
    assert "$expand" not in first.params


def test_get_incident_returns_the_entity_or_none(harness_factory: Build) -> None:
    fake = FakeDefender([_incident(7, 2)])
    h = harness_factory(fake)
    api = api_for(h)
    incident = api.get_incident("7")
    assert incident == fake.incidents[0]
    assert "@odata.context" not in incident
    assert api.get_incident("404") is None
    assert api.get_alert("da7-1") == fake.incidents[0]["alerts"][1]
    assert api.get_alert("nope") is None


def test_get_incident_falls_back_when_expand_fails(harness_factory: Build) -> None:
    calls = {"n": 0}
    fake = FakeDefender([_incident(7, 3)])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/incidents/7") and request.url.params.get("$expand"):
            calls["n"] += 1
            return graph_error(503, "ServiceUnavailable", "expand is down")
        return fake(request)

    h = harness_factory(handler, sync=SyncConfig(max_attempts=2))
    assert api_for(h).get_incident("7") == fake.incidents[0]


ORDER_REFUSED = (
    "Query option 'OrderBy' is not allowed. To allow it, set the 'AllowedQueryOptions' "
    "property on EnableQueryAttribute or QueryValidationSettings."
)


@pytest.mark.parametrize("stream", ["incidents", "alerts"])
def test_a_refused_orderby_tells_the_engine_to_read_in_windows(
    harness_factory: Build, stream: str
) -> None:
    """Graph documents no ``$orderby`` on these lists (microsoft-apis.md §2.8): its 400
    refusing it is the signal that the order is not served, not a failure of the stream."""
    fake = FakeDefender([_incident(1, 2)])

    def handler(request: httpx.Request) -> httpx.Response:
        if "$orderby" in request.url.params:
            return graph_error(400, "BadRequest", ORDER_REFUSED)
        return fake(request)

    api = api_for(harness_factory(handler))
    read = api.incidents_page if stream == "incidents" else api.alerts_page
    with pytest.raises(Unordered, match="OrderBy"):
        read(WINDOW)
    assert read(replace(WINDOW, ordered=False)).items  # windows ask without it, and read


def test_another_bad_request_stays_a_failure(harness_factory: Build) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return graph_error(400, "BadRequest", "The limit of '50' for Top query has been exceeded.")

    with pytest.raises(BadRequestError, match="Top query"):
        api_for(harness_factory(handler)).incidents_page(WINDOW)


def test_an_incident_whose_alerts_cannot_be_read_whole_is_quarantined_not_stalling_the_page(
    harness_factory: Build,
) -> None:
    """The expand fallback reads incident 2's alerts: more than a page, linked by ``$skip``,
    so they are read whole by time, and the route refuses that read for good (a filter it
    does not take; so would more alerts on one stamp than ``$skip`` reaches). Failing the
    page would fail it every cycle and stop the stream; storing the incident with part of
    its alerts would lose them. It is quarantined with the reason, and the page's other
    incidents are taken. Another failure of the route fails the page, as ever."""
    fake = FakeDefender([_incident(n, 2) for n in range(1, 4)], expand_fails_at={0})
    first_page_fails = False

    def handler(request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/incidents/2/alerts"):
            return fake(request)
        if first_page_fails:
            return graph_error(405, "MethodNotAllowed", "no")
        if "$filter" in request.url.params:
            return graph_error(400, "BadRequest", "Query option 'Filter' is not allowed.")
        link = f"{GRAPH}{request.url.path}?$skip=1"
        return graph_json({"value": [_incident(2, 2)["alerts"][0]], "@odata.nextLink": link})

    sync = SyncConfig(max_attempts=2)
    page = api_for(harness_factory(handler, sync=sync), sync).incidents_page(WINDOW)
    assert [i["id"] for i in page.items] == ["1", "2", "3"]
    assert stamp_of(page.items[1]) == stamp_of(_incident(2, 2))  # it still steers paging
    incidents, _, quarantined = _parse("incidents", page.items)
    assert [i.id for i in incidents] == ["1", "3"]
    (bad,) = quarantined
    assert "alerts cannot be read whole" in bad.reason and "Filter" in bad.reason
    assert json.loads(bad.raw)["id"] == "2"
    first_page_fails = True
    with pytest.raises(FatalSyncError):
        api_for(harness_factory(handler, sync=sync), sync).incidents_page(WINDOW)


def test_patch_sends_only_documented_writable_fields(harness_factory: Build) -> None:
    fake = FakeDefender([_incident(3, 1)])
    h = harness_factory(fake)
    api = api_for(h)
    updated = api.patch_incident("3", {"status": "resolved", "customTags": ("a", "b")})
    assert fake.patches == [{"status": "resolved", "customTags": ["a", "b"]}]
    assert updated["status"] == "resolved"
    assert h.recorder.requests[-1].method == "PATCH"


@pytest.mark.parametrize(
    "changes",
    [{"severity": "high"}, {"displayName": "x", "status": "active"}, {}, {"customTags": "a"}],
)
def test_patch_refuses_anything_else_before_any_request(
    harness_factory: Build, changes: dict[str, Any]
) -> None:
    h = harness_factory(FakeDefender([_incident(3, 1)]))
    with pytest.raises(ValueError, match=r"writable|no incident fields|customTags must"):
        api_for(h).patch_incident("3", changes)
    assert h.recorder.requests == []


def test_patch_alert_allows_only_alert_fields(harness_factory: Build) -> None:
    fake = FakeDefender([_incident(3, 1)])
    h = harness_factory(fake)
    api = api_for(h)
    with pytest.raises(ValueError, match="customTags"):
        api.patch_alert("da3-0", {"customTags": ["x"]})
    assert api.patch_alert("da3-0", {"status": "inProgress"})["status"] == "inProgress"


def test_comments_are_posted_as_alert_comments_and_the_full_list_returned(
    harness_factory: Build,
) -> None:
    fake = FakeDefender([_incident(3, 1)])
    h = harness_factory(fake)
    api = api_for(h)
    api.add_incident_comment("3", "first")
    comments = api.add_incident_comment("3", "second")
    assert [c["comment"] for c in comments] == ["first", "second"]
    body = json.loads(h.recorder.requests[-1].content)
    assert body == {"@odata.type": "microsoft.graph.security.alertComment", "comment": "second"}
    assert [c["comment"] for c in api.add_alert_comment("da3-0", "on the alert")] == [
        "on the alert"
    ]
    with pytest.raises(ValueError, match="needs text"):
        api.add_incident_comment("3", "   ")


def test_ids_cannot_escape_their_path_segment(harness_factory: Build) -> None:
    h = harness_factory(lambda request: graph_error(404, "NotFound", "no such incident"))
    assert api_for(h).get_incident("../alerts_v2/x") is None
    assert h.recorder.requests[0].url.raw_path.startswith(
        b"/v1.0/security/incidents/..%2Falerts_v2"
    )


def _honouring_filters(alerts: list[dict[str, Any]], request: httpx.Request) -> httpx.Response:
    """An incident's alerts route as Graph pages it: ``lastUpdateDateTime`` bounds, oldest
    first, ``$top`` (1,000 when none is asked) and ``$skip``, with an offset next link."""
    params = request.url.params
    bounds = re.findall(r"lastUpdateDateTime (ge|gt|le|lt) (\S+)", params.get("$filter", ""))
    tests = {"ge": str.__ge__, "gt": str.__gt__, "le": str.__le__, "lt": str.__lt__}
    kept = sorted(
        (a for a in alerts if all(tests[op](a["lastUpdateDateTime"], v) for op, v in bounds)),
        key=lambda a: a["lastUpdateDateTime"],
    )
    top, skip = int(params.get("$top", "1000")), int(params.get("$skip", "0"))
    body: dict[str, Any] = {"value": kept[skip : skip + top]}
    if skip + top < len(kept):
        query = str(httpx.QueryParams({**dict(params), "$skip": str(skip + top)}))
        body["@odata.nextLink"] = f"{GRAPH}{request.url.path}?{query}"
    return graph_json(body)


def test_an_incident_whose_alerts_answer_too_large_is_read_in_pages_that_fit(
    harness_factory: Build,
) -> None:
    """The expand fallback read an incident's alerts in one answer; alerts heavy with
    evidence (the kind of incident whose ``$expand`` fails) made it larger than
    ``max_response_bytes`` every time, so the page failed every cycle and the incidents
    stream stopped there for good, although each alert fits alone. They are read by time
    boundary in pages that fit, as the alerts stream reads."""
    incidents = [_incident(1, 8), _incident(2, 1)]
    for k, alert in enumerate(incidents[0]["alerts"]):
        alert["lastUpdateDateTime"] = f"2025-02-01T00:0{k}:00.0000000Z"
        alert["evidence"][0]["detail"] = "x" * 12_000  # 8 of them: about 100 KB together
    fake = FakeDefender(incidents, expand_fails_at={0})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/incidents/1/alerts"):
            return _honouring_filters(incidents[0]["alerts"], request)
        return fake(request)

    sync = SyncConfig(max_response_bytes=64 * 1024, max_attempts=2)
    page = api_for(harness_factory(handler, sync=sync), sync).incidents_page(WINDOW)
    assert [[a["id"] for a in i["alerts"]] for i in page.items] == [
        [a["id"] for a in i["alerts"]] for i in incidents
    ]
    assert page.items[0]["alerts"] == incidents[0]["alerts"]


@pytest.mark.parametrize(
    "annotations",
    [
        {"alerts@odata.nextLink": f"{GRAPH}/v1.0/security/incidents/1/alerts?$skiptoken=2"},
        {"alerts@odata.count": 5},
    ],
    ids=["next-link", "count"],
)
def test_an_expanded_alerts_list_that_says_it_has_more_is_read_whole(
    harness_factory: Build, annotations: dict[str, Any]
) -> None:
    """OData lets a server page an expanded collection: the incident then carries its first
    alerts with ``alerts@odata.nextLink``, or an ``alerts@odata.count`` above them. Stored as
    it came (the hub drops the annotations), the incident would list part of its alerts and
    the rest would be read by no stream (the alerts stream reads from its start, not
    back). Such an incident's alerts are read from its alerts route, in a listing and by
    ``get_incident`` alike."""
    incident = _incident(1, 5)
    fake = FakeDefender([incident], alerts_page_size=10)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = fake(request)
        if "alerts" not in request.url.params.get("$expand", ""):
            return answer
        body = json.loads(answer.content)
        for record in body.get("value", [body]):
            record.update({"alerts": record["alerts"][:2], **annotations})
        return graph_json(body)

    api = api_for(harness_factory(handler))
    (listed,) = api.incidents_page(WINDOW).items
    assert [a["id"] for a in listed["alerts"]] == [a["id"] for a in incident["alerts"]]
    got = api.get_incident("1")
    assert got is not None
    assert [a["id"] for a in got["alerts"]] == [a["id"] for a in incident["alerts"]]


# -- $expand=alerts after a fallback -----------------------------------------------------------


class _FlakyGraph:
    """A Graph client whose incidents listing meets transient 5xx: ``fail_next`` attempts of
    the next listing fail, then it answers. Counts the per-incident alert reads."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.tenant = SimpleNamespace(name="contoso")
        self.fail_next = 0
        self.alert_reads = 0
        self.listings = 0

    def record(self, _: str) -> None:
        return None

    def get(
        self, path: str, params: Any = None, *, max_attempts: int | None = None, **_: Any
    ) -> Any:
        from datetime import UTC, datetime

        from xdrsync.errors import RetriableError
        from xdrsync.graph.client import GraphResponse

        attempts = max_attempts or 6
        for _attempt in range(attempts):
            self.listings += 1
            if self.fail_next:
                self.fail_next -= 1
                continue
            value = [{"id": str(i), "alerts": []} for i in range(50)]
            return GraphResponse(200, {"value": value}, datetime.now(UTC), path, "r")
        raise RetriableError(f"GET {path} failed after {attempts} attempt(s): server error (503)")

    def paginate(self, path: str) -> Any:
        from datetime import UTC, datetime

        from xdrsync.graph.client import GraphResponse

        self.alert_reads += 1
        yield GraphResponse(200, {"value": []}, datetime.now(UTC), path, "r")


def test_one_expand_fallback_does_not_make_every_later_blip_cost_a_page_of_calls() -> None:
    """Seen in the soak: a burst of 5xx (error_rate=0.1) made one incidents page fail its 3
    $expand attempts; from then on `DefenderApi._expand_attempts` stays 1 for the life of
    the process (graph/security.py:250, never reset), so a single reset or 5xx on any later
    page, which one retry clears, reads the page again without $expand and each incident's
    alerts one call at a time: 50 calls instead of 1, against a 120 calls/min budget, for
    weeks. Expected: once $expand pages succeed again, a lone blip is retried."""
    from xdrsync.config import SyncConfig
    from xdrsync.graph.security import DefenderApi
    from xdrsync.sync.listing import PageQuery

    graph = _FlakyGraph()
    api = DefenderApi(graph, SyncConfig())  # type: ignore[arg-type]
    graph.fail_next = 3  # a short outage: the three $expand attempts fail
    api.incidents_page(PageQuery(lower=0))
    assert graph.alert_reads == 50  # the fallback, as designed
    for _ in range(100):  # hours of healthy $expand pages
        api.incidents_page(PageQuery(lower=0))
    graph.alert_reads = 0
    graph.fail_next = 1  # one transient 503, which a single retry clears
    api.incidents_page(PageQuery(lower=0))
    assert graph.alert_reads == 0, f"a lone blip cost {graph.alert_reads} per-incident reads"
