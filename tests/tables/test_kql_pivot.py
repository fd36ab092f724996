"""`evaluate pivot` (`kqlpivot`): each value of the pivot column a column, answering as the
same aggregates grouped without the pivot do, over the seeded workspace."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from sentinel_workspace import seeded_store

from xdrsync.tables.errors import QueryError
from xdrsync.tables.logstore import LogStore

CURRENT = "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("pivot") / "logs.duckdb")


def grouped(store: LogStore, kql: str) -> dict[Any, dict[str, Any]]:
    """`kql` ending in `summarize v = ... by Key, Pivot`, as {key: {pivot value: v}}."""
    table: dict[Any, dict[str, Any]] = defaultdict(dict)
    for key, value, pivot in ((r[0], r[2], r[1]) for r in store.query(kql).rows):
        table[key][str(pivot)] = value
    return table


def test_a_pivot_counts_each_value_by_the_other_columns(store: LogStore) -> None:
    result = store.query(f"{CURRENT}| project Severity, Status | evaluate pivot(Severity)")
    severities = sorted(set(store.query("SecurityIncident | distinct Severity").column("Severity")))
    assert result.columns == ("Status", *severities)  # the values' columns in name order
    expected = grouped(store, f"{CURRENT}| summarize count() by Status, Severity")
    for status, *counts in result.rows:
        assert dict(zip(severities, counts, strict=True)) == {
            s: expected[status].get(s, 0) for s in severities
        }


def test_a_pivot_with_an_aggregate_and_the_columns_to_keep(store: LogStore) -> None:
    result = store.query(
        f"{CURRENT}| summarize Count = count() by Severity, Status, Owner = tostring(Owner.assignedTo) "
        "| evaluate pivot(Severity, sum(Count), Status)"
    )
    assert result.columns[0] == "Status"
    expected = grouped(store, f"{CURRENT}| summarize n = count() by Status, Severity")
    for status, *sums in result.rows:
        got = {c: v for c, v in zip(result.columns[1:], sums, strict=True) if v}
        assert got == expected[status]


def test_the_columns_to_keep_default_to_all_but_the_pivot_and_the_aggregated(
    store: LogStore,
) -> None:
    result = store.query(
        f"{CURRENT}| project Severity, Status, IncidentNumber "
        "| evaluate pivot(Severity, max(IncidentNumber))"
    )
    assert result.columns[0] == "Status"  # not IncidentNumber, which the aggregate reads
    expected = grouped(store, f"{CURRENT}| summarize m = max(IncidentNumber) by Status, Severity")
    for status, *maxima in result.rows:
        got = {c: v for c, v in zip(result.columns[1:], maxima, strict=True) if v is not None}
        assert got == expected[status]


def test_a_pivot_of_no_rows_keeps_only_the_other_columns(store: LogStore) -> None:
    result = store.query("SecurityIncident | where false | project Severity, Status "
                         "| evaluate pivot(Severity)")  # fmt: skip
    assert (result.columns, result.rows) == (("Status",), ())


def test_a_pivot_inside_a_let_and_after_a_rename(store: LogStore) -> None:
    result = store.query(
        "let T = SecurityIncident | project Severity, status = Status; T | evaluate pivot(Severity)"
    )
    assert result.columns[0] == "status"  # as the query names it
    assert (
        sum(sum(row[1:]) for row in result.rows)
        == store.query("SecurityIncident | count").rows[0][0]
    )


@pytest.mark.parametrize(
    ("kql", "message"),
    [
        (
            f"{CURRENT}| project Classification, Status | evaluate pivot(Classification)",
            r"Classification holds a value that names no column \(''\); leave it out first",
        ),
        (
            "SecurityIncident | evaluate pivot(Severity, percentile(IncidentNumber, 5))",
            r"not supported yet: evaluate pivot at 1:19 with percentile\(IncidentNumber, 5\)",
        ),
        (
            "SecurityIncident | evaluate pivot(Severity) : (Status:string, High:long)",
            "not supported yet: evaluate pivot at 1:19 with an output schema",
        ),
    ],
)
def test_what_a_pivot_cannot_make_is_named(store: LogStore, kql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        store.query(kql)


def test_values_and_columns_that_are_no_identifiers(store: LogStore) -> None:
    result = store.query(
        f"{CURRENT}| project Severity = strcat(Severity, ' \"x\" é'), ['the status'] = Status "
        "| evaluate pivot(Severity)"
    )
    assert result.columns[0] == "the status"
    assert 'High "x" é' in result.columns
    assert "__xdrsync_pivot" not in result.columns
    assert sum(sum(row[1:]) for row in result.rows) == 5  # every current incident once


def test_numbers_and_datetimes_pivot_by_their_text(store: LogStore) -> None:
    result = store.query(
        f"{CURRENT}| project Day = startofday(CreatedTime), N = IncidentNumber % 2 "
        "| evaluate pivot(N)"
    )
    assert set(result.columns) == {"Day", "0", "1"}
    assert sum(sum(row[1:]) for row in result.rows) == 5


def test_a_word_in_a_string_of_the_aggregate_keeps_that_column(store: LogStore) -> None:
    result = store.query(
        f"{CURRENT}| project Severity, Status, N = IncidentNumber "
        '| evaluate pivot(Severity, max(strcat("Status:", N)))'
    )
    assert result.columns[0] == "Status"  # N is read, "Status:" is only text
    assert len(result.rows) == len(store.query(f"{CURRENT}| distinct Status").rows)


def test_the_daily_workbook_pivot_answers_as_the_counts_do(store: LogStore) -> None:
    from kql_corpus import CORPUS

    result = store.query(CORPUS["daily-severity-pivot"])
    expected = grouped(
        store,
        f"{CURRENT}| summarize n = count() by Day = bin(CreatedTime, 1d), Severity",
    )
    for day, *counts in result.rows:
        got = {c: v for c, v in zip(result.columns[1:], counts, strict=True) if v}
        assert got == expected[day]
    days = [row[0] for row in result.rows]
    assert days == sorted(days) and set(days) == set(expected)
