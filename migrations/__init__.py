"""Alembic migrations for every table offline-ledger owns, run by `offline-ledger migrate`.

`ensure_schema` runs them on an empty database (first use) and refuses a database that is
behind, so a newer code version never writes into an older schema unnoticed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from ledger.errors import Code, StorageError
from ledger.storage import StoreConfig, engine_for

HERE = Path(__file__).resolve().parent


def alembic_config(config: StoreConfig) -> Config:
    assert config.sqlalchemy_url is not None
    alembic = Config()
    alembic.set_main_option("script_location", str(HERE))
    alembic.attributes["store_config"] = config
    return alembic


def head_revision() -> str:
    head = ScriptDirectory(str(HERE)).get_current_head()
    assert head is not None
    return head


def current_revision(config: StoreConfig) -> str | None:
    engine = engine_for(config)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as error:
        raise _unreachable(config, error) from None
    finally:
        engine.dispose()


def upgrade(config: StoreConfig) -> str:
    """Bring the database to the newest schema; return the revision it is at."""
    if config.kind == "memory":
        return "memory"
    engine = engine_for(config, migrating=True)
    try:
        with engine.begin() as connection:
            if config.kind == "postgresql":
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{config.schema}"'))
            alembic = alembic_config(config)
            alembic.attributes["connection"] = connection
            command.upgrade(alembic, "head")
    except OperationalError as error:
        raise _unreachable(config, error) from None
    finally:
        engine.dispose()
    return head_revision()


def ensure_schema(config: StoreConfig) -> None:
    """Migrate an empty database; refuse one whose schema is older than this code."""
    if config.kind == "memory":
        return
    revision = current_revision(config)
    if revision == head_revision():
        return
    if revision is None and _is_empty(config):
        upgrade(config)
        return
    raise StorageError(
        Code.MIGRATION_REQUIRED,
        f"the database at {config.redacted} is at schema revision {revision or 'none'}, this "
        f"version needs {head_revision()}: run `offline-ledger migrate` (back it up first)",
    )


def _is_empty(config: StoreConfig) -> bool:
    engine = engine_for(config)
    try:
        with engine.connect() as connection:
            return not inspect(connection).get_table_names(schema=config.schema)
    finally:
        engine.dispose()


def _unreachable(config: StoreConfig, error: Exception) -> StorageError:
    return StorageError(
        Code.DATABASE_UNAVAILABLE,
        f"cannot connect to {config.redacted}: {str(error).splitlines()[0]}",
    )
