"""Hostile KQL through the console (`hunting.run_query`, `POST /api/v1/query`) and through the
CLI's path (`LogStore.query`, `xdrsync query`): every attempt to read files, attach or list
databases, change settings, write, reach another database or cluster is refused with a clear
one-line error; generators are bounded, a slow query stops at its time limit, a large result
is cut at the row cap. A user scoped to tenants never sees another tenant's rows.

Real secret files sit next to the workspace and in the working directory; their content must
never appear in any answer or message, and nothing may be written anywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from xdrsync.console.hunting import error_json, run_query
from xdrsync.tables.errors import QueryError, QueryLimitError, QueryRefusedError
from xdrsync.tables.guard import MAX_KQL_CHARS
from xdrsync.tables.limits import QueryLimits
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.schemas import TABLE_NAMES, Column, table_schema

SECRET = "TOPSECRET-93b1d7"
OURS = "0a0a0a0a-1111-4111-8111-00000000000a"
THEIRS = "0b0b0b0b-2222-4222-8222-00000000000b"
#: In every value of the other tenant's rows.
MARK = "fabrikamonly7e3d"
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
#: A cross join of 10^10 rows: minutes of work, every bit of it interruptible.
CROSS_JOIN = (
    "range x from 1 to 100000 step 1 | extend k = 1"
    " | join kind=inner (range y from 1 to 100000 step 1 | extend k = 1) on k | count"
)
#: Needs far more than 64 MiB: a million distinct 800-byte strings in one set.
MEMORY_HOG = (
    'range x from 1 to 1000000 step 1 | extend s = strcat(tostring(x), strrep("abcdefgh", 100))'
    " | summarize dcount(s), make_set(s) | project n = 1"
)


# -- the workspace ------------------------------------------------------------------------------


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
    return {f"{tag}key": f"{tag}-{column.name}", "n": index}


def _rows(table: str, tenant_id: str, tag: str, count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        row = {c.name: _value(c, tag, i) for c in table_schema(table).columns}
        row.update(TenantId=tenant_id, _ItemId=f"{tag}-item-{i}", _Seq=i)
        for name in ("AlertId", "SystemAlertId"):
            if name in row:
                row[name] = f"{tag}-alert-{i}"
        if table == "SecurityAlert":
            row["AlertName"] = "Shared name"
            row["Entities"] = json.dumps([{"Type": "host", "HostName": f"{tag}-host"}])
        if table == "SecurityIncident":
            row["Title"] = "Shared name"
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of files holding SECRET: CSV, JSON, Parquet and another DuckDB database."""
    folder = tmp_path_factory.mktemp("secrets")
    (folder / "secret.csv").write_text(f"secret\n{SECRET}\n")
    (folder / "secret.json").write_text(json.dumps({"secret": SECRET}) + "\n")
    with duckdb.connect(str(folder / "other.duckdb")) as con:
        con.execute(f"CREATE TABLE SecurityAlert AS SELECT '{SECRET}' AS secret")
        con.execute(
            f"COPY (SELECT '{SECRET}' AS secret) TO '{folder / 'secret.parquet'}' (FORMAT parquet)"
        )
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    """Two tenants, a 1 s time limit, 64 MiB, at most 50 rows."""
    folder = tmp_path_factory.mktemp("workspace")
    (folder / "secret.csv").write_text(f"secret\n{SECRET}\n")  # next to the log file, too
    store = LogStore(
        folder / "logs.duckdb",
        limits=QueryLimits(timeout_seconds=1, memory_limit_mb=64, threads=2, max_rows=50),
    )
    store.append_batch(
        {t: [*_rows(t, OURS, "contosorow", 2), *_rows(t, THEIRS, MARK, 3)] for t in TABLE_NAMES}
    )
    return store


# -- the two ways in ----------------------------------------------------------------------------

Answer = dict[str, Any]


