"""The outbox counts an edit's 409 answers in a column.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

The pusher gives an edit up after ``MAX_CONFLICT_TRIES`` tries in a row that Defender answered
409 Conflict. It kept that count in the edit's outcome, a message for people ("... (409 answer
2 of 4)"), and read it back with a pattern: a change of the message would have reset every
count. The count is now ``outbox.conflicts`` (0 when a try fails otherwise, or the edit is
settled). The upgrade reads it, once, from the outcome of each pending edit that is midway
through its 409s, so that such an edit gives up after as many tries as it would have; the
downgrade drops the column (the outcome still says the count, as the older pusher reads it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: How the pusher before 0012 ended the outcome of an edit Defender had answered 409: "(409
#: answer N of 4)". A count is below 4, so one digit: matched by ``LIKE`` alone, one statement
#: per count, so that the upgrade also renders as SQL (``alembic upgrade --sql``) and runs
#: the same on SQLite and PostgreSQL.
_COUNTED = "%(409 answer {n} of _)"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as outbox:
        outbox.add_column(sa.Column("conflicts", sa.Integer(), nullable=False, server_default="0"))
    table = sa.table(
        "outbox",
        sa.column("state", sa.String()),
        sa.column("outcome", sa.Text()),
        sa.column("conflicts", sa.Integer()),
    )
    for n in range(1, 10):
        op.execute(
            sa.update(table)
            .where(table.c.state == "pending", table.c.outcome.like(_COUNTED.format(n=n)))
            .values(conflicts=n)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as outbox:
        outbox.drop_column("conflicts")
