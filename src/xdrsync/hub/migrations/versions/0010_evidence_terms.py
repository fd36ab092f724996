"""The identifying attributes of each alert's evidence in a column of its own, for the queue's
search, and the queue's index rebuilt with them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

The queue's search found an incident by each entity's key and one name, not by what its
entity cards show (a device's DNS name, a file's SHA1). The alert now keeps those attributes
(``terms.evidence_terms``), which the queue's index reads without parsing the payload. Stored
alerts are filled from their payloads in the same upgrade, and the index's cursor is moved back
to the first change: every incident's row is recomputed as the changes come again, while the
rows indexed before stay listed meanwhile. An offline upgrade (``alembic upgrade --sql``) can
only add the column: run it online, or let xdrsync open the hub, to fill it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

from xdrsync import jsontext
from xdrsync.hub.terms import evidence_terms

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 1000
#: The queue index's cursor (``layout.QUEUE_DESTINATION`` when this revision was written).
_QUEUE_CURSOR = "console"


def upgrade() -> None:
    with op.batch_alter_table("alert") as alert:
        alert.add_column(sa.Column("evidence_terms", sa.Text()))
    if not context.is_offline_mode():
        conn = op.get_bind()
        _fill(conn)
        _reindex(conn)


def _fill(conn: sa.Connection) -> None:
    alert = sa.table(
        "alert",
        sa.column("tenant_id", sa.String()),
        sa.column("id", sa.String()),
        sa.column("version", sa.BigInteger()),
        sa.column("content_hash", sa.String()),
        sa.column("evidence_terms", sa.Text()),
    )
    # Each JSON is in the history only, under the version the current row names (0008).
    history = sa.table(
        "alert_version",
        sa.column("tenant_id", sa.String()),
        sa.column("alert_id", sa.String()),
        sa.column("version", sa.BigInteger()),
        sa.column("content_hash", sa.String()),
        sa.column("payload", sa.Text()),
    )
    payload = (
        sa.select(history.c.payload)
        .where(
            history.c.tenant_id == alert.c.tenant_id,
            history.c.alert_id == alert.c.id,
            history.c.version == alert.c.version,
            history.c.content_hash == alert.c.content_hash,
        )
        .scalar_subquery()
    )
    update = (
        alert.update()
        .where(alert.c.tenant_id == sa.bindparam("k_tenant"), alert.c.id == sa.bindparam("k_id"))
        .values(evidence_terms=sa.bindparam("terms"))
    )
    after: tuple[str, str] = ("", "")
    while True:  # keyset pages: memory stays flat however many alerts the hub holds
        page = conn.execute(
            sa.select(alert.c.tenant_id, alert.c.id, payload)
            .where(sa.tuple_(alert.c.tenant_id, alert.c.id) > sa.tuple_(*after))
            .order_by(alert.c.tenant_id, alert.c.id)
            .limit(_CHUNK)
        ).all()
        if not page:
            return
        rows = [
            {"k_tenant": tenant, "k_id": key, "terms": evidence_terms(jsontext.loads(text))}
            for tenant, key, text in page
            if text
        ]
        if rows:
            conn.execute(update, rows)
        after = (page[-1][0], page[-1][1])


def _reindex(conn: sa.Connection) -> None:
    """Every change comes again to the queue's index, which recomputes each incident's row
    (a row is never patched: ``console.index``)."""
    cursor = sa.table(
        "cursor",
        sa.column("name", sa.String()),
        sa.column("seq", sa.BigInteger()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    conn.execute(
        cursor.update()
        .where(cursor.c.name == _QUEUE_CURSOR)
        .values(seq=0, updated_at=datetime.now(UTC))
    )


def downgrade() -> None:
    with op.batch_alter_table("alert") as alert:
        alert.drop_column("evidence_terms")
