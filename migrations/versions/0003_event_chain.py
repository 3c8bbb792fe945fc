"""The hash chain over the event log (`ledger.chain`), with links for the events already
stored.

A migration is a leaf: the table names and the hashing are copied here as they were when it
was written, so a later change to the live code cannot change what this migration did
(tests/unit/test_migrations.py checks that the copy still agrees with `ledger.chain`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import hashlib
import struct
from collections.abc import Iterable
from uuid import UUID

import sqlalchemy as sa
from alembic import op

from ledger.storage import StoreConfig

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BACKFILL_BATCH = 10_000
POSTGRES_EVENTS_TABLE = "offlineledger_events"
SQLITE_EVENTS_TABLE = "stored_events"
CHAIN_TABLE = "event_chain"
GENESIS = bytes(32)
_HEADER = struct.Struct(">16sqI")  # stream id, version, topic length


def link(
    previous: bytes, rows: Iterable[tuple[int, UUID, int, str, bytes]]
) -> list[tuple[int, bytes, bytes]]:
    """(position, content_hash, chain_hash) for events given as (position, stream id,
    version, topic, state), in position order, after the link `previous`."""
    links = []
    for position, stream, version, topic, state in rows:
        topic_bytes = topic.encode()
        header = _HEADER.pack(stream.bytes, version, len(topic_bytes))
        content = hashlib.sha256(header + topic_bytes + state).digest()
        previous = hashlib.sha256(previous + position.to_bytes(8, "big") + content).digest()
        links.append((position, content, previous))
    return links


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
