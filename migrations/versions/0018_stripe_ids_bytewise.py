"""The Stripe read model's id columns in collation "C" on PostgreSQL: compared byte by byte
(`memcmp`), sorted with abbreviated keys. Under the database's own collation (C.UTF-8, in
the same order for UTF-8 text, code point by code point) each comparison went through
`strcoll`: the catch-up's index inserts, sorts and joins over ids spent about a sixth of
the writing backend's CPU there. The rows are kept: a column's collation changes without
rewriting its table, its indexes are built again. SQLite's columns already compare bytes
(BINARY): nothing to do there.

A migration is a leaf: the table and column names are copied here as they were when it was
written (tests/unit/test_migrations.py checks them against the live code).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# (table, ((column, length), ...)): the columns holding a Stripe id, or a key made of one.
COLUMNS = (
    (
        "stripe_objects",
        (("stream_id", 32), ("key", 255), ("payment_intent_id", 255), ("charge_id", 255)),
    ),
    ("stripe_links", (("object_id", 255), ("target_id", 255))),
    (
        "stripe_movements",
        (
            ("movement_key", 255),
            ("balance_transaction_id", 255),
            ("payment_intent_id", 255),
            ("charge_id", 255),
            ("source_id", 255),
        ),
    ),
    ("stripe_charges", (("charge_id", 255), ("payment_intent_id", 255))),
    ("stripe_disputes", (("dispute_id", 255), ("charge_id", 255), ("payment_intent_id", 255))),
    ("stripe_keys", (("object_id", 255), ("key", 255))),
    ("stripe_payments", (("key", 255),)),
)
BYTEWISE = '"C"'
DATABASE_DEFAULT = '"default"'


def upgrade(store_config: StoreConfig) -> None:
    if store_config.kind == "postgresql":
        _collate(BYTEWISE)


def downgrade(store_config: StoreConfig) -> None:
    """Back to the database's collation, the rows kept (the same order for UTF-8 text)."""
    if store_config.kind == "postgresql":
        _collate(DATABASE_DEFAULT)


def _collate(collation: str) -> None:
    """Each table's columns in one ALTER TABLE: its indexes built again once."""
    for table, columns in COLUMNS:
        changes = ", ".join(
            f"ALTER COLUMN {name} TYPE VARCHAR({length}) COLLATE {collation}"
            for name, length in columns
        )
        op.execute(sa.text(f"ALTER TABLE {table} {changes}"))
