"""Window maths: coverage without gaps or overlaps, watermark monotonicity, lookback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.sync.window import StreamState, Window, graph_literal, plan_windows, start_of_cycle

T0 = datetime(2026, 11, 1, tzinfo=UTC)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
spans = st.timedeltas(min_value=timedelta(hours=2), max_value=timedelta(days=3))


@settings(max_examples=300, deadline=None)
@given(
    lower=moments,
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)),
    span=spans,
)
def test_windows_cover_every_moment_exactly_once(
    lower: datetime, length: timedelta, span: timedelta
) -> None:
    now = lower + length
    windows = plan_windows(lower, now, max_span=span)
    assert windows[-1].open_ended and all(not w.open_ended for w in windows[:-1])
    assert windows[0].lower == lower
    for before, after in pairwise(windows):
        assert before.upper == after.lower  # contiguous: no gap, no overlap
        assert before.upper is not None and before.upper - before.lower <= span
    # Any moment from lower onwards (even past "now": late updates) is in exactly one window.
    for probe in (lower, now, now + timedelta(hours=1), lower + length / 2):
        assert sum(w.contains(probe) for w in windows) == 1


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
