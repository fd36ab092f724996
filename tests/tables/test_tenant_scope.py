"""Tenant scoping at the data layer: `LogStore.query(kql, tenant_ids=...)` never returns a row
of another tenant, whatever the query does with the tables.

Two tenants share the store. Every value of the other tenant's rows (strings, dynamic bags and
their keys, hidden columns, its tenant id) carries a marker; a scoped answer, or its error
message, must never hold it. Each leak probe is first run unscoped to prove it would reach the
other tenant's rows if the scoping were not there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from xdrsync.tables import scope
from xdrsync.tables.errors import QueryError, QueryRefusedError
from xdrsync.tables.limits import QueryLimits
from xdrsync.tables.logstore import LogStore, hidden_views
from xdrsync.tables.queryresult import QueryResult
from xdrsync.tables.schemas import TABLE_NAMES, Column, TableSchema, table_schema

OURS = "0a0a0a0a-1111-4111-8111-00000000000a"
THEIRS = "0b0b0b0b-2222-4222-8222-00000000000b"
#: In every value of the other tenant's rows.
MARK = "fabrikamonly7e3d"
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _value(column: Column, tag: str, index: int) -> Any:
    if column.kql_type == "string":
        return f"{tag}-{column.name}-{index}"
    if column.kql_type == "datetime":
        return WHEN
    if column.kql_type in ("int", "long"):
        return index + 1
    if column.kql_type == "real":
        return 0.5 + index
    if column.kql_type == "bool":
        return True
    return {f"{tag}key": f"{tag}-{column.name}", "n": index, "list": [tag]}


def tenant_rows(table: str, tenant_id: str, tag: str, count: int) -> list[dict[str, Any]]:
    """`count` rows of `table` for one tenant: every column filled, every text holding `tag`."""
    rows = []
    for i in range(count):
        row = {c.name: _value(c, tag, i) for c in table_schema(table).columns}
        row.update(TenantId=tenant_id, _ItemId=f"{tag}-item-{i}", _Seq=i)
        row["_ResourceId"] = f"{tag}-resource"
        for name in ("AlertId", "SystemAlertId"):  # one alert id across the alert tables
            if name in row:
                row[name] = f"{tag}-alert-{i}"
        if table == "SecurityAlert":  # JSON text, as Sentinel stores them
            row["Entities"] = json.dumps([{"Type": "host", "HostName": f"{tag}-host"}])
            row["ExtendedProperties"] = json.dumps({"IncidentId": "1", "Note": tag})
            row["AlertName"] = "Shared alert name"  # joins across tenants would match on it
        if table == "SecurityIncident":
            row["Title"] = "Shared alert name"
        rows.append(row)
    return rows


def populate(path: Path, limits: QueryLimits | None = None) -> LogStore:
    store = LogStore(path, limits=limits)
    batch: dict[str, list[dict[str, Any]]] = {}
    for table in TABLE_NAMES:
        batch[table] = [
            *tenant_rows(table, OURS, "contosorow", 2),
            # The other tenant's id in upper case: scoping compares without regard to case.
            *tenant_rows(table, THEIRS.upper(), MARK, 3),
        ]
    store.append_batch(batch)
    return store


def leaked(value: object) -> bool:
    text = json.dumps(value, default=str).lower()
    return MARK in text or THEIRS in text


def _answer(result: QueryResult) -> dict[str, Any]:
    return {"columns": result.columns, "rows": result.rows}


def _scoped(store: LogStore, kql: str, tenant_ids: list[str]) -> object:
    """The answer of a scoped query, or the message of its error."""
    try:
        return _answer(store.query(kql, tenant_ids=tenant_ids))
    except QueryError as exc:
        return str(exc)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return populate(tmp_path_factory.mktemp("scope") / "logs.duckdb")


#: Queries that reach the other tenant's rows when unscoped (checked), each a different way of
#: naming or reading the tables.
LEAK_PROBES = [
    "SecurityIncident",
    "['SecurityAlert']",
    "AlertEvidence | project-away TenantId",
    "AlertInfo | project Title, TenantId",
    "SecurityAlert | where TenantId != ''",
    "union SecurityIncident, SecurityAlert, AlertEvidence, AlertInfo",
    "union withsource=T Security* | project T, TenantId",
    "union Alert*",
    "SecurityAlert | union SecurityIncident",
    "let T = SecurityAlert; T | project SystemAlertId, TenantId",
    "let T = SecurityAlert | where true; union T, AlertInfo",
    "let f = () { AlertInfo }; f()",
    "let f = (t: string) { AlertInfo | where Title != t }; f('x')",
    "let M = materialize(SecurityAlert); M | union M",
    "SecurityIncident | join kind=inner (SecurityAlert) on $left.Title == $right.AlertName"
    " | project TenantId, TenantId1",
    "SecurityIncident | join kind=fullouter (SecurityAlert) on $left.Title == $right.AlertName",
    "datatable(AlertName: string) ['Shared alert name'] | join kind=inner (SecurityAlert) on"
    " AlertName",
    "SecurityAlert | lookup (AlertInfo | project SystemAlertId = AlertId, Other = Title)"
    " on SystemAlertId",
    "SecurityAlert | lookup kind=leftouter (SecurityIncident | project AlertName = Title,"
    " T2 = TenantId) on AlertName",
    "print n = toscalar(SecurityAlert | summarize make_list(SystemAlertId))",
    "print n = toscalar(SecurityAlert | summarize make_set(TenantId))",
    "SecurityIncident | take 1 | extend s = toscalar(AlertInfo | summarize make_set(Title))",
    "SecurityAlert | where SystemAlertId in ((AlertInfo | project AlertId))"
    " | project SystemAlertId",
    "AlertInfo | where AlertId in ((SecurityAlert | project SystemAlertId))",
    "SecurityAlert | where SystemAlertId !in ((SecurityIncident | project IncidentName))",
    "SecurityAlert | summarize make_set(SystemAlertId), make_set(TenantId)",
    "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber, TenantId",
    "SecurityIncident | summarize count() by TenantId",
    "SecurityIncident | distinct TenantId",
    "SecurityIncident | mv-expand AlertIds | project AlertIds, TenantId",
    "SecurityIncident | extend o = Owner | project o",
    "AlertEvidence | evaluate bag_unpack(AdditionalFields) | project-away TenantId",
    "AlertEvidence | evaluate bag_unpack(AdditionalFields) | getschema | project ColumnName",
    "SecurityAlert | extend E = parse_json(Entities) | mv-expand E | project tostring(E.HostName)",
    "SecurityAlert | project _ItemId, _ResourceId",
    "SecurityAlert | project _ItemId | join kind=inner (AlertInfo | project _ItemId) on _ItemId",
    "SecurityAlert | extend t = ingestion_time() | project SystemAlertId, t",
    "SecurityAlert | make-series n = count() default = 0 on TimeGenerated"
    " from datetime(2024-05-01) to datetime(2024-05-02) step 1h by TenantId",
    "SecurityAlert | top 100 by SystemAlertId",
    "SecurityAlert | sort by SystemAlertId desc | take 100",
    f"search '{MARK}*'",
    f"search in (Alert*) '*{MARK}*'",
    f"SecurityAlert | search '{MARK}*'",
    f"SecurityAlert | where * has '{MARK}' or TenantId != ''",
    "range x from 1 to 1 step 1 | extend ids = toscalar(SecurityAlert"
    " | summarize make_list(SystemAlertId))",
]


@pytest.mark.parametrize("kql", LEAK_PROBES)
def test_a_scoped_query_never_returns_another_tenants_rows(store: LogStore, kql: str) -> None:
    assert leaked(_answer(store.query(kql))), "the probe must reach the other tenant unscoped"
    answer = _scoped(store, kql, [OURS])
    assert isinstance(answer, dict), answer  # every probe runs scoped, too
    assert not leaked(answer), answer
    assert not leaked(_scoped(store, kql, []))


@pytest.mark.parametrize(
    "kql",
    [
        f"find '{MARK}'",
        "find in (SecurityAlert) where TenantId != ''",
        ".show tables",
        ".show tables | where TableName has 'Alert'",
        "SecurityAlert | getschema",
    ],
)
def test_find_and_the_catalog_never_show_another_tenant(store: LogStore, kql: str) -> None:
    """`find` is not translated by duckdb-kql (a clear error); should it become available it
    reads the same filtered views (as `search`, a probe above, does). `.show tables` is
    answered from the allow-list and `getschema` from the packaged schemas: neither holds
    rows."""
    assert not leaked(_scoped(store, kql, [OURS]))


def test_scoped_counts_hold_exactly_the_tenants_rows(store: LogStore) -> None:
    for table in TABLE_NAMES:
        assert store.query(f"{table} | count").rows == ((5,),)
        assert store.query(f"{table} | count", tenant_ids=[OURS]).rows == ((2,),)
        assert store.query(f"{table} | count", tenant_ids=[THEIRS]).rows == ((3,),)
        assert store.query(f"{table} | count", tenant_ids=[OURS, THEIRS]).rows == ((5,),)
        assert store.query(f"{table} | count", tenant_ids=[]).rows == ((0,),)


def test_a_filter_on_the_other_tenant_finds_nothing(store: LogStore) -> None:
    kql = f"SecurityAlert | where TenantId =~ '{THEIRS}' | count"
    assert store.query(kql).rows == ((3,),)
    assert store.query(kql, tenant_ids=[OURS]).rows == ((0,),)
    sneaky = f"print n = toscalar(SecurityAlert | where TenantId =~ '{THEIRS}' | count)"
    assert store.query(sneaky, tenant_ids=[OURS]).rows == ((0,),)


def test_tenant_ids_match_without_regard_to_case_or_surrounding_space(store: LogStore) -> None:
    for given in (THEIRS, THEIRS.upper(), f"  {THEIRS} "):
        assert store.query("AlertInfo | count", tenant_ids=[given]).rows == ((3,),)
    assert store.query("AlertInfo | count", tenant_ids=[OURS, OURS.upper()]).rows == ((2,),)


def test_a_tenant_id_cannot_inject_sql(store: LogStore) -> None:
    for hostile in (
        "x') OR true OR ('",
        "x' OR '1'='1",
        f"{OURS}'); DROP TABLE xdrsync_store.SecurityAlert_rows; --",
        "x\\' OR 1=1 --",
    ):
        assert store.query("SecurityAlert | count", tenant_ids=[hostile]).rows == ((0,),)
    assert store.query("SecurityAlert | count").rows == ((5,),)


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "x" * 200])
def test_malformed_tenant_ids_are_rejected(store: LogStore, bad: str) -> None:
    with pytest.raises(ValueError, match="not a tenant id"):
        store.query("SecurityAlert | count", tenant_ids=[bad])


def test_one_string_is_not_a_list_of_tenant_ids(store: LogStore) -> None:
    with pytest.raises(TypeError):
        store.query("SecurityAlert | count", tenant_ids=OURS)


def test_no_scope_means_every_tenant_and_leaves_no_views_behind(store: LogStore) -> None:
    """The views live on one query's connection: a scoped query never narrows the next."""
    assert store.query("SecurityAlert | count", tenant_ids=[OURS]).rows == ((2,),)
    assert store.query("SecurityAlert | count").rows == ((5,),)
    assert store.query("SecurityAlert | count", tenant_ids=None).rows == ((5,),)
    assert hidden_views(()) == []  # an unscoped query without hidden columns adds nothing


