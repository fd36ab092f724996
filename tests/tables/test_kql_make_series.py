"""make-series, rewritten into operators duckdb-kql translates: every bin for every group,
defaults where a bin has no rows, the series in bin order."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sentinel_workspace import BASE, seeded_store

from xdrsync.tables.compat import rewrite
from xdrsync.tables.errors import QueryError
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.schemas import TABLE_NAMES, table_schema

COLUMNS = {name: table_schema(name).column_names for name in TABLE_NAMES}


def _kql_time(moment: datetime) -> str:
    return f"datetime({moment:%Y-%m-%d %H:%M})"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("series") / "logs.duckdb")


def test_series_per_group_with_defaults_checked_by_hand(store: LogStore) -> None:
    # Rows (sentinel_workspace): Medium at BASE-6h and BASE-5h, High at BASE-4h and BASE-1h,
    # Medium at BASE-2h, Low at BASE-1h50m, Informational 30 hours before: outside the range.
    lo, hi = BASE - timedelta(hours=8), BASE
    result = store.query(
        "SecurityIncident | where Severity != 'x'"
        " | make-series Versions = count(), Top = max(IncidentNumber) default = -1"
        f" on TimeGenerated from {_kql_time(lo)} to {_kql_time(hi)} step 2h by Severity"
    )
    assert result.columns == ("Severity", "Versions", "Top", "TimeGenerated")
    assert result.types[1:] == ("dynamic", "dynamic", "dynamic")
    series = {row[0]: row[1:] for row in result.rows}
    # A `dynamic` array holds each datetime as Kusto's text of it, as in Kusto.
    bins = [f"{lo + timedelta(hours=h):%Y-%m-%dT%H:%M:%S}.0000000Z" for h in (0, 2, 4, 6)]
    assert all(list(axis) == bins for _, _, axis in series.values())
    assert series["Medium"][:2] == ([0, 2, 0, 1], [-1, 2972399, -1, 2972395])
    assert series["High"][:2] == ([0, 0, 1, 1], [-1, -1, 2972396, 2972396])
    assert series["Low"][:2] == ([0, 0, 0, 1], [-1, -1, -1, 2972397])
    # A group whose rows all lie outside the range still gets its series, all defaults.
    assert series["Informational"][:2] == ([0, 0, 0, 0], [-1, -1, -1, -1])


def test_series_without_groups_and_a_lifted_source(store: LogStore) -> None:
    lo, hi = BASE - timedelta(hours=8), BASE
    kql = (
        "let recent = SecurityIncident | where TimeGenerated > ago(400d)"
        f" | make-series count() on TimeGenerated from {_kql_time(lo)} to {_kql_time(hi)}"
        " step 4h;\nrecent | project count_"
    )
    assert rewrite(kql, COLUMNS).text.startswith("let __xdrsync_series_0 = SecurityIncident")
    assert store.query(kql).rows == (([2, 4],),)


def test_long_series_keep_their_order(tmp_path: Path) -> None:
    # Thousands of rows over many bins and groups: each series must line up with its axis.
    store = LogStore(tmp_path / "logs.duckdb")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    rows = [
        {
            "SystemAlertId": f"a{n}",
            "AlertSeverity": rng.choice(["High", "Medium", "Low"]),
            "TimeGenerated": start + timedelta(minutes=rng.randrange(0, 60 * 240)),
        }
        for n in range(6000)
    ]
    store.append("SecurityAlert", rows)
    result = store.query(
        "SecurityAlert | make-series n = count() default = 0 on TimeGenerated"
        f" from {_kql_time(start)} to {_kql_time(start + timedelta(hours=240))} step 1h"
        " by AlertSeverity"
    )
    expected = Counter(
        (r["AlertSeverity"], (r["TimeGenerated"] - start) // timedelta(hours=1)) for r in rows
    )
    assert len(result.rows) == 3
    for severity, counts, axis in result.rows:
        assert len(counts) == len(axis) == 240
        assert list(axis) == sorted(axis)
        assert counts == [expected[(severity, hour)] for hour in range(240)]


@pytest.mark.parametrize(
    "kql",
    [
        "SecurityIncident | make-series count() on TimeGenerated step 1d",  # no bounds
        "SecurityIncident | make-series kind=nonempty count() on TimeGenerated"
        " from ago(1d) to now() step 1h",
        "SecurityIncident | make-series count() on TimeGenerated"
        " from ago(1d) to now() step 1h by S = tolower(Severity)",
    ],
)
def test_shapes_it_does_not_rewrite_are_named(store: LogStore, kql: str) -> None:
    assert rewrite(kql, COLUMNS).text == kql
    with pytest.raises(QueryError, match="not supported yet: make-series"):
        store.query(kql)
