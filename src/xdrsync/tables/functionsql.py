"""The Kusto functions duckdb-kql lacks, as data: how `compat` writes a call of each
(`kqlfunctions`), and the DuckDB SQL `sqlpatch` makes of it.

Each call is written as a mark, `bag_pack("__xdrsync_fn_<name>", "", "1", a1, ...)`, which
duckdb-kql translates as `json_object(...)` with every argument turned into JSON (a datetime
as Kusto's text of it). So each function's SQL here reads JSON arguments, and answers in the
SQL type of Kusto's answer (JSON for `dynamic`). A function whose Kusto type is not
`dynamic` names it (`returns`): its mark is written as `iff(true, <mark>, long(null))`, so
duckdb-kql types it so, with the mark written once (a conversion such as `tolong()` would
copy it several times, and a call nested in another's argument again each time).

What each answers, as Kusto documents it:

* `set_union(a, b, ...)`, `set_intersect(...)`, `set_difference(...)`: the distinct values,
  in the order they first appear, of all the arrays, of the first array found in all the
  others, of the first array found in none of them; null when an argument is not an array;
  `jaccard_index(a, b)`: the distinct values in both over those in either;
* `bag_merge(a, b, ...)`: one bag of all their keys, the leftmost bag's value winning; a
  value that is not a bag adds nothing. `make_bag(x [, n])` in `summarize` (`compat`'s
  aggregates write it over `make_list(x)`): the same merge of the group's bags, at most `n`
  keys; where rows disagree on a key, Kusto takes any of their values and this the first's;
* `bag_keys(bag)`: its keys, in its order; `bag_has_key(bag, key)` (a key, or a JSONPath
  `$.a.b`); `bag_remove_keys(bag, keys)` and `bag_set_key(bag, key, value)` on the bag's own
  keys (a key, or `$.a`; a JSONPath into nested bags is refused when the query runs); each
  null, or false, for a value that is not a bag, and `bag_remove_keys` for keys that are not
  an array;
* `array_rotate_left/right(a, n)`, `array_shift_left/right(a, n [, fill])`: the array turned
  or moved by `n` (the other way when negative; null for a null `n`); a shift fills with
  `fill`, else with "" in an array of strings and null in any other;
* `string_size(s)`: the bytes of `s` in UTF-8; `isascii(s)`; `url_decode(s)` (form
  encoding, the inverse of Kusto's `url_encode`: `+` is a space; "" where the escapes are
  no UTF-8); `tohex(n [, width])` of a whole number (64-bit two's complement below zero,
  where Kusto takes 32 bits for an `int`; zeros in front up to `width`, at most 16);
  `new_guid()`, a random guid on each row; `rand()`, a random real from 0 up to 1, and
  `rand(n)`, a random whole number from 0 up to `n`, a real as Kusto gives it;
* the forms of `split(s, d, index)`, `indexof(s, m, start [, length [, occurrence]])` and
  `strrep(s, n, delimiter)` duckdb-kql lacks (its own translates the shorter ones), and
  `parse_path(p)`: the part at `index` (`[]` past the end); the place of the match as .NET's
  `IndexOf` finds it, each search from one past the last within `length` characters; at most
  1,024 copies (`sqlpatch` bounds the bytes); the path's parts, by Kusto's names;
* `datetime_utc_to_local(t, zone)`, `datetime_local_to_utc(t, zone)`: the wall-clock time in
  an IANA time zone, and back (an unknown zone fails the query, naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from xdrsync.tables.errors import REFUSAL

#: Kusto's functions over several arrays or bags take from 2 to 64 of them.
MANY_ARGUMENTS: Final = range(2, 65)
#: Each lambda parameter below starts so: no name duckdb-kql writes does.
_P: Final = "__xf_"


@dataclass(frozen=True)
class Function:
    """One function: how many arguments it takes, its SQL over them, and the KQL type of its
    answer when that is not `dynamic`."""

    arities: Sequence[int]
    sql: Callable[[Sequence[str]], str]
    returns: str | None = None
    #: False for an aggregate, which `compat`'s aggregates write (inside `summarize`).
    scalar: bool = True


def _bind(value: str, name: str, body: str) -> str:
    """`body` with `name` bound to `value`, which is written (and computed) once."""
    return f"list_transform([{value}], lambda {_P}{name}: {body})[1]"


def _text(arg: str) -> str:
    """The text a JSON string holds (its value, unquoted)."""
    return f"({arg} ->> '$')"


def _distinct(values: str) -> str:
    """The list `values` without repeats, in the order each first appears."""
    seen = f"list_position({_P}l, {_P}x) = {_P}i"
    return _bind(values, "l", f"list_filter({_P}l, lambda {_P}x, {_P}i: {seen})")


def _arrays(args: Sequence[str], body: Callable[[str], str]) -> str:
    """`body` of the arrays, null unless every argument is one (`body` gets a name for the
    list of them)."""
    lists = ", ".join(f"TRY_CAST({arg} AS JSON[])" for arg in args)
    s = f"{_P}s"
    return _bind(f"[{lists}]", "s", f"CASE WHEN list_count({s}) = len({s}) THEN {body(s)} END")


def _found(s: str, count: int, *, everywhere: bool) -> str:
    """Whether `{_P}x` is in every one (or in none) of the arrays `s[2]` to `s[count]`."""
    test = "IS NOT NULL" if everywhere else "IS NULL"
    return " AND ".join(f"list_position({s}[{k}], {_P}x) {test}" for k in range(2, count + 1))


def _set_union(args: Sequence[str]) -> str:
    return _arrays(args, lambda s: f"to_json({_distinct(f'flatten({s})')})")


def _set_filter(args: Sequence[str], *, everywhere: bool) -> str:
    def body(s: str) -> str:
        found = _found(s, len(args), everywhere=everywhere)
        return f"to_json(list_filter({_distinct(f'{s}[1]')}, lambda {_P}x: {found}))"

    return _arrays(args, body)


def _jaccard(args: Sequence[str]) -> str:
    def body(s: str) -> str:
        both = f"list_filter({_distinct(f'{s}[1]')}, lambda {_P}x: {_found(s, 2, everywhere=True)})"
        return f"len({both}) / len({_distinct(f'flatten({s})')})"

    return _arrays(args, body)


def _map(bag: str) -> str:
    """The bag as a DuckDB map (null when it is not a bag)."""
    return f"TRY_CAST({bag} AS MAP(VARCHAR, JSON))"


def _bags(bags: str, limit: str | None = None) -> str:
    """One bag (JSON) of the keys of the JSON values in the list `bags` that are bags, the
    first value of a key winning, in the order the keys first appear; at most `limit` keys."""
    entries = f"flatten(list_transform({bags}, lambda {_P}o: map_entries({_map(f'{_P}o')})))"
    # Sorted by key then place, the first of each key is its first value: O(n log n), where
    # looking each key up in the list would be O(n²) over a large group's bags.
    placed = (
        f"list_transform({entries}, lambda {_P}x, {_P}i: "
        f"{{'k': {_P}x.key, 'i': {_P}i, 'v': {_P}x.value}})"
    )
    first = f"list_filter({_P}s, lambda {_P}x, {_P}j: {_P}j = 1 OR {_P}s[{_P}j - 1].k <> {_P}x.k)"
    in_order = (
        f"list_sort(list_transform({first}, lambda {_P}x: "
        f"{{'i': {_P}x.i, 'key': {_P}x.k, 'value': {_P}x.v}}))"
    )
    if limit is not None:
        in_order = f"{in_order}[1:greatest(CAST({limit} AS BIGINT), 0)]"
    kept = f"list_transform({in_order}, lambda {_P}x: {{'key': {_P}x.key, 'value': {_P}x.value}})"
    return _bind(f"list_sort({placed})", "s", f"to_json(map_from_entries({kept}))")


def _make_bag(args: Sequence[str]) -> str:
    rows = f"TRY_CAST({args[0]} AS JSON[])"
    return _bags(rows, f"({args[1]})" if len(args) > 1 else None)


#: A JSONPath Kusto's bag functions take: `$.a`, `$.a.b`, ...
_PATH: Final = r"'^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$'"


def _own_key(function: str, key: str) -> str:
    """The bag's own key `key` names: itself, or `a` for the JSONPath `$.a`; a JSONPath into
    nested bags (`$.a.b`) is refused when the query runs."""
    refused = f"error('{REFUSAL}{function}() with a JSONPath key into nested bags')"
    return (
        f"CASE WHEN NOT regexp_matches({key}, {_PATH}) THEN {key} "
        f"WHEN strpos(substr({key}, 3), '.') = 0 THEN substr({key}, 3) ELSE {refused} END"
    )


def _bag_has_key(args: Sequence[str]) -> str:
    bag, key = args[0], _text(args[1])
    own = f"coalesce(list_contains(map_keys({_map(bag)}), {key}), false)"
    # A key that is no JSONPath never reaches `json_exists`, which checks a constant path as
    # the query binds: it reads the root instead.
    checked = f"CASE WHEN regexp_matches({key}, {_PATH}) THEN {key} ELSE '$' END"
    path = f"coalesce(json_type({bag}) = 'OBJECT' AND json_exists({bag}, {checked}), false)"
    return f"CASE WHEN regexp_matches({key}, {_PATH}) THEN {path} ELSE {own} END"


def _bag_remove_keys(args: Sequence[str]) -> str:
    keys = (
        f"list_transform(TRY_CAST({args[1]} AS JSON[]), lambda {_P}k: "
        f"{_own_key('bag_remove_keys', _text(f'{_P}k'))})"
    )
    kept = (
        f"map_from_entries(list_filter(map_entries({_P}m), "
        f"lambda {_P}e: NOT list_contains({_P}r, {_P}e.key)))"
    )
    body = _bind(_map(args[0]), "m", f"CASE WHEN {_P}m IS NOT NULL THEN to_json({kept}) END")
    return _bind(keys, "r", f"CASE WHEN {_P}r IS NOT NULL THEN {body} END")


def _bag_set_key(args: Sequence[str]) -> str:
    key = f"{_P}k"
    others = f"list_filter(map_entries({_P}m), lambda {_P}e: {_P}e.key <> {key})"
    entry = f"{{'key': {key}, 'value': CAST({args[2]} AS JSON)}}"
    made = f"to_json(map_from_entries(list_append({others}, {entry})))"
    body = _bind(_map(args[0]), "m", f"CASE WHEN {_P}m IS NOT NULL THEN {made} END")
    return _bind(_own_key("bag_set_key", _text(args[1])), "k", body)


def _rotate(args: Sequence[str], *, left: bool) -> str:
    by = f"CAST({args[1]} AS BIGINT)" if left else f"-CAST({args[1]} AS BIGINT)"
    n = f"len({_P}a)"
    k = f"((({by}) % {n}) + {n}) % {n}"
    turned = f"list_concat({_P}a[{k} + 1:], {_P}a[1:{k}])"
    body = (
        f"CASE WHEN {by} IS NULL THEN NULL WHEN {n} = 0 THEN to_json({_P}a) "
        f"ELSE to_json({turned}) END"
    )
    return _bind(f"TRY_CAST({args[0]} AS JSON[])", "a", body)


def _shift(args: Sequence[str], *, left: bool) -> str:
    by = f"CAST({args[1]} AS BIGINT)" if left else f"-CAST({args[1]} AS BIGINT)"
    n = f"len({_P}a)"
    strings = f"list_bool_and(list_transform({_P}a, lambda {_P}x: json_type({_P}x) = 'VARCHAR'))"
    empty = f"CASE WHEN {strings} THEN '\"\"'::JSON END"  # "" among strings, else null
    fill = f"CAST({args[2]} AS JSON)" if len(args) > 2 else empty
    k = f"least(abs({by}), {n})"
    filler = f"list_resize([]::JSON[], {k}, {fill})"
    moved = (
        f"CASE WHEN {by} >= 0 THEN list_concat({_P}a[{k} + 1:], {filler}) "
        f"ELSE list_concat({filler}, {_P}a[1:{n} - {k}]) END"
    )
    body = f"CASE WHEN {by} IS NOT NULL THEN to_json({moved}) END"
    return _bind(f"TRY_CAST({args[0]} AS JSON[])", "a", body)


def _tohex(args: Sequence[str]) -> str:
    whole = f"json_type({args[0]}) IN ('BIGINT', 'UBIGINT')"
    digits = f"CASE WHEN {whole} THEN lower(hex(CAST({args[0]} AS BIGINT))) ELSE '' END"
    if len(args) == 1:
        return digits
    width = f"least(TRY_CAST({args[1]} AS INTEGER), 16)"
    padded = f"CASE WHEN len({_P}h) >= {width} THEN {_P}h ELSE lpad({_P}h, {width}, '0') END"
    return _bind(digits, "h", padded)


def _split_at(args: Sequence[str]) -> str:
    index = f"TRY_CAST({args[2]} AS BIGINT)"
    parts = f"string_split({_text(args[0])}, {_text(args[1])})"
    kept = f"CASE WHEN {index} >= 0 AND {index} < len({_P}p) THEN [{_P}p[{index} + 1]] END"
    return _bind(parts, "p", f"to_json(coalesce({kept}, []::VARCHAR[]))")


#: The most copies `strrep` makes (Kusto's bound; `sqlpatch` bounds the bytes as well).
_MAX_COPIES: Final = 1024


def _strrep(args: Sequence[str]) -> str:
    copies = f"least(TRY_CAST({args[1]} AS BIGINT), {_MAX_COPIES})"
    value, delimiter = f"{_P}v", _text(args[2])
    body = (
        f"CASE WHEN {copies} IS NULL THEN NULL WHEN {copies} < 1 THEN '' "
        f"ELSE repeat({value} || {delimiter}, {copies} - 1) || {value} END"
    )
    return _bind(_text(args[0]), "v", body)


def _indexof(args: Sequence[str]) -> str:
    """The place of the `occurrence`-th match, each search as .NET's `IndexOf(match, from,
    length)`: the first from `start`, each next from one past the last, every one within
    `length` characters of where it began (-1: to the end)."""
    s, m = f"{_P}s", f"{_P}m"
    start = f"TRY_CAST({args[2]} AS BIGINT)"
    length = f"TRY_CAST({args[3]} AS BIGINT)" if len(args) > 3 else "-1"
    occurrence = f"greatest(TRY_CAST({args[4]} AS BIGINT), 1)" if len(args) > 4 else "1"
    first = f"CASE WHEN {start} < 0 THEN greatest(len({s}) + {start}, 0) ELSE {start} END"
    found = (
        f"list_filter(range({first}, len({s}) - len({m}) + 1), "
        f"lambda {_P}i: substr({s}, {_P}i + 1, len({m})) = {m})"
    )
    p = f"{_P}p"
    began = f"CASE WHEN {_P}j = 1 THEN {first} ELSE {p}[{_P}j - 1] + 1 END"
    within = (
        f"list_bool_and(list_transform(range(1, {occurrence} + 1), lambda {_P}j: "
        f"{length} = -1 OR {p}[{_P}j] + len({m}) <= {began} + {length}))"
    )
    answer = (
        f"CASE WHEN {length} < -1 OR TRY_CAST({args[4] if len(args) > 4 else '1'} AS BIGINT) < 0 "
        f"THEN NULL WHEN len({p}) < {occurrence} OR NOT {within} THEN -1 "
        f"ELSE {p}[{occurrence}] END"
    )
    return _bind(_text(args[0]), "s", _bind(_text(args[1]), "m", _bind(found, "p", answer)))


def _parse_path(args: Sequence[str]) -> str:
    """The parts of a path, as Kusto's `parse_path` names them: a scheme (`file://`), a
    drive (`C:`), the directory and its last name, the file, its extension, and the
    alternate data stream after a `:` in the file's name."""
    sep = "[\\\\/]"  # either slash
    rest = f"{_P}r"
    leaf = f"regexp_extract({rest}, '([^\\\\/]*)$', 1)"
    filename = f"regexp_extract({leaf}, '^([^:]*)', 1)"
    directory = f"regexp_extract({rest}, '^(.*){sep}', 1)"
    parts = (
        f"json_object('Scheme', {_P}c, 'RootPath', regexp_extract({rest}, '^([A-Za-z]:)', 1), "
        f"'DirectoryPath', {directory}, "
        f"'DirectoryName', regexp_extract({directory}, '([^\\\\/]*)$', 1), "
        f"'Filename', {filename}, 'Extension', regexp_extract({filename}, '[.]([^.]*)$', 1), "
        f"'AlternateDataStreamName', regexp_extract({leaf}, ':(.*)$', 1))"
    )
    after = f"CASE WHEN {_P}c = '' THEN {_P}p ELSE substr({_P}p, len({_P}c) + 4) END"
    scheme = f"regexp_extract({_P}p, '^([A-Za-z][A-Za-z0-9+.-]*)://', 1)"
    return _bind(_text(args[0]), "p", _bind(scheme, "c", _bind(after, "r", parts)))


