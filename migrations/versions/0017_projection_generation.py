"""A projection's position row counts its resets: every emptying of its read model (a rebuild,
an audit's swap) adds one to `generation`. A position alone cannot tell a read model that was
emptied and caught up again to the same place from one left as it was: work a runner carried
over from one transaction to the next (a step of a settling cut in several) is valid only in
the generation it began in. Every existing row starts at generation 0.

A migration is a leaf: the table and column are copied here as they were when it was written
(tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

POSITIONS_TABLE = "projection_positions"


def generation_column() -> sa.Column[int]:
    return sa.Column("generation", sa.BigInteger, nullable=False, server_default=sa.text("0"))


def upgrade(store_config: StoreConfig) -> None:
    with op.batch_alter_table(POSITIONS_TABLE) as table:
        table.add_column(generation_column())


def downgrade(store_config: StoreConfig) -> None:
    """Before this revision nothing read the count: it is dropped, the rows kept."""
    with op.batch_alter_table(POSITIONS_TABLE) as table:
        table.drop_column(generation_column().name)
