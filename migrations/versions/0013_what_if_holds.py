"""The reservations each location granted, in the offline sales read model: `what-if` replays
their holds (a reservation holds its headroom from when it was asked until its sale is stored
or the hold is released or expires). A granted reservation is a row whose `seen` holds, beside
what its decision saw used, when it was asked, when its hold ended and its arrival. The rows
written before this revision lack the grants, so the read model is emptied and catches up
from the start of the log on the next read. No column changes.

A migration is a leaf: the table names are copied here as they were when it was written
(tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SALES_TABLE = "offline_sales"
LOCATIONS_TABLE = "offline_sale_locations"
POSITIONS_TABLE = "projection_positions"
PROJECTION = "offline_sales"


def upgrade(store_config: StoreConfig) -> None:
    _start_over()


def downgrade(store_config: StoreConfig) -> None:
    _start_over()


def _start_over() -> None:
    """Empty the read model and move its position back to the start of the log."""
    op.execute(sa.text(f"DELETE FROM {SALES_TABLE}"))
    op.execute(sa.text(f"DELETE FROM {LOCATIONS_TABLE}"))
    op.execute(
        sa.text(f"DELETE FROM {POSITIONS_TABLE} WHERE name = :name").bindparams(name=PROJECTION)
    )
