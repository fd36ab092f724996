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

Where the hub already holds both spellings of one record (made by such a change of spelling),
the lower-case one stays (the newer spelling, as the portal and Graph write it) and the other
goes; a record kept from either side is read again by the next sync. Evidence follows its
alert. The downgrade leaves the ids as they are (lower case is a valid spelling for every
earlier version).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Tables whose key holds the tenant, with their other key columns (besides ``alert`` and
#: ``evidence``, whose foreign key ties them together: handled first, evidence with its alert).
_KEYED: Final = {
    "incident": ("id",),
    "incident_version": ("incident_id", "version", "content_hash"),
    "alert_version": ("alert_id", "version", "content_hash"),
    "comment": ("entity_type", "entity_id", "comment_key"),
    "sync_state": ("stream",),
    "written": ("entity_type", "entity_id", "version"),
    "queue_entry": ("incident_id",),
}
#: Tables that carry the tenant beside a key of their own.
_CARRIED: Final = ("change_log", "quarantine", "audit", "dead_letter", "remote_copy", "outbox")
_FK: Final = "fk_evidence_alert"
_HISTORY: Final = ("incident_version", "alert_version")


def _spelled_otherwise(table: sa.TableClause) -> sa.ColumnElement[bool]:
    return table.c.tenant_id != sa.func.lower(table.c.tenant_id)


def _lower(name: str) -> None:
    table = sa.table(name, sa.column("tenant_id", sa.String()))
    op.execute(
        sa.update(table)
        .where(_spelled_otherwise(table))
        .values(tenant_id=sa.func.lower(table.c.tenant_id))
    )


def _drop_twins(name: str, key: Sequence[str]) -> None:
    """Delete the rows whose lower-case twin (same key, the tenant in lower case) exists. A
    version's change goes with it: the change sequence reads each change's JSON from its
    version, and the twin's own change carries the same record."""
    history = name in _HISTORY
    extra = ("seq",) if history else ()
    table = sa.table(
        name, sa.column("tenant_id", sa.String()), *(sa.column(k) for k in (*key, *extra))
    )
    twin = table.alias("twin")
    same = [twin.c.tenant_id == sa.func.lower(table.c.tenant_id)]
    same += [twin.c[k] == table.c[k] for k in key]
    doomed = sa.and_(_spelled_otherwise(table), sa.select(twin.c.tenant_id).where(*same).exists())
    if history:
        log = sa.table("change_log", sa.column("seq", sa.BigInteger()))
        op.execute(sa.delete(log).where(log.c.seq.in_(sa.select(table.c.seq).where(doomed))))
    op.execute(sa.delete(table).where(doomed))


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # the evidence's key moves with its alert's: the constraint waits for both
        op.drop_constraint(_FK, "evidence", type_="foreignkey")
    else:
        op.execute("PRAGMA defer_foreign_keys = ON")
    evidence = sa.table(
        "evidence", sa.column("tenant_id", sa.String()), sa.column("alert_id", sa.String())
    )
    alert = sa.table("alert", sa.column("tenant_id", sa.String()), sa.column("id", sa.String()))
    kept = sa.select(alert.c.id).where(
        alert.c.tenant_id == sa.func.lower(evidence.c.tenant_id), alert.c.id == evidence.c.alert_id
    )
    op.execute(sa.delete(evidence).where(_spelled_otherwise(evidence), kept.exists()))
    _drop_twins("alert", ("id",))
    _lower("evidence")
    _lower("alert")
    for name, key in _KEYED.items():
        _drop_twins(name, key)
        _lower(name)
    for name in _CARRIED:
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