def via_api(
    store: LogStore, kql: str, tenant_ids: Sequence[str] | None = None, max_rows: int | None = None
) -> Answer:
    """`POST /api/v1/query`'s body: the answer, or the error body."""
    try:
        return run_query(store, kql, tenant_ids=tenant_ids, max_rows=max_rows)
    except Exception as exc:
        body = error_json(exc)
        if body is None:  # not a query's failure: the API would answer 500
            raise
        return body


def via_cli(
    store: LogStore, kql: str, tenant_ids: Sequence[str] | None = None, max_rows: int | None = None
) -> Answer:
    """`xdrsync query`'s path: `LogStore.query`; an error becomes its class and message."""
    try:
        result = store.query(kql, tenant_ids=tenant_ids, max_rows=max_rows)
    except QueryError as exc:
        return {"error": {"class": type(exc).__name__, "message": str(exc)}}
    return {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}


Runner = Callable[..., Answer]


@pytest.fixture(params=["api", "cli"])
def run(request: pytest.FixtureRequest) -> Runner:
    return via_api if request.param == "api" else via_cli


def _text(answer: Answer) -> str:
    return json.dumps(answer, default=str)


def _error(answer: Answer) -> dict[str, Any]:
    assert "error" in answer, f"expected an error, got {_text(answer)[:300]}"
    error: dict[str, Any] = answer["error"]
    message = error["message"]
    assert isinstance(message, str) and message.strip() and "\n" not in message
    assert SECRET not in _text(answer)
    return error


# -- hostile queries ----------------------------------------------------------------------------

