"""SQLite specifics of the event store, used only through `ledger.storage`: the recorder that
chains every event (`ledger.chain`), the import of an exported log at its positions, and the
factory whose connections keep their compiled statements."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import attrgetter
from typing import Any, Literal
from uuid import UUID

from eventsourcing import sqlite as library
from eventsourcing.persistence import IntegrityError, InterfaceError, StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteDatastore,
)

from ledger.batches import iter_batches
from ledger.chain import CHAIN_TABLE, GENESIS, Link, Row, link
from ledger.sqlite_rows import insert_together, insert_values
from ledger.storage import ID_CHUNK, StoredColumns, store_not_empty, stored_columns

_INT = attrgetter("int")  # a UUID's integer (a slot)
_BIG: Literal["big"] = "big"

# Every insert of the log's rows is `INSERT OR FAIL`: a row that breaks a constraint (a taken
# version, a taken position) stops the statement with an IntegrityError as a plain INSERT's
# would, but leaves the statement's earlier rows in place, so SQLite keeps no statement
# journal to take them back out. Nothing carries on past such an error: the batch's whole
# transaction is rolled back. With 50 rows a statement into the events' two B-trees, that
# journal (the original of every page the statement changed) outgrew its 64 KiB in memory
# and went to a temporary file: an ingest of 34,000 events wrote 117 MB there, more than its
# WAL and database together (36 and 26 MB).
INSERT_LINKS = (
    f"INSERT OR FAIL INTO {CHAIN_TABLE} (position, content_hash, chain_hash) VALUES (?, ?, ?)"
)


class SQLiteEventRecorder(SQLiteApplicationRecorder):
    """eventsourcing's recorder, also writing each event's link in the hash chain
    (`ledger.chain`) in the same transaction; SQLite has one writer at a time, so the chain
    follows the log's order. The snapshots the events make due go in the same transaction
    (`ledger.storage.SnapshotsFolder`): one commit, one flush of the file, not one each."""

    insert_snapshots_statement: str | None = None

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        self.insert_events_statement = (
            f"INSERT OR FAIL INTO {events_table_name} (originator_id, originator_version, "
            "topic, state) VALUES (?, ?, ?, ?)"
        )

    def fold_snapshots_into(self, table: str) -> None:
        # Replacing: a snapshot is made from the very events this transaction writes, so one
        # already there at its version is an orphan (its events never stored).
        self.insert_snapshots_statement = (
            f"INSERT OR REPLACE INTO {table} (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)"
        )

    def _insert_events(
        self,
        c: Any,
        stored_events: Sequence[StoredEvent],
        *,
        unchanged: Sequence[tuple[UUID, int]] = (),
        snapshots: Sequence[StoredEvent] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        """The events, their links and `snapshots`; refused with the store's IntegrityError,
        as a taken version is, when a stream of `unchanged` (read at that version, not
        written) has a later one. Checked after the insert, under the write lock it took."""
        columns = stored_columns(stored_events)
        streams = _stream_bytes(columns.originator_ids)
        ids = self._append(c, columns, streams)
        for chunk in iter_batches(unchanged, ID_CHUNK // 2):
            c.execute(
                f"SELECT 1 FROM {self.events_table_name} WHERE "
                + " OR ".join(["(originator_id = ? AND originator_version > ?)"] * len(chunk)),
                [value for stream, version in chunk for value in (stream.hex, version)],
            )
            if c.fetchone() is not None:
                raise IntegrityError("a stream this write read has moved on since: nothing stored")
        c.execute(f"SELECT chain_hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1")
        last = c.fetchone()
        links = link(
            last[0] if last else GENESIS,
            zip(
                ids,
                streams or columns.originator_ids,
                columns.originator_versions,
                columns.topics,
                columns.states,
                strict=True,
            ),
        )
        insert_values(c, INSERT_LINKS, _link_values(links), 3)
        if snapshots:
            assert self.insert_snapshots_statement is not None, "no snapshots table"
            taken = stored_columns(snapshots)
            values = _event_values(taken, _stream_bytes(taken.originator_ids))
            insert_values(c, self.insert_snapshots_statement, values, 4)
        return ids

    def _append(self, c: Any, columns: StoredColumns, streams: list[bytes] | None) -> list[int]:
        """Insert the events in one statement and return their positions (rowids). The
        library inserts them one statement each, to read each one's rowid; but a rowid table
        without AUTOINCREMENT gives each new row the largest rowid plus one, and the insert
        holds the database's one write lock until the commit, so the batch's rowids are the
        consecutive ones ending at the largest after it."""
        if not columns:
            return []
        insert_values(c, self.insert_events_statement, _event_values(columns, streams), 4)
        c.execute(f"SELECT max(rowid) FROM {self.events_table_name}")
        last: int = c.fetchone()[0]
        return list(range(last - len(columns) + 1, last + 1))

    def import_log(self, batches: Iterable[tuple[Sequence[Row], Sequence[Link]]]) -> None:
        """Write an exported log into this empty store at its own positions (rowids), with
        the links the caller computed, in one transaction that commits only when `batches`
        ends without an error. BEGIN IMMEDIATE takes the write lock before the store is
        found empty, so no other writer can slip an event in between."""
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                _refuse_events(cursor, self.events_table_name)
                self._import(cursor, batches)
            except sqlite3.IntegrityError as error:
                connection.rollback()
                raise IntegrityError(error) from error
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

    def _import(self, cursor: Any, batches: Iterable[tuple[Sequence[Row], Sequence[Link]]]) -> None:
        for rows, links in batches:
            insert_together(
                cursor,
                f"INSERT OR FAIL INTO {self.events_table_name} (rowid, originator_id, "
                "originator_version, topic, state) VALUES (?, ?, ?, ?, ?)",
                [(p, s.hex, v, t, bytearray(b)) for p, s, v, t, b in rows],
            )
            insert_values(cursor, INSERT_LINKS, _link_values(links), 3)


# Bytes are bound as a `bytearray` of the same bytes: the sqlite3 module (Python 3.11) binds
# an int, float, str or bytearray as it is, but looks for an adapter for any other value,
# bytes included (a registry lookup and two attribute lookups that fail, one of them raising
# and clearing an AttributeError): about 3,000 instructions a value in a ledger's process,
# against about 200 for the copy. Both are stored as the same BLOB.


def _stream_bytes(ids: list[UUID | str]) -> list[bytes] | None:
    """Each stream id's 16 bytes (`UUID.bytes`, from the integer by `int.to_bytes` in C, with
    no call of the property's Python); None when an id is the library's text form, which has
    no `int`."""
    try:
        return list(map(int.to_bytes, map(_INT, ids), repeat(16), repeat(_BIG)))
    except AttributeError:
        return None


def _event_values(columns: StoredColumns, streams: list[bytes] | None) -> list[object]:
    """The stored events' values as the tables' rows bind them, one row after another, each
    column put in place by one slice (no Python per event): stream ids in hex (`UUID.hex`,
    the same 32 digits, from their bytes `streams`; an id of text as it is), states as
    BLOBs."""
    ids: list[object]
    if streams is None:
        ids = [
            i.int.to_bytes(16, "big").hex() if isinstance(i, UUID) else i
            for i in columns.originator_ids
        ]
    else:
        ids = list(map(bytes.hex, streams))
    values: list[object] = [None] * (4 * len(columns))
    values[0::4] = ids
    values[1::4] = columns.originator_versions
    values[2::4] = columns.topics
    values[3::4] = list(map(bytearray, columns.states))
    return values


def _link_values(links: Sequence[Link]) -> list[object]:
    """The links' values as the chain table's rows bind them, one row after another, their
    hashes as BLOBs."""
    values: list[object] = list(chain.from_iterable(links))
    hashes: Any = values  # every second and third value is a hash's bytes
    values[1::3] = list(map(bytearray, hashes[1::3]))
    values[2::3] = list(map(bytearray, hashes[2::3]))
    return values


def _refuse_events(cursor: Any, events_table: str) -> None:
    for table in (events_table, CHAIN_TABLE):
        cursor.execute(f"SELECT 1 FROM {table} LIMIT 1")
        if cursor.fetchone() is not None:
            raise store_not_empty()


# Statements a connection keeps compiled: the sqlite3 module's own default. The library opens
# its connections with `cached_statements=True`, that is one: a batch's dozen statements (its
# BEGIN among them) each evicted the one before, and the two 50-row inserts, the largest,
# were compiled again for every batch, about a thousand instructions an event.
STATEMENTS_KEPT = 128


class SQLiteFactory(library.SQLiteFactory):
    """The library's factory, its datastore's pool opening connections that keep
    `STATEMENTS_KEPT` statements compiled. The pool is replaced before it opens any."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        given = self.datastore.pool
        self.datastore.pool = _ConnectionPool(
            db_name=given.db_name,
            lock_timeout=given.lock_timeout,
            pool_size=given.pool_size,
            max_overflow=given.max_overflow,
            pool_timeout=given.pool_timeout,
            max_age=given.max_age,
            pre_ping=given.pre_ping,
        )
        given.close()


class _ConnectionPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        """The library's connection (autocommit, explicit BEGIN, the WAL journal, rows as
        `sqlite3.Row`) but for the statements it keeps."""
        try:
            connection = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                cached_statements=STATEMENTS_KEPT,
                timeout=self.lock_timeout or library.SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as error:
            raise InterfaceError(error) from error
        if not self.is_sqlite_memory_mode and not self.is_journal_mode_wal:
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            if mode.lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        connection.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=connection, max_age=self.max_age)
