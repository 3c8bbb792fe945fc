"""Every configuration of a location, each with its moment, in the offline sales read model
(`configs`, in place of the latest alone, `config`): `what-if` judges each sale attempt by the
limits in force at its moment. The rows written before this revision hold the latest only,
so the read model is emptied and catches up from the start of the log on the next read. The
sales table is made anew, keyed by (location, arrival), the order `what-if` reads it in (on
SQLite without a rowid: one range of the table per location, not a lookup per row), its
offline_id unique.

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


OLD_INDEX = "offline_sales_location_idx"
NEW_INDEX = "offline_sales_offline_idx"


def upgrade(store_config: StoreConfig) -> None:
    _start_over()
    with op.batch_alter_table(LOCATIONS_TABLE) as table:
        table.drop_column(CONFIG)
        table.add_column(sa.Column(CONFIGS, sa.Text, nullable=False))
    op.drop_index(OLD_INDEX, table_name=SALES_TABLE)
    op.drop_table(SALES_TABLE)
    op.create_table(
        SALES_TABLE,
        *_sale_columns(),
        sa.PrimaryKeyConstraint("location_id", "arrival"),
        sqlite_with_rowid=False,
    )
    op.create_index(NEW_INDEX, SALES_TABLE, ["offline_id"], unique=True)


def downgrade(store_config: StoreConfig) -> None:
    _start_over()
    with op.batch_alter_table(LOCATIONS_TABLE) as table:
        table.drop_column(CONFIGS)
        table.add_column(sa.Column(CONFIG, sa.Text, nullable=False))
    op.drop_index(NEW_INDEX, table_name=SALES_TABLE)
    op.drop_table(SALES_TABLE)
    op.create_table(SALES_TABLE, *_sale_columns(), sa.PrimaryKeyConstraint("offline_id"))
    op.create_index(OLD_INDEX, SALES_TABLE, ["location_id", "arrival"])


def _sale_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("offline_id", sa.String(36), nullable=False),
        sa.Column("location_id", sa.String(255), nullable=False),
        sa.Column("arrival", sa.BigInteger, nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("stored_us", sa.BigInteger, nullable=False),
        sa.Column("breaches", sa.String(1024), nullable=False),
        sa.Column("released_us", sa.BigInteger),
        sa.Column("released_as", sa.String(16)),
        sa.Column("seen", sa.String(96)),
    ]


def _start_over() -> None:
    """Empty the read model and move its position back to the start of the log."""
    op.execute(sa.text(f"DELETE FROM {SALES_TABLE}"))
    op.execute(sa.text(f"DELETE FROM {LOCATIONS_TABLE}"))
    op.execute(
        sa.text(f"DELETE FROM {POSITIONS_TABLE} WHERE name = :name").bindparams(name=PROJECTION)
    )
