"""Audit checks over the stored event log: the hash chain (`ledger.chain`) and the domain's
invariants, recomputed from the events alone.

`verify` walks the events and their links in position order and reports the first position
where an event was altered, deleted, inserted or moved, or where a link was edited. It cannot
see events removed from the very end together with their links: compare the head hash and
count it reports with ones noted earlier (an export's manifest keeps them).
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Collection, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa

from ledger import Ledger, identity
from ledger.chain import CHAIN_TABLE, CONTENT_HEADER, GENESIS
from ledger.collector import collector_paused
from ledger.fields import FieldReader
from ledger.location import Location
from ledger.payment import Payment
from ledger.status_views import LocationStatus
from ledger.storage import POSTGRES_EVENTS_TABLE, SQLITE_EVENTS_TABLE, engine_for
from ledger.views import PaymentState

BATCH = 20_000  # events between two progress reports
STREAM_ROWS = 2_000  # rows a streamed read fetches at a time: a page stays in the CPU cache
INVARIANT_PROBLEMS_MAX = 100


@dataclass
class ChainProblem:
    position: int
    kind: str  # altered | deleted | inserted | reordered | link_altered
    detail: str


@dataclass
class VerifyResult:
    count: int = 0
    head_hash: str = GENESIS.hex()
    problem: ChainProblem | None = None
    invariant_problems: list[str] = field(default_factory=list)
    marks: dict[int, tuple[int, str]] = field(default_factory=dict)  # position: count, hash

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.invariant_problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head_hash": self.head_hash,
            "problem": None if self.problem is None else vars(self.problem),
            "invariant_problems": self.invariant_problems,
        }


def verify(
    ledger: Ledger, progress: Callable[[int], None] | None = None, marks: Collection[int] = ()
) -> VerifyResult:
    """The hash chain and, from the same read of the events, the domain's invariants
    (`check_invariants`; reported only when the chain holds)."""
    invariants = _Invariants(ledger.store.mapper)
    result = _walk(ledger, progress, marks, invariants)
    if result.problem is None:
        result.invariant_problems = invariants.problems()
    return result


def verify_chain(
    ledger: Ledger, progress: Callable[[int], None] | None = None, marks: Collection[int] = ()
) -> VerifyResult:
    """The hash chain alone (no invariants), with the count and chain hash verified at each
    position of `marks` that the walk reached (`VerifyResult.marks`: what a seal is checked
    against, `adapters.seals`)."""
    return _walk(ledger, progress, marks, None)


def _walk(
    ledger: Ledger,
    progress: Callable[[int], None] | None,
    marks: Collection[int],
    invariants: _Invariants | None,
) -> VerifyResult:
    result = VerifyResult()
    engine = engine_for(ledger.config)
    try:
        # The invariants' tables of payments and the pages' rows all live to the end: the
        # cycle collector would walk them again and again, finding nothing to free.
        with engine.connect() as conn, collector_paused():
            _check_chain(conn, ledger.config.kind, result, progress, frozenset(marks), invariants)
    finally:
        engine.dispose()
    return result


def _check_chain(
    conn: sa.Connection,
    kind: str,
    result: VerifyResult,
    progress: Callable[[int], None] | None,
    marks: frozenset[int] = frozenset(),
    invariants: _Invariants | None = None,
) -> None:
    """One streamed pass over the events, each with its link, in position order (`_walk_links`),
    stopping at the first problem. A link whose event is gone is reported at its own
    position, as the first problem when no event before it has one: such a link breaks the
    chain at the next event, or, after the last one, is a link more than the events walked.
    Only then is it looked for, by the database (`_first_orphan_link`), and the walk done
    again knowing it, to stop where it would have with it known from the start (count, head
    hash and marks as of that link). `result` holds the count and head hash of what
    verified, and both at each position of `marks`."""
    _walk_links(conn, kind, result, progress, marks, invariants, _NONE)
    if result.problem is None and _links(conn) == result.count:
        return
    orphan = _first_orphan_link(conn, kind)
    if orphan < (_NONE if result.problem is None else result.problem.position):
        result.problem, result.marks = None, {}
        _walk_links(conn, kind, result, None, marks, None, orphan)


def _walk_links(
    conn: sa.Connection,
    kind: str,
    result: VerifyResult,
    progress: Callable[[int], None] | None,
    marks: frozenset[int],
    invariants: _Invariants | None,
    orphan: int,
) -> None:
    """The walk: each event is hashed from its raw values (stream id bytes, topic UTF-8,
    state) and its link checked, stopping at the first problem, or at the first event past
    `orphan` (a link without its event); the events `invariants` reads are handed to it a
    page at a time."""
    to_bytes = _stream_bytes(kind)
    # Topics as their UTF-8, read so by the database: those the invariants read.
    wanted = invariants.rules if invariants is not None else {}
    deleted = ChainProblem(orphan, "deleted", "a link without its event: the event was deleted")
    previous, count = GENESIS, 0
    # `content_hash_of` and `chain_hash`, inlined: two calls per event were a tenth of it.
    sha256, header = hashlib.sha256, CONTENT_HEADER.pack
    # A page of rows at a time: a generator's step per row costs as much as a check.
    pages = _linked_pages(conn, kind)
    try:
        for rows in pages:
            passing: list[Seen] = []  # the page's events the invariants read, for them at once
            for position, stream, version, topic, state, linked, chained in rows:
                if position > orphan or linked is None:
                    result.problem = (
                        deleted
                        if position > orphan
                        else ChainProblem(
                            position,
                            "inserted",
                            "an event without a link: it was added outside the ledger",
                        )
                    )
                    return
                if stream.__class__ is not bytes:
                    stream = to_bytes(stream)
                if state.__class__ is not bytes or topic.__class__ is not bytes:
                    topic, state = _as_bytes(topic), _as_bytes(state)
                content = sha256(header(stream, version, len(topic)) + topic + state).digest()
                if content != linked:
                    result.problem = _moved_or_altered(conn, position, content)
                    return
                expected = sha256(previous + position.to_bytes(8, "big") + content).digest()
                if expected != chained:
                    result.problem = ChainProblem(
                        position,
                        "link_altered",
                        "the link does not follow from the one before: the chain was edited",
                    )
                    return
                previous = expected
                count += 1
                if topic in wanted:
                    passing.append((position, stream, topic, state))
                if position in marks:
                    result.marks[position] = (count, expected.hex())
                if progress is not None and count % BATCH == 0:
                    progress(BATCH)
            if passing:
                assert invariants is not None
                invariants.see(passing)
        if orphan < _NONE:
            result.problem = deleted
    finally:
        pages.close()  # on PostgreSQL, stops the thread that reads ahead (`_pages`)
        result.count, result.head_hash = count, previous.hex()


def _stream_bytes(kind: str) -> Callable[[Any], bytes]:
    """A stream id as its 16 bytes: PostgreSQL sends them (`uuid_send`); SQLite keeps the
    hex text eventsourcing writes, or whatever a hand edit left (read as a UUID if it can be)."""
    if kind == "postgresql":
        return bytes

    def from_text(stream: Any) -> bytes:
        try:
            return bytes.fromhex(stream)
        except (TypeError, ValueError):
            return UUID(str(stream)).bytes

    return from_text


def _as_bytes(value: Any) -> bytes:
    """SQLite keeps whatever type a hand edit wrote: text is an altered blob too (and a
    topic is read as its UTF-8 bytes, as the hash takes it)."""
    if isinstance(value, str):
        return value.encode()
    return value if isinstance(value, bytes) else str(value).encode()


def _moved_or_altered(conn: sa.Connection, position: int, content: bytes) -> ChainProblem:
    recorded_at = conn.execute(
        sa.text(f"SELECT position FROM {CHAIN_TABLE} WHERE content_hash = :h"), {"h": content}
    ).scalar()
    if recorded_at is not None and recorded_at != position:
        return ChainProblem(
            position,
            "reordered",
            f"this event was recorded at position {recorded_at}: events were reordered",
        )
    return ChainProblem(
        position, "altered", "the event's content differs from what was recorded: it was edited"
    )


_NONE = 2**63  # past every position: no link without its event
Row = tuple[Any, ...]  # a row as the driver gives it


def _linked_pages(conn: sa.Connection, kind: str) -> Generator[list[Row], None, None]:
    """(position, stream id, version, topic, state, content hash, chain hash) of every event
    with its link (NULL hashes without one), in position order, a page of rows at a time:
    one ordered read of each table, merged by the database. The topic comes as its UTF-8
    bytes, as the content hash takes it."""
    if kind == "postgresql":
        query = (
            "SELECT e.notification_id, uuid_send(e.originator_id), e.originator_version, "
            "convert_to(e.topic, 'UTF8'), e.state, c.content_hash, c.chain_hash "
            f"FROM {POSTGRES_EVENTS_TABLE} e "
            f"LEFT JOIN {CHAIN_TABLE} c ON c.position = e.notification_id "
            "ORDER BY e.notification_id"
        )
    else:
        query = (
            "SELECT e.rowid, e.originator_id, e.originator_version, CAST(e.topic AS BLOB), "
            "e.state, "
            f"c.content_hash, c.chain_hash FROM {SQLITE_EVENTS_TABLE} e "
            f"LEFT JOIN {CHAIN_TABLE} c ON c.position = e.rowid ORDER BY e.rowid"
        )
    return _pages(conn, kind, query, "verify_events")


def _links(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {CHAIN_TABLE}")).scalar_one())


def _first_orphan_link(conn: sa.Connection, kind: str) -> int:
    """The first position whose link has no event (`_NONE` when every link has one)."""
    events, position = (
        (POSTGRES_EVENTS_TABLE, "notification_id")
        if kind == "postgresql"
        else (SQLITE_EVENTS_TABLE, "rowid")
    )
    found = conn.execute(
        sa.text(
            f"SELECT min(c.position) FROM {CHAIN_TABLE} c WHERE NOT EXISTS "
            f"(SELECT 1 FROM {events} e WHERE e.{position} = c.position)"
        )
    ).scalar()
    return _NONE if found is None else int(found)


def _pages(
    conn: sa.Connection, kind: str, query: str, name: str, params: tuple[Any, ...] = ()
) -> Generator[list[Row], None, None]:
    """Every row of `query` in constant memory, straight from the driver (no SQLAlchemy rows),
    STREAM_ROWS at a time: on PostgreSQL from a server-side cursor, in binary (bytea as it is,
    not hex text to decode), the next page fetched while this one is walked (`_prefetched`);
    SQLite's cursor steps through the table as it is read."""
    raw: Any = conn.connection.driver_connection
    if kind == "postgresql":
        with raw.cursor(name=name, binary=True) as cursor:
            cursor.execute(query, params or None)
            yield from _prefetched(cursor.fetchmany)
        return
    cursor = raw.cursor()
    try:
        cursor.execute(query, params)
        while rows := cursor.fetchmany(STREAM_ROWS):
            yield rows
    finally:
        cursor.close()


