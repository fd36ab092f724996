"""`row_number()`, `prev()` and `next()` (`compat` writes a mark, `sqlpatch` reads the rows
there in the order of the `sort` before it), on the seeded Sentinel workspace: the numbers
follow the rows as they come out, from 1 or the start given, ties included, and `prev`/`next`
read the rows before and after; without a sort before them the query is refused with what to
write."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from sentinel_workspace import seeded_store

from xdrsync.tables.errors import QueryError
from xdrsync.tables.logstore import LogStore

CURRENT = "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("row_number") / "logs.duckdb")


def test_rows_are_numbered_in_the_order_they_come_out_ties_included(store: LogStore) -> None:
    rows = store.query(
        "range x from 1 to 5000 step 1 | extend y = x % 7 | sort by y asc"
        " | extend r = row_number() | project y, r"
    ).rows
    assert [r for _, r in rows] == list(range(1, 5001))
    ys = [y for y, _ in rows]
    assert ys == sorted(ys)  # 7 values: every row ties with about 700 others


def test_a_start_and_the_operators_that_keep_the_order_between(store: LogStore) -> None:
    rows = store.query(
        'SecurityIncident | sort by IncidentNumber desc | where Severity != "nothing"'
        " | extend r = row_number(10) | project IncidentNumber, r"
    ).rows
    assert [r for _, r in rows] == list(range(10, 10 + len(rows)))
    numbers = [n for n, _ in rows]
    assert numbers == sorted(numbers, reverse=True) and len(rows) == 7


def test_ranks_after_top_and_after_a_summarize_sorted(store: LogStore) -> None:
    top = store.query(
        "SecurityIncident | top 3 by IncidentNumber | extend Rank = row_number()"
        " | project IncidentNumber, Rank"
    ).rows
    assert [rank for _, rank in top] == [1, 2, 3]
    assert [n for n, _ in top] == sorted((n for n, _ in top), reverse=True)
    ranked = store.query(
        "SecurityIncident | summarize n = count() by Severity | sort by n desc"
        " | extend Rank = row_number()"
    ).rows
    assert [rank for *_, rank in ranked] == list(range(1, len(ranked) + 1))
    assert [n for _, n, _ in ranked] == sorted((n for _, n, _ in ranked), reverse=True)


def test_without_a_sort_before_it_the_query_is_refused_with_what_to_write(
    store: LogStore,
) -> None:
    with pytest.raises(QueryError, match=r"put a `sort by` \(or `top`\) before them"):
        store.query("SecurityIncident | extend r = row_number()")
    with pytest.raises(QueryError, match=r"put a `sort by`"):
        store.query(
            "SecurityIncident | sort by Title | distinct Severity | extend r = row_number()"
        )
    with pytest.raises(QueryError, match=r"put a `sort by`"):
        store.query(
            "SecurityIncident | sort by Title | summarize count() by Severity"
            " | extend r = row_number()"
        )


def test_restarting_is_not_supported_and_a_string_is_left_alone(store: LogStore) -> None:
    with pytest.raises(QueryError, match=r"not supported yet: row_number\(\)"):
        store.query(
            "SecurityIncident | sort by IncidentNumber"
            " | extend r = row_number(1, prev(Severity) != Severity)"
        )
    rows = store.query(
        'SecurityIncident | sort by IncidentNumber | project x = "row_number()", r = row_number()'
        " | take 2"
    ).rows
    assert rows == (("row_number()", 1), ("row_number()", 2))


def test_the_order_is_the_sorts_even_when_later_steps_change_its_columns(
    store: LogStore,
) -> None:
    rows = store.query(
        "SecurityIncident | sort by IncidentNumber asc | project N = IncidentNumber"
        " | extend N = 100 - N | extend r = row_number()"
    )
    assert rows.columns == ("N", "r")  # the carried place of each row is never shown
    assert [n for n, _ in rows.rows] == sorted((n for n, _ in rows.rows), reverse=True)
    assert [r for _, r in rows.rows] == list(range(1, 8))


def test_every_row_number_of_a_query_agrees_on_ties(store: LogStore) -> None:
    kql = (
        "range x from 1 to 5000 step 1 | extend y = x % 7 | sort by y asc"
        " | extend r = row_number() | extend s = row_number() | where r != s | count"
    )
    assert store.query(kql).rows == ((0,),)


def test_each_pipeline_is_numbered_by_its_own_sort(store: LogStore) -> None:
    """duckdb-kql names the steps of every nested pipeline `_s0`, `_s1`, ... again."""
    unioned = store.query(
        "union (SecurityIncident | sort by IncidentNumber asc | extend r = row_number()"
        " | project IncidentNumber, r), (SecurityIncident | sort by Title asc | take 2)"
        " | where isnotnull(r) | project IncidentNumber, r | sort by r asc"
    ).rows
    assert [n for n, _ in unioned] == sorted(n for n, _ in unioned)
    let = store.query(
        "let t = SecurityIncident | sort by IncidentNumber desc | extend r = row_number();"
        " t | project IncidentNumber, r"
    ).rows
    assert [r for _, r in let] == list(range(1, 8))
    assert [n for n, _ in let] == sorted((n for n, _ in let), reverse=True)


@pytest.mark.parametrize(
    "kql",
    [
        "SecurityIncident | sort by IncidentNumber | where row_number() > 2",
        "SecurityIncident | sort by IncidentNumber asc | sort by row_number() desc",
    ],
)
def test_row_number_in_a_where_or_a_sort_says_to_number_first(store: LogStore, kql: str) -> None:
    with pytest.raises(QueryError, match=r"extend n = row_number\(\) \| where n"):
        store.query(kql)


def test_the_place_carried_for_the_numbers_is_never_a_column(store: LogStore) -> None:
    kql = (
        "datatable(x:int)[3, 1, 2] | sort by x asc | where x > 0 | extend r = row_number()"
        " | getschema | project ColumnName"
    )
    assert store.query(kql).rows == (("x",), ("r",))


def test_prev_and_next_read_the_rows_before_and_after_in_the_sorts_order(
    store: LogStore,
) -> None:
    rows = store.query(
        "range x from 1 to 50 step 1 | extend y = (x * 37) % 50 | sort by y asc"
        " | extend p = prev(y), n = next(y, 2), r = row_number() | project y, p, n, r"
    ).rows
    ys = [y for y, *_ in rows]
    assert ys == sorted(ys)
    assert [p for _, p, _, _ in rows] == [None, *ys[:-1]]
    assert [n for _, _, n, _ in rows] == [*ys[2:], None, None]


def test_prev_gives_the_time_since_the_row_before(store: LogStore) -> None:
    rows = store.query(
        "SecurityIncident | sort by CreatedTime asc"
        " | extend Gap = CreatedTime - prev(CreatedTime) | project CreatedTime, Gap"
    ).rows
    assert rows[0][1] is None
    assert all(gap == now - before for (before, _), (now, gap) in pairwise(rows))


@pytest.mark.parametrize(
    ("kql", "message"),
    [
        ("SecurityIncident | extend p = prev(Title)", r"put a `sort by` \(or `top`\) before"),
        ("SecurityIncident | sort by Title | where prev(Title) == Title", "make a column of it"),
        ("SecurityIncident | extend p = prev(Title, 1, 'none')", r"put a `sort by`"),
        ("SecurityIncident | sort by Title | extend p = prev(strlen(Title), 1, 0)", r"prev\(\)"),
    ],
)
def test_prev_where_it_cannot_read_says_so(store: LogStore, kql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        store.query(kql)


def test_a_default_value_is_given_only_past_the_first_or_last_rows(store: LogStore) -> None:
    rows = store.query(
        f"{CURRENT}| sort by IncidentNumber asc"
        " | extend p = prev(IncidentNumber, 1, -1), n = next(IncidentNumber, 2, 0),"
        " t = prev(Title, 1, 'none'), c = prev(ClosedTime, 1, datetime(2000-01-01))"
        " | project IncidentNumber, p, n, t, c, ClosedTime, Title"
    ).rows
    numbers = [r[0] for r in rows]
    assert [r[1] for r in rows] == [-1, *numbers[:-1]]
    assert [r[2] for r in rows] == [*numbers[2:], 0, 0]
    assert [r[3] for r in rows] == ["none", *(r[6] for r in rows[:-1])]
    # Past the first row the default; after it the row before's value, a null one included.
    assert rows[0][4] == datetime(2000, 1, 1, tzinfo=UTC)
    assert [r[4] for r in rows[1:]] == [r[5] for r in rows[:-1]]
    assert None in [r[5] for r in rows[:-1]]


def test_a_string_past_either_end_is_empty_not_null(store: LogStore) -> None:
    kql = "SecurityIncident | sort by IncidentNumber asc | extend p = next(Title) | where p == ''"
    assert store.query(f"{kql} | count").rows == ((1,),)
    numbers = "SecurityIncident | sort by IncidentNumber asc | extend p = prev(IncidentNumber)"
    assert store.query(f"{numbers} | project p | take 1").rows == ((None,),)


def test_the_querys_own_functions_of_those_names_are_called(store: LogStore) -> None:
    kql = (
        "let next = (v:long) { v * 2 }; let row_number = () { 7 };"
        " SecurityIncident | take 1 | extend y = next(IncidentNumber), r = row_number()"
        " | project IncidentNumber, y, r"
    )
    ((number, doubled, seven),) = store.query(kql).rows
    assert doubled == 2 * number and seven == 7


@pytest.mark.parametrize(
    ("kql", "message"),
    [
        (
            "SecurityIncident | sort by IncidentNumber | project IncidentNumber, prev(IncidentNumber)",
            "need a column name",
        ),
        ("SecurityIncident | sort by IncidentNumber | extend row_number()", "need a column name"),
        (
            "SecurityIncident | sort by IncidentNumber | extend p = prev(prev(IncidentNumber))",
            r"not supported yet: prev\(\)",
        ),
    ],
)
def test_unnamed_and_nested_calls_say_what_to_write(
    store: LogStore, kql: str, message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        store.query(kql)
