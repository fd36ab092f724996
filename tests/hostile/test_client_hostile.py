"""The Graph client against a real hostile server: one test per class of trouble (issue 8).

Checked here at the client level: the outcome (page, UnreadableItem, which error) and its
message, that no access token reaches an exception or a log line, that a dripping answer is
dropped near the deadline and that a huge one never grows memory past the cap. What the sync
engine commits or quarantines is tested on top of the same fixture elsewhere.
"""

from __future__ import annotations

import io
import logging
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from hostile_server import CONTROL_MESSAGE, DEEP_ID, NON_OBJECTS, HostileGraph, Mode, incident

from xdrsync.errors import ConfigError, FatalSyncError, RetriableError, XdrSyncError
from xdrsync.graph.client import GraphClient
from xdrsync.jsontext import UnreadableItem
from xdrsync.logs import configure, scrub

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
INCIDENTS = "/security/incidents"
PAGE = {"$top": 3, "$orderby": "lastUpdateDateTime asc"}


@pytest.fixture
def seeded(hostile: HostileGraph) -> HostileGraph:
    hostile.records = [incident(n, T0 + timedelta(seconds=n)) for n in range(1, 8)]
    return hostile


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Everything xdrsync logs during the test, rendered as it would reach stderr."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure("debug", file=buffer)
    yield buffer
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def client(hostile: HostileGraph, **sync: Any) -> GraphClient:
    """A production GraphClient (real msal sign-in, real httpx) that does not sleep."""
    return GraphClient(hostile.tenant(), hostile.sync_config(**sync), sleep=lambda _: None)


def listing_requests(hostile: HostileGraph) -> int:
    return sum(1 for _, path in hostile.requests if path.endswith("/security/incidents"))


def ids(items: list[Any]) -> list[str]:
    return [item["id"] for item in items if isinstance(item, dict)]


def test_the_fixture_serves_filtered_ordered_pages(seeded: HostileGraph) -> None:
    window = {
        "$filter": "lastUpdateDateTime ge 2025-03-01T12:00:02Z and "
        "lastUpdateDateTime lt 2025-03-01T12:00:07Z",
        **PAGE,
    }
    with client(seeded) as graph:
        pages = list(graph.paginate(INCIDENTS, window))
    assert [ids(page.items) for page in pages] == [["2", "3", "4"], ["5", "6"]]
    assert seeded.issued, "signed in through the fixture's token endpoint"


@pytest.mark.parametrize(
    ("mode", "shown"),
    [(Mode.VALUE_NOT_LIST, "(a str)"), (Mode.EMPTY_OBJECT, "(missing)")],
)
def test_a_page_without_a_list_value_is_retried_then_retriable(
    seeded: HostileGraph, mode: Mode, shown: str
) -> None:
    seeded.mode = mode
    with client(seeded, max_attempts=3) as graph, pytest.raises(RetriableError) as raised:
        graph.get(INCIDENTS, PAGE)
    assert "malformed body" in str(raised.value) and shown in str(raised.value)
    assert listing_requests(seeded) == 3


def test_a_malformed_page_served_once_is_read_on_the_retry(seeded: HostileGraph) -> None:
    seeded.mode, seeded.times = Mode.VALUE_NOT_LIST, 1
    with client(seeded) as graph:
        assert ids(graph.get(INCIDENTS, PAGE).items) == ["1", "2", "3"]
    assert listing_requests(seeded) == 2


def test_non_objects_are_handed_over_as_served_beside_the_records(seeded: HostileGraph) -> None:
    seeded.mode = Mode.NON_OBJECTS
    with client(seeded) as graph:
        items = graph.get(INCIDENTS, PAGE).items
    assert ids(items) == ["1", "2", "3"]
    others = [item for item in items if not isinstance(item, dict)]
    assert sorted(map(repr, others)) == sorted(map(repr, [*NON_OBJECTS, *NON_OBJECTS[:3]]))


def test_a_lone_surrogate_does_not_cost_the_page(seeded: HostileGraph) -> None:
    seeded.mode = Mode.LONE_SURROGATE
    with client(seeded) as graph:
        items = graph.get(INCIDENTS, PAGE).items
    assert ids(items) == ["1", "2", "3"]
    # Handed over as parsed; storing it (UTF-8 refuses it) is for the engine to quarantine.
    assert items[0]["displayName"].endswith("\udc00")


def test_a_record_nested_100000_deep_is_unreadable_and_the_others_are_kept(
    seeded: HostileGraph,
) -> None:
    seeded.mode = Mode.DEEP_NESTING
    with client(seeded) as graph:
        page = graph.get(INCIDENTS, PAGE)
    unreadable = [item for item in page.items if isinstance(item, UnreadableItem)]
    assert ids(page.items) == ["1", "2", "3"]
    assert len(unreadable) == 1
    assert unreadable[0].raw.startswith('{"id":"' + DEEP_ID)
    assert len(unreadable[0].raw) > 200_000  # its exact text, kept for quarantine
    assert "deeper" in unreadable[0].reason
    assert page.next_link is not None  # the page still pages on


