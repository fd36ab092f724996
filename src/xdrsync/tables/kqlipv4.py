"""Kusto's IPv4 comparison functions, written with `parse_ipv4`, which duckdb-kql translates
(a rewrite of the compatibility layer).

Kusto reads `"a.b.c.d/p"` (IP-prefix notation) as the address with all but its first `p` bits
cleared, and `parse_ipv4` answers that number, or null for text that is no IPv4 address or
prefix. Two addresses are compared under their *combined* prefix: the smallest of the
prefixes they carry (32 when none) and the optional prefix argument. So, as Kusto documents
them:

* `ipv4_compare(a, b [, p])` -> -1, 0 or 1 as `a` is below, equal to or above `b`;
* `ipv4_is_match(a, b [, p])` -> whether they are equal;
* `ipv4_is_in_range(ip, range)` -> whether `ip` is in `range` (`"10.0.0.0/8"`);
* `ipv4_is_private(ip)` -> whether it is in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16;
* `parse_ipv4_mask(ip, p)` -> the number of `ip` under the prefix `p`;
* `ipv4_netmask_suffix(ip)` -> the prefix it carries (32 when none).

Each is null when an address (or the prefix) is not valid. The arguments are any
expressions, columns and values from a `join` as well as literals; each is written out
where it is used, which is only longer, not different, since expressions have no side
effects. Pure, like the rest of the layer (`compat`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqltokens import Token

#: RFC 1918's private ranges, as `ipv4_is_private` documents them.
PRIVATE_RANGES: Final = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def ipv4_functions(tokens: list[Token]) -> list[Token]:
    """Every call of the functions above, written with `parse_ipv4`; a function the query
    defines itself (`let ipv4_compare = ...`) is left to it."""
    for name, arity, write in _REWRITES:
        if not kt.defines(tokens, name):
            tokens = kt.rewrite_calls(tokens, name, arity, _writer(write))
    return tokens


def _writer(
    write: Callable[[list[str]], str],
) -> Callable[[int, list[list[Token]]], list[Token]]:
    """A `rewrite_calls` callback from a function of the arguments' text."""

    def rewrite(origin: int, args: list[list[Token]]) -> list[Token]:
        return kt.fragment(write([kt.render(arg) for arg in args]), origin)

    return rewrite


def _number(ip: str) -> str:
    """`parse_ipv4` of `ip`: its address under its own prefix, null when it is no address."""
    return f"parse_ipv4(tostring({ip}))"


def _prefix(ip: str) -> str:
    """The prefix `ip` carries, null when none."""
    return f'toint(extract("/([0-9]+)$", 1, tostring({ip})))'


def _combined(ips: Sequence[str], prefix: str | None) -> str:
    """The smallest prefix of `ips` and `prefix`, 32 when none (`min_of` skips nulls)."""
    parts = [_prefix(ip) for ip in ips]
    if prefix is not None:
        parts.append(f"toint({prefix})")
    return f"min_of({', '.join(parts)}, 32)"


def _top(ip: str, bits: str) -> str:
    """The first `bits` bits of `ip`'s number: a comparison of these is one under that
    prefix (the number carries `ip`'s own prefix already, which is never shorter)."""
    return f"binary_shift_right({_number(ip)}, 32 - {bits})"


def _guarded(ips: Sequence[str], value: str, null: str) -> str:
    """`value`, or the typed `null` when one of `ips` is no address: Kusto's `==` and `<`
    answer false, not null, when a side is null, and the functions answer null then."""
    invalid = " or ".join(f"isnull({_number(ip)})" for ip in ips)
    return f"iff({invalid}, {null}, {value})"


def _compare(args: list[str]) -> str:
    a, b, *rest = args
    bits = _combined([a, b], rest[0] if rest else None)
    x, y = _top(a, bits), _top(b, bits)
    return _guarded([a, b], f"tolong({x} > {y}) - tolong({x} < {y})", "long(null)")


def _match(args: list[str]) -> str:
    a, b, *rest = args
    bits = _combined([a, b], rest[0] if rest else None)
    return _guarded([a, b], f"{_top(a, bits)} == {_top(b, bits)}", "bool(null)")


def _private(args: list[str]) -> str:
    (ip,) = args
    tests = []
    for network in PRIVATE_RANGES:
        bits = _combined([ip], network.partition("/")[2])
        tests.append(f"{_top(ip, bits)} == {_top(f'{network!r}', bits)}")
    return _guarded([ip], " or ".join(tests), "bool(null)")


def _mask(args: list[str]) -> str:
    ip, prefix = args
    bits = _combined([ip], prefix)
    return f"binary_shift_left({_top(ip, bits)}, 32 - {bits})"


def _suffix(args: list[str]) -> str:
    (ip,) = args
    return f"iff(isnull({_number(ip)}), int(null), coalesce({_prefix(ip)}, 32))"


_REWRITES: Final[tuple[tuple[str, int, Callable[[list[str]], str]], ...]] = (
    ("ipv4_compare", 2, _compare),
    ("ipv4_compare", 3, _compare),
    ("ipv4_is_match", 2, _match),
    ("ipv4_is_match", 3, _match),
    ("ipv4_is_in_range", 2, _match),
    ("ipv4_is_private", 1, _private),
    ("parse_ipv4_mask", 2, _mask),
    ("ipv4_netmask_suffix", 1, _suffix),
)


__all__ = ["PRIVATE_RANGES", "ipv4_functions"]
