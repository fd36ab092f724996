"""Kusto functions duckdb-kql lacks (`kqlfunctions`, `compat`'s make_bag, `sqlpatch`'s marks),
answering as Kusto's documentation says, over the seeded workspace.

Where Kusto documents an example, the test runs it and expects Kusto's printed answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sentinel_workspace import seeded_store

from xdrsync.tables.compat import rewrite
from xdrsync.tables.errors import QueryError, QueryLimitError
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.querying import translate
from xdrsync.tables.schemas import TABLE_NAMES, table_schema

COLUMNS = {name: table_schema(name).column_names for name in TABLE_NAMES}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("functions") / "logs.duckdb")


def one(store: LogStore, kql: str) -> tuple[Any, ...]:
    (row,) = store.query(kql).rows
    return row


# -- sets --------------------------------------------------------------------------------------


def test_set_union_answers_kustos_documented_examples(store: LogStore) -> None:
    result = store.query(
        "range x from 1 to 3 step 1 | extend y = x * 2 | extend z = y * 2 | extend w = z * 2 "
        "| extend a1 = pack_array(x,y,x,z), a2 = pack_array(x, y), a3 = pack_array(w) "
        "| project Out = set_union(a1, a2, a3)"
    )
    assert result.column("Out") == [[1, 2, 4, 8], [2, 4, 8, 16], [3, 6, 12, 24]]
    result = store.query(
        "datatable (Arr1: dynamic) [dynamic(['A4', 'A2', 'A7', 'A2']), "
        "dynamic(['C4', 'C7', 'C1', 'C4'])] | extend Out = set_union(Arr1, Arr1)"
    )
    assert result.column("Out") == [["A4", "A2", "A7"], ["C4", "C7", "C1"]]


def test_set_intersect_and_difference_keep_the_first_arrays_order_without_repeats(
    store: LogStore,
) -> None:
    row = one(
        store,
        "print i = set_intersect(dynamic([3, 1, 2, 3, 'a']), dynamic([2, 3, 'a']), "
        "dynamic(['a', 3, 9])), d = set_difference(dynamic([4, 1, 2, 3, 1]), dynamic([2]), "
        "dynamic([3]))",
    )
    assert row == ([3, "a"], [4, 1])


def test_sets_of_values_that_are_not_arrays_are_null(store: LogStore) -> None:
    row = one(
        store,
        "print u = set_union(dynamic([1]), dynamic({'a': 1})), "
        "d = set_difference(dynamic(null), dynamic([1])), i = isnull(set_intersect("
        "dynamic([1]), dynamic('x')))",
    )
    assert row == (None, None, True)


def test_sets_compose_with_the_functions_around_them(store: LogStore) -> None:
    row = one(
        store,
        "print n = array_length(set_union(dynamic([1, 2]), dynamic([2, 3]))), "
        "s = set_union(set_difference(dynamic([1, 2, 3]), dynamic([2])), dynamic(['x']))",
    )
    assert row == (3, [1, 3, "x"])


# -- bags --------------------------------------------------------------------------------------


def test_bag_merge_answers_kustos_documented_example(store: LogStore) -> None:
    row = one(
        store,
        "print result = bag_merge(dynamic({'A1':12, 'B1':2, 'C1':3}), "
        "dynamic({'A2':81, 'B2':82, 'A1':1}))",
    )
    # The leftmost bag's value wins: A1 is 12.
    assert row == ({"A1": 12, "B1": 2, "C1": 3, "A2": 81, "B2": 82},)


def test_bag_keys_lists_a_bags_keys_and_is_null_for_anything_else(store: LogStore) -> None:
    row = one(
        store,
        "print k = bag_keys(dynamic({'a': 1, 'b': {'c': 2}, 'd': null})), "
        "n = bag_keys(dynamic([1, 2])), s = bag_keys(dynamic('a'))",
    )
    assert row == (["a", "b", "d"], None, None)


def test_bag_keys_of_a_column_expands_per_key(store: LogStore) -> None:
    counts = dict(
        store.query(
            "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "
            "| mv-expand k = bag_keys(AdditionalData) | summarize count() by Key = tostring(k)"
        ).rows
    )
    incidents = one(store, "SecurityIncident | summarize dcount(IncidentNumber)")[0]
    assert counts["alertsCount"] == incidents
    assert counts["tactics"] == incidents


def test_make_bag_answers_kustos_documented_example(store: LogStore) -> None:
    result = store.query(
        'let T = datatable(prop:string, value:string) ["prop01", "val_a", "prop02", "val_b", '
        '"prop03", "val_c"]; T | extend p = bag_pack(prop, value) | summarize dict=make_bag(p)'
    )
    assert result.rows == (({"prop01": "val_a", "prop02": "val_b", "prop03": "val_c"},),)


def test_make_bag_skips_what_is_not_a_bag_and_keeps_one_value_per_key(store: LogStore) -> None:
    result = store.query(
        "datatable(g:string, b:dynamic) ['x', dynamic({'a': 1}), 'x', dynamic([1, 2]), "
        "'x', dynamic(null), 'x', dynamic({'a': 2, 'c': 3}), 'y', dynamic('text')] "
        "| summarize make_bag(b) by g | order by g asc"
    )
    assert result.columns == ("g", "bag_b")  # named as Kusto names it
    # Kusto takes any of a key's values; this takes the first row's.
    assert result.rows == (("x", {"a": 1, "c": 3}), ("y", {}))


def test_make_bag_keeps_at_most_max_size_keys_and_make_bag_if_its_rows(store: LogStore) -> None:
    row = one(
        store,
        "range x from 1 to 5 step 1 | extend b = bag_pack(strcat('k', x), x) "
        "| summarize two = make_bag(b, 2), odd = make_bag_if(b, x % 2 == 1)",
    )
    assert len(row[0]) == 2
    assert row[0].items() <= {"k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5}.items()
    assert row[1] == {"k1": 1, "k3": 3, "k5": 5}


def test_make_bag_by_group_over_the_incidents(store: LogStore) -> None:
    result = store.query(
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "
        "| summarize ByNumber = make_bag(bag_pack(tostring(IncidentNumber), Severity)) by Status"
    )
    current = store.query(
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber "
        "| project IncidentNumber, Severity, Status"
    ).rows
    for status, bag in result.rows:
        assert bag == {str(n): sev for n, sev, s in current if s == status}


def test_make_bag_is_rewritten_into_a_named_mark() -> None:
    text = rewrite("T | summarize make_bag(X), b = make_bag_if(Y, p, 3)", COLUMNS).text
    assert text == (
        'T | summarize bag_X = bag_pack("__xdrsync_fn_make_bag", "", "1", make_list(X)), '
        'b = bag_pack("__xdrsync_fn_make_bag", "", "1", make_list(iff(p, Y, __xdrsync_null)), '
        '"2", 3)'
    )


# -- strings, guids, Unix times ----------------------------------------------------------------


def test_string_size_counts_utf8_bytes_where_strlen_counts_characters(store: LogStore) -> None:
    row = one(
        store,
        "print a = string_size('héllo'), b = strlen('héllo'), c = string_size(''), "
        "d = string_size('🔥'), e = string_size(123), f = string_size('x') * 2",
    )
    assert row == (6, 5, 0, 4, 3, 2)


def test_new_guid_is_a_new_guid_on_every_row(store: LogStore) -> None:
    result = store.query(
        "range x from 1 to 50 step 1 | extend g = new_guid() | extend t = gettype(g)"
    )
    guids = result.column("g")
    assert len({str(g) for g in guids}) == 50
    assert all(isinstance(g, uuid.UUID) and g.version == 4 for g in guids)
    assert set(result.column("t")) == {"guid"}


def test_unix_times_answer_kustos_documented_examples(store: LogStore) -> None:
    row = one(
        store,
        "print s = unixtime_seconds_todatetime(1546300800), "
        "ms = unixtime_milliseconds_todatetime(1546300800000), "
        "us = unixtime_microseconds_todatetime(1546300800000000), "
        "ns = unixtime_nanoseconds_todatetime(1546300800000000000)",
    )
    assert row == (datetime(2019, 1, 1, tzinfo=UTC),) * 4


def test_unix_times_keep_fractions_and_are_null_outside_kustos_datetimes(
    store: LogStore,
) -> None:
    row = one(
        store,
        "print f = unixtime_seconds_todatetime(1.5), "
        "m = unixtime_milliseconds_todatetime(1546300800123), "
        "before = unixtime_seconds_todatetime(-1), "
        "far = unixtime_seconds_todatetime(1e13), "
        "none = unixtime_seconds_todatetime(long(null))",
    )
    assert row == (
        datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC),
        datetime(2019, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        None,
        None,
    )


# -- what stays the query's own ------------------------------------------------------------------


def test_a_function_the_query_defines_is_its_own(store: LogStore) -> None:
    assert one(store, 'let string_size = (s:string) { strlen(s) }; print string_size("é")') == (1,)


def test_a_users_bag_or_text_holding_the_marks_name_is_left_as_written(store: LogStore) -> None:
    row = one(
        store,
        "print b = bag_pack('__xdrsync_fn_set_union', dynamic([1, 1])), "
        "t = \"json_object('__xdrsync_fn_set_union', 1)\"",
    )
    assert row == ({"__xdrsync_fn_set_union": [1, 1]}, "json_object('__xdrsync_fn_set_union', 1)")


def test_split_at_an_index_answers_kustos_documented_examples(store: LogStore) -> None:
    row = one(
        store,
        'print a = split("aaa_bbb_ccc", "_", 1), b = split("aaa_bbb_ccc", "_", 3), '
        'c = split("aa_bb", "_")',
    )
    assert row == (["bbb"], [], ["aa", "bb"])


def test_indexof_with_start_length_and_occurrence_answers_kustos_documented_examples(
    store: LogStore,
) -> None:
    row = one(
        store,
        'print idx1 = indexof("abcdefg","cde"), idx2 = indexof("abcdefg","cde",1,4), '
        'idx3 = indexof("abcdefg","cde",1,2), idx4 = indexof("abcdefg","cde",3,4), '
        'idx5 = indexof("abcdefg","cde",-5), idx6 = indexof(1234567,5,1,4), '
        'idx7 = indexof("abcdefg","cde",2,-1), '
        'idx8 = indexof("abcdefgabcdefg", "cde", 1, 10, 2), '
        'idx9 = indexof("abcdefgabcdefg", "cde", 1, -1, 3), bad = indexof("abc", "b", 0, -2)',
    )
    assert row == (2, 2, -1, -1, 2, 4, 2, 9, -1, None)


def test_strrep_with_a_delimiter_answers_kustos_documented_examples(store: LogStore) -> None:
    row = one(
        store,
        'print a = strrep("ABC", 2, ","), b = strrep(123, 3, "."), c = strrep(3s, 2, " "), '
        'd = strrep("ABC", 2), e = strlen(strrep("x", 5000, ","))',
    )
    assert row == ("ABC,ABC", "123.123.123", "00:00:03 00:00:03", "ABCABC", 2047)  # 1024 copies


def test_strrep_with_a_delimiter_keeps_the_bound_on_its_length(store: LogStore) -> None:
    with pytest.raises(QueryLimitError, match="strrep would make a string longer"):
        store.query('print a = strrep(strrep("x", 1000), 1000, ",")')


def test_make_datetime_of_five_parts(store: LogStore) -> None:
    row = one(store, "print a = make_datetime(2017, 10, 01, 12, 10) == datetime(2017-10-01 12:10)")
    assert row == (True,)


def test_parse_path_answers_kustos_documented_example(store: LogStore) -> None:
    result = store.query(
        'datatable(p:string) [@"C:\\temp\\file.txt", @"temp\\file.txt", '
        '"file://C:/temp/file.txt:some.exe", @"\\\\shared\\users\\temp\\file.txt.gz", '
        '"/usr/lib/temp/file.txt"] | project parse_path(p)'
    )
    keys = ("Scheme", "RootPath", "DirectoryPath", "DirectoryName", "Filename", "Extension")
    parts = [tuple(bag[k] for k in (*keys, "AlternateDataStreamName")) for (bag,) in result.rows]
    assert parts == [
        ("", "C:", "C:\\temp", "temp", "file.txt", "txt", ""),
        ("", "", "temp", "temp", "file.txt", "txt", ""),
        ("file", "C:", "C:/temp", "temp", "file.txt", "txt", "some.exe"),
        ("", "", "\\\\shared\\users\\temp", "temp", "file.txt.gz", "gz", ""),
        ("", "", "/usr/lib/temp", "temp", "file.txt", "txt", ""),
    ]
    assert one(store, 'print a = tostring(parse_path(@"C:\\temp\\file.txt").Filename)') == (
        "file.txt",
    )


def test_strcat_array_of_an_aggregate_in_summarize(store: LogStore) -> None:
    result = store.query(
        'datatable(a:string, k:long) ["x", 1, "y", 1, "x", 1, "z", 2] '
        '| summarize s = strcat_array(make_set(a), ","), l = strcat_array(make_list(a), "-") by k '
        "| order by k asc"
    )
    assert result.columns == ("k", "s", "l")
    (k1, s1, l1), second = result.rows
    assert (k1, sorted(s1.split(",")), l1) == (1, ["x", "y"], "x-y-x")
    assert second == (2, "z", "z")


def test_a_call_with_a_wrong_number_of_arguments_is_refused(store: LogStore) -> None:
    with pytest.raises(QueryError, match=r"set_union\(\)"):
        store.query("print s = set_union(dynamic([1]))")


# -- more bags and arrays ------------------------------------------------------------------------


def test_bag_has_key_finds_a_key_or_a_json_path(store: LogStore) -> None:
    row = one(
        store,
        "print a = bag_has_key(dynamic({'a': {'b': 1}}), 'a'), "
        "b = bag_has_key(dynamic({'a': {'b': 1}}), '$.a.b'), "
        "c = bag_has_key(dynamic({'a': 1}), 'b'), d = bag_has_key(dynamic([1]), 'a') "
        "| extend e = iff(a and b, 'both', 'not both')",
    )
    assert row == (True, True, False, False, "both")


def test_bag_set_and_remove_keys_on_the_bags_own_keys(store: LogStore) -> None:
    row = one(
        store,
        "print s = bag_set_key(dynamic({'a': 1}), 'b', 2), "
        "o = bag_set_key(dynamic({'a': 1}), 'a', dynamic({'x': [1]})), "
        "r = bag_remove_keys(dynamic({'a': 1, 'b': 2, 'c': 3}), dynamic(['a', 'c'])), "
        "n = bag_remove_keys(dynamic([1]), dynamic(['a']))",
    )
    assert row == ({"a": 1, "b": 2}, {"a": {"x": [1]}}, {"b": 2}, None)


@pytest.mark.parametrize(
    "kql",
    [
        "print bag_set_key(dynamic({'a': {}}), '$.a.b', 1)",
        "print bag_remove_keys(dynamic({'a': {'b': 1}}), dynamic(['$.a.b']))",
    ],
)
def test_a_json_path_into_nested_bags_is_refused_by_name(store: LogStore, kql: str) -> None:
    with pytest.raises(QueryError) as caught:
        store.query(kql)
    assert "not supported yet:" in str(caught.value)
    assert "JSONPath" in str(caught.value)
    assert "Invalid Input Error" not in str(caught.value)


def test_array_rotations_and_shifts_answer_kustos_documented_examples(store: LogStore) -> None:
    row = one(
        store,
        "print arr = dynamic([1,2,3,4,5]) "
        "| project l = array_rotate_left(arr, 2), r = array_rotate_right(arr, 2), "
        "l7 = array_rotate_left(arr, -7), s = array_shift_left(arr, 2), "
        "sd = array_shift_left(arr, 2, -1), sn = array_shift_left(arr, -2, -1), "
        "sr = array_shift_right(arr, 2), all = array_shift_left(arr, 9)",
    )
    assert row == (
        [3, 4, 5, 1, 2],
        [4, 5, 1, 2, 3],
        [4, 5, 1, 2, 3],
        [3, 4, 5, None, None],
        [3, 4, 5, -1, -1],
        [-1, -1, 1, 2, 3],
        [None, None, 1, 2, 3],
        [None] * 5,
    )


def test_a_shifted_array_of_strings_is_filled_with_empty_strings(store: LogStore) -> None:
    assert one(store, "print array_shift_right(dynamic(['a', 'b']), 1)") == (["", "a"],)


def test_jaccard_index_answers_kustos_documented_example(store: LogStore) -> None:
    row = one(
        store,
        "print j = jaccard_index(dynamic([1,2,3]), dynamic([1,2,3,4])), "
        "d = jaccard_index(dynamic([1, 1, 2]), dynamic([2])), t = gettype(j)",
    )
    assert row == (0.75, 0.5, "real")


# -- more strings and times ----------------------------------------------------------------------


def test_tohex_isascii_and_url_decode(store: LogStore) -> None:
    row = one(
        store,
        "print a = tohex(256), b = tohex(-256), c = tohex(10, 20), d = tohex(10, 4), "
        "e = isascii('abc'), f = isascii('é'), "
        "g = url_decode('https%3a%2f%2fwww.bing.com%2f'), h = url_decode('a+b%2Bc'), "
        "i = url_decode('%ff'), j = tohex(1.5)",
    )
    # Kusto's documented examples: a width above 16 is 16; a real is no whole number.
    assert row == ("100", "ffffffffffffff00", "000000000000000a", "000a", True, False,
                   "https://www.bing.com/", "a b+c", "", "")  # fmt: skip


def test_datetimes_move_between_utc_and_a_time_zone(store: LogStore) -> None:
    row = one(
        store,
        "print s = datetime_utc_to_local(datetime(2024-07-01 00:00), 'Europe/Paris'), "
        "w = datetime_utc_to_local(datetime(2024-01-01 00:00), 'Europe/Paris'), "
        "back = datetime_local_to_utc(datetime(2024-07-01 02:00), 'Europe/Paris')",
    )
    assert row == (
        datetime(2024, 7, 1, 2, tzinfo=UTC),  # summer time: UTC+2
        datetime(2024, 1, 1, 1, tzinfo=UTC),
        datetime(2024, 7, 1, tzinfo=UTC),
    )
    shifted = one(
        store,
        "SecurityIncident | take 1 "
        "| project d = datetime_utc_to_local(CreatedTime, 'Asia/Tokyo') - CreatedTime",
    )
    assert shifted == (timedelta(hours=9),)


def test_an_unknown_time_zone_is_named(store: LogStore) -> None:
    with pytest.raises(QueryError, match="unknown time zone 'Mars/Olympus'"):
        store.query("print datetime_utc_to_local(now(), 'Mars/Olympus')")


def test_rand_draws_reals_below_one_and_whole_reals_below_n(store: LogStore) -> None:
    row = one(
        store,
        "range x from 1 to 2000 step 1 | extend r = rand(), n = rand(10) "
        "| summarize min(r), max(r), min(n), max(n), dcount(n), dcount(r), "
        "tr = take_any(gettype(r)), tn = take_any(gettype(n))",
    )
    low, high, nlow, nhigh, values, reals, real_type, whole_type = row
    assert 0 <= low < 0.05 and 0.95 < high < 1
    assert (nlow, nhigh, values) == (0, 9, 10)
    assert reals > 1900  # a new draw on every row
    assert (real_type, whole_type) == ("real", "real")  # rand(n): a whole number, as a real


# -- what the review found ----------------------------------------------------------------------


def test_nested_calls_stay_small_once_translated(store: LogStore) -> None:
    """Each call is written once into the SQL (not copied by a conversion around it), so a
    nested call stays small: the first of these was 7 MB of SQL and minutes of translation."""
    queries = {
        "SecurityIncident | where isascii(url_decode(Title)) | count": ((7,),),
        "print url_decode(url_decode(url_decode('a%2520b')))": (("a b",),),
        "print string_size(url_decode('a%20b'))": ((3,),),
        "print bag_keys(bag_merge(bag_merge(bag_merge(dynamic({'a':1}), dynamic({'b':2})), "
        "dynamic({'c':3})), dynamic({'d':4})))": ((["a", "b", "c", "d"],),),
    }
    for kql, rows in queries.items():
        assert len(translate(kql, TABLE_NAMES).sql) < 200_000
        assert store.query(kql).rows == rows


def test_a_large_query_without_these_functions_still_translates() -> None:
    """Only a query that needs a patch is refused for its size: another is left as
    duckdb-kql wrote it (running one this large takes DuckDB a while). A real made text
    (`tostring`, `strcat`) needs one (`sqlpatch._dotnet_reals`), so this one has none."""
    columns = ", ".join(f'a{n} = parse_url(Title)["Host"]' for n in range(1200))
    kql = f"SecurityIncident | extend {columns} | take 1 | project a7"
    assert len(translate(kql, TABLE_NAMES).sql) > 1_000_000


def test_a_large_query_that_needs_a_patch_is_refused_not_run_unpatched() -> None:
    """Unpatched, an outer join's unmatched string columns would read null where Kusto
    reads "": a query that large is refused rather than answered otherwise."""
    columns = ", ".join(f"a{n} = strcat(tostring(TimeGenerated), '{n}')" for n in range(1200))
    kql = (
        f"SecurityIncident | extend {columns} | join kind=leftouter (SecurityAlert "
        "| project AlertName) on $left.Title == $right.AlertName | take 1 | project AlertName"
    )
    with pytest.raises(QueryError, match="longer than 1,000,000 characters once translated"):
        translate(kql, TABLE_NAMES)


def test_sql_too_large_to_patch_is_refused_not_run_unpatched(store: LogStore) -> None:
    nested = "dynamic({'a':1})"
    for _ in range(6):  # each level copies its argument into the SQL four times
        nested = f"bag_merge({nested}, dynamic({{'b':2}}))"
    with pytest.raises(QueryError, match="longer than 1,000,000 characters once translated"):
        store.query(
            "SecurityIncident | join kind=leftouter (SecurityAlert | project AlertName) "
            f"on $left.Title == $right.AlertName | extend m = {nested} | count"
        )


def test_null_and_odd_arguments(store: LogStore) -> None:
    row = one(
        store,
        "print a = bag_remove_keys(dynamic({'a':1,'b':2}), dynamic(null)), "
        "b = bag_remove_keys(dynamic({'a':1,'b':2}), dynamic('a')), "
        "c = array_rotate_left(dynamic([1,2]), long(null)), "
        "d = array_shift_left(dynamic([1,2]), long(null)), "
        "e = bag_set_key(dynamic({'a':1}), '$.b', 2), "
        "f = bag_remove_keys(dynamic({'a':1,'b':2}), dynamic(['$.a'])), "
        "g = bag_has_key(dynamic({'$x':1}), '$x'), h = bag_has_key(dynamic({'a':1}), '$')",
    )
    assert row == (None, None, None, None, {"a": 1, "b": 2}, {"b": 2}, True, False)


def test_the_layers_own_names_are_refused_in_a_query(store: LogStore) -> None:
    with pytest.raises(QueryError, match="names starting with __xdrsync or __xf_ are xdrsync's"):
        store.query("print __xf_m = 'k' | extend r = bag_set_key(dynamic({'a':1}), __xf_m, 1)")
    with pytest.raises(QueryError, match="xdrsync's own"):
        store.query("print __xdrsync_null = 5")
    with pytest.raises(QueryError, match="'__xdrsync_sample': names starting with"):
        store.query("print ['__xdrsync_sample'] = 1, b = 2 | sample 1")


def test_a_users_bag_in_the_marks_shape_is_left_a_bag(store: LogStore) -> None:
    row = one(store, "print p = bag_pack('__xdrsync_fn_bag_keys', 1, 'b', dynamic({'q':1}))")
    assert row == ({"__xdrsync_fn_bag_keys": 1, "b": {"q": 1}},)


def test_a_refusal_text_in_a_users_string_is_no_refusal(store: LogStore) -> None:
    with pytest.raises(QueryError) as caught:
        store.query("print r = array_rotate_left(dynamic([1,2]), 'not supported yet: x')")
    assert "LINE" not in str(caught.value) and "CAST(" not in str(caught.value)
