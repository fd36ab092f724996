"""The DuckDB log store: what goes in comes back typed as in Log Analytics; errors read well."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdrsync.errors import RetriableError, XdrSyncError
from xdrsync.tables import logstore
from xdrsync.tables.errors import QueryError, QueryLimitError, StoreBusyError
from xdrsync.tables.limits import QueryLimits
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.schemas import TABLE_NAMES, table_schema

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return LogStore(tmp_path / "ws" / "logs.duckdb")


def test_a_fresh_workspace_answers_queries_with_empty_tables(store: LogStore) -> None:
    assert not store.path.exists()
    for table in TABLE_NAMES:
        assert store.query(f"{table} | count").rows == ((0,),)
    assert store.path.exists()
    assert store.max_seq() is None  # nothing stored: the publisher starts from the hub's cursor


def test_kql_sees_exactly_the_published_columns_and_bookkeeping_stays_hidden(
    store: LogStore,
) -> None:
    store.append("SecurityIncident", [{"IncidentNumber": 7, "TimeGenerated": NOW, "_Seq": 41}])
    store.append("SecurityIncident", [{"IncidentNumber": 8, "TimeGenerated": NOW, "_Seq": 42}])
    for table in TABLE_NAMES:
        assert store.query(f"{table} | take 1").columns == table_schema(table).column_names
    assert store.max_seq("SecurityIncident") == 42
    assert store.max_seq("SecurityAlert") is None
    store.append("AlertEvidence", [{"AlertId": "a", "TimeGenerated": NOW, "_Seq": 43}])
    assert store.max_seq("SecurityIncident", "SecurityAlert") == 42
    assert store.max_seq() == 43  # every table: where the publisher resumes


def test_the_json_documents_are_stored_with_zstd_and_read_back_whole(store: LogStore) -> None:
    # An alert's entities and each evidence item are most of the log file: zstd keeps the
    # file a quarter of the size DuckDB's own choice made it, at less CPU per append.
    entities = [{"$id": str(n), "Type": "host", "HostName": f"WS-{n:04}"} for n in range(20)]
    rows = [
        {
            "TimeGenerated": NOW,
            "SystemAlertId": f"alert-{n}",
            "AlertSeverity": "High",
            "Entities": json.dumps([*entities, {"$id": "21", "Type": "ip", "Address": str(n)}]),
            "ExtendedProperties": json.dumps({"n": n, "Product": "Microsoft Defender"}),
        }
        for n in range(3000)
    ]
    store.append("SecurityAlert", rows)
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        used = dict(
            con.execute(
                "SELECT column_name, string_agg(DISTINCT compression, ',') "
                "FROM pragma_storage_info('xdrsync_store.\"SecurityAlert_rows\"') "
                "WHERE compression NOT IN ('Constant', 'Uncompressed') GROUP BY column_name"
            ).fetchall()
        )
    finally:
        con.close()
    assert used["Entities"] == used["ExtendedProperties"] == "ZSTD"
    assert "ZSTD" not in used["AlertSeverity"]  # the other columns as DuckDB chooses
    found = store.query('SecurityAlert | where SystemAlertId == "alert-2999" | project Entities')
    assert json.loads(found.rows[0][0])[-1] == {"$id": "21", "Type": "ip", "Address": "2999"}


def test_values_come_back_with_their_kql_types(store: LogStore) -> None:
    cest = timezone(timedelta(hours=2))
    store.append(
        "SecurityIncident",
        [
            {
                "TimeGenerated": datetime(2024, 5, 1, 14, 30, tzinfo=cest),  # 12:30 UTC
                "IncidentNumber": 2972395,
                "Title": "Multi-stage incident",
                "Owner": {"assignedTo": "KaiC@contoso.com", "objectId": None},
                "AlertIds": ["a1", "a2"],
                "Labels": [{"labelName": "Demo", "labelType": "User"}],
                "AdditionalData": {"alertsCount": 2, "tactics": ["Execution"]},
                "CreatedTime": "2021-08-13T08:43:35.5533333Z",
            }
        ],
    )
    row = store.query("SecurityIncident").as_dicts()[0]
    assert row["TimeGenerated"] == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert row["TimeGenerated"].tzinfo is UTC
    assert row["CreatedTime"] == datetime(2021, 8, 13, 8, 43, 35, 553333, tzinfo=UTC)
    assert row["IncidentNumber"] == 2972395
    assert row["Owner"] == {"assignedTo": "KaiC@contoso.com", "objectId": None}
    assert row["AlertIds"] == ["a1", "a2"]
    assert row["AdditionalData"]["tactics"] == ["Execution"]
    assert row["ClosedTime"] is None
    result = store.query("SecurityIncident | project TimeGenerated, IncidentNumber, Owner")
    assert result.types == ("datetime", "int", "dynamic")


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.datetimes(
            min_value=datetime(1900, 1, 1),
            max_value=datetime(2200, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))])
            | st.none(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_instant_comes_back_as_the_same_utc_instant(
    tmp_path: Path, instants: list[datetime]
) -> None:
    store = LogStore(tmp_path / "instants.duckdb")  # one file shared by the examples
    start = next(_round_trips) * 100
    instants = [t for t in instants for _ in (1, 2)]  # each object twice, as a change's rows
    store.append(
        "SecurityIncident",
        [{"IncidentNumber": start + i, "CreatedTime": t} for i, t in enumerate(instants)],
    )
    rows = store.query(
        f"SecurityIncident | where IncidentNumber >= {start} and IncidentNumber < {start + 100}"
        " | order by IncidentNumber asc | project CreatedTime"
    ).rows
    naive_is_utc = [t if t.tzinfo is not None else t.replace(tzinfo=UTC) for t in instants]
    assert [row[0] for row in rows] == [t.astimezone(UTC) for t in naive_is_utc]


def test_kql_datetime_text_is_kusto_formatted(store: LogStore) -> None:
    store.append("SecurityIncident", [{"TimeGenerated": NOW}])
    result = store.query("SecurityIncident | project t = tostring(TimeGenerated)")
    assert result.rows == (("2024-05-01T12:00:00.0000000Z",),)


def test_absent_strings_read_as_empty_strings_as_in_log_analytics(store: LogStore) -> None:
    store.append("SecurityIncident", [{"IncidentNumber": 1, "Classification": None}])
    assert store.query('SecurityIncident | where Classification == "" | count').rows == ((1,),)
    assert store.query("SecurityIncident | where isempty(Classification) | count").rows == ((1,),)
    assert store.query("SecurityIncident | where isnull(Title) | count").rows == ((0,),)


def test_a_row_with_an_unknown_column_is_refused_and_nothing_is_written(store: LogStore) -> None:
    with pytest.raises(KeyError, match="IncidentNumbr"):
        store.append("SecurityIncident", [{"IncidentNumber": 1}, {"IncidentNumbr": 2}])
    assert store.query("SecurityIncident | count").rows == ((0,),)


def test_an_int_column_refuses_a_value_it_cannot_hold(store: LogStore) -> None:
    with pytest.raises(ValueError, match="IncidentNumber"):
        store.append("SecurityIncident", [{"IncidentNumber": 2**31}])


def test_unknown_table_is_refused_on_append(store: LogStore) -> None:
    with pytest.raises(KeyError, match="DeviceEvents"):
        store.append("DeviceEvents", [{"x": 1}])


def test_appending_nothing_does_not_create_the_file(store: LogStore) -> None:
    store.append("SecurityAlert", [])
    assert not store.path.exists()


@pytest.mark.parametrize(
    ("kql", "expected"),
    [
        ("SecurityIncident | where", "KQL error: "),
        ("Nope | take 1", "query failed: unknown table 'Nope'; tables: SecurityIncident"),
        ("SecurityIncident | where Nope == 1", "query failed: unknown column 'Nope'"),
        ("SecurityIncident | invoke foo()", "KQL error: "),
        (".set-or-replace SecurityIncident <| print x = 1", "KQL error: unsupported"),
        (".drop table SecurityIncident", "KQL error: unsupported"),
    ],
)
def test_query_errors_are_one_clear_line(store: LogStore, kql: str, expected: str) -> None:
    store.append("SecurityIncident", [{"IncidentNumber": 1}])
    with pytest.raises(QueryError) as caught:
        store.query(kql)
    message = str(caught.value)
    assert isinstance(caught.value, XdrSyncError)
    assert message.startswith(expected)
    assert "\n" not in message
    assert "LINE " not in message  # no generated SQL in front of a KQL user
    assert store.query("SecurityIncident | count").rows == ((1,),)  # writes never happen


def test_an_older_store_gains_columns_a_newer_schema_adds(tmp_path: Path) -> None:
    path = tmp_path / "logs.duckdb"
    LogStore(path).append("SecurityIncident", [{"IncidentNumber": 1}])
    LogStore(path).sql(
        'ALTER TABLE xdrsync_store."SecurityIncident_rows" DROP COLUMN "Tasks"', write=True
    )
    upgraded = LogStore(path)
    upgraded.append("SecurityIncident", [{"IncidentNumber": 2, "Tasks": [{"title": "t"}]}])
    result = upgraded.query(
        "SecurityIncident | project IncidentNumber, Tasks | sort by IncidentNumber asc"
    )
    assert result.rows == ((1, None), (2, [{"title": "t"}]))


def test_internal_sql_is_read_only_unless_asked(store: LogStore) -> None:
    store.append("SecurityAlert", [{"SystemAlertId": "a"}])
    assert store.sql("SELECT count(*) FROM SecurityAlert") == [(1,)]
    with pytest.raises(Exception, match="read-only"):
        store.sql("DELETE FROM xdrsync_store.SecurityAlert_rows")


_HOLD_WRITE_LOCK = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


@contextmanager
def _lock_held_elsewhere(path: Path, seconds: float) -> Iterator[None]:
    """Another process opens the file read-write (as `xdrsync run` does) for `seconds`."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD_WRITE_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        try:
            yield
        finally:
            proc.kill()


