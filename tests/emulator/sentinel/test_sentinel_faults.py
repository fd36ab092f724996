"""The request faults that answer for ARM or Logs Ingestion: a 503/504 with Retry-After, a
gateway's HTML page; and the 429 without Retry-After, which neither documents."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from xdrsync.emulator.sentinel import settings_for

ROWS = b'[{"SystemAlertId": "a1"}]'


def _both(s: Any) -> list[Any]:
    """One ARM call and one ingestion call."""
    return [s.arm("GET", "/incidents"), s.ingest("Custom-XdrSecurityAlert", ROWS)]


def test_retry_after_errors_carry_arms_body_and_the_wait(sentinel: Any) -> None:
    s = sentinel(faults="retry_after_error_rate=1,retry_after_seconds=2")
    for answer in _both(s):
        assert answer.status_code in (503, 504)
        code = {503: "ServiceUnavailable", 504: "GatewayTimeout"}[answer.status_code]
        assert answer.json()["error"]["code"] == code
        assert answer.headers["Retry-After"] == "2"
    assert s.control("GET", "/stats").json()["faults"]["retry_after_error"] == 2


def test_html_errors_are_a_gateways_page(sentinel: Any) -> None:
    s = sentinel(faults="html_error_rate=1")
    seen = set()
    for _ in range(4):
        for answer in _both(s):
            assert answer.status_code in (502, 503, 504)
            assert answer.headers["content-type"].startswith("text/html")
            assert answer.text.lstrip().startswith("<")
            assert "Retry-After" not in answer.headers
            seen.add(answer.status_code)
    assert len(seen) > 1


def test_the_control_surface_takes_the_new_faults(sentinel: Any) -> None:
    s = sentinel()
    assert s.control("POST", "/faults", content=b"html_error_rate=1").status_code == 200
    assert s.arm("GET", "/incidents").status_code in (502, 503, 504)
    spec = b"retry_after_error_rate=1,retry_after_seconds=3"
    assert s.control("POST", "/faults", content=spec).status_code == 200
    assert s.arm("GET", "/incidents").headers["Retry-After"] == "3"
    refused = s.control("POST", "/faults", content=b"bare_throttle_rate=1")
    assert refused.status_code == 400
    assert "bare_throttle_rate" in refused.text


def test_a_429_without_retry_after_is_refused() -> None:
    """ARM and Logs Ingestion document 429 with Retry-After (microsoft-apis.md §3.6, §4)."""
    with pytest.raises(ValueError, match="unknown fault setting 'bare_throttle_rate=1'"):
        settings_for(faults="bare_throttle_rate=1")
    parsed = settings_for(faults="retry_after_error_rate=0.2,retry_after_seconds=1")
    assert parsed.faults.requests.retry_after_error_rate == 0.2
    assert settings_for(faults="html_error_rate=0.3").faults.requests.html_error_rate == 0.3


def test_a_write_whose_connection_drops_may_have_been_applied(sentinel: Any) -> None:
    """A connection that drops in the middle of the answer to a write (an incident or comment
    PUT, an upload) comes after the service applied it, as it can with ARM and Logs Ingestion
    (microsoft-apis.md §4: a client's retry after a lost 204 can duplicate rows): a client
    must meet the write it already made when it tries again, never only a write that was
    not made."""
    s = sentinel(faults="reset_rate=1")
    with pytest.raises(httpx.TransportError):
        s.put_incident("x")
    with pytest.raises(httpx.TransportError):
        s.ingest("Custom-XdrSecurityAlert", ROWS)
    with pytest.raises(httpx.TransportError):
        s.arm("GET", "/incidents")
    s.control("POST", "/pause")
    truth = s.truth()
    assert [i["name"] for i in truth["incidents"]] == ["x"]
    assert len(truth["logs"]["Custom-XdrSecurityAlert"]) == 1
