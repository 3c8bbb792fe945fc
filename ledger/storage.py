"""Where the event store lives, chosen by a database URL, and the few store-specific queries.

`sqlite:///path.db` (the embedded default), `postgresql://user@host:5432/db[?schema=name]`
(production, through psycopg 3) and `memory://` (tests). This module is the only place that
knows which store is in use; the domain never asks.

With OFFLINE_LEDGER_CIPHER_KEY set, every store encrypts each event's and snapshot's `state`
(AES-GCM, the eventsourcing library's AESCipher): card details, metadata and amounts are
ciphertext at rest. Topics, stream ids, versions and positions stay plain (the library's
design; the audit chain hashes the ciphertext).
"""

from __future__ import annotations

import binascii
import os
from base64 import b64decode
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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

CIPHER_KEY_ENV = "OFFLINE_LEDGER_CIPHER_KEY"
CIPHER_TOPIC = "eventsourcing.cipher:AESCipher"  # AES-GCM through pycryptodome
CIPHER_KEY_SIZES = (16, 24, 32)
CIPHER_KEY_HOW_TO = (
    'python -c "from eventsourcing.cipher import AESCipher; print(AESCipher.create_key(32))"'
)


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "sqlite" | "postgresql" | "memory"
    env: dict[str, str] = field(repr=False)  # eventsourcing environment: holds secrets
    sqlalchemy_url: URL | None  # for migrations and read models; None in memory
    schema: str | None = None

    @property
    def redacted(self) -> str:
        if self.sqlalchemy_url is None:
            return "memory://"
        return self.sqlalchemy_url.render_as_string(hide_password=True)

    @property
    def encrypted(self) -> bool:
        return bool(self.env.get("CIPHER_KEY"))


def parse_database_url(url: str, environ: Mapping[str, str] | None = None) -> StoreConfig:
    """The store for `url`, encrypting when `environ` (default os.environ) has a cipher key."""
    cipher = cipher_env(os.environ if environ is None else environ)
    config = _store_config(url)
    return StoreConfig(config.kind, {**config.env, **cipher}, config.sqlalchemy_url, config.schema)


def _store_config(url: str) -> StoreConfig:
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


def cipher_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The event store's cipher settings from OFFLINE_LEDGER_CIPHER_KEY (unset or empty: none).

    Both settings are always given, empty when there is no key, so that the library's own
    CIPHER_KEY / CIPHER_TOPIC variables, if set in the process environment for something
    else, never switch encryption on (the library reads os.environ under ours).
    """
    key = environ.get(CIPHER_KEY_ENV, "").strip()
    if not key:
        return {"CIPHER_TOPIC": "", "CIPHER_KEY": ""}
    try:
        size = len(b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        size = None
    if size not in CIPHER_KEY_SIZES:
        # The key itself is never shown: only what is wrong with it.
        problem = "is not base64" if size is None else f"decodes to {size} bytes"
        raise StorageError(
            Code.INVALID_CIPHER_KEY,
            f"{CIPHER_KEY_ENV} {problem}: it must be the base64 text of a 16, 24 or 32-byte "
            f"AES key; make one with: {CIPHER_KEY_HOW_TO}",
        )
    return {"CIPHER_TOPIC": CIPHER_TOPIC, "CIPHER_KEY": key}


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
    sqlalchemy_url = parsed.set(drivername="postgresql+psycopg").difference_update_query(["schema"])
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


def events_after_sql(kind: str) -> str:
    """SQL for the stored events after position `:after`, in log order, at most `:limit`:
    (position, originator_id, originator_version, topic, state). SQLite's position is the
    rowid of eventsourcing's table."""
    if kind == "postgresql":
        return (
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {POSTGRES_EVENTS_TABLE} WHERE notification_id > :after "
            "ORDER BY notification_id LIMIT :limit"
        )
    return (
        f"SELECT rowid, originator_id, originator_version, topic, state "
        f"FROM {SQLITE_EVENTS_TABLE} WHERE rowid > :after ORDER BY rowid LIMIT :limit"
    )
