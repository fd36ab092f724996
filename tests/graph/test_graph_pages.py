"""The client's side of issue 8, class by class, over a mocked transport: the page contract,
bodies no parser can read whole, bad links, the byte cap and the deadline, server text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from entra_fake import FakeEntra
from graph_fakes import (
    CLIENT_ID,
    GRAPH,
    SECRET,
    TENANT_ID,
    Harness,
    graph_error,
    graph_json,
    make_tenant,
)

from xdrsync.config import SyncConfig
from xdrsync.errors import FatalSyncError, RetriableError
from xdrsync.graph.auth import TokenProvider
from xdrsync.graph.errors import DeadlineExceededError, ResponseTooLargeError
from xdrsync.graph.http import Limits, parse_body, split_listing
from xdrsync.graph.odata import is_collection_path, origin
from xdrsync.graph.retry import RULES, Action, Condition, classify_exception
from xdrsync.jsontext import UnreadableItem
from xdrsync.logs import clean

INCIDENTS = f"{GRAPH}/v1.0/security/incidents"
Build = Callable[..., Harness]


def always(response: Callable[[], httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: response()


def raw(body: bytes | str, status: int = 200) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, content=content, headers={"Content-Type": "application/json"})


# -- A: the page contract ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"value": "nope"},
        {},
        {"value": None},
        {"value": {"id": "1"}},
        {"value": [], "@odata.nextLink": 5},
        {"value": [], "@odata.nextLink": ""},
    ],
    ids=["value-str", "empty", "value-null", "value-object", "link-number", "link-empty"],
)
def test_a_listing_without_a_list_value_is_malformed_retried_then_retriable(
    harness_factory: Build, body: dict[str, Any]
) -> None:
    h = harness_factory(always(lambda: graph_json(body)), sync=SyncConfig(max_attempts=3))
    with pytest.raises(RetriableError, match="malformed body") as raised:
        h.client.get("/security/incidents", {"$top": 5})
    assert "listing" in str(raised.value)
    assert len(h.recorder.requests) == 3  # retried per the policy, then raised


def test_the_page_contract_applies_to_every_listing_path_and_to_paginate(
    harness_factory: Build,
) -> None:
    h = harness_factory(always(lambda: graph_json({})), sync=SyncConfig(max_attempts=1))
    for path in ("/security/alerts_v2", "/security/incidents/7/alerts"):
        with pytest.raises(RetriableError, match="without a list 'value'"):
            h.client.get(path)
    with pytest.raises(RetriableError):
        list(h.client.paginate("/security/incidents"))
    with pytest.raises(RetriableError):  # the explicit flag, for any other path
        h.client.get("/security/somethingElse/1", collection=True)


def test_a_single_entity_get_keeps_its_behaviour(harness_factory: Build) -> None:
    h = harness_factory(always(lambda: graph_json({"id": "7", "status": "active"})))
    response = h.client.get("/security/incidents/7")
    assert response.json == {"id": "7", "status": "active"}
    assert response.items == []


def test_items_are_every_element_of_value_as_served(harness_factory: Build) -> None:
    value = [{"id": "1"}, "nope", 42, None, [1, 2], True, {"id": "2"}]
    h = harness_factory(always(lambda: graph_json({"value": value})))
    assert h.client.get("/security/incidents").items == value


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/security/incidents", True),
        ("/security/alerts_v2", True),
        (f"{INCIDENTS}/12/alerts?$top=5", True),
        (f"{INCIDENTS}?$skip=50", True),
        ("/security/incidents/12", False),
        ("security/alerts_v2/da123", False),
        ("/me", False),
    ],
)
def test_collections_are_recognised_by_path(path: str, expected: bool) -> None:
    assert is_collection_path(path) is expected


# -- B: bodies no parser reads whole ---------------------------------------------------------------


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_a_record_nested_too_deep_becomes_unreadable_and_the_rest_is_kept(
    harness_factory: Build,
) -> None:
    element = '{"id":"deep","x":' + deep(100_000) + "}"
    body = '{"@odata.context":"c","value":[{"id":"1"},' + element + ',{"id":"2"}]}'
    h = harness_factory(always(lambda: raw(body)))
    items = h.client.get("/security/incidents").items
    assert items[0] == {"id": "1"} and items[2] == {"id": "2"}
    assert isinstance(items[1], UnreadableItem)
    assert items[1].raw == element
    assert "deeper" in items[1].reason


@pytest.mark.parametrize(
    "body",
    [
        b"<html>proxy hiccup</html>",
        b'{"value":[{"id":"1"}',  # truncated
        b'{"value":[{"id":"1"}]} trailing',
        b"[" * 5000 + b"]" * 5000,  # deep, and not an object
        b'{"nested":' + b"[" * 5000 + b"]" * 5000 + b',"value":[]}',  # deep outside value
        b'{"value":"x' + b"\xff" * 3,
    ],
    ids=["html", "truncated", "trailing", "deep-array", "deep-envelope", "bad-utf8"],
)
def test_a_body_that_is_not_a_json_object_stays_malformed(body: bytes) -> None:
    parsed = parse_body(body)
    assert parsed.payload is None and parsed.problem


def test_one_unreadable_element_of_an_otherwise_good_page() -> None:
    body = b'{"value":[{"id":"1"}, nonsense , {"id":"2"}], "@odata.nextLink":"n"}'
    parsed = parse_body(body)
    assert parsed.payload is not None
    assert parsed.payload["@odata.nextLink"] == "n"
    first, bad, last = parsed.payload["value"]
    assert (first, last) == ({"id": "1"}, {"id": "2"})
    assert isinstance(bad, UnreadableItem) and bad.raw == "nonsense"


@pytest.mark.parametrize(
    "elements",
    [
        [],
        [{"s": "a,b]c}d{e[f"}],  # structure characters inside strings
        [{"s": 'quote \\" and backslash \\\\'}, {"t": "\\\\"}],
        [{"a": [1, {"b": [2, 3]}]}, [4, [5]], "x", 1.5e3, None, True],
        [{"ünï": "cödé ✓ \U0001f600"}],
    ],
)
def test_split_listing_returns_each_elements_exact_text(elements: list[Any]) -> None:
    texts = [json.dumps(element, ensure_ascii=False) for element in elements]
    body = ('{"@odata.context": "x", "value": [ ' + " ,\n ".join(texts) + ' ], "z": 1}').encode()
    parts = split_listing(body)
    assert parts is not None
    envelope, found = parts
    assert json.loads(envelope) == {"@odata.context": "x", "value": [], "z": 1}
    assert [text.decode() for text in found] == texts


def test_split_listing_is_iterative() -> None:
    levels = 1_000_000  # far beyond any recursion limit
    body = ('{"value":[' + deep(levels) + "]}").encode()
    parts = split_listing(body)
    assert parts is not None and len(parts[1]) == 1


# -- C: bad links -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        f"{GRAPH}:abc/v1.0/security/incidents?$skip=1",
        f"{GRAPH}:99999/v1.0/security/incidents",
        "https://[::1/v1.0/security/incidents",
        "https:///v1.0/security/incidents",
        f"{INCIDENTS}?$skip=1\x00\x1b[31m",
        "https://evil.example/v1.0/security/incidents",
    ],
    ids=["port-abc", "port-range", "bad-ipv6", "no-host", "control", "foreign"],
)
def test_every_bad_next_link_is_a_fatal_sync_error(harness_factory: Build, link: str) -> None:
    h = harness_factory(always(lambda: graph_json({"value": [], "@odata.nextLink": link})))
    with pytest.raises(FatalSyncError) as raised:
        list(h.client.paginate("/security/incidents"))
    assert len(h.recorder.requests) == 1
    assert "\x00" not in str(raised.value) and "\x1b" not in str(raised.value)


def test_origin_never_raises_value_error() -> None:
    with pytest.raises(FatalSyncError, match="unusable link"):
        origin("http://host:abc/x")


# -- D: byte cap and deadline -------------------------------------------------------------------


def test_limits_are_conditions_in_the_retry_table() -> None:
    assert classify_exception(ResponseTooLargeError(10)) is Condition.TOO_LARGE
    assert classify_exception(DeadlineExceededError(1.0)) is Condition.DEADLINE
    for condition in (Condition.TOO_LARGE, Condition.DEADLINE):
        assert RULES[condition].action is Action.RETRY
        assert issubclass(RULES[condition].error, RetriableError)


def test_a_declared_length_over_the_cap_is_refused_before_reading(harness_factory: Build) -> None:
    read: list[int] = []

    def stream() -> Iterator[bytes]:
        read.append(1)
        yield b"{}"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(10**10)}, content=stream())

    sync = SyncConfig(max_attempts=2, max_response_bytes=64 * 1024)
    h = harness_factory(handler, sync=sync)
    with pytest.raises(RetriableError, match="max_response_bytes = 65536") as raised:
        h.client.get("/security/incidents")
    assert "response too large" in str(raised.value)
    assert len(h.recorder.requests) == 2 and read == []


def test_a_body_growing_past_the_cap_is_abandoned(harness_factory: Build) -> None:
    produced: list[int] = []

    def endless() -> Iterator[bytes]:
        yield b'{"value":['
        while True:
            produced.append(1)
            yield b'{"id":"x"},' * 1000

    sync = SyncConfig(max_attempts=1, max_response_bytes=64 * 1024)
    h = harness_factory(lambda request: httpx.Response(200, content=endless()), sync=sync)
    with pytest.raises(RetriableError, match="response too large"):
        h.client.get("/security/incidents")
    assert len(produced) < 20  # stopped reading right after the cap


def test_a_body_slower_than_the_deadline_is_abandoned(harness_factory: Build) -> None:
    def slow() -> Iterator[bytes]:
        for byte in b'{"value":[]}':
            time.sleep(0.05)
            yield bytes([byte])

    sync = SyncConfig(max_attempts=1, request_deadline_seconds=0.2)
    h = harness_factory(lambda request: httpx.Response(200, content=slow()), sync=sync)
    started = time.monotonic()
    with pytest.raises(RetriableError, match=r"request_deadline_seconds = 0\.2 s"):
        h.client.get("/security/incidents")
    assert time.monotonic() - started < 2


# -- E: server text in errors -------------------------------------------------------------------


def test_server_text_in_errors_is_cleaned(harness_factory: Build) -> None:
    message = "bad\x00 \x1b[31mred\x1b[0m Authorization: Bearer eyJhbGc.eyJzdWIi.c2ln " + "x" * 5000
    h = harness_factory(always(lambda: graph_error(400, "Bad\x1b[2J", message)))
    with pytest.raises(FatalSyncError) as raised:
        h.client.get("/security/incidents")
    text = str(raised.value)
    assert "\x00" not in text and "\x1b" not in text
    assert "eyJ" not in text and "Bearer ***" in text
    assert len(text) < 1000


# -- the token endpoint: same limits, tokens registered with the scrubber ------------------------


def _entra_then(
    answer: Callable[[httpx.Request], httpx.Response | None],
) -> tuple[FakeEntra, Callable[[httpx.Request], httpx.Response]]:
    fake = FakeEntra(
        advertised="https://login.microsoftonline.com",
        tenant_id=TENANT_ID,
        client_id=CLIENT_ID,
        secret=SECRET,
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return answer(request) or fake(request)

    return fake, handler


def test_the_token_endpoint_is_read_within_the_byte_cap() -> None:
    def huge(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(200, content=iter([b"{" + b" " * 200_000 + b"}"]))
        return None

    _, handler = _entra_then(huge)
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        provider = TokenProvider(make_tenant(), http, Limits(max_bytes=64 * 1024))
        with pytest.raises(RetriableError, match="sign-in unavailable: answer larger than"):
            provider.token()


def test_every_issued_token_is_registered_with_the_scrubber() -> None:

    fake, handler = _entra_then(lambda request: None)
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        token = TokenProvider(make_tenant(), http).token()
    assert token == fake.issued[0]
    assert clean(f"echoed: {token.replace('.', ' ')} / {token}").endswith("/ ***")
