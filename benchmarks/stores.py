"""The benchmark's databases and the raw-insert baseline.

Every measurement gets a fresh database: an SQLite file in the run's temporary directory, or a
PostgreSQL schema `bench_<run>_<label>` created here and dropped by `Databases.drop_all`.

The raw baseline copies the rows the ledger stored (same ids, versions, topics and payloads,
in the same order) into an empty table shaped like the event table, in as many transactions as
the ledger used: `executemany` on SQLite (WAL, as eventsourcing opens it), binary `COPY` on
PostgreSQL. Only the inserts and commits are timed, not the reading of the source rows.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ledger.storage import (
    POSTGRES_EVENTS_TABLE,
    POSTGRES_SNAPSHOTS_TABLE,
    SQLITE_EVENTS_TABLE,
    SQLITE_SNAPSHOTS_TABLE,
)

SQLITE, POSTGRES = "sqlite", "postgres"
KINDS = (SQLITE, POSTGRES)
RAW_TABLE = "raw_events"
_COLUMNS = "originator_id, originator_version, topic, state"
_SQLITE_RAW_DDL = (
    f"CREATE TABLE {RAW_TABLE} (originator_id TEXT, originator_version INTEGER, topic TEXT, "
    "state BLOB, PRIMARY KEY (originator_id, originator_version))"
)
# The event table of migrations/versions/0001_event_store.py, under another name.
_POSTGRES_RAW_DDL = (
    "CREATE TABLE {schema}.{table} (originator_id uuid NOT NULL, originator_version bigint NOT "
    "NULL, topic text, state bytea, notification_id bigserial, PRIMARY KEY (originator_id, "
    "originator_version)) WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = "
    "100000000, autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0.01)",
    "CREATE UNIQUE INDEX ON {schema}.{table} (notification_id ASC)",
)

Row = tuple[object, int, str, bytes]
OnRows = Callable[[int], None]


@dataclass(frozen=True)
class Database:
    """Where one measurement's data lives: a ledger URL and, for PostgreSQL, its schema."""

    kind: str
    url: str
    path: Path | None = None  # SQLite file
    schema: str | None = None  # PostgreSQL schema


@dataclass(frozen=True)
class StoredCounts:
    events: int
    snapshots: int
    streams: int
    state_bytes_avg: float
    snapshot_bytes: int  # their states' bytes, all together


@dataclass(frozen=True)
class RawResult:
    method: str
    rows: int
    transactions: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class Databases:
    """Fresh databases for one benchmark run, all removed by `drop_all`."""

    def __init__(self, workdir: Path, postgres_url: str) -> None:
        self.workdir = workdir
        self.postgres_url = postgres_url
        self.run_id = f"{datetime.now():%Y%m%d%H%M%S}_{secrets.token_hex(2)}"
        self.schemas: list[str] = []

    def fresh(self, kind: str, label: str) -> Database:
        assert kind in KINDS, kind
        if kind == SQLITE:
            path = self.workdir / f"{label}.db"
            assert not path.exists(), path
            return Database(kind, f"sqlite:///{path}", path=path)
        schema = f"bench_{self.run_id}_{label}"
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        self.schemas.append(schema)
        separator = "&" if "?" in self.postgres_url else "?"
        return Database(kind, f"{self.postgres_url}{separator}schema={schema}", schema=schema)

    def drop_all(self) -> None:
        if not self.schemas:
            return
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
        self.schemas.clear()


def count_stored(databases: Databases, where: Database) -> StoredCounts:
    """Rows in the event and snapshot tables after a run."""
    if where.kind == SQLITE:
        assert where.path is not None
        with sqlite3.connect(where.path) as conn:
            events, streams, size = conn.execute(
                f"SELECT COUNT(*), COUNT(DISTINCT originator_id), AVG(LENGTH(state)) "
                f"FROM {SQLITE_EVENTS_TABLE}"
            ).fetchone()
            snapshots, snapshot_bytes = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(state)), 0) FROM {SQLITE_SNAPSHOTS_TABLE}"
            ).fetchone()
        return StoredCounts(events, snapshots, streams, float(size or 0), snapshot_bytes)
    schema = sql.Identifier(_schema(where))
    with psycopg.connect(databases.postgres_url) as conn:
        events, streams, size = conn.execute(
            sql.SQL(
                "SELECT COUNT(*), COUNT(DISTINCT originator_id), AVG(LENGTH(state)) FROM {}.{}"
            ).format(schema, sql.Identifier(POSTGRES_EVENTS_TABLE))
        ).fetchone() or (0, 0, 0)
        snapshots, snapshot_bytes = conn.execute(
            sql.SQL("SELECT COUNT(*), COALESCE(SUM(LENGTH(state)), 0) FROM {}.{}").format(
                schema, sql.Identifier(POSTGRES_SNAPSHOTS_TABLE)
            )
        ).fetchone() or (0, 0)
    return StoredCounts(events, snapshots, streams, float(size or 0), snapshot_bytes)


def raw_insert(
    databases: Databases,
    source: Database,
    target: Database,
    rows_per_transaction: int,
    on_rows: OnRows,
) -> RawResult:
    """Insert the source's event rows into an empty event-shaped table at `target`."""
    assert rows_per_transaction > 0
    if source.kind == SQLITE:
        return _sqlite_raw(source, target, rows_per_transaction, on_rows)
    return _postgres_raw(databases, source, target, rows_per_transaction, on_rows)


# -- SQLite -----------------------------------------------------------------------------------


