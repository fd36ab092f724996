"""Evidence: the base of every alertEvidence subtype, the @odata.type registry, parse_evidence.

Subtypes live in the `evidence_*` modules and register themselves by their `ODATA_TYPE`.
An @odata.type nobody registered parses as `UnknownEvidence`, which keeps the whole payload
in `raw` (Graph keeps adding evidence types; none may be lost). An item whose values do not
fit its type (Graph changed the shape of a property) is `UnparsedEvidence`, kept whole and
unparsed: one drifted property must not cost the alert, and with it its incident.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar, Self, cast

from xdrsync.models.base import GraphModel
from xdrsync.models.errors import ModelError, describe
from xdrsync.models.evidence_enums import EvidenceRemediationStatus, EvidenceRole, EvidenceVerdict
from xdrsync.models.identity import EntityKey
from xdrsync.models.wire import copy_json

ODATA_PREFIX = "#microsoft.graph.security."

_REGISTRY: dict[str, type[Evidence]] = {}
# Exact @odata.type strings seen so far -> registered class (or None): skips normalising the
# same few strings for every one of hundreds of thousands of items.
_SEEN: dict[str, type[Evidence] | None] = {}
_SEEN_LIMIT = 1024


_MISSING: Any = object()


def _short_type(odata_type: str) -> str:
    """`#microsoft.graph.security.deviceEvidence` -> `deviceevidence` (registry key)."""
    return odata_type.strip().rsplit(".", 1)[-1].lstrip("#").casefold()


def _kind_in(odata_type: str | None) -> str:
    """The kind the type's own name spells: `...fileHashEvidence` -> `fileHash`."""
    name = (odata_type or "").strip().rsplit(".", 1)[-1].lstrip("#")
    if name[-8:].casefold() == "evidence":
        name = name[:-8]
    return name or "unknown"


def evidence_kind(odata_type: object) -> str:
    """The short kind of an item with this @odata.type, the one rule for every reader:
    `#microsoft.graph.security.fileHashEvidence` -> `fileHash`. A registered type gives its
    class's kind, however it is spelled (as parsing finds the class); another type, the kind
    its name spells; none (or not a string), `unknown`."""
    return _kind_of(odata_type) if isinstance(odata_type, str) else "unknown"


@lru_cache(maxsize=_SEEN_LIMIT)  # a handful of types, asked about several times per item
def _kind_of(odata_type: str) -> str:
    found = Evidence._class_for(odata_type)
    return found.KIND if found is not UnknownEvidence else _kind_in(odata_type)


