"""GraphClient over a mocked transport: headers, server time, the retry table in action, paging."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from entra_fake import self_signed
from graph_fakes import GRAPH, Harness, graph_error, graph_json, make_tenant

from xdrsync import __version__
from xdrsync.config import SyncConfig
from xdrsync.errors import ConfigError, FatalSyncError, RetriableError, ThrottledError
from xdrsync.graph.client import GraphClient
from xdrsync.graph.errors import NotFoundError
from xdrsync.graph.http import build_http_client, graph_error_detail

INCIDENTS = f"{GRAPH}/v1.0/security/incidents"
Build = Callable[..., Harness]


def script(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """Answer successive requests with ``responses`` (exceptions are raised)."""
    queue: Iterator[httpx.Response | Exception] = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(queue)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


OK = {"value": []}
_PEM_CA = self_signed("corp-ca")[1].public_bytes(serialization.Encoding.PEM)


def test_every_request_carries_token_accept_request_id_and_user_agent(
    harness_factory: Build,
) -> None:
    h = harness_factory(script(graph_json(OK), graph_json(OK)))
    h.client.get("/security/incidents")
    h.client.get("/security/incidents")
    first, second = h.recorder.requests
    assert first.headers["Authorization"] == "Bearer token-1"
    assert first.headers["Accept"] == "application/json"
    assert first.headers["User-Agent"] == f"xdrsync/{__version__}"
    assert uuid.UUID(first.headers["client-request-id"])
    assert first.headers["client-request-id"] != second.headers["client-request-id"]
    assert str(first.url) == INCIDENTS


def test_server_date_comes_from_the_date_header(harness_factory: Build) -> None:
    reply = graph_json(OK, Date="Fri, 07 Feb 2025 19:01:26 GMT")
    h = harness_factory(script(reply))
    response = h.client.get("/security/incidents")
    assert response.server_date == datetime(2025, 2, 7, 19, 1, 26, tzinfo=UTC)
    assert response.server_date.tzinfo is not None
    assert response.status == 200


def test_query_options_keep_their_dollar_and_values_are_encoded(harness_factory: Build) -> None:
    h = harness_factory(script(graph_json(OK)))
    h.client.get("/security/incidents", {"$top": 50, "$filter": "status eq 'active'"})
    assert h.recorder.urls == [f"{INCIDENTS}?$top=50&$filter=status%20eq%20'active'"]


def test_429_waits_exactly_retry_after_seconds(harness_factory: Build) -> None:
    h = harness_factory(
        script(
            graph_error(429, "TooManyRequests", "slow down", **{"Retry-After": "7"}), graph_json(OK)
        )
    )
    h.client.get("/security/incidents")
    assert h.clock.sleeps == [7.0]
    assert h.client.stats()["throttled"] == 1
    assert h.client.stats()["retries"] == 1


def test_429_with_an_http_date_waits_until_that_date_by_the_servers_clock(
    harness_factory: Build,
) -> None:
    throttled = graph_error(
        429,
        "TooManyRequests",
        "slow down",
        **{"Retry-After": "Fri, 07 Feb 2025 19:00:45 GMT", "Date": "Fri, 07 Feb 2025 19:00:30 GMT"},
    )
    h = harness_factory(script(throttled, graph_json(OK)))
    h.client.get("/security/incidents")
    assert h.clock.sleeps == [15.0]


def test_a_429_storm_is_honoured_every_time(harness_factory: Build) -> None:
    storm = [graph_error(429, "TooManyRequests", "busy", **{"Retry-After": "3"}) for _ in range(5)]
    h = harness_factory(script(*storm, graph_json({"value": [{"id": "1"}]})))
    response = h.client.get("/security/incidents")
    assert response.items == [{"id": "1"}]
    assert h.clock.sleeps == [3.0] * 5
    assert h.client.pacer.paused_for() == 0.0


def test_a_429_pauses_the_whole_tenant_for_retry_after(harness_factory: Build) -> None:
    h = harness_factory(
        script(graph_error(429, "TooManyRequests", "busy", **{"Retry-After": "30"}), graph_json(OK))
    )
    paused: list[float] = []
    h.clock.on_sleep = lambda seconds: paused.append(h.client.pacer.paused_for())
    h.client.get("/security/incidents")
    assert paused == [30.0]  # while this thread waits, every other thread of the tenant waits


def test_endless_throttling_ends_in_throttled_error_after_max_attempts(
    harness_factory: Build,
) -> None:
    storm = [graph_error(429, "TooManyRequests", "busy", **{"Retry-After": "2"}) for _ in range(10)]
    h = harness_factory(script(*storm), sync=SyncConfig(max_attempts=4))
    with pytest.raises(ThrottledError) as raised:
        h.client.get("/security/incidents")
    assert raised.value.retry_after == 2.0
    assert len(h.recorder.requests) == 4
    assert h.clock.sleeps == [2.0, 2.0, 2.0]


def test_an_outage_asking_for_ten_minutes_is_waited_out_not_polled(harness_factory: Build) -> None:
    down = graph_error(503, "ServiceUnavailable", "maintenance", **{"Retry-After": "600"})
    h = harness_factory(script(down, graph_json(OK)))
    with pytest.raises(ThrottledError) as raised:  # longer than a call may wait in-line ...
        h.client.get("/security/incidents")
    assert raised.value.retry_after == 600.0  # ... so the stream keeps it for its next cycle
    assert len(h.recorder.requests) == 1 and h.clock.sleeps == []


@pytest.mark.parametrize(
    ("fraction", "sleeps"),
    [(0.0, [0.5, 1.0, 2.0]), (0.5, [0.75, 1.5, 3.0]), (1.0, [1.0, 2.0, 4.0])],
)
def test_429_without_retry_after_backs_off_with_jitter_but_never_at_once(
    harness_factory: Build, fraction: float, sleeps: list[float]
) -> None:
    """Microsoft's guidance for a 429 without Retry-After is exponential backoff; even the
    lowest jitter draw waits half the ceiling, as a retry right after a 429 prolongs it."""
    busy = [graph_error(429, "TooManyRequests", "busy") for _ in range(3)]
    h = harness_factory(script(*busy, graph_json(OK)), rng=lambda: fraction)
    h.client.get("/security/incidents")
    assert h.clock.sleeps == sleeps
    assert h.client.stats()["throttled"] == 3


def test_a_429_is_retried_with_the_full_budget_in_a_call_with_a_way_out(
    harness_factory: Build,
) -> None:
    """A call that gives up early for a cheaper way out (the $expand fallback, one attempt
    after a first fallback) still rides out a 429: no way out gets around the tenant's
    budget, and before, one 429 without Retry-After failed the stream for the cycle."""
    busy = [graph_error(429, "TooManyRequests", "busy") for _ in range(2)]
    h = harness_factory(script(*busy, graph_json(OK)), sync=SyncConfig(max_attempts=6))
    assert h.client.get("/security/incidents", max_attempts=1).json == OK
    assert len(h.recorder.requests) == 3
    assert h.clock.sleeps == [0.75, 1.5]


def test_a_5xx_in_a_call_with_a_way_out_gives_up_early(harness_factory: Build) -> None:
    h = harness_factory(
        script(*[graph_error(500, "InternalServerError", "boom") for _ in range(5)]),
        sync=SyncConfig(max_attempts=6),
    )
    with pytest.raises(RetriableError, match="2 attempt"):
        h.client.get("/security/incidents", max_attempts=2)
    assert len(h.recorder.requests) == 2


@pytest.mark.parametrize(
    ("content_type", "page", "shown", "hidden"),
    [
        (
            "text/html",
            b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN"><HTML><HEAD><TITLE>Service '
            b"Unavailable</TITLE></HEAD><BODY><h2>Service Unavailable</h2><hr><p>HTTP Error "
            b"503. The service is unavailable.</p></BODY></HTML>",
            "503 Service Unavailable (HTML page): HTTP Error 503. The service is unavailable.",
            "<",
        ),
        (
            "text/html; charset=utf-8",
            b"<html><head><title>503</title><style>body { font-family: Segoe UI; }</style>"
            b"<script>var x = '<p>no</p>';</script><!-- build 42 --></head><body><h1>Our "
            b"services aren&#39;t available right now</h1></body></html>",
            "Our services aren't available right now",
            "font-family",
        ),
        (
            "",  # no content type: still recognised by its first byte
            b"  <html><body><center><h1>502 Bad Gateway</h1></center></body></html>",
            "(HTML page)",
            "<",
        ),
        ("text/plain", b"upstream request timeout", "upstream request timeout", "HTML"),
    ],
)
def test_a_gateway_page_instead_of_graphs_json_is_retried_then_reported_readably(
    harness_factory: Build, content_type: str, page: bytes, shown: str, hidden: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    pages = [httpx.Response(503, headers=headers, content=page) for _ in range(3)]
    h = harness_factory(script(*pages), sync=SyncConfig(max_attempts=3))
    with pytest.raises(RetriableError) as raised:
        h.client.get("/security/incidents")
    assert len(h.recorder.requests) == 3  # retried as any 5xx, not a decode error
    message = str(raised.value)
    assert "failed after 3 attempt(s): server error (503 " in message
    assert shown in message and hidden not in message
    assert "JSON" not in message and "Expecting value" not in message


def test_reading_a_hostile_html_page_takes_linear_time() -> None:
    started = time.monotonic()
    for page in (b"<a " * 30_000, b"<a b='" * 15_000, b"<!--" * 20_000, b"<script" * 10_000):
        detail = graph_error_detail(
            httpx.Response(502, headers={"Content-Type": "text/html"}, content=page)
        )
        assert detail.startswith("502 Bad Gateway (HTML page)")
    assert time.monotonic() - started < 5  # html.parser takes over half a minute on "<a "


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_then_succeed(harness_factory: Build, status: int) -> None:
    h = harness_factory(script(graph_error(status, "Oops", "try later"), graph_json(OK)))
    assert h.client.get("/security/incidents").status == 200
    assert len(h.recorder.requests) == 2


def test_persistent_server_errors_raise_retriable_after_bounded_attempts(
    harness_factory: Build,
) -> None:
    errors = [graph_error(500, "InternalServerError", "boom") for _ in range(10)]
    h = harness_factory(script(*errors), sync=SyncConfig(max_attempts=6))
    with pytest.raises(RetriableError) as raised:
        h.client.get("/security/incidents")
    assert not isinstance(raised.value, ThrottledError)
    assert len(h.recorder.requests) == 6
    assert len(h.clock.sleeps) == 5
    message = str(raised.value)
    assert "\n" not in message
    assert "6 attempt" in message and "InternalServerError: boom" in message


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_transport_failures_are_retried(harness_factory: Build, failure: Exception) -> None:
    h = harness_factory(script(failure, graph_json(OK)))
    assert h.client.get("/security/incidents").json == OK
    assert h.client.stats()["retries"] == 1


class _DroppedMidBody(httpx.SyncByteStream):
    """A body that starts arriving, then the connection drops."""

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"value": [{"id": "1"'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def test_a_connection_dropped_mid_body_is_retried(harness_factory: Build) -> None:
    broken = httpx.Response(
        200, headers={"Content-Type": "application/json"}, stream=_DroppedMidBody()
    )
    h = harness_factory(script(broken, graph_json({"value": [{"id": "1"}]})))
    assert h.client.get("/security/incidents").items == [{"id": "1"}]
    assert len(h.recorder.requests) == 2


def test_a_2xx_that_is_not_json_is_retried(harness_factory: Build) -> None:
    garbled = httpx.Response(200, content=b"<html>proxy hiccup</html>")
    h = harness_factory(script(garbled, graph_json(OK)))
    assert h.client.get("/security/incidents").json == OK


def test_401_refreshes_the_token_once_and_retries(harness_factory: Build) -> None:
    h = harness_factory(
        script(graph_error(401, "InvalidAuthenticationToken", "expired"), graph_json(OK))
    )
    h.client.get("/security/incidents")
    assert h.tokens.invalidations == 1
    auth = [r.headers["Authorization"] for r in h.recorder.requests]
    assert auth == ["Bearer token-1", "Bearer token-2"]
    assert h.clock.sleeps == []


def test_401_twice_is_a_config_error(harness_factory: Build) -> None:
    h = harness_factory(
        script(*[graph_error(401, "InvalidAuthenticationToken", "nope") for _ in range(5)])
    )
    with pytest.raises(ConfigError) as raised:
        h.client.get("/security/incidents")
    assert h.tokens.invalidations == 1
    assert len(h.recorder.requests) == 2
    assert "401" in str(raised.value)


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("GET", "/security/incidents", "SecurityIncident.Read.All"),
        ("GET", "/security/alerts_v2", "SecurityAlert.Read.All"),
        ("PATCH", "/security/incidents/12", "SecurityIncident.ReadWrite.All"),
        ("POST", "/security/alerts_v2/da1/comments", "SecurityAlert.ReadWrite.All"),
    ],
)
def test_403_is_a_config_error_naming_the_missing_permission(
    harness_factory: Build, method: str, path: str, permission: str
) -> None:
    h = harness_factory(script(graph_error(403, "Forbidden", "Missing role permissions")))
    calls = {
        "GET": lambda: h.client.get(path),
        "PATCH": lambda: h.client.patch(path, {"status": "resolved"}),
        "POST": lambda: h.client.post(path, {"comment": "x"}),
    }
    with pytest.raises(ConfigError) as raised:
        calls[method]()
    assert permission in str(raised.value)
    assert len(h.recorder.requests) == 1


def test_400_is_fatal_with_graphs_message_and_not_retried(harness_factory: Build) -> None:
    h = harness_factory(
        script(
            graph_error(
                400,
                "BadRequest",
                "The limit of '50' for Top query has been exceeded. The value from the "
                "incoming request is '100'.",
            )
        )
    )
    with pytest.raises(FatalSyncError) as raised:
        h.client.get("/security/incidents", {"$top": 100})
    assert "The limit of '50' for Top query has been exceeded" in str(raised.value)
    assert "$top=100" in str(raised.value)
    assert len(h.recorder.requests) == 1


def test_404_is_a_distinct_skippable_not_found(harness_factory: Build) -> None:
    h = harness_factory(script(graph_error(404, "NotFound", "Incident not found")))
    with pytest.raises(NotFoundError):
        h.client.get("/security/incidents/999")
    assert len(h.recorder.requests) == 1


@pytest.mark.parametrize(
    ("method", "send"),
    [
        ("POST", lambda c: c.post("/security/incidents/1/comments", {"comment": "hi"})),
        # Resent, a PATCH that landed would undo a change made in the portal meanwhile: the
        # pusher reads the record and merges again instead.
        ("PATCH", lambda c: c.patch("/security/incidents/1", {"status": "resolved"})),
    ],
)
def test_a_write_is_not_resent_when_graph_may_have_applied_it(
    harness_factory: Build, method: str, send: Callable[[GraphClient], object]
) -> None:
    h = harness_factory(script(graph_error(500, "InternalServerError", "boom"), graph_json(OK)))
    with pytest.raises(RetriableError) as raised:
        send(h.client)
    assert [r.method for r in h.recorder.requests] == [method]
    assert "not resent" in str(raised.value)
    assert not raised.value.unsent  # it may have landed: the caller looks before a new try


def test_a_throttled_post_is_resent(harness_factory: Build) -> None:
    h = harness_factory(
        script(graph_error(429, "TooManyRequests", "busy", **{"Retry-After": "1"}), graph_json(OK))
    )
    h.client.post("/security/incidents/1/comments", {"comment": "hi"})
    assert len(h.recorder.requests) == 2
    assert h.recorder.requests[1].content == b'{"comment":"hi"}'


def test_paginate_follows_next_links_to_the_end(harness_factory: Build) -> None:
    page2 = f"{INCIDENTS}?$skiptoken=abc%3D%3D"
    page3 = f"{INCIDENTS}?$skiptoken=def"
    h = harness_factory(
        script(
            graph_json({"value": [{"id": "1"}], "@odata.nextLink": page2}),
            graph_json({"value": [{"id": "2"}], "@odata.nextLink": page3}),
            graph_json({"value": [{"id": "3"}]}),
        )
    )
    pages = list(h.client.paginate("/security/incidents", {"$top": 1}))
    assert [item["id"] for page in pages for item in page.items] == ["1", "2", "3"]
    # The links are followed verbatim: no $skip of our own making, no re-encoding.
    assert h.recorder.urls == [f"{INCIDENTS}?$top=1", page2, page3]


def test_a_next_link_served_twice_is_fatal(harness_factory: Build) -> None:
    loop = f"{INCIDENTS}?$skiptoken=same"
    h = harness_factory(
        script(
            graph_json({"value": [{"id": "1"}], "@odata.nextLink": loop}),
            graph_json({"value": [{"id": "2"}], "@odata.nextLink": loop}),
            graph_json({"value": [{"id": "2"}], "@odata.nextLink": loop}),
        )
    )
    with pytest.raises(FatalSyncError, match="same nextLink twice"):
        list(h.client.paginate("/security/incidents"))
    assert len(h.recorder.requests) == 2


def test_a_next_link_off_the_graph_origin_is_refused(harness_factory: Build) -> None:
    h = harness_factory(
        script(graph_json({"value": [], "@odata.nextLink": "https://evil.example/v1.0/steal"}))
    )
    with pytest.raises(FatalSyncError, match="off the Graph origin"):
        list(h.client.paginate("/security/incidents"))
    assert len(h.recorder.requests) == 1  # the token never went to evil.example


def test_stats_count_requests_retries_and_throttles(harness_factory: Build) -> None:
    h = harness_factory(
        script(
            graph_error(503, "ServiceUnavailable", "later"),
            graph_error(429, "TooManyRequests", "busy", **{"Retry-After": "1"}),
            graph_json(OK),
        )
    )
    h.client.get("/security/incidents")
    stats = h.client.stats()
    assert (stats["requests"], stats["retries"], stats["throttled"]) == (3, 2, 1)


@pytest.mark.parametrize(
    "link",
    ["/v1.0/security/incidents?$skiptoken=abc", "security/incidents?$skiptoken=abc"],
    ids=["absolute-path", "service-root-relative"],
)
def test_a_relative_next_link_is_resolved_against_the_service_root(
    harness_factory: Build, link: str
) -> None:
    # OData allows relative links (relative to the service root, as the context URL is).
    h = harness_factory(
        script(
            graph_json({"value": [{"id": "1"}], "@odata.nextLink": link}),
            graph_json({"value": [{"id": "2"}]}),
        )
    )
    pages = list(h.client.paginate("/security/incidents"))
    assert [item["id"] for page in pages for item in page.items] == ["1", "2"]
    assert h.recorder.urls[1] == f"{INCIDENTS}?$skiptoken=abc"


def test_a_network_path_next_link_to_another_host_is_refused(harness_factory: Build) -> None:
    h = harness_factory(
        script(graph_json({"value": [], "@odata.nextLink": "//evil.example/v1.0/steal"}))
    )
    with pytest.raises(FatalSyncError, match="off the Graph origin"):
        list(h.client.paginate("/security/incidents"))
    assert len(h.recorder.requests) == 1


class _ThrottledSignIn:
    """Sign-in whose token endpoint first answers 429 with a Retry-After, then a token."""

    def __init__(self, retry_after: float, times: int = 1) -> None:
        self.retry_after, self.left = retry_after, times

    def token(self) -> str:
        if self.left:
            self.left -= 1
            raise ThrottledError("sign-in throttled (429)", retry_after=self.retry_after)
        return "token-1"

    def invalidate(self) -> None:
        pass


def _client_with_tokens(h: Harness, tokens: object) -> GraphClient:
    return GraphClient(
        h.client.tenant,
        SyncConfig(),
        http=h.client._http,
        tokens=tokens,  # type: ignore[arg-type]
        pacer=h.client.pacer,
        sleep=h.clock.sleep,
        clock=h.clock,
        wall_clock=h.clock.wall,
        rng=lambda: 0.5,
    )


def test_a_throttled_sign_in_waits_its_retry_after(harness_factory: Build) -> None:
    h = harness_factory(script(graph_json(OK)))
    client = _client_with_tokens(h, _ThrottledSignIn(retry_after=30))
    client.get("/security/incidents")
    assert h.clock.sleeps == [30.0]  # as the token endpoint asked, not a 0.5 s backoff


def test_a_long_sign_in_throttle_is_handed_to_the_caller_with_its_wait(
    harness_factory: Build,
) -> None:
    h = harness_factory(script(graph_json(OK)))
    client = _client_with_tokens(h, _ThrottledSignIn(retry_after=600))
    with pytest.raises(ThrottledError) as raised:
        client.get("/security/incidents")
    assert raised.value.retry_after == 600.0  # the stream is parked that long, not polled
    assert raised.value.unsent
    assert h.recorder.requests == []


def test_a_ca_bundle_spoiled_after_load_fails_its_tenant_as_one_config_error(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_bytes(_PEM_CA)
    tenant = make_tenant(verify_tls=str(bundle))
    bundle.write_bytes(b"replaced by something else\n")
    with pytest.raises(ConfigError, match=r"tenant 'contoso': verify_tls: CA bundle .*corp-ca"):
        build_http_client(tenant, SyncConfig())
