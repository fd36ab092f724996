"""OpenEnum: Graph's evolvable enumerations, parsed case-insensitively, never rejecting a value.

Graph adds enum members over time (and documents some under two spellings), so a closed
`enum.Enum` would turn tomorrow's `severity: "critical"` into a lost record. An OpenEnum value
is a `str` whose text is the *canonical* member name (`"truePositive"`), so comparisons,
hashing, dict keys, f-strings and JSON encoding all use the canonical form, while ``wire``
keeps the exact spelling that was received (`"TruePositive"`) for lossless round trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from xdrsync.models.errors import describe

E = TypeVar("E", bound="OpenEnum")

# Values are interned per class (immutable, so sharing is safe). The cap keeps a feed full of
# distinct unknown values from growing the cache without bound.
_CACHE_LIMIT = 4096


class member:  # noqa: N801 - reads as a declaration: `HIGH = member("high")`
    """Declares a known member; replaced by the real value when the class is created.

    (Typed as a descriptor so that `Severity.HIGH` is a `Severity` to type checkers.)
    """

    def __init__(self, value: str) -> None:
        self.value = value

    def __get__(self, obj: object, owner: type[E]) -> E:
        return owner(self.value)


class OpenEnum(str):
    """Base of every Graph enum. Subclasses declare members (`X = member("x")`) and aliases."""

    #: Other spellings of a member, folded to lower case: ``{"clean": "notMalicious"}``.
    ALIASES: ClassVar[Mapping[str, str]] = {}
    #: Canonical member values, in declaration order.
    MEMBERS: ClassVar[tuple[str, ...]] = ()

    _lookup: ClassVar[dict[str, str]]
    _known: ClassVar[frozenset[str]]
    _cache: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = {name: m for name, m in vars(cls).items() if isinstance(m, member)}
        cls.MEMBERS = tuple(m.value for m in declared.values())
        cls._lookup = {value.casefold(): value for value in cls.MEMBERS}
        cls._known = frozenset(cls.MEMBERS)
        for alias, target in cls.ALIASES.items():
            if target not in cls.MEMBERS:
                raise TypeError(f"{cls.__name__}: alias {alias!r} targets unknown {target!r}")
            cls._lookup[alias.casefold()] = target
        cls._cache = {}
        for name, m in declared.items():
            setattr(cls, name, cls(m.value))

    def __new__(cls, value: str) -> Self:
        if type(value) is cls:
            return value
        if isinstance(value, OpenEnum):
            value = value.wire
        elif not isinstance(value, str):
            raise TypeError(f"{cls.__name__} value must be a string, not {describe(value)}")
        cached: Self | None = cls._cache.get(value)
        if cached is not None:
            return cached
        canonical = cls._lookup.get(value.casefold())
        if canonical is None:
            # Unknown member: Graph's casing convention is camelCase with PascalCase seen in
            # older examples, so only the first letter is folded for comparison purposes.
            canonical = value[:1].lower() + value[1:]
        made = super().__new__(cls, canonical)
        made.__dict__["wire"] = value
        if len(cls._cache) < _CACHE_LIMIT:
            cls._cache[value] = made
        return made

    wire: str
    """The spelling this value was parsed from (the canonical text for members built in code)."""

    @property
    def value(self) -> str:
        """The canonical value (the same text as the string itself)."""
        return str.__str__(self)

    @property
    def is_known(self) -> bool:
        """True for documented members (including ``unknownFutureValue``)."""
        return str.__str__(self) in self._known

    @classmethod
    def canonical(cls, value: object) -> object:
        """A raw JSON value as this enum names it, however Graph spelled it (``"Resolved"``
        is ``"resolved"``, ``"clean"`` is ``"notMalicious"``); anything but a non-empty
        string as it is."""
        return cls(value).value if isinstance(value, str) and value else value

    @classmethod
    def parse(cls, value: object) -> Self:
        """Like the constructor, but raises ValueError (a validation failure) for non-strings."""
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {describe(value)}")
        return cls(value)

    @classmethod
    def parse_many(cls, value: object) -> tuple[Self, ...]:
        """A JSON list of values (null = empty) -> tuple of members."""
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of strings, got {describe(value)}")
        return tuple(cls.parse(item) for item in value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} values are immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} values are immutable")

    def __repr__(self) -> str:
        canonical = str.__str__(self)
        if self.wire != canonical:
            return f"{type(self).__name__}({canonical!r}, wire={self.wire!r})"
        return f"{type(self).__name__}({canonical!r})"

    def __str__(self) -> str:
        return str.__str__(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # The default str-subclass pickling would rebuild from the canonical text and then
        # overwrite the interned instance's wire spelling; rebuild from the wire text instead.
        return (type(self), (self.wire,))

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # An instance check first (done in Rust, the common case: values arrive pre-parsed),
        # then parsing of plain strings; serialised as the received spelling.
        return core_schema.union_schema(
            [
                core_schema.is_instance_schema(cls),
                core_schema.no_info_plain_validator_function(cls.parse),
            ],
            mode="left_to_right",
            serialization=core_schema.plain_serializer_function_ser_schema(
                _wire_of, return_schema=core_schema.str_schema()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "examples": list(cls.MEMBERS), "title": cls.__name__}


def _wire_of(value: OpenEnum) -> str:
    return value.wire


__all__ = ["OpenEnum", "member"]
