"""One dead letter per destination and change.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

A change rejected again after ``destinations replay NAME --from-seq N`` (its cause not dealt
with) got a second ``dead_letter`` row beside the first, unless the operator had cleared them:
``destinations status`` counted one rejected change twice. The hub now keeps one row per
destination and change, the latest rejection's reason and time (``add_dead_letters``), and
``ix_dead_letter_destination`` is unique. The upgrade first keeps, of the rows of one change,
the newest alone; the downgrade makes the index plain again (the rows stay one each).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_dead_letter_destination"


def upgrade() -> None:
    letter = sa.table(
        "dead_letter",
        sa.column("id", sa.BigInteger()),
        sa.column("destination", sa.String()),
        sa.column("seq", sa.BigInteger()),
    )
    newer = letter.alias("newer")
    op.execute(
        sa.delete(letter).where(
            sa.select(newer.c.id)
            .where(
                newer.c.destination == letter.c.destination,
                newer.c.seq == letter.c.seq,
                newer.c.id > letter.c.id,
            )
            .exists()
        )
    )
    op.drop_index(_INDEX, table_name="dead_letter")
    op.create_index(_INDEX, "dead_letter", ["destination", "seq"], unique=True)


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="dead_letter")
    op.create_index(_INDEX, "dead_letter", ["destination", "seq"])
