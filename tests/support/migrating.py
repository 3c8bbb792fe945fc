"""A store taken back to an older schema revision, as `alembic downgrade` does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from sqlalchemy import Connection

from ledger.storage import engine_for, parse_database_url
from migrations import alembic_config


@contextmanager
def downgraded(url: str, revision: str) -> Iterator[Connection]:
    """The store at `url` downgraded to `revision`, in a transaction committed when the
    caller's block (which may look at the store through the connection) ends."""
    config = parse_database_url(url)
    engine = engine_for(config, migrating=True)
    try:
        with engine.begin() as connection:
            alembic = alembic_config(config)
            alembic.attributes["connection"] = connection
            command.downgrade(alembic, revision)
            yield connection
    finally:
        engine.dispose()
