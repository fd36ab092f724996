"""Window maths: span adaptation, watermark monotonicity, lookback. (Coverage of the
engine's own windows is proven on the engine in test_no_loss.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.sync.window import (
    StreamState,
    adapt_span,
    cycle_lookback,
    due,
    start_of_cycle,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


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


def test_a_sparse_month_widens_windows_fast() -> None:
    span, steps = timedelta(days=1), 0
    while span < timedelta(days=30):
        span = adapt_span(
            span, 300, target=1000, smallest=timedelta(minutes=10), largest=timedelta(days=30)
        )
        steps += 1
    assert steps <= 3


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


def test_a_stream_state_survives_its_document_whole() -> None:
    state = StreamState(
        watermark=T0,
        last_success=T0 + timedelta(seconds=3),
        cycles=7,
        ordered=False,
        retry_at=T0 + timedelta(minutes=10),  # a Graph-requested wait outlives a restart
    )
    doc = state.to_doc()
    assert doc["retry_at"] == (T0 + timedelta(minutes=10)).isoformat()
    assert StreamState.from_doc(doc) == state
    assert StreamState.from_doc(None) == StreamState()
    moved = state.moved(T0 + timedelta(minutes=1))
    assert moved.retry_at is None and moved.watermark == T0 + timedelta(minutes=1)
    assert state.moved(T0 - timedelta(minutes=1)).watermark == T0  # never back


_S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("last_sweep", "lookback", "fresh", "every", "expected"),
    [
        (None, 300, 10, 60, (300, True)),  # never swept: sweep now
        (-30, 300, 10, 60, (10, False)),  # swept 30 s ago: a fresh read
        (-60, 300, 10, 60, (300, True)),  # the sweep interval is up
        (-100, 120, 10, 90, (120, True)),  # the interval is capped at half the lookback (60)
        (-50, 120, 10, 90, (10, False)),
        (-70, 120, 10, 90, (120, True)),  # past half the lookback, before the asked 90 s
        (0, 300, 10, 60, (10, False)),  # swept this very moment
        (+30, 300, 10, 60, (300, True)),  # the clock went back: sweep rather than trust it
        (-30, 300, None, 60, (300, False)),  # no fresh lookback: every cycle reads it all
        (-30, 10, 10, 60, (10, False)),  # fresh as long as the lookback: nothing to record
    ],
)
def test_cycle_lookback(
    last_sweep: int | None,
    lookback: int,
    fresh: int | None,
    every: int,
    expected: tuple[int, bool],
) -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)
    got = cycle_lookback(
        None if last_sweep is None else now + last_sweep * _S,
        now,
        lookback=lookback * _S,
        fresh=None if fresh is None else fresh * _S,
        sweep_every=every * _S,
    )
    assert got == (expected[0] * _S, expected[1])


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, True),  # never reconciled (a workspace from before): at once
        (-3599, False),
        (-3600, True),  # the interval is up
        (0, False),
        (+30, True),  # the clock went back: reconcile rather than trust it
    ],
)
def test_reconcile_due(last: int | None, expected: bool) -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)
    moment = None if last is None else now + last * _S
    assert due(moment, now, 3600 * _S) is expected


def test_last_sweep_and_reconcile_survive_the_state_document() -> None:
    moment = datetime(2026, 12, 4, 1, 2, 3, tzinfo=UTC)
    again = StreamState.from_doc(
        StreamState(last_sweep=moment, last_reconcile=moment + _S).to_doc()
    )
    assert (again.last_sweep, again.last_reconcile) == (moment, moment + _S)


def test_the_first_cycles_start_survives_the_state_document() -> None:
    moment = datetime(2026, 12, 4, 1, 2, 3, tzinfo=UTC)
    assert StreamState.from_doc(StreamState(began=moment).to_doc()).began == moment
    assert StreamState.from_doc({"watermark": None}).began is None  # a state from before it
