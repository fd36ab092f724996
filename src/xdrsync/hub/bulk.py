"""Many rows into one table at once: the hub's write path for a batch.

SQLAlchemy's own executemany builds each row's parameters anew (``construct_params`` and the
type's bind processor, per row and per column). Here the INSERT is compiled once per table
and set of columns, each column's bind processor is looked up then, and a value the
processor met on the row before (the batch's one ``now`` in every row) is not converted
again; the driver then gets one executemany. The SQL and the stored values are SQLAlchemy's
own, for SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Table

_UNSEEN = object()


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (column name -> value, the same columns in each) into ``table``."""
    if not rows:
        return
    sql, names, positional, processors = _statement(table, tuple(rows[0]), conn.dialect)
    get = itemgetter(*names)
    try:
        values = [get(row) if len(names) > 1 else (get(row),) for row in rows]
    except KeyError as exc:
        raise ValueError(f"{table.name}: a row lacks the column {exc.args[0]!r}") from None
    if processors:
        converters = [(index, _remembering(process)) for index, process in processors]
        for position, row in enumerate(values):
            converted = list(row)
            for index, convert in converters:
                converted[index] = convert(converted[index])
            values[position] = tuple(converted)
    params: list[Any] = (
        values if positional else [dict(zip(names, row, strict=True)) for row in values]
    )
    conn.exec_driver_sql(sql, params)


_Processors = tuple[tuple[int, Callable[[Any], Any]], ...]


@lru_cache(maxsize=128)
def _statement(
    table: Table, columns: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[str, ...], bool, _Processors]:
    """The INSERT's SQL, its parameters' names in order, whether they go by position, and
    the bind processor of each that has one (compiling costs about 1 ms: once per shape)."""
    compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
    if sorted(names) != sorted(columns):  # e.g. a column with a Python-side default
        raise ValueError(f"{table.name}: the INSERT binds {names}, the rows carry {columns}")
    processors = tuple(
        (index, processor)
        for index, name in enumerate(names)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
    )
    return compiled.string, names, compiled.positional, processors


def _remembering(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process``, reusing its last result when given the same object again (the values
    are immutable: strings, numbers, datetimes)."""
    last: list[Any] = [_UNSEEN, None]

    def remembered(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        last[0], last[1] = value, process(value)
        return last[1]

    return remembered


__all__ = ["insert_rows"]
