"""Column lists of the Sentinel-compatible log tables, and how each KQL type is stored in DuckDB."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import Final, Literal

KqlType = Literal["string", "datetime", "int", "long", "real", "bool", "dynamic"]

SECURITY_INCIDENT: Final = "SecurityIncident"
SECURITY_ALERT: Final = "SecurityAlert"
ALERT_EVIDENCE: Final = "AlertEvidence"
ALERT_INFO: Final = "AlertInfo"

#: Every table the log store holds, in creation order.
TABLE_NAMES: Final[tuple[str, ...]] = (
    SECURITY_INCIDENT,
    SECURITY_ALERT,
    ALERT_EVIDENCE,
    ALERT_INFO,
)

#: KQL type -> DuckDB column type. Chosen by running Sentinel queries through duckdb-kql:
#: * datetime is a naive TIMESTAMP holding UTC. duckdb-kql models KQL datetimes that way
#:   (`now()`/`ago()` lower to `now() AT TIME ZONE 'UTC'`, `bin()` returns TIMESTAMP), and only a
#:   TIMESTAMP column makes `tostring(TimeGenerated)` print Kusto's `2024-05-01T10:00:00.0000000Z`
#:   (a TIMESTAMPTZ prints `2024-05-01 10:00:00+00`). Comparisons work either way.
#: * dynamic is DuckDB's JSON type: duckdb-kql maps JSON <-> dynamic, so `Owner.assignedTo`,
#:   `mv-expand AlertIds`, `array_length(Labels)` and `tostring(AdditionalData.alertsCount)` run
#:   unchanged. Columns Log Analytics types `string` but fills with JSON text (SecurityAlert's
#:   Entities, ExtendedProperties) stay VARCHAR, so queries must `parse_json()` them - as in
#:   Sentinel.
DUCKDB_TYPES: Final[dict[str, str]] = {
    "string": "VARCHAR",
    "datetime": "TIMESTAMP",
    "int": "INTEGER",
    "long": "BIGINT",
    "real": "DOUBLE",
    "bool": "BOOLEAN",
    "dynamic": "JSON",
}


@dataclass(frozen=True)
class Column:
    """One column: its Log Analytics name and KQL type."""

    name: str
    kql_type: KqlType
    #: For a `dynamic` bag whose keys are known (SecurityIncident's `Owner`): its keys.
    keys: tuple[Column, ...] = ()

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.kql_type]


@dataclass(frozen=True)
class TableSchema:
    """The ordered columns of one table, as Microsoft publishes them."""

    name: str
    columns: tuple[Column, ...]
    source: str

    @cached_property
    def column_names(self) -> tuple[str, ...]:  # asked for every row the fan-out writes
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")


#: Our own columns, stored next to Microsoft's but hidden from KQL (the KQL-visible table is a
#: view without them). `_Seq` is the hub change sequence that produced the row, so whoever feeds
#: the store can resume after a crash from `LogStore.max_seq()` without appending twice.
BOOKKEEPING_COLUMNS: Final[tuple[Column, ...]] = (Column("_Seq", "long"),)

#: Log Analytics' hidden standard columns: stored with every row of every table, but shown only
#: to a query that names one (`project _ItemId`, `ingestion_time()`), as in Log Analytics.
#: `_IngestionTime` is when the log store wrote the row (what `ingestion_time()` returns);
#: `_TimeReceived` when the hub received the record from Graph; `_ItemId` a unique id per row;
#: `_ResourceId` and `_SubscriptionId` are empty (a workspace here is no Azure resource).
HIDDEN_COLUMNS: Final[tuple[Column, ...]] = (
    Column("_IngestionTime", "datetime"),
    Column("_TimeReceived", "datetime"),
    Column("_ItemId", "string"),
    Column("_ResourceId", "string"),
    Column("_SubscriptionId", "string"),
)
HIDDEN_NAMES: Final = frozenset(c.name for c in HIDDEN_COLUMNS)


def _parse_type(raw: object, where: str) -> KqlType:
    text = str(raw).strip().lower()
    if text not in DUCKDB_TYPES:
        raise ValueError(f"{where}: unknown KQL type {raw!r}")
    return text  # type: ignore[return-value]  # membership in DUCKDB_TYPES proves the literal


def _column(doc: dict[str, object], where: str) -> Column:
    name = str(doc["name"])
    keys = doc.get("keys") or []
    if not isinstance(keys, list):
        raise ValueError(f"{where}.{name}: keys must be a list")
    return Column(
        name,
        _parse_type(doc["type"], f"{where}.{name}"),
        tuple(_column(key, f"{where}.{name}") for key in keys),
    )


@cache
def table_schema(name: str) -> TableSchema:
    """Load one table's column list from the package data (`tables/schemas/<name>.json`)."""
    if name not in TABLE_NAMES:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLE_NAMES)}")
    data = resources.files("xdrsync.tables").joinpath("schemas").joinpath(f"{name}.json")
    doc = json.loads(data.read_text(encoding="utf-8"))
    columns = tuple(_column(c, name) for c in doc["columns"])
    return TableSchema(name=name, columns=columns, source=str(doc.get("source", "")))


def all_schemas() -> tuple[TableSchema, ...]:
    return tuple(table_schema(n) for n in TABLE_NAMES)


__all__ = [
    "ALERT_EVIDENCE",
    "ALERT_INFO",
    "BOOKKEEPING_COLUMNS",
    "DUCKDB_TYPES",
    "HIDDEN_COLUMNS",
    "HIDDEN_NAMES",
    "SECURITY_ALERT",
    "SECURITY_INCIDENT",
    "TABLE_NAMES",
    "Column",
    "KqlType",
    "TableSchema",
    "all_schemas",
    "table_schema",
]
