"""Read models: payments, offline status, Stripe observations, and projection positions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _text(name: str, length: int, **kwargs: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(length), **kwargs)  # type: ignore[arg-type]


def _minor(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    if nullable:
        return sa.Column(name, sa.BigInteger)
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade(store_config: StoreConfig) -> None:
    op.create_table(
        "projection_positions",
        _text("name", 64, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "payments",
        _text("stream_id", 32, primary_key=True),
        _text("offline_id", 36, nullable=False, unique=True),
        _text("location_id", 255, nullable=False),
        _text("device_id", 255, nullable=False),
        _minor("amount", nullable=False),
        _text("currency", 3, nullable=False),
        _text("capture_method", 16, nullable=False),
        _text("status", 16, nullable=False),
        _text("card_brand", 64),
        _text("payment_intent_id", 255),
        _text("duplicate_payment_intent_ids", 2048, nullable=False, server_default=""),
        _minor("duplicate_refund_amount", nullable=False),
        _text("stripe_status", 64),
        _text("decline_code", 128),
        _minor("amount_captured", nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        *(
            sa.Column(name, sa.DateTime)
            for name in ("stored_at", "forwarded_at", "declined_at", "captured_at", "canceled_at")
        ),
    )
    op.create_index("payments_location_idx", "payments", ["location_id"])
    op.create_index("payments_payment_intent_idx", "payments", ["payment_intent_id"])
    op.create_table(
        "payment_intent_links",
        _text("payment_intent_id", 255, primary_key=True),
        _text("offline_id", 36, primary_key=True),
    )
    op.create_table(
        "offline_stored",
        _text("offline_id", 36, primary_key=True),
        _text("location_id", 255, nullable=False),
        _text("device_id", 255, nullable=False),
        _text("currency", 3, nullable=False),
        _minor("amount", nullable=False),
        sa.Column("stored_at", sa.DateTime, nullable=False),
    )
    op.create_index(
        "offline_stored_location_idx", "offline_stored", ["location_id", "device_id", "currency"]
    )
    op.create_table(
        "offline_locations",
        _text("stream_id", 32, primary_key=True),
        _text("location_id", 255, nullable=False),
    )
    op.create_table(
        "stripe_objects",
        _text("stream_id", 32, primary_key=True),
        _text("key", 255, nullable=False, unique=True),
        _text("payment_intent_id", 255),
        _text("charge_id", 255),
        _text("offline_id", 255),
        _minor("amount"),
        _minor("amount_received"),
        _minor("amount_capturable"),
        _text("currency", 3),
        _text("status", 64),
        sa.Column("offline_collected", sa.Boolean),
        _text("card_brand", 64),
        _text("decline_code", 128),
        sa.Column("created_at", sa.DateTime),
        sa.Column("observed_at", sa.DateTime),
        _minor("charged_gross", nullable=False),
        _minor("refunded_gross", nullable=False),
        _minor("balance_transactions", nullable=False),
    )
    op.create_index("stripe_objects_offline_idx", "stripe_objects", ["offline_id"])
    op.create_index("stripe_objects_payment_intent_idx", "stripe_objects", ["payment_intent_id"])


def downgrade(store_config: StoreConfig) -> None:
    for table in (
        "stripe_objects",
        "offline_locations",
        "offline_stored",
        "payment_intent_links",
        "payments",
        "projection_positions",
    ):
        op.drop_table(table)