def _sqlite_raw(source: Database, target: Database, batch_rows: int, on_rows: OnRows) -> RawResult:
    assert source.path is not None and target.path is not None
    # As eventsourcing.sqlite opens its database: autocommit, explicit BEGIN, WAL journal.
    conn = sqlite3.connect(target.path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SQLITE_RAW_DDL)
        insert = f"INSERT INTO {RAW_TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?)"
        rows = transactions = 0
        seconds = 0.0
        for batch in _sqlite_batches(source.path, batch_rows):
            started = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany(insert, batch)
            conn.execute("COMMIT")
            seconds += time.perf_counter() - started
            rows, transactions = rows + len(batch), transactions + 1
            on_rows(len(batch))
    finally:
        conn.close()
    return RawResult("executemany, one transaction per batch", rows, transactions, seconds)


def _sqlite_batches(path: Path, batch_rows: int) -> Iterator[list[Row]]:
    with sqlite3.connect(path) as conn:
        cursor = conn.execute(f"SELECT {_COLUMNS} FROM {SQLITE_EVENTS_TABLE} ORDER BY rowid")
        while batch := cursor.fetchmany(batch_rows):
            yield batch


# -- PostgreSQL -------------------------------------------------------------------------------


def _postgres_raw(
    databases: Databases, source: Database, target: Database, batch_rows: int, on_rows: OnRows
) -> RawResult:
    schema, table = sql.Identifier(_schema(target)), sql.Identifier(RAW_TABLE)
    copy = sql.SQL("COPY {}.{} (" + _COLUMNS + ") FROM STDIN (FORMAT BINARY)").format(schema, table)
    rows = transactions = 0
    seconds = 0.0
    with psycopg.connect(databases.postgres_url, autocommit=True) as conn:
        for statement in _POSTGRES_RAW_DDL:
            conn.execute(sql.SQL(statement).format(schema=schema, table=table))
        for batch in _postgres_batches(databases, source, batch_rows):
            started = time.perf_counter()
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(copy) as writer:
                writer.set_types(["uuid", "int8", "text", "bytea"])
                for row in batch:
                    writer.write_row(row)
            seconds += time.perf_counter() - started
            rows, transactions = rows + len(batch), transactions + 1
            on_rows(len(batch))
    return RawResult("binary COPY, one transaction per batch", rows, transactions, seconds)


def _postgres_batches(
    databases: Databases, source: Database, batch_rows: int
) -> Iterator[list[Row]]:
    query = sql.SQL("SELECT " + _COLUMNS + " FROM {}.{} ORDER BY notification_id").format(
        sql.Identifier(_schema(source)), sql.Identifier(POSTGRES_EVENTS_TABLE)
    )
    with psycopg.connect(databases.postgres_url) as conn, conn.cursor(name="raw_source") as cur:
        cur.itersize = batch_rows
        cur.execute(query)
        while batch := cur.fetchmany(batch_rows):
            yield batch


def _schema(where: Database) -> str:
    assert where.schema is not None, where
    return where.schema


# -- a single live write on PostgreSQL --------------------------------------------------------


def raw_insert_latencies(databases: Databases, target: Database, rows: list[Row]) -> list[float]:
    """Milliseconds of each of one INSERT then COMMIT per row (the live record's baseline: two
    round trips and the commit's fsync), into an empty event-shaped table at `target`."""
    schema, table = sql.Identifier(_schema(target)), sql.Identifier(RAW_TABLE)
    insert = sql.SQL("INSERT INTO {}.{} (" + _COLUMNS + ") VALUES (%s, %s, %s, %s)").format(
        schema, table
    )
    samples = []
    with psycopg.connect(databases.postgres_url) as conn:
        for statement in _POSTGRES_RAW_DDL:
            conn.execute(sql.SQL(statement).format(schema=schema, table=table))
        conn.commit()
        for row in rows:
            started = time.perf_counter()
            conn.execute(insert, row, prepare=True)
            conn.commit()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def source_rows(databases: Databases, source: Database, count: int) -> list[Row]:
    """The first `count` event rows the ledger at `source` stored (PostgreSQL)."""
    return next(_postgres_batches(databases, source, count), [])


class RoundTrips:
    """Counts the client-server round trips of every PostgreSQL connection opened while it is
    active, from libpq's protocol trace: the server ends each exchange the client waits for
    with one ReadyForQuery message. Tracing starts at the first `count()` (it slows every
    exchange down: time nothing after it); `count()` flushes the traces and gives the total."""

    _READY = b"\tReadyForQuery\t"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.opened: list[psycopg.Connection[Any]] = []
        self.traced: dict[int, Path] = {}  # id of the connection -> its trace file
        self._connect = psycopg.Connection.connect

    def __enter__(self) -> RoundTrips:
        original, opened = self._connect, self.opened

        def connect(cls: type[psycopg.Connection[Any]], *args: Any, **kwargs: Any) -> Any:
            conn = original.__func__(cls, *args, **kwargs)  # type: ignore[attr-defined]
            opened.append(conn)
            return conn

        psycopg.Connection.connect = classmethod(connect)  # type: ignore[assignment, method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        psycopg.Connection.connect = self._connect  # type: ignore[method-assign]
        for conn in self.opened:
            if id(conn) in self.traced and not conn.closed:
                conn.pgconn.untrace()

    def count(self) -> int:
        total = 0
        for conn in self.opened:
            path = self.traced.setdefault(id(conn), self.workdir / f"trace-{len(self.traced)}.txt")
            if not conn.closed:
                if path.exists():
                    conn.pgconn.untrace()  # flushes what libpq buffered
                with path.open("ab") as out:  # libpq writes through its own duplicate
                    conn.pgconn.trace(os.dup(out.fileno()))
                conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            total += path.read_bytes().count(self._READY) if path.exists() else 0
        return total