def _prefetched(fetch: Callable[[int], list[Row]]) -> Generator[list[Row], None, None]:
    """The pages `fetch` gives, each next one fetched by a thread while the caller walks the
    one before: the server reads and sends a page while the client hashes the last (waiting
    on the socket holds no GIL), where one after the other each would wait for the other. A
    page at most waits to be walked: memory stays a few pages."""
    pages: queue.Queue[list[Row] | BaseException] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def fetching() -> None:
        try:
            while not stop.is_set():
                rows = fetch(STREAM_ROWS)
                pages.put(rows)
                if not rows:
                    return
        except BaseException as error:  # raised again by the reader, in its thread
            pages.put(error)

    thread = threading.Thread(target=fetching, name="verify-prefetch", daemon=True)
    thread.start()
    try:
        while page := pages.get():
            if isinstance(page, BaseException):
                raise page
            yield page
    finally:
        stop.set()
        while thread.is_alive():  # a page it waits to hand over is taken and dropped
            with contextlib.suppress(queue.Empty):
                pages.get(timeout=0.01)
        thread.join()


# -- invariants -------------------------------------------------------------------------------


def check_invariants(ledger: Ledger) -> list[str]:
    """The domain's invariants (`_Invariants`) over the events of their topics alone, without
    the chain: one streamed read of those events, in position order, as the walk reads them
    (through the driver, stream ids and topics as bytes)."""
    invariants = _Invariants(ledger.store.mapper)
    kind = ledger.config.kind
    to_bytes = _stream_bytes(kind)
    engine = engine_for(ledger.config)
    try:
        with (
            engine.connect() as conn,
            collector_paused(),
            contextlib.closing(_topic_pages(conn, kind, sorted(invariants.topics))) as pages,
        ):
            for rows in pages:
                invariants.see(
                    [
                        (
                            position,
                            stream if stream.__class__ is bytes else to_bytes(stream),
                            topic,
                            state,
                        )
                        for position, stream, topic, state in rows
                    ]
                )
                if invariants.done:
                    break
    finally:
        engine.dispose()
    return invariants.problems()


