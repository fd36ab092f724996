"""Log Analytics' hidden standard columns: there when a query names them, never otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xdrsync.tables.errors import QueryError
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.schemas import HIDDEN_COLUMNS, TABLE_NAMES, table_schema

GENERATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RECEIVED = datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> tuple[LogStore, datetime, datetime]:
    """A store with three incident rows (one without a received time) and the moments just
    before and after they were appended."""
    store = LogStore(tmp_path / "logs.duckdb")
    before = datetime.now(UTC)
    store.append(
        "SecurityIncident",
        [
            {"IncidentNumber": 1, "TimeGenerated": GENERATED, "_TimeReceived": RECEIVED},
            {"IncidentNumber": 2, "TimeGenerated": GENERATED, "_TimeReceived": RECEIVED},
            {"IncidentNumber": 3, "TimeGenerated": GENERATED},
        ],
    )
    store.append("SecurityAlert", [{"SystemAlertId": "da1", "TimeGenerated": GENERATED}])
    return store, before, datetime.now(UTC)


Store = tuple[LogStore, datetime, datetime]


@pytest.mark.parametrize(
    "kql",
    [
        "SecurityIncident | take 1",
        "SecurityIncident | extend Seen = 1",
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber",
        "union SecurityIncident, SecurityAlert",
    ],
)
def test_a_query_that_does_not_name_them_never_sees_them(store: Store, kql: str) -> None:
    columns = store[0].query(kql).columns
    assert not {c.name for c in HIDDEN_COLUMNS} & set(columns)


def test_getschema_lists_only_the_published_columns(store: Store) -> None:
    for table in TABLE_NAMES:
        names = store[0].query(f"{table} | getschema | project ColumnName").column("ColumnName")
        assert tuple(names) == table_schema(table).column_names


def test_named_hidden_columns_hold_what_log_analytics_puts_there(store: Store) -> None:
    logs, before, after = store
    result = logs.query(
        "SecurityIncident | project IncidentNumber, _ItemId, _TimeReceived, _IngestionTime,"
        " _ResourceId, _SubscriptionId | sort by IncidentNumber asc"
    )
    assert result.columns[1:] == (
        "_ItemId",
        "_TimeReceived",
        "_IngestionTime",
        "_ResourceId",
        "_SubscriptionId",
    )
    item_ids = result.column("_ItemId")
    assert len(set(item_ids)) == 3 and all(len(i) == 36 for i in item_ids)
    # Received from the hub when the row says so; otherwise when the store took it.
    received = result.column("_TimeReceived")
    assert received[:2] == [RECEIVED, RECEIVED]
    slack = timedelta(seconds=1)
    assert before - slack <= received[2] <= after + slack
    ingested = result.column("_IngestionTime")
    assert all(before - slack <= moment <= after + slack for moment in ingested)
    assert result.column("_ResourceId") == ["", "", ""]
    assert result.column("_SubscriptionId") == ["", "", ""]


def test_ingestion_time_reads_the_hidden_column_without_showing_it(store: Store) -> None:
    logs, before, after = store
    result = logs.query("SecurityIncident | extend Ingested = ingestion_time() | take 1")
    assert result.columns == (*table_schema("SecurityIncident").column_names, "Ingested")
    (ingested,) = result.column("Ingested")
    assert before - timedelta(seconds=1) <= ingested <= after + timedelta(seconds=1)
    same = logs.query("SecurityIncident | where ingestion_time() == _IngestionTime | count").rows
    assert same == ((3,),)


def test_a_hidden_column_filters_like_any_other(store: Store) -> None:
    logs, _, _ = store
    (item_id,) = logs.query("SecurityAlert | project _ItemId").column("_ItemId")
    found = logs.query(f"SecurityAlert | where _ItemId == '{item_id}' | project SystemAlertId")
    assert found.rows == (("da1",),)


def test_a_name_close_to_a_hidden_one_is_still_an_unknown_column(store: Store) -> None:
    with pytest.raises(QueryError, match="_ItemID"):
        store[0].query("SecurityIncident | project _ItemID")
