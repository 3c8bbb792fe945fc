"""Alembic migrations for every table offline-ledger owns, run by `offline-ledger migrate`.

`ensure_schema` runs them on an empty database when the caller may create one (a command
that writes, the library's `Ledger.open`), and refuses a database that is behind, so a newer
code version never writes into an older schema unnoticed. It reads the stored revision with
one query and compares it with `HEAD`: Alembic itself, which takes longer to import than the
rest of a command takes to run, is loaded only when something must be migrated, and so is
SQLAlchemy: the query goes through the driver the event store uses (sqlite3, psycopg).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import Code, StorageError
from ledger.storage import StoreConfig, engine_for, postgres_session, unreachable

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
HEAD = "0018"
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
    rows = _query(config, "SELECT version_num FROM alembic_version", missing_table=True)
    return None if rows is None or not rows else str(rows[0][0])


def _query(
    config: StoreConfig, sql: str, params: tuple[str, ...] = (), *, missing_table: bool = False
) -> list[tuple[Any, ...]] | None:
    """The rows of one query on the ledger's database, through its own driver; None for a
    table that does not exist when `missing_table` allows it."""
    if config.kind == "sqlite":
        assert config.sqlite_path is not None
        try:
            with closing(sqlite3.connect(config.sqlite_path, timeout=30)) as connection:
                return connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError as error:
            if missing_table and "no such table" in str(error):
                return None
            raise unreachable(config, error) from None
    import psycopg
    from psycopg.conninfo import make_conninfo

    env = config.env
    session: dict[str, str | int] = {
        "host": env["POSTGRES_HOST"],
        "port": env["POSTGRES_PORT"],
        "dbname": env["POSTGRES_DBNAME"],
        "user": env["POSTGRES_USER"],
        "password": env["POSTGRES_PASSWORD"],
        **postgres_session(config),
    }
    try:
        server = psycopg.connect(make_conninfo("", **session))
    except psycopg.OperationalError as error:
        raise unreachable(config, error) from None
    with server:
        try:
            return server.execute(sql, params).fetchall()
        except psycopg.errors.UndefinedTable:
            if missing_table:
                return None
            raise


def upgrade(config: StoreConfig) -> str:
    """Bring the database to the newest schema; return the revision it is at."""
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

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


def _is_empty(config: StoreConfig) -> bool:
    """No table at all (SQLite's own aside) in the database, or in the ledger's schema."""
    if config.kind == "sqlite":
        sql = (
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite~_%' ESCAPE '~' LIMIT 1"
        )
        return not _query(config, sql)
    sql = (
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p') LIMIT 1"
    )
    return not _query(config, sql, (config.schema or "public",))
