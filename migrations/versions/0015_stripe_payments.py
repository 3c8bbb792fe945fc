"""Stripe's side folded per Stripe payment once, as its observations are projected: each
linked object's resolved key (`stripe_keys`) and each Stripe payment's folded row
(`stripe_payments`), with the indexes that find a payment's links, movements, charges and
disputes by the ids that name it. The Stripe observations read model is emptied so that it
is rebuilt from the log with them.

A migration is a leaf: the table, index and projection names are copied here as they were
when it was written (tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PROJECTION = "stripe_observations"
POSITIONS_TABLE = "projection_positions"
KEYS_TABLE = "stripe_keys"
PAYMENTS_TABLE = "stripe_payments"
PAYMENTS_INDEX = ("stripe_payments_offline_idx", "offline_id")
# (table, index, column): what finds a Stripe payment's parts by an id.
INDEXES = (
    ("stripe_links", "stripe_links_target_idx", "target_id"),
    ("stripe_movements", "stripe_movements_payment_intent_idx", "payment_intent_id"),
    ("stripe_movements", "stripe_movements_charge_idx", "charge_id"),
    ("stripe_movements", "stripe_movements_source_idx", "source_id"),
    ("stripe_movements", "stripe_movements_balance_transaction_idx", "balance_transaction_id"),
    ("stripe_charges", "stripe_charges_payment_intent_idx", "payment_intent_id"),
    ("stripe_disputes", "stripe_disputes_payment_intent_idx", "payment_intent_id"),
    ("stripe_disputes", "stripe_disputes_charge_idx", "charge_id"),
)
EMPTIED = (
    "stripe_objects",
    "stripe_links",
    "stripe_movements",
    "stripe_charges",
    "stripe_disputes",
)


def upgrade(store_config: StoreConfig) -> None:
    _start_over(EMPTIED)
    op.create_table(KEYS_TABLE, *key_columns())
    op.create_table(PAYMENTS_TABLE, *payment_columns())
    op.create_index(PAYMENTS_INDEX[0], PAYMENTS_TABLE, [PAYMENTS_INDEX[1]])
    for table, index, column in INDEXES:
        op.create_index(index, table, [column])


def downgrade(store_config: StoreConfig) -> None:
    _start_over(EMPTIED)
    for table, index, _ in reversed(INDEXES):
        op.drop_index(index, table_name=table)
    op.drop_index(PAYMENTS_INDEX[0], table_name=PAYMENTS_TABLE)
    op.drop_table(PAYMENTS_TABLE)
    op.drop_table(KEYS_TABLE)


def key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("object_id", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(255), nullable=False),
    ]


def payment_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("offline_id", sa.String(255)),
        sa.Column("offline_collected", sa.Boolean),
        sa.Column("created_at", sa.DateTime),
        sa.Column("card_brand", sa.String(64)),
        sa.Column("currency", sa.String(3)),
        sa.Column("status", sa.String(64)),
        sa.Column("amount", sa.BigInteger),
        sa.Column("declined", sa.Boolean),
        sa.Column("refunded", sa.BigInteger),
        sa.Column("disputed", sa.BigInteger),
        sa.Column("dispute_status", sa.String(64)),
        sa.Column("settled", sa.BigInteger),
        sa.Column("settled_currency", sa.String(3)),
        sa.Column("fees", sa.BigInteger),
        sa.Column("net", sa.BigInteger),
        sa.Column("payout_id", sa.String(255)),
        sa.Column("payout_at", sa.DateTime),
    ]


def _start_over(tables: tuple[str, ...]) -> None:
    """Empty the read model and move its position back to the start of the log."""
    for table in tables:
        op.execute(sa.text(f"DELETE FROM {table}"))
    op.execute(
        sa.text(f"DELETE FROM {POSITIONS_TABLE} WHERE name = :name").bindparams(name=PROJECTION)
    )
