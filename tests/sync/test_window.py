"""Window maths: coverage without gaps or overlaps, watermark monotonicity, lookback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.sync.window import (
    StreamState,
    Window,
    adapt_span,
    graph_literal,
    next_window,
    start_of_cycle,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


def walk(lower: datetime, now: datetime, counts: list[int]) -> list[Window]:
    """The windows a cycle reads when window i holds counts[i] records (as inbound does)."""
    windows: list[Window] = []
    span = timedelta(days=1)
    for records in [*counts, *([0] * 10_000)]:
        window = next_window(lower, now, span)
        windows.append(window)
        if window.upper is None:
            return windows
        lower = window.upper
        span = adapt_span(
            span, records, target=1000, smallest=timedelta(minutes=10), largest=timedelta(days=30)
        )
    raise AssertionError("the walk never reached now")


@settings(max_examples=300, deadline=None)
@given(
    lower=moments,
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=120)),
    counts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=40),
)
def test_windows_cover_every_moment_exactly_once(
    lower: datetime, length: timedelta, counts: list[int]
) -> None:
    now = lower + length
    windows = walk(lower, now, counts)
    assert windows[-1].open_ended
    assert all(not w.open_ended for w in windows[:-1])
    assert windows[0].lower == lower
    for before, after in pairwise(windows):
        assert before.upper == after.lower  # contiguous: no gap, no overlap
    # Any moment from lower onwards (even past "now": late updates) is in exactly one window.
    for probe in (lower, now, now + timedelta(hours=1), lower + length / 2):
        assert sum(w.contains(probe) for w in windows) == 1


@settings(max_examples=300, deadline=None)
@given(
    span=st.timedeltas(min_value=timedelta(minutes=10), max_value=timedelta(days=30)),
    records=st.integers(min_value=0, max_value=1_000_000),
)
def test_window_span_adapts_to_density_within_bounds(span: timedelta, records: int) -> None:
    smallest, largest = timedelta(minutes=10), timedelta(days=30)
    new = adapt_span(span, records, target=1000, smallest=smallest, largest=largest)
    assert smallest <= new <= largest
    assert new <= span * 4  # never leaps across a burst
    if records > 1000 and span > smallest:
        assert new < span  # dense: narrower
    if records < 250 and span * 4 <= largest:
        assert new > span  # sparse: wider


def test_a_sparse_month_takes_few_windows() -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    windows = walk(now - timedelta(days=30), now, [300] * 40)
    assert len(windows) <= 8


def test_first_cycle_backfills_then_lookback_rereads() -> None:
    first = start_of_cycle(
        None, lookback=timedelta(minutes=5), server_now=T0, initial_backfill=timedelta(days=30)
    )
    assert first == T0 - timedelta(days=30)
    later = start_of_cycle(
        T0,
        lookback=timedelta(minutes=5),
        server_now=T0 + timedelta(minutes=1),
        initial_backfill=timedelta(days=30),
    )
    assert later == T0 - timedelta(minutes=5)


@settings(max_examples=200, deadline=None)
@given(marks=st.lists(moments, min_size=1, max_size=20))
def test_watermark_never_moves_back(marks: list[datetime]) -> None:
    state = StreamState()
    highest = None
    for mark in marks:
        state = state.advanced(mark, at=mark)
        highest = mark if highest is None else max(highest, mark)
        assert state.watermark == highest
    assert StreamState.from_doc(state.to_doc()) == state


def test_window_rejects_naive_and_empty_bounds() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2026, 1, 1), None)
    with pytest.raises(ValueError, match="empty window"):
        Window(T0, T0)


def test_graph_literal_is_unquoted_utc_with_seven_digits() -> None:
    assert (
        graph_literal(datetime(2025, 2, 7, 19, 1, 26, 123456, tzinfo=UTC))
        == "2025-02-07T19:01:26.1234560Z"
    )