#: (query, what the API's code is). `{d}` is the secrets folder; relative paths are tried from
#: inside it (the working directory).
HOSTILE: list[tuple[str, str]] = [
    # reading files: externaldata, DuckDB's readers, bare and bracketed paths, globs
    ("externaldata(secret: string) ['{d}/secret.csv']", "invalid"),
    ("externaldata(secret: string) [h@'secret.csv'] with (format='csv')", "invalid"),
    ("externaldata(secret: string) ['file:///{d}/secret.csv']", "invalid"),
    ("read_csv('{d}/secret.csv')", "invalid"),
    ("read_csv('secret.csv')", "invalid"),
    ("print x = read_csv('secret.csv')", "invalid"),
    ("print x = read_text('{d}/secret.csv')", "invalid"),
    ("print x = read_blob('secret.csv')", "invalid"),
    ("SecurityAlert | extend x = read_json_auto('{d}/secret.json')", "invalid"),
    ("SecurityAlert | extend s = glob('{d}/*')", "invalid"),
    ("['{d}/secret.csv']", "refused"),
    ("['secret.csv']", "refused"),
    ('["secret.csv"]', "refused"),
    ("['{d}/secret.parquet'] | take 1", "refused"),
    ("['{d}/*.csv']", "refused"),
    ("['read_csv(\\'secret.csv\\')']", "refused"),
    ("union SecurityAlert, ['secret.csv']", "refused"),
    (
        "SecurityAlert | join kind=inner (['secret.csv']) on $left.AlertName == $right.secret",
        "refused",
    ),
    ("SecurityAlert | extend s = toscalar(['secret.csv'] | take 1)", "refused"),
    ("SecurityAlert | where AlertName in ((['secret.csv'] | project secret))", "refused"),
    ("let T = ['secret.csv']; T", "refused"),
    ("let f = () { ['secret.csv'] }; f()", "invalid"),
    ("let T = materialize(['secret.csv']); T", "refused"),
    # attaching and listing databases
    ("ATTACH '{d}/other.duckdb' AS other", "invalid"),
    ("SecurityAlert; ATTACH '{d}/other.duckdb'", "invalid"),
    (".attach database other from '{d}/other.duckdb'", "refused"),
    (".create database other persist ('{d}/other.duckdb')", "refused"),
    (".show databases", "refused"),
    (".SHOW DATABASES", "refused"),
    ("// comment first\n.show databases", "refused"),
    (".show database schema", "refused"),
    (".show table SecurityAlert extents", "refused"),
    (".show functions", "refused"),
    (".show version", "refused"),
    # settings
    ("SET enable_external_access = true", "invalid"),
    ("set enable_external_access = true; SecurityAlert", "invalid"),
    ("set lock_configuration = false; SecurityAlert | take 1", "invalid"),
    ("PRAGMA threads = 64", "invalid"),
    ("pragma database_list", "invalid"),
    ("print x = current_setting('memory_limit')", "invalid"),
    ("print x = getenv('HOME')", "invalid"),
    # writing
    (".set T <| print x = 1", "refused"),
    (".append SecurityAlert <| SecurityAlert", "refused"),
    (".set-or-append SecurityAlert <| SecurityAlert", "refused"),
    (".set-or-replace SecurityAlert <| print x = 1", "refused"),
    (".drop table SecurityAlert", "refused"),
    (".drop table SecurityAlert ifexists", "refused"),
    (".create table T (x: string)", "refused"),
    (".create-or-alter function f() { SecurityAlert }", "refused"),
    (".alter table SecurityAlert (x: string)", "refused"),
    (".delete table SecurityAlert records <| SecurityAlert", "refused"),
    (".ingest inline into table SecurityAlert <| a,b", "refused"),
    ('.export to csv (h@"{d}/out.csv") <| SecurityAlert', "refused"),
    # other databases and clusters
    ("database('other').SecurityAlert", "refused"),
    ("database('xdrsync_store').SecurityAlert_rows", "refused"),
    ("database('system').duckdb_settings", "refused"),
    ("union database('temp').*", "refused"),
    ("SecurityAlert | union database('other').SecurityAlert", "refused"),
    ("SecurityAlert | join (database('other').SecurityAlert) on AlertName", "refused"),
    ("cluster('help').database('Samples').StormEvents", "invalid"),
    ("cluster('{d}/other.duckdb').database('other').SecurityAlert", "invalid"),
    ("['xdrsync_store.SecurityAlert_rows']", "refused"),
    ("['main.SecurityAlert']", "refused"),
    ("['information_schema.tables']", "refused"),
    ("['duckdb_settings()']", "refused"),
    # plugins that run code or reach out
    ("SecurityAlert | evaluate python(typeof(*), 'result = df')", "invalid"),
    ("evaluate sql_request('Server=x', 'select 1')", "invalid"),
    ("SecurityAlert | invoke f()", "invalid"),
    # unbounded generators (refused before running, for their size)
    ("range x from 1 to 10000000000 step 1", "too_large"),
    ("range x from 1 to 100000000 step 1 | count", "too_large"),
    ("range t from datetime(1900-01-01) to now() step 1s | count", "too_large"),
    ("range x from 1 to toscalar(SecurityAlert | count) step 1", "refused"),  # not constant
    ('print s = strrep("a", 100000000)', "too_large"),
    ("SecurityAlert | extend s = strrep(AlertName, ConfidenceScore)", "too_large"),
    ('print n = strlen(strrep(strrep(strrep("abcdefgh", 1024), 1024), 256))', "too_large"),
]


def _kql(template: str, folder: Path) -> str:
    return template.replace("{d}", str(folder))


@pytest.mark.parametrize(("template", "code"), HOSTILE)
def test_hostile_queries_are_refused_with_a_clear_error(
    store: LogStore,
    secrets: Path,
    monkeypatch: pytest.MonkeyPatch,
    run: Runner,
    template: str,
    code: str,
) -> None:
    monkeypatch.chdir(secrets)  # a relative path would find the secret here
    kql = _kql(template, secrets)
    for tenant_ids in (None, [OURS]):
        error = _error(run(store, kql, tenant_ids))
        if run is via_api:
            assert error["code"] == code, error
        else:
            expected = {
                "refused": QueryRefusedError,
                "too_large": QueryRefusedError,
                "invalid": QueryError,
            }[code]
            assert error["class"] in {c.__name__ for c in expected.__mro__}, error


