"""OData text: datetime literals Graph accepts, filters, and link surgery that keeps position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.graph.odata import (
    format_datetime,
    has_param,
    origin,
    updated_between,
    with_param,
    without_param,
)


def test_datetimes_use_graphs_seven_digit_utc_form() -> None:
    value = datetime(2025, 2, 7, 19, 1, 26, 123456, tzinfo=UTC)
    assert format_datetime(value) == "2025-02-07T19:01:26.1234560Z"


def test_other_zones_are_converted_to_utc() -> None:
    value = datetime(2025, 2, 7, 20, 1, 26, tzinfo=timezone(timedelta(hours=1)))
    assert format_datetime(value) == "2025-02-07T19:01:26.0000000Z"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        format_datetime(datetime(2025, 2, 7))


@settings(max_examples=100, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_the_literal_reads_back_as_the_same_instant(value: datetime) -> None:
    text = format_datetime(value)
    assert len(text.rpartition(".")[2]) == 8  # seven digits and Z
    assert datetime.fromisoformat(text[:-2] + "+00:00") == value


def test_window_filter_is_inclusive_and_unquoted() -> None:
    lower = datetime(2025, 2, 7, 19, 0, tzinfo=UTC)
    upper = lower + timedelta(minutes=5)
    assert updated_between(lower, upper) == (
        "lastUpdateDateTime ge 2025-02-07T19:00:00.0000000Z "
        "and lastUpdateDateTime le 2025-02-07T19:05:00.0000000Z"
    )
    assert updated_between(lower, None) == "lastUpdateDateTime ge 2025-02-07T19:00:00.0000000Z"
    with pytest.raises(ValueError, match="before"):
        updated_between(upper, lower)


def test_removing_expand_keeps_the_page_position_byte_for_byte() -> None:
    link = (
        "https://graph.microsoft.com/v1.0/security/incidents?"
        "$filter=lastUpdateDateTime%20ge%202025-02-07T19:00:00Z&$top=50&%24expand=alerts"
        "&$skiptoken=eyJ0b2tlbiI6MX0%3D"
    )
    stripped = without_param(link, "$expand")
    assert stripped == (
        "https://graph.microsoft.com/v1.0/security/incidents?"
        "$filter=lastUpdateDateTime%20ge%202025-02-07T19:00:00Z&$top=50"
        "&$skiptoken=eyJ0b2tlbiI6MX0%3D"
    )
    assert has_param(link, "$EXPAND") and not has_param(stripped, "$expand")
    assert without_param("https://g/v1.0/x?$expand=alerts", "$expand") == "https://g/v1.0/x"


def test_adding_expand_only_when_missing() -> None:
    assert (
        with_param("https://g/x?$top=5", "$expand", "alerts") == "https://g/x?$top=5&$expand=alerts"
    )
    assert with_param("https://g/x", "$expand", "alerts") == "https://g/x?$expand=alerts"
    assert with_param("https://g/x?%24expand=alerts", "$expand", "alerts") == (
        "https://g/x?%24expand=alerts"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Graph.Microsoft.com/v1.0/x", "https://graph.microsoft.com"),
        ("https://graph.microsoft.com:443/v1.0", "https://graph.microsoft.com"),
        ("http://127.0.0.1:8650/v1.0", "http://127.0.0.1:8650"),
        ("http://[::1]:80/x", "http://[::1]"),
    ],
)
def test_origins_are_canonical(url: str, expected: str) -> None:
    assert origin(url) == expected