def _topic_pages(
    conn: sa.Connection, kind: str, topics: list[str]
) -> Generator[list[Row], None, None]:
    """(position, stream id, topic's UTF-8, state) of the events of `topics`, in position
    order, a page at a time (`_pages`)."""
    if kind == "postgresql":
        query = (
            "SELECT notification_id, uuid_send(originator_id), convert_to(topic, 'UTF8'), state "
            f"FROM {POSTGRES_EVENTS_TABLE} WHERE topic = ANY(%s) ORDER BY notification_id"
        )
        return _pages(conn, kind, query, "invariant_events", (topics,))
    marks = ", ".join("?" * len(topics))
    query = (
        "SELECT rowid, originator_id, CAST(topic AS BLOB), state "
        f"FROM {SQLITE_EVENTS_TABLE} WHERE topic IN ({marks}) ORDER BY rowid"
    )
    return _pages(conn, kind, query, "invariant_events", tuple(topics))


Key = tuple[bytes, str, str]  # location stream id, device, currency
Seen = tuple[int, bytes, bytes, bytes]  # position, stream id, topic's UTF-8, state
Rule = Callable[["_Invariants", bytes, dict[str, Any]], None]


class _Invariants:
    """The domain's rules, from the events alone: the stored totals the locations keep (count
    and amount per location, device and currency) equal those of the payments confirmed
    offline and not yet forwarded, declined or canceled; no payment forwarded twice (a second
    PaymentIntent is a DuplicateForwardDetected event, never a second Forwarded; the late
    report of a forward a capture implied only fixes its moment); no capture above the amount
    authorized.

    Fed the stored events of `topics` in log order (`see`), a page at a time, it reads each
    one's fields as `ledger.fields` does, never a domain event: where no cipher or compressor
    stands before the JSON, by orjson alone in its own loop (an event stored at an earlier
    version of its class through the class's upcasters, `ledger.fields.FieldReader`)."""

    def __init__(self, mapper: Any) -> None:
        self.read = FieldReader(mapper)
        self.plain = not (mapper.cipher or mapper.compressor)  # the state is the JSON
        self.done = False  # once a state cannot be read, or enough problems were found
        self.found: list[str] = []
        self.unreadable: Unreadable | None = None
        self.payments: dict[bytes, tuple[str, Key, int]] = {}  # stream -> offline_id, key, amount
        self.stored_payments: set[bytes] = set()  # streams
        self.stored_at_locations: dict[str, tuple[Key, int]] = {}  # offline_id -> key, amount
        self.forwarded: set[bytes] = set()
        self.locations: dict[str, bytes] = {}  # location id -> its stream id
        by_class: dict[type[Any], Rule] = {
            Payment.Created: _Invariants._created,
            Location.PaymentStored: _Invariants._stored_at_location,
            Location.PaymentReleased: _Invariants._released_at_location,
            Payment.ConfirmedOffline: _Invariants._confirmed_offline,
            Payment.Captured: _Invariants._captured,
            Payment.Forwarded: _Invariants._forwarded,
            Payment.Declined: _Invariants._ended,
            Payment.Canceled: _Invariants._ended,
        }
        # By the topic's UTF-8, as the walk reads it.
        self.rules: dict[bytes, Rule] = {c.TOPIC.encode(): rule for c, rule in by_class.items()}
        self.topics = frozenset(c.TOPIC for c in by_class)
        # The topics whose class has upcasters: a state of an earlier version goes through them.
        self.versions = {
            c.TOPIC.encode(): version
            for c in by_class
            if (version := getattr(c, "class_version", 1)) > 1
        }

    def see(self, seen: Iterable[Seen]) -> None:
        if self.done:
            return
        rules, versions, loads = self.rules, self.versions, orjson.loads
        read = None if self.plain else self.read
        position = 0
        try:
            # `position` names the unreadable event in the except clause below.
            for position, stream, topic, state in seen:  # noqa: B007
                if read is not None:
                    fields = read(topic.decode(), state)
                else:
                    fields = loads(state)
                    if topic in versions and fields.get("class_version", 1) < versions[topic]:
                        fields = self.read(topic.decode(), state)
                rules[topic](self, stream, fields)
        except ValueError as error:  # a wrong or missing cipher key, or an edit
            self.unreadable = Unreadable(position, error.__cause__ or error)
            self.done = True

    def problems(self) -> list[str]:
        if self.unreadable is not None:
            return [str(self.unreadable)]
        if self.done:
            return self.found
        by_payments = _totals(self.payments[s][1:] for s in self.stored_payments)
        by_locations = _totals(self.stored_at_locations.values())
        return self.found + [
            f"stored at location stream {key[0].hex()}, device {key[1]}, {key[2]}: "
            f"the location counts {by_locations.get(key, (0, 0))} (count, "
            f"amount), its payments {by_payments.get(key, (0, 0))}"
            for key in sorted(by_payments.keys() | by_locations.keys())
            if by_payments.get(key) != by_locations.get(key)
        ]

    def _created(self, stream: bytes, fields: dict[str, Any]) -> None:
        location = self.locations.get(fields["location_id"])
        if location is None:  # a stream id is a SHA-1 away: once per location
            location = self.locations[fields["location_id"]] = identity.location_id(
                fields["location_id"]
            ).bytes
        key = (location, fields["device_id"], fields["currency"])
        self.payments[stream] = (fields["offline_id"], key, fields["amount"])

    def _stored_at_location(self, stream: bytes, fields: dict[str, Any]) -> None:
        key = (stream, fields["device_id"], fields["currency"])
        self.stored_at_locations[fields["offline_id"]] = (key, fields["amount"])

    def _released_at_location(self, stream: bytes, fields: dict[str, Any]) -> None:
        self.stored_at_locations.pop(fields["offline_id"], None)

    def _confirmed_offline(self, stream: bytes, fields: dict[str, Any]) -> None:
        if not fields["reported_late"]:  # a late report stores nothing new
            self.stored_payments.add(stream)

    def _captured(self, stream: bytes, fields: dict[str, Any]) -> None:
        offline_id, _, authorized = self.payments[stream]
        if fields["amount_captured"] > authorized:
            self._found(
                f"payment {offline_id}: {fields['amount_captured']} captured, "
                f"{authorized} authorized"
            )

    def _forwarded(self, stream: bytes, fields: dict[str, Any]) -> None:
        self._ended(stream, fields)
        if fields["reported_late"]:
            return
        if stream in self.forwarded:
            self._found(
                f"payment {self.payments[stream][0]} was forwarded twice "
                "without a DuplicateForwardDetected"
            )
        self.forwarded.add(stream)

    def _ended(self, stream: bytes, fields: dict[str, Any]) -> None:
        self.stored_payments.discard(stream)

    def _found(self, problem: str) -> None:
        if len(self.found) < INVARIANT_PROBLEMS_MAX:
            self.found.append(problem)
        self.done = len(self.found) >= INVARIANT_PROBLEMS_MAX


