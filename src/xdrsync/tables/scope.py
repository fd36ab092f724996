"""Tenant scoping for KQL: which rows of each table a user scoped to some tenants may read.

Scoping happens at the data layer, never by rewriting the KQL: `LogStore.query` runs a scoped
query over temporary views named like the workspace tables that keep only the rows whose tenant
column holds one of the user's tenant ids (`logstore.hidden_views`). Whatever the query does
with the tables — `union`, `join`, `let`, `toscalar`, `materialize`, `union *`, hidden columns
— it reads those views; the allow-list (`guard`) refuses every other name a query could reach
the storage tables by.

Every workspace table carries the tenant in `TenantId`. A table without it could not be scoped,
so a scoped query is refused outright while such a table exists (never answered unfiltered).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from xdrsync.tables.errors import QueryRefusedError
from xdrsync.tables.schemas import TableSchema

#: The column every workspace table holds the Entra tenant id in.
TENANT_COLUMN: Final = "TenantId"
#: Longest tenant id accepted (an Entra tenant id is a 36-character GUID).
_MAX_TENANT_ID: Final = 128
_GUID: Final = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")


def row_tenant(configured: str | None, claimed: str | None) -> str | None:
    """The `TenantId` a row carries: the configured tenant whose app read the record, not
    the `tenantId` the record claims. Graph's answers are untrusted input, and scoping filters
    on this column: a record read for tenant A that names tenant B must not land in B's
    hunting and leave A's. A tenant configured by its domain name has no GUID to write; the
    record's own is kept then (and the configured name when the record names none)."""
    if configured and _GUID.fullmatch(configured.strip()):
        return configured.strip().lower()
    return claimed or configured


def tenant_column(schema: TableSchema) -> str | None:
    """The column of `schema` that holds the tenant id, or None when it has none."""
    return TENANT_COLUMN if TENANT_COLUMN in schema.column_names else None


def normalize_tenant_ids(tenant_ids: Sequence[str] | None) -> tuple[str, ...] | None:
    """`tenant_ids` as the views compare them: stripped, lower case, without duplicates,
    sorted. None stays None (every tenant); an empty sequence stays empty (no tenant).

    A plain `str` is refused (it is a sequence of characters, not of tenant ids), and so is
    an id that is empty, too long or holds a character no tenant id has.
    """
    if tenant_ids is None:
        return None
    if isinstance(tenant_ids, str):
        raise TypeError("tenant_ids must be a sequence of tenant ids, not one string")
    normalized: set[str] = set()
    for raw in tenant_ids:
        if not isinstance(raw, str):
            raise TypeError(f"a tenant id must be a string, not {type(raw).__name__}")
        value = raw.strip().lower()
        if not value or len(value) > _MAX_TENANT_ID or not value.isprintable():
            raise ValueError(f"not a tenant id: {raw[:_MAX_TENANT_ID]!r}")
        normalized.add(value)
    return tuple(sorted(normalized))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def tenant_filter(schema: TableSchema, tenant_ids: Sequence[str]) -> str:
    """The SQL condition that keeps the rows of `schema` belonging to `tenant_ids` (already
    normalized); `QueryRefusedError` when the table has no tenant column."""
    column = tenant_column(schema)
    if column is None:
        raise QueryRefusedError(
            f"query refused: table {schema.name} has no tenant column, so a user scoped to "
            "tenants cannot query the workspace"
        )
    if not tenant_ids:
        return "false"
    values = ", ".join(_literal(t) for t in tenant_ids)
    return f'lower("{column}") IN ({values})'


__all__ = ["TENANT_COLUMN", "normalize_tenant_ids", "tenant_column", "tenant_filter"]
