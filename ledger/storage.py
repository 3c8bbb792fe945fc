"""Where the event store lives, chosen by a database URL, and the few store-specific queries.

`sqlite:///path.db` (the embedded default), `postgresql://user@host:5432/db[?schema=name]`
(production, through psycopg 3) and `memory://` (tests). This module is the only place that
turns a URL into settings and engines (`parse_database_url`, `engine_for`), and the only
place that knows which store is in use; the domain never asks.

With OFFLINE_LEDGER_CIPHER_KEY (or a keyring file, OFFLINE_LEDGER_CIPHER_KEYRING) set, every
store encrypts each event's and snapshot's `state` (AES-GCM, `ledger.cipher`): card details,
metadata and amounts are ciphertext at rest. Topics, stream ids, versions and positions stay
plain (the library's design; the audit chain hashes the ciphertext).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload, runtime_checkable
from urllib.parse import parse_qsl, quote, quote_plus, unquote
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.batches import iter_batches
from ledger.chain import Link, Row
from ledger.errors import Code, Conflict, StorageError
from ledger.keyring import CIPHER_KEY_ENV as CIPHER_KEY_ENV  # where callers have found it
from ledger.keyring import KEYRING_ENV, KEYRING_FILE_SETTING, configured_keyring

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

DEFAULT_DATABASE_URL = "sqlite:///offline-ledger.db"
EVENT_STORE_NAME = "OfflineLedger"  # eventsourcing application name: PostgreSQL table prefix
POSTGRES_EVENTS_TABLE = "offlineledger_events"
POSTGRES_SNAPSHOTS_TABLE = "offlineledger_snapshots"
SQLITE_EVENTS_TABLE = "stored_events"
SQLITE_SNAPSHOTS_TABLE = "stored_snapshots"
ID_CHUNK = 500  # ids per IN (...) or ANY(...) query; bounds every statement's size

CIPHER_TOPIC = "ledger.cipher:KeyringCipher"  # AES-GCM, each ciphertext naming its key


@dataclass(frozen=True)
class DatabaseUrl:
    """A database URL's parts (SQLAlchemy's reading of `driver://user:password@host:port/
    database?query`, without importing SQLAlchemy: a short command opens the event store
    through sqlite3 or psycopg and never needs it)."""

    driver: str  # `sqlite`, `postgresql`, `postgresql+psycopg`...
    username: str | None
    password: str | None = field(repr=False)
    host: str | None
    port: int | None
    database: str | None
    query: tuple[tuple[str, str], ...] = ()

    _PATTERN = re.compile(
        r"""
        (?P<driver>[\w+]+)://
        (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
        (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
        (?:/(?P<database>[^?]*))?
        (?:\?(?P<query>.*))?
        """,
        re.X,
    )

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl | None:
        """The parts of `url`; None when it is not a URL."""
        found = cls._PATTERN.match(url)
        if found is None:
            return None
        part = found.groupdict()
        port = part["port"]
        if port and not (port.isascii() and port.isdigit()):
            return None
        return cls(
            driver=part["driver"],
            username=_unquoted(part["username"]),
            password=_unquoted(part["password"]),
            host=part["ipv4host"] or part["ipv6host"],
            port=int(port) if port else None,
            database=_unquoted(part["database"]),
            query=tuple(parse_qsl(part["query"] or "")),
        )

    @property
    def backend(self) -> str:
        return self.driver.split("+")[0]

    def value(self, key: str) -> str | None:
        """The query's first value for `key`."""
        return next((value for name, value in self.query if name == key), None)

    def without(self, key: str) -> DatabaseUrl:
        return replace(self, query=tuple(pair for pair in self.query if pair[0] != key))

    def redacted(self) -> str:
        """The URL with the password hidden, as SQLAlchemy renders it."""
        text = self.driver + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":***"
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            text += "?" + "&".join(
                f"{quote_plus(key)}={quote_plus(value)}" for key, value in sorted(self.query)
            )
        return text

    def for_sqlalchemy(self) -> URL:
        from sqlalchemy.engine import URL

        query: dict[str, list[str]] = {}
        for key, value in self.query:
            query.setdefault(key, []).append(value)
        return URL.create(
            self.driver,
            self.username,
            self.password,
            self.host,
            self.port,
            self.database,
            {key: values[0] if len(values) == 1 else values for key, values in query.items()},
        )


def _unquoted(text: str | None) -> str | None:
    return None if text is None else unquote(text)


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "sqlite" | "postgresql" | "memory"
    env: dict[str, str] = field(repr=False)  # eventsourcing environment: holds secrets
    url: DatabaseUrl | None  # for migrations and read models (SQLAlchemy's); None in memory
    schema: str | None = None
    # libpq connection parameters bounding every wait of a PostgreSQL session (`session_limits`)
    session: dict[str, str | int] = field(default_factory=dict)

    @property
    def sqlalchemy_url(self) -> URL | None:
        """The URL SQLAlchemy is given (its driver named); None in memory."""
        return None if self.url is None else self.url.for_sqlalchemy()

    @property
    def redacted(self) -> str:
        """The URL as the operator wrote it (`postgresql://`, not the driver SQLAlchemy is
        given), the password hidden."""
        if self.url is None:
            return "memory://"
        url = replace(self.url, driver=self.kind)
        if self.schema not in (None, "public"):
            url = replace(url, query=(*url.query, ("schema", self.schema)))
        return url.redacted()

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite ledger's file; None for the other stores."""
        return Path(self.env["SQLITE_DBNAME"]) if self.kind == "sqlite" else None

    @property
    def encrypted(self) -> bool:
        return bool(self.env.get("CIPHER_KEY"))


def parse_database_url(url: str, environ: Mapping[str, str] | None = None) -> StoreConfig:
    """The store for `url`, encrypting when `environ` (default os.environ) has a cipher key."""
    environ = os.environ if environ is None else environ
    cipher = cipher_env(environ)
    config = _store_config(url)
    if config.kind != "postgresql":
        return StoreConfig(config.kind, {**config.env, **cipher}, config.url)
    limits = session_limits(environ)
    env = {
        **config.env,
        **cipher,
        "POSTGRES_CONNECT_TIMEOUT": str(limits.connect),
        "POSTGRES_LOCK_TIMEOUT": str(limits.lock),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": str(limits.idle_in_transaction),
        "PERSISTENCE_MODULE": "ledger.postgres:PostgresFactory",
        "POSTGRES_SESSION_PARAMETERS": json.dumps(limits.connection_parameters()),
    }
    return StoreConfig(config.kind, env, config.url, config.schema, limits.connection_parameters())


@dataclass(frozen=True)
class SessionLimits:
    """How long a PostgreSQL session may wait, in whole seconds (0: no limit).

    Without them a statement blocked behind a lock, a transaction whose client vanished or a
    server that stopped answering keeps a command (and the locks it holds) waiting forever.
    Each is set for every session of the event store and the read models, from the
    environment (`OFFLINE_LEDGER_DATABASE_<NAME>`); TCP keepalives find a dead peer within
    about a minute even while a read is waiting.
    """

    statement: int = 120  # STATEMENT_TIMEOUT: longest single statement (a 1,000-row chunk: <1 s)
    lock: int = 10  # LOCK_TIMEOUT: longest wait for a lock held by another writer
    idle_in_transaction: int = 60  # IDLE_IN_TRANSACTION_TIMEOUT: a client silent mid-transaction
    connect: int = 10  # CONNECT_TIMEOUT: establishing a connection

    def connection_parameters(self) -> dict[str, str | int]:
        """libpq parameters (psycopg and SQLAlchemy pass them through)."""
        options = " ".join(
            f"-c {name}={seconds * 1000}"
            for name, seconds in (
                ("statement_timeout", self.statement),
                ("lock_timeout", self.lock),
                ("idle_in_transaction_session_timeout", self.idle_in_transaction),
            )
        )
        return {
            "connect_timeout": self.connect,
            "options": options,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }


SESSION_ENV_PREFIX = "OFFLINE_LEDGER_DATABASE_"
_SESSION_SETTINGS = {
    "STATEMENT_TIMEOUT": "statement",
    "LOCK_TIMEOUT": "lock",
    "IDLE_IN_TRANSACTION_TIMEOUT": "idle_in_transaction",
    "CONNECT_TIMEOUT": "connect",
}


def session_limits(environ: Mapping[str, str]) -> SessionLimits:
    """The limits from OFFLINE_LEDGER_DATABASE_*_TIMEOUT (whole seconds), else the defaults."""
    values: dict[str, int] = {}
    for suffix, name in _SESSION_SETTINGS.items():
        text = environ.get(SESSION_ENV_PREFIX + suffix, "").strip()
        if not text:
            continue
        if not text.isascii() or not text.isdigit() or int(text) > 86_400:
            raise StorageError(
                Code.INVALID_DATABASE_SETTING,
                f"{SESSION_ENV_PREFIX + suffix} must be whole seconds from 0 (no limit) to "
                "86400; unset it for the default",
            )
        values[name] = int(text)
    if values.get("connect") == 0:
        raise StorageError(
            Code.INVALID_DATABASE_SETTING,
            f"{SESSION_ENV_PREFIX}CONNECT_TIMEOUT must be at least 1 second",
        )
    return SessionLimits(**values)


# SQLSTATEs of the waits SessionLimits bounds (PostgreSQL, Appendix A "Error Codes").
_TIMEOUT_STATES = {
    "57014": "STATEMENT_TIMEOUT",  # query_canceled: statement_timeout
    "55P03": "LOCK_TIMEOUT",  # lock_not_available: lock_timeout
    "25P03": "IDLE_IN_TRANSACTION_TIMEOUT",  # idle_in_transaction_session_timeout
}


def timeout_setting(error: BaseException) -> str | None:
    """The OFFLINE_LEDGER_DATABASE_* setting whose limit `error` (or its cause) hit, if any."""
    seen: BaseException | None = error
    while seen is not None:
        state = getattr(seen, "sqlstate", None)
        if state in _TIMEOUT_STATES:
            return SESSION_ENV_PREFIX + _TIMEOUT_STATES[state]
        seen = seen.__cause__
    return None


def unreachable(config: StoreConfig, error: BaseException) -> StorageError:
    """DATABASE_UNAVAILABLE (DATABASE_NOT_FOUND when the server says the database does not
    exist) for a failed connection: what failed, at which URL, and what to check; the
    driver's own words are trimmed to the reason, without its class names and links."""
    reason = _connection_reason(error)
    if "does not exist" in reason and "database" in reason:
        return StorageError(
            Code.DATABASE_NOT_FOUND,
            f"{reason} at {config.redacted}: create it (createdb) or fix the name in --db or "
            "OFFLINE_LEDGER_DATABASE_URL, then run `offline-ledger migrate`",
        )
    return StorageError(
        Code.DATABASE_UNAVAILABLE,
        f"cannot connect to {config.redacted}: {reason}; check that the server is running and "
        "that the host, port, user and password in --db (or OFFLINE_LEDGER_DATABASE_URL) are "
        "right",
    )


def _connection_reason(error: BaseException) -> str:
    """`Connection refused`, `role "x" does not exist`...: the driver's message (SQLAlchemy
    keeps it as `orig`) without psycopg's "connection to server at ... failed:" preamble."""
    text = str(getattr(error, "orig", None) or error).strip()
    if not text:
        return type(error).__name__
    first = text.splitlines()[0].removeprefix("connection failed: ")
    return first.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()


def _store_config(url: str) -> StoreConfig:
    if url.strip() == "memory://":
        return StoreConfig("memory", {"PERSISTENCE_MODULE": "eventsourcing.popo"}, None)
    parsed = DatabaseUrl.parse(url)
    if parsed is None:
        raise _bad_url(url)
    backend = parsed.backend
    if backend == "sqlite":
        return _sqlite(parsed)
    if backend == "postgresql":
        return _postgres(parsed)
    raise _bad_url(url)


def cipher_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The event store's cipher settings from OFFLINE_LEDGER_CIPHER_KEYRING (a keyring file)
    or OFFLINE_LEDGER_CIPHER_KEY (one key); neither set, or empty: no encryption.

    Both settings are always given, empty when there is no key, so that the library's own
    CIPHER_KEY / CIPHER_TOPIC variables, if set in the process environment for something
    else, never switch encryption on (the library reads os.environ under ours).
    """
    ring = configured_keyring(environ)
    if ring is None:
        return {"CIPHER_TOPIC": "", "CIPHER_KEY": ""}
    # The file too: a running writer re-reads it when a rotation is recorded.
    return {
        "CIPHER_TOPIC": CIPHER_TOPIC,
        "CIPHER_KEY": ring.to_json(),
        KEYRING_FILE_SETTING: environ.get(KEYRING_ENV, "").strip(),
    }


def _bad_url(url: str) -> StorageError:
    shown = url.split("@")[-1] if "@" in url else url
    return StorageError(
        Code.INVALID_DATABASE_URL,
        f"cannot use database URL '{shown}': use sqlite:///path/to/file.db or "
        "postgresql://user@host:5432/dbname (set --db or OFFLINE_LEDGER_DATABASE_URL)",
    )


def _sqlite(parsed: DatabaseUrl) -> StoreConfig:
    path = parsed.database
    if not path or path == ":memory:":
        raise StorageError(
            Code.INVALID_DATABASE_URL,
            "an SQLite ledger needs a file: sqlite:///offline-ledger.db (use memory:// for a "
            "throw-away in-memory ledger)",
        )
    env = {
        "PERSISTENCE_MODULE": "ledger.sqlite:SQLiteFactory",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "n",
        "APPLICATION_RECORDER_TOPIC": "ledger.sqlite:SQLiteEventRecorder",
    }
    return StoreConfig("sqlite", env, replace(parsed, driver="sqlite"))


def _postgres(parsed: DatabaseUrl) -> StoreConfig:
    schema = parsed.value("schema") or "public"
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
        # Wait at most 10 s for the writers' lock (the chain head's row) instead of forever.
        "POSTGRES_LOCK_TIMEOUT": "10",
        "CREATE_TABLE": "n",
        "APPLICATION_RECORDER_TOPIC": "ledger.postgres:PostgresEventRecorder",
    }
    url = replace(parsed, driver="postgresql+psycopg").without("schema")
    return StoreConfig("postgresql", env, url, schema)


def engine_for(config: StoreConfig, *, migrating: bool = False) -> Engine:
    """An engine on the ledger's database. On PostgreSQL its sessions have the ledger's
    limits (`ledger.storage.SessionLimits`), except that a migration's statements may run
    as long as they need (a backfill of a large log).

    On PostgreSQL a list of rows to insert (read models, an audit rebuild's swap) goes as
    multi-row INSERT statements of at most 1,000 rows and 32,700 parameters each
    (SQLAlchemy's "insertmanyvalues"), never through psycopg's `executemany`, which sends the
    whole list in pipeline mode: with a large batch the client and the server can each wait
    for the other for ever, inside an open transaction."""
    from sqlalchemy import create_engine

    url = config.sqlalchemy_url
    if url is None:  # memory://: its events live in the process that wrote them
        raise StorageError(
            Code.INVALID_DATABASE_URL,
            "this needs the ledger's database, and a memory:// ledger has none: use "
            "sqlite:///file.db or postgresql://...",
        )
    if config.kind == "postgresql":
        engine = create_engine(url, connect_args=postgres_session(config, migrating=migrating))
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    return create_engine(url)


def postgres_session(config: StoreConfig, *, migrating: bool = False) -> dict[str, str | int]:
    """The libpq parameters of every session on the ledger's PostgreSQL database beside the
    URL's own: its schema first on the search path, and the ledger's limits."""
    session = dict(config.session)
    options = [f"-csearch_path={config.schema}", str(session.pop("options", ""))]
    if migrating:
        options.append("-c statement_timeout=0")
    return {**session, "options": " ".join(filter(None, options))}


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
        for chunk in iter_batches((i.hex for i in ids), ID_CHUNK):
            sql = (
                f"SELECT originator_id, MAX(originator_version) FROM {SQLITE_EVENTS_TABLE} "
                f"WHERE originator_id IN ({','.join('?' * len(chunk))}) GROUP BY originator_id"
            )
            with self.recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(sql, chunk)
                for row in cursor.fetchall():
                    found[UUID(row[0])] = row[1]
        return found


StoredState = tuple[int, str, str, bytes]  # position, stream id (32 hex digits), topic, state
StatesReader = Callable[[int, int, Sequence[str]], list[StoredState]]


def states_reader(kind: str, recorder: Any) -> StatesReader:
    """A function giving, in log order, at most `limit` stored events after position `after`
    whose topic is among `topics`, each as its position, stream id in hex, topic and state:
    what a reader of the whole log needs, without the library's Notification and UUID per
    event."""
    if kind == "sqlite":
        return _SQLiteStates(recorder)
    if kind == "postgresql":
        from ledger.postgres import PostgresStates

        return PostgresStates(recorder)

    def notified(after: int, limit: int, topics: Sequence[str]) -> list[StoredState]:
        return [
            (n.id, n.originator_id.hex, n.topic, n.state)
            for n in recorder.select_notifications(
                start=after, limit=limit, topics=topics, inclusive_of_start=False
            )
        ]

    return notified


class _SQLiteStates:
    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def __call__(self, after: int, limit: int, topics: Sequence[str]) -> list[StoredState]:
        sql = (
            f"SELECT rowid, originator_id, topic, state FROM {SQLITE_EVENTS_TABLE} "
            f"WHERE rowid > ? AND topic IN ({','.join('?' * len(topics))}) "
            "ORDER BY rowid LIMIT ?"
        )
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, [after, *topics, limit])
            # The ledger writes stream ids as hex; an imported or hand-made row may have dashes.
            return [
                (position, stream if len(stream) == 32 else UUID(stream).hex, topic, state)
                for position, stream, topic, state in cursor.fetchall()
            ]


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


@runtime_checkable
class LogImporter(Protocol):
    """A store that can take an exported log at its own positions (SQLite and PostgreSQL
    recorders: `ledger.sqlite`, `ledger.postgres`); the in-memory store cannot."""

    def import_log(self, batches: Iterable[tuple[Sequence[Row], Sequence[Link]]]) -> None: ...


@runtime_checkable
class SnapshotsFolder(Protocol):
    """A recorder that writes the snapshots a batch makes due in the batch's own transaction
    (`insert_events(..., snapshots=...)`) into the table named here once (SQLite and
    PostgreSQL recorders); the in-memory store's recorder writes them apart."""

    def fold_snapshots_into(self, table: str) -> None: ...


class StoredColumns(Sequence[StoredEvent]):
    """Stored events as the four columns of their rows, in order: what a batch's encoding
    makes (`ledger.event_store.stored_events`) and the ledger's recorders write, without a
    `StoredEvent` per event made only to be read back into rows (about 3,500 instructions an
    event). As a sequence it gives the library's `StoredEvent`s, for a recorder that takes
    them one by one (the in-memory store's)."""

    __slots__ = ("originator_ids", "originator_versions", "states", "topics")

    def __init__(
        self,
        originator_ids: list[UUID | str],
        originator_versions: list[int],
        topics: list[str],
        states: list[bytes],
    ) -> None:
        self.originator_ids = originator_ids
        self.originator_versions = originator_versions
        self.topics = topics
        self.states = states

    def __len__(self) -> int:
        return len(self.states)

    @overload
    def __getitem__(self, index: int) -> StoredEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[StoredEvent]: ...

    def __getitem__(self, index: int | slice) -> StoredEvent | list[StoredEvent]:
        if isinstance(index, slice):
            return list(self)[index]
        return StoredEvent(
            self.originator_ids[index],
            self.originator_versions[index],
            self.topics[index],
            self.states[index],
        )

    def __iter__(self) -> Iterator[StoredEvent]:
        return map(
            StoredEvent, self.originator_ids, self.originator_versions, self.topics, self.states
        )

    def __repr__(self) -> str:
        # The events, as the list of them this stands for was shown (the in-memory store's
        # refusal of a repeated event quotes it).
        return repr(list(self))


def stored_columns(stored: Sequence[StoredEvent]) -> StoredColumns:
    """`stored` as columns: as it is when it is already, else read from each event."""
    if type(stored) is StoredColumns:
        return stored
    return StoredColumns(
        [event.originator_id for event in stored],
        [event.originator_version for event in stored],
        [event.topic for event in stored],
        [event.state for event in stored],
    )


def store_not_empty() -> Conflict:
    """The refusal of an import of an exported log into a store that already holds events."""
    return Conflict(
        Code.INVALID_VALUE,
        "the database already holds events: import only into a new, empty database; "
        "nothing imported",
        field="db",
    )
