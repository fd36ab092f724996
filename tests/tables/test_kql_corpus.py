"""The Sentinel-style corpus (`kql_corpus`): every query runs over the seeded workspace, and a
chosen subset returns the rows checked by hand against the Graph samples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kql_corpus import CORPUS
from sentinel_workspace import (
    BENIGN,
    FALSE_POSITIVE,
    KAI,
    MULTISTAGE,
    PHISHING,
    REDIRECTED,
    seeded_store,
)

from xdrsync.tables.logstore import LogStore

ANALYST_A = "AnalystA@contoso.onmicrosoft.com"
DAVID = "DavidS@contoso.onmicrosoft.com"
#: The keys of every seeded incident's AdditionalData.
ADDITIONAL_DATA_KEYS = (
    "alertsCount",
    "bookmarksCount",
    "commentsCount",
    "alertProductNames",
    "tactics",
    "techniques",
    "providerIncidentUrl",
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("corpus") / "logs.duckdb")


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 60


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_query_runs(store: LogStore, name: str) -> None:
    result = store.query(CORPUS[name])
    assert result.columns


def _sorted(rows: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in rows), key=repr)


#: Query name -> its rows, in any order (checked by hand against `graph_samples`).
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "open-by-severity": [("High", 1), ("Medium", 1)],
    "owner-workload": [(ANALYST_A, 1), (KAI, 1)],
    "owner-unpacked": [(ANALYST_A, 1), (KAI, 1)],
    "closed-classification": [
        ("BenignPositive", "SuspiciousButExpected", 1),
        ("FalsePositive", "InaccurateData", 1),
        ("Undetermined", "", 1),
    ],
    "count-closed-time": [
        (MULTISTAGE, 2, 0),
        (PHISHING, 2, 0),
        (FALSE_POSITIVE, 1, 1),
        (BENIGN, 1, 1),
        (REDIRECTED, 1, 1),
    ],
    "count-predicate": [(3, 7)],
    "redirected-label": [(REDIRECTED,)],
    "comment-authors": [("Analyst One", 1), (DAVID, 2)],
    "alerts-count-from-additional-data": [(MULTISTAGE, 2), (PHISHING, 2)],
    "missing-column-default": [("unknown", 5)],
    "entities-hosts": [("BUILD-07", 1), ("WS-0142", 2)],
    "extended-properties-bracket": [("Trojan:Win32/Wacatac",)],
    "alert-let-function": [
        ("Suspicious PowerShell command line",),
        ("Suspicious execution of hidden file",),
    ],
    "incident-let-function": [(MULTISTAGE,), (REDIRECTED,)],
    "incident-function-join": [(MULTISTAGE,)],
    "incidents-with-host": [(MULTISTAGE,)],
    "parenthesised-source": [(1,)],
    "closed-state-lookup": [("", 2), ("Closed", 3)],
    "obfuscated-title-search": [(PHISHING,)],
    "incident-number-prefix": [(5,)],
    "owners-by-severity-bag": [
        ("High", {str(PHISHING): ANALYST_A}),
        ("Medium", {str(MULTISTAGE): KAI, str(REDIRECTED): ""}),
        ("Low", {str(FALSE_POSITIVE): DAVID}),
        ("Informational", {str(BENIGN): KAI}),
    ],
    "additional-data-keys": [(key, 5) for key in ADDITIONAL_DATA_KEYS],
    # Before September only the multi-stage incident had tactics; after it, two new ones.
    "new-tactics-since-september": [(["Exfiltration", "InitialAccess"],)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hand_checked_answers(store: LogStore, name: str) -> None:
    assert _sorted(store.query(CORPUS[name]).rows) == _sorted(EXPECTED[name])


def test_case_differing_names_are_the_users(store: LogStore) -> None:
    result = store.query(CORPUS["status-lowercase-name"])
    assert result.columns == ("IncidentNumber", "status", "title")
    assert dict((r[0], r[1]) for r in result.rows)[PHISHING] == "active"
    owners = store.query(CORPUS["owner-case-name"])
    assert owners.columns == ("IncidentNumber", "owner")
    assert dict(owners.rows) == {
        MULTISTAGE: KAI, PHISHING: ANALYST_A, FALSE_POSITIVE: DAVID, BENIGN: KAI,
    }  # fmt: skip


def test_bin_at_aligns_on_its_fixed_point(store: LogStore) -> None:
    rows = dict(store.query(CORPUS["created-per-day-bin-at"]).rows)
    # Created 2021-09-29 10:08 (phishing) falls in the day starting 2021-09-29 06:00.
    assert rows[datetime(2021, 9, 29, 6, tzinfo=UTC)] == 1
    assert all(key.hour == 6 for key in rows)