def test_a_reader_waits_for_a_short_write_lock(store: LogStore) -> None:
    store.append("SecurityAlert", [{"SystemAlertId": "a"}])
    with _lock_held_elsewhere(store.path, 0.8):
        started = time.monotonic()
        assert store.query("SecurityAlert | count").rows == ((1,),)
        assert time.monotonic() - started >= 0.3


def test_a_lock_held_too_long_is_a_retriable_busy_error(tmp_path: Path) -> None:
    path = tmp_path / "logs.duckdb"
    LogStore(path).initialize()
    with _lock_held_elsewhere(path, 5):
        impatient = LogStore(path, read_timeout=0.3, write_timeout=0.3)
        with pytest.raises(StoreBusyError, match="locked by another xdrsync process") as caught:
            impatient.query("SecurityAlert | count")
        assert isinstance(caught.value, RetriableError)
        with pytest.raises(StoreBusyError):
            impatient.append("SecurityAlert", [{"SystemAlertId": "a"}])


# -- queries side by side in one process (the console's threads) -------------------------------

#: 10^10 rows: runs until its time limit stops it.
CROSS_JOIN = (
    "range x from 1 to 100000 step 1 | extend k = 1"
    " | join kind=inner (range y from 1 to 100000 step 1 | extend k = 1) on k | count"
)
#: Needs far more than 64 MiB: a million distinct 800-byte strings in one set.
MEMORY_HOG = (
    'range x from 1 to 1000000 step 1 | extend s = strcat(tostring(x), strrep("abcdefgh", 100))'
    " | summarize dcount(s), make_set(s) | project n = 1"
)
TENANT_A = "0a0a0a0a-1111-4111-8111-00000000000a"
TENANT_B = "0b0b0b0b-2222-4222-8222-00000000000b"


