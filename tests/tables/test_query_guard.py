"""Hostile KQL: a query reads the workspace tables and nothing else, and stops at its limits.

Three layers are tested separately and together: the allow-list on the parsed query
(`guard`), the locked, file-system-less DuckDB connection under it (`sandbox`), and the time,
memory and row limits (`limits`, `querying`). Real secret files sit next to the workspace;
their content must never appear in any answer or message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from xdrsync.errors import XdrSyncError
from xdrsync.tables.access import open_store
from xdrsync.tables.errors import QueryError, QueryLimitError, QueryRefusedError
from xdrsync.tables.generators import MAX_RANGE_ROWS, MAX_STRREP_BYTES
from xdrsync.tables.limits import QueryLimits, time_limit
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.output import format_result
from xdrsync.tables.querying import translate
from xdrsync.tables.sandbox import LOCK_STATEMENTS, check_sql, query_config
from xdrsync.tables.schemas import TABLE_NAMES

SECRET = "TOPSECRET-4f1c9e"
TABLES = ("SecurityIncident", "SecurityAlert", "AlertEvidence", "AlertInfo")
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
#: 2 GiB in one string, from three multipliers each within strrep's cap of 1024.
NESTED_STRREP = 'print n = strlen(strrep(strrep(strrep("abcdefgh", 1024), 1024), 256))'


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of files holding SECRET: CSV, JSON, Parquet and another DuckDB database."""
    folder = tmp_path_factory.mktemp("secrets")
    (folder / "secret.csv").write_text(f"secret\n{SECRET}\n")
    (folder / "secret.json").write_text(json.dumps({"secret": SECRET}) + "\n")
    with duckdb.connect(str(folder / "other.duckdb")) as con:
        con.execute(f"CREATE TABLE SecurityIncident AS SELECT '{SECRET}' AS secret")
        con.execute(f"CREATE TABLE secrets AS SELECT '{SECRET}' AS secret")
        con.execute(
            f"COPY (SELECT '{SECRET}' AS secret) TO '{folder / 'secret.parquet'}' (FORMAT parquet)"
        )
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    folder = tmp_path_factory.mktemp("workspace")
    store = LogStore(
        folder / "logs.duckdb",
        limits=QueryLimits(timeout_seconds=1, memory_limit_mb=64, threads=2, max_rows=5),
    )
    store.append(
        "SecurityAlert",
        [{"SystemAlertId": f"a{i}", "AlertName": "Phish", "_Seq": i} for i in range(12)],
    )
    store.append("SecurityIncident", [{"IncidentNumber": 1, "Title": "t", "_Seq": 100}])
    return store


