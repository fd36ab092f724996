"""`xdrsync query --format table|json|csv`: what a user sees on a terminal or in a pipe."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from xdrsync.tables.output import format_result, timespan
from xdrsync.tables.queryresult import QueryResult

RESULT = QueryResult(
    columns=("IncidentNumber", "Title", "CreatedTime", "Owner", "Labels", "Active", "Age"),
    types=("int", "string", "datetime", "dynamic", "dynamic", "bool", "timespan"),
    rows=(
        (
            2972395,
            "[bold]Phish[/bold], with comma",
            datetime(2021, 8, 13, 8, 43, 35, 553333, tzinfo=UTC),
            {"assignedTo": "KaiC@contoso.com", "objectId": None},
            [{"labelName": "Demo", "labelType": "User"}],
            True,
            timedelta(days=1, hours=2, minutes=3, seconds=4),
        ),
        (2972396, "", None, None, [], False, timedelta(minutes=90)),
    ),
)


def test_json_is_a_list_of_objects_with_structured_dynamics_and_iso_datetimes() -> None:
    records = json.loads(format_result(RESULT, "json"))
    assert records[0] == {
        "IncidentNumber": 2972395,
        "Title": "[bold]Phish[/bold], with comma",
        "CreatedTime": "2021-08-13T08:43:35.553333Z",
        "Owner": {"assignedTo": "KaiC@contoso.com", "objectId": None},
        "Labels": [{"labelName": "Demo", "labelType": "User"}],
        "Active": True,
        "Age": "1.02:03:04",
    }
    assert records[1]["CreatedTime"] is None
    assert records[1]["Labels"] == []


def test_csv_has_a_header_and_flattens_dynamics_to_compact_json() -> None:
    rows = list(csv.reader(io.StringIO(format_result(RESULT, "csv"))))
    assert rows[0] == list(RESULT.columns)
    assert rows[1] == [
        "2972395",
        "[bold]Phish[/bold], with comma",
        "2021-08-13T08:43:35.553333Z",
        '{"assignedTo":"KaiC@contoso.com","objectId":null}',
        '[{"labelName":"Demo","labelType":"User"}]',
        "true",
        "1.02:03:04",
    ]
    assert rows[2] == ["2972396", "", "", "", "[]", "false", "01:30:00"]


def test_table_without_a_terminal_has_no_colour_codes_and_prints_markup_literally() -> None:
    text = format_result(RESULT, "table", color=False)
    assert "\x1b[" not in text
    assert "[bold]Phish[/bold], with comma" in text
    header = text.splitlines()[0]
    for name in RESULT.columns:
        assert name in header
    assert "2021-08-13T08:43:35.553333Z" in text
    assert '{"assignedTo":"KaiC@contoso.com","objectId":null}' in text


def test_table_never_folds_cells_in_a_pipe() -> None:
    long_title = "x" * 500
    result = QueryResult(columns=("Title",), types=("string",), rows=((long_title,),))
    assert long_title in format_result(result, "table", color=False)


def test_table_can_be_coloured_for_a_terminal() -> None:
    assert "\x1b[" in format_result(RESULT, "table", color=True, width=200)


def test_an_empty_result_still_shows_its_columns() -> None:
    empty = QueryResult(columns=("Count",), types=("long",), rows=())
    assert "Count" in format_result(empty, "table", color=False)
    assert json.loads(format_result(empty, "json")) == []
    assert format_result(empty, "csv") == "Count\n"


def _strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_reals_that_are_not_numbers_are_written_as_kql_prints_them() -> None:
    # JSON has no NaN or Infinity; `avg()` of no values is NaN. Written as KQL (and the
    # console) print them, as text, so the document stays JSON.
    reals = QueryResult(
        columns=("a", "b", "c", "d"),
        types=("real", "real", "real", "dynamic"),
        rows=((math.nan, math.inf, -math.inf, [math.nan, 1.5]),),
    )
    assert _strict(format_result(reals, "json")) == [
        {"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": ["NaN", 1.5]}
    ]
    assert format_result(reals, "csv").splitlines()[1] == 'NaN,Infinity,-Infinity,"[""NaN"",1.5]"'
    assert "NaN" in format_result(reals, "table", color=False)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="table, json, csv"):
        format_result(RESULT, "xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "00:00:00"),
        (timedelta(hours=1), "01:00:00"),
        (timedelta(days=3, seconds=1), "3.00:00:01"),
        (timedelta(milliseconds=1500), "00:00:01.5000000"),
        (-timedelta(minutes=5), "-00:05:00"),
    ],
)
def test_timespans_print_as_kql_does(value: timedelta, text: str) -> None:
    assert timespan(value) == text