FUNCTIONS: Final[dict[str, Function]] = {
    "set_union": Function(MANY_ARGUMENTS, _set_union),
    "set_intersect": Function(MANY_ARGUMENTS, lambda a: _set_filter(a, everywhere=True)),
    "set_difference": Function(MANY_ARGUMENTS, lambda a: _set_filter(a, everywhere=False)),
    "jaccard_index": Function((2,), _jaccard, "real"),
    "bag_merge": Function(MANY_ARGUMENTS, lambda a: _bags(f"[{', '.join(a)}]")),
    "make_bag": Function((1, 2), _make_bag, scalar=False),
    "bag_keys": Function((1,), lambda a: _bind(_map(a[0]), "m", f"to_json(map_keys({_P}m))")),
    "bag_has_key": Function((2,), _bag_has_key, "bool"),
    "bag_remove_keys": Function((2,), _bag_remove_keys),
    "bag_set_key": Function((3,), _bag_set_key),
    "array_rotate_left": Function((2,), lambda a: _rotate(a, left=True)),
    "array_rotate_right": Function((2,), lambda a: _rotate(a, left=False)),
    "array_shift_left": Function((2, 3), lambda a: _shift(a, left=True)),
    "array_shift_right": Function((2, 3), lambda a: _shift(a, left=False)),
    "string_size": Function((1,), lambda a: f"octet_length(encode({_text(a[0])}))", "long"),
    "isascii": Function(
        (1,), lambda a: f"NOT regexp_matches({_text(a[0])}, '[^\\x00-\\x7F]')", "bool"
    ),
    "url_decode": Function(
        (1,),
        lambda a: f"coalesce(try(url_decode(replace({_text(a[0])}, '+', ' '))), '')",
        "string",
    ),
    "tohex": Function((1, 2), _tohex, "string"),
    # Only the forms duckdb-kql lacks: its own translates the two-argument ones.
    "split": Function((3,), _split_at),
    "strrep": Function((3,), _strrep, "string"),
    "indexof": Function((3, 4, 5), _indexof, "long"),
    "parse_path": Function((1,), _parse_path),
    "rand": Function(
        (0, 1),
        lambda a: f"floor(random() * TRY_CAST({a[0]} AS BIGINT))" if a else "random()",
        "real",
    ),
    "new_guid": Function((0,), lambda a: "uuid()", "guid"),
    "datetime_utc_to_local": Function(
        (2,),
        lambda a: f"timezone({_text(a[1])}, CAST({_text(a[0])} AS TIMESTAMPTZ))",
        "datetime",
    ),
    "datetime_local_to_utc": Function(
        (2,),
        lambda a: f"CAST(timezone({_text(a[1])}, CAST({_text(a[0])} AS TIMESTAMP)) AS TIMESTAMP)",
        "datetime",
    ),
}


__all__ = ["FUNCTIONS", "MANY_ARGUMENTS", "Function"]