def hostile_queries(folder: Path) -> list[str]:
    csv, js, pq, db = (
        folder / "secret.csv",
        folder / "secret.json",
        folder / "secret.parquet",
        folder / "other.duckdb",
    )
    return [
        # bracketed paths, both quotes, every format DuckDB reads by extension, globs
        f"['{csv}']",
        f'["{csv}"]',
        f"['{js}']",
        f"['{pq}'] | take 1",
        f"['{folder}/*.csv']",
        f"['{folder}/**']",
        f"['{db}']",
        "['secret.csv']",
        # table names that look like SQL
        f"['read_csv(\\'{csv}\\')']",
        f"['read_parquet(\"{pq}\")']",
        "['duckdb_settings()']",
        "['information_schema.tables']",
        "['xdrsync_store.SecurityAlert_rows']",
        "['main.SecurityAlert'] | take 1",
        f"read_csv('{csv}')",
        f"print x = read_csv('{csv}')",
        f"print x = read_text('{csv}')",
        f"SecurityAlert | extend s = glob('{folder}/*')",
        # a path anywhere a table may stand
        f"union SecurityAlert, ['{csv}']",
        f"SecurityAlert | union ['{csv}']",
        f"union isfuzzy=true SecurityAlert, ['{csv}']",
        f"SecurityAlert | join kind=inner (['{csv}']) on $left.SystemAlertId == $right.secret",
        f"SecurityAlert | lookup (['{csv}'] | project SystemAlertId = secret) on SystemAlertId",
        f"SecurityAlert | where SystemAlertId in ((['{csv}'] | project secret))",
        f"SecurityAlert | extend s = toscalar(['{csv}'] | take 1)",
        f"let T = ['{csv}']; T",
        f"let T = SecurityAlert; let U = ['{csv}']; T | union U",
        f"let f = () {{ ['{csv}'] }}; f()",
        f"externaldata(secret: string) ['{csv}']",
        f"externaldata(secret: string) [h@'{csv}'] with (format='csv')",
        # other databases and clusters
        "database('other').SecurityIncident",
        "database('system').duckdb_settings",
        "database('xdrsync_store').SecurityAlert_rows",
        "cluster('help').database('Samples').StormEvents",
        f"cluster('{db}').database('other').secrets",
        "union database('temp').*",
        # control commands: catalog, paths, writes
        ".show databases",
        ".show databases entities",
        ".show version",
        ".show functions",
        ".show function f",
        ".show entity_groups",
        "// a comment first\n.show databases",
        f".create database other persist ('{db}')",
        f".attach database other from '{db}'",
        ".set-or-replace SecurityAlert <| print x = 1",
        ".drop table SecurityAlert",
        # things KQL has no words for, tried anyway
        "set enable_external_access = true; SecurityAlert",
        "SecurityAlert; ATTACH 'x.duckdb'",
        "SecurityAlert | evaluate python(typeof(*), 'result = df')",
        "find 'secret'",
        "search 'secret'",
    ]


def _one_line_refusal(store: LogStore, kql: str) -> str:
    with pytest.raises(QueryError) as caught:
        store.query(kql)
    message = str(caught.value)
    assert isinstance(caught.value, XdrSyncError)
    assert "\n" not in message and message.strip()
    assert SECRET not in message
    return message


def test_every_hostile_query_is_refused_and_no_secret_leaks(store: LogStore, secrets: Path) -> None:
    for kql in hostile_queries(secrets):
        _one_line_refusal(store, kql)
    # The store is untouched and still answers.
    assert store.query("SecurityAlert | count").rows == ((12,),)


@pytest.mark.parametrize(
    ("kql", "expected"),
    [
        ("['/etc/passwd']", "query failed: unknown table '/etc/passwd'; tables: SecurityIncident"),
        ("database('other').SecurityIncident", "query refused: 'other.SecurityIncident' names"),
        (".show databases", "KQL error: unsupported control command '.show databases'"),
        ("let T = ['/x.csv']; SecurityAlert", "query failed: unknown table '/x.csv'"),
    ],
)
def test_refusals_say_what_was_refused(store: LogStore, kql: str, expected: str) -> None:
    with pytest.raises(QueryRefusedError) as caught:
        store.query(kql)
    assert str(caught.value).startswith(expected)


