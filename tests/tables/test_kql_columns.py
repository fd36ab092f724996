"""`pack_all()` over the columns the compatibility layer follows (`kqlcolumns`), on the
seeded Sentinel workspace: the bag holds every column of the operator's input, each with the
row's own value."""

from __future__ import annotations

import pytest
from sentinel_workspace import seeded_store

from xdrsync.tables.errors import QueryError
from xdrsync.tables.logstore import LogStore


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("columns") / "logs.duckdb")


def test_pack_all_holds_every_column_of_its_input(store: LogStore) -> None:
    rows = store.query("SecurityIncident | sort by IncidentName asc | take 3").rows
    bags = store.query(
        "SecurityIncident | sort by IncidentName asc | take 3 | extend Bag = pack_all()"
    )
    assert bags.columns[-1] == "Bag"
    columns = store.query("SecurityIncident | take 1").columns
    for row, answered in zip(rows, bags.rows, strict=True):
        bag = answered[-1]
        assert list(bag) == list(columns)  # every column, in order, and not Bag itself
        assert bag["Title"] == row[columns.index("Title")]
        assert bag["IncidentNumber"] == row[columns.index("IncidentNumber")]


def test_pack_all_follows_project_extend_and_rename(store: LogStore) -> None:
    kql = (
        "SecurityIncident | take 1 | project Title, IncidentNumber, Severity"
        " | extend Twice = IncidentNumber * 2 | project-rename Name = Title"
        " | project-away Severity | project Bag = pack_all()"
    )
    (bag,) = store.query(kql).rows[0]
    assert list(bag) == ["Name", "IncidentNumber", "Twice"]
    assert bag["Twice"] == 2 * bag["IncidentNumber"]


@pytest.mark.parametrize(
    "kql",
    [
        "SecurityIncident | summarize c = count() by Severity | extend p = pack_all()",
        "SecurityIncident | project Title | extend p = pack_all(true)",
        "SecurityIncident | extend b = toscalar(print p = pack_all())",
    ],
)
def test_pack_all_where_the_columns_are_not_followed_is_refused_clearly(
    store: LogStore, kql: str
) -> None:
    with pytest.raises(QueryError, match=r"not supported yet: pack_all\(\)"):
        store.query(kql)


def test_pack_all_inside_a_call_and_after_a_bracketed_name(store: LogStore) -> None:
    (listed,) = store.query("SecurityIncident | summarize L = make_list(pack_all())").rows[0]
    assert len(listed) == store.query("SecurityIncident | count").rows[0][0]
    assert all("Title" in bag for bag in listed)
    (bag,) = store.query(
        "SecurityIncident | take 1 | project-away ['Title'] | project Bag = pack_all()"
    ).rows[0]
    assert "Title" not in bag and "Description" in bag


def test_pack_all_after_a_search_holds_its_table_column(store: LogStore) -> None:
    (bag,) = store.query('SecurityIncident | search "phish" | project B = pack_all()').rows[0]
    assert next(iter(bag.items())) == ("$table", "SecurityIncident")


def test_project_keep_and_project_reorder_over_followed_columns(store: LogStore) -> None:
    """`project-keep` keeps the named columns (wildcards too) in the input's order;
    `project-reorder` puts the named ones first, in the order named, and the rest after as
    they were; values stay with their columns."""
    whole = store.query("SecurityIncident | sort by IncidentNumber asc | take 2")
    columns = list(whole.columns)
    kept = store.query(
        "SecurityIncident | sort by IncidentNumber asc | take 2 | extend x = 1"
        " | project-keep x, Title, Sev*"
    )
    assert list(kept.columns) == ["Title", "Severity", "x"]
    reordered = store.query(
        "SecurityIncident | sort by IncidentNumber asc | take 2 | project-reorder Title, Sev*"
    )
    rest = [c for c in columns if c not in ("Title", "Severity")]
    assert list(reordered.columns) == ["Title", "Severity", *rest]
    for before, after in zip(whole.rows, reordered.rows, strict=True):
        assert dict(zip(columns, before, strict=True)) == dict(
            zip(reordered.columns, after, strict=True)
        )
    # A wildcard's columns sorted by name, or an input not followed here: as before.
    for kql in (
        "SecurityIncident | project-reorder Sev* asc",
        "SecurityIncident | summarize count() by Severity | project-keep Severity",
    ):
        with pytest.raises(QueryError, match="not supported yet: project-"):
            store.query(kql)
