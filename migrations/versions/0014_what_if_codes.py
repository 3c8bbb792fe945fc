"""The device, currency and release of each row of the offline sales read model as small
integer codes: `what-if` reads every row, and a small integer is read and compared for less
than a string. Each location's row lists the devices and currencies its sales name, in the
order first met (JSON), a sale's codes index them; a release's code indexes
`ledger.what_if.RELEASES`. The rows written before this revision hold the names, so the
read model is emptied and catches up from the start of the log on the next read, and its
sales table is made anew with the coded columns (keyed as 0012 keyed it).

A migration is a leaf: the table names are copied here as they were when it was written
(tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SALES_TABLE = "offline_sales"
LOCATIONS_TABLE = "offline_sale_locations"
POSITIONS_TABLE = "projection_positions"
PROJECTION = "offline_sales"
INDEX = "offline_sales_offline_idx"
CODE_LISTS = ("devices", "currencies")


def upgrade(store_config: StoreConfig) -> None:
    _start_over()
    with op.batch_alter_table(LOCATIONS_TABLE) as table:
        for name in CODE_LISTS:
            table.add_column(sa.Column(name, sa.Text, nullable=False))
    _make_sales(sale_columns())


def downgrade(store_config: StoreConfig) -> None:
    _start_over()
    with op.batch_alter_table(LOCATIONS_TABLE) as table:
        for name in CODE_LISTS:
            table.drop_column(name)
    _make_sales(sale_columns(coded=False))


def sale_columns(*, coded: bool = True) -> list[sa.Column[object]]:
    """The sales table's columns, the device, currency and release coded (else named, as
    0012 made them)."""
    return [
        sa.Column("offline_id", sa.String(36), nullable=False),
        sa.Column("location_id", sa.String(255), primary_key=True),
        sa.Column("arrival", sa.BigInteger, primary_key=True),
        sa.Column("device", sa.Integer, nullable=False)
        if coded
        else sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("currency", sa.Integer if coded else sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("stored_us", sa.BigInteger, nullable=False),
        sa.Column("breaches", sa.String(1024), nullable=False),
        sa.Column("released_us", sa.BigInteger),
        sa.Column("released_as", sa.Integer if coded else sa.String(16)),
        sa.Column("seen", sa.String(96)),
    ]


def _make_sales(columns: list[sa.Column[object]]) -> None:
    """The sales table made anew (emptied already) with `columns`, keyed by (location,
    arrival), without a rowid on SQLite, its offline_id unique."""
    op.drop_index(INDEX, table_name=SALES_TABLE)
    op.drop_table(SALES_TABLE)
    op.create_table(SALES_TABLE, *columns, sqlite_with_rowid=False)
    op.create_index(INDEX, SALES_TABLE, ["offline_id"], unique=True)


def _start_over() -> None:
    """Empty the read model and move its position back to the start of the log."""
    op.execute(sa.text(f"DELETE FROM {SALES_TABLE}"))
    op.execute(sa.text(f"DELETE FROM {LOCATIONS_TABLE}"))
    op.execute(
        sa.text(f"DELETE FROM {POSITIONS_TABLE} WHERE name = :name").bindparams(name=PROJECTION)
    )
