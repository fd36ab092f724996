"""The console's hunting answers: JSON-safe typed results, chart hints read from `render` (by
tokens, so a `| render` in a string or a comment is no render), downloads, error bodies, and
the saved example queries, which all run on a populated workspace."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from xdrsync.console.hunting import (
    error_json,
    examples,
    find_render,
    run_query,
    to_csv,
    to_json,
)
from xdrsync.tables.errors import QueryError, StoreBusyError
from xdrsync.tables.limits import QueryLimits
from xdrsync.tables.logstore import LogStore

TENANT = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"  # graph_samples' tenant


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    """The Sentinel workspace the KQL tests use (tests/tables/sentinel_workspace.py)."""
    tables_tests = str(Path(__file__).resolve().parents[1] / "tables")
    if tables_tests not in sys.path:
        sys.path.insert(0, tables_tests)
    from sentinel_workspace import seeded_store

    return seeded_store(tmp_path_factory.mktemp("seeded") / "logs.duckdb")


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    store = LogStore(tmp_path_factory.mktemp("empty") / "logs.duckdb", limits=QueryLimits())
    store.initialize()
    return store


def run(store: LogStore, kql: str, **kwargs: Any) -> dict[str, Any]:
    answer = run_query(store, kql, tenant_ids=kwargs.pop("tenant_ids", None), **kwargs)
    json.dumps(answer, allow_nan=False)  # strict JSON, as the API sends it
    return answer


# -- the answer ---------------------------------------------------------------------------------


def test_the_answer_has_typed_columns_rows_and_timing(seeded: LogStore) -> None:
    answer = run(seeded, "SecurityIncident | summarize n = count() by Severity | sort by n desc")
    assert set(answer) == {"columns", "rows", "rowCount", "truncated", "elapsedMs", "chart"}
    assert answer["columns"] == [
        {"name": "Severity", "type": "string"},
        {"name": "n", "type": "long"},
    ]
    assert answer["rowCount"] == len(answer["rows"]) > 0
    assert all(isinstance(row, list) and len(row) == 2 for row in answer["rows"])
    assert answer["truncated"] is False
    assert isinstance(answer["elapsedMs"], int) and answer["elapsedMs"] >= 0


def test_values_are_json_safe_and_printed_as_kql_prints_them(empty: LogStore) -> None:
    answer = run(
        empty,
        "print d = datetime(2024-05-01 10:00:00), t = 1d + 2h + 3s + 5ms, "
        "short = 90s, r = real(nan), pinf = real(+inf), ninf = real(-inf), "
        'dyn = dynamic({"a": [1, 2], "when": "x"}), b = true, n = long(null), neg = -2, '
        "s = 'text'",
    )
    types = {c["name"]: c["type"] for c in answer["columns"]}
    values = dict(zip(types, answer["rows"][0], strict=True))
    assert types["d"] == "datetime" and values["d"] == "2024-05-01T10:00:00.000000Z"
    assert types["t"] == "timespan" and values["t"] == "1.02:00:03.0050000"
    assert values["short"] == "00:01:30"
    assert (values["r"], values["pinf"], values["ninf"]) == ("NaN", "Infinity", "-Infinity")
    assert values["dyn"] == {"a": [1, 2], "when": "x"}
    assert values["b"] is True and values["n"] is None and values["neg"] == -2
    assert values["s"] == "text"


def test_datetimes_from_the_tables_are_utc_with_z(seeded: LogStore) -> None:
    answer = run(seeded, "SecurityIncident | project TimeGenerated, Owner | take 1")
    when, owner = answer["rows"][0]
    assert isinstance(when, str) and when.endswith("Z") and "+" not in when
    assert isinstance(owner, dict)


def test_max_rows_caps_and_says_so(seeded: LogStore) -> None:
    answer = run(seeded, "SecurityAlert | project SystemAlertId", max_rows=2)
    assert answer["rowCount"] == 2 and answer["truncated"] is True


def test_a_scoped_user_of_the_tenant_sees_its_rows_and_others_none(seeded: LogStore) -> None:
    everyone = run(seeded, "SecurityIncident | count")["rows"]
    assert run(seeded, "SecurityIncident | count", tenant_ids=[TENANT])["rows"] == everyone
    assert run(seeded, "SecurityIncident | count", tenant_ids=["other"])["rows"] == [[0]]


# -- charts -------------------------------------------------------------------------------------


def chart(store: LogStore, kql: str) -> dict[str, Any] | None:
    hint: dict[str, Any] | None = run(store, kql)["chart"]
    return hint


def test_render_timechart_names_the_time_axis_series_and_split(seeded: LogStore) -> None:
    hint = chart(
        seeded,
        "SecurityIncident | summarize Updates = count() by bin(TimeGenerated, 1h), Severity"
        " | render timechart",
    )
    assert hint == {
        "kind": "timechart",
        "x": "TimeGenerated",
        "series": ["Updates"],
        "splitBy": "Severity",
    }


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("piechart", {"kind": "piechart", "x": "Severity", "series": ["n"], "splitBy": None}),
        ("barchart", {"kind": "barchart", "x": "Severity", "series": ["n"], "splitBy": None}),
        ("columnchart", {"kind": "columnchart", "x": "Severity", "series": ["n"], "splitBy": None}),
        ("linechart", {"kind": "linechart", "x": "Severity", "series": ["n"], "splitBy": None}),
        ("areachart", {"kind": "areachart", "x": "Severity", "series": ["n"], "splitBy": None}),
        ("card", {"kind": "card", "x": "Severity", "series": ["n"], "splitBy": None}),
        ("table", None),
    ],
)
def test_render_kinds(seeded: LogStore, kind: str, expected: dict[str, Any] | None) -> None:
    kql = f"SecurityIncident | summarize n = count() by Severity | render {kind}"
    assert chart(seeded, kql) == expected


def test_render_properties_pick_the_columns(seeded: LogStore) -> None:
    hint = chart(
        seeded,
        "SecurityIncident | summarize Rows = count(), Incidents = dcount(IncidentNumber)"
        " by bin(TimeGenerated, 1h), Severity, Status"
        ' | render columnchart with (title = "x | render piechart", xcolumn = TimeGenerated,'
        " ycolumns = Incidents, series = Status, kind = stacked)",
    )
    assert hint == {
        "kind": "columnchart",
        "x": "TimeGenerated",
        "series": ["Incidents"],
        "splitBy": "Status",
    }


def test_render_names_that_are_not_columns_fall_back_to_the_defaults(seeded: LogStore) -> None:
    hint = chart(
        seeded,
        "SecurityIncident | summarize n = count() by Severity"
        " | render barchart with (xcolumn = Nope, ycolumns = Nada)",
    )
    assert hint == {"kind": "barchart", "x": "Severity", "series": ["n"], "splitBy": None}


def test_a_summarize_by_bin_is_a_timechart_without_render(seeded: LogStore) -> None:
    hint = chart(seeded, "SecurityIncident | summarize count() by bin(TimeGenerated, 1h)")
    assert hint == {
        "kind": "timechart",
        "x": "TimeGenerated",
        "series": ["count_"],
        "splitBy": None,
    }
    split = chart(
        seeded, "SecurityAlert | summarize n = count() by bin(TimeGenerated, 1d), AlertSeverity"
    )
    assert split is not None and split["splitBy"] == "AlertSeverity"


@pytest.mark.parametrize(
    "kql",
    [
        "SecurityIncident | summarize count() by Severity",
        "SecurityIncident | project TimeGenerated, IncidentNumber",  # no bin: not a series
        "SecurityIncident | summarize count() by bin(TimeGenerated, 1h) | render table",
        "SecurityIncident | where Title != '| render timechart' | summarize count() by Severity",
        'SecurityIncident | where Title != "x | render piechart" | count',
        "SecurityIncident | count\n// | render columnchart",
        "let T = SecurityIncident | summarize n = count() by Severity | render piechart;\nprint x = 1",
        "SecurityIncident | summarize count() by tostring(bin(IncidentNumber, 10))",
    ],
)
def test_no_chart_where_there_is_no_render_or_time_series(seeded: LogStore, kql: str) -> None:
    assert chart(seeded, kql) is None


def test_find_render_reads_tokens_not_text() -> None:
    assert find_render("T | render timechart") is not None
    found = find_render("T | render piechart with (title='a | b', xcolumn=['my col'])")
    assert found is not None and found.kind == "piechart" and found.xcolumn == "my col"
    assert find_render("T | where s == '| render timechart'") is None
    assert find_render("T | take 1 // | render timechart") is None
    assert find_render("T | summarize n = count() by (x | render)") is None
    assert find_render("print 'unterminated") is None


def test_a_render_with_nothing_to_plot_has_no_chart(seeded: LogStore) -> None:
    assert chart(seeded, "SecurityIncident | project Title | take 2 | render piechart") is None


# -- downloads ----------------------------------------------------------------------------------


def test_csv_download(empty: LogStore) -> None:
    answer = run(
        empty,
        "datatable(Name: string, N: long, R: real, D: dynamic, B: bool, T: datetime)"
        ' ["=cmd|\' /C calc\'!A0", -3, -0.5, dynamic({"k": [1]}), false,'
        " datetime(2024-05-01),"
        ' "plain, with comma", 2, 1.5, dynamic(null), true, datetime(null)]',
    )
    text = to_csv(answer)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Name", "N", "R", "D", "B", "T"]
    assert rows[1] == [
        "'=cmd|' /C calc'!A0",
        "-3",
        "-0.5",
        '{"k":[1]}',
        "false",
        "2024-05-01T00:00:00.000000Z",
    ]
    assert rows[2] == ["plain, with comma", "2", "1.5", "", "true", ""]
    raw = list(csv.reader(io.StringIO(to_csv(answer, spreadsheet_safe=False))))
    assert raw[1][0] == "=cmd|' /C calc'!A0"


def test_json_download_is_records_like_the_cli(empty: LogStore) -> None:
    answer = run(empty, "print a = 1, b = 'x', t = datetime(2024-05-01)")
    assert json.loads(to_json(answer)) == [{"a": 1, "b": "x", "t": "2024-05-01T00:00:00.000000Z"}]


# -- errors -------------------------------------------------------------------------------------


def test_error_bodies(empty: LogStore) -> None:
    with pytest.raises(QueryError) as caught:
        run_query(empty, "SecurityIncident\n| where", tenant_ids=None)
    body = error_json(caught.value)
    assert body is not None and body["error"]["code"] == "invalid"
    assert body["error"]["line"] == 2 and isinstance(body["error"]["column"], int)
    with pytest.raises(QueryError) as caught:  # over strrep's bound, as the query runs
        run_query(empty, 'let s = strrep("abcdefgh", 1024); print strrep(s, 9)', tenant_ids=None)
    body = error_json(caught.value)
    assert body is not None and body["error"]["code"] == "too_large", body
    assert "strrep would make a string longer than 65,536 bytes" in body["error"]["message"]
    busy = error_json(StoreBusyError("log store x is locked"))
    assert busy is not None and busy["error"]["code"] == "busy"
    assert error_json(RuntimeError("a bug")) is None  # not a query's failure: raised, not told


# -- examples -----------------------------------------------------------------------------------


def test_there_are_a_dozen_named_examples() -> None:
    saved = examples()
    assert len(saved) >= 12
    assert len({e["name"] for e in saved}) == len(saved)
    for example in saved:
        assert set(example) == {"name", "description", "query"}
        assert all(example[k].strip() for k in example)


@pytest.mark.parametrize("example", examples(), ids=lambda e: e["name"])
def test_every_example_runs_on_a_populated_workspace(
    seeded: LogStore, example: dict[str, str]
) -> None:
    answer = run(seeded, example["query"])
    assert answer["columns"]
    scoped = run(seeded, example["query"], tenant_ids=[TENANT])
    assert scoped["rows"] == answer["rows"] or scoped["rowCount"] == answer["rowCount"]
    assert run(seeded, example["query"], tenant_ids=["another-tenant"])["rowCount"] in (0, 1)


def test_examples_with_render_chart(seeded: LogStore) -> None:
    charted = [e for e in examples() if "render" in e["query"]]
    assert charted
    for example in charted:
        assert run(seeded, example["query"])["chart"] is not None, example["name"]