def test_scoped_hidden_columns_are_those_of_the_tenants_rows(store: LogStore) -> None:
    result = store.query(
        "SecurityAlert | project _ItemId, _ResourceId, TenantId | sort by _ItemId asc",
        tenant_ids=[OURS],
    )
    assert result.rows == (
        ("contosorow-item-0", "contosorow-resource", OURS),
        ("contosorow-item-1", "contosorow-resource", OURS),
    )
    # ...and stay hidden from a scoped query that does not name them.
    assert "_ItemId" not in store.query("SecurityAlert", tenant_ids=[OURS]).columns


def test_bag_unpack_shows_only_the_keys_of_the_tenants_bags(store: LogStore) -> None:
    kql = "AlertEvidence | evaluate bag_unpack(AdditionalFields) | getschema | project ColumnName"
    assert f"{MARK}key" in store.query(kql).column("ColumnName")
    names = store.query(kql, tenant_ids=[OURS]).column("ColumnName")
    assert "contosorowkey" in names and f"{MARK}key" not in names


def test_a_table_without_a_tenant_column_refuses_scoped_queries(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scope, "TENANT_COLUMN", "NoSuchColumn")
    with pytest.raises(QueryRefusedError, match="has no tenant column"):
        store.query("print x = 1", tenant_ids=[OURS])
    assert store.query("SecurityAlert | count").rows == ((5,),)  # unscoped is unaffected


