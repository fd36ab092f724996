"""KQL as tokens: duckdb-kql's own lexer (Microsoft's `Kql.g4`), and helpers to walk them.

The compatibility layer (`compat`) rewrites queries token by token, never with regexes over
the raw text, so a `|` inside a string, a `render ... with (title=...)` property or an
`x['title']` access is never mistaken for query structure. The tokens come from the lexer
duckdb-kql's parser uses, so both agree on where every token begins and ends; it lives in the
package's private `_antlr` module, which is why it is imported here and nowhere else.

Every token remembers `origin`, the offset in the user's text it came from; tokens a rewrite
inserts take the origin of what they replace, so a position in the rewritten query maps back
to one in the query the user wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from antlr4 import InputStream  # type: ignore[import-untyped]
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from duckdb_kql._antlr.KqlLexer import KqlLexer

BAR: Final = KqlLexer.BAR
COMMA: Final = KqlLexer.COMMA
DOT: Final = KqlLexer.DOT
EQUAL: Final = KqlLexer.EQUAL
SEMICOLON: Final = KqlLexer.SEMICOLON
OPENPAREN: Final = KqlLexer.OPENPAREN
CLOSEPAREN: Final = KqlLexer.CLOSEPAREN
OPENBRACKET: Final = KqlLexer.OPENBRACKET
CLOSEBRACKET: Final = KqlLexer.CLOSEBRACKET
OPENBRACE: Final = KqlLexer.OPENBRACE
CLOSEBRACE: Final = KqlLexer.CLOSEBRACE
IDENTIFIER: Final = KqlLexer.IDENTIFIER
STRING: Final = KqlLexer.STRINGLITERAL
WHITESPACE: Final = KqlLexer.WHITESPACE
COMMENT: Final = KqlLexer.COMMENT
COLON: Final = KqlLexer.COLON

_OPEN: Final = {OPENPAREN: CLOSEPAREN, OPENBRACKET: CLOSEBRACKET, OPENBRACE: CLOSEBRACE}
_CLOSE: Final = frozenset(_OPEN.values())
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class LexError(ValueError):
    """The text does not lex as KQL; the parser will say why, so callers leave it alone."""


class _Raise(ErrorListener):  # type: ignore[misc]  # the ANTLR runtime is untyped
    def syntaxError(  # noqa: N802 - ANTLR's interface
        self, recognizer: object, offending: object, line: int, column: int, msg: str, e: object
    ) -> None:
        raise LexError(f"{line}:{column}: {msg}")


@dataclass(frozen=True)
class Token:
    """One lexer token, or a token a rewrite put in its place."""

    kind: int
    text: str
    origin: int
    #: True for a token a rewrite made: a position inside it maps to its origin, not beyond.
    synthetic: bool = False

    @property
    def hidden(self) -> bool:
        return self.kind in (WHITESPACE, COMMENT)

    @property
    def is_word(self) -> bool:
        """A name-shaped token: an identifier, or a keyword spelled like one (`title`)."""
        return self.kind != STRING and bool(_WORD.match(self.text))

    def lower(self) -> str:
        return self.text.lower()


def tokenize(text: str) -> list[Token]:
    """Every token of `text`, whitespace and comments included, so joining the texts gives
    `text` back."""
    lexer = KqlLexer(InputStream(text))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_Raise())
    return [Token(t.type, t.text, t.start) for t in lexer.getAllTokens()]


def fragment(text: str, origin: int) -> list[Token]:
    """Tokens for text a rewrite inserts, all mapped back to `origin`."""
    return [Token(t.kind, t.text, origin, synthetic=True) for t in tokenize(text)]


def trim(tokens: Sequence[Token]) -> list[Token]:
    """`tokens` without leading and trailing whitespace and comments."""
    sig = [i for i, t in enumerate(tokens) if not t.hidden]
    return list(tokens[sig[0] : sig[-1] + 1]) if sig else []


def render(tokens: Iterable[Token]) -> str:
    return "".join(t.text for t in tokens)


def next_sig(tokens: Sequence[Token], i: int) -> int | None:
    """Index of the first significant (non-whitespace, non-comment) token after `i`."""
    for j in range(i + 1, len(tokens)):
        if not tokens[j].hidden:
            return j
    return None


def prev_sig(tokens: Sequence[Token], i: int) -> int | None:
    for j in range(i - 1, -1, -1):
        if not tokens[j].hidden:
            return j
    return None


def first_sig(tokens: Sequence[Token], start: int, end: int) -> int | None:
    for j in range(start, end):
        if not tokens[j].hidden:
            return j
    return None


def closing(tokens: Sequence[Token], i: int) -> int:
    """Index of the bracket closing the one at `i` (or len(tokens) when it is never closed)."""
    want = _OPEN[tokens[i].kind]
    depth = 0
    for j in range(i, len(tokens)):
        kind = tokens[j].kind
        if kind in _OPEN:
            depth += 1
        elif kind in _CLOSE:
            depth -= 1
            if depth == 0:
                return j if kind == want else len(tokens)
    return len(tokens)


def segment_end(tokens: Sequence[Token], start: int) -> int:
    """Where the operator starting at `start` ends: the next `|` or `;` at its own depth, or
    the bracket that closes the one it is in (exclusive)."""
    depth = 0
    for j in range(start, len(tokens)):
        kind = tokens[j].kind
        if kind in _OPEN:
            depth += 1
        elif kind in _CLOSE:
            if depth == 0:
                return j
            depth -= 1
        elif depth == 0 and kind in (BAR, SEMICOLON):
            return j
    return len(tokens)


def split_top(
    tokens: Sequence[Token], start: int, end: int, separator: int = COMMA
) -> list[tuple[int, int]]:
    """`[start, end)` split at the `separator` tokens (commas; or `|`, `;`) outside any
    bracket."""
    parts: list[tuple[int, int]] = []
    depth = 0
    begin = start
    for j in range(start, end):
        kind = tokens[j].kind
        if kind in _OPEN:
            depth += 1
        elif kind in _CLOSE:
            depth -= 1
        elif depth == 0 and kind == separator:
            parts.append((begin, j))
            begin = j + 1
    parts.append((begin, end))
    return parts


def sig_indices(tokens: Sequence[Token], start: int, end: int) -> list[int]:
    return [j for j in range(start, end) if not tokens[j].hidden]


def blank(tokens: Sequence[Token]) -> list[Token]:
    """Whitespace standing in for removed tokens, keeping their line breaks, so every token
    after them stays on the same line and column."""
    return [
        Token(WHITESPACE, "".join("\n" if ch == "\n" else " " for ch in t.text), t.origin, True)
        for t in tokens
    ]


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and 0-based column of `offset` in `text` (duckdb-kql's convention)."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1)
    return line, column


def offset_of(text: str, line: int, column: int) -> int:
    """The offset of a 1-based line and 0-based column in `text`."""
    start = 0
    for _ in range(line - 1):
        found = text.find("\n", start)
        if found < 0:
            return len(text)
        start = found + 1
    return min(start + column, len(text))


__all__ = [
    "BAR",
    "CLOSEBRACE",
    "CLOSEBRACKET",
    "CLOSEPAREN",
    "COLON",
    "COMMA",
    "COMMENT",
    "DOT",
    "EQUAL",
    "IDENTIFIER",
    "OPENBRACE",
    "OPENBRACKET",
    "OPENPAREN",
    "SEMICOLON",
    "STRING",
    "WHITESPACE",
    "KqlLexer",
    "LexError",
    "Token",
    "blank",
    "closing",
    "first_sig",
    "fragment",
    "line_col",
    "next_sig",
    "offset_of",
    "prev_sig",
    "render",
    "segment_end",
    "sig_indices",
    "split_top",
    "tokenize",
    "trim",
]


# -- helpers the rewrites share ---------------------------------------------------------------


def is_call(tokens: Sequence[Token], i: int) -> bool:
    after = next_sig(tokens, i)
    return after is not None and tokens[after].kind == OPENPAREN


def after_dot(tokens: Sequence[Token], i: int) -> bool:
    before = prev_sig(tokens, i)
    return before is not None and tokens[before].kind == DOT


def string_value(token: Token) -> str | None:
    """The value of a plain string literal (no escapes), or None."""
    text = token.text
    if text[:1] in "@hH":
        text = text[1:]
    if len(text) < 2 or text[0] not in "'\"" or text[-1] != text[0] or "\\" in text:
        return None
    return text[1:-1]


def bracketed_string(tokens: Sequence[Token], i: int) -> str | None:
    """The value of the plain string literal at `i` when it stands alone inside `[...]`: a
    name `['Name']`, or an index into a value `x['key']`; else None."""
    if tokens[i].kind != STRING:
        return None
    opener, closer = prev_sig(tokens, i), next_sig(tokens, i)
    if opener is None or closer is None or tokens[opener].kind != OPENBRACKET:
        return None
    return string_value(tokens[i]) if tokens[closer].kind == CLOSEBRACKET else None


def calls(
    tokens: Sequence[Token], name: str, arity: int | None
) -> Iterator[tuple[int, int, list[list[Token]]]]:
    """Each call of the function ``name`` with ``arity`` arguments (None: any number; `name()`
    has one, empty): (the index of its name, of its closing parenthesis, its arguments
    without surrounding blanks)."""
    for i, token in enumerate(tokens):
        if token.text != name or not is_call(tokens, i) or after_dot(tokens, i):
            continue
        open_ = next_sig(tokens, i)
        assert open_ is not None
        close = closing(tokens, open_)
        args = split_top(tokens, open_ + 1, close)
        if close < len(tokens) and (arity is None or len(args) == arity):
            yield i, close, [trim(tokens[a:b]) for a, b in args]


def defines(tokens: Sequence[Token], name: str) -> bool:
    """Whether the query binds `name` itself (`let name = ...`)."""
    for i, token in enumerate(tokens):
        if token.kind == KqlLexer.LET:
            after = next_sig(tokens, i)
            if after is not None and tokens[after].text == name:
                return True
    return False


def apply_edits(tokens: list[Token], edits: Mapping[int, tuple[int, list[Token]]]) -> list[Token]:
    """Replace `tokens[i:last+1]` with the new tokens for every `i -> (last, new)`."""
    if not edits:
        return tokens
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        if i in edits:
            last, new = edits[i]
            out.extend(new)
            i = last + 1
        else:
            out.append(tokens[i])
            i += 1
    return out


def rewrite_calls(
    tokens: list[Token],
    name: str,
    arity: int | None,
    rewrite: Callable[[int, list[list[Token]]], list[Token] | None],
) -> list[Token]:
    """Each call of ``name`` with ``arity`` arguments replaced by what ``rewrite`` makes of
    (the call's origin, its arguments); a call it returns None for is kept. A call inside
    another's arguments is rewritten on the next pass (at most eight)."""
    for _ in range(8):
        edits: dict[int, tuple[int, list[Token]]] = {}
        for i, close, args in calls(tokens, name, arity):
            if any(first <= i <= last for first, (last, _) in edits.items()):
                continue
            made = rewrite(tokens[i].origin, args)
            if made is not None:
                edits[i] = (close, made)
        if not edits:
            break
        tokens = apply_edits(tokens, edits)
    return tokens


def let_binding(tokens: Sequence[Token], start: int) -> tuple[int, int] | None:
    """When `start` begins the value of `let NAME = ...`: the indices of `let` and of NAME."""
    eq = prev_sig(tokens, start)
    if eq is None or tokens[eq].kind != EQUAL:
        return None
    name = prev_sig(tokens, eq)
    let = prev_sig(tokens, name) if name is not None else None
    if name is None or let is None or tokens[let].kind != KqlLexer.LET:
        return None
    return let, name


def statement_starts(tokens: Sequence[Token]) -> list[int]:
    """Indices of the first significant token of each top-level statement, and of the value
    of each top-level `let NAME =`."""
    starts: list[int] = []
    depth = 0
    expect = True
    for j, token in enumerate(tokens):
        if token.hidden:
            continue
        if expect:
            starts.append(j)
            expect = False
        kind = token.kind
        if kind in (OPENPAREN, OPENBRACKET, OPENBRACE):
            depth += 1
        elif kind in (CLOSEPAREN, CLOSEBRACKET, CLOSEBRACE):
            depth -= 1
        elif depth == 0 and kind == SEMICOLON:
            expect = True
        elif depth == 0 and kind == EQUAL:
            name = prev_sig(tokens, j)
            let = prev_sig(tokens, name) if name is not None else None
            if let is not None and tokens[let].kind == KqlLexer.LET:
                expect = True
    return starts


def plugin_calls(tokens: Sequence[Token], plugin: str) -> Iterator[tuple[int, list[int]]]:
    """Each `evaluate <plugin>(...)`: the index of `evaluate`, and the indices of the
    significant tokens of the operator after it (the plugin's name, its bracket, ...)."""
    for s, token in enumerate(tokens):
        if token.kind != KqlLexer.EVALUATE:
            continue
        sig = sig_indices(tokens, s + 1, segment_end(tokens, s + 1))
        if len(sig) >= 4 and tokens[sig[0]].text == plugin:
            yield s, sig


def query_before(tokens: Sequence[Token], operator: int) -> str | None:
    """The query up to the operator at `operator` (which follows a `|`), as a query of its
    own: the statements before its own (its `let`s), then its tabular expression up to the
    `|`. None where the operator sits inside brackets, whose contents are no query alone."""
    bar = prev_sig(tokens, operator)
    start = max((s for s in statement_starts(tokens) if s <= operator), default=None)
    if bar is None or start is None or tokens[bar].kind != BAR:
        return None
    if open_depth(tokens, start, bar) != 0:
        return None
    binding = let_binding(tokens, start)
    return render(tokens[: binding[0] if binding else start]) + render(tokens[start:bar])


def open_depth(tokens: Sequence[Token], start: int, end: int) -> int:
    """How many brackets opened in `[start, end)` are still open at `end`."""
    depth = 0
    for j in range(start, end):
        if tokens[j].kind in (OPENPAREN, OPENBRACKET, OPENBRACE):
            depth += 1
        elif tokens[j].kind in (CLOSEPAREN, CLOSEBRACKET, CLOSEBRACE):
            depth -= 1
    return depth


def pipeline_start(tokens: Sequence[Token], bar: int, starts: set[int]) -> tuple[int, bool]:
    """Where the tabular expression whose operator follows `bar` begins, and whether it sits
    inside a function body (braces), where a `let` could not be lifted out of it."""
    depth = 0
    start = 0
    for j in range(bar - 1, -1, -1):
        kind = tokens[j].kind
        if kind in (CLOSEPAREN, CLOSEBRACKET, CLOSEBRACE):
            depth += 1
        elif kind in (OPENPAREN, OPENBRACKET, OPENBRACE):
            if depth == 0:
                start = next_sig(tokens, j) or j + 1
                break
            depth -= 1
        elif depth == 0 and (j in starts or kind == SEMICOLON):
            start = j if j in starts else (next_sig(tokens, j) or j + 1)
            break
    inside = sum(
        1 if t.kind == OPENBRACE else -1 if t.kind == CLOSEBRACE else 0 for t in tokens[:start]
    )
    return start, inside > 0


def operator_bar(tokens: Sequence[Token], i: int) -> int | None:
    """The `|` before the operator holding token `i`, through the brackets of calls and
    groupings it sits in (`make_list(pack_all())`, `where (x and y)`); None for a pipeline's
    source, or a token in a function body's braces with no `|` before it there."""
    depth = 0
    for j in range(i - 1, -1, -1):
        kind = tokens[j].kind
        if kind in (CLOSEPAREN, CLOSEBRACKET, CLOSEBRACE):
            depth += 1
        elif kind in (OPENPAREN, OPENBRACKET, OPENBRACE):
            if depth > 0:
                depth -= 1
            elif not _scalar_bracket(tokens, j):
                return None  # a tabular argument (`toscalar(print ...)`), a body, a list
        elif depth == 0 and kind == BAR:
            return j
        elif depth == 0 and kind == SEMICOLON:
            return None
    return None


#: Calls whose bracket holds a tabular expression, not a value.
_TABULAR_CALLS: Final = frozenset(
    {"toscalar", "materialize", "view", "table", "union", "join", "lookup", "database", "cluster"}
)


def _scalar_bracket(tokens: Sequence[Token], j: int) -> bool:
    """Whether the `(` at `j` belongs to an expression: a call of a scalar function (or of
    `not`, an operator's grouping after `where`, `and`, `=`) rather than a tabular argument."""
    if tokens[j].kind != OPENPAREN:
        return False
    before = prev_sig(tokens, j)
    if before is None:
        return False
    if tokens[before].kind in (EQUAL, OPENPAREN):
        return True
    return tokens[before].is_word and tokens[before].lower() not in _TABULAR_CALLS
