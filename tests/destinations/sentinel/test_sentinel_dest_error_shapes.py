"""The Sentinel destination against the emulator's other error shapes: a 503/504 with
``Retry-After``, and a gateway's HTML 502/503/504 page instead of ARM's JSON."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from test_sentinel_dest_e2e import TENANT, World, _incident
from test_sentinel_dest_e2e import world as world  # the fixture

import xdrsync.destinations.sentinel.arm as arm_module
from xdrsync.config import SyncConfig
from xdrsync.destinations.sentinel.ingest import LogIngestor, StoppableTransport
from xdrsync.destinations.sentinel.mapping import incident_name
from xdrsync.errors import RetriableError
from xdrsync.graph.retry import RetryPolicy

ALERTS = "Custom-XdrSecurityAlert"
EVIDENCE = "Custom-XdrAlertEvidence"


def _deliver_all(w: World, tries: int = 5) -> None:
    """Publish until the cursor is at the end, as the runner's next cycles would."""
    for _ in range(tries):
        try:
            w.publish()
        except RetriableError:
            continue
        if w.hub.list_cursors()[0].seq == w.hub.max_seq():
            return
    raise AssertionError(f"not delivered in {tries} runs: {w.hub.list_cursors()[0].error}")


def _assert_whole(w: World, ids: list[str]) -> None:
    """Every incident in Sentinel once, every alert row once, no dead letter."""
    names = Counter(i["name"] for i in w.truth()["incidents"])
    assert names == Counter(incident_name(TENANT, i) for i in ids)
    logs = w.truth()["logs"]
    for stream in (ALERTS, EVIDENCE):
        seqs = Counter(row["XdrSeq"] for row in logs[stream])
        assert len(seqs) == len(ids) and set(seqs.values()) == {1}, (stream, seqs)
    assert w.hub.list_dead_letters(w.destination.name) == []


def _stats_faults(w: World) -> dict[str, int]:
    found: dict[str, int] = w.http.get("/_emulator/stats").json()["faults"]
    return found


def test_503_504_with_retry_after_are_waited_out_and_delivered(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each 503/504 asks for a second; the next try of that request (ARM's own loop, or the
    ingestion SDK's) starts no sooner, and the run ends whole."""
    calls: list[tuple[str, float, float, int, str | None]] = []  # key, start, end, status, RA

    real_send = arm_module.send

    def arm_send(http: Any, method: str, url: str, **kwargs: Any) -> Any:
        start = time.monotonic()
        answer = real_send(http, method, url, **kwargs)
        ra = answer.headers.get("Retry-After")
        calls.append((f"{method} {url}", start, time.monotonic(), answer.status, ra))
        return answer

    real_transport_send = StoppableTransport.send

    def ingest_send(self: StoppableTransport, request: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        response = real_transport_send(self, request, **kwargs)
        ra = response.headers.get("Retry-After")
        key = f"{request.method} {request.url}"
        calls.append((key, start, time.monotonic(), response.status_code, ra))
        return response

    monkeypatch.setattr(arm_module, "send", arm_send)
    monkeypatch.setattr(StoppableTransport, "send", ingest_send)
    # Seed 3 gives both surfaces 503/504s.
    w = world(faults="retry_after_error_rate=0.3,retry_after_seconds=1", seed=3)
    ids = ["61", "62", "63"]
    w.commit(*(_incident(i) for i in ids))
    _deliver_all(w)
    _assert_whole(w, ids)
    assert _stats_faults(w).get("retry_after_error", 0) >= 2
    waited: Counter[str] = Counter()
    for n, (key, _, end, status, ra) in enumerate(calls):
        if status not in (503, 504):
            continue
        assert ra == "1"
        again = next((c for c in calls[n + 1 :] if c[0] == key), None)
        assert again is not None, key
        assert again[1] - end >= 1.0, (key, again[1] - end)  # from below only
        waited["ingestion" if "/dataCollectionRules/" in key else "arm"] += 1
    assert waited["arm"] >= 1 and waited["ingestion"] >= 1, waited


def test_html_gateway_pages_now_and_then_are_retried_and_delivered(
    world: Callable[..., World],
) -> None:
    """A 502/503/504 page is a server error like any other: retried (by ARM's loop, by the
    ingestion SDK), never taken for refused rows; the run ends whole. Seed 5 gives both
    surfaces pages."""
    w = world(faults="html_error_rate=0.3", seed=5)
    w.destination.arm.policy = RetryPolicy(max_attempts=6, base_delay=0.05)
    ids = ["71", "72", "73"]
    w.commit(*(_incident(i) for i in ids))
    _deliver_all(w)
    _assert_whole(w, ids)
    assert _stats_faults(w).get("html_error", 0) >= 2


def _assert_readable(message: str) -> None:
    assert "HTML page" in message, message
    assert "<" not in message and ">" not in message, message
    assert "JSON" not in message and "Expecting value" not in message, message


def test_an_html_page_that_persists_is_a_readable_error(world: Callable[..., World]) -> None:
    """Both surfaces: the error (and the cursor's last error, as ``destinations status``
    shows it) gives the page's words, not its markup nor a JSON decode error."""
    w = world(faults="html_error_rate=1")
    w.destination.arm.policy = RetryPolicy(max_attempts=2, base_delay=0.01)
    old = w.destination.ingestor
    assert old is not None
    w.destination.ingestor = LogIngestor(
        w.destination.entry, SyncConfig(max_attempts=1), old.tokens
    )
    old.close()
    w.commit(_incident())
    with pytest.raises(RetriableError):
        w.publish()
    error = w.hub.list_cursors()[0].error
    assert error is not None
    _assert_readable(error)
    with pytest.raises(RetriableError) as arm_failed:
        w.destination.arm.check()
    _assert_readable(str(arm_failed.value))
    with pytest.raises(RetriableError) as upload_failed:
        w.destination.ingestor.upload(ALERTS, [{"SystemAlertId": "a1", "XdrSeq": 1}])
    _assert_readable(str(upload_failed.value))