@contextmanager
def _running(work: Callable[[], object]) -> Iterator[list[BaseException]]:
    """`work` on a thread of its own, started and running, for the `with` block; the block
    gets the list of what it raised, filled once the thread is done (at the block's end)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)  # it is running
    try:
        yield raised
    finally:
        thread.join()


def test_a_slow_query_leaves_other_users_queries_running_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one analyst's query runs to its time limit, the others' queries answer at once,
    each over its own tenant's rows (or every tenant's, or with the hidden columns it names),
    in UTC whatever the machine's zone, and none of them is "busy"."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # DuckDB's default zone: +05:30
    store = LogStore(
        tmp_path / "logs.duckdb", read_timeout=2, limits=QueryLimits(timeout_seconds=6)
    )
    store.append("SecurityIncident", [{"TenantId": TENANT_A, "IncidentNumber": n} for n in (1, 2)])
    store.append(
        "SecurityIncident", [{"TenantId": TENANT_B, "IncidentNumber": n} for n in (3, 4, 5)]
    )
    asked = [
        ("SecurityIncident | count", [TENANT_B], ((3,),)),
        ("SecurityIncident | count", [TENANT_A], ((2,),)),
        ("SecurityIncident | count", None, ((5,),)),
        (
            "SecurityIncident | where isnotempty(_ItemId) | summarize max(IncidentNumber)",
            [TENANT_A],
            ((2,),),
        ),
        (
            'print t = datetime(2024-05-01 10:00) | project h = hourofday(t), d = format_datetime(t, "HH:mm")',
            None,
            ((10, "10:00"),),
        ),
    ] * 4
    with _running(lambda: store.query(CROSS_JOIN, tenant_ids=[TENANT_A])) as raised:
        started = time.monotonic()
        with ThreadPoolExecutor(len(asked)) as pool:
            answers = list(pool.map(lambda a: store.query(a[0], tenant_ids=a[1]).rows, asked))
        elapsed = time.monotonic() - started
    assert answers == [expected for _, _, expected in asked]
    assert elapsed < 5, elapsed  # before the slow query's 6 s were up
    assert len(raised) == 1 and isinstance(raised[0], QueryLimitError), raised


def test_a_query_with_other_limits_waits_its_turn_and_runs_under_its_own(tmp_path: Path) -> None:
    """Queries that run side by side share one database, and its limits: a query with other
    limits waits for those running to finish, and then has its own."""
    path = tmp_path / "logs.duckdb"
    roomy = LogStore(path, limits=QueryLimits(timeout_seconds=2, memory_limit_mb=1024))
    tight = LogStore(path, limits=QueryLimits(timeout_seconds=30, memory_limit_mb=64))
    roomy.initialize()
    with (
        _running(lambda: roomy.query(CROSS_JOIN)) as raised,
        pytest.raises(QueryLimitError, match="64 MiB memory limit"),
    ):
        tight.query(MEMORY_HOG)
    assert len(raised) == 1 and "time limit" in str(raised[0]), raised


def test_queries_that_waited_behind_other_limits_then_run_side_by_side(tmp_path: Path) -> None:
    """Two queries of the usual limits that came while one of other limits ran (a
    `make-series`, on one thread) run side by side once it is done: neither of them waits for
    the other, as a waiting query's own count once made it do."""
    from xdrsync.tables.access import open_store

    path = tmp_path / "logs.duckdb"
    LogStore(path).initialize()
    spans: dict[str, tuple[float, float]] = {}

    def read(name: str, threads: int, start: float, hold: float) -> None:
        time.sleep(start)
        with open_store(path, read_only=True, timeout=30, config={"threads": threads}):
            began = time.monotonic()
            time.sleep(hold)
            spans[name] = (began, time.monotonic())

    readers = [
        threading.Thread(target=read, args=args)
        for args in (("other", 1, 0.0, 1.0), ("first", 2, 0.2, 1.5), ("second", 2, 0.3, 1.5))
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    (first_in, first_out), (second_in, second_out) = spans["first"], spans["second"]
    assert first_in < second_out and second_in < first_out, spans  # they overlapped
    assert min(first_in, second_in) >= spans["other"][1], spans  # after the other limits


def test_an_append_waits_for_the_queries_running_and_goes_before_those_that_come_after(
    tmp_path: Path,
) -> None:
    """The sync's appends are not starved by a busy console: a query that comes while an
    append waits for the queries running sees the appended rows."""
    store = LogStore(tmp_path / "logs.duckdb", limits=QueryLimits(timeout_seconds=2))
    store.initialize()
    row = {"TenantId": TENANT_A, "IncidentNumber": 1}
    with (
        _running(lambda: store.query(CROSS_JOIN)),
        _running(lambda: store.append("SecurityIncident", [row])) as appending,
    ):
        assert store.query("SecurityIncident | count").rows == ((1,),)
    assert appending == []


def _stored(text: str) -> str:
    """What survives storage: lone UTF-16 surrogates cannot be UTF-8 and become "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


_round_trips = iter(range(1, 10**6))


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=st.text(max_size=200), labels=json_values)
def test_any_text_and_json_round_trip(tmp_path: Path, title: str, labels: Any) -> None:
    store = LogStore(tmp_path / "round-trip.duckdb")  # one file shared by the examples
    number = next(_round_trips)
    store.append("SecurityIncident", [{"IncidentNumber": number, "Title": title, "Labels": labels}])
    row = store.query(
        f"SecurityIncident | where IncidentNumber == {number} | project Title, Labels"
    ).rows[0]
    assert row[0] == _stored(title)
    assert row[1] == json.loads(_stored(json.dumps(labels, ensure_ascii=False)))


def test_a_batch_over_several_tables_is_all_or_nothing(store: LogStore) -> None:
    with pytest.raises(KeyError, match="Nope"):
        store.append_batch(
            {
                "SecurityIncident": [{"IncidentNumber": 1}],
                "SecurityAlert": [{"SystemAlertId": "a"}, {"Nope": 1}],
            }
        )
    store.append_batch(
        {"SecurityIncident": [{"IncidentNumber": 1}], "SecurityAlert": [{"SystemAlertId": "a"}]}
    )
    assert store.query("union SecurityIncident, SecurityAlert | count").rows == ((2,),)


def test_a_change_with_a_value_no_column_holds_is_left_out_whole(store: LogStore) -> None:
    refused = store.append_changes(
        [
            (1, [("SecurityIncident", {"IncidentNumber": 1})]),
            (
                2,
                [("SecurityAlert", {"SystemAlertId": "a"}), ("AlertEvidence", {"FileSize": 2**70})],
            ),
            (3, [("SecurityAlert", {"SystemAlertId": "b"}), ("AlertEvidence", {"FileSize": 1.5})]),
            (4, [("SecurityAlert", {"SystemAlertId": "c"})]),
        ]
    )
    assert sorted(refused) == [2, 3]
    assert "expected an integer, got float" in refused[3]
    got = store.query("SecurityAlert | order by SystemAlertId asc | project SystemAlertId")
    assert [r[0] for r in got.rows] == ["c"]  # neither "a" nor "b": a change goes whole or not
    assert store.query("SecurityIncident | count").rows == ((1,),)
    with pytest.raises(KeyError, match="Nope"):  # a mapping bug is no record's fault: it fails
        store.append_changes([(5, [("SecurityAlert", {"Nope": 1})])])


def test_rows_whose_source_fails_midway_append_nothing_and_leave_no_staged_file(
    store: LogStore,
) -> None:
    store.append("SecurityIncident", [{"IncidentNumber": 1}])

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        yield "SecurityIncident", {"IncidentNumber": 2}
        yield "SecurityAlert", {"SystemAlertId": "a"}
        raise RuntimeError("the mapping failed")

    with pytest.raises(RuntimeError, match="mapping"):
        store.append_rows(rows())
    assert store.query("union SecurityIncident, SecurityAlert | count").rows == ((1,),)
    assert not [p for p in store.path.parent.iterdir() if p.suffix == ".ndjson"]


def test_a_row_larger_than_duckdbs_default_json_object_limit_is_appended(store: LogStore) -> None:
    """An alert with a huge evidence list must not stall the fan-out (DuckDB's read_json
    refuses objects above 16 MB unless told, and its memory limit must leave room)."""
    entities = [
        {"Type": "file", "Name": f"payload-{n:06d}.bin", "Pad": "x" * 200} for n in range(100_000)
    ]
    store.append(
        "SecurityAlert",
        [
            {
                "SystemAlertId": "huge",
                "TimeGenerated": NOW,
                "Entities": json.dumps(entities),
                "_Seq": 1,
            }
        ],
    )
    result = store.query(
        "SecurityAlert | project SystemAlertId, n = array_length(parse_json(Entities))"
    )
    assert result.rows == (("huge", 100_000),)


def test_a_file_whose_creation_a_crash_cut_short_gets_its_tables_from_the_writer(
    tmp_path: Path,
) -> None:
    import duckdb

    path = tmp_path / "logs.duckdb"
    duckdb.connect(str(path)).close()  # the process died before the tables were made
    store = LogStore(path)
    assert store.max_seq("SecurityIncident") is None  # the publisher's first question
    store.append("SecurityIncident", [{"IncidentNumber": 1, "_Seq": 7}])
    assert store.max_seq("SecurityIncident") == 7
    assert store.query("SecurityIncident | count").rows == ((1,),)


def test_the_next_writer_removes_what_a_killed_writer_left_and_nothing_of_a_live_one(
    store: LogStore,
) -> None:
    # A writer that dies between staging its rows and loading them (os._exit: no cleanup).
    child = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from xdrsync.tables.logstore import LogStore
        store = LogStore(Path({str(store.path)!r}))
        def rows():
            yield "SecurityIncident", {{"Title": "x"}}
            os._exit(0)
        store.append_rows(rows())
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    folder = store.path.parent
    # Staged in the private workspace folder, never in a shared /tmp (it is incident data).
    left = [p.name for p in folder.iterdir() if p.suffix == ".ndjson"]
    assert len(left) == 1
    live = folder / f"{store.path.name}.append-{os.getppid()}-abc.ndjson"  # a running process
    live.write_text("{}\n")
    store.append("SecurityIncident", [{"IncidentNumber": 1}])
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".ndjson") == [live.name]


def _row_groups(store: LogStore, table: str) -> int:
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        info = f"pragma_storage_info('xdrsync_store.\"{table}_rows\"')"
        return int(con.execute(f"SELECT count(DISTINCT row_group_id) FROM {info}").fetchall()[0][0])
    finally:
        con.close()


def test_a_backlogs_appends_leave_the_row_groups_before_them_and_later_appends_merge_them(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Merging at every append rewrote the table's last row group each time, a cost that grew
    # with the table: large appends skip it, and the small appends after them catch up.
    monkeypatch.setattr(logstore, "_MERGE_BELOW_ROWS", 100)

    def append(first: int, count: int) -> None:
        rows = [{"IncidentNumber": n, "TimeGenerated": NOW} for n in range(first, first + count)]
        store.append("SecurityIncident", rows)

    append(0, 100)
    for batch in range(1, 6):
        append(batch * 100, 100)
    assert _row_groups(store, "SecurityIncident") == 6  # one per append, none rewritten
    for n in range(600, 604):
        append(n, 1)
    assert _row_groups(store, "SecurityIncident") <= 2
    found = store.query("SecurityIncident | summarize count(), dcount(IncidentNumber)")
    assert found.rows == ((604, 604),)


def test_small_appends_keep_merging_row_groups(store: LogStore) -> None:
    for n in range(30):
        store.append("SecurityIncident", [{"IncidentNumber": n, "TimeGenerated": NOW}])
    assert _row_groups(store, "SecurityIncident") <= 2


def test_a_full_disk_fails_the_append_and_leaves_no_staged_file(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workspace's disk fills while an append stages its rows: the append fails (the
    runner retries it later) and removes what it staged, though closing the file fails too
    (its buffer cannot be written either). Each retry of a long-running writer, whose pid
    lives on, would otherwise leave one more file, where the disk is full already."""
    import errno
    import io

    store.append("SecurityIncident", [{"IncidentNumber": 1}])

    class Full(io.FileIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode, **_: io.BufferedWriter(Full(fd, "wb")))
    changes = (
        (n, [("SecurityIncident", {"IncidentNumber": n, "Title": "x" * 1000})])
        for n in range(2, 40)
    )
    with pytest.raises(OSError, match="No space left"):
        store.append_changes(changes)
    monkeypatch.undo()
    assert not [p for p in store.path.parent.iterdir() if p.suffix == ".ndjson"]
    assert store.query("SecurityIncident | count").rows == ((1,),)


PROGRESS_BAR = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from xdrsync.tables.access import open_store
    from xdrsync.tables.logstore import LogStore
    from xdrsync.tables.sandbox import LOCK_STATEMENTS, query_config

    store = LogStore(Path({path!r}))
    store.initialize()
    setting = "SELECT current_setting('enable_progress_bar')"
    with open_store(store.path, read_only=False, timeout=10) as con:
        print("writer", con.execute(setting).fetchall()[0][0])
    config = query_config(store.limits)
    with open_store(
        store.path, read_only=True, timeout=10, config=config, setup=LOCK_STATEMENTS
    ) as con:
        print("reader", con.execute(setting).fetchall()[0][0])
    """
)


def test_no_connection_prints_duckdbs_progress_bar(store: LogStore) -> None:
    """DuckDB prints a progress bar on standard output for any statement that runs over two
    seconds, into a pipe too: a writer's long load (a backlog's batch, its checkpoint) wrote
    bars into the output of `sync --once`, and into the worker process's standard output, a
    pipe its parent reads only once it has exited (full after 64 KiB of bars, the worker
    would hang inside a load, holding the file). Asked in a process of its own: DuckDB leaves
    the bar off under pytest."""
    child = PROGRESS_BAR.format(path=str(store.path))
    done = subprocess.run(
        [sys.executable, "-c", child], check=True, timeout=60, capture_output=True, text=True
    )
    assert done.stdout.split() == ["writer", "False", "reader", "False"]


def test_a_file_left_by_a_dead_writer_that_had_this_writers_pid_is_removed(
    store: LogStore,
) -> None:
    """In a container the service has the same pid at every start (often 1), so the file a
    writer killed mid-append left (a backlog's batch: megabytes) names a pid that is alive
    again: this process's own. It is no file this process is staging, so it goes; one this
    process is staging stays."""
    folder = store.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    left = folder / f"{store.path.name}.append-{os.getpid()}-old.ndjson"
    left.write_text('{"Title": "x"}\n')
    staging = LogStore(store.path)

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        yield "SecurityIncident", {"IncidentNumber": 1}
        # Another store of this process stages meanwhile: its first file sweeps the folder.
        LogStore(store.path).append("SecurityIncident", [{"IncidentNumber": 2}])
        yield "SecurityIncident", {"IncidentNumber": 3}

    staging.append_rows(rows())
    assert not left.exists()
    assert not [p for p in folder.iterdir() if p.suffix == ".ndjson"]
    numbers = store.query("SecurityIncident | order by IncidentNumber asc | project IncidentNumber")
    assert [r[0] for r in numbers.rows] == [1, 2, 3]


DISK_FULL = textwrap.dedent(
    """
    import os, resource, signal
    from pathlib import Path
    from xdrsync.tables.logstore import LogStore

    folder = Path({folder!r})
    store = LogStore(folder / "logs.duckdb")
    store.append("SecurityIncident", [{{"IncidentNumber": 1, "_Seq": 1}}])
    load = LogStore._load

    def full(self, staged, refused=None):
        # The disk fills once the rows are staged: no file may grow any more.
        for stage in staged.values():
            stage.file.flush()
        largest = max(os.path.getsize(p) for p in folder.iterdir())
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails instead (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (largest + 1, resource.RLIM_INFINITY))
        try:
            return load(self, staged, refused)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)

    LogStore._load = full
    try:
        store.append_changes(
            (n, [("SecurityIncident", {{"IncidentNumber": n, "_Seq": n}})])
            for n in range(2, 20000)
        )
    except Exception as failure:
        print(f"{{type(failure).__name__}}: {{failure}}")
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as on Linux")
def test_a_disk_full_at_commit_is_the_error_the_operator_reads(tmp_path: Path) -> None:
    """The disk fills while DuckDB commits a batch. What fails the delivery, and so what
    `destinations status` shows as its last error, is the write DuckDB could not make, not
    the rollback that followed it (DuckDB had ended the transaction already); the batch is
    absent whole and the store goes on."""
    folder = tmp_path / "ws"
    folder.mkdir()
    child = DISK_FULL.format(folder=str(folder))
    done = subprocess.run(
        [sys.executable, "-c", child], check=True, timeout=120, capture_output=True, text=True
    )
    assert "File too large" in done.stdout, done.stdout
    assert "rollback" not in done.stdout
    store = LogStore(folder / "logs.duckdb")
    assert store.max_seq() == 1
    store.append("SecurityIncident", [{"IncidentNumber": 2, "_Seq": 2}])
    assert store.max_seq() == 2
    assert not [p for p in folder.iterdir() if p.suffix == ".ndjson"]


