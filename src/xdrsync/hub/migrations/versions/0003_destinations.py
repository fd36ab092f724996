"""Destinations: each one's delivery health beside its cursor, the changes it rejected for
good (dead letters), and the copy of each record as xdrsync last wrote it there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("cursor") as cursor:
        cursor.add_column(sa.Column("delivered_at", _TS))
        cursor.add_column(sa.Column("error", sa.Text()))
        cursor.add_column(sa.Column("failing_since", _TS))

    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", _TS, nullable=False),
    )
    op.create_index("ix_dead_letter_destination", "dead_letter", ["destination", "seq"])

    op.create_table(
        "remote_copy",
        sa.Column("destination", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("entity_id", sa.String(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.Column("children", sa.Text(), nullable=False),
        sa.Column("pending", sa.Text()),
        sa.Column("at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("remote_copy")
    op.drop_index("ix_dead_letter_destination", table_name="dead_letter")
    op.drop_table("dead_letter")
    with op.batch_alter_table("cursor") as cursor:
        cursor.drop_column("failing_since")
        cursor.drop_column("error")
        cursor.drop_column("delivered_at")
