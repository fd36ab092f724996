"""Graph DateTimeOffset values become aware UTC datetimes; their text survives round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from xdrsync.models import Comment, format_datetime, parse_datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-08-13T08:43:35.5533333Z", datetime(2021, 8, 13, 8, 43, 35, 553333, tzinfo=UTC)),
        ("2021-08-13T08:43:35Z", datetime(2021, 8, 13, 8, 43, 35, tzinfo=UTC)),
        ("2021-08-13T08:43:35+00:00", datetime(2021, 8, 13, 8, 43, 35, tzinfo=UTC)),
        ("2021-08-13T08:43:35.116z", datetime(2021, 8, 13, 8, 43, 35, 116000, tzinfo=UTC)),
        ("2021-08-13T10:43:35.1+02:00", datetime(2021, 8, 13, 8, 43, 35, 100000, tzinfo=UTC)),
        ("2021-08-13T08:43:35.123456789Z", datetime(2021, 8, 13, 8, 43, 35, 123456, tzinfo=UTC)),
        ("2021-08-13T08:43:35", datetime(2021, 8, 13, 8, 43, 35, tzinfo=UTC)),
    ],
)
def test_graph_datetimes_parse_to_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC
    comment = Comment.from_graph({"createdDateTime": text})
    assert comment.created_date_time == expected
    assert comment.to_graph() == {"createdDateTime": text}


def test_aware_datetimes_are_converted_to_utc() -> None:
    local = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert parse_datetime(local) == datetime(2024, 1, 1, 17, tzinfo=UTC)
    assert Comment(created_date_time=local).to_graph() == {
        "createdDateTime": "2024-01-01T17:00:00Z"
    }


@pytest.mark.parametrize("bad", ["", "yesterday", "2021-13-01T00:00:00Z", 5, ["2021-01-01"]])
def test_garbage_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="date-time"):
        parse_datetime(bad)


def test_format_datetime() -> None:
    assert format_datetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05Z"
    assert format_datetime(datetime(2024, 1, 2, 3, 4, 5, 60, tzinfo=UTC)) == (
        "2024-01-02T03:04:05.000060Z"
    )
