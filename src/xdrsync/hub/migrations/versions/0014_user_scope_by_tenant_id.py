"""Console users are scoped to tenants by tenant id, not by name.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

A console user's (and so their API tokens' and sessions') tenants were kept by the config's
tenant names. A name is a label: when a customer left the config and another one came in
under the same short name (or an entry was renamed onto it), the users scoped to the first
saw the second's incidents. The scope is now ``console_user.scope``: JSON, a list of
``{"id": tenant id, "name": its name when granted}`` (the name only to show when the tenant
has left the config), ``[]`` for every tenant.

A migration has no config, so it cannot tell which tenant a stored name meant. Unscoped users
get ``[]`` here; a scoped user's ``scope`` stays NULL, and the first start with a config
resolves the names in ``tenants`` once and records the ids
(``console.accounts.settle_scopes``). Until then such a user sees no tenant, and a name the
config no longer has gives them none for good, with a warning naming the user.
``tenants`` keeps the names as granted, for the downgrade, which drops ``scope``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("console_user") as users:
        users.add_column(sa.Column("scope", sa.Text()))
    table = sa.table("console_user", sa.column("tenants", sa.Text()), sa.column("scope", sa.Text()))
    # Every tenant stays every tenant; a scope by names waits for the config (NULL: none).
    op.execute(sa.update(table).where(table.c.tenants == "[]").values(scope="[]"))


def downgrade() -> None:
    with op.batch_alter_table("console_user") as users:
        users.drop_column("scope")
