"""Stripe money movements kept once each, the links from charges, balance transactions,
refunds and disputes to their PaymentIntent, and charge and dispute snapshots; the Stripe
observations read model is emptied so that it is rebuilt from the log with them.

A migration is a leaf: the projection's name is copied here as it was when it was written.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

PROJECTION = "stripe_observations"
TABLES = ("stripe_links", "stripe_movements", "stripe_charges", "stripe_disputes")


def _text(name: str, length: int, **kwargs: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(length), **kwargs)  # type: ignore[arg-type]


def _minor(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger, nullable=nullable)


def upgrade(store_config: StoreConfig) -> None:
    op.create_table(
        "stripe_links",
        _text("object_id", 255, primary_key=True),
        _text("target_id", 255, nullable=False),
    )
    op.create_table(
        "stripe_movements",
        _text("movement_key", 255, primary_key=True),
        _text("balance_transaction_id", 255, nullable=False),
        _text("payment_intent_id", 255),
        _text("charge_id", 255),
        _text("source_id", 255),
        _text("offline_id", 255),
        _text("currency", 3, nullable=False),
        _minor("gross", nullable=False),
        _minor("fee"),
        _minor("net"),
        _text("category", 64),
        sa.Column("created_at", sa.DateTime),
        _minor("customer_facing_amount"),
        _text("customer_facing_currency", 3),
        _text("payout_id", 255),
        sa.Column("payout_at", sa.DateTime),
    )
    op.create_table(
        "stripe_charges",
        _text("charge_id", 255, primary_key=True),
        _text("payment_intent_id", 255),
        _text("currency", 3, nullable=False),
        _minor("amount_refunded", nullable=False),
        sa.Column("observed_at", sa.DateTime),
    )
    op.create_table(
        "stripe_disputes",
        _text("dispute_id", 255, primary_key=True),
        _text("charge_id", 255, nullable=False),
        _text("payment_intent_id", 255),
        _text("currency", 3, nullable=False),
        _minor("amount", nullable=False),
        _text("status", 64, nullable=False),
        sa.Column("observed_at", sa.DateTime),
    )
    # Rebuilt from the log on the next read, this time filling the new tables too.
    op.execute(sa.text("DELETE FROM stripe_objects"))
    op.execute(
        sa.text("DELETE FROM projection_positions WHERE name = :name").bindparams(name=PROJECTION)
    )


def downgrade(store_config: StoreConfig) -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
