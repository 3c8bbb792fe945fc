"""What the facts of each payment broke, on the payments read model.

A fact that breaks an offline rule or limit is recorded with it as a breach (before, it was
refused). `breaches` holds the codes, sorted and joined by ";" ("" when none, as for every
payment recorded before this revision: those facts were refused rather than recorded), and
`reported_late` whether a step came before the steps it implies.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade(store_config: StoreConfig) -> None:
    with op.batch_alter_table("payments") as table:
        table.add_column(sa.Column("breaches", sa.String(1024), nullable=False, server_default=""))
        table.add_column(
            sa.Column("reported_late", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade(store_config: StoreConfig) -> None:
    with op.batch_alter_table("payments") as table:
        table.drop_column("reported_late")
        table.drop_column("breaches")