def test_two_copies_of_one_id_are_both_handed_over(seeded: HostileGraph) -> None:
    seeded.mode = Mode.DUPLICATE_ID
    with client(seeded) as graph:
        items = graph.get(INCIDENTS, PAGE).items
    assert ids(items) == ["1", "1", "2", "3"]
    first, twin = items[0], items[1]
    assert first["lastUpdateDateTime"] == twin["lastUpdateDateTime"]
    assert first["displayName"] != twin["displayName"]


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "content-length"])
def test_a_huge_answer_is_cut_at_the_cap_with_bounded_memory(
    seeded: HostileGraph, declared: bool, record_property: Any
) -> None:
    cap = 1024 * 1024
    seeded.mode, seeded.huge_declares_length = Mode.HUGE, declared
    with client(seeded, max_response_bytes=cap) as graph:
        graph.tokens.token()  # sign in first: only the listing is measured
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(RetriableError) as raised:
                graph.get(INCIDENTS, PAGE)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.monotonic() - started
    record_property("peak_bytes", peak)
    record_property("seconds", round(elapsed, 2))
    assert "response too large" in str(raised.value)
    assert f"max_response_bytes = {cap} bytes" in str(raised.value)
    assert listing_requests(seeded) == 2  # retried per the policy, then raised
    assert peak < 16 * cap  # the cap and small overhead (the body is 512 MiB)
    assert elapsed < 30


def test_a_big_cap_still_bounds_memory_well_under_the_body(
    seeded: HostileGraph, record_property: Any
) -> None:
    cap = 32 * 1024 * 1024
    seeded.mode = Mode.HUGE
    with client(seeded, max_response_bytes=cap, max_attempts=1) as graph:
        graph.tokens.token()
        tracemalloc.start()
        try:
            with pytest.raises(RetriableError, match="response too large"):
                graph.get(INCIDENTS, PAGE)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    record_property("peak_bytes", peak)
    assert peak < 200 * 1024 * 1024
    assert peak < 2 * cap


@pytest.mark.parametrize("mode", [Mode.DRIP, Mode.DRIP_HEAD, Mode.PROCESSING])
def test_a_dripping_answer_is_dropped_near_the_deadline(
    seeded: HostileGraph, record_property: Any, mode: Mode
) -> None:
    """A body, a head, or a run of ``102 Processing`` answers, each a little at a time (every
    wait well inside the per-read timeout) ends at the deadline, not when the server stops."""
    deadline = 3.0
    seeded.mode, seeded.drip_interval = mode, 0.5
    with client(
        seeded, request_deadline_seconds=deadline, request_timeout_seconds=10, max_attempts=1
    ) as graph:
        graph.tokens.token()
        started = time.monotonic()
        with pytest.raises(RetriableError) as raised:
            graph.get(INCIDENTS, PAGE)
        elapsed = time.monotonic() - started
    record_property("seconds", round(elapsed, 2))
    assert "deadline exceeded" in str(raised.value)
    assert "request_deadline_seconds = 3 s" in str(raised.value)
    assert deadline * 0.9 <= elapsed < deadline + 2


def test_a_next_link_with_a_non_numeric_port_is_fatal_not_value_error(
    seeded: HostileGraph,
) -> None:
    seeded.mode = Mode.BAD_PORT_LINK
    with client(seeded) as graph, pytest.raises(FatalSyncError) as raised:
        list(graph.paginate(INCIDENTS, PAGE))
    assert "unusable link" in str(raised.value) and ":abc" in str(raised.value)
    assert listing_requests(seeded) == 1


def test_a_401_echoing_the_token_leaks_it_nowhere(
    seeded: HostileGraph, log_text: io.StringIO
) -> None:
    seeded.mode = Mode.ECHO_AUTHORIZATION
    with client(seeded) as graph, pytest.raises(ConfigError) as raised:
        graph.get(INCIDENTS, PAGE)
    message = str(raised.value)
    assert "rejected a fresh access token" in message and "Bearer ***" in message
    assert len(seeded.issued) == 2  # refreshed once, then refused
    everything = message + log_text.getvalue()
    for token in seeded.issued:
        assert token not in everything
        assert scrub(f"x {token} y") == "x *** y"  # registered as soon as it was issued
    assert seeded.client_secret not in everything


def test_control_bytes_in_server_text_are_neutralised(
    seeded: HostileGraph, log_text: io.StringIO
) -> None:
    seeded.mode = Mode.CONTROL_BYTES
    with client(seeded) as graph, pytest.raises(FatalSyncError) as raised:
        graph.get(INCIDENTS, PAGE)
    message = str(raised.value)
    assert "bad\\x00request" in message and "RED" in message
    for text in (message, log_text.getvalue()):
        for bad in ("\x00", "\x1b", "\r", "\x07", "\u202e", "pwned-title"):
            assert bad not in text
    assert "\x00" in CONTROL_MESSAGE  # the server did send them


@pytest.mark.parametrize("mode", [m for m in Mode if m is not Mode.NORMAL])
def test_every_mode_ends_in_a_page_or_an_xdrsync_error(seeded: HostileGraph, mode: Mode) -> None:
    """The class as a whole: nothing but a page or one of our errors ever comes out."""
    seeded.mode = mode
    with client(
        seeded, max_attempts=1, request_deadline_seconds=2, max_response_bytes=1024 * 1024
    ) as graph:
        try:
            for page in graph.paginate(INCIDENTS, PAGE):
                assert isinstance(page.items, list)
        except XdrSyncError:
            pass