def _totals(stored: Iterable[tuple[Key, int]]) -> dict[Key, tuple[int, int]]:
    totals: dict[Key, tuple[int, int]] = {}
    for key, amount in stored:
        count, total = totals.get(key, (0, 0))
        totals[key] = (count + 1, total + amount)
    return totals


class Unreadable(Exception):
    def __init__(self, position: int, error: BaseException) -> None:
        super().__init__(
            f"the event at position {position} cannot be read: "
            f"{type(error).__name__} (a wrong or missing cipher key, or an edit)"
        )


# -- point in time ----------------------------------------------------------------------------


@dataclass
class LedgerAsOf:
    """The whole ledger as it was recorded at a moment."""

    at: datetime
    events: int
    # status -> currency -> (count, amount in minor units)
    payments_by_status: dict[str, dict[str, tuple[int, int]]]
    locations: list[LocationStatus]


def payment_as_of(ledger: Ledger, offline_id: str, at: datetime) -> PaymentState | None:
    """The payment as the ledger knew it at `at` (events recorded up to then), or None."""
    stream = identity.payment_id(UUID(offline_id))
    payment = _project(ledger, stream, at)
    return None if payment is None else PaymentState.of(payment)


def location_as_of(ledger: Ledger, location_id: str, at: datetime) -> LocationStatus | None:
    location = _project(ledger, identity.location_id(location_id), at)
    if location is None:
        return None
    return LocationStatus.of(location, list(location.device_stored_counts))


