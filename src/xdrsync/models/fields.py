"""Field specs: how each model field maps to a Graph property and converts to and from JSON.

A spec is derived once per model class from the field's annotation, so models declare
plain types (`str | None`, `datetime | None`, `Severity | None`, `tuple[Evidence, ...]`)
and the conversions follow from them.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Union, cast, get_args, get_origin

from xdrsync.models.errors import ModelError, describe
from xdrsync.models.openenum import OpenEnum
from xdrsync.models.wire import copy_json, format_datetime, parse_datetime

if TYPE_CHECKING:
    from xdrsync.models.base import GraphModel


class Kind(enum.Enum):
    SCALAR = "scalar"  # str / int / float / bool, checked strictly
    OBJECT = "object"  # a JSON object kept as a dict (additionalData, labels, ...)
    ANY = "any"  # any JSON value
    DATETIME = "datetime"
    ENUM = "enum"
    ENUMS = "enums"
    SCALARS = "scalars"  # tuple of scalars
    MODEL = "model"
    MODELS = "models"


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one model field maps to a Graph property."""

    name: str
    key: str
    legacy: tuple[str, ...]
    kind: Kind
    target: Any  # the OpenEnum / GraphModel class of enum and model kinds
    exact: type | None  # a value of exactly this type (or None) needs no conversion
    prepare: Callable[[Any], Any]  # JSON or Python value -> field value; ValueError if wrong
    nested: bool = False  # a model or tuple of models (serialised by the models themselves)
    #: What `from_graph` converts Graph's value with: `prepare`, except that nested models
    #: are read by their `from_graph` (Graph input, with the leniency a class allows it, see
    #: `Evidence.from_graph`) where `prepare` reads Graph JSON handed to a model built in
    #: code strictly (`GraphModel.from_graph_strict`).
    read: Callable[[Any], Any] | None = None


