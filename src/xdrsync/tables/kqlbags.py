"""`evaluate bag_unpack` as operators duckdb-kql translates (a rewrite of the compatibility
layer).

A bag's keys become columns. When the schema lists the keys (`Owner`, `AdditionalData`) the
rewrite writes one typed `extend` per key; otherwise `bag_probes` gives the query up to the
`bag_unpack`, which the caller runs to read the keys the data has (`querying.run`),
and the rewrite runs again with them. Pure, like the rest of the layer (`compat`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqltokens import Token

_CONVERT: Final = {
    "string": "tostring",
    "long": "tolong",
    "int": "toint",
    "real": "todouble",
    "bool": "tobool",
    "datetime": "todatetime",
}


#: The column of a `Rewritten.probes` query that holds the bags to unpack.
PROBE_COLUMN: Final = "xdrsync_bag"


@dataclass(frozen=True)
class _Unpack:
    """One `evaluate bag_unpack(C [, 'prefix'])`: where it is and what it names."""

    evaluate: int  # the `evaluate` token
    last: int  # its closing parenthesis
    column: str
    prefix: str


def _unpacks(tokens: Sequence[Token]) -> list[_Unpack]:
    """Every `evaluate bag_unpack(C)` or `bag_unpack(C, 'prefix')` the layer can rewrite."""
    found: list[_Unpack] = []
    for s, sig in kt.plugin_calls(tokens, "bag_unpack"):
        if tokens[sig[1]].kind != kt.OPENPAREN or kt.closing(tokens, sig[1]) != sig[-1]:
            continue  # an output schema or anything after the call: not rewritten
        args = kt.split_top(tokens, sig[1] + 1, sig[-1])
        column = [tokens[j] for j in kt.sig_indices(tokens, *args[0])]
        prefix = ""
        if len(args) == 2:
            literal = [tokens[j] for j in kt.sig_indices(tokens, *args[1])]
            value = kt.string_value(literal[0]) if len(literal) == 1 else None
            if value is None or not _plain_key(value):
                continue
            prefix = value
        if len(args) > 2 or len(column) != 1 or not column[0].is_word:
            continue
        found.append(_Unpack(s, sig[-1], column[0].text, prefix))
    return found


def _plain_key(key: str) -> bool:
    """A key that can be written inside `['...']` as it is."""
    return key.isprintable() and not any(ch in key for ch in "'\\")


def bag_unpack(tokens: list[Token], bags: Mapping[str, Sequence[tuple[str, str]]]) -> list[Token]:
    """`evaluate bag_unpack(C [, 'prefix'])` -> one `extend` per known key, then `C` removed:
    Kusto's output for a bag with those keys (the keys become columns, typed, after the
    input's columns; the bag column is dropped)."""
    edits: dict[int, tuple[int, list[Token]]] = {}
    for unpack in _unpacks(tokens):
        keys = bags.get(unpack.column)
        if keys is None or not all(_plain_key(key) for key, _ in keys):
            continue
        name = unpack.column
        items = []
        for key, kql_type in keys:
            target = f"{unpack.prefix}{key}"
            if not (target.isascii() and target.replace("_", "a").isalnum()):
                target = f"['{target}']"
            read = f"{name}['{key}']"
            convert = _CONVERT.get(kql_type)
            items.append(f"{target} = {convert}({read})" if convert else f"{target} = {read}")
        # No keys (no row holds a bag): Kusto's output is the input without the column.
        text = (
            f"extend {', '.join(items)} | project-away {name}" if items else f"project-away {name}"
        )
        origin = tokens[unpack.evaluate].origin
        edits[unpack.evaluate] = (unpack.last, kt.fragment(text, origin))
    return kt.apply_edits(tokens, edits)


def bag_probes(
    tokens: Sequence[Token], bags: Mapping[str, Sequence[tuple[str, str]]]
) -> list[tuple[str, str]]:
    """For each `bag_unpack` of a bag whose keys are not known, at the top level of a
    statement: (its column, the query up to it with one column, `PROBE_COLUMN`, of bags)."""
    probes: list[tuple[str, str]] = []
    for unpack in _unpacks(tokens):
        if unpack.column in bags:
            continue
        before = kt.query_before(tokens, unpack.evaluate)
        if before is not None:
            probes.append((unpack.column, f"{before}| project {PROBE_COLUMN} = {unpack.column}"))
    return probes


__all__ = ["PROBE_COLUMN", "bag_probes", "bag_unpack"]
