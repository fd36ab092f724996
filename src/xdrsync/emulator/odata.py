"""OData ``$filter`` for the emulator: tokenizer, recursive-descent parser, compiled evaluator.

Grammar (precedence high to low, as in OData): ``not`` > ``eq ne gt ge lt le`` > ``and`` > ``or``;
parentheses; keywords in any case. Literals: ``'text'`` (``''`` escapes a quote), unquoted ISO-8601
instants (``2025-02-07T19:01:26Z``, fractions, offsets), integers, decimals, ``true``, ``false``,
``null``. Lambdas: ``evidence/any(e: e/microsoft.graph.security.deviceEvidence/deviceDnsName eq
'x')`` (a dotted segment is a type cast) and ``customTags/any(t: t eq 'x')``.

Error messages follow the wording of Microsoft's OData libraries, which Graph passes through.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

# -- instants ------------------------------------------------------------------------------------

_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?)?"
)
_TICKS_PER_SECOND: Final = 10_000_000
_INSTANTS: dict[str, int | None] = {}
_INSTANT_CACHE_LIMIT: Final = 200_000


def _ticks(m: re.Match[str]) -> int | None:
    """100-ns ticks since 0001-01-01 UTC (Graph's 7-digit precision), or None if out of range."""
    year, month, day, hh, mm, ss, frac, _z, sign, off_h, off_m = m.groups()
    try:
        ordinal = date(int(year), int(month), int(day)).toordinal()
    except ValueError:
        return None
    hour, minute, second = int(hh or 0), int(mm or 0), int(ss or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if sign:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = (int(off_h) * 3600 + int(off_m) * 60) * (1 if sign == "+" else -1)
    seconds = ordinal * 86400 + hour * 3600 + minute * 60 + second - offset
    # Graph serialises 7 fractional digits; finer digits cannot change a comparison it makes.
    return seconds * _TICKS_PER_SECOND + int((frac or "")[:7].ljust(7, "0"))


def instant_ticks(value: object) -> int | None:
    """An instant as comparable ticks, from a Graph datetime string (cached) or a datetime.

    Text without an offset is read as UTC. Anything that is not an instant gives None. The cache
    matters: listing compares the same few thousand timestamps on every request.
    """
    if isinstance(value, str):
        try:
            return _INSTANTS[value]
        except KeyError:
            pass
        m = _INSTANT.fullmatch(value)
        ticks = _ticks(m) if m else None
        if len(_INSTANTS) >= _INSTANT_CACHE_LIMIT:
            _INSTANTS.clear()
        _INSTANTS[value] = ticks
        return ticks
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        utc = moment.astimezone(UTC)
        seconds = utc.toordinal() * 86400 + utc.hour * 3600 + utc.minute * 60 + utc.second
        return seconds * _TICKS_PER_SECOND + utc.microsecond * 10
    return None


# -- errors and tokens ---------------------------------------------------------------------------


class ODataError(ValueError):
    """A ``$filter`` Graph would reject; ``message`` is the text for the 400 answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_MAX_DEPTH: Final = 32  # nesting of (), not, any(): far beyond real filters, far below the stack
_COMPARISONS: Final = {"eq", "ne", "gt", "ge", "lt", "le"}
_UNSUPPORTED_OPS: Final = {"has", "in", "add", "sub", "mul", "div", "divby", "mod"}
_KEYWORDS: Final = _COMPARISONS | {"and", "or", "not", "true", "false", "null"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_LITERAL_END = frozenset(" \t\r\n),")
_DIGITS: Final = "0123456789"
_DIGITS_NONEMPTY: Final = frozenset(_DIGITS)
_INT64: Final = 2**63


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ident, str, int, float, dt, ( ) / : , end
    pos: int
    value: Any = None


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()/:,":
            toks.append(_Tok(c, i))
            i += 1
        elif c == "'":
            i = _string(text, i, toks)
        elif c.isascii() and (c.isalpha() or c == "_"):
            m = _IDENT.match(text, i)
            assert m is not None
            toks.append(_Tok("ident", i, m.group()))
            i = m.end()
        elif c in _DIGITS or (c == "-" and text[i + 1 : i + 2] in _DIGITS_NONEMPTY):
            i = _number_or_instant(text, i, toks)
        else:
            raise ODataError(
                f"Syntax error: character '{c}' is not valid at position {i} in '{text}'."
            )
    toks.append(_Tok("end", n))
    return toks


def _string(text: str, start: int, toks: list[_Tok]) -> int:
    parts: list[str] = []
    j = start + 1
    while True:
        k = text.find("'", j)
        if k < 0:
            raise ODataError(
                f"There is an unterminated string literal at position {start} in '{text}'."
            )
        parts.append(text[j:k])
        if text[k + 1 : k + 2] == "'":
            parts.append("'")
            j = k + 2
            continue
        toks.append(_Tok("str", start, "".join(parts)))
        return k + 1


def _number_or_instant(text: str, i: int, toks: list[_Tok]) -> int:
    m = _INSTANT.match(text, i) if text[i] != "-" else None
    if m:
        end = m.end()
        ticks = _ticks(m)
        if ticks is None or (end < len(text) and text[end] not in _LITERAL_END):
            raise ODataError(f"Syntax error at position {i} in '{text}'.")
        toks.append(_Tok("dt", i, ticks))
        return end
    num = _NUMBER.match(text, i)
    assert num is not None
    end = num.end()
    if end < len(text) and text[end] not in _LITERAL_END:
        raise ODataError(f"Syntax error at position {end} in '{text}'.")
    literal = num.group()
    if num.group(1) or num.group(2):
        value = float(literal)
        if value in (float("inf"), float("-inf")):
            raise ODataError(f"The literal '{literal}' at position {i} is out of range.")
        toks.append(_Tok("float", i, value))
    else:
        digits = literal.lstrip("-")
        if len(digits) > 19 or not -_INT64 <= int(literal) < _INT64:
            raise ODataError(f"The literal '{literal}' at position {i} is out of range.")
        toks.append(_Tok("int", i, int(literal)))
    return end


# -- syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any  # str, int, float, bool, None, or ticks (int) when ``instant``
    instant: bool = False


@dataclass(frozen=True, slots=True)
class Path:
    """``var/seg/...`` (var None: a property of the record). Dotted segments are type casts."""

    var: str | None
    segments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logical:
    op: str  # "and" | "or"; flattened so long chains stay shallow
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class AnyOf:
    collection: Path
    var: str | None
    body: Node | None  # None: ``any()``, true for a non-empty collection


Node = Literal | Path | Compare | Logical | Not | AnyOf


def _is_boolean(node: Node) -> bool:
    if isinstance(node, Literal):
        return isinstance(node.value, bool)
    return not isinstance(node, Path)


def _edm_type(node: Node) -> str | None:
    if isinstance(node, Path):
        last = node.segments[-1] if node.segments else ""
        return "Edm.DateTimeOffset" if last.lower().endswith("datetime") else None
    if isinstance(node, Literal):
        if node.instant:
            return "Edm.DateTimeOffset"
        if isinstance(node.value, bool):
            return "Edm.Boolean"
        if isinstance(node.value, int):
            return "Edm.Int64"
        if isinstance(node.value, float):
            return "Edm.Double"
        if isinstance(node.value, str):
            return "Edm.String"
    return None


_OP_KINDS: Final = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
    "and": "And",
    "or": "Or",
}


# -- parser --------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, allowed: Collection[str]) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.allowed = {name.casefold(): name for name in allowed}
        self.scopes: list[str] = []
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def word(self) -> str | None:
        tok = self.toks[self.i]
        return tok.value.lower() if tok.kind == "ident" else None

    def fail(self, tok: _Tok, expected_close: bool = False) -> ODataError:
        if tok.kind == "ident" and tok.value.lower() in _UNSUPPORTED_OPS:
            return ODataError(f"The operator '{tok.value}' is not supported in $filter.")
        if expected_close:
            return ODataError(f"')' or operator expected at position {tok.pos} in '{self.text}'.")
        return ODataError(f"Syntax error at position {tok.pos} in '{self.text}'.")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ODataError("The recursion limit has been exceeded.")

    def parse(self) -> Node:
        node = self.disjunction()
        if self.peek().kind != "end":
            raise self.fail(self.peek())
        if not _is_boolean(node):
            raise ODataError("The $filter expression must evaluate to a single boolean value.")
        return node

    def disjunction(self) -> Node:
        return self.logical("or", self.conjunction)

    def conjunction(self) -> Node:
        return self.logical("and", self.comparison)

    def logical(self, op: str, operand: Callable[[], Node]) -> Node:
        items = [operand()]
        while self.word() == op:
            self.take()
            items.append(operand())
        if len(items) == 1:
            return items[0]
        for item in items:
            if not _is_boolean(item):
                found = _edm_type(item) or "Edm.Untyped"
                raise ODataError(
                    "A binary operator with incompatible types was detected. Found operand "
                    f"types '{found}' and 'Edm.Boolean' for operator kind '{_OP_KINDS[op]}'."
                )
        return Logical(op, tuple(items))

    def comparison(self) -> Node:
        left = self.unary()
        op = self.word()
        if op not in _COMPARISONS:
            return left
        self.take()
        right = self.unary()
        if self.word() in _COMPARISONS:  # OData comparisons do not chain
            raise self.fail(self.peek())
        return self.typed_compare(op, left, right)

    def typed_compare(self, op: str, left: Node, right: Node) -> Compare:
        types = (_edm_type(left), _edm_type(right))
        if "Edm.DateTimeOffset" in types:
            other = right if types[0] == "Edm.DateTimeOffset" else left
            if isinstance(other, Literal) and isinstance(other.value, str) and not other.instant:
                # Lenient like Graph: a quoted instant compared with a datetime property.
                m = _INSTANT.fullmatch(other.value.strip())
                ticks = _ticks(m) if m else None
                if ticks is None:
                    raise ODataError(
                        f"The DateTimeOffset text '{other.value}' should be in format "
                        "'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within "
                        "valid range."
                    )
                converted = Literal(ticks, instant=True)
                left, right = (left, converted) if other is right else (converted, right)
            elif _edm_type(other) in ("Edm.Int64", "Edm.Double", "Edm.Boolean"):
                raise ODataError(
                    "A binary operator with incompatible types was detected. Found operand types "
                    f"'{types[0]}' and '{types[1]}' for operator kind '{_OP_KINDS[op]}'."
                )
        return Compare(op, left, right)

    def unary(self) -> Node:
        if self.word() != "not":
            return self.primary()
        not_tok = self.take()
        self.enter()
        operand = self.unary()
        self.depth -= 1
        if not _is_boolean(operand):
            raise ODataError(
                "A unary operator with an incompatible type was detected. Found operand type "
                f"'{_edm_type(operand) or 'Edm.Untyped'}' for operator kind 'Not' "
                f"at position {not_tok.pos}."
            )
        return Not(operand)

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "(":
            self.take()
            self.enter()
            node = self.disjunction()
            self.depth -= 1
            if self.peek().kind != ")":
                raise self.fail(self.peek(), expected_close=True)
            self.take()
            return node
        if tok.kind in ("str", "int", "float"):
            self.take()
            return Literal(tok.value)
        if tok.kind == "dt":
            self.take()
            return Literal(tok.value, instant=True)
        word = self.word()
        if word in ("true", "false", "null"):
            self.take()
            return Literal({"true": True, "false": False, "null": None}[word])
        if tok.kind != "ident" or word in _KEYWORDS:
            raise ODataError(f"Expression expected at position {tok.pos} in '{self.text}'.")
        return self.path()

    def path(self) -> Node:
        first = self.take()
        name: str = first.value
        if self.peek().kind == "(":
            raise ODataError(
                f"An unknown function with name '{name}' was found. This may also be a function "
                "import or a key lookup on a navigation property, which is not allowed."
            )
        var: str | None = None
        segments: list[str] = []
        if name in self.scopes:
            var = name
        else:
            canonical = self.allowed.get(name.casefold())
            if canonical is None or "." in name:
                raise ODataError(
                    f"The property '{name}' cannot be used in the $filter query option."
                )
            segments.append(canonical)
        while self.peek().kind == "/":
            self.take()
            seg = self.take()
            if seg.kind != "ident" or seg.value in ("", ".") or "" in seg.value.split("."):
                raise self.fail(seg)
            if self.peek().kind == "(" and seg.value.lower() in ("any", "all"):
                if seg.value.lower() == "all":
                    raise ODataError("The lambda operator 'all' is not supported in $filter.")
                return self.lambda_any(Path(var, tuple(segments)))
            segments.append(seg.value)
        return Path(var, tuple(segments))

    def lambda_any(self, collection: Path) -> AnyOf:
        self.take()  # "("
        if self.peek().kind == ")":
            self.take()
            return AnyOf(collection, None, None)
        var_tok = self.take()
        if var_tok.kind != "ident" or var_tok.value.lower() in _KEYWORDS or "." in var_tok.value:
            raise ODataError(f"Syntax error at position {var_tok.pos} in '{self.text}'.")
        if self.peek().kind != ":":
            raise ODataError(f"':' expected at position {self.peek().pos} in '{self.text}'.")
        self.take()
        self.enter()
        self.scopes.append(var_tok.value)
        body = self.disjunction()
        self.scopes.pop()
        self.depth -= 1
        if self.peek().kind != ")":
            raise self.fail(self.peek(), expected_close=True)
        self.take()
        if not _is_boolean(body):
            raise ODataError("The body of an 'any' lambda must be a boolean expression.")
        return AnyOf(collection, var_tok.value, body)


# -- compiler: tree -> closures (evaluated once per record, so keep the hot paths flat) -----------

Env = Mapping[str, Any]
_Getter = Callable[[Mapping[str, Any], Env], Any]
_Test = Callable[[Mapping[str, Any], Env], bool]
_NO_VARS: Final[Env] = {}
_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_MIRROR: Final = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}


def _lookup(current: Any, key: str) -> Any:
    if not isinstance(current, Mapping):
        return None
    value = current.get(key)
    if value is None and key not in current:  # filters may spell a property in another case
        folded = key.casefold()
        for k, v in current.items():
            if isinstance(k, str) and k.casefold() == folded:
                return v
    return value


def _compile_path(node: Path) -> _Getter:
    var = node.var
    if var is None and len(node.segments) == 1:
        name = node.segments[0]
        return lambda record, env: record.get(name)
    steps = [(seg.casefold().lstrip("#"), "." in seg) for seg in node.segments]
    raw_steps = list(node.segments)

    def walk(record: Mapping[str, Any], env: Env) -> Any:
        current: Any = env.get(var) if var is not None else record
        for (folded, is_cast), raw in zip(steps, raw_steps, strict=True):
            if current is None:
                return None
            if is_cast:
                kind = current.get("@odata.type") if isinstance(current, Mapping) else None
                if not (isinstance(kind, str) and kind.lstrip("#").casefold() == folded):
                    return None
            else:
                current = _lookup(current, raw)
        return current

    return walk


def _value_getter(node: Node, as_instant: bool) -> _Getter:
    if isinstance(node, Literal):
        constant = node.value
        return lambda record, env: constant
    if isinstance(node, Path):
        get = _compile_path(node)
        if as_instant:
            return lambda record, env: instant_ticks(get(record, env))
        return get
    return _compile(node)  # a boolean sub-expression compared with a value


def _compare_to_literal(get: _Getter, op: str, lit: Literal, as_instant: bool) -> _Test:
    fn, is_ne, c = _OPS[op], op == "ne", lit.value
    if c is None:
        if op == "eq":
            return lambda r, e: get(r, e) is None
        if op == "ne":
            return lambda r, e: get(r, e) is not None
        return lambda r, e: False
    if as_instant:

        def instant(r: Mapping[str, Any], e: Env) -> bool:
            ticks = instant_ticks(get(r, e))
            return is_ne if ticks is None else fn(ticks, c)

        return instant
    if isinstance(c, str):
        folded = c.casefold()

        def text(r: Mapping[str, Any], e: Env) -> bool:
            v = get(r, e)
            return fn(v.casefold(), folded) if isinstance(v, str) else is_ne

        return text
    if isinstance(c, bool):

        def boolean(r: Mapping[str, Any], e: Env) -> bool:
            v = get(r, e)
            return fn(v, c) if isinstance(v, bool) else is_ne

        return boolean

    def number(r: Mapping[str, Any], e: Env) -> bool:
        v = get(r, e)
        numeric = isinstance(v, int | float) and not isinstance(v, bool)
        return fn(v, c) if numeric else is_ne

    return number


def compare_values(op: str, a: Any, b: Any) -> bool:
    """OData comparison of two runtime values (instants already as ticks)."""
    if a is None or b is None:
        if op == "eq":
            return a is None and b is None
        if op == "ne":
            return not (a is None and b is None)
        return False
    fn = _OPS[op]
    if isinstance(a, str) and isinstance(b, str):
        return fn(a.casefold(), b.casefold())
    if isinstance(a, bool) or isinstance(b, bool):
        return fn(a, b) if isinstance(a, bool) and isinstance(b, bool) else op == "ne"
    if isinstance(a, int | float) and isinstance(b, int | float):
        return fn(a, b)
    return op == "ne"


def _compile(node: Node) -> _Test:
    if isinstance(node, Literal):
        constant = bool(node.value)
        return lambda r, e: constant
    if isinstance(node, Logical):
        tests = tuple(_compile(item) for item in node.items)
        if len(tests) == 2:  # the common case, without a generator per record
            first, second = tests
            if node.op == "and":
                return lambda r, e: first(r, e) and second(r, e)
            return lambda r, e: first(r, e) or second(r, e)
        if node.op == "and":
            return lambda r, e: all(test(r, e) for test in tests)
        return lambda r, e: any(test(r, e) for test in tests)
    if isinstance(node, Not):
        inner = _compile(node.operand)
        return lambda r, e: not inner(r, e)
    if isinstance(node, AnyOf):
        return _compile_any(node)
    if isinstance(node, Compare):
        return _compile_compare(node)
    raise ODataError("The $filter expression must evaluate to a single boolean value.")


def _compile_compare(node: Compare) -> _Test:
    op, left, right = node.op, node.left, node.right
    as_instant = "Edm.DateTimeOffset" in (_edm_type(left), _edm_type(right))
    if isinstance(left, Literal) and not isinstance(right, Literal):
        op, left, right = _MIRROR[op], right, left
    if isinstance(right, Literal) and not isinstance(left, Literal):
        # The literal path converts the record's value itself, so hand it the raw getter.
        return _compare_to_literal(_value_getter(left, False), op, right, as_instant)
    get_a, get_b = _value_getter(left, as_instant), _value_getter(right, as_instant)
    return lambda r, e: compare_values(op, get_a(r, e), get_b(r, e))


def _compile_any(node: AnyOf) -> _Test:
    collection, var = _compile_path(node.collection), node.var
    body = _compile(node.body) if node.body is not None else None

    def any_of(r: Mapping[str, Any], e: Env) -> bool:
        items = collection(r, e)
        if not isinstance(items, list | tuple):
            return False
        if body is None or var is None:
            return len(items) > 0
        return any(body(r, {**e, var: item}) for item in items)

    return any_of


# -- public API ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterExpr:
    """A parsed, type-checked ``$filter``; ``matches`` runs the compiled form on a Graph record."""

    text: str
    root: Node
    _test: _Test = field(repr=False, compare=False)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether a Graph JSON record (camelCase keys, datetime strings) satisfies the filter."""
        return self._test(record, _NO_VARS)


def parse_filter(text: str, *, allowed: Collection[str]) -> FilterExpr:
    """Parse ``$filter`` text; only ``allowed`` properties (any case) may appear outside lambdas.

    Raises ODataError, never anything else, for any text that is not an acceptable filter.
    """
    root = _Parser(text, allowed).parse()
    return FilterExpr(text, root, _compile(root))


__all__ = [
    "AnyOf",
    "Compare",
    "FilterExpr",
    "Literal",
    "Logical",
    "Node",
    "Not",
    "ODataError",
    "Path",
    "compare_values",
    "instant_ticks",
    "parse_filter",
]