def camel(name: str) -> str:
    """`created_date_time` -> `createdDateTime` (a trailing `_` only avoids a name clash)."""
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _bare(annotation: Any) -> Any:
    """`X | None` -> X and `Annotated[X, ...]` -> X."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _bare(args[0])
    return annotation


def _is_sub(tp: Any, base: type) -> bool:
    return isinstance(tp, type) and issubclass(tp, base)


def _expect_list(value: object, what: str) -> list[Any] | tuple[Any, ...]:
    if type(value) is list:  # JSON's, the usual case: no isinstance check of a union
        return value
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list of {what}, got {describe(value)}")
    return value


def _scalar(expect: type) -> Callable[[Any], Any]:
    def prepare(value: object) -> Any:
        if value is None or type(value) is expect:
            return value
        if isinstance(value, bool):  # bool is an int subclass; JSON true is never a number
            pass
        elif expect is float and isinstance(value, int):
            try:
                return float(value)
            except OverflowError:  # JSON allows it; a float cannot hold it
                raise ValueError(
                    f"expected a number a float can hold, got an integer of "
                    f"{value.bit_length()} bits"
                ) from None
        elif expect is not bool and isinstance(value, expect):
            return expect(value)  # a subclass built in code (an OpenEnum for a str field)
        raise ValueError(f"expected {_TYPE_NAMES[expect]}, got {describe(value)}")

    return prepare


def _object(value: object) -> Any:
    if value is None or type(value) is dict:
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError(f"expected an object, got {describe(value)}")


def _any(value: object) -> Any:
    return value


def _scalars(item: Callable[[Any], Any], exact: type | None) -> Callable[[Any], Any]:
    def prepare(value: object) -> tuple[Any, ...]:
        if value is None:
            return ()
        entries = _expect_list(value, "values")
        if exact is not None:
            for entry in entries:
                if type(entry) is not exact:
                    break
            else:
                return tuple(entries)  # the common case: a JSON list of strings
        out = []
        for index, entry in enumerate(entries):
            try:
                if entry is None:
                    raise ValueError("expected a value, got null")
                out.append(item(entry))
            except ValueError as exc:
                raise ModelError("", (index,), str(exc)) from None
        return tuple(out)

    return prepare


def _datetime(value: object) -> datetime | None:
    return parse_datetime(value)


def _enum(target: type[OpenEnum]) -> Callable[[Any], Any]:
    cache = target._cache
    parse = target.parse

    def prepare(value: object) -> OpenEnum | None:
        if value is None:
            return None
        if type(value) is str:
            hit: OpenEnum | None = cache.get(value)
            if hit is not None:
                return hit
        return parse(value)

    return prepare


#: How a nested model reads a JSON object: `target.from_graph` or `target.from_graph_strict`.
_Parse = Callable[[Mapping[str, Any]], Any]


def _model(parse: _Parse, target: type[GraphModel]) -> Callable[[Any], Any]:
    def prepare(value: object) -> GraphModel | None:
        # A JSON object first: a model class's isinstance check goes through ABCMeta.
        if type(value) is dict:
            return cast("GraphModel", parse(value))
        if value is None or isinstance(value, target):
            return value
        if isinstance(value, Mapping):
            return cast("GraphModel", parse(value))
        raise ValueError(f"expected an object, got {describe(value)}")

    return prepare


def _models(parse: _Parse, target: type[GraphModel]) -> Callable[[Any], Any]:
    def prepare(value: object) -> tuple[GraphModel, ...]:
        if value is None:
            return ()
        out = []
        for index, item in enumerate(_expect_list(value, "objects")):
            if type(item) is dict:  # a JSON object, the usual case (see `_model`)
                try:
                    out.append(parse(item))
                except ModelError as exc:
                    raise exc.under("", index) from None
            elif isinstance(item, target):
                out.append(item)
            elif isinstance(item, Mapping):
                try:
                    out.append(parse(item))
                except ModelError as exc:
                    raise exc.under("", index) from None
            else:
                raise ModelError("", (index,), f"expected an object, got {describe(item)}")
        return tuple(out)

    return prepare


def _element(tp: Any) -> tuple[Kind, Any, type | None, Callable[[Any], Any]]:
    """Kind, target, exact type and converter for a (non-tuple) field type."""
    from xdrsync.models.base import GraphModel  # the base module imports this one

    if tp is datetime:
        return Kind.DATETIME, None, None, _datetime
    if _is_sub(tp, OpenEnum):
        return Kind.ENUM, tp, None, _enum(tp)
    if _is_sub(tp, GraphModel):
        return Kind.MODEL, tp, None, _model(tp.from_graph_strict, tp)
    if tp in _TYPE_NAMES:
        return Kind.SCALAR, None, tp, _scalar(tp)
    if tp is dict or get_origin(tp) in (dict, Mapping) or tp is Mapping:
        return Kind.OBJECT, None, dict, _object
    return Kind.ANY, None, None, _any


def build_spec(name: str, annotation: Any, key: str, legacy: tuple[str, ...]) -> FieldSpec:
    tp = _bare(annotation)
    if get_origin(tp) is tuple:
        kind, target, exact, item = _element(_bare(get_args(tp)[0]))
        if kind is Kind.MODEL:
            strict, read = (
                _models(target.from_graph_strict, target),
                _models(target.from_graph, target),
            )
            return FieldSpec(name, key, legacy, Kind.MODELS, target, None, strict, True, read)
        tuple_kind = Kind.ENUMS if kind is Kind.ENUM else Kind.SCALARS
        return FieldSpec(name, key, legacy, tuple_kind, target, None, _scalars(item, exact))
    kind, target, exact, prepare = _element(tp)
    if kind is Kind.MODEL:
        read = _model(target.from_graph, target)
        return FieldSpec(name, key, legacy, kind, target, exact, prepare, True, read)
    return FieldSpec(name, key, legacy, kind, target, exact, prepare)


def encode(spec: FieldSpec, value: Any) -> Any:
    """A field value as Graph JSON (used where `raw` has nothing equivalent)."""
    if value is None:
        return None
    kind = spec.kind
    if kind is Kind.DATETIME:
        return format_datetime(value)
    if kind is Kind.ENUM:
        return value.wire
    if kind is Kind.ENUMS:
        return [item.wire for item in value]
    if kind is Kind.MODEL:
        return value.to_graph()
    if kind is Kind.MODELS:
        return [item.to_graph() for item in value]
    return copy_json(value)


def emit(spec: FieldSpec, wire: Any, value: Any) -> Any:
    """The JSON for a field whose property was present in `raw` (`wire` is what was there):
    `wire` itself while it still means `value`, else the encoding of `value`."""
    if spec.nested:
        if not value and (wire is None or wire == []):
            return copy_json(wire)  # keep null versus [] as received
        return encode(spec, value)  # nested models round-trip their own raw
    try:
        unchanged = (wire if spec.exact is not None else spec.prepare(wire)) == value
    except (ValueError, ModelError):
        unchanged = False
    return copy_json(wire) if unchanged else encode(spec, value)


__all__ = ["FieldSpec", "Kind", "build_spec", "camel", "emit", "encode"]
