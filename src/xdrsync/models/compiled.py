"""Per-class parse functions: `GraphModel._parse_graph`'s fast path, generated once per class.

Parsing is the sync's hot path (a 2,000-incident backfill is 115,000 models, most of them
evidence), and a loop over a table of properties pays, for every property, a lookup, an
unpacking and a call for what is usually a null, a string, an empty list or a known enum
spelling. The function made here is the loop unrolled for one class: one `get` per field,
the usual values handled inline (the converter is called only for the rest), the instance's
`__dict__` built at once. It reads the input as `GraphModel._parse_table` does, and leaves it
whatever it does not handle: input with a legacy property name (it returns None) and any
value that fails (the converter's error propagates; the table loop then names the first bad
property in the input's order). test_models_properties holds the two to the same results.

Measured on the 40 pages of a 2,000-incident backfill (parsed as the sync parses them, CPU
best/median of 5 rounds): 0.99/1.05 s with the table loop alone, 0.80/0.86 s with this (of
which about 0.2 s is the garbage collector's, in both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xdrsync.models.fields import FieldSpec, Kind
from xdrsync.models.wire import parse_datetime_text

#: A generated parse function: a JSON object (a dict) -> the model, or None to leave it to
#: the table loop.
Compiled = Callable[[dict[str, Any]], Any]

_new_attr = object.__setattr__


def _field_code(i: int, spec: FieldSpec, default: Any) -> list[str]:
    """The statements that leave field `i`'s value in `v{i}` (`d{i}` its default, which null
    and absence read as; `p{i}` its converter; `x{i}` its exact type)."""
    v = f"v{i}"
    # `when` a present value is converted (None: never, "": always), and the expression.
    kind = spec.kind
    if spec.exact is not None:  # str, int, float, bool, dict: taken as they are
        when, convert = f"type({v}) is not x{i}", f"p{i}({v})"
    elif kind is Kind.ANY:
        when, convert = None, None
    elif kind is Kind.ENUM:  # a known spelling is a hit in the enum's cache of parsed values
        when, convert = "", f"(type({v}) is str and c{i}({v})) or p{i}({v})"
    elif kind is Kind.DATETIME:  # a string goes straight to the (cached) text parser
        when, convert = "", f"(type({v}) is str and dt({v})) or p{i}({v})"
    elif kind in (Kind.SCALARS, Kind.ENUMS, Kind.MODELS):  # most lists are empty
        when, convert = "", f"() if type({v}) is list and not {v} else p{i}({v})"
    else:
        when, convert = "", f"p{i}({v})"
    lines = [f"{v} = get({spec.key!r})"]
    if default is not None:  # else null and absence are None already
        lines += [f"if {v} is None:", f"    {v} = d{i}"]
        if when is not None:
            lines += [f"elif {when}:" if when else "else:", f"    {v} = {convert}"]
    elif when is not None:
        lines += [f"if {v} is not None{' and ' if when else ''}{when}:", f"    {v} = {convert}"]
    return lines


def compile_parser(
    cls: type,
    fields: tuple[FieldSpec, ...],
    converters: tuple[Callable[[Any], Any], ...],
    defaults: Mapping[str, Any],
    legacy_keys: frozenset[str],
) -> Compiled:
    """The parse function of `cls`, whose fields read with `converters` (`from_graph`'s or
    `from_graph_strict`'s, field by field)."""
    namespace: dict[str, Any] = {
        "cls": cls,
        "new": cls.__new__,
        "set_attr": _new_attr,
        "dt": parse_datetime_text,
    }
    lines = ["def parse(data):"]
    if legacy_keys:
        lines.append(f"    if not data.keys().isdisjoint({tuple(sorted(legacy_keys))!r}):")
        lines.append("        return None")
    lines.append("    get = data.get")
    for i, (spec, convert) in enumerate(zip(fields, converters, strict=True)):
        namespace[f"p{i}"] = convert
        namespace[f"d{i}"] = defaults[spec.name]
        namespace[f"x{i}"] = spec.exact
        if spec.kind is Kind.ENUM:
            namespace[f"c{i}"] = spec.target._cache.get
        lines.extend("    " + line for line in _field_code(i, spec, defaults[spec.name]))
    # The same instance as `GraphModel._assemble` makes: `__dict__` in pydantic's field
    # order with `raw` first, every field counted as set.
    names = [spec.name for spec in fields]
    items = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    lines += [
        "    model = new(cls)",
        f"    set_attr(model, '__dict__', {{'raw': data, {items}}})",
        f"    set_attr(model, '__pydantic_fields_set__', {{'raw', {', '.join(map(repr, names))}}})",
        "    set_attr(model, '__pydantic_extra__', None)",
        "    set_attr(model, '__pydantic_private__', None)",
        "    return model",
    ]
    source = "\n".join(lines)
    # Generated from the class's own field specs (names, Graph keys as repr literals), never
    # from input: the way dataclasses and namedtuple make their methods.
    exec(compile(source, f"<parse {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    parse: Compiled = namespace["parse"]
    return parse


__all__ = ["Compiled", "compile_parser"]
