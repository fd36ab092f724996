"""`search` and `where * has` over the seeded Sentinel workspace (`kqlsearch`).

Each answer is checked against the rows themselves: every table is read whole, and a row
matches a term when the text of one of its columns holds it as Kusto's search predicate says
(`"x"` a whole term, `"x*"` a term's start, `"*x"` its end, `"*x*"` anywhere, `"x*y"` the
regex `\bx.*y\b`), so the rewrite is checked for the columns it tests, not against itself.
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
    "ph*ng": lambda text, _: re.search(r"\bph.*ng\b", text, re.IGNORECASE) is not None,
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
    with pytest.raises(QueryError, match="not supported yet: search at 1:48"):
        store.query('SecurityIncident | summarize count() by Title | search "phish"')
    with pytest.raises(QueryError, match=r"not supported yet: \* has at 1:54"):
        store.query('SecurityIncident | summarize count() by Title | where * has "phish"')


def test_a_term_with_an_asterisk_inside_starts_and_ends_on_word_boundaries(store: LogStore) -> None:
    # "Phish campaign: credential phishing ..." holds "hish...ing" only inside words
    assert store.query('SecurityIncident | project Title | search "hish*ing"').rows == ()
    assert len(store.query('SecurityIncident | project Title | search "phish*ing"').rows) == 2


def test_search_star_and_verbatim_terms(store: LogStore) -> None:
    everything = sum(store.query(f"{t} | count").rows[0][0] for t in TABLE_NAMES)
    assert store.query("search * | count").rows == ((everything,),)
    url = store.query('search in (AlertEvidence) @"https://login.phish*" | count').rows
    assert url == store.query('search in (AlertEvidence) "https://login.phish*" | count').rows
    assert url[0][0] > 0


def test_terms_inside_not_are_terms(store: LogStore) -> None:
    def count(kql: str) -> int:
        return int(store.query(f"{kql} | count").rows[0][0])

    assert count('SecurityIncident | search "phish" and not("campaign")') == 0
    assert count('SecurityIncident | search not("phish")') == count("SecurityIncident") - 2


def test_a_search_of_every_table_takes_further_operators(store: LogStore) -> None:
    kql = 'search "phish" | where $table == "AlertEvidence" | sort by TimeGenerated | take 3'
    rows = store.query(kql)
    assert len(rows.rows) == 3 and {r[0] for r in rows.rows} == {"AlertEvidence"}
    # AlertEvidence's ResourceID and the others' ResourceId are one column, as DuckDB reads them
    assert [c for c in rows.columns if c.lower() == "resourceid"] == ["ResourceId"]


def test_a_table_without_a_named_column_still_matches_other_terms(store: LogStore) -> None:
    """`or` keeps a table that lacks the column: there the column is null."""
    either = store.query('search "phish" or Severity == "nothing" | summarize count() by $table')
    alone = store.query('search "phish" | summarize count() by $table')
    assert sorted(either.rows) == sorted(alone.rows) and len(alone.rows) == 4
    named = store.query('let s = "nothing"; search Severity == s or "phish" | count')
    assert named.rows == store.query('search "phish" | count').rows


def test_a_comment_in_the_predicate_ends_at_its_line(store: LogStore) -> None:
    kql = 'SecurityIncident | project Title | search "phish" // the term\n| count'
    assert store.query(kql).rows == ((2,),)


def test_columns_named_search_and_names_differing_in_case_are_columns(store: LogStore) -> None:
    assert store.query("print search = 1").rows == ((1,),)
    assert store.query("SecurityIncident | take 1 | project search = 2").rows == ((2,),)
    kql = 'SecurityIncident | extend owner = "zzunique" | where * has "zzunique" | count'
    assert store.query(kql).rows == store.query("SecurityIncident | count").rows


def test_star_has_inside_brackets(store: LogStore) -> None:
    total = store.query("SecurityIncident | count").rows[0][0]
    assert store.query('SecurityIncident | where (* has "phish") | count').rows == ((2,),)
    assert store.query('SecurityIncident | where not(* has "phish") | count').rows == (
        (total - 2,),
    )


def test_a_column_a_table_lacks_is_empty_there_as_in_a_union(store: LogStore) -> None:
    """SecurityAlert names its title AlertName: its rows have an empty Title."""
    found = dict(store.query('search Title == "" | summarize count() by $table').rows)
    assert found == {"SecurityAlert": store.query("SecurityAlert | count").rows[0][0]}


def test_a_column_spelled_two_ways_across_tables_is_refused_clearly(store: LogStore) -> None:
    # AlertEvidence has ResourceID, the other tables ResourceId: DuckDB cannot tell them apart
    with pytest.raises(QueryError, match="not supported yet: search"):
        store.query('search ResourceId:"x" or "phish"')
    assert store.query('search in (AlertEvidence) ResourceID:"x" | count').rows == ((0,),)


def test_a_line_break_in_a_wildcard_term_is_matched_not_a_crash(store: LogStore) -> None:
    assert store.query('search "ph\\n*ng" | count').rows == ((0,),)
    assert store.query('SecurityIncident | search "ph\\r*ng" | count').rows == ((0,),)
