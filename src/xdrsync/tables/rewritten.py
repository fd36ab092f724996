"""A query as the compatibility layer (`compat`) rewrote it, and the way back to the user's
text: plain data, so a kept translation (`translations`) holds it without the KQL lexer, which
loads only when a message needs a position mapped."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field


class RewriteRefusedError(ValueError):
    """A form the compatibility layer recognises and refuses; the message says what to write."""


@dataclass(frozen=True)
class Rewritten:
    """A query as duckdb-kql will see it, with what is needed to speak about the original."""

    original: str
    text: str
    #: Stored-function definitions lifted from the query's tabular `let` functions.
    functions: tuple[str, ...] = ()
    #: Internal name -> the name the user wrote.
    renames: Mapping[str, str] = field(default_factory=dict)
    #: Which rewrites changed something, by name (for tests and the benchmark).
    applied: tuple[str, ...] = ()
    #: Sorted output offsets where a token starts, and the original offset each came from.
    starts: tuple[int, ...] = ()
    origins: tuple[int, ...] = ()
    #: Per token: whether it is the user's own text (so an offset inside it maps 1:1).
    exact: tuple[bool, ...] = ()
    #: Log Analytics' hidden standard columns the query names (`schemas.HIDDEN_COLUMNS`).
    hidden: tuple[str, ...] = ()
    #: For each `evaluate bag_unpack(C)` whose keys are not known: (C, a query whose one
    #: column `PROBE_COLUMN` holds the bags), so the caller can read the keys from the data;
    #: and for each `evaluate pivot` whose values or input columns are not known, the same
    #: under a key `kqlpivot.PIVOT_VALUES` or `PIVOT_COLUMNS` starts (its columns: any query).
    probes: tuple[tuple[str, str], ...] = ()

    @property
    def ordered_lists(self) -> bool:
        """Whether `make_list` must keep the order rows arrive in (the series `make-series`
        builds): DuckDB keeps it only when the query runs on one thread."""
        return "make-series" in self.applied

    def position(self, line: int, column: int) -> tuple[int, int]:
        """A line:column in `text` as the line:column in the user's query it came from."""
        if not self.starts:
            return line, column
        from xdrsync.tables import kqltokens as kt

        offset = kt.offset_of(self.text, line, column)
        index = max(0, bisect.bisect_right(self.starts, offset) - 1)
        within = offset - self.starts[index] if self.exact[index] else 0
        return kt.line_col(self.original, self.origins[index] + within)

    def restore(self, text: str) -> str:
        """`text` (a column name, a message) with internal names put back as the user's."""
        for internal, name in self.renames.items():
            text = text.replace(internal, name)
        return text

    def locate(self, word: str) -> tuple[int, int] | None:
        """Where `word` (a name, as the user wrote it) first appears in the user's query."""
        from xdrsync.tables import kqltokens as kt

        try:
            tokens = kt.tokenize(self.original)
        except kt.LexError:
            return None
        for token in tokens:
            if token.is_word and token.text == word:
                return kt.line_col(self.original, token.origin)
        return None


def unchanged(kql: str) -> Rewritten:
    return Rewritten(original=kql, text=kql)


__all__ = ["RewriteRefusedError", "Rewritten", "unchanged"]
