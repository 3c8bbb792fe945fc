"""API keys of the HTTP API (`adapters/http/api_keys.py`): only each token's SHA-256 is kept,
with the key's name, role, locations, and when it was created and revoked.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def columns() -> list[sa.Column[Any]]:
    """A copy of the live table's columns (tests/unit/test_migrations.py keeps them equal)."""
    return [
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("locations", sa.String(8192), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime()),
    ]


def upgrade(store_config: StoreConfig) -> None:
    op.create_table("api_keys", *columns())


def downgrade(store_config: StoreConfig) -> None:
    op.drop_table("api_keys")