class Evidence(GraphModel):
    """alertEvidence: what every evidence item has, plus entity identity and a label."""

    GRAPH_KEYS: ClassVar[Mapping[str, str]] = {"odata_type": "@odata.type"}
    #: The full @odata.type of a subtype (None on the base and on UnknownEvidence).
    ODATA_TYPE: ClassVar[str | None] = None
    #: The short kind of a subtype: `deviceEvidence` -> `device`.
    KIND: ClassVar[str] = "unknown"

    odata_type: str | None = None
    created_date_time: datetime | None = None
    verdict: EvidenceVerdict | None = None
    remediation_status: EvidenceRemediationStatus | None = None
    remediation_status_details: str | None = None
    roles: tuple[EvidenceRole, ...] = ()
    detailed_roles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        odata_type = cls.__dict__.get("ODATA_TYPE")
        if odata_type:
            cls.KIND = _kind_in(odata_type)
            _REGISTRY[_short_type(odata_type)] = cls

    @property
    def kind(self) -> str:
        """Short evidence kind: `device`, `user`, `file`, `fileHash`, ..."""
        return self.KIND

    def entity_key(self) -> EntityKey | None:
        """Stable identity of the entity this item describes; None when it has no identifier."""
        return None

    def display_name(self) -> str:
        """A short human label for consoles: host name, UPN, IP, URL, file name, ..."""
        label = self._label()
        if label:
            return label
        key = self.entity_key()
        return key.value if key is not None else self.kind

    def _label(self) -> str | None:
        return None

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> Self:
        """Parse an evidence item into the class its @odata.type names (a subclass of `cls`).

        On the base class, which reads an alert's evidence from Graph, an unregistered type
        gives `UnknownEvidence`, and an object whose values do not fit its type
        `UnparsedEvidence` rather than a `ModelError`. A subclass (`IpEvidence.from_graph`)
        and models built in code (`from_graph_strict`) stay strict."""
        try:
            return cls.from_graph_strict(data)
        except ModelError:
            if cls is not Evidence or not isinstance(data, Mapping):
                raise  # a specific class was asked for, or not an object: nothing to keep
            return cast(Self, UnparsedEvidence.keep(data))

    @classmethod
    def from_graph_strict(cls, data: Mapping[str, Any]) -> Self:
        if type(data) is not dict and not isinstance(data, Mapping):
            raise ModelError(cls.__name__, (), f"expected a JSON object, got {describe(data)}")
        return cls._class_for(data.get("@odata.type"))._parse_graph(data, strict=True)

    @classmethod
    def _class_for(cls, odata_type: object) -> type[Self]:
        if isinstance(odata_type, str):
            found = _SEEN.get(odata_type, _MISSING)
            if found is _MISSING:
                found = _REGISTRY.get(_short_type(odata_type))
                if len(_SEEN) < _SEEN_LIMIT:
                    _SEEN[odata_type] = found
            if found is not None and found is not _MISSING and issubclass(found, cls):
                return cast(type[Self], found)
        if cls is Evidence:
            return cast(type[Self], UnknownEvidence)
        return cls

    @classmethod
    def _complete_code_input(cls, values: dict[str, Any]) -> None:
        values.setdefault("odata_type", cls.ODATA_TYPE)


class UnknownEvidence(Evidence):
    """An evidence type this version does not know: base fields typed, the rest in `raw`."""

    @property
    def kind(self) -> str:
        return _kind_in(self.odata_type)


class UnparsedEvidence(Evidence):
    """An item whose values do not fit its type (a property whose shape Graph changed, e.g.
    a string `processId` on a processEvidence), or whose base properties do not fit an
    unregistered type: kept whole in `raw`, no property parsed but `@odata.type`.

    `to_graph()` gives `raw` back exactly; `kind` is the kind its @odata.type names (the log
    tables show it as such); it names no entity (`entity_key()` is None), since none of its
    values can be trusted to mean what the type says; `problem` says why it was not parsed.
    """

    @classmethod
    def keep(cls, data: Mapping[str, Any]) -> UnparsedEvidence:
        """`data`, an item that does not parse as its type, kept whole."""
        odata_type = data.get("@odata.type")
        model = cls._parse_graph({"@odata.type": odata_type} if type(odata_type) is str else {})
        model.__dict__["raw"] = data
        return model

    @property
    def kind(self) -> str:
        return evidence_kind(self.odata_type)

    @property
    def problem(self) -> str:
        """Why the item was not parsed, as its type reads it: `ProcessEvidence: field
        'processId': expected an integer, got a string` (types only, never values). Found
        again on each call: it is asked for rarely, and the model holds nothing else."""
        try:
            Evidence.from_graph_strict(self.raw)
        except ModelError as exc:
            return str(exc)
        return ""

    def to_graph(self) -> dict[str, Any]:
        # Nothing was parsed, so nothing can have changed: the item exactly as received.
        return cast(dict[str, Any], copy_json(self.raw))


def parse_evidence(data: Mapping[str, Any]) -> Evidence:
    """One Graph evidence object -> the Evidence subclass its @odata.type names
    (`UnknownEvidence`, `UnparsedEvidence`: see `Evidence.from_graph`)."""
    return Evidence.from_graph(data)


def registered_types() -> dict[str, type[Evidence]]:
    """Every known @odata.type (full form) and its class."""
    return {cls.ODATA_TYPE: cls for cls in _REGISTRY.values() if cls.ODATA_TYPE}


__all__ = [
    "ODATA_PREFIX",
    "Evidence",
    "UnknownEvidence",
    "UnparsedEvidence",
    "evidence_kind",
    "parse_evidence",
    "registered_types",
]