def ledger_as_of(ledger: Ledger, at: datetime) -> LedgerAsOf:
    """Every stream replayed up to `at`: payments by status, and each location's status."""
    aggregates: dict[UUID, Any] = {}
    events = 0
    start: int | None = None
    while page := ledger.store.recorder.select_notifications(
        start=start, limit=BATCH, inclusive_of_start=False
    ):
        for notification in page:
            event: Any = ledger.decode(notification)
            if event.timestamp > at:
                continue
            aggregates[event.originator_id] = event.mutate(aggregates.get(event.originator_id))
            events += 1
        start = page[-1].id
    by_status: dict[str, dict[str, tuple[int, int]]] = {}
    for aggregate in aggregates.values():
        if isinstance(aggregate, Payment):
            currencies = by_status.setdefault(str(aggregate.status), {})
            count, amount = currencies.get(aggregate.currency, (0, 0))
            currencies[aggregate.currency] = (count + 1, amount + aggregate.amount)
    locations = sorted(
        (
            LocationStatus.of(a, list(a.device_stored_counts))
            for a in aggregates.values()
            if isinstance(a, Location)
        ),
        key=lambda status: status.location_id,
    )
    return LedgerAsOf(at, events, by_status, locations)


def _project(ledger: Ledger, stream: UUID, at: datetime) -> Any:
    aggregate = None
    events: Any = ledger.store.events.get(stream)
    for event in events:
        if event.timestamp > at:
            break
        aggregate = event.mutate(aggregate)
    return aggregate
