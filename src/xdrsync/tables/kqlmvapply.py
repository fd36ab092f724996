"""`mv-apply` whose subquery works row by row, as the `mv-expand` it then is (a rewrite of the
compatibility layer).

Kusto's `mv-apply` expands each record's arrays into a subtable, runs the subquery on it and
adds the record's other columns to what comes out. When every operator of the subquery reads
one row at a time (`where`, `extend`, `project`, `project-away`, `project-rename`), running it
on each subtable and on all of them at once gives the same rows, so

    T | mv-apply e = todynamic(Entities) on (where e.Type == "account" | project Name = e.Name)

is

    T | mv-expand e = todynamic(Entities) | where e.Type == "account"
      | extend Name = e.Name | project-away e

A `project` inside keeps the record's columns (the subquery never saw them): it becomes an
`extend` of what it computes and a `project-away` of the subtable's columns it leaves out.
`with_itemindex`, `to typeof()`, `limit` and several columns are `mv-expand`'s own syntax. A
subquery with any other operator (`summarize`, `top`, `take`, ...) works on each subtable as a
whole and is left as it is, for duckdb-kql to refuse. Pure, like the rest of the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from xdrsync.tables import kqltokens as kt
from xdrsync.tables.kqltokens import KqlLexer, Token

_MV_APPLY: Final = frozenset({KqlLexer.MV_APPLY, KqlLexer.MVAPPLY})
_ROW_BY_ROW: Final = frozenset({KqlLexer.WHERE, KqlLexer.FILTER, KqlLexer.EXTEND})


def mv_apply(tokens: list[Token]) -> list[Token]:
    """Every `mv-apply` whose subquery works row by row, as `mv-expand` and that subquery."""
    edits: dict[int, tuple[int, list[Token]]] = {}
    for i, token in enumerate(tokens):
        if token.kind not in _MV_APPLY or any(a <= i <= b for a, (b, _) in edits.items()):
            continue
        made = _rewrite(tokens, i)
        if made is not None:
            edits[i] = made
    return kt.apply_edits(tokens, edits)


def _rewrite(tokens: Sequence[Token], i: int) -> tuple[int, list[Token]] | None:
    end = kt.segment_end(tokens, i + 1)
    sig = kt.sig_indices(tokens, i + 1, end)
    on = next((j for j in sig if tokens[j].kind == KqlLexer.ON), None)
    if on is None:
        return None
    after = kt.next_sig(tokens, on)
    if after is None or tokens[after].kind != kt.OPENPAREN:
        return None
    close = kt.closing(tokens, after)
    if close >= len(tokens) or kt.sig_indices(tokens, close + 1, end):
        return None
    names = _expanded_names(tokens, i + 1, on)
    if names is None:
        return None
    o = tokens[i].origin
    out = [*kt.fragment("mv-expand", o), *tokens[i + 1 : on]]
    for a, b in kt.split_top(tokens, after + 1, close, kt.BAR):
        step = _step(kt.trim(tokens[a:b]), names, o)
        if step is None:
            return None
        for part in step:
            out.extend([*kt.fragment(" | ", o), *part])
    return close, out


def _expanded_names(tokens: Sequence[Token], start: int, on: int) -> set[str] | None:
    """The subtable's columns: each expanded column's name and the item index's; None when
    one is unnamed and not a column (Kusto then makes up a name)."""
    names: set[str] = set()
    for a, b in kt.split_top(tokens, start, on):
        sig = kt.sig_indices(tokens, a, b)
        if sig and tokens[sig[0]].kind == KqlLexer.WITH_ITEM_INDEX:
            if len(sig) < 3 or tokens[sig[1]].kind != kt.EQUAL:
                return None
            names.add(tokens[sig[2]].text)
            sig = sig[3:]
        if len(sig) >= 2 and tokens[sig[-2]].kind == KqlLexer.LIMIT:
            sig = sig[:-2]
        if not sig or tokens[sig[0]].kind != kt.IDENTIFIER:
            return None
        named = len(sig) > 2 and tokens[sig[1]].kind == kt.EQUAL
        bare = [tokens[j].kind for j in sig[1:]] in ([], [KqlLexer.TO, KqlLexer.TYPELITERAL])
        if not (named or bare):
            return None
        names.add(tokens[sig[0]].text)
    return names or None


def _step(op: list[Token], names: set[str], origin: int) -> list[list[Token]] | None:
    """One operator of the subquery as operators over the expanded rows (updating `names`,
    the subtable's columns); None when it does not work row by row."""
    sig = [j for j, t in enumerate(op) if not t.hidden]
    if not sig:
        return None
    kind = op[sig[0]].kind
    items = kt.split_top(op, sig[0] + 1, len(op))
    if kind in _ROW_BY_ROW:
        if kind == KqlLexer.EXTEND:
            assigned = [_assigned(op, a, b) for a, b in items]
            if None in assigned:
                return None
            names.update(n for n in assigned if n is not None)
        return [op]
    if kind == KqlLexer.PROJECTAWAY:
        gone = [_column(op, a, b) for a, b in items]
        if None in gone or not set(gone) <= names:
            return None
        names.difference_update(n for n in gone if n is not None)
        return [op]
    if kind == KqlLexer.PROJECTRENAME:
        pairs = [(_assigned(op, a, b), _source(op, a, b)) for a, b in items]
        if any(new is None or old not in names for new, old in pairs):
            return None
        for new, old in pairs:
            names.discard(str(old))
            names.add(str(new))
        return [op]
    if kind == KqlLexer.PROJECT:
        return _project(op, items, names, origin)
    return None


def _project(
    op: list[Token], items: list[tuple[int, int]], names: set[str], origin: int
) -> list[list[Token]] | None:
    """`project a = f(e), e` in the subquery: the record's columns stay, so it is `extend a =
    f(e)` and a `project-away` of the subtable's columns it leaves out."""
    computed: list[list[Token]] = []
    kept: set[str] = set()
    for a, b in items:
        named = _assigned(op, a, b)
        if named is not None:
            computed.append(kt.trim(op[a:b]))
            kept.add(named)
            continue
        column = _column(op, a, b)
        if column is None or column not in names:
            return None  # an outer column, or an unnamed expression
        kept.add(column)
    steps: list[list[Token]] = []
    if computed:
        extend = kt.fragment("extend ", origin)
        for n, item in enumerate(computed):
            extend.extend([*(kt.fragment(", ", origin) if n else []), *item])
        steps.append(extend)
    gone = sorted(names - kept)
    if gone:
        steps.append(kt.fragment("project-away " + ", ".join(gone), origin))
    names.clear()
    names.update(kept)
    return steps or [kt.fragment("where true", origin)]


def _assigned(op: Sequence[Token], a: int, b: int) -> str | None:
    """The name an `extend`/`project` item assigns (`name = ...`), None if it assigns none."""
    sig = [j for j in range(a, b) if not op[j].hidden]
    if len(sig) >= 3 and op[sig[0]].kind == kt.IDENTIFIER and op[sig[1]].kind == kt.EQUAL:
        return op[sig[0]].text
    return None


def _source(op: Sequence[Token], a: int, b: int) -> str | None:
    """The column a `project-rename new = old` item renames."""
    sig = [j for j in range(a, b) if not op[j].hidden]
    return op[sig[2]].text if len(sig) == 3 and op[sig[2]].kind == kt.IDENTIFIER else None


def _column(op: Sequence[Token], a: int, b: int) -> str | None:
    """The item when it is a column name alone."""
    sig = [j for j in range(a, b) if not op[j].hidden]
    return op[sig[0]].text if len(sig) == 1 and op[sig[0]].kind == kt.IDENTIFIER else None


__all__ = ["mv_apply"]
