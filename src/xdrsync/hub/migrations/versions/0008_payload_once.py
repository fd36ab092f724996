"""Each incident's and alert's JSON once, in its history: the current rows' copies go.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

The current tables (``incident``, ``alert``) kept the payload of the version they name beside
the history row of that same version (``incident_version``, ``alert_version``), written in the
same commit: the largest writes of every commit, twice. Readers now take it from the history
(``schema.current_payload``), and the current rows' ``payload`` is emptied. The column stays:
SQLite before 3.35 drops a column only by copying the table (alembic's batch mode does so on
any version), and dropping the old ``alert`` would empty ``evidence`` through its foreign
key. SQLite reuses the freed pages for later writes, and ``VACUUM`` gives them back to the
file system; PostgreSQL's vacuum reclaims them as usual.

A current row whose version has no history row (no xdrsync version wrote one) gets that row
here, from its own copy, before the copy goes: the upgrade loses no JSON. The downgrade copies
each payload back from the history.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (current table, its history, the history's key column, the history's own column and what
#: a row made here holds in it)
_KINDS = (
    ("incident", "incident_version", "incident_id", "alert_ids", "NULL"),
    ("alert", "alert_version", "alert_id", "incident_id", "c.incident_id"),
)


def _same_version(key: str, current: str) -> str:
    """The condition that history row ``h`` is the version the current row names."""
    return (
        f"h.tenant_id = {current}.tenant_id AND h.{key} = {current}.id "
        f"AND h.version = {current}.version AND h.content_hash = {current}.content_hash"
    )


def upgrade() -> None:
    # Identifiers are this module's constants; the statements are plain SQL, offline too.
    for current, history, key, extra, value in _KINDS:
        op.execute(
            f"INSERT INTO {history} (tenant_id, {key}, version, content_hash, seq, "  # noqa: S608
            f"{extra}, payload, recorded_at) "
            f"SELECT c.tenant_id, c.id, c.version, c.content_hash, c.seq, {value}, "
            f"c.payload, c.updated_at FROM {current} c WHERE NOT EXISTS "
            f"(SELECT 1 FROM {history} h WHERE {_same_version(key, 'c')})"
        )
    for current, *_ in _KINDS:
        op.execute(f"UPDATE {current} SET payload = ''")  # noqa: S608


def downgrade() -> None:
    for current, history, key, _, _ in _KINDS:
        op.execute(
            f"UPDATE {current} SET payload = (SELECT h.payload FROM {history} h "  # noqa: S608
            f"WHERE {_same_version(key, current)})"
        )