def test_nothing_was_written_and_the_store_still_answers(
    store: LogStore, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(secrets)
    before = sorted(p.name for p in secrets.iterdir())
    workspace = sorted(p.name for p in store.path.parent.iterdir())
    for template, _ in HOSTILE:
        via_api(store, _kql(template, secrets))
        via_cli(store, _kql(template, secrets))
    assert sorted(p.name for p in secrets.iterdir()) == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == workspace
    assert store.query("SecurityAlert | count").rows == ((5,),)
    for table in TABLE_NAMES:
        answer = run_query(store, f"{table} | count", tenant_ids=None)
        assert answer["rows"] == [[5]]


def test_an_overlong_query_is_refused_for_its_size(store: LogStore) -> None:
    kql = "SecurityAlert | where AlertName != '" + "x" * MAX_KQL_CHARS + "'"
    assert _error(via_api(store, kql))["code"] == "too_large"
    assert _error(via_cli(store, kql))["class"] == "QueryRefusedError"


def test_refusals_point_at_the_place_when_the_message_names_one(store: LogStore) -> None:
    error = _error(via_api(store, "SecurityAlert\n| where NoSuchColumn == 1"))
    assert error["code"] == "invalid"
    assert (error["line"], error["column"]) == (2, 9)  # 1-based: the message says "at 2:8"
    assert "at 2:8" in error["message"]
    error = _error(via_api(store, ".show databases"))
    assert error["line"] is None and error["column"] is None


# -- limits -------------------------------------------------------------------------------------


def test_a_slow_query_stops_at_the_time_limit(store: LogStore, run: Runner) -> None:
    started = time.monotonic()
    error = _error(run(store, CROSS_JOIN))
    elapsed = time.monotonic() - started
    assert elapsed < 20  # the join alone would run for minutes
    assert "1 s time limit" in error["message"]
    if run is via_api:
        assert error["code"] == "timeout"
    else:
        assert error["class"] == QueryLimitError.__name__
    assert store.query("SecurityAlert | count").rows == ((5,),)  # the store is fine after


def test_a_slow_scoped_query_stops_at_the_time_limit_too(store: LogStore) -> None:
    kql = (
        "SecurityAlert | extend k = 1 | join kind=inner (range y from 1 to 100000 step 1"
        " | extend k = 1) on k | join kind=inner (range z from 1 to 100000 step 1"
        " | extend k = 1) on k | count"
    )
    assert _error(via_api(store, kql, [OURS]))["code"] == "timeout"


def test_a_query_over_its_memory_limit_is_too_large(store: LogStore) -> None:
    roomy = LogStore(store.path, limits=QueryLimits(timeout_seconds=120, memory_limit_mb=64))
    error = _error(via_api(roomy, MEMORY_HOG))
    assert error["code"] == "too_large"
    assert "64 MiB memory limit" in error["message"]


def test_the_row_cap_truncates(store: LogStore, run: Runner) -> None:
    answer = run(store, "SecurityAlert | project SystemAlertId", None, 3)
    assert len(answer["rows"]) == 3 and answer["truncated"] is True
    exact = run(store, "SecurityAlert | project SystemAlertId | take 3", None, 3)
    assert len(exact["rows"]) == 3 and exact["truncated"] is False
    if run is via_api:
        assert answer["rowCount"] == 3


def test_a_large_generator_within_its_bound_is_cut_at_the_row_cap(
    store: LogStore, run: Runner
) -> None:
    answer = run(store, "range x from 1 to 1000000 step 1")
    assert len(answer["rows"]) == 50 and answer["truncated"] is True


# -- tenant scoping -----------------------------------------------------------------------------

SCOPE_PROBES = [
    "SecurityAlert",
    "AlertEvidence | project-away TenantId",
    "union SecurityIncident, SecurityAlert, AlertEvidence, AlertInfo",
    "union Security*",
    "union withsource=Table Alert* | project Table, TenantId, AlertId",
    "SecurityAlert | union AlertInfo",
    "SecurityIncident | join kind=inner (SecurityAlert) on $left.Title == $right.AlertName",
    "SecurityIncident | join kind=fullouter (SecurityAlert) on $left.Title == $right.AlertName",
    "SecurityAlert | lookup (AlertInfo | project SystemAlertId = AlertId, T = Title)"
    " on SystemAlertId",
    "let T = SecurityAlert; T | project SystemAlertId, TenantId",
    "let T = SecurityAlert | where true; union T, AlertInfo",
    "let f = () { AlertInfo }; f()",
    "let M = materialize(AlertEvidence); M | union M",
    "print ids = toscalar(SecurityAlert | summarize make_list(SystemAlertId))",
    "SecurityIncident | take 1 | extend t = toscalar(AlertInfo | summarize make_set(TenantId))",
    "SecurityAlert | where SystemAlertId in ((AlertInfo | project AlertId))",
    "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber, TenantId",
    "SecurityIncident | summarize count() by TenantId",
    "SecurityIncident | extend o = Owner | project o",
    "AlertEvidence | evaluate bag_unpack(AdditionalFields) | getschema | project ColumnName",
    "SecurityAlert | extend E = parse_json(Entities) | mv-expand E | project tostring(E.HostName)",
    "SecurityAlert | project _ItemId, _ResourceId, TenantId",
    "SecurityAlert | extend t = ingestion_time() | project SystemAlertId, t",
    "SecurityAlert | summarize count() by bin(TimeGenerated, 1h), TenantId | render timechart",
]


def _leaked(answer: Answer) -> bool:
    text = _text(answer).lower()
    return MARK in text or THEIRS in text


@pytest.mark.parametrize("kql", SCOPE_PROBES)
def test_a_scoped_user_never_sees_another_tenants_rows(
    store: LogStore, run: Runner, kql: str
) -> None:
    unscoped = run(store, kql)
    assert "error" not in unscoped, unscoped
    assert _leaked(unscoped), "the probe must reach the other tenant when unscoped"
    scoped = run(store, kql, [OURS])
    assert "error" not in scoped, scoped
    assert not _leaked(scoped), _text(scoped)[:500]
    assert "contosorow" in _text(scoped) or OURS in _text(scoped)  # the tenant's own rows


@pytest.mark.parametrize(
    "kql",
    [
        f"search '{MARK}'",
        f"SecurityAlert | search '{MARK}'",
        f"search in (SecurityAlert, AlertInfo) '{MARK}'",
        f"find '{MARK}'",
        f"find in (SecurityAlert) where AlertName != '{MARK}'",
        f"SecurityAlert | where * has '{MARK}'",
        ".show tables",
        ".show tables | project TableName",
        "SecurityAlert | getschema",
        f"SecurityAlert | where TenantId =~ '{THEIRS}'",
        f"print n = toscalar(SecurityAlert | where TenantId =~ '{THEIRS}' | count)",
    ],
)
def test_search_find_filters_and_the_catalog_never_show_another_tenant(
    store: LogStore, run: Runner, kql: str
) -> None:
    """`search` and `find` are not translated by duckdb-kql (an error, naming nothing of the
    data); the rest answer from the tenant's rows or from no rows at all."""
    answer = run(store, kql, [OURS])
    assert not _leaked(answer), _text(answer)[:500]
    if "error" in answer:
        _error(answer)


def test_show_tables_is_the_same_list_for_everyone(store: LogStore) -> None:
    everyone = run_query(store, ".show tables", tenant_ids=None)
    scoped = run_query(store, ".show tables", tenant_ids=[OURS])
    assert scoped["rows"] == everyone["rows"]
    assert [r[0] for r in scoped["rows"]] == list(TABLE_NAMES)
    assert str(store.path.parent) not in _text(scoped) and "xdrsync_store" not in _text(scoped)


def test_a_user_scoped_to_no_tenant_sees_no_rows(store: LogStore) -> None:
    for table in TABLE_NAMES:
        assert run_query(store, f"{table} | count", tenant_ids=[])["rows"] == [[0]]


def test_scoped_and_unscoped_counts(store: LogStore) -> None:
    kql = "union SecurityIncident, SecurityAlert, AlertEvidence, AlertInfo | count"
    assert run_query(store, kql, tenant_ids=None)["rows"] == [[20]]
    assert run_query(store, kql, tenant_ids=[OURS])["rows"] == [[8]]
    assert run_query(store, kql, tenant_ids=[THEIRS.upper()])["rows"] == [[12]]
