"""PostgreSQL specifics of the event store (psycopg 3), used only through `ledger.storage`."""

from __future__ import annotations

import codecs
import hashlib
import json
import struct
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from typing import Any, ClassVar, cast
from uuid import UUID

import psycopg
from eventsourcing import postgres
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import Environment, EnvType
from psycopg.adapt import Buffer, Dumper
from psycopg.pq import Format
from psycopg.pq.abc import PGresult
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal
from psycopg.types.string import BytesBinaryDumper

from ledger.batches import iter_batches
from ledger.chain import (
    CHAIN_HEAD_TABLE,
    CHAIN_TABLE,
    CHAIN_TAIL,
    CONTENT_HEADER,
    Link,
    Row,
    content_hash_of,
    stream_bytes,
)
from ledger.prepared import Prepared, numbered
from ledger.storage import ID_CHUNK, StoredState, store_not_empty, stored_columns

# Every append locks the chain head's row (the lock every writer takes, instead of a lock on the
# whole event table) and refuses the batch when a stream it read but does not write has moved on
# since (no row inserted: the caller's retry reloads). Each stream read is looked up on its own
# (a LATERAL subquery with a LIMIT cannot become a join): as a join, a planner without
# statistics on the event table (autovacuum off, or not yet run) hashes the read streams and
# scans the whole log, so that every live record costs a scan growing with the ledger.
#
# Every array is read through a scalar subquery, `(SELECT %b::uuid[])`, and so is the flag of
# `waited`: the planner then cannot see their values in a prepared statement's custom plan
# either, so its estimates (unnest's default rows) are those of the generic plan, whose cost
# is then never above the custom plans', and PostgreSQL keeps the generic plan after its five
# custom ones. Seeing the arrays, it counted the few events exactly in every custom plan, found
# the generic plan (a guess of 100 per array) dearer and planned the statement again at every
# execution, which cost more than running it (about 0.3 of a live record's 0.5 ms there).
_MOVED = """
moved AS (
    SELECT FROM unnest((SELECT %b::uuid[]), (SELECT %b::bigint[])) AS read (id, version)
    CROSS JOIN LATERAL (
        SELECT FROM {schema}.{events} AS stored
        WHERE stored.originator_id = read.id AND stored.originator_version > read.version
        LIMIT 1
    ) AS later
    LIMIT 1
)"""
# A live record's few events are inserted in order, linked in the same statement, with
# PostgreSQL's sha256() over the same bytes as `ledger.chain.chain_hash`, and the head moved:
# sent alone on an autocommit connection it is its own transaction, one round trip. The
# recursive fold costs more per event than Python's hashing, so a larger batch is copied
# (`PostgresEventRecorder._copy`) and linked in Python.
#
# `moved` reads in the statement's snapshot, taken before the head's lock was granted: it cannot
# see what the lock's holder committed meanwhile. `waited` finds that case (the locked head is
# newer than the snapshot's), and when the write read streams without writing them (the last
# parameter before the events) it stores nothing; `insert_events` then takes the lock first.
_APPEND = (
    """WITH RECURSIVE
head AS (SELECT chain_hash, position FROM {schema}.{head} FOR UPDATE),"""
    + _MOVED
    + """,
waited AS (
    SELECT FROM head, {schema}.{head} AS seen
    WHERE seen.position IS DISTINCT FROM head.position AND (SELECT %s::boolean)
),
inserted AS (
    INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state)
    SELECT new.id, new.version, new.topic, new.state
    FROM head, unnest(
        (SELECT %b::uuid[]), (SELECT %b::bigint[]), (SELECT %b::text[]), (SELECT %b::bytea[])
    ) WITH ORDINALITY AS new (id, version, topic, state, n)
    WHERE NOT EXISTS (SELECT FROM moved) AND NOT EXISTS (SELECT FROM waited)
    ORDER BY new.n
    RETURNING notification_id
),
appended AS (
    SELECT array_agg(notification_id ORDER BY notification_id) AS positions,
        (SELECT %b::bytea[]) AS contents
    FROM inserted
),
chained (n, position, chain_hash) AS (
    SELECT 0, 0::bigint, chain_hash FROM head
    UNION ALL
    SELECT chained.n + 1, appended.positions[chained.n + 1], sha256(
        chained.chain_hash
        || int8send(appended.positions[chained.n + 1])
        || appended.contents[chained.n + 1]
    )
    FROM chained, appended WHERE chained.n < cardinality(appended.positions)
),
links AS (
    INSERT INTO {schema}.{chain} (position, content_hash, chain_hash)
    SELECT chained.position, appended.contents[chained.n], chained.chain_hash
    FROM chained, appended WHERE chained.n > 0
    RETURNING position, chain_hash
),
advanced AS (
    UPDATE {schema}.{head} SET position = last.position, chain_hash = last.chain_hash
    FROM (SELECT position, chain_hash FROM links ORDER BY position DESC LIMIT 1) AS last
){snapshotted}
SELECT position FROM links ORDER BY position
"""
)
# The snapshots a write makes due, replacing: a snapshot is made from the very events its
# transaction writes, so one already there at its version is an orphan (its events never
# stored). In a live record's append (`_APPEND`) a part of the same statement, hence of its
# transaction and its commit, stored only if the events were (`{stored}`).
_SNAPSHOTS = """INSERT INTO {schema}.{snapshots} (originator_id, originator_version, topic, state)
SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]){stored}
ON CONFLICT (originator_id, originator_version)
DO UPDATE SET topic = excluded.topic, state = excluded.state"""
# A large batch's positions, taken from the table's sequence in one step once the head's lock
# is held (every writer takes it before drawing a position, so the batch's are consecutive and
# follow every committed event's); none when a stream read has moved on. A statement of its own
# after the lock's: its snapshot then sees every write committed before the lock was granted.
_RESERVE = (
    "WITH"
    + _MOVED
    + """
SELECT setval({sequence}, nextval({sequence}) + %s - 1) WHERE NOT EXISTS (SELECT FROM moved)
"""
)
EVENT_TYPES = ("int8", "uuid", "int8", "text", "bytea")
_LINK_TYPES = ("int8", "bytea", "bytea")
# PostgreSQL's binary COPY format: a header (the signature, no flags, no extension), each row as
# its number of fields and each field as its length and its bytes, a trailer of -1 fields.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = b"\xff\xff"
# A link's row: position (int8), content hash and chain hash (bytea, 32 bytes each).
_LINK_ROW = struct.Struct(">hiqi32si32s")
# What a chain hash hashes: the previous link's chain hash, then `CHAIN_TAIL`, in one pack.
_CHAINED = struct.Struct(f">32s{CHAIN_TAIL.format.removeprefix('>')}")
APPEND_EVENTS_MAX = 16  # events linked by the database in the append statement itself


