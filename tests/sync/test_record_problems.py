"""Which failed commits are one record's data (quarantine it, keep the rest) and which are the
store's or the code's (fail the page, quarantine nothing a working store would take)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from xdrsync.errors import RetriableError
from xdrsync.sync.inbound import _is_record_problem


class DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


class Psycopg2Error(Exception):
    """psycopg2 names the SQLSTATE ``pgcode`` (psycopg 3 and asyncpg: ``sqlstate``)."""

    def __init__(self, pgcode: str) -> None:
        super().__init__(f"driver error {pgcode}")
        self.pgcode = pgcode


def db(kind: type[Exception], sqlstate: str | None = None) -> Exception:
    return kind("INSERT ...", {}, DriverError(sqlstate))


def pg2(kind: type[Exception], pgcode: str) -> Exception:
    return kind("INSERT ...", {}, Psycopg2Error(pgcode))


@pytest.mark.parametrize(
    ("problem", "is_data"),
    [
        (UnicodeEncodeError("utf-8", "\udc00", 0, 1, "surrogates not allowed"), True),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
        (RecursionError("maximum recursion depth exceeded"), True),
        (StatementError("bind failed", "INSERT ...", {}, ValueError("bad value")), True),
        (StatementError("bind failed", "INSERT ...", {}, RuntimeError("a bug")), False),
        (db(OperationalError, "54000"), True),  # index row size exceeds btree maximum
        (db(DataError, "22021"), True),  # invalid byte sequence (a NUL in PostgreSQL text)
        (db(IntegrityError, "23505"), True),
        (db(OperationalError, "08006"), False),  # connection failure
        (db(OperationalError, "53100"), False),  # disk full
        (db(OperationalError), False),  # SQLite: database is locked, disk I/O error
        (db(DataError), True),
        (db(IntegrityError), True),
        (pg2(OperationalError, "54000"), True),  # the same codes through psycopg2
        (pg2(IntegrityError, "08006"), False),
        (RuntimeError("a bug in the hub"), False),
        (RetriableError("transient"), False),
    ],
)
def test_only_data_errors_send_a_page_record_by_record(problem: Exception, is_data: bool) -> None:
    assert _is_record_problem(problem) is is_data
