"""The queue's index ranks a severity newer than this version as High.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

The log tables and Sentinel read a severity newer than the enum this version knows (Graph's
``critical``, say) as High (``tables.vocab.NEWER_SEVERITY``); the queue's index ranked it
with the missing and unknown ones, so it counted, filtered and sorted as "unknown". The index
now ranks it as High (``console.index.severity_rank``), and rows indexed before are ranked
again here. The downgrade ranks them as unknown again, as the older code would.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Spelled out here, as the ranks were when this revision was written (a migration does not
#: follow later code): the Graph severities in rank order, and the words for none.
_RANKED = ("informational", "low", "medium", "high")
_NONE = ("", "unknown", "unknownfuturevalue")
_UNKNOWN_RANK = -1
_HIGH_RANK = 3

_QUEUE = sa.table(
    "queue_entry", sa.column("severity", sa.Text), sa.column("severity_rank", sa.Integer)
)


def _rank_newer(old: int, new: int) -> None:
    """Rank ``new`` the rows ranked ``old`` whose severity is newer than the enum."""
    severity = _QUEUE.c.severity
    op.execute(
        sa.update(_QUEUE)
        .where(
            _QUEUE.c.severity_rank == old,
            severity.is_not(None),
            sa.func.lower(sa.func.trim(severity)).not_in([*_RANKED, *_NONE]),
        )
        .values(severity_rank=new)
    )


def upgrade() -> None:
    _rank_newer(_UNKNOWN_RANK, _HIGH_RANK)


def downgrade() -> None:
    _rank_newer(_HIGH_RANK, _UNKNOWN_RANK)
