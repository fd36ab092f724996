"""The allow-list: a KQL query may read the workspace tables and nothing else.

Checked on duckdb-kql's parsed query (its typed IR, `duckdb_kql.ir`) before any SQL is
generated, never by matching the raw text. Every table reference anywhere in the query — the
source, `union` and `join`/`lookup` branches, `in (...)`/`toscalar(...)` subqueries, `let`
bodies, graph inputs — must be one of the workspace tables (or a name a tabular `let` bound in
scope), unqualified: no `database()`/`cluster()`, no bracketed path or glob. Sources of a kind
not known here are refused, so a construct a newer duckdb-kql adds (e.g. `externaldata`) is
refused until someone looks at it. `range` and `strrep`, which DuckDB can neither interrupt
nor account for, are bounded from the text (see `generators`).

Control commands are a separate dialect duckdb-kql answers from DuckDB's catalog
(`.show databases` lists file paths, `.show tables` the storage tables). Only `.show tables`
is allowed, answered from the allow-list itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Final

from duckdb_kql import KqlError, ir
from duckdb_kql.clusters import effective_clusters
from duckdb_kql.control import is_control_command, split_command, strip_leading_comments
from duckdb_kql.entity_groups import effective_entity_groups
from duckdb_kql.lower import lower
from duckdb_kql.stored_functions import effective_functions

from xdrsync.tables.errors import QueryError, QueryRefusedError, one_line
from xdrsync.tables.generators import generator_problems

#: Longest query text accepted; parsing is outside the time limit, so it is bounded here.
MAX_KQL_CHARS: Final = 64 * 1024
#: Sources that read nothing but the query text itself (or the tables they name, checked).
_INERT_SOURCES: Final = (ir.DataTable, ir.PrintSource, ir.RangeSource, ir.GraphSource)
_SHOW_TABLES: Final = ".show tables"
_NAME_SHOWN: Final = 80

#: Arguments that make duckdb-kql resolve nothing from process-wide defaults: no stored
#: functions, no named entity groups, no cluster mapping (so `cluster()` is refused).
NO_FUNCTIONS: Final[list[str]] = []
NO_ENTITY_GROUPS: Final[dict[str, Any]] = {}
NO_CLUSTERS: Final[dict[tuple[str, str], str]] = {}


def _shown(name: str) -> str:
    """A name from the query, safe to put in a one-line message."""
    flat = "".join(ch if ch.isprintable() else "?" for ch in name)
    return flat if len(flat) <= _NAME_SHOWN else flat[: _NAME_SHOWN - 1] + "…"


def _refuse(what: str, tables: Iterable[str]) -> QueryRefusedError:
    return QueryRefusedError(f"{what}; tables: {', '.join(tables)}")


def _limit_refusal(what: str) -> QueryRefusedError:
    return QueryRefusedError(f"query refused: {what}")


def _show_tables(tables: tuple[str, ...]) -> str:
    rows = ", ".join(f'"{name}", "workspace", "", ""' for name in tables)
    return (
        f"datatable(TableName:string, DatabaseName:string, Folder:string, DocString:string)[{rows}]"
    )


def admit(kql: str, tables: tuple[str, ...], functions: Sequence[str] = NO_FUNCTIONS) -> str:
    """The KQL to translate if `kql` reads only `tables`; `QueryRefusedError` otherwise.

    The answer is `kql` itself, except that `.show tables` becomes a literal listing `tables`.
    `functions` are the stored functions the query may call (the compatibility layer lifts a
    query's own tabular `let` functions into them); they are expanded where they are called,
    so every table their bodies read is checked like any other.
    """
    if len(kql) > MAX_KQL_CHARS:
        raise QueryRefusedError(f"query refused: longer than {MAX_KQL_CHARS} characters")
    head = strip_leading_comments(kql)
    if is_control_command(head):
        command, pipeline = split_command(head)
        if command.lower() != _SHOW_TABLES:
            raise QueryRefusedError(
                f"KQL error: unsupported control command '{_shown(command)}'; "
                f"only {_SHOW_TABLES} is available here"
            )
        kql = f"{_show_tables(tables)} {pipeline}"
    try:
        query = lower(
            kql,
            effective_entity_groups(NO_ENTITY_GROUPS),
            effective_functions(list(functions)),
            None,
            effective_clusters(NO_CLUSTERS),
        )
    except KqlError as exc:
        raise QueryError(f"KQL error: {one_line(str(exc))}") from exc
    for problem in _problems(query, frozenset(tables), frozenset()):
        raise _refuse(problem, tables)
    for node in _nodes(query):
        for problem in generator_problems(node):
            raise _limit_refusal(problem)
    return kql


def _problems(node: Any, allowed: frozenset[str], bound: frozenset[str]) -> Iterable[str]:
    """What in `node` reads something other than `allowed` (or a `let` name in `bound`)."""
    if isinstance(node, ir.Query):
        scope = bound
        for name, value in node.lets:
            yield from _problems(value, allowed, scope)
            if isinstance(value, ir.Query):
                scope = scope | {name}
        yield from _problems(node.source, allowed, scope)
        yield from _problems(node.operators, allowed, scope)
        return
    if isinstance(node, ir.TableRef):
        if node.cluster is not None or node.database is not None:
            yield f"query refused: '{_shown(node.qualified)}' names another database"
        elif node.name not in allowed and node.name not in bound:
            yield f"query failed: unknown table '{_shown(node.name)}'"
        return
    if isinstance(node, ir.WildcardTableRef):
        # Expanded against the schema we translate with, which holds the workspace tables only.
        if node.database is not None:
            yield f"query refused: '{_shown(node.database)}' names another database"
        return
    if isinstance(node, ir.Source) and not isinstance(node, _INERT_SOURCES):
        yield f"query refused: a {type(node).__name__} source is not allowed"
        return
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for item in dataclasses.fields(node):
            yield from _problems(getattr(node, item.name), allowed, bound)
    elif isinstance(node, list | tuple | set | frozenset):
        for item in node:
            yield from _problems(item, allowed, bound)
    elif isinstance(node, dict):
        for item in node.values():
            yield from _problems(item, allowed, bound)


def _nodes(node: Any) -> Iterable[ir.Node]:
    """Every IR node in `node`, depth first."""
    if isinstance(node, ir.Node):
        yield node
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for item in dataclasses.fields(node):
            yield from _nodes(getattr(node, item.name))
    elif isinstance(node, list | tuple | set | frozenset):
        for item in node:
            yield from _nodes(item)
    elif isinstance(node, dict):
        for item in node.values():
            yield from _nodes(item)


__all__ = ["MAX_KQL_CHARS", "NO_CLUSTERS", "NO_ENTITY_GROUPS", "NO_FUNCTIONS", "admit"]
