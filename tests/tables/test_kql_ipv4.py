"""Kusto's IPv4 comparison functions (`kqlipv4` writes them with `parse_ipv4`): Microsoft's
documented examples, a property test against an oracle of the documented rule (addresses
compared under the smallest prefix they and the optional argument carry), and the forms
hunting queries use them in: a column, a range from a `join`, a function of the query's own
with the same name."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_workspace import seeded_store

from xdrsync.tables.errors import QueryError
from xdrsync.tables.kqlipv4 import PRIVATE_RANGES
from xdrsync.tables.logstore import LogStore


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("ipv4") / "logs.duckdb")


def one_row(store: LogStore, kql: str) -> tuple[Any, ...]:
    (row,) = store.query(kql).rows
    return tuple(row)


# -- Microsoft's examples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        # ipv4_compare(): the prefixes the strings carry and the optional one combine.
        ('ipv4_compare("192.168.1.0", "192.168.1.0")', 0),
        ('ipv4_compare("192.168.1.1/24", "192.168.1.255")', 0),
        ('ipv4_compare("192.168.1.1", "192.168.1.255/24")', 0),
        ('ipv4_compare("192.168.1.1/30", "192.168.1.255/24")', 0),
        ('ipv4_compare("192.168.1.1", "192.168.1.0", 31)', 0),
        ('ipv4_compare("192.168.1.1/24", "192.168.1.255", 31)', 0),
        ('ipv4_compare("192.168.1.1", "192.168.1.255", 24)', 0),
        ('ipv4_compare("192.168.1.1", "192.168.1.255")', -1),
        ('ipv4_compare("192.168.1.255", "192.168.1.1")', 1),
        ('ipv4_compare("192.168.1.1", "not an address")', None),
        # ipv4_is_match()
        ('ipv4_is_match("192.168.1.1/24", "192.168.1.255")', True),
        ('ipv4_is_match("192.168.1.1", "192.168.1.255")', False),
        ('ipv4_is_match("192.168.1.1", "192.168.1.255", 24)', True),
        ('ipv4_is_match("192.168.1.1", "")', None),
        # ipv4_is_in_range()
        ('ipv4_is_in_range("192.168.1.1", "192.168.1.1")', True),
        ('ipv4_is_in_range("192.168.1.1", "192.168.1.255/24")', True),
        ('ipv4_is_in_range("192.168.2.1", "192.168.1.255/24")', False),
        # ipv4_is_private()
        ('ipv4_is_private("192.168.1.1/24")', True),
        ('ipv4_is_private("10.1.2.3/24")', True),
        ('ipv4_is_private("202.1.2.3")', False),
        ('ipv4_is_private("127.0.0.1")', False),
        ('ipv4_is_private("172.31.255.255")', True),
        ('ipv4_is_private("172.32.0.0")', False),
        ('ipv4_is_private("nope")', None),
        # parse_ipv4_mask()
        ('parse_ipv4_mask("127.0.0.1", 24)', 2130706432),
        ('parse_ipv4_mask("192.1.168.2", 31)', 3221334018),
        ('parse_ipv4_mask("192.1.168.3", 31)', 3221334018),
        ('parse_ipv4_mask("127.2.3.4", 32)', 2130838276),
        # A prefix argument outside 0 to 32 (or null), and blanks `parse_ipv4` allows.
        ('parse_ipv4_mask("192.1.168.2", 33)', None),
        ('parse_ipv4_mask("192.1.168.2", -1)', None),
        ('parse_ipv4_mask("192.1.168.2", int(null))', None),
        ('ipv4_is_match("10.1.2.3", "10.1.2.4", int(null))', None),
        ('ipv4_is_in_range("10.9.9.9", "10.0.0.0/8 ")', True),
        ('ipv4_netmask_suffix("10.1.2.3/8 ")', 8),
        # A block wider than a private range is not private.
        ('ipv4_is_private("8.8.8.8/0")', False),
        ('ipv4_is_private("10.0.0.0/7")', False),
        # ipv4_netmask_suffix()
        ('ipv4_netmask_suffix("192.168.1.1/24")', 24),
        ('ipv4_netmask_suffix("192.168.1.1")', 32),
        ('ipv4_netmask_suffix("192.168.1.1/40")', None),
    ],
)
def test_microsofts_documented_examples(store: LogStore, call: str, expected: Any) -> None:
    assert one_row(store, f"print x = {call}") == (expected,)


# -- the documented rule, on any addresses ------------------------------------------------


def _parsed(text: str) -> tuple[int, int] | None:
    """(address, prefix) of an IPv4 string in prefix notation, None if it is not one."""
    address, _, prefix = text.partition("/")
    try:
        number = int(ipaddress.IPv4Address(address))
    except ValueError:
        return None
    if not prefix:
        return number, 32
    if not prefix.isdigit() or not 0 <= int(prefix) <= 32:
        return None
    return number, int(prefix)


def _masked(number: int, prefix: int) -> int:
    return number & (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def oracle_compare(a: str, b: str, extra: int | None = None) -> int | None:
    first, second = _parsed(a), _parsed(b)
    if first is None or second is None or (extra is not None and not 0 <= extra <= 32):
        return None
    prefix = min(first[1], second[1], 32 if extra is None else extra)
    x, y = _masked(first[0], prefix), _masked(second[0], prefix)
    return (x > y) - (x < y)


def oracle_private(ip: str) -> bool | None:
    """Whether the address, or the whole block its prefix names, lies in a private range."""
    parsed = _parsed(ip)
    if parsed is None:
        return None
    number = _masked(*parsed)
    return any(lo <= number <= hi and parsed[1] >= bits for lo, hi, bits in PRIVATE_RANGES)


def oracle_mask(ip: str, prefix: int) -> int | None:
    parsed = _parsed(ip)
    if parsed is None or not 0 <= prefix <= 32:
        return None
    return _masked(parsed[0], min(parsed[1], prefix))


addresses = st.builds(
    lambda n, p: str(ipaddress.IPv4Address(n)) + ("" if p is None else f"/{p}"),
    st.integers(0, 2**32 - 1),
    st.none() | st.integers(0, 32),
)
near = st.sampled_from(
    ["10.0.0.1", "10.255.255.255", "11.0.0.0", "172.15.255.255", "172.16.0.0", "172.31.0.9",
     "192.168.0.0/16", "192.169.0.1", "9.255.255.255/8", "0.0.0.0/0"]
)  # fmt: skip
invalid = st.sampled_from(["", "nope", "1.2.3", "1.2.3.4/33", "256.1.1.1", "1.2.3.4/x"])
texts = addresses | near | invalid


# Each example is one query (about a second to translate): few examples, many rows each.
@settings(max_examples=20, deadline=None)
@given(rows=st.lists(st.tuples(texts, texts, st.integers(-2, 34)), min_size=1, max_size=40))
def test_every_function_follows_the_documented_rule(
    store: LogStore, rows: list[tuple[str, str, int]]
) -> None:
    table = ", ".join(f'"{a}", "{b}", {p}' for a, b, p in rows)
    got = store.query(
        f"datatable(a: string, b: string, p: int) [{table}]"
        " | project compare = ipv4_compare(a, b), compare_p = ipv4_compare(a, b, p),"
        " match = ipv4_is_match(a, b), match_p = ipv4_is_match(a, b, p),"
        " in_range = ipv4_is_in_range(a, b), private = ipv4_is_private(a),"
        " mask = parse_ipv4_mask(a, p), suffix = ipv4_netmask_suffix(a)"
    ).rows
    for (a, b, p), row in zip(rows, got, strict=True):
        compare = oracle_compare(a, b)
        compare_p = oracle_compare(a, b, p)
        parsed = _parsed(a)
        expected = (
            compare,
            compare_p,
            None if compare is None else compare == 0,
            None if compare_p is None else compare_p == 0,
            None if compare is None else compare == 0,
            oracle_private(a),
            oracle_mask(a, p),
            None if parsed is None else parsed[1],
        )
        assert tuple(row) == expected, (a, b, p)


# -- in queries ---------------------------------------------------------------------------


def test_ranges_from_a_join_are_compared_row_by_row(store: LogStore) -> None:
    """The watchlist case: each address against the ranges of another table."""
    rows = store.query(
        'datatable(ip: string) ["10.1.2.3", "172.20.0.1", "8.8.8.8", "192.168.7.7"]'
        " | extend k = 1"
        ' | join kind=inner (datatable(range: string, name: string) ["10.0.0.0/8", "corp",'
        ' "192.168.0.0/16", "lab", "8.8.8.0/24", "dns"] | extend k = 1) on k'
        " | where ipv4_is_in_range(ip, range) | project ip, name | sort by ip asc"
    ).rows
    assert [tuple(r) for r in rows] == [
        ("10.1.2.3", "corp"),
        ("192.168.7.7", "lab"),
        ("8.8.8.8", "dns"),
    ]


def test_a_column_of_a_log_table(store: LogStore) -> None:
    """Every value of a real column, as the oracle reads it (null for an empty one)."""
    rows = store.query(
        "AlertEvidence | distinct LocalIP, RemoteIP"
        " | project LocalIP, RemoteIP, p = ipv4_is_private(LocalIP),"
        " c = ipv4_compare(LocalIP, RemoteIP)"
    ).rows
    assert any(local for local, *_ in rows)
    for local, remote, private, compare in rows:
        assert (private, compare) == (oracle_private(local), oracle_compare(local, remote))


@pytest.mark.parametrize(
    "kql",
    [
        'print x = ipv4_is_in_range(iff(ipv4_is_private("10.1.1.1"), "1.2.3.4", "5.6.7.8"),'
        ' "1.2.3.0/24")',
        "AlertEvidence | sort by Timestamp asc"
        " | extend s = ipv4_is_match(RemoteIP, prev(RemoteIP), 24)",
    ],
)
def test_an_argument_holding_another_of_them_or_prev_is_refused_saying_what_to_write(
    store: LogStore, kql: str
) -> None:
    """Written out, a nested call multiplied the SQL past the time limit, and `prev()` read
    no row inside `parse_ipv4`: named first, both work."""
    with pytest.raises(QueryError, match=r"at 1:\d+: an argument holding .* name it first"):
        store.query(kql)
    rows = store.query(
        'print a = iff(ipv4_is_private("10.1.1.1"), "1.2.3.4", "5.6.7.8")'
        ' | extend x = ipv4_is_in_range(a, "1.2.3.0/24")'
    ).rows
    assert [tuple(r) for r in rows] == [("1.2.3.4", True)]


@pytest.mark.parametrize(
    "kql",
    [
        'print RemoteIP = dynamic("10.1.2.3") | extend p = ipv4_is_private(RemoteIP)',
        'let RemoteIP = dynamic("10.1.2.3"); print p = ipv4_is_private(RemoteIP)',
        'datatable(RemoteIP: dynamic) [dynamic("10.1.2.3")] | extend p = ipv4_is_private(RemoteIP)',
        'print x = dynamic(["10.1.2.3"]) | summarize RemoteIP = make_set(x) | mv-expand RemoteIP'
        " | extend p = ipv4_is_private(RemoteIP)",
        "print ['RemoteIP'] = dynamic(\"10.1.2.3\") | extend p = ipv4_is_private(RemoteIP)",
        "datatable(['RemoteIP']: dynamic) [dynamic(\"10.1.2.3\")]"
        " | extend p = ipv4_is_private(RemoteIP)",
    ],
)
def test_a_text_columns_name_the_query_binds_to_something_else_is_read_as_it_holds(
    store: LogStore, kql: str
) -> None:
    """A workspace text column (`RemoteIP`) is used as it is; the same name bound by the
    query to a dynamic value is read through `tostring()`, as any other value."""
    rows = store.query(kql).rows
    assert [row[-1] for row in rows] == [True]


def test_a_function_the_query_defines_under_the_same_name_is_its_own(store: LogStore) -> None:
    assert one_row(
        store, 'let ipv4_is_private = (ip: string) { "mine" }; print x = ipv4_is_private("1.1.1.1")'
    ) == ("mine",)
    # and may stand in an argument, as no other function of those names may
    assert one_row(
        store, 'let prev = (s: string) { s }; print x = ipv4_is_private(prev("10.1.1.1"))'
    ) == (True,)
