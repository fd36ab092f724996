"""Two-way sync: the outbox of workspace edits, the versions Defender made of our writes, and
who made each change.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def _id(name: str, **kw: object) -> sa.Column[str]:
    return sa.Column(name, sa.String(), **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    with op.batch_alter_table("change_log") as change_log:
        change_log.add_column(sa.Column("modified_by", sa.Text()))

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _id("tenant_id", nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        _id("entity_id", nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("seen", sa.Text()),
        sa.Column("wanted", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS),
        sa.Column("sent_at", _TS),
        sa.Column("done_at", _TS),
        sa.Column("outcome", sa.Text()),
        sa.Column("theirs", sa.Text()),
        sa.Column("written_version", sa.BigInteger()),
        _id("comment_key"),
    )
    op.create_index("ix_outbox_state", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_entity", "outbox", ["tenant_id", "entity_type", "entity_id"])

    op.create_table(
        "written",
        _id("tenant_id", primary_key=True),
        sa.Column("entity_type", sa.String(16), primary_key=True),
        _id("entity_id", primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("written")
    op.drop_table("outbox")
    with op.batch_alter_table("change_log") as change_log:
        change_log.drop_column("modified_by")
