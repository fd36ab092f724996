"""Kusto's IPv4 comparison functions, written with `parse_ipv4`, which duckdb-kql translates
(a rewrite of the compatibility layer).

Kusto reads `"a.b.c.d/p"` (IP-prefix notation) as the address with all but its first `p` bits
cleared, and `parse_ipv4` answers that number, or null for text that is no IPv4 address or
prefix. Two addresses are compared under their *combined* prefix: the smallest of the
prefixes they carry (32 when none) and the optional prefix argument. So, as Kusto documents
them:

* `ipv4_compare(a, b [, p])` -> -1, 0 or 1 as `a` is below, equal to or above `b`;
* `ipv4_is_match(a, b [, p])` -> whether they are equal;
* `ipv4_is_in_range(ip, range)` -> whether `ip` is in `range` (`"10.0.0.0/8"`), as a match;
* `ipv4_is_private(ip)` -> whether `ip` (its whole block, when it carries a prefix) lies in
  10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16;
* `parse_ipv4_mask(ip, p)` -> the number of `ip` under the prefix `p`;
* `ipv4_netmask_suffix(ip)` -> the prefix it carries (32 when none).

Each is null when an address is not one, or a prefix argument is not 0 to 32. Two numbers
are equal under a prefix when the first bits of their `binary_xor` are 0, which names each
argument once there; the null check and the prefix name it again, so an argument is written
out three times or so. An argument holding another of these functions would multiply that
(and `prev()`/`next()` would read no row inside `parse_ipv4`'s subquery): it is refused,
saying to name it first. Pure, like the rest of the layer (`compat`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqltokens import KqlLexer, Token
from xdrsync.tables.rewritten import RewriteRefusedError

#: RFC 1918's private ranges, as `ipv4_is_private` documents them: (first, last, prefix).
PRIVATE_RANGES: Final = (
    (0x0A000000, 0x0AFFFFFF, 8),  # 10.0.0.0/8
    (0xAC100000, 0xAC1FFFFF, 12),  # 172.16.0.0/12
    (0xC0A80000, 0xC0A8FFFF, 16),  # 192.168.0.0/16
)
_ONE_ADDRESS: Final = frozenset({"ipv4_is_private", "parse_ipv4_mask", "ipv4_netmask_suffix"})
#: Keywords after which a name is bound (a `let`, a column `mv-expand` retypes).
_BINDERS: Final = frozenset({KqlLexer.LET, KqlLexer.MV_EXPAND, KqlLexer.MVEXPAND})
_ASSIGNS: Final = frozenset({kt.EQUAL, kt.COLON})
#: Tokens that end a value, after which `[` indexes it.
_VALUE_ENDS: Final = frozenset({kt.IDENTIFIER, kt.CLOSEPAREN, kt.CLOSEBRACKET, kt.STRING})
#: Calls that may not stand in an argument (see the module's notes).
_NESTED: Final = frozenset({"prev", "next", "row_number"})


def ipv4_functions(tokens: list[Token], strings: Collection[str], kql: str) -> list[Token]:
    """Every call of the functions above, written with `parse_ipv4`; a function the query
    defines itself (`let ipv4_compare = ...`) is left to it. ``strings``: the columns that
    are text in every table (they need no `tostring()`); ``kql``: the query, for messages."""
    names = {name for name, _, _ in _REWRITES}
    if not any(t.text in names for t in tokens):  # most queries: no pass over them at all
        return tokens
    refused = {n for n in names | _NESTED if not kt.defines(tokens, n)}
    text = set(strings) - _rebound(tokens)
    for name, arity, write in _REWRITES:
        if kt.defines(tokens, name):
            continue

        def rewrite(
            origin: int,
            args: list[list[Token]],
            name: str = name,
            arity: int = arity,
            write: Callable[[list[str]], str] = write,
        ) -> list[Token]:
            for arg in args:
                if any(t.text in refused and kt.is_call(arg, j) for j, t in enumerate(arg)):
                    line, column = kt.line_col(kql, origin)
                    call = f"{name}(ip)" if arity == 1 else f"{name}(ip, ...)"
                    raise RewriteRefusedError(
                        f"{name}() at {line}:{column}: an argument holding another IPv4 "
                        "function, prev(), next() or row_number() is not supported; name it "
                        f"first (`extend ip = ... | where {call}`)"
                    )
            # The addresses come first; a prefix argument, last, is a number.
            addresses = 1 if name in _ONE_ADDRESS else 2
            texts = [
                _text(kt.render(arg), text) if n < addresses else kt.render(arg).strip()
                for n, arg in enumerate(args)
            ]
            return kt.fragment(write(texts), origin)

        tokens = kt.rewrite_calls(tokens, name, arity, rewrite)
    return tokens


def _rebound(tokens: Sequence[Token]) -> set[str]:
    """The names the query binds itself (`x = ...`, `x: type`, `let x`, `mv-expand x`, a
    tuple `(x, y) = ...`): a text column's name may hold anything there."""
    bound: set[str] = set()
    for i, token in enumerate(tokens):
        if token.kind in (KqlLexer.MV_EXPAND, KqlLexer.MVEXPAND):  # `mv-expand a, b`
            for a, b in kt.split_top(tokens, i + 1, kt.segment_end(tokens, i + 1)):
                first = kt.first_sig(tokens, a, b)
                if first is not None and tokens[first].kind == kt.IDENTIFIER:
                    bound.add(tokens[first].text)
        if token.kind == kt.STRING:  # `['RemoteIP'] = ...`, `datatable(['RemoteIP']: dynamic)`
            name = _bracketed_name(tokens, i)
            after = kt.next_sig(tokens, kt.next_sig(tokens, i) or i)
            if name is not None and after is not None and tokens[after].kind in _ASSIGNS:
                bound.add(name)
            continue
        if token.kind != kt.IDENTIFIER:
            continue
        after, before = kt.next_sig(tokens, i), kt.prev_sig(tokens, i)
        assigned = after is not None and tokens[after].kind in _ASSIGNS
        if assigned or (before is not None and tokens[before].kind in _BINDERS):
            bound.add(token.text)
        elif before is not None and tokens[before].kind in (kt.OPENPAREN, kt.COMMA):
            opener: int | None = before
            while opener is not None and tokens[opener].kind != kt.OPENPAREN:
                opener = kt.prev_sig(tokens, opener)
            close = kt.closing(tokens, opener) if opener is not None else len(tokens)
            following = kt.next_sig(tokens, close) if close < len(tokens) else None
            if following is not None and tokens[following].kind == kt.EQUAL:
                bound.add(token.text)
    return bound


