"""GraphModel: frozen pydantic models that read Graph JSON and write it back losslessly.

How the round trip stays exact: every model keeps the mapping it was parsed from in `raw`.
`to_graph()` walks `raw` and, for each property a field maps to, re-emits the original JSON
value while it still means what the field holds (same enum member, same instant, ...), and
the field's own encoding otherwise (e.g. after `model_copy(update=...)`). Unknown
properties, nulls versus absent keys, enum spellings and 7-digit timestamps thus survive,
while models built in code serialise to canonical Graph JSON.

Parsing (`from_graph`) is the hot path (tens of thousands of incidents, hundreds of
thousands of evidence items): one pass over the input converts and strictly type-checks
each known property, then the instance is assembled directly; for a JSON object, that pass
is a function generated once per class (`compiled`). Models built in code go through
pydantic validation with the same converters.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SkipValidation,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from xdrsync.models.compiled import Compiled, compile_parser
from xdrsync.models.errors import ModelError, PathPart, describe
from xdrsync.models.fields import FieldSpec, build_spec, camel, emit, encode
from xdrsync.models.wire import copy_json

#: `raw` of a model built in code until it is filled with the model's own Graph JSON.
_UNSET_RAW: Mapping[str, Any] = types.MappingProxyType({})
_new_attr = object.__setattr__


#: Per Graph property, what the parse loop needs: field name, exact JSON type (None when a
#: converter must run), converter, the current name when this one is legacy, value for null.
_Entry = tuple[str, type | None, Callable[[Any], Any], str | None, Any]


@dataclass(frozen=True, slots=True)
class Specs:
    fields: tuple[FieldSpec, ...]
    by_key: dict[str, FieldSpec]
    by_name: dict[str, FieldSpec]
    defaults: dict[str, Any]
    parse_table: dict[str, _Entry]  # Graph input (`from_graph`)
    strict_table: dict[str, _Entry]  # Graph JSON in code (`from_graph_strict`)
    parse_compiled: Compiled  # the same, unrolled for the class (`compiled`)
    strict_compiled: Compiled


_SPECS: dict[type, Specs] = {}


class _Retrying(threading.local):
    """Whether this thread is reading an object again with the table loop, after its compiled
    function failed (`GraphModel._parse_graph`)."""

    on = False


_retrying = _Retrying()


def specs_of(cls: type[GraphModel]) -> Specs:
    """The field specs of a model class (computed once, after forward references resolve)."""
    found = _SPECS.get(cls)
    if found is not None:
        return found
    if not cls.__pydantic_complete__:
        cls.model_rebuild()
    keys: dict[str, str] = {}
    legacy: dict[str, tuple[str, ...]] = {}
    for klass in reversed(cls.__mro__):
        keys.update(vars(klass).get("GRAPH_KEYS", {}))
        legacy.update(vars(klass).get("LEGACY_KEYS", {}))
    fields = tuple(
        build_spec(name, info.annotation, keys.get(name, camel(name)), legacy.get(name, ()))
        for name, info in cls.model_fields.items()
        if name != "raw"
    )
    by_key = {spec.key: spec for spec in fields}
    for spec in fields:
        for old in spec.legacy:
            by_key.setdefault(old, spec)
    # `raw` is included so that assembled instances keep pydantic's field order.
    defaults = {name: info.default for name, info in cls.model_fields.items() if name != "raw"}
    defaults = {"raw": _UNSET_RAW, **defaults} if "raw" in cls.model_fields else defaults

    def table(strict: bool) -> dict[str, _Entry]:
        return {
            key: (
                spec.name,
                spec.exact,
                spec.prepare if strict or spec.read is None else spec.read,
                None if key == spec.key else spec.key,
                defaults[spec.name],  # None, or () for the tuple kinds
            )
            for key, spec in by_key.items()
        }

    def compiled(strict: bool) -> Compiled:
        converters = tuple(
            spec.prepare if strict or spec.read is None else spec.read for spec in fields
        )
        return compile_parser(cls, fields, converters, defaults, legacy_keys)

    by_name = {spec.name: spec for spec in fields}
    legacy_keys = frozenset(old for spec in fields for old in spec.legacy)
    specs = Specs(
        fields,
        by_key,
        by_name,
        defaults,
        table(False),
        table(True),
        compiled(False),
        compiled(True),
    )
    _SPECS[cls] = specs
    return specs


def _validation_failure(cls: type[GraphModel], exc: ValidationError) -> ModelError:
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    spec = specs_of(cls).by_name.get(str(loc[0])) if loc else None
    key = spec.key if spec is not None else (str(loc[0]) if loc else "")
    path: tuple[PathPart, ...] = (
        (key, *(part for part in loc[1:] if isinstance(part, int))) if key else ()
    )
    return ModelError(cls.__name__, path, f"{error['msg']}, got {describe(error.get('input'))}")


class GraphModel(BaseModel):
    """Base of every model read from Graph: frozen, strict, lossless."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", hide_input_in_errors=True)

    #: Graph property names that are not the camelCase of the field name.
    GRAPH_KEYS: ClassVar[Mapping[str, str]] = {}
    #: Older property names still accepted (and written back) for a field.
    LEGACY_KEYS: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    raw: SkipValidation[Mapping[str, Any]] = Field(
        default_factory=lambda: _UNSET_RAW, repr=False, exclude=True
    )
    """The Graph JSON this model was parsed from, untouched and shared with the caller (for
    models built in code: the Graph JSON they serialise to). Treat it as read-only."""

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> Self:
        """Parse one Graph JSON object. Missing or extra properties never fail; a value of
        the wrong type raises `ModelError` naming the property (except in an alert's
        evidence items, which are kept whole instead: `Evidence.from_graph`)."""
        return cls._parse_graph(data)

    @classmethod
    def from_graph_strict(cls, data: Mapping[str, Any]) -> Self:
        """`from_graph` with no leniency at any depth: how Graph JSON handed to a model built
        in code is read (a wrong value there is the caller's mistake, not Graph's drift)."""
        return cls._parse_graph(data, strict=True)

    @classmethod
    def _parse_graph(cls, data: Mapping[str, Any], *, strict: bool = False) -> Self:
        specs = _SPECS.get(cls) or specs_of(cls)
        # The usual input, a JSON object as parsed (a dict), goes through the function
        # compiled for the class; the rest, and any value that fails there, through the
        # table loop, which names the first bad property in the input's order.
        if type(data) is dict and not _retrying.on:
            parse = specs.strict_compiled if strict else specs.parse_compiled
            try:
                model: Self | None = parse(data)
            except (ValueError, ModelError):
                # The objects within are read again by the loop alone: each level retrying
                # its own compiled attempt would parse a failure n levels deep 2^n times
                # (evidence nests itself: a container image's digest image).
                _retrying.on = True
                try:
                    return cls._parse_table(specs, data, strict)
                finally:
                    _retrying.on = False
            if model is not None:
                return model
        return cls._parse_table(specs, data, strict)

    @classmethod
    def _parse_table(cls, specs: Specs, data: Mapping[str, Any], strict: bool) -> Self:
        if not isinstance(data, Mapping):
            raise ModelError(cls.__name__, (), f"expected a JSON object, got {describe(data)}")
        table = specs.strict_table if strict else specs.parse_table
        values = specs.defaults.copy()
        key: str = ""
        try:
            for key, value in data.items():
                entry = table.get(key)
                if entry is None:
                    continue  # a property this version does not model: it stays in raw
                name, exact, prepare, current, null = entry
                if current is not None and current in data:
                    continue  # a legacy name shadowed by the current one
                if value is None:
                    values[name] = null
                elif type(value) is exact:
                    values[name] = value
                else:
                    values[name] = prepare(value)
        except ValueError as exc:
            raise ModelError(cls.__name__, (key,), str(exc)) from None
        except ModelError as exc:
            raise exc.under(cls.__name__, key) from None
        values["raw"] = data
        return cls._assemble(values)

    @classmethod
    def _assemble(cls, values: dict[str, Any]) -> Self:
        # Every value is converted and type-checked by the caller, so the instance is
        # assembled the way pydantic's own model_construct does, without its per-field
        # bookkeeping (tests compare the result with a fully validated instance).
        model = cls.__new__(cls)
        _new_attr(model, "__dict__", values)
        _new_attr(model, "__pydantic_fields_set__", set(values))
        _new_attr(model, "__pydantic_extra__", None)
        _new_attr(model, "__pydantic_private__", None)
        return model

    def to_graph(self) -> dict[str, Any]:
        """This model as Graph JSON: equal to `raw` for an unchanged parsed model."""
        specs = _SPECS.get(type(self)) or specs_of(type(self))
        by_key = specs.by_key
        raw = self.raw
        values = self.__dict__
        out: dict[str, Any] = {}
        for key, wire in raw.items():
            spec = by_key.get(key)
            if spec is None or (key != spec.key and spec.key in raw):
                out[key] = copy_json(wire)
            elif spec.exact is not None:  # plain JSON types: compare as they are
                value = values[spec.name]
                out[key] = copy_json(wire) if wire == value else encode(spec, value)
            else:
                out[key] = emit(spec, wire, values[spec.name])
        for spec in specs.fields:
            if spec.key in raw or (spec.legacy and any(old in raw for old in spec.legacy)):
                continue
            value = values[spec.name]
            if value is None or (type(value) is tuple and not value):
                continue  # absent stays absent
            out[spec.key] = encode(spec, value)
        return out

    @classmethod
    def _complete_code_input(cls, values: dict[str, Any]) -> None:
        """Hook: fill defaults that only apply to models built in code."""

    @model_validator(mode="wrap")
    @classmethod
    def _validate(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        # Models built in code (or validated from snake_case dicts) get from_graph's
        # conversions; a type error surfaces as ModelError, and the model gets its own Graph
        # JSON as `raw`.
        if isinstance(data, Mapping):
            data = cls._prepare_code_input(data)
        try:
            model = handler(data)
        except ValidationError as exc:
            raise _validation_failure(cls, exc) from None
        if model.raw is _UNSET_RAW:
            model.__dict__["raw"] = model.to_graph()
        return model

    @classmethod
    def _prepare_code_input(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        specs = specs_of(cls)
        values: dict[str, Any] = {}
        for name, value in data.items():
            spec = specs.by_name.get(name)
            if spec is None:
                if name != "raw":
                    raise ModelError(cls.__name__, (name,), "no such field")
                values[name] = value
                continue
            try:
                values[name] = spec.prepare(value)
            except ValueError as exc:
                raise ModelError(cls.__name__, (spec.key,), str(exc)) from None
            except ModelError as exc:
                raise exc.under(cls.__name__, spec.key) from None
        cls._complete_code_input(values)
        return values


__all__ = ["GraphModel", "Specs", "specs_of"]