def test_tenant_filter_refuses_a_schema_without_a_tenant_column() -> None:
    schema = TableSchema("Other", (Column("Name", "string"),), "")
    assert scope.tenant_column(schema) is None
    with pytest.raises(QueryRefusedError):
        scope.tenant_filter(schema, ("a",))
    assert scope.tenant_filter(table_schema("SecurityAlert"), ()) == "false"
    condition = scope.tenant_filter(table_schema("SecurityAlert"), ("a'b",))
    assert condition == """lower("TenantId") IN ('a''b')"""


def test_scoping_and_the_row_cap_work_together(tmp_path: Path) -> None:
    store = populate(tmp_path / "logs.duckdb", QueryLimits(max_rows=2))
    everyone = store.query("SecurityAlert | project SystemAlertId")
    assert len(everyone.rows) == 2 and everyone.truncated
    ours = store.query("SecurityAlert | project SystemAlertId", tenant_ids=[OURS])
    assert len(ours.rows) == 2 and not ours.truncated
    one = store.query("SecurityAlert | project SystemAlertId", tenant_ids=[OURS], max_rows=1)
    assert len(one.rows) == 1 and one.truncated
    assert not leaked(_answer(ours)) and not leaked(_answer(one))


# -- the tenant a row carries -------------------------------------------------------------------

