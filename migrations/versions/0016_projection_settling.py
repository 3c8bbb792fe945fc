"""A projection's position row says whether the batches up to it left the step over its whole
read model (Stripe's fold per payment) to the end of their catch-up: a long catch-up applies
its batches without it and runs it once at its end, and the mark, committed with each
position, tells the next catch-up after a crash to run it before anything reads the tables.
Every existing row is settled: until now each batch folded its own payments.

A migration is a leaf: the table and column are copied here as they were when it was written
(tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

POSITIONS_TABLE = "projection_positions"
# The one projection that settles, and its tables (emptied when a downgrade finds it unsettled).
PROJECTION = "stripe_observations"
TABLES = (
    "stripe_objects",
    "stripe_links",
    "stripe_movements",
    "stripe_charges",
    "stripe_disputes",
    "stripe_keys",
    "stripe_payments",
)


def unsettled_column() -> sa.Column[bool]:
    return sa.Column("unsettled", sa.Boolean, nullable=False, server_default=sa.false())


def upgrade(store_config: StoreConfig) -> None:
    with op.batch_alter_table(POSITIONS_TABLE) as table:
        table.add_column(unsettled_column())


def downgrade(store_config: StoreConfig) -> None:
    """Before this revision every batch folded its own payments: a read model left
    unsettled by a stopped catch-up is emptied and read again from the start of the log."""
    marked = sa.text(
        f"SELECT 1 FROM {POSITIONS_TABLE} WHERE name = :name AND unsettled"
    ).bindparams(name=PROJECTION)
    if op.get_bind().execute(marked).first() is not None:
        for name in TABLES:
            op.execute(sa.text(f"DELETE FROM {name}"))
        op.execute(
            sa.text(f"DELETE FROM {POSITIONS_TABLE} WHERE name = :name").bindparams(name=PROJECTION)
        )
    with op.batch_alter_table(POSITIONS_TABLE) as table:
        table.drop_column(unsettled_column().name)