def _bracketed_name(tokens: Sequence[Token], i: int) -> str | None:
    """The name the string at `i` spells as `['Name']`, a column name, not an index into a
    value (`x['key']`)."""
    value = kt.bracketed_string(tokens, i)
    opener = kt.prev_sig(tokens, i)
    before = kt.prev_sig(tokens, opener) if opener is not None else None
    if value is None or (before is not None and tokens[before].kind in _VALUE_ENDS):
        return None
    return value


def _text(arg: str, strings: Collection[str]) -> str:
    """The argument as text: a string literal or text column as it is, else `tostring()`
    (which duckdb-kql writes as a long `CASE` over its argument's type)."""
    bare = arg.strip()
    if bare in strings or (bare[:1] in "\"'" and bare[-1:] == bare[:1]):
        return bare
    return f"tostring({bare})"


def _number(ip: str) -> str:
    """`parse_ipv4` of `ip`: its address under its own prefix, null when it is no address."""
    return f"parse_ipv4({ip})"


def _prefix(ip: str) -> str:
    """The prefix `ip` carries, null when none (`parse_ipv4` allows blanks around it)."""
    return f'toint(extract(@"/\\s*([0-9]+)\\s*$", 1, {ip}))'


def _combined(ips: Sequence[str], prefix: str | None) -> str:
    """The smallest prefix of `ips` and `prefix`, 32 when none (`min_of` skips nulls)."""
    parts = [_prefix(ip) for ip in ips]
    if prefix is not None:
        parts.append(f"toint({prefix})")
    return f"min_of({', '.join(parts)}, 32)"


def _guarded(ips: Sequence[str], prefix: str | None, value: str, null: str) -> str:
    """`value`, or the typed `null` when one of `ips` is no address or `prefix` is not 0 to 32:
    Kusto's `==` and `<` answer false, not null, when a side is null."""
    invalid = [f"isnull({_number(ip)})" for ip in ips]
    if prefix is not None and not (prefix.isdigit() and int(prefix) <= 32):
        number = f"toint({prefix})"
        invalid.append(f"isnull({number}) or not({number} between (0 .. 32))")
    return f"iff({' or '.join(invalid)}, {null}, {value})"


def _different_bits(a: str, b: str, prefix: str | None) -> str:
    """Non-zero when `a` and `b` differ under their combined prefix."""
    bits = _combined([a, b], prefix)
    return f"binary_shift_right(binary_xor({_number(a)}, {_number(b)}), 32 - {bits})"


def _compare(args: list[str]) -> str:
    a, b, *rest = args
    prefix = rest[0] if rest else None
    differ = f"tolong({_different_bits(a, b, prefix)} != 0)"
    order = f"tolong({_number(a)} > {_number(b)}) - tolong({_number(a)} < {_number(b)})"
    # Differing under the prefix, they differ first there: the whole numbers order alike.
    return _guarded([a, b], prefix, f"{differ} * ({order})", "long(null)")


def _match(args: list[str]) -> str:
    a, b, *rest = args
    prefix = rest[0] if rest else None
    return _guarded([a, b], prefix, f"{_different_bits(a, b, prefix)} == 0", "bool(null)")


def _private(args: list[str]) -> str:
    (ip,) = args
    number, prefix = _number(ip), f"coalesce({_prefix(ip)}, 32)"
    inside = " or ".join(
        f"({number} between ({first} .. {last}) and {prefix} >= {bits})"
        for first, last, bits in PRIVATE_RANGES
    )
    return _guarded([ip], None, inside, "bool(null)")


def _mask(args: list[str]) -> str:
    ip, prefix = args
    bits = _combined([ip], prefix)
    top = f"binary_shift_right({_number(ip)}, 32 - {bits})"
    return _guarded([ip], prefix, f"binary_shift_left({top}, 32 - {bits})", "long(null)")


def _suffix(args: list[str]) -> str:
    (ip,) = args
    return _guarded([ip], None, f"coalesce({_prefix(ip)}, 32)", "int(null)")


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
