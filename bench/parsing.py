"""Graph JSON → typed alerts, by each candidate parse path, on the emulator's corpus.

The paths compared read the same alerts (with their evidence) into the same shapes: every
field `xdrsync.models` declares, under its Graph name, nested comments and evidence typed by
`@odata.type`. The pydantic-core and msgspec models are generated from the models' own field
specs, so nothing is left out by hand. They are lower bounds for those libraries: their
enums stay plain strings (xdrsync's open enums map spellings and keep unknown members), an
unknown `@odata.type` would fail instead of being kept, a model nested in itself (a
process's parent process) stays a dict, and they keep no `raw`, which the lossless round
trip needs (the JSON parsed to dicts, the first row, is its price).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal, Union

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from bench.harness import emulator
from bench.scenarios import _token
from xdrsync import collector
from xdrsync.models import Alert
from xdrsync.models.base import GraphModel, specs_of
from xdrsync.models.evidence import Evidence, registered_types
from xdrsync.models.fields import FieldSpec, Kind


def collect_alerts(incidents: int) -> list[bytes]:
    """The alerts of an emulator seeded with ``incidents``, each as the Graph JSON it sent."""
    alerts: list[bytes] = []
    with emulator("--incidents", str(incidents)) as emu, httpx.Client(timeout=120) as http:
        http.post(f"{emu.base_url}/_emulator/paging", content="keyset").raise_for_status()
        headers = {"Authorization": f"Bearer {_token(emu, http)}"}
        url: str | None = f"{emu.base_url}/v1.0/security/incidents"
        params: dict[str, str] | None = {"$top": "50", "$expand": "alerts"}
        while url:
            body = orjson.loads(http.get(url, headers=headers, params=params).content)
            alerts.extend(orjson.dumps(a) for i in body["value"] for a in i.get("alerts", []))
            url, params = body.get("@odata.nextLink"), None
    return alerts


# -- generated models ------------------------------------------------------------------------


def _python_type(spec: FieldSpec, nested: Callable[[type[GraphModel]], Any]) -> Any:
    kind = spec.kind
    if kind is Kind.SCALAR:
        return spec.exact
    if kind is Kind.OBJECT:
        return dict[str, Any]
    if kind is Kind.ANY:
        return Any
    if kind is Kind.DATETIME:
        return datetime
    if kind is Kind.ENUM:
        return str
    if kind is Kind.ENUMS:
        return list[str]
    if kind is Kind.SCALARS:
        return list[Any]
    if kind is Kind.MODEL:
        return nested(spec.target)
    return list[nested(spec.target)]  # type: ignore[misc]


def _tag(cls: type[GraphModel]) -> str | None:
    return cls.ODATA_TYPE if issubclass(cls, Evidence) else None


def _evidence_types() -> list[type[Evidence]]:
    return list(registered_types().values())


def _generated(
    make: Callable[[type[GraphModel], str | None, Callable[[type[GraphModel]], Any]], Any],
    union: Callable[[tuple[Any, ...]], Any],
) -> Any:
    """The Alert type `make` builds for each model class (given its `@odata.type` tag, if an
    evidence type, and the builder of the types it nests), evidence as a `union` of all."""
    made: dict[type, Any] = {}

    def build(cls: type[GraphModel]) -> Any:
        if cls not in made:
            made[cls] = dict[str, Any]  # a model nested in itself stays a dict
            if cls is Evidence:
                made[cls] = union(tuple(build(t) for t in _evidence_types()))
            else:
                made[cls] = make(cls, _tag(cls), build)
        return made[cls]

    return build(Alert)


def msgspec_alert() -> Any:
    import msgspec

    def struct(cls: type[GraphModel], tag: str | None, build: Callable[[Any], Any]) -> Any:
        fields = [
            (spec.name, _python_type(spec, build) | None, None)
            for spec in specs_of(cls).fields
            if tag is None or spec.name != "odata_type"  # the tag
        ]
        rename = {spec.name: spec.key for spec in specs_of(cls).fields}
        return msgspec.defstruct(
            cls.__name__,
            fields,
            rename=rename,
            tag_field="@odata.type" if tag else None,
            tag=tag or None,
            frozen=True,
        )

    return _generated(struct, lambda members: Union[members])  # noqa: UP007 - built at run time


def pydantic_alert() -> type[BaseModel]:
    config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    def model(cls: type[GraphModel], tag: str | None, build: Callable[[Any], Any]) -> Any:
        fields: dict[str, Any] = {}
        for spec in specs_of(cls).fields:
            if tag is not None and spec.name == "odata_type":
                fields[spec.name] = (Literal[tag], Field(alias=spec.key))
            else:
                fields[spec.name] = (_python_type(spec, build) | None, Field(None, alias=spec.key))
        return create_model(cls.__name__, __config__=config, **fields)

    def union(members: tuple[Any, ...]) -> Any:
        return Annotated[Union[members], Field(discriminator="odata_type")]  # noqa: UP007

    return _generated(model, union)  # type: ignore[no-any-return]


# -- timing ----------------------------------------------------------------------------------


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def parse_paths(incidents: int) -> Iterator[list[Any]]:
    """Rows: path, CPU seconds for the corpus's alerts, ÷ the current path."""
    import msgspec

    texts = collect_alerts(incidents)
    dicts = [orjson.loads(t) for t in texts]
    evidence = sum(len(d.get("evidence") or ()) for d in dicts)
    structs, models = msgspec_alert(), pydantic_alert()
    adapter = TypeAdapter(list[models])  # type: ignore[valid-type]
    many: Any = list[structs]  # type: ignore[valid-type]
    decoder = msgspec.json.Decoder(many)
    array = b"[" + b",".join(texts) + b"]"
    runs: list[tuple[str, Callable[[], object]]] = [
        ("JSON text → dicts (orjson), which `raw` keeps", lambda: orjson.loads(array)),
        (
            "dicts → models: xdrsync's parse loop (`GraphModel.from_graph`)",
            lambda: [Alert.from_graph(d) for d in dicts],
        ),
        (
            "dicts → models: pydantic-core (`TypeAdapter.validate_python`)",
            lambda: adapter.validate_python(dicts),
        ),
        (
            "JSON text → models: pydantic-core (`validate_json`)",
            lambda: adapter.validate_json(array),
        ),
        (
            "dicts → structs: msgspec (`msgspec.convert`)",
            lambda: msgspec.convert(dicts, many),
        ),
        ("JSON text → structs: msgspec (`Decoder.decode`)", lambda: decoder.decode(array)),
    ]
    thresholds = gc.get_threshold()
    collector.tune()  # as the command line and the worker run
    try:
        paths = [(name, _best(run)) for name, run in runs]
    finally:
        gc.set_threshold(*thresholds)
    current = paths[1][1]
    for name, seconds in paths:
        yield [
            name,
            f"{len(dicts):,} alerts, {evidence:,} evidence",
            f"{seconds:.2f}",
            f"{seconds / current:.2f}×",
        ]