def test_a_writer_removes_what_its_worker_left_when_killed_without_restarting(
    store: LogStore,
) -> None:
    """The service's own store writes, a worker process takes a backlog and is killed in the
    middle of an append (its staged file, a batch's rows, stays), and the service's store
    writes again: it removes that file, though it is not its first append; a service that
    runs for months would keep every such file until its next restart."""
    store.append("SecurityIncident", [{"IncidentNumber": 1}])  # the service's first append
    child = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from xdrsync.tables.logstore import LogStore
        store = LogStore(Path({str(store.path)!r}))
        def rows():
            yield "SecurityIncident", {{"Title": "x"}}
            os._exit(0)
        store.append_rows(rows())
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    folder = store.path.parent
    assert len([p for p in folder.iterdir() if p.suffix == ".ndjson"]) == 1
    store.append("SecurityIncident", [{"IncidentNumber": 2}])
    assert not [p for p in folder.iterdir() if p.suffix == ".ndjson"]


def test_changes_left_out_for_good_count_in_the_stores_position_until_removed(
    store: LogStore,
) -> None:
    """The position a writer resumes from (`max_seq`) includes the changes left out, whether
    the store could not hold them or the caller rejected them, even in a batch of nothing
    else; a replay's `remove_from_seq` takes them back."""
    row = {"IncidentNumber": 1, "_Seq": 1}
    assert store.append_changes([(1, [("SecurityIncident", row)])]) == {}
    huge = [("AlertEvidence", {"FileSize": 2**70, "_Seq": 2})]
    assert list(store.append_changes([(2, huge)], {3: "no rows"})) == [2]
    assert store.max_seq() == 3
    assert store.refused_after(1) == {2: store.refused_after(0)[2], 3: "no rows"}
    assert store.query("union SecurityIncident, AlertEvidence | count").rows == ((1,),)
    store.remove_from_seq(2)
    assert store.max_seq() == 1 and store.refused_after(0) == {}
