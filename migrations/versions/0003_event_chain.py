"""The hash chain over the event log (`ledger.chain`), with links for the events already
stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from uuid import UUID

import sqlalchemy as sa
from alembic import op

from ledger.chain import CHAIN_TABLE, GENESIS, link
from ledger.storage import POSTGRES_EVENTS_TABLE, SQLITE_EVENTS_TABLE, StoreConfig

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BACKFILL_BATCH = 10_000


def upgrade(store_config: StoreConfig) -> None:
    op.create_table(
        CHAIN_TABLE,
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("content_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
    )
    _backfill(store_config)


def _backfill(store_config: StoreConfig) -> None:
    if store_config.kind == "postgresql":
        select = (
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {POSTGRES_EVENTS_TABLE} WHERE notification_id > :after "
            "ORDER BY notification_id LIMIT :limit"
        )
    else:
        select = (
            f"SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {SQLITE_EVENTS_TABLE} WHERE rowid > :after ORDER BY rowid LIMIT :limit"
        )
    connection = op.get_bind()
    chain = sa.table(
        CHAIN_TABLE, sa.column("position"), sa.column("content_hash"), sa.column("chain_hash")
    )
    previous, after = GENESIS, 0
    while rows := connection.execute(
        sa.text(select), {"after": after, "limit": _BACKFILL_BATCH}
    ).all():
        links = link(
            previous,
            (
                (position, UUID(str(stream)), version, topic, bytes(state))
                for position, stream, version, topic, state in rows
            ),
        )
        connection.execute(
            sa.insert(chain),
            [{"position": p, "content_hash": c, "chain_hash": h} for p, c, h in links],
        )
        previous, after = links[-1][2], links[-1][0]


def downgrade(store_config: StoreConfig) -> None:
    op.drop_table(CHAIN_TABLE)