def test_refusal_happens_before_any_sql_exists(
    store: LogStore, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb_kql

    def no_translation(*args: object, **kwargs: object) -> str:
        raise AssertionError("translated a query the allow-list should have refused")

    monkeypatch.setattr(duckdb_kql, "to_sql", no_translation)
    with pytest.raises(QueryRefusedError):
        store.query(f"SecurityAlert | union ['{secrets / 'secret.csv'}']")


def test_show_tables_lists_the_workspace_tables_only(store: LogStore) -> None:
    result = store.query(".show tables")
    assert result.columns == ("TableName", "DatabaseName", "Folder", "DocString")
    assert tuple(r[0] for r in result.rows) == TABLES[:4]  # max_rows is 5
    text = format_result(result, "json")
    assert str(store.path.parent) not in text and "xdrsync_store" not in text
    piped = store.query(".SHOW TABLES | where TableName startswith 'Alert' | count")
    assert piped.rows == ((2,),)


@pytest.mark.parametrize(
    "kql",
    [
        "SecurityAlert | count",
        "let T = SecurityAlert; T | summarize n = count() by AlertName",
        "let T = SecurityAlert | where AlertName == 'Phish'; union T, SecurityAlert | count",
        "union Security* | count",
        "SecurityAlert | where SystemAlertId in ((SecurityAlert | take 2 | project SystemAlertId))"
        " | count",
        "SecurityAlert | extend n = toscalar(SecurityIncident | count) | take 1",
        "range t from ago(7d) to now() step 1h | count",
        "range x from 1 to 10 step 1 | count",
        'print s = strrep("ab", 3)',
        "datatable(a: long) [1, 2] | count",
    ],
)
def test_ordinary_queries_still_run(store: LogStore, kql: str) -> None:
    assert store.query(kql).rows


def test_the_query_connection_is_sandboxed_even_for_raw_sql(store: LogStore, secrets: Path) -> None:
    """The layer under the allow-list: whatever SQL reached it, DuckDB itself refuses."""
    csv, db = secrets / "secret.csv", secrets / "other.duckdb"
    hostile = [
        f"SELECT * FROM '{csv}'",
        f"SELECT * FROM read_csv('{csv}')",
        f"SELECT * FROM read_json('{secrets / 'secret.json'}')",
        f"SELECT * FROM read_parquet('{secrets / 'secret.parquet'}')",
        f"SELECT * FROM read_text('{csv}')",
        f"SELECT * FROM glob('{secrets}/*')",
        f"ATTACH '{db}' AS other",
        f"COPY (SELECT 1) TO '{secrets / 'out.csv'}'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SET memory_limit = '64GiB'",
        "SET threads = 64",
        "PRAGMA threads = 64",
        "RESET memory_limit",
    ]
    limits = QueryLimits(memory_limit_mb=64, threads=2)
    with open_store(
        store.path, read_only=True, timeout=10, config=query_config(limits), setup=LOCK_STATEMENTS
    ) as con:
        for statement in hostile:
            with pytest.raises(duckdb.Error) as caught:
                con.execute(statement).fetchall()
            assert SECRET not in str(caught.value), statement
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ("
                "'enable_external_access', 'autoload_known_extensions', "
                "'autoinstall_known_extensions', 'lock_configuration', 'threads', "
                "'memory_limit', 'TimeZone')"
            ).fetchall()
        )
    assert settings["enable_external_access"] == "false"
    assert settings["autoload_known_extensions"] == "false"
    assert settings["autoinstall_known_extensions"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["threads"] == "2"
    assert settings["memory_limit"].startswith("64.0 MiB")
    assert settings["TimeZone"] == "UTC"
    assert not (secrets / "out.csv").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH 'x.duckdb'",
        "SELECT 1; SELECT 2",
        "SET threads = 8",
        "PRAGMA version",
        "",
        "COPY t TO 'x'",
    ],
)
def test_translated_sql_must_be_exactly_one_select(sql: str) -> None:
    with pytest.raises(QueryRefusedError):
        check_sql(sql)


@pytest.mark.parametrize("sql", ["SELECT 1; DROP TABLE SecurityIncident", "ATTACH 'x.duckdb'"])
def test_the_store_runs_only_one_select_whatever_the_translator_returned(
    store: LogStore, monkeypatch: pytest.MonkeyPatch, sql: str
) -> None:
    # The check sits where the SQL runs (`querying.run`), not in the translator.
    from xdrsync.tables import logstore
    from xdrsync.tables.querying import Translated
    from xdrsync.tables.rewritten import unchanged

    monkeypatch.setattr(
        logstore, "translate", lambda kql, tables: Translated(sql, {}, unchanged(kql))
    )
    with pytest.raises(QueryRefusedError, match="not one SELECT"):
        store.query(f"SecurityIncident | take 1 | project Title, '{sql}'")  # not kept before


def test_a_runaway_cross_join_stops_at_the_time_limit(store: LogStore) -> None:
    started = time.monotonic()
    with pytest.raises(QueryLimitError) as caught:
        store.query(CROSS_JOIN)
    elapsed = time.monotonic() - started
    print(f"1 s-limited cross join stopped after {elapsed:.2f} s")
    assert elapsed < 20  # the join alone would run for minutes
    assert str(caught.value) == (
        "query stopped: it ran longer than its 1 s time limit (query.timeout_seconds)"
    )
    assert store.query("SecurityAlert | count").rows == ((12,),)  # the store is fine after


