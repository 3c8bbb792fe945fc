"""Every configuration of a location, each with its moment, in the offline sales read model
(`configs`, in place of the latest alone, `config`): `what-if` judges each sale attempt by the
limits in force at its moment. The rows written before this revision hold the latest only,
so the read model is emptied and catches up from the start of the log on the next read.

A migration is a leaf: the table names are copied here as they were when it was written
(tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SALES_TABLE = "offline_sales"
LOCATIONS_TABLE = "offline_sale_locations"
POSITIONS_TABLE = "projection_positions"
PROJECTION = "offline_sales"
CONFIGS = "configs"
CONFIG = "config"


def upgrade(store_config: StoreConfig) -> None:
    _start_over()
    with op.batch_alter_table(LOCATIONS_TABLE) as table:
        table.drop_column(CONFIG)
        table.add_column(sa.Column(CONFIGS, sa.Text, nullable=False))


def downgrade(store_config: StoreConfig) -> None:
    _start_over()
    with op.batch_alter_table(LOCATIONS_TABLE) as table:
        table.drop_column(CONFIGS)
        table.add_column(sa.Column(CONFIG, sa.Text, nullable=False))


def _start_over() -> None:
    """Empty the read model and move its position back to the start of the log."""
    op.execute(sa.text(f"DELETE FROM {SALES_TABLE}"))
    op.execute(sa.text(f"DELETE FROM {LOCATIONS_TABLE}"))
    op.execute(
        sa.text(f"DELETE FROM {POSITIONS_TABLE} WHERE name = :name").bindparams(name=PROJECTION)
    )
