"""The sales each location stored offline, one row each with plain columns, and each
location's configuration: what `what-if` replays, read with one query per location instead of
decoding every event of the location streams. The new read model starts empty and catches up
from the start of the log on the next read.

A migration is a leaf: the table names are copied here as they were when it was written
(tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SALES_TABLE = "offline_sales"
LOCATIONS_TABLE = "offline_sale_locations"


def upgrade(store_config: StoreConfig) -> None:
    op.create_table(
        SALES_TABLE,
        sa.Column("offline_id", sa.String(36), primary_key=True),
        sa.Column("location_id", sa.String(255), nullable=False),
        sa.Column("arrival", sa.BigInteger, nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("stored_us", sa.BigInteger, nullable=False),
        sa.Column("breaches", sa.String(1024), nullable=False),
        sa.Column("released_us", sa.BigInteger),
        sa.Column("released_as", sa.String(16)),
    )
    op.create_index("offline_sales_location_idx", SALES_TABLE, ["location_id", "arrival"])
    op.create_table(
        LOCATIONS_TABLE,
        sa.Column("stream_id", sa.String(32), primary_key=True),
        sa.Column("location_id", sa.String(255), nullable=False, unique=True),
        sa.Column("configured_us", sa.BigInteger, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("sales", sa.BigInteger, nullable=False),
    )


def downgrade(store_config: StoreConfig) -> None:
    op.drop_table(LOCATIONS_TABLE)
    op.drop_index("offline_sales_location_idx", table_name=SALES_TABLE)
    op.drop_table(SALES_TABLE)
