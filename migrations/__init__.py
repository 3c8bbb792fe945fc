"""Alembic migrations for every table offline-ledger owns, run by `offline-ledger migrate`.

`ensure_schema` runs them on an empty database when the caller may create one (a command
that writes, the library's `Ledger.open`), and refuses a database that is behind, so a newer
code version never writes into an older schema unnoticed. It reads the stored revision with
one query and compares it with `HEAD`: Alembic itself, which takes longer to import than the
rest of a command takes to run, is loaded only when something must be migrated.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from ledger.errors import Code, StorageError
from ledger.storage import StoreConfig, engine_for, unreachable

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
HEAD = "0011"
"""The newest revision in `versions/`: a new migration moves it (tests/unit/test_migrations.py
checks it is Alembic's head)."""

_HOW_TO_CREATE = "run `offline-ledger migrate`, or ingest records, to create it"


def alembic_config(config: StoreConfig) -> Config:
    from alembic.config import Config

    assert config.sqlalchemy_url is not None
    alembic = Config()
    alembic.set_main_option("script_location", str(HERE))
    alembic.attributes["store_config"] = config
    return alembic


def stored_revision(config: StoreConfig) -> str | None:
    """The revision the database is at, in one query; None when it has no version table."""
    engine = engine_for(config)
    try:
        with engine.connect() as connection:
            try:
                version = connection.execute(text("SELECT version_num FROM alembic_version"))
                return version.scalar()
            except (OperationalError, ProgrammingError) as error:
                if not _no_such_table(error):
                    raise
                return None
    except OperationalError as error:
        raise unreachable(config, error) from None
    finally:
        engine.dispose()


def upgrade(config: StoreConfig) -> str:
    """Bring the database to the newest schema; return the revision it is at."""
    from alembic import command

    if config.kind == "memory":
        return "memory"
    _check_sqlite_folder(config)
    engine = engine_for(config, migrating=True)
    try:
        with engine.begin() as connection:
            if config.kind == "postgresql":
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{config.schema}"'))
            alembic = alembic_config(config)
            alembic.attributes["connection"] = connection
            command.upgrade(alembic, "head")
    except OperationalError as error:
        raise unreachable(config, error) from None
    finally:
        engine.dispose()
    return HEAD


def ensure_schema(config: StoreConfig, *, create: bool = True) -> None:
    """Pass a database at `HEAD`; migrate an empty one when `create` (else DATABASE_NOT_FOUND:
    a command that only reads never leaves a new file behind a mistyped --db); refuse one
    whose schema is another version's (MIGRATION_REQUIRED)."""
    if config.kind == "memory":
        return
    path = config.sqlite_path
    if path is not None and not path.exists():
        if not create:
            raise StorageError(
                Code.DATABASE_NOT_FOUND,
                f"there is no ledger at {config.redacted}: the file {path.resolve()} does not "
                f"exist; check --db (or OFFLINE_LEDGER_DATABASE_URL), or {_HOW_TO_CREATE}",
            )
        upgrade(config)
        return
    revision = stored_revision(config)
    if revision == HEAD:
        return
    if revision is None and _is_empty(config):
        if not create:
            raise StorageError(
                Code.DATABASE_NOT_FOUND,
                f"there is no ledger at {config.redacted} yet (it holds no tables); "
                f"check --db (or OFFLINE_LEDGER_DATABASE_URL), or {_HOW_TO_CREATE}",
            )
        upgrade(config)
        return
    raise StorageError(
        Code.MIGRATION_REQUIRED,
        f"the database at {config.redacted} is at schema revision {revision or 'none'}, this "
        f"version needs {HEAD}: run `offline-ledger migrate` (back it up first)",
    )


def _check_sqlite_folder(config: StoreConfig) -> None:
    """SQLite creates a missing file but not its folder, and says only "unable to open
    database file": say which folder is missing instead."""
    path = config.sqlite_path
    if path is not None and not path.parent.resolve().is_dir():
        raise StorageError(
            Code.DATABASE_NOT_FOUND,
            f"cannot create the SQLite ledger {path}: the folder {path.parent.resolve()} does "
            "not exist; create it first (mkdir -p) or give another path in --db",
        )


def _no_such_table(error: OperationalError | ProgrammingError) -> bool:
    """PostgreSQL's undefined_table (SQLSTATE 42P01) or SQLite's "no such table"."""
    return getattr(error.orig, "sqlstate", None) == "42P01" or "no such table" in str(error.orig)


def _is_empty(config: StoreConfig) -> bool:
    engine = engine_for(config)
    try:
        with engine.connect() as connection:
            return not inspect(connection).get_table_names(schema=config.schema)
    finally:
        engine.dispose()
