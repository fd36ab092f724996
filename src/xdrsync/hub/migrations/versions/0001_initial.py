"""The hub's first schema: current state, history, evidence, comments, change log, state, audit.

Revision ID: 0001
Revises:
Create Date: 2024-11-28

Written out by hand (not generated from ``schema.py``) so that later changes to the models
can never change what this revision creates; a test checks the two agree at head.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def _id(name: str, **kw: object) -> sa.Column[str]:
    return sa.Column(name, sa.String(), **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    op.create_table(
        "incident",
        _id("tenant_id", primary_key=True),
        _id("id", primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.Text()),
        sa.Column("status", sa.String()),
        sa.Column("severity", sa.String()),
        sa.Column("classification", sa.String()),
        sa.Column("determination", sa.String()),
        sa.Column("assigned_to", sa.String()),
        sa.Column("created_date_time", _TS),
        _id("merged_into"),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("first_seen_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_incident_queue", "incident", ["tenant_id", "version"])
    op.create_index("ix_incident_version", "incident", ["version"])
    op.create_index("ix_incident_status", "incident", ["tenant_id", "status", "version"])
    op.create_index("ix_incident_merged_into", "incident", ["tenant_id", "merged_into"])

    op.create_table(
        "alert",
        _id("tenant_id", primary_key=True),
        _id("id", primary_key=True),
        _id("incident_id"),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String()),
        sa.Column("severity", sa.String()),
        sa.Column("service_source", sa.String()),
        sa.Column("title", sa.Text()),
        sa.Column("created_date_time", _TS),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("first_seen_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_alert_incident", "alert", ["tenant_id", "incident_id"])

    op.create_table(
        "incident_version",
        _id("tenant_id", primary_key=True),
        _id("incident_id", primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger()),
        sa.Column("alert_ids", sa.Text()),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
    )
    op.create_index("ix_incident_version_seq", "incident_version", ["seq"])

    op.create_table(
        "alert_version",
        _id("tenant_id", primary_key=True),
        _id("alert_id", primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger()),
        _id("incident_id"),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
    )
    op.create_index("ix_alert_version_seq", "alert_version", ["seq"])

    op.create_table(
        "evidence",
        _id("tenant_id", primary_key=True),
        _id("alert_id", primary_key=True),
        sa.Column("ordinal", sa.Integer(), primary_key=True, autoincrement=False),
        _id("incident_id"),
        sa.Column("odata_type", sa.String()),
        sa.Column("kind", sa.String()),
        sa.Column("entity_kind", sa.String()),
        sa.Column("entity_key", sa.Text()),
        sa.Column("display_name", sa.Text()),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "alert_id"],
            ["alert.tenant_id", "alert.id"],
            name="fk_evidence_alert",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_evidence_incident", "evidence", ["tenant_id", "incident_id"])
    op.create_index("ix_evidence_entity", "evidence", ["tenant_id", "entity_kind", "entity_key"])

    op.create_table(
        "comment",
        _id("tenant_id", primary_key=True),
        sa.Column("entity_type", sa.String(16), primary_key=True),
        _id("entity_id", primary_key=True),
        sa.Column("comment_key", sa.String(64), primary_key=True),
        _id("incident_id"),
        sa.Column("created_date_time", _TS),
        sa.Column("created_by", sa.Text()),
        sa.Column("comment", sa.Text()),
        sa.Column("first_seen_at", _TS, nullable=False),
    )
    op.create_index("ix_comment_incident", "comment", ["tenant_id", "incident_id"])

    op.create_table(
        "change_log",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        _id("tenant_id", nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        _id("entity_id", nullable=False),
        _id("incident_id"),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("at", _TS, nullable=False),
    )

    counter = op.create_table(
        "counter",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(counter, [{"name": "change_seq", "value": 0}])

    op.create_table(
        "sync_state",
        _id("tenant_id", primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("doc", sa.Text()),
        sa.Column("row_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS),
        sa.Column("last_commit_at", _TS),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_error_at", _TS),
    )

    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _id("tenant_id", nullable=False),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
    )
    op.create_index("ix_quarantine_stream", "quarantine", ["tenant_id", "stream"])

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", _TS, nullable=False),
        _id("tenant_id", nullable=False),
        sa.Column("stream", sa.String(64)),
        sa.Column("entity_type", sa.String(16), nullable=False),
        _id("entity_id"),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("old_version", sa.String(40)),
        sa.Column("new_version", sa.String(40)),
        sa.Column("seq", sa.BigInteger()),
        sa.Column("detail", sa.Text()),
    )
    op.create_index("ix_audit_entity", "audit", ["tenant_id", "entity_type", "entity_id"])

    op.create_table(
        "cursor",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "cursor",
        "audit",
        "quarantine",
        "sync_state",
        "counter",
        "change_log",
        "comment",
        "evidence",
        "alert_version",
        "incident_version",
        "alert",
        "incident",
    ):
        op.drop_table(table)