def test_a_query_over_its_memory_limit_stops(store: LogStore) -> None:
    roomy = LogStore(store.path, limits=QueryLimits(timeout_seconds=120, memory_limit_mb=64))
    with pytest.raises(QueryLimitError) as caught:
        roomy.query(MEMORY_HOG)
    assert str(caught.value) == (
        "query stopped: it needed more than its 64 MiB memory limit (query.memory_limit_mb)"
    )


@pytest.mark.parametrize(
    "kql",
    [
        "range x from 1 to 100000000 step 1 | count",
        f"range x from 0 to {MAX_RANGE_ROWS} step 1 | count",
        "range t from datetime(1900-01-01) to now() step 1s | count",
        "range x from 1 to toscalar(SecurityAlert | count) step 1",
        "range x from 1 to 10 step 0",
        'print s = strrep("a", 100000000)',
        "SecurityAlert | extend s = strrep(AlertName, _Seq)",
    ],
)
def test_generators_duckdb_cannot_interrupt_are_bounded_before_running(
    store: LogStore, kql: str
) -> None:
    started = time.monotonic()
    with pytest.raises(QueryError):
        store.query(kql)
    assert time.monotonic() - started < 20  # refused up front, never run


@pytest.mark.parametrize("kql", [NESTED_STRREP, 'print s = strrep(strrep("abcdefgh", 1024), 9)'])
def test_a_strrep_of_literals_longer_than_its_bound_is_refused_before_any_sql_exists(
    kql: str,
) -> None:
    with pytest.raises(QueryRefusedError, match=r"strrep would make a string of [0-9,]+ bytes"):
        translate(kql, TABLE_NAMES)


def test_a_strrep_up_to_its_bound_answers(store: LogStore) -> None:
    exact = 'print n = strlen(strrep(strrep("abcdefgh", 8), 1024))'
    assert store.query(exact).rows == ((MAX_STRREP_BYTES,),)
    let = 'let s = strrep("ab", 3); print t = strrep(s, 2), u = strrep("é", 2), v = strrep("", 9)'
    assert store.query(let).rows == (("abababababab", "éé", ""),)
    doubled = store.query(
        "SecurityAlert | take 1 | project a = AlertName, s = strrep(AlertName, 2)"
    )
    ((name, twice),) = doubled.rows
    assert twice == name * 2


_STRREP_CHILD = textwrap.dedent(
    """
    import json, re, sys, time
    from pathlib import Path
    from xdrsync.tables.limits import QueryLimits
    from xdrsync.tables.logstore import LogStore
    store = LogStore(Path(sys.argv[1]) / "logs.duckdb",
                     limits=QueryLimits(timeout_seconds=1, memory_limit_mb=64, threads=1))
    store.initialize()
    started = time.monotonic()
    try:
        store.query(sys.argv[2])
        outcome = "answered"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    print(json.dumps({
        "outcome": outcome,
        "elapsed": time.monotonic() - started,
        # This process's own peak (`getrusage`'s is kept across exec from the pytest worker).
        "rss_mb": int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())[1])
        // 1024,
    }))
    """
)


