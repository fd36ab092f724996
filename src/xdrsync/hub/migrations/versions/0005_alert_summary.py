"""The alert's categories and first and last activity in columns of their own, so that the
incident queue's index reads them without parsing each alert's payload.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Stored alerts are filled from their payloads in the same upgrade. An offline upgrade
(``alembic upgrade --sql``) can only add the columns: run it online, or let xdrsync open the
hub, to fill them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from xdrsync import jsontext
from xdrsync.hub.payload import alert_summary

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 1000


def upgrade() -> None:
    with op.batch_alter_table("alert") as alert:
        alert.add_column(sa.Column("categories", sa.Text()))
        alert.add_column(sa.Column("first_activity", sa.BigInteger()))
        alert.add_column(sa.Column("last_activity", sa.BigInteger()))
    if not context.is_offline_mode():
        _fill(op.get_bind())


def _fill(conn: sa.Connection) -> None:
    table = sa.table(
        "alert",
        sa.column("tenant_id", sa.String()),
        sa.column("id", sa.String()),
        sa.column("payload", sa.Text()),
        sa.column("categories", sa.Text()),
        sa.column("first_activity", sa.BigInteger()),
        sa.column("last_activity", sa.BigInteger()),
    )
    update = (
        table.update()
        .where(table.c.tenant_id == sa.bindparam("k_tenant"), table.c.id == sa.bindparam("k_id"))
        .values(
            categories=sa.bindparam("categories"),
            first_activity=sa.bindparam("first_activity"),
            last_activity=sa.bindparam("last_activity"),
        )
    )
    after: tuple[str, str] = ("", "")
    while True:  # keyset pages: memory stays flat however many alerts the hub holds
        page = conn.execute(
            sa.select(table.c.tenant_id, table.c.id, table.c.payload)
            .where(sa.tuple_(table.c.tenant_id, table.c.id) > sa.tuple_(*after))
            .order_by(table.c.tenant_id, table.c.id)
            .limit(_CHUNK)
        ).all()
        if not page:
            return
        conn.execute(
            update,
            [
                {"k_tenant": tenant, "k_id": key, **alert_summary(jsontext.loads(payload))}
                for tenant, key, payload in page
            ],
        )
        after = (page[-1].tenant_id, page[-1].id)


def downgrade() -> None:
    with op.batch_alter_table("alert") as alert:
        alert.drop_column("last_activity")
        alert.drop_column("first_activity")
        alert.drop_column("categories")
