"""`search` and `where * has` over the seeded Sentinel workspace (`kqlsearch`).

Each answer is checked against the rows themselves: every table is read whole, and a row
matches a term when the text of one of its columns holds it as Kusto's search predicate says
(`"x"` a whole term, `"x*"` a term's start, `"*x"` its end, `"*x*"` anywhere, `"x*y"` a
regex), so the rewrite is checked for the columns it tests, not against itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sentinel_workspace import seeded_store

from xdrsync.tables.errors import QueryError
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.schemas import TABLE_NAMES


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("search") / "logs.duckdb")


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


def _terms(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9_]+", text)


MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "phish": lambda text, _: "phish" in (t.lower() for t in _terms(text)),
    "phish*": lambda text, _: any(t.lower().startswith("phish") for t in _terms(text)),
    "*ishing": lambda text, _: any(t.lower().endswith("ishing") for t in _terms(text)),
    "*hish*": lambda text, _: "hish" in text.lower(),
    "ph*ng": lambda text, _: re.search("ph.*ng", text, re.IGNORECASE) is not None,
}


def _truth(store: LogStore, source: str, matches: Callable[[str], bool]) -> int:
    """How many rows of `source` (a table, or a query) have a column whose text matches."""
    rows = store.query(source).rows
    return sum(1 for row in rows if any(matches(_text(value)) for value in row))


@pytest.mark.parametrize("term", list(MATCHERS))
def test_a_search_of_every_table_finds_the_rows_holding_the_term(
    store: LogStore, term: str
) -> None:
    result = store.query(f'search "{term}" | summarize n = count() by $table')
    found = {table: n for table, n in result.rows}
    truth = {t: _truth(store, t, lambda text: MATCHERS[term](text, term)) for t in TABLE_NAMES}
    assert found == {t: n for t, n in truth.items() if n}
    assert sum(found.values()) > 0


def test_a_search_answers_the_table_first_then_the_tables_columns(store: LogStore) -> None:
    result = store.query('search in (SecurityIncident) "phish"')
    incident = store.query("SecurityIncident | take 1")
    assert result.columns == ("$table", *incident.columns)
    assert {row[0] for row in result.rows} == {"SecurityIncident"}
    piped = store.query('SecurityIncident | search "phish"')
    assert piped.columns == result.columns and sorted(map(str, piped.rows)) == sorted(
        map(str, result.rows)
    )


def test_where_star_has_tests_every_column_of_the_table(store: LogStore) -> None:
    for table in TABLE_NAMES:
        count = store.query(f'{table} | where * has "phish" | count').rows[0][0]
        assert count == _truth(store, table, lambda text: MATCHERS["phish"](text, "phish"))
    # and combines with other predicates as any `where` does
    both = 'SecurityIncident | where Severity != "" and * has "phish" | count'
    assert store.query(both).rows == store.query('SecurityIncident | search "phish" | count').rows


def test_in_lists_tables_by_name_and_wildcard(store: LogStore) -> None:
    result = store.query('search in (Security*) "phish" | summarize count() by $table')
    assert {table for table, _ in result.rows} == {"SecurityIncident", "SecurityAlert"}
    with pytest.raises(QueryError, match="search"):
        store.query('search in (NoSuchTable) "phish"')


def test_case_sensitive_search_tells_case_apart(store: LogStore) -> None:
    def count(kql: str) -> int:
        return sum(n for _, n in store.query(f"{kql} | summarize n = count() by $table").rows)

    upper = count('search kind=case_sensitive "Phish"')
    lower = count('search kind=case_sensitive "phish"')
    either = count('search "phish"')
    assert upper and lower and upper != lower and max(upper, lower) <= either


def test_a_column_term_searches_that_column_in_the_tables_that_have_it(store: LogStore) -> None:
    result = store.query('search Title:"phish*" | summarize n = count() by $table')
    expected = {}
    for table in TABLE_NAMES:
        if "Title" in store.query(f"{table} | take 1").columns:
            n = store.query(f'{table} | where Title hasprefix "phish" | count').rows[0][0]
            if n:
                expected[table] = n
    assert dict(result.rows) == expected and expected
    assert "SecurityAlert" not in expected  # it names the alert AlertName, not Title


def test_terms_combine_with_predicates_and_brackets(store: LogStore) -> None:
    kql = 'search in (SecurityIncident) ("phish" or "Multi-stage") and Status != "Closed"'
    rows = store.query(kql).rows
    hand = store.query(
        'SecurityIncident | where (Title has "phish" or Title has "Multi-stage"'
        ' or Description has "phish") and Status != "Closed"'
    ).rows
    assert len(rows) == len(hand) > 0


def test_after_operators_that_keep_or_name_columns_the_input_is_searched(
    store: LogStore,
) -> None:
    kql = (
        'SecurityIncident | where TimeGenerated > ago(30d) | extend Marker = "zz top"'
        ' | project-away Description | search "zz"'
    )
    assert store.query(f"{kql} | count").rows == store.query("SecurityIncident | count").rows
    only_title = store.query('SecurityIncident | project Title | where * has "campaign" | count')
    has_campaign = _truth(
        store,
        "SecurityIncident | project Title",
        lambda text: "campaign" in (t.lower() for t in _terms(text)),
    )
    assert only_title.rows[0][0] == has_campaign > 0


def test_after_a_summarize_search_is_refused_clearly(store: LogStore) -> None:
    with pytest.raises(QueryError, match="not supported yet: search"):
        store.query('SecurityIncident | summarize count() by Title | search "phish"')
