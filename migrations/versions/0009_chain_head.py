"""The head of the hash chain as one row, on PostgreSQL: the lock every writer of the event log
takes, and the link it continues from.

Before, each insert locked the whole event table and read the chain's last link with a query of
its own. Locking this one row (`SELECT ... FOR UPDATE`) orders writers the same way (each
takes its positions and commits before the next one starts), lets an insert read the link it
continues from in the same statement, and after a wait gives the row as the writer before left
it. SQLite has one writer at a time and needs no such row.

A migration is a leaf: the table names are copied here as they were when it was written
(tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

CHAIN_TABLE = "event_chain"
CHAIN_HEAD_TABLE = "event_chain_head"
GENESIS = bytes(32)


def upgrade(store_config: StoreConfig) -> None:
    if store_config.kind != "postgresql":
        return
    op.create_table(
        CHAIN_HEAD_TABLE,
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.CheckConstraint("singleton", name="event_chain_head_one_row"),
    )
    op.execute(
        sa.text(
            f"INSERT INTO {CHAIN_HEAD_TABLE} (position, chain_hash) "
            f"SELECT COALESCE(MAX(position), 0), COALESCE((SELECT chain_hash FROM {CHAIN_TABLE} "
            f"ORDER BY position DESC LIMIT 1), :genesis) FROM {CHAIN_TABLE}"
        ).bindparams(genesis=GENESIS)
    )


def downgrade(store_config: StoreConfig) -> None:
    if store_config.kind != "postgresql":
        return
    op.drop_table(CHAIN_HEAD_TABLE)
