"""Tenant ids in lower case.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

A Defender tenant is keyed by its GUID, which compares without regard to case. The hub used
to key it by the config's spelling, so a config that wrote `72F988BF-...` (as some tools show
it) and later `72f988bf-...` (as the portal and Graph do) made two tenants: the second read
everything again beside the first, and its edits, history and console users' view of the
first were left behind. The config now writes every tenant id in lower case
(`config.TenantConfig`), and this upgrade brings the stored ids to it.

Where the hub already holds both spellings of one record (made by such a change of spelling,
either way), the newer version of its current row stays, with the rows that follow it (an
alert's evidence, an incident's queue entry), and the history keeps every version once (a
version held twice keeps one row and one change). Of a stream's cursor held under both spellings
the lower-case one stays (each spelling's stream read from its own start to its cursor). A Sentinel
read-back's watermark (``sync_state`` under "destination:NAME") names no tenant and is left
as it is. Every row is rewritten only if its id is spelled otherwise, so a hub kept in lower
case is read, not written; one kept in capitals has every row rewritten once (a SQLite hub's
write-ahead log grows to about its size meanwhile: keep that much disk free). The downgrade
leaves the ids as they are: an older version reads them, but with a config that still spells
an id in capitals it takes them for another tenant, so write the config's ids in lower case
before going back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Current rows whose key holds the tenant, with their other key columns: of twins (one
#: record under two spellings) the newer version stays.
_CURRENT: Final[dict[str, tuple[str, ...]]] = {"incident": ("id",), "alert": ("id",)}
#: Rows that follow their record's current row: the twin whose record went goes too.
_FOLLOWING: Final = {
    "evidence": ("alert", "alert_id"),
    "queue_entry": ("incident", "incident_id"),
}
#: Other tables whose key holds the tenant, with their other key columns: twins are the same
#: row (a version, a comment, a write), and the lower-case one stays.
_SAME: Final[dict[str, tuple[str, ...]]] = {
    "incident_version": ("incident_id", "version", "content_hash"),
    "alert_version": ("alert_id", "version", "content_hash"),
    "comment": ("entity_type", "entity_id", "comment_key"),
    "written": ("entity_type", "entity_id", "version"),
    # A stream's cursor under both spellings: each spelling's stream read from its own start
    # up to its own cursor, so either covers what it read; the lower-case one stays.
    "sync_state": ("stream",),
}
#: Tables that carry the tenant beside a key of their own.
_CARRIED: Final = ("change_log", "quarantine", "audit", "dead_letter", "remote_copy", "outbox")
_FK: Final = "fk_evidence_alert"
_HISTORY: Final = ("incident_version", "alert_version")
#: Keys of ``sync_state`` that name no tenant: a Sentinel read-back's watermark is kept under
#: "destination:" and the destination's name, which may hold capitals.
_NOT_A_TENANT: Final = "destination:%"


def _spelled_otherwise(table: sa.TableClause) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.tenant_id != sa.func.lower(table.c.tenant_id),
        sa.not_(table.c.tenant_id.like(_NOT_A_TENANT)),
    )


def _lower(name: str) -> None:
    table = sa.table(name, sa.column("tenant_id", sa.String()))
    op.execute(
        sa.update(table)
        .where(_spelled_otherwise(table))
        .values(tenant_id=sa.func.lower(table.c.tenant_id))
    )


def _table(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, sa.column("tenant_id", sa.String()), *(sa.column(c) for c in columns))


def _twin_of(table: sa.FromClause, twin: sa.FromClause, key: Sequence[str]) -> list[Any]:
    """``twin`` is the same record as ``table``'s row under another spelling of its tenant."""
    return [
        sa.func.lower(twin.c.tenant_id) == sa.func.lower(table.c.tenant_id),
        twin.c.tenant_id != table.c.tenant_id,
        sa.not_(table.c.tenant_id.like(_NOT_A_TENANT)),
        *(twin.c[k] == table.c[k] for k in key),
    ]


def _lower_case(table: sa.FromClause) -> sa.ColumnElement[bool]:
    return table.c.tenant_id == sa.func.lower(table.c.tenant_id)


def _preferred(twin: sa.FromClause, table: sa.FromClause) -> sa.ColumnElement[bool]:
    """Whether ``twin`` wins over ``table``'s row, of two rows of one record: the lower-case
    spelling, else the greater text (any total order: one of several spellings stays)."""
    return sa.or_(
        sa.and_(_lower_case(twin), sa.not_(_lower_case(table))),
        sa.and_(_lower_case(twin) == _lower_case(table), twin.c.tenant_id > table.c.tenant_id),
    )


def _drop_twins(name: str, key: Sequence[str], *, versioned: bool = False) -> None:
    """Delete each row a twin wins over: the newer version (``versioned``), else, or at the
    same version, the preferred spelling. A version's change goes with it: the change
    sequence reads each change's JSON from its version, and the twin's own change carries
    the same record."""
    history = name in _HISTORY
    extra: tuple[str, ...] = (*(("version",) if versioned else ()), *(("seq",) if history else ()))
    table = _table(name, *key, *extra)
    twin = table.alias("twin")
    wins = _preferred(twin, table)
    if versioned:
        newer = twin.c.version > table.c.version
        wins = sa.or_(newer, sa.and_(twin.c.version == table.c.version, wins))
    doomed = sa.select(twin.c.tenant_id).where(*_twin_of(table, twin, key), wins).exists()
    if history:
        log = sa.table("change_log", sa.column("seq", sa.BigInteger()))
        op.execute(sa.delete(log).where(log.c.seq.in_(sa.select(table.c.seq).where(doomed))))
    op.execute(sa.delete(table).where(doomed))


def _drop_orphans(name: str, record: str, column: str) -> None:
    """Delete each row of ``name`` whose record went with its twin: its record's current row
    is not under its spelling of the tenant, but under another."""
    table = _table(name, column)
    current = _table(record, "id")

    def held(*spelled: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        return sa.select(current.c.id).where(*spelled, current.c.id == table.c[column]).exists()

    same = current.c.tenant_id == table.c.tenant_id
    other = sa.and_(sa.func.lower(current.c.tenant_id) == sa.func.lower(table.c.tenant_id), ~same)
    op.execute(sa.delete(table).where(sa.not_(held(same)), held(other)))


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # the evidence's key moves with its alert's: the constraint waits for both
        op.drop_constraint(_FK, "evidence", type_="foreignkey")
    else:
        op.execute("PRAGMA defer_foreign_keys = ON")
    for name, key in _CURRENT.items():
        _drop_twins(name, key, versioned=True)
    for name, (record, column) in _FOLLOWING.items():
        _drop_orphans(name, record, column)
    for name, key in _SAME.items():
        _drop_twins(name, key)
    for name in (*_CURRENT, *_FOLLOWING, *_SAME, *_CARRIED):
        _lower(name)
    if postgres:
        op.create_foreign_key(
            _FK,
            "evidence",
            "alert",
            ["tenant_id", "alert_id"],
            ["tenant_id", "id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    """Nothing to undo: every earlier version reads lower-case ids."""
