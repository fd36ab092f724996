"""The hub's batch INSERT stores exactly what SQLAlchemy's own executemany stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text

from xdrsync.hub import schema as s
from xdrsync.hub.bulk import insert_rows

NOW = datetime(2026, 12, 5, 3, 4, 5, 123456, tzinfo=UTC)


def _audit_rows(count: int) -> list[dict[str, Any]]:
    # One `now` shared by most rows (as a batch writes it), and some distinct instants,
    # equal values in new objects, and nulls in between.
    rows = []
    for i in range(count):
        at = NOW if i % 3 else NOW + timedelta(seconds=i)
        if i % 5 == 0:
            at = datetime.fromisoformat(NOW.isoformat())  # equal, another object
        rows.append(
            {
                "at": at,
                "tenant_id": f"t{i % 2}",
                "stream": None if i % 4 == 0 else "incidents",
                "entity_type": "incident",
                "entity_id": str(i),
                "decision": "insert",
                "old_version": None,
                "new_version": str(10**20 + i),
                "seq": i if i % 7 else None,
                "detail": '{"a":1}' if i % 2 else None,
            }
        )
    return rows


def _engine(paramstyle: str | None) -> Engine:
    engine = create_engine("sqlite://", paramstyle=paramstyle)
    s.metadata.create_all(engine)
    return engine


def _stored(engine: Engine) -> list[tuple[Any, ...]]:
    # As text, the way the file holds them (the datetime format included).
    with engine.connect() as conn:
        columns = "at, tenant_id, stream, entity_type, entity_id, decision, old_version, "
        columns += "new_version, seq, detail"
        return list(conn.execute(text(f"SELECT {columns} FROM audit ORDER BY id")))


@pytest.mark.parametrize("paramstyle", [None, "named"])  # the driver's qmark, and by name
def test_the_stored_rows_are_those_of_sqlalchemys_executemany(paramstyle: str | None) -> None:
    rows = _audit_rows(40)
    ours, theirs = _engine(paramstyle), _engine(paramstyle)
    with ours.begin() as conn:
        insert_rows(conn, s.audit, rows)
    with theirs.begin() as conn:
        conn.execute(s.audit.insert(), rows)
    assert _stored(ours) == _stored(theirs)
    with ours.connect() as conn:
        read = [row.at for row in conn.execute(select(s.audit.c.at).order_by(s.audit.c.id))]
    assert read == [row["at"] for row in rows]  # aware UTC datetimes back, each its own


def test_a_row_without_a_column_the_first_row_has_is_refused() -> None:
    engine = _engine(None)
    rows = _audit_rows(3)
    del rows[2]["detail"]
    with engine.begin() as conn, pytest.raises(ValueError, match="detail"):
        insert_rows(conn, s.audit, rows)


def test_a_naive_datetime_is_refused_as_by_the_column_type() -> None:
    engine = _engine(None)
    rows = _audit_rows(2)
    rows[1]["at"] = datetime(2026, 12, 5)  # naive
    with engine.begin() as conn, pytest.raises(ValueError, match="aware"):
        insert_rows(conn, s.audit, rows)


def test_no_rows_is_no_statement() -> None:
    engine = _engine(None)
    with engine.begin() as conn:
        insert_rows(conn, s.audit, [])
    assert _stored(engine) == []
