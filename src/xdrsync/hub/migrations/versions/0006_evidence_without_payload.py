"""Evidence rows without a copy of each item's JSON: the alert's own payload holds it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

An evidence row kept the item's JSON beside the alert's payload, which holds the same JSON
in its ``evidence`` list: on a 2,000-incident backfill, 38 MB of a 208 MB hub, written on
every commit. Its readers (the console's incident and alert pages, ``Hub.list_evidence``)
now take each item from the alert.
The downgrade copies each item back from its alert's payload (online only, as 0005's fill).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from xdrsync import jsontext

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 1000


def upgrade() -> None:
    with op.batch_alter_table("evidence") as evidence:
        evidence.drop_column("payload")


def downgrade() -> None:
    with op.batch_alter_table("evidence") as evidence:
        evidence.add_column(sa.Column("payload", sa.Text()))
    if not context.is_offline_mode():
        _fill(op.get_bind())
    with op.batch_alter_table("evidence") as evidence:
        evidence.alter_column("payload", existing_type=sa.Text(), nullable=False)


def _fill(conn: sa.Connection) -> None:
    alert = sa.table(
        "alert",
        sa.column("tenant_id", sa.String()),
        sa.column("id", sa.String()),
        sa.column("payload", sa.Text()),
    )
    evidence = sa.table(
        "evidence",
        sa.column("tenant_id", sa.String()),
        sa.column("alert_id", sa.String()),
        sa.column("ordinal", sa.Integer()),
        sa.column("payload", sa.Text()),
    )
    update = (
        evidence.update()
        .where(
            evidence.c.tenant_id == sa.bindparam("k_tenant"),
            evidence.c.alert_id == sa.bindparam("k_alert"),
            evidence.c.ordinal == sa.bindparam("k_ordinal"),
        )
        .values(payload=sa.bindparam("item"))
    )
    after: tuple[str, str] = ("", "")
    while True:  # keyset pages: memory stays flat however many alerts the hub holds
        page = conn.execute(
            sa.select(alert.c.tenant_id, alert.c.id, alert.c.payload)
            .where(sa.tuple_(alert.c.tenant_id, alert.c.id) > sa.tuple_(*after))
            .order_by(alert.c.tenant_id, alert.c.id)
            .limit(_CHUNK)
        ).all()
        if not page:
            return
        items = [
            {"k_tenant": tenant, "k_alert": key, "k_ordinal": ordinal, "item": jsontext.dumps(item)}
            for tenant, key, payload in page
            for ordinal, item in enumerate(jsontext.loads(payload).get("evidence") or ())
        ]
        if items:
            conn.execute(update, items)
        after = (page[-1].tenant_id, page[-1].id)
