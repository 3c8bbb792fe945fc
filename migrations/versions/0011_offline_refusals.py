"""The reservations each location refused, beside the sales it stored, in the offline sales
read model: `what-if` replays them too. A refused reservation is a row whose `seen` holds
what its decision saw used (NULL for a sale stored). The rows written before this
revision lack the refusals, so the read model is emptied and catches up from the start of the
log on the next read.

A migration is a leaf: the table names are copied here as they were when it was written
(tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SALES_TABLE = "offline_sales"
LOCATIONS_TABLE = "offline_sale_locations"
POSITIONS_TABLE = "projection_positions"
PROJECTION = "offline_sales"
SEEN = "seen"


def upgrade(store_config: StoreConfig) -> None:
    _start_over()
    with op.batch_alter_table(SALES_TABLE) as table:
        table.add_column(sa.Column(SEEN, sa.String(96)))


def downgrade(store_config: StoreConfig) -> None:
    _start_over()
    with op.batch_alter_table(SALES_TABLE) as table:
        table.drop_column(SEEN)


def _start_over() -> None:
    """Empty the read model and move its position back to the start of the log."""
    op.execute(sa.text(f"DELETE FROM {SALES_TABLE}"))
    op.execute(sa.text(f"DELETE FROM {LOCATIONS_TABLE}"))
    op.execute(
        sa.text(f"DELETE FROM {POSITIONS_TABLE} WHERE name = :name").bindparams(name=PROJECTION)
    )