class PostgresEventRecorder(PostgresApplicationRecorder):
    """eventsourcing's recorder, appending a live record's events and their links in the
    hash chain in one statement (`_APPEND`) with the events as typed arrays in binary,
    prepared once per connection and run through libpq (`ledger.prepared`): psycopg adapts
    composites and text-format arrays in Python, escaping every value. A
    larger batch is written with binary COPY (`_copy`). No NOTIFY: nothing here listens
    (projections read the log by position), and each one cost a round trip. The snapshots a
    write makes due go in its own transaction (`ledger.storage.SnapshotsFolder`): a live
    record's in its one statement, so that it is one commit whether a snapshot is due or not."""

    insert_snapshots_statement: Composed | None = None
    live_append_snapshots: Prepared | None = None

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        names = {
            "schema": Identifier(datastore.schema),
            "events": Identifier(events_table_name),
            "chain": Identifier(CHAIN_TABLE),
            "head": Identifier(CHAIN_HEAD_TABLE),
        }
        self.names = names
        self.append_statement = self._append(snapshotted="")
        self.live_append = Prepared(self.append_statement, _APPEND_TYPES)
        sequence = SQL("pg_get_serial_sequence({table}, 'notification_id')").format(
            table=Literal(f'"{datastore.schema}"."{events_table_name}"')
        )
        self.reserve_statement = SQL(_RESERVE).format(sequence=sequence, **names)
        self.copy_events_statement = SQL(
            "COPY {schema}.{events} "
            "(notification_id, originator_id, originator_version, topic, state) FROM STDIN "
            "(FORMAT BINARY)"
        ).format(**names)
        self.copy_links_statement = SQL(
            "COPY {schema}.{chain} (position, content_hash, chain_hash) FROM STDIN (FORMAT BINARY)"
        ).format(**names)
        self.any_event_statements = [
            SQL("SELECT 1 FROM {schema}.{table} LIMIT 1").format(
                schema=names["schema"], table=names[table]
            )
            for table in ("events", "chain")
        ]
        self.lock_head_statement = SQL("SELECT chain_hash FROM {schema}.{head} FOR UPDATE").format(
            **names
        )
        self.move_head_statement = SQL(
            "UPDATE {schema}.{head} SET position = %s, chain_hash = %s"
        ).format(**names)
        # A large batch's first and last round trips (`_copy`): no parameters, so that
        # psycopg sends each as one query of the simple protocol, which may hold several.
        self.begin_and_lock_statement = (
            SQL("BEGIN; {}").format(self.lock_head_statement).as_bytes(None)
        )
        self.move_head_and_commit_statement = SQL(
            SQL("UPDATE {schema}.{head} SET position = {{}}, chain_hash = {{}}; COMMIT")
            .format(**names)
            .as_string(None)
        )
        self.advance_positions_statement = SQL("SELECT setval({sequence}, %s)").format(
            sequence=sequence
        )

    def _append(self, snapshotted: str, **names: Identifier) -> bytes:
        """The live append (with `snapshotted`, the template of a part writing snapshots),
        rendered once with its placeholders numbered, as it is prepared (`Prepared`)."""
        template = numbered(_APPEND.replace("{snapshotted}", snapshotted))
        return SQL(template).format(**self.names, **names).as_bytes(None)

    def fold_snapshots_into(self, table: str) -> None:
        names = {"schema": self.names["schema"], "snapshots": Identifier(table)}
        self.insert_snapshots_statement = SQL(_SNAPSHOTS).format(stored=SQL(""), **names)
        stored = "\nWHERE EXISTS (SELECT FROM inserted)"
        snapshotted = f",\nsnapshotted AS (\n{_SNAPSHOTS.replace('{stored}', stored)}\n)"
        self.live_append_snapshots = Prepared(
            self._append(snapshotted, snapshots=Identifier(table)), _APPEND_TYPES + _SNAPSHOT_TYPES
        )

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        unchanged: Sequence[tuple[UUID, int]] = (),
        snapshots: Sequence[StoredEvent] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        """Append the events, in order, unless a stream of `unchanged` (read at the given
        version, not written) has a later version: then nothing is stored and the store's
        IntegrityError says to run the write again on fresh state, as a taken version does.
        `snapshots` are written in the same transaction, and are stored only if the events
        are: in a large batch's, or as a part of a live record's one statement.

        A refusal is not retried here: every write is idempotent, so the caller's next
        attempt is the retry. The one second statement is for a live write that read streams
        and stored nothing: it runs again with the head's lock taken first (the first one's
        snapshot may have missed what the lock's holder committed). Never in psycopg's
        pipeline mode (with a large batch the client and the server can wait for each other
        for ever)."""
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn:
            if len(stored_events) <= APPEND_EVENTS_MAX:
                return self._append_live(conn, stored_events, unchanged, snapshots)
            read = ([stream for stream, _ in unchanged], [version for _, version in unchanged])
            with conn.cursor(row_factory=tuple_row) as curs:
                try:
                    return self._copy(curs, read, stored_events, snapshots)
                except BaseException:
                    with suppress(Exception):  # a broken connection: the pool discards it
                        conn.rollback()
                    raise

    def _append_live(
        self,
        conn: psycopg.Connection[Any],
        stored_events: Sequence[StoredEvent],
        unchanged: Sequence[tuple[UUID, int]],
        snapshots: Sequence[StoredEvent],
    ) -> list[int]:
        """A live record's events appended and linked by `_APPEND`, one round trip."""
        encoding = conn.info.encoding
        values = [
            *_read_arrays(unchanged),
            _TRUE if unchanged else _FALSE,
            *_event_arrays(stored_events, encoding, hashed=True),
        ]
        statement = self.live_append
        if snapshots:
            assert self.live_append_snapshots is not None, "no snapshots table"
            statement = self.live_append_snapshots
            values += _event_arrays(snapshots, encoding, hashed=False)
        positions = _int8s(statement.run(conn, values))
        if not positions and unchanged:
            # A stream read has moved on, or the head's holder committed while this write
            # waited (`waited`), which the statement's snapshot cannot show. Once more with
            # the lock taken first: the check's snapshot then follows the lock.
            with conn.transaction():
                conn.execute(self.lock_head_statement, prepare=True)
                positions = _int8s(statement.run(conn, values))
        if len(positions) != len(stored_events):
            raise _moved()
        return positions

    def _snapshot(self, curs: Any, snapshots: Sequence[StoredEvent]) -> None:
        if snapshots:
            assert self.insert_snapshots_statement is not None, "no snapshots table"
            curs.execute(self.insert_snapshots_statement, _columns(snapshots))

    def _copy(
        self,
        curs: Any,
        read: tuple[list[UUID], list[int]],
        stored_events: Sequence[StoredEvent],
        snapshots: Sequence[StoredEvent],
    ) -> list[int]:
        """A large batch in one transaction: the head's lock, the batch's positions, the events
        and their links (computed here, in Python) each in one binary COPY, the snapshots,
        the head moved. The same positions, rows and links as `_APPEND` would write, with far
        less work per event on both sides: no arrays to adapt and unnest, no returned ids.

        The transaction is begun with the lock's statement and committed with the head's
        move, each pair one query of the simple protocol, one round trip (`conn.transaction`
        sends its BEGIN and its COMMIT alone): five round trips a batch, not seven, each one
        a wait of this thread for the interpreter's lock once the server has answered. The
        caller rolls back whatever fails."""
        curs.execute(self.begin_and_lock_statement)
        curs.nextset()
        (head,) = curs.fetchone()
        curs.execute(self.reserve_statement, (*read, len(stored_events)), prepare=True)
        reserved = curs.fetchone()
        if reserved is None:
            raise _moved()
        first = reserved[0] - len(stored_events) + 1
        events, links, last = copy_rows(head, first, stored_events, curs.connection.info.encoding)
        for statement, data in (
            (self.copy_events_statement, events),
            (self.copy_links_statement, links),
        ):
            with curs.copy(statement) as copy:
                copy.write(data)
        self._snapshot(curs, snapshots)
        position, _, chain_hash = last
        curs.execute(
            self.move_head_and_commit_statement.format(Literal(position), Literal(chain_hash))
        )
        return list(range(first, first + len(stored_events)))

    def _write(self, curs: Any, rows: Sequence[Row], links: Sequence[Link]) -> None:
        """The events at their positions and their links, each in one binary COPY.

        Their `bytea` columns' values through psycopg's own dumper of `bytes` (in C): the
        dumper `set_types` finds for `bytea` is the DB-API's `Binary`'s, registered after
        it, a Python call per value that dumps a `bytes` the same way (three per event)."""
        curs.adapters.register_dumper(None, BytesBinaryDumper)
        for statement, types, values in (
            (self.copy_events_statement, EVENT_TYPES, rows),
            (self.copy_links_statement, _LINK_TYPES, links),
        ):
            with curs.copy(statement) as copy:
                copy.set_types(types)
                for value in values:
                    copy.write_row(value)

    def import_log(self, batches: Iterable[tuple[Sequence[Row], Sequence[Link]]]) -> None:
        """Write an exported log into this empty store at its own positions, with the links
        the caller computed, in one transaction that commits only when `batches` ends
        without an error; then the position sequence continues after the last one and the
        chain head holds the last link. The head's lock, which every writer takes, is taken
        before the store is found empty."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.lock_head_statement)
            for statement in self.any_event_statements:
                curs.execute(statement)
                if curs.fetchone() is not None:
                    raise store_not_empty()
            last: Link | None = None
            for rows, links in batches:
                self._write(curs, rows, links)
                last = links[-1] if links else last
            if last is not None:
                curs.execute(self.advance_positions_statement, (last[0],))
                curs.execute(self.move_head_statement, (last[0], last[2]))


def copy_rows(
    head: bytes, first: int, stored: Sequence[StoredEvent], encoding: str
) -> tuple[bytes, bytes, Link]:
    """The binary COPY data of `stored` at positions from `first` on, and of their links in
    the chain after the link `head` (`ledger.chain.link`'s), and the last link, in one pass.

    Formatted here rather than row by row by psycopg (`Copy.write_row`: two Python calls and
    a dumper per value): the rows, the links and both formats cost about half as much, in
    the thread that writes while the next batch is decided, holding the interpreter's lock.
    Each topic's part of a row and of its content hash is packed by structs of its own,
    made once a batch (a batch's events share a handful of topics). A topic is sent as text in
    the connection's `encoding`, as psycopg sends it, and hashed as UTF-8 whatever that
    encoding (the content hash every other path and the audit compute); a stream id is its 16
    bytes."""
    sha256, chained, link_row = hashlib.sha256, _CHAINED.pack, _LINK_ROW.pack
    rows, links = [COPY_HEADER], [COPY_HEADER]
    add_row, add_link = rows.append, links.append
    topics: dict[str, tuple[Callable[..., bytes], Callable[..., bytes], int, bytes, bytes]] = {}
    # psycopg sends text in the connection's encoding, UTF-8 for SQL_ASCII's "ascii".
    sends_utf8 = codecs.lookup(encoding).name in ("utf-8", "ascii")
    previous, content, position = head, b"", first - 1
    columns = stored_columns(stored)
    for position, stream, version, topic, state in zip(
        range(first, first + len(columns)),
        columns.originator_ids,
        columns.originator_versions,
        columns.topics,
        columns.states,
        strict=True,
    ):
        packs = topics.get(topic)
        if packs is None:
            text = topic.encode()  # the content hash's, as `chain.content_hash` takes it
            name = text if sends_utf8 else topic.encode(encoding)
            header = struct.Struct(f"{CONTENT_HEADER.format}{len(text)}s").pack
            packs = topics[topic] = (header, _event_row(len(name)).pack, len(name), name, text)
        header, event_row, size, name, text = packs
        raw = stream.int.to_bytes(16, "big") if type(stream) is UUID else stream_bytes(stream)
        content = sha256(header(raw, version, len(text), text) + state).digest()
        previous = sha256(chained(previous, position, content)).digest()
        add_row(event_row(5, 8, position, 16, raw, 8, version, size, name, len(state)))
        add_row(state)
        add_link(link_row(3, 8, position, 32, content, 32, previous))
    add_row(COPY_TRAILER)
    add_link(COPY_TRAILER)
    return b"".join(rows), b"".join(links), (position, content, previous)


def _event_row(size: int) -> struct.Struct:
    """An event's row but its state's bytes: five fields, each after its length (the
    position, the stream id, the version, a topic of `size` bytes), and the state's length."""
    return struct.Struct(f">hiqi16siqi{size}si")


class _Array(bytes):
    """A one-dimensional array already in PostgreSQL's binary format: the live append sends
    it as it is, and so does psycopg given one (`_ArrayDumper`). psycopg's own list dumpers
    inspect every list and its elements again at every execution, each in a cursor whose
    dumpers are new: the live append's eight arrays cost about 0.1 ms of the client's CPU
    there, a few µs here."""

    __slots__ = ()
    element: ClassVar[int]  # the element type's OID, in the array's header
    oid: ClassVar[int]  # the array type's OID, the parameter's type


class _ArrayDumper(Dumper):
    format = Format.BINARY

    def __init__(self, cls: type, context: Any = None) -> None:
        super().__init__(cls, context)
        # The parameter's type, set on each dumper rather than on its class: psycopg files a
        # dumper whose class names an OID as the one for every value of that type it looks
        # up by OID (a binary COPY's `set_types`, a composite's array fields), which would
        # hand this dumper Python lists.
        self.oid = cast(type[_Array], cls).oid

    def dump(self, obj: Any) -> Buffer:
        return obj  # type: ignore[no-any-return]


def _array_type(name: str, element: int, oid: int) -> type[_Array]:
    """An `_Array` of the element type `element` (its OID), whose parameters are of the
    array type `oid`, with its dumper registered for every connection by the class alone."""
    kind = type(name, (_Array,), {"__slots__": (), "element": element, "oid": oid})
    psycopg.adapters.register_dumper(kind, _ArrayDumper)
    return kind


_UuidArray = _array_type("_UuidArray", 2950, 2951)
_Int8Array = _array_type("_Int8Array", 20, 1016)
_TextArray = _array_type("_TextArray", 25, 1009)
_ByteaArray = _array_type("_ByteaArray", 17, 1001)

# The live append's parameters: the streams read and their versions, whether there are any
# (a `boolean` in binary), the events' columns and content hashes; then the snapshots' columns.
_APPEND_TYPES = (
    *(_UuidArray.oid, _Int8Array.oid, 16),
    *(_UuidArray.oid, _Int8Array.oid, _TextArray.oid, _ByteaArray.oid, _ByteaArray.oid),
)
_SNAPSHOT_TYPES = (_UuidArray.oid, _Int8Array.oid, _TextArray.oid, _ByteaArray.oid)
_TRUE, _FALSE = b"\x01", b"\x00"

# An array's header: one dimension, no NULLs, the element type, the length, lower bound 1.
_ARRAY_HEADER = struct.Struct(">iiIii")
_EMPTY_ARRAY = struct.Struct(">iiI")  # no dimension, no NULLs, the element type


def _array(kind: type[_Array], items: Sequence[bytes]) -> _Array:
    """`items`, each its element's bytes in binary, as an array of `kind`."""
    if not items:
        return kind(_EMPTY_ARRAY.pack(0, 0, kind.element))
    parts = [_ARRAY_HEADER.pack(1, 0, kind.element, len(items), 1)]
    for item in items:
        parts += (len(item).to_bytes(4, "big"), item)
    return kind(b"".join(parts))


def _int8(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def _int8s(result: PGresult) -> list[int]:
    """The first column of a binary result, an `int8` in each row."""
    get = result.get_value
    return [int.from_bytes(get(row, 0) or b"", "big", signed=True) for row in range(result.ntuples)]


def _read_arrays(unchanged: Sequence[tuple[UUID, int]]) -> tuple[_Array, _Array]:
    """The streams a write read without writing them and their versions, as `_MOVED` takes
    them."""
    return (
        _array(_UuidArray, [stream_bytes(stream) for stream, _ in unchanged]),
        _array(_Int8Array, [_int8(version) for _, version in unchanged]),
    )


def _event_arrays(
    stored: Sequence[StoredEvent], encoding: str, *, hashed: bool
) -> tuple[_Array, ...]:
    """The events' stream ids, versions, topics and states as the append's arrays, and with
    `hashed` their content hashes (`ledger.chain.content_hash`: the topic hashed as UTF-8,
    sent in the connection's `encoding`, as psycopg sends text, UTF-8 for SQL_ASCII's)."""
    sent = "utf-8" if encoding == "ascii" else encoding
    columns = stored_columns(stored)  # a batch's are columns already: no event made per row
    streams = list(map(stream_bytes, columns.originator_ids))
    versions, topics, states = columns.originator_versions, columns.topics, columns.states
    arrays: tuple[_Array, ...] = (
        _array(_UuidArray, streams),
        _array(_Int8Array, list(map(_int8, versions))),
        _array(_TextArray, [topic.encode(sent) for topic in topics]),
        _array(_ByteaArray, states),
    )
    if hashed:
        utf8 = [topic.encode() for topic in topics]
        arrays += (
            _array(_ByteaArray, list(map(content_hash_of, streams, versions, utf8, states))),
        )
    return arrays


def _columns(
    stored: Sequence[StoredEvent],
) -> tuple[list[UUID | str], list[int], list[str], list[bytes]]:
    columns = stored_columns(stored)
    return columns.originator_ids, columns.originator_versions, columns.topics, columns.states


def _moved() -> IntegrityError:
    return IntegrityError("a stream this write read has moved on since: nothing stored")


class PostgresFactory(postgres.PostgresFactory):
    """The library's factory, giving every connection of the pool the ledger's session
    limits (timeouts and TCP keepalives: `ledger.storage.SessionLimits`), which the library
    takes only in part from its environment. They are libpq parameters, JSON in
    POSTGRES_SESSION_PARAMETERS, added before the pool opens its first connection.

    JIT compilation is off for these sessions: the planner cannot estimate the rows of the
    append statement's arrays and CTEs, guesses a cost above `jit_above_cost`, and a 0.1 ms
    insert of one event then spends about 50 ms compiling itself."""

    POSTGRES_SESSION_PARAMETERS = "POSTGRES_SESSION_PARAMETERS"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        parameters = json.loads(self.env.get(self.POSTGRES_SESSION_PARAMETERS) or "{}")
        parameters["options"] = " ".join(filter(None, [parameters.get("options"), "-c jit=off"]))
        assert self.datastore.pool.closed, "the pool opened before its parameters were set"
        assert isinstance(self.datastore.pool.kwargs, dict)
        self.datastore.pool.kwargs.update(parameters)


class PostgresVersions:
    """Latest version of many streams in one query: each stream's last index entry (the
    primary key's, read backwards, a LIMIT 1), its id read from an opaque array.

    Not `originator_id = ANY(%s) ... GROUP BY`: a planner without statistics on the event
    table (autovacuum not yet run, as during a first long ingest) planned it, seeing the
    array, as a scan of the whole table (16 ms for 200 ids in 34,000 events, and growing
    with the log, at every batch), and `MAX` reads every event of a busy stream."""

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self.recorder = recorder
        self.sql = SQL(
            "SELECT read.id AS originator_id, latest.version "
            "FROM unnest((SELECT %b::uuid[])) AS read (id) CROSS JOIN LATERAL ("
            "SELECT originator_version AS version FROM {schema}.{table} "
            "WHERE originator_id = read.id ORDER BY originator_version DESC LIMIT 1"
            ") AS latest"
        ).format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )

    def __call__(self, ids: Iterable[UUID]) -> dict[UUID, int]:
        found: dict[UUID, int] = {}
        for chunk in iter_batches(ids, ID_CHUNK):
            with self.recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
                cursor.execute(self.sql, (chunk,), prepare=True)
                for row in cursor.fetchall():
                    found[row["originator_id"]] = row["version"]
        return found


class PostgresStates:
    """Stored events after a position, of some topics, in log order (`ledger.storage.
    states_reader`); stream ids as hex, encoded by the server.

    Read a window of positions at a time, the window doubled while it holds fewer than the
    events asked for: asked for the events after a position with no upper bound, the planner
    chose by its estimates (none on a table never analyzed) a scan of every later event and
    a sort of them, for each batch of a catch-up; a window is one bounded range of the
    index whatever the estimates, and a rare topic still costs a few windows, not a scan
    per batch."""

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self.recorder = recorder
        names = {
            "schema": Identifier(recorder.datastore.schema),
            "table": Identifier(recorder.events_table_name),
        }
        self.sql = SQL(
            "SELECT notification_id, encode(uuid_send(originator_id), 'hex'), topic, state "
            "FROM {schema}.{table} WHERE notification_id > %s AND notification_id <= %s "
            "AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"
        ).format(**names)
        self.end_sql = SQL("SELECT coalesce(max(notification_id), 0) FROM {schema}.{table}").format(
            **names
        )

    def __call__(self, after: int, limit: int, topics: Sequence[str]) -> list[StoredState]:
        """The log's end is read first and no window reaches past it: every position up to
        an end read was committed then (positions are drawn and committed in order, under
        the chain head's lock), so each window read is complete. A window read before the
        end would miss the events committed into it between the two statements, and a
        reader moving past that window would never see them."""
        chosen = list(topics)
        found: list[StoredState] = []
        span = limit
        with (
            self.recorder.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as cursor,
        ):
            cursor.execute(self.end_sql)
            end = int(cursor.fetchall()[0][0])
            while after < end:
                wanted = limit - len(found)
                upto = min(after + span, end)
                cursor.execute(self.sql, (after, upto, chosen, wanted), prepare=True, binary=True)
                rows = cursor.fetchall()
                found += rows
                if len(rows) == wanted:
                    return found
                after = upto
                span *= 2
            return found