#: Read with OURS' credentials, but claiming THEIRS (a hostile or misbehaving answer).
CLAIMING_THEIRS = {
    "id": "42",
    "tenantId": THEIRS,
    "displayName": "Ransomware on FIN-SRV-01",
    "severity": "high",
    "status": "active",
    "createdDateTime": "2024-05-01T10:00:00Z",
    "lastUpdateDateTime": "2024-05-01T11:00:00Z",
    "alerts": [
        {
            "id": "da1",
            "tenantId": THEIRS,
            "incidentId": "42",
            "title": "an alert of ours",
            "severity": "high",
            "status": "new",
            "createdDateTime": "2024-05-01T10:00:00Z",
            "lastUpdateDateTime": "2024-05-01T11:00:00Z",
        }
    ],
}


def test_a_record_claiming_another_tenant_stays_in_the_tenant_it_was_read_from(
    tmp_path: Path,
) -> None:
    """Scoping filters on `TenantId`, so the rows carry the configured tenant whose app read
    the record, not the `tenantId` the record claims: a record read for one tenant that names
    another does not land in the other's hunting (nor leave its own)."""
    from xdrsync.models import Incident
    from xdrsync.tables.sentinel import alert_info_row, security_alert_row, security_incident_row

    incident = Incident.from_graph(CLAIMING_THEIRS)
    alert = incident.alerts[0]
    rows = {
        "SecurityIncident": [
            security_incident_row(incident, time_generated=WHEN, workspace_tenant_id=OURS)
        ],
        "SecurityAlert": [security_alert_row(alert, time_generated=WHEN, tenant_id=OURS)],
        "AlertInfo": [alert_info_row(alert, time_generated=WHEN, tenant_id=OURS)],
    }
    assert {row["TenantId"] for table in rows.values() for row in table} == {OURS}
    store = LogStore(tmp_path / "logs.duckdb")
    store.append_batch(rows)
    kql = "union SecurityIncident, SecurityAlert, AlertInfo | count"
    assert store.query(kql, tenant_ids=[THEIRS]).rows == ((0,),)
    assert store.query(kql, tenant_ids=[OURS]).rows == ((3,),)


@pytest.mark.parametrize(
    ("configured", "claimed", "carried"),
    [
        (OURS.upper(), THEIRS, OURS),  # a GUID configured in capitals: as Graph writes them
        (OURS, None, OURS),
        ("contoso.onmicrosoft.com", THEIRS, THEIRS),  # no GUID configured: the record's own
        ("contoso.onmicrosoft.com", None, "contoso.onmicrosoft.com"),
        (None, THEIRS, THEIRS),
    ],
)
def test_a_row_carries_the_configured_tenant_when_it_is_a_guid(
    configured: str | None, claimed: str | None, carried: str
) -> None:
    assert scope.row_tenant(configured, claimed) == carried
