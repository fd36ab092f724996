"""The compatibility layer: Sentinel constructs duckdb-kql does not translate as written.

Table-driven over the pure rewrite (text in, text out), then over a seeded workspace: every
rewritten query returns what its hand-written equivalent returns (which duckdb-kql runs as
is), errors name the construct and the position in the query the user wrote, and the
allow-list still holds for what the layer lifts out of a query.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sentinel_workspace import BENIGN, FALSE_POSITIVE, KAI, MULTISTAGE, PHISHING, seeded_store

from xdrsync.tables.compat import rewrite
from xdrsync.tables.errors import QueryError, QueryRefusedError
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.querying import translate
from xdrsync.tables.schemas import TABLE_NAMES, table_schema

COLUMNS = {name: table_schema(name).column_names for name in TABLE_NAMES}
BAGS = {"Owner": [("objectId", "string"), ("assignedTo", "string")], "Extra": [("n", "long")]}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("compat") / "logs.duckdb")


@pytest.mark.parametrize(
    ("kql", "expected"),
    [
        ("SecurityIncident | extend x = AlertIds.[0]", "SecurityIncident | extend x = AlertIds[0]"),
        (
            "SecurityAlert | extend E = parsejson(Entities)",
            "SecurityAlert | extend E = parse_json(Entities)",
        ),
        (
            "SecurityIncident | where ingestion_time() > ago(1d)",
            "SecurityIncident | where _IngestionTime > ago(1d)",
        ),
        (
            "SecurityIncident | summarize makelist(Title), makeset(Owner) by Status",
            "SecurityIncident | summarize make_list(Title), make_set(Owner) by Status",
        ),
        (
            "SecurityIncident | extend t = column_ifexists('Tasks', dynamic([]))",
            "SecurityIncident | extend t = Tasks",
        ),
        (
            'SecurityIncident | extend t = column_ifexists("NoSuchColumn", "")',
            'SecurityIncident | extend t = ("")',
        ),
        (
            "SecurityIncident | summarize count(ClosedTime) by Severity",
            "SecurityIncident | summarize count_ClosedTime = countif(isnotnull(ClosedTime)) "
            "by Severity",
        ),
        (
            "SecurityIncident | summarize n = count(Status == 'New')",
            "SecurityIncident | summarize n = countif(Status == 'New')",
        ),
        (
            "SecurityIncident | extend T = replace(@'is (\\d+)', @'was: \\1', Title)",
            "SecurityIncident | extend T = replace_regex(Title, @'is (\\d+)', @'was: \\1')",
        ),
        (
            "SecurityIncident | extend T = replace_string(Title, 'a', 'b'), R = x.replace(1, 2)",
            "SecurityIncident | extend T = replace_string(Title, 'a', 'b'), R = x.replace(1, 2)",
        ),
        (
            "SecurityIncident | summarize count() by bin_at(TimeGenerated, 1h, ago(1d))",
            "SecurityIncident | summarize count() by TimeGenerated = (bin((TimeGenerated) - "
            "((ago(1d)) - bin((ago(1d)), 1h)), 1h) + ((ago(1d)) - bin((ago(1d)), 1h)))",
        ),
        (
            "SecurityAlert | mv-expand todynamic(Entities)",
            "SecurityAlert | mv-expand Entities = todynamic(Entities)",
        ),
        (
            "SecurityAlert | mv-expand bagexpansion=array parse_json(Entities) to typeof(string)",
            "SecurityAlert | mv-expand bagexpansion=array Entities = parse_json(Entities) "
            "to typeof(string)",
        ),
        (
            "(range x from 1 to 3 step 1) | count",
            " range x from 1 to 3 step 1  | count",
        ),
        (
            "SecurityIncident | extend owner = tostring(Owner.assignedTo) | where owner != ''",
            "SecurityIncident | extend owner__ci1_ = tostring(Owner.assignedTo) "
            "| where owner__ci1_ != ''",
        ),
        ("let n = 5; SecurityIncident | take n", "let n = 5; SecurityIncident | take 5"),
        (
            "let n = 3;\nSecurityAlert | top n by TimeGenerated | limit n",
            "let n = 3;\nSecurityAlert | top 3 by TimeGenerated | limit 3",
        ),
        (
            "let F = (sev:string) { SecurityIncident | where Severity == sev };\nF('High')",
            "                                                                  \nF('High')",
        ),
    ],
)
def test_rewrites(kql: str, expected: str) -> None:
    assert rewrite(kql, COLUMNS).text == expected


@pytest.mark.parametrize(
    "kql",
    [
        # Strings, render properties and bracket access are never taken for query structure.
        "SecurityIncident | where Title == 'x.[3] parsejson( | count(Title)'",
        "SecurityIncident | summarize count() by Status | render piechart with (title='Status')",
        "SecurityIncident | extend a = Owner['title'], T = Title",
        "SecurityIncident | extend Owner2 = Owner.owner",
        # Named, column and path mv-expands are duckdb-kql's own.
        "SecurityIncident | mv-expand AlertIds",
        "SecurityIncident | mv-expand Id = AlertIds",
        "SecurityIncident | mv-expand AdditionalData.tactics",
        # A scalar let function and a parenthesised scalar stay as they are.
        "let f = (x:int) { x * 2 }; SecurityIncident | extend y = f(IncidentNumber)",
        "let n = (1 + 2); SecurityIncident | take n",
        # A count only from a name bound to a number before it.
        "SecurityIncident | take n",
        "let n = 'five'; SecurityIncident | take n",
        "SecurityIncident | take n; let n = 5; SecurityIncident | take 1",
        "let n = 5; SecurityIncident | extend m = n | take 2",
        # A later binding to anything but a number wins.
        "let n = 5; let n = 'x'; SecurityIncident | take n",
        "let n = 5; let n = n * 2; SecurityIncident | take n",
        "SecurityIncident | summarize count() by Severity",
    ],
)
def test_leaves_alone(kql: str) -> None:
    rewritten = rewrite(kql, COLUMNS)
    assert rewritten.text == kql
    assert rewritten.applied == ()


@pytest.mark.parametrize(
    "kql",
    [
        "let n = 5; let F = (n:long) { SecurityIncident | take n }; F(2)",
        "let n = 5; let F = () { let n = 2; SecurityIncident | take n }; F()",
    ],
)
def test_a_count_inside_a_function_body_is_the_bodys_own(kql: str) -> None:
    # A parameter or a let of the body may bind the name: the outer number is not used.
    assert "take 5" not in repr(rewrite(kql, COLUMNS))


def test_lifted_function_definition() -> None:
    rewritten = rewrite(
        "let lookback = 1d;\nlet Recent = (sev:string, n:int = 2) { SecurityIncident "
        "| where TimeGenerated > ago(lookback) and Severity == sev };\nRecent('High') | count",
        COLUMNS,
    )
    assert rewritten.functions == (
        "function Recent(sev:string, n:int = 2) { SecurityIncident "
        "| where TimeGenerated > ago(lookback) and Severity == sev }",
    )
    assert rewritten.text.splitlines()[2] == "Recent('High') | count"


def test_positions_map_back_to_the_users_query() -> None:
    kql = "SecurityIncident | extend x = parsejson(Title)\n| summarize count(Title)\n| foo"
    rewritten = rewrite(kql, COLUMNS)
    line, column = 3, rewritten.text.splitlines()[2].index("foo")
    assert rewritten.position(line, column) == (3, 2)
    at = rewritten.text.index("isnotnull")
    from xdrsync.tables.kqltokens import line_col

    assert rewritten.position(*line_col(rewritten.text, at)) == (2, 12)  # the `count` it replaced


def _rows(store: LogStore, kql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """The columns, and the rows in no order, nor the lists in them (`make_set`'s and
    `make_list`'s order follows DuckDB's threads, as Kusto promises none)."""
    result = store.query(kql)
    rows = (
        tuple(sorted(v, key=repr) if isinstance(v, list) else v for v in r) for r in result.rows
    )
    return result.columns, sorted(rows, key=repr)


CURRENT = "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "


@pytest.mark.parametrize(
    ("rewritten", "by_hand"),
    [
        (
            "let BySeverity = (sev:string) { " + CURRENT + "| where Severity == sev };"
            " BySeverity('Medium') | project IncidentNumber",
            CURRENT + "| where Severity == 'Medium' | project IncidentNumber",
        ),
        (
            "let window = 14d; let Alerts = (product:string) { SecurityAlert "
            "| where TimeGenerated > ago(window) | where ProductName == product };"
            " Alerts('Microsoft Defender Advanced Threat Protection') | distinct AlertName",
            "SecurityAlert | where TimeGenerated > ago(14d) "
            "| where ProductName == 'Microsoft Defender Advanced Threat Protection' "
            "| distinct AlertName",
        ),
        (
            "SecurityIncident | summarize count(ClosedTime) by Status",
            "SecurityIncident | summarize count_ClosedTime = countif(isnotnull(ClosedTime)) "
            "by Status",
        ),
        (
            "SecurityIncident | summarize count(Status == 'Closed')",
            "SecurityIncident | summarize count_ = countif(Status == 'Closed')",
        ),
        (
            "SecurityAlert | mv-expand todynamic(Entities) | summarize count() by tostring(Entities.Type)",
            "SecurityAlert | extend Entities = todynamic(Entities) | mv-expand Entities "
            "| summarize count() by tostring(Entities.Type)",
        ),
        (
            "SecurityAlert | extend E = parsejson(Entities) | mv-expand E | project T = tostring(E.Type)",
            "SecurityAlert | extend E = parse_json(Entities) | mv-expand E | project T = tostring(E.Type)",
        ),
        (
            CURRENT + "| project IncidentNumber, First = tostring(AlertIds.[0])",
            CURRENT + "| project IncidentNumber, First = tostring(AlertIds[0])",
        ),
        (
            "SecurityIncident | summarize count() by bin_at(TimeGenerated, 1h, datetime(2024-01-01 00:30))",
            "SecurityIncident | summarize count() by TimeGenerated = "
            "bin(TimeGenerated - 30m, 1h) + 30m",
        ),
        (
            "SecurityIncident | summarize count() by B = bin_at(IncidentNumber, 2, 1)",
            "SecurityIncident | summarize count() by B = 1 + bin(IncidentNumber - 1, 2)",
        ),
        (
            "SecurityIncident | summarize count() by B = bin_at(IncidentNumber, 4, 2972397)",
            "SecurityIncident | summarize count() by B = 2972397 + bin(IncidentNumber - 2972397, 4)",
        ),
        (
            "SecurityIncident | where ingestion_time() > ago(1d) | count",
            "SecurityIncident | where _IngestionTime > ago(1d) | count",
        ),
        (
            CURRENT + "| extend T = column_ifexists('Tasks', dynamic(null)), "
            "X = column_ifexists('Missing', 'none') | project IncidentNumber, T, X",
            CURRENT + "| extend T = Tasks, X = 'none' | project IncidentNumber, T, X",
        ),
        (
            "SecurityIncident | summarize makeset(Severity), makelist(IncidentNumber) by Status",
            "SecurityIncident | summarize make_set(Severity), make_list(IncidentNumber) by Status",
        ),
        (
            CURRENT + "| project IncidentNumber, "
            "T = replace(@'(\\w+)-(\\w+)', @'\\2 \\1', replace('i', 'I', Title))",
            CURRENT + "| project IncidentNumber, "
            "T = replace_regex(replace_regex(Title, 'i', 'I'), @'(\\w+)-(\\w+)', @'\\2 \\1')",
        ),
        (
            CURRENT + "| evaluate bag_unpack(Owner) | project IncidentNumber, assignedTo",
            CURRENT + "| extend assignedTo = tostring(Owner['assignedTo'])"
            " | project IncidentNumber, assignedTo",
        ),
        (
            "let ByRule = (T:(IncidentNumber:int), S:(IncidentNumber:int)) {\n"
            "  T | join kind=fullouter S on IncidentNumber\n"
            "  | extend IncidentNumber = iff(isnull(IncidentNumber), IncidentNumber1, IncidentNumber)"
            " | project-away IncidentNumber1 };\n"
            "let high = SecurityIncident | where Severity == 'High' | distinct IncidentNumber;\n"
            "let closed = SecurityIncident | where Status == 'Closed' | distinct IncidentNumber;\n"
            "ByRule(ByRule(high, closed), high) | distinct IncidentNumber",
            "let high = SecurityIncident | where Severity == 'High' | distinct IncidentNumber;\n"
            "let closed = SecurityIncident | where Status == 'Closed' | distinct IncidentNumber;\n"
            "high | join kind=fullouter closed on IncidentNumber"
            " | extend IncidentNumber = iff(isnull(IncidentNumber), IncidentNumber1, IncidentNumber)"
            " | project-away IncidentNumber1"
            " | join kind=fullouter high on IncidentNumber"
            " | extend IncidentNumber = iff(isnull(IncidentNumber), IncidentNumber1, IncidentNumber)"
            " | project-away IncidentNumber1 | distinct IncidentNumber",
        ),
        (
            "let n = 4; " + CURRENT + "| top n by IncidentNumber | project IncidentNumber",
            CURRENT + "| top 4 by IncidentNumber | project IncidentNumber",
        ),
        (
            "(SecurityIncident | where Severity == 'High') | distinct IncidentNumber",
            "SecurityIncident | where Severity == 'High' | distinct IncidentNumber",
        ),
    ],
)
def test_rewritten_queries_answer_as_their_hand_written_form(
    store: LogStore, rewritten: str, by_hand: str
) -> None:
    # The hand-written form runs without the layer, so the comparison is with duckdb-kql alone.
    assert rewrite(by_hand, COLUMNS).text == by_hand
    columns, rows = _rows(store, rewritten)
    assert (columns, rows) == _rows(store, by_hand)
    assert rows  # each comparison is over real rows


def test_names_differing_only_in_case_come_back_as_written(store: LogStore) -> None:
    result = store.query(
        CURRENT + "| extend owner = tostring(Owner.assignedTo), status = tolower(Status) "
        "| where owner == '" + KAI + "' | summarize make_set(status) by owner, Status"
    )
    assert result.columns == ("owner", "Status", "set_status")
    assert sorted(result.rows, key=repr) == [
        (KAI, "Closed", ["closed"]),
        (KAI, "New", ["new"]),
    ]
    # The same with names that do not collide: the values are the same.
    plain = store.query(
        CURRENT + "| extend o = tostring(Owner.assignedTo), s = tolower(Status) "
        "| where o == '" + KAI + "' | summarize make_set(s) by o, Status"
    )
    assert sorted(plain.rows, key=repr) == sorted(result.rows, key=repr)


def test_functions_with_tabular_parameters_expand_where_they_are_called() -> None:
    kql = (
        "let a = SecurityIncident | project R = Title;\n"
        "let F = (T:(R:string), S:(*), n:long) {\n T | join kind=inner S on R | take n\n};\n"
        "F(F(a, a, 2), a, 1) | count"
    )
    text = rewrite(kql, COLUMNS).text
    assert "F" not in text.split("};")[-1]
    assert " ".join(text.split()) == (
        "let a = SecurityIncident | project R = Title; "
        "a | join kind=inner (a) on R | take (2) | join kind=inner (a) on R | take (1) | count"
    )


@pytest.mark.parametrize(
    ("kql", "expected"),
    [
        (
            "SecurityIncident | evaluate bag_unpack(Owner) | take 1",
            "SecurityIncident | extend objectId = tostring(Owner['objectId']), "
            "assignedTo = tostring(Owner['assignedTo']) | project-away Owner | take 1",
        ),
        (
            "T | evaluate  bag_unpack( Extra , 'x_' )",
            "T | extend x_n = tolong(Extra['n']) | project-away Extra",
        ),
        # Unknown keys, an output schema, other arguments: left for the library to refuse.
        ("T | evaluate bag_unpack(Other)", "T | evaluate bag_unpack(Other)"),
        (
            "T | evaluate bag_unpack(Owner) : (a:string)",
            "T | evaluate bag_unpack(Owner) : (a:string)",
        ),
        (
            "T | evaluate bag_unpack(Owner, 'p', 'error')",
            "T | evaluate bag_unpack(Owner, 'p', 'error')",
        ),
    ],
)
def test_bag_unpack_of_known_keys(kql: str, expected: str) -> None:
    assert rewrite(kql, COLUMNS, BAGS).text == expected


def test_bag_unpack_answers_as_kusto_does(store: LogStore) -> None:
    result = store.query(
        CURRENT + "| where IncidentNumber == " + str(PHISHING) + " | evaluate bag_unpack(Owner)"
        " | evaluate bag_unpack(AdditionalData, 'ad_')"
    )
    assert "Owner" not in result.columns and "AdditionalData" not in result.columns
    (row,) = result.as_dicts()
    assert row["assignedTo"] == "AnalystA@contoso.onmicrosoft.com"
    assert row["objectId"] == ""  # Sentinel's owner has no object id for a Defender assignee
    assert row["ad_alertsCount"] == 2
    assert row["ad_tactics"] and isinstance(row["ad_tactics"], list)
    assert result.types[result.columns.index("ad_alertsCount")] == "long"


def test_bag_unpack_reads_unknown_keys_from_the_data_as_kusto_does(store: LogStore) -> None:
    # ExtendedProperties is JSON text whose keys no schema lists: the columns are the keys any
    # row has, in name order, typed by their values; a prefix may make names that need quoting.
    result = store.query(
        "SecurityAlert | summarize arg_max(TimeGenerated, *) by SystemAlertId"
        " | project SystemAlertId, P = parse_json(ExtendedProperties)"
        " | evaluate bag_unpack(P, 'x ')"
    )
    rows = store.query("SecurityAlert | project ExtendedProperties").rows
    keys = sorted({key for (text,) in rows for key in json.loads(text)})
    assert "ThreatName" in keys and "Categories" in keys
    assert result.columns == ("SystemAlertId", *(f"x {key}" for key in keys))
    types = dict(zip(result.columns, result.types, strict=True))
    assert (types["x ThreatName"], types["x Categories"]) == ("string", "dynamic")
    (row,) = [r for r in result.as_dicts() if r["x ThreatName"] == "Trojan:Win32/Wacatac"]
    assert row["x Categories"] == ["DefenseEvasion", "Execution"]
    # An alert without the key reads "" there, as a Kusto string column does.
    assert any(r["x ThreatName"] == "" for r in result.as_dicts())


def test_bag_unpack_of_no_bags_only_drops_the_column(store: LogStore) -> None:
    result = store.query(
        "SecurityAlert | where SystemAlertId == 'none'"
        " | project SystemAlertId, P = parse_json(Entities) | evaluate bag_unpack(P)"
    )
    assert result.columns == ("SystemAlertId",) and result.rows == ()


def test_case_renamed_join_keys(store: LogStore) -> None:
    rows = store.query(
        CURRENT + "| mv-expand AlertIds | extend systemAlertId = tostring(AlertIds) "
        "| join kind=inner (SecurityAlert | summarize arg_max(TimeGenerated, *) by SystemAlertId) "
        "on $left.systemAlertId == $right.SystemAlertId | distinct IncidentNumber"
    ).column("IncidentNumber")
    assert sorted(rows) == [MULTISTAGE, PHISHING, FALSE_POSITIVE, BENIGN]


@pytest.mark.parametrize(
    ("kql", "message"),
    [
        (
            "SecurityIncident | evaluate bag_unpack(Owner, 'o_', 'replace_source')",
            "not supported yet: evaluate bag_unpack at 1:19",
        ),
        ("print h = hash('x')", r"not supported yet: hash\(\)"),
        (
            "SecurityIncident | summarize tdigest(IncidentNumber)",
            r"not supported yet: tdigest\(\) in summarize",
        ),
        ("print r = range(1, 3, 1)", r"not supported yet: range\(\)"),
        (
            "SecurityIncident\n| extend x = parsejson(Title)\n| make-series count() on TimeGenerated step 1d",
            "not supported yet: make-series at 3:2",
        ),
        (
            "let F = (n:long) { SecurityIncident | take n }; F(3)",
            "in the body of let function F: not supported yet: 'take'",
        ),
    ],
)
def test_what_cannot_be_rewritten_is_named(store: LogStore, kql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        store.query(kql)


def test_engine_errors_speak_kql_with_the_users_position(store: LogStore) -> None:
    with pytest.raises(QueryError) as caught:
        store.query("SecurityIncident\n| extend x = parsejson(Title)\n| where NoSuchColumn == 1")
    assert str(caught.value) == "query failed: unknown column 'NoSuchColumn' at 3:8"
    with pytest.raises(QueryError) as caught:
        store.query("SecurityIncident | extend owner = Owner | where ownerr == 1 and owner != ''")
    assert "SELECT" not in str(caught.value)
    assert "unknown column 'ownerr' at 1:48" in str(caught.value)


def test_a_syntax_error_is_reported_where_the_user_wrote_it() -> None:
    with pytest.raises(QueryError, match="at 2:"):
        translate("SecurityIncident | summarize count(Title)\n| where ==", TABLE_NAMES)


@pytest.mark.parametrize(
    "kql",
    [
        "let F = (x:string) { Secrets | where Name == x }; F('a')",
        'let F = (x:string) { database("other").SecurityIncident }; F("a")',
        "let G = (x:string) { SecurityIncident | join (Secrets) on Title }; G('a')",
    ],
)
def test_lifted_functions_are_still_held_to_the_allow_list(kql: str) -> None:
    with pytest.raises(QueryRefusedError):
        translate(kql, TABLE_NAMES)


@pytest.mark.parametrize(
    "kql",
    [
        # The query up to a bag_unpack runs first, to read the keys: it is admitted first.
        "Secrets | project P = parse_json(Value) | evaluate bag_unpack(P)",
        "SecurityAlert | join (Secrets) on Title | project P = parse_json(Value)"
        " | evaluate bag_unpack(P)",
        "let J = (T:(*)) { T | join (Secrets) on Title }; J(SecurityIncident)",
    ],
)
def test_unpacked_and_expanded_queries_are_still_held_to_the_allow_list(
    store: LogStore, kql: str
) -> None:
    with pytest.raises(QueryRefusedError):
        store.query(kql)


def test_a_lifted_function_cannot_reach_another_cluster() -> None:
    with pytest.raises(QueryError, match="cluster map"):
        translate("let F = () { cluster('c').database('d').T }; F() | count", TABLE_NAMES)


def test_the_layer_can_be_turned_off() -> None:
    with pytest.raises(QueryError, match=r"not supported yet: Title\(\) in summarize"):
        translate("SecurityIncident | summarize count(Title)", TABLE_NAMES, compatible=False)
    assert translate("SecurityIncident | summarize count(Title)", TABLE_NAMES).sql


# -- sample, percentiles_array -------------------------------------------------------------------


def test_sample_draws_that_many_rows_at_random(store: LogStore) -> None:
    all_numbers = set(store.query(f"{CURRENT} | project IncidentNumber").column("IncidentNumber"))
    drawn: set[int] = set()
    for _ in range(20):
        result = store.query(f"{CURRENT} | sample 2 | project IncidentNumber")
        numbers = result.column("IncidentNumber")
        assert len(numbers) == 2 == len(set(numbers))
        assert set(numbers) <= all_numbers
        drawn.update(numbers)
    assert len(drawn) > 2  # not the same two rows every time (5 incidents, 20 draws)
    assert store.query(f"{CURRENT} | sample 100 | count").rows == ((len(all_numbers),),)
    assert "__xdrsync" not in " ".join(store.query(f"{CURRENT} | sample 1").columns)


def test_sample_distinct_draws_among_the_columns_values(store: LogStore) -> None:
    severities = set(store.query("SecurityIncident | distinct Severity").column("Severity"))
    result = store.query("SecurityIncident | sample-distinct 2 of Severity")
    assert result.columns == ("Severity",)
    assert len(result.rows) == 2 and set(result.column("Severity")) <= severities
    everything = store.query("let n = 10; SecurityIncident | sample-distinct n of Severity")
    assert set(everything.column("Severity")) == severities


def test_percentiles_array_is_the_percentiles_in_one_array(store: LogStore) -> None:
    single = store.query(
        f"{CURRENT} | summarize p10 = percentile(IncidentNumber, 10), "
        "p50 = percentile(IncidentNumber, 50), p90 = percentile(IncidentNumber, 90) by Severity"
    )
    expected = {row[0]: list(row[1:]) for row in single.rows}
    listed = store.query(
        f"{CURRENT} | summarize percentiles_array(IncidentNumber, 10, 50, 90) by Severity"
    )
    assert listed.columns == ("Severity", "percentiles_IncidentNumber")
    assert dict(listed.rows) == expected
    dynamic = store.query(
        f"{CURRENT} | summarize p = percentiles_array(IncidentNumber, dynamic([10, 50, 90])) "
        "by Severity"
    )
    assert dict(dynamic.rows) == expected