@pytest.mark.parametrize(
    "kql",
    [
        NESTED_STRREP,
        # the same, out of sight of the text: a `let` name's value is known only as it runs
        'let s = strrep("abcdefgh", 1024); print n = strlen(strrep(strrep(s, 1024), 256))',
        # a column's: ~700 KB on each of 2,000 rows
        'range x from 1 to 2000 step 1 | extend s = strrep(strcat("abcdefgh", tostring(x)), 1024)'
        " | summarize max(strlen(strrep(s, 64)))",
    ],
)
def test_a_long_strrep_fails_at_once_within_the_time_and_memory_limits(
    tmp_path: Path, kql: str
) -> None:
    """However a `strrep` grows its string, past its bound the query fails at once with a
    clear error: never a value DuckDB can neither interrupt nor count against the memory
    limit (it was 9 s and 4 GiB under a 1 s / 64 MiB limit)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _STRREP_CHILD, str(tmp_path), kql],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(report)
    assert report["outcome"] in (
        f"QueryRefusedError: query refused: strrep would make a string of {2**31:,} bytes; "
        f"at most {MAX_STRREP_BYTES:,} are allowed",
        f"QueryLimitError: query stopped: strrep would make a string longer than "
        f"{MAX_STRREP_BYTES:,} bytes",
    ), report
    assert report["elapsed"] < 5, report
    assert report["rss_mb"] < 1024, report


def test_the_row_cap_truncates_and_says_so(store: LogStore) -> None:
    result = store.query("SecurityAlert | project SystemAlertId")
    assert len(result.rows) == 5 and result.truncated
    assert result.truncation_note is not None and "truncated" in result.truncation_note
    assert "truncated" in format_result(result, "table", color=False)
    assert len(json.loads(format_result(result, "json"))) == 5  # still valid JSON
    exact = store.query("SecurityAlert | take 5")
    assert len(exact.rows) == 5 and not exact.truncated
    assert "truncated" not in format_result(exact, "table", color=False)


_SLOW_QUERY = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from xdrsync.tables.limits import QueryLimits
    from xdrsync.tables.logstore import LogStore

    path, kql = Path(sys.argv[1]), sys.argv[2]
    store = LogStore(path, limits=QueryLimits(timeout_seconds=3))
    (path.parent / "query.started").touch()
    started = time.monotonic()
    try:
        store.query(kql)
        outcome = "finished"
    except Exception as exc:
        outcome = str(exc)
    print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started,
                      "ended": time.time()}))
    """
)


