"""The console: its users, their API tokens and sessions, and the incident queue's index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_user",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("email", sa.Text()),
        sa.Column("tenants", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS),
        sa.Column("last_used_at", _TS),
        sa.Column("revoked_at", _TS),
    )
    op.create_table(
        "console_session",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
    )
    op.create_index("ix_console_session_user", "console_session", ["user_name"])
    op.create_table(
        "queue_entry",
        sa.Column("tenant_id", sa.String(), primary_key=True),
        sa.Column("incident_id", sa.String(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.Text()),
        sa.Column("severity", sa.String()),
        sa.Column("severity_rank", sa.Integer(), nullable=False),
        sa.Column("status", sa.String()),
        sa.Column("assigned_to", sa.String()),
        sa.Column("classification", sa.String()),
        sa.Column("determination", sa.String()),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("products", sa.Text(), nullable=False),
        sa.Column("tactics", sa.Text(), nullable=False),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS),
        sa.Column("last_update_at", _TS, nullable=False),
        sa.Column("first_activity_at", _TS),
        sa.Column("last_activity_at", _TS),
        sa.Column("merged_into", sa.String()),
        sa.Column("search", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_queue_update", "queue_entry", ["last_update_at", "tenant_id", "incident_id"]
    )
    op.create_index("ix_queue_tenant", "queue_entry", ["tenant_id", "last_update_at"])
    op.create_index("ix_queue_status", "queue_entry", ["status", "last_update_at"])
    op.create_index("ix_queue_severity", "queue_entry", ["severity_rank", "last_update_at"])
    op.create_index("ix_queue_owner", "queue_entry", ["assigned_to", "last_update_at"])
    for column in ("alert_count", "created_at", "first_activity_at", "last_activity_at"):
        op.create_index(f"ix_queue_{column}", "queue_entry", [column, "last_update_at"])
    op.create_index(
        "ix_queue_counts", "queue_entry", ["severity", "status", "tenant_id", "last_update_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_queue_counts", table_name="queue_entry")
    for column in ("alert_count", "created_at", "first_activity_at", "last_activity_at"):
        op.drop_index(f"ix_queue_{column}", table_name="queue_entry")
    for name in ("ix_queue_owner", "ix_queue_severity", "ix_queue_status", "ix_queue_tenant"):
        op.drop_index(name, table_name="queue_entry")
    op.drop_index("ix_queue_update", table_name="queue_entry")
    op.drop_table("queue_entry")
    op.drop_index("ix_console_session_user", table_name="console_session")
    op.drop_table("console_session")
    op.drop_table("api_token")
    op.drop_table("console_user")
