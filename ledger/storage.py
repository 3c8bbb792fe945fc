"""Where the event store lives, chosen by a database URL, and the few store-specific queries.

`sqlite:///path.db` (the embedded default), `postgresql://user@host:5432/db[?schema=name]`
(production, through psycopg 3) and `memory://` (tests). This module is the only place that
knows which store is in use; the domain never asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ledger.errors import Code, StorageError

DEFAULT_DATABASE_URL = "sqlite:///offline-ledger.db"
EVENT_STORE_NAME = "OfflineLedger"  # eventsourcing application name: PostgreSQL table prefix
POSTGRES_EVENTS_TABLE = "offlineledger_events"
POSTGRES_SNAPSHOTS_TABLE = "offlineledger_snapshots"
SQLITE_EVENTS_TABLE = "stored_events"
SQLITE_SNAPSHOTS_TABLE = "stored_snapshots"
_ID_CHUNK = 500  # ids per version query; bounds statement size


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "sqlite" | "postgresql" | "memory"
    env: dict[str, str]  # eventsourcing environment
    sqlalchemy_url: URL | None  # for migrations and read models; None in memory
    schema: str | None = None

    @property
    def redacted(self) -> str:
        if self.sqlalchemy_url is None:
            return "memory://"
        return self.sqlalchemy_url.render_as_string(hide_password=True)


def parse_database_url(url: str) -> StoreConfig:
    if url.strip() == "memory://":
        return StoreConfig("memory", {"PERSISTENCE_MODULE": "eventsourcing.popo"}, None)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise _bad_url(url) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite(parsed)
    if backend == "postgresql":
        return _postgres(parsed)
    raise _bad_url(url)


def _bad_url(url: str) -> StorageError:
    shown = url.split("@")[-1] if "@" in url else url
    return StorageError(
        Code.INVALID_DATABASE_URL,
        f"cannot use database URL '{shown}': use sqlite:///path/to/file.db or "
        "postgresql://user@host:5432/dbname (set --db or OFFLINE_LEDGER_DATABASE_URL)",
    )


def _sqlite(parsed: URL) -> StoreConfig:
    path = parsed.database
    if not path or path == ":memory:":
        raise StorageError(
            Code.INVALID_DATABASE_URL,
            "an SQLite ledger needs a file: sqlite:///offline-ledger.db (use memory:// for a "
            "throw-away in-memory ledger)",
        )
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "n",
        "APPLICATION_RECORDER_TOPIC": "ledger.sqlite:SQLiteEventRecorder",
    }
    return StoreConfig("sqlite", env, parsed.set(drivername="sqlite"))


def _postgres(parsed: URL) -> StoreConfig:
    schema = parsed.query.get("schema")
    if isinstance(schema, tuple):
        schema = schema[0]
    schema = schema or "public"
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parsed.database or "postgres",
        "POSTGRES_HOST": parsed.host or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": parsed.username or "postgres",
        "POSTGRES_PASSWORD": parsed.password or "",
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "4",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        # Wait at most 10 s for the event table's write lock instead of forever.
        "POSTGRES_LOCK_TIMEOUT": "10",
        "CREATE_TABLE": "n",
        "APPLICATION_RECORDER_TOPIC": "ledger.postgres:PostgresEventRecorder",
    }
    sqlalchemy_url = parsed.set(drivername="postgresql+psycopg").difference_update_query(
        ["schema"]
    )
    return StoreConfig("postgresql", env, sqlalchemy_url, schema)


VersionReader = Callable[[Iterable[UUID]], dict[UUID, int]]


def version_reader(kind: str, recorder: Any) -> VersionReader:
    """A function giving the latest stored version of each of many streams in one query."""
    if kind == "sqlite":
        return _SQLiteVersions(recorder)
    if kind == "postgresql":
        from ledger.postgres import PostgresVersions

        return PostgresVersions(recorder)

    def one_by_one(ids: Iterable[UUID]) -> dict[UUID, int]:
        found = {}
        for stream_id in ids:
            last = recorder.select_events(stream_id, desc=True, limit=1)
            if last:
                found[stream_id] = last[0].originator_version
        return found

    return one_by_one


class _SQLiteVersions:
    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def __call__(self, ids: Iterable[UUID]) -> dict[UUID, int]:
        found: dict[UUID, int] = {}
        for chunk in _chunks([i.hex for i in ids]):
            sql = (
                f"SELECT originator_id, MAX(originator_version) FROM {SQLITE_EVENTS_TABLE} "
                f"WHERE originator_id IN ({','.join('?' * len(chunk))}) GROUP BY originator_id"
            )
            with self.recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(sql, chunk)
                for row in cursor.fetchall():
                    found[UUID(row[0])] = row[1]
        return found


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _ID_CHUNK):
        yield items[start : start + _ID_CHUNK]
