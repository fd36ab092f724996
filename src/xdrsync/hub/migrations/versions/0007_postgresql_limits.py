"""Two limits PostgreSQL has and SQLite does not.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

* ``ix_evidence_entity`` indexes the first ``ENTITY_KEY_INDEXED`` characters of the entity key,
  not the whole key. A URL evidence's key is its URL, and PostgreSQL refuses an index entry
  over about 2,700 bytes: an incident with a long phishing URL was quarantined, never stored.
* The ids of the tables that grow with time (``audit``, ``quarantine``, ``dead_letter``,
  ``outbox``) are 64-bit. PostgreSQL made them ``integer``, whose sequence stops at 2^31 and
  then fails every commit. SQLite's row ids are 64-bit already.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: As ``hub.schema.ENTITY_KEY_INDEXED`` (a migration keeps the value it was written with).
_INDEXED = 200
_GROWING = ("audit", "quarantine", "dead_letter", "outbox")


def upgrade() -> None:
    op.drop_index("ix_evidence_entity", table_name="evidence")
    op.create_index(
        "ix_evidence_entity",
        "evidence",
        ["tenant_id", "entity_kind", sa.text(f"substr(entity_key, 1, {_INDEXED})")],
    )
    if op.get_context().dialect.name == "postgresql":
        for table in _GROWING:
            op.alter_column(table, "id", type_=sa.BigInteger(), existing_type=sa.Integer())
            op.execute(f"ALTER SEQUENCE {table}_id_seq AS bigint")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in _GROWING:
            op.execute(f"ALTER SEQUENCE {table}_id_seq AS integer")
            op.alter_column(table, "id", type_=sa.Integer(), existing_type=sa.BigInteger())
    op.drop_index("ix_evidence_entity", table_name="evidence")
    op.create_index("ix_evidence_entity", "evidence", ["tenant_id", "entity_kind", "entity_key"])