def test_the_writer_appends_while_a_slow_query_runs(tmp_path: Path) -> None:
    """Another process's runaway query delays an append by at most its limit, never fails it."""
    path = tmp_path / "logs.duckdb"
    writer = LogStore(path)
    writer.append("SecurityAlert", [{"SystemAlertId": "before", "_Seq": 1}])
    query = subprocess.Popen(
        [sys.executable, "-c", _SLOW_QUERY, str(path), CROSS_JOIN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "query.started").exists():
            assert time.monotonic() < deadline and query.poll() is None, "query never started"
            time.sleep(0.02)
        time.sleep(1.0)  # the query is running and holds its read lock
        started = time.monotonic()
        writer.append("SecurityAlert", [{"SystemAlertId": "during", "_Seq": 2}])
        waited, appended_at = time.monotonic() - started, time.time()
        out, err = query.communicate(timeout=60)
    finally:
        if query.poll() is None:
            query.kill()
            query.wait(timeout=30)
    report = json.loads(out.strip().splitlines()[-1])
    print(f"writer waited {waited:.2f} s behind a 3 s-limited query ({report['seconds']:.2f} s)")
    assert "time limit" in report["outcome"], err
    assert report["seconds"] < 20
    assert waited < 3 + 20  # at most the query's limit, measured generously
    assert appended_at >= report["ended"] - 0.5  # the writer did wait for the query's lock
    assert writer.query("SecurityAlert | count").rows == ((2,),)


def test_the_writer_waits_longer_than_any_query_may_run() -> None:
    assert LogStore(Path("x"), limits=QueryLimits(timeout_seconds=120))._write_timeout > 120
    assert LogStore(Path("x"))._write_timeout > QueryLimits().timeout_seconds


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDRSYNC_GUARD_TEST_SECRET": "not-a-real-secret"}
    return subprocess.run(
        [sys.executable, "-m", "xdrsync", "query", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_cli_prints_one_line_and_fails_for_refusals_and_limits(
    tmp_path: Path, secrets: Path
) -> None:
    try:  # `xdrsync query` imports the workspace; say so plainly if that is broken elsewhere
        import xdrsync.workspace  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the CLI cannot start in this tree: {exc}")
    workspace = tmp_path / "ws"
    LogStore(workspace / "logs.duckdb").append(
        "SecurityAlert", [{"SystemAlertId": f"a{i}", "_Seq": i} for i in range(4)]
    )
    config = tmp_path / "xdrsync.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [workspace]
            path = "{workspace}"

            [[tenants]]
            name = "contoso"
            tenant_id = "00000000-0000-0000-0000-000000000000"
            client_id = "11111111-1111-1111-1111-111111111111"
            client_secret = "env:XDRSYNC_GUARD_TEST_SECRET"

            [query]
            timeout_seconds = 1
            max_rows = 3
            """
        )
    )
    for kql in (f"['{secrets / 'secret.csv'}']", ".show databases", CROSS_JOIN):
        done = _cli(config, kql)
        assert done.returncode != 0, done.stdout
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert SECRET not in done.stdout + done.stderr
    assert "time limit" in done.stderr
    capped = _cli(config, "--format", "json", "SecurityAlert | project SystemAlertId")
    assert capped.returncode == 0, capped.stderr
    assert len(json.loads(capped.stdout)) == 3
    assert "truncated" in capped.stderr


class _Engine:
    """Stands in for a DuckDB connection busy in native code: only `interrupt` ends it."""

    def __init__(self) -> None:
        self.interrupted = threading.Event()

    def interrupt(self) -> None:
        self.interrupted.set()


def _busy_in_native_code(engine: _Engine) -> None:
    """Ctrl-C from another process while this thread waits in native code for the engine:
    SIGINT blocked here, as a thread inside DuckDB does not run Python's handler, so it
    lands on another thread and only the watchdog's wake-up can pass it on."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        engine.interrupted.wait(10)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # the handler runs now


def test_ctrl_c_interrupts_the_engine_while_the_main_thread_is_busy_in_it() -> None:
    # DuckDB looks for a pending signal only between its tasks: a long join on two threads
    # missed most Ctrl-Cs and ran on to its end or to the time limit.
    engine = _Engine()
    # Python's own handler, as in a command run from a shell (a test runner's worker process
    # may ignore SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), time_limit(engine, 60) as watchdog:  # type: ignore[arg-type]
            _busy_in_native_code(engine)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert engine.interrupted.is_set() and watchdog.signalled and not watchdog.fired


def test_the_time_limit_still_fires_and_leaves_ctrl_c_as_it_was() -> None:
    engine = _Engine()
    before = signal.getsignal(signal.SIGINT), signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before[1])
    with time_limit(engine, 0.2) as watchdog:  # type: ignore[arg-type]
        assert engine.interrupted.wait(10)
    assert watchdog.fired and not watchdog.signalled
    after = signal.getsignal(signal.SIGINT), signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(after[1])
    assert after == before


def test_a_connection_closed_while_the_watchdog_interrupts_it_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C can end the query, and the block its connection, between the watchdog's look at
    # whether the block is done and its next interrupt: that printed a traceback at Ctrl-C.
    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    con = duckdb.connect()
    with time_limit(con, 0.05):
        con.close()
        time.sleep(0.5)  # the watchdog fires on the closed connection
    assert raised == []


def test_probes_and_the_query_share_one_time_limit(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A query whose `bag_unpack`s read their keys from the data first: each read (slowed
    # here to 0.7 s) is well under the 1 s limit, but the whole query is not, and the limit
    # is the query's (each probe had a limit of its own, so a query could run (probes + 1)
    # times its limit).
    from xdrsync.tables import querying

    read_keys = querying._bag_keys

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.7)
        return read_keys(*args, **kwargs)

    monkeypatch.setattr(querying, "_bag_keys", slow)
    two_probes = (
        "SecurityAlert | project SystemAlertId, P = parse_json('{\"a\": 1}')"
        " | evaluate bag_unpack(P) | extend Q = parse_json('{\"b\": 2}') | evaluate bag_unpack(Q)"
    )
    with pytest.raises(QueryLimitError, match="longer than its 1 s time limit"):
        store.query(two_probes)
    monkeypatch.setattr(querying, "_bag_keys", read_keys)
    roomy = LogStore(store.path, limits=QueryLimits(timeout_seconds=120, memory_limit_mb=64))
    assert roomy.query(two_probes + " | take 1").columns == ("SystemAlertId", "a", "b")
