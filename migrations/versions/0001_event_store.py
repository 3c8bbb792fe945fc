"""The event store: events and snapshots tables as the eventsourcing recorders expect them.

The eventsourcing library would create these itself; we create them here (CREATE_TABLE=n) so
that every table we depend on is versioned. The DDL matches eventsourcing 9.5's recorders.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from ledger.storage import (
    POSTGRES_EVENTS_TABLE,
    POSTGRES_SNAPSHOTS_TABLE,
    SQLITE_EVENTS_TABLE,
    SQLITE_SNAPSHOTS_TABLE,
    StoreConfig,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(store_config: StoreConfig) -> None:
    if store_config.kind == "postgresql":
        schema = f'"{store_config.schema}"'
        op.execute(
            f"CREATE TYPE {schema}.stored_event_uuid AS (originator_id uuid, "
            "originator_version bigint, topic text, state bytea)"
        )
        op.execute(
            f"CREATE TABLE {schema}.{POSTGRES_EVENTS_TABLE} ("
            "originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text, "
            "state bytea, notification_id bigserial, "
            "PRIMARY KEY (originator_id, originator_version)) "
            "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
            "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
            "autovacuum_analyze_scale_factor = 0.01)"
        )
        op.execute(
            f"CREATE UNIQUE INDEX {POSTGRES_EVENTS_TABLE}_notification_id_idx "
            f"ON {schema}.{POSTGRES_EVENTS_TABLE} (notification_id ASC)"
        )
        op.execute(
            f"CREATE TABLE {schema}.{POSTGRES_SNAPSHOTS_TABLE} ("
            "originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text, "
            "state bytea, PRIMARY KEY (originator_id, originator_version))"
        )
        return
    op.execute(
        f"CREATE TABLE {SQLITE_EVENTS_TABLE} (originator_id TEXT, originator_version INTEGER, "
        "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
    )
    op.execute(
        f"CREATE TABLE {SQLITE_SNAPSHOTS_TABLE} (originator_id TEXT, originator_version "
        "INTEGER, topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version)) "
        "WITHOUT ROWID"
    )


def downgrade(store_config: StoreConfig) -> None:
    if store_config.kind == "postgresql":
        schema = f'"{store_config.schema}"'
        op.execute(f"DROP TABLE {schema}.{POSTGRES_SNAPSHOTS_TABLE}")
        op.execute(f"DROP TABLE {schema}.{POSTGRES_EVENTS_TABLE}")
        op.execute(f"DROP TYPE {schema}.stored_event_uuid")
        return
    op.execute(f"DROP TABLE {SQLITE_SNAPSHOTS_TABLE}")
    op.execute(f"DROP TABLE {SQLITE_EVENTS_TABLE}")
