"""Audit checks over the stored event log: the hash chain (`ledger.chain`) and the domain's
invariants, recomputed from the events alone.

`verify` walks the events and their links in position order and reports the first position
where an event was altered, deleted, inserted or moved, or where a link was edited. It cannot
see events removed from the very end together with their links: compare the head hash and
count it reports with ones noted earlier (an export's manifest keeps them).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import zip_longest
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import MapperDeserialisationError

from ledger import Ledger, identity
from ledger.chain import CHAIN_TABLE, GENESIS, chain_hash, content_hash_of
from ledger.location import Location
from ledger.payment import Payment
from ledger.storage import POSTGRES_EVENTS_TABLE, SQLITE_EVENTS_TABLE, engine_for
from ledger.views import LocationStatus, PaymentState

BATCH = 20_000  # events between two progress reports
STREAM_ROWS = 10_000  # rows a streamed read fetches at a time
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
    result = verify_chain(ledger, progress, marks)
    if result.problem is None:
        try:
            result.invariant_problems = check_invariants(ledger)
        except Unreadable as unreadable:
            result.invariant_problems = [str(unreadable)]
    return result


def verify_chain(
    ledger: Ledger, progress: Callable[[int], None] | None = None, marks: Collection[int] = ()
) -> VerifyResult:
    """The hash chain alone (no invariants), with the count and chain hash verified at each
    position of `marks` that the walk reached (`VerifyResult.marks`: what a seal is checked
    against, `adapters.seals`)."""
    result = VerifyResult()
    engine = engine_for(ledger.config)
    try:
        with engine.connect() as conn:
            _check_chain(conn, ledger.config.kind, result, progress, frozenset(marks))
    finally:
        engine.dispose()
    return result


def _check_chain(
    conn: sa.Connection,
    kind: str,
    result: VerifyResult,
    progress: Callable[[int], None] | None,
    marks: frozenset[int] = frozenset(),
) -> None:
    """One streamed pass over the events and their links side by side, in position order:
    each event is hashed from its raw values (stream id bytes, topic UTF-8, state) and its
    link checked, stopping at the first problem. `result` holds the count and head hash of
    what verified, and both at each position of `marks`."""
    to_bytes = _stream_bytes(kind)
    topics: dict[str, bytes] = {}
    previous, count = GENESIS, 0
    try:
        for event, chained in zip_longest(_events(conn, kind), _links(conn, kind)):
            if chained is None or (event is not None and event[0] < chained[0]):
                result.problem = ChainProblem(
                    event[0], "inserted", "an event without a link: it was added outside the ledger"
                )
                return
            if event is None or chained[0] < event[0]:
                result.problem = ChainProblem(
                    chained[0], "deleted", "a link without its event: the event was deleted"
                )
                return
            position, stream, version, topic, state = event
            topic_bytes = topics.get(topic) or topics.setdefault(topic, topic.encode())
            content = content_hash_of(to_bytes(stream), version, topic_bytes, _as_bytes(state))
            if content != chained[1]:
                result.problem = _moved_or_altered(conn, position, content)
                return
            expected = chain_hash(previous, position, content)
            if expected != chained[2]:
                result.problem = ChainProblem(
                    position,
                    "link_altered",
                    "the link does not follow from the one before: the chain was edited",
                )
                return
            previous, count = expected, count + 1
            if position in marks:
                result.marks[position] = (count, expected.hex())
            if progress is not None and count % BATCH == 0:
                progress(BATCH)
    finally:
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


def _as_bytes(state: Any) -> bytes:
    """SQLite keeps whatever type a hand edit wrote: text is an altered blob too."""
    return (
        state
        if type(state) is bytes
        else state.encode()
        if isinstance(state, str)
        else bytes(state)
    )


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


def _events(conn: sa.Connection, kind: str) -> Iterator[tuple[Any, ...]]:
    """(position, stream id, version, topic, state) of every event, in position order."""
    if kind == "postgresql":
        query = (
            "SELECT notification_id, uuid_send(originator_id), originator_version, topic, state "
            f"FROM {POSTGRES_EVENTS_TABLE} ORDER BY notification_id"
        )
    else:
        query = (
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {SQLITE_EVENTS_TABLE} ORDER BY rowid"
        )
    return _streamed(conn, kind, query, "verify_events")


def _links(conn: sa.Connection, kind: str) -> Iterator[tuple[Any, ...]]:
    """(position, content hash, chain hash) of every link, in position order."""
    query = f"SELECT position, content_hash, chain_hash FROM {CHAIN_TABLE} ORDER BY position"
    return _streamed(conn, kind, query, "verify_links")


def _streamed(conn: sa.Connection, kind: str, query: str, name: str) -> Iterator[tuple[Any, ...]]:
    """Every row of `query` in constant memory, straight from the driver (no SQLAlchemy rows):
    a server-side cursor on PostgreSQL, fetched STREAM_ROWS at a time; SQLite's cursor steps
    through the table as it is read."""
    raw: Any = conn.connection.driver_connection
    if kind == "postgresql":
        with raw.cursor(name=name) as cursor:
            cursor.itersize = STREAM_ROWS
            cursor.execute(query)
            yield from cursor
        return
    cursor = raw.cursor()
    try:
        cursor.execute(query)
        while rows := cursor.fetchmany(STREAM_ROWS):
            yield from rows
    finally:
        cursor.close()


# -- invariants -------------------------------------------------------------------------------

_TOPICS = tuple(
    event.TOPIC
    for event in (
        Payment.Created,
        Payment.ConfirmedOffline,
        Payment.Forwarded,
        Payment.Declined,
        Payment.Canceled,
        Payment.Captured,
        Location.PaymentStored,
        Location.PaymentReleased,
    )
)


def check_invariants(ledger: Ledger) -> list[str]:
    """The domain's rules, from the events alone: the stored totals the locations keep (count
    and amount per location, device and currency) equal those of the payments confirmed
    offline and not yet forwarded, declined or canceled; no payment forwarded twice (a second
    PaymentIntent is a DuplicateForwardDetected event, never a second Forwarded; the late
    report of a forward a capture implied only fixes its moment); no capture above the amount
    authorized."""
    problems: list[str] = []
    payments: dict[str, tuple[str, Key, int]] = {}  # stream -> offline_id, key, amount
    stored_payments: set[str] = set()  # streams
    stored_at_locations: dict[str, tuple[Key, int]] = {}  # offline_id -> key, amount
    forwarded: set[str] = set()
    for event in _decoded(ledger):
        stream = event.originator_id.hex
        if isinstance(event, Payment.Created):
            key = (identity.location_id(event.location_id).hex, event.device_id, event.currency)
            payments[stream] = (event.offline_id, key, event.amount)
        elif isinstance(event, Location.PaymentStored):
            stored_at_locations[event.offline_id] = (
                (stream, event.device_id, event.currency),
                event.amount,
            )
        elif isinstance(event, Location.PaymentReleased):
            stored_at_locations.pop(event.offline_id, None)
        elif isinstance(event, Payment.ConfirmedOffline):
            if not event.reported_late:  # a late report fixes a moment, stores nothing new
                stored_payments.add(stream)
        elif isinstance(event, Payment.Captured) and event.amount_captured > payments[stream][2]:
            problems.append(
                f"payment {payments[stream][0]}: {event.amount_captured} captured, "
                f"{payments[stream][2]} authorized"
            )
        elif isinstance(event, Payment.Forwarded | Payment.Declined | Payment.Canceled):
            stored_payments.discard(stream)
            if isinstance(event, Payment.Forwarded) and not event.reported_late:
                if stream in forwarded:
                    problems.append(
                        f"payment {payments[stream][0]} was forwarded twice "
                        "without a DuplicateForwardDetected"
                    )
                forwarded.add(stream)
        if len(problems) >= INVARIANT_PROBLEMS_MAX:
            return problems
    by_payments = _totals(payments[s][1:] for s in stored_payments)
    by_locations = _totals(stored_at_locations.values())
    for key in sorted(by_payments.keys() | by_locations.keys()):
        if by_payments.get(key) != by_locations.get(key):
            problems.append(
                f"stored at location stream {key[0]}, device {key[1]}, {key[2]}: "
                f"the location counts {by_locations.get(key, (0, 0))} (count, "
                f"amount), its payments {by_payments.get(key, (0, 0))}"
            )
    return problems


Key = tuple[str, str, str]  # location stream, device, currency


def _totals(stored: Iterable[tuple[Key, int]]) -> dict[Key, tuple[int, int]]:
    totals: dict[Key, tuple[int, int]] = {}
    for key, amount in stored:
        count, total = totals.get(key, (0, 0))
        totals[key] = (count + 1, total + amount)
    return totals


def _decoded(ledger: Ledger) -> Iterator[Any]:
    start: int | None = None
    while page := ledger.store.recorder.select_notifications(
        start=start, limit=BATCH, topics=_TOPICS, inclusive_of_start=False
    ):
        for notification in page:
            try:
                yield ledger.store.mapper.to_domain_event(notification)
            except (MapperDeserialisationError, ValueError) as error:
                raise Unreadable(notification.id, error) from None
        start = page[-1].id


class Unreadable(Exception):
    def __init__(self, position: int, error: Exception) -> None:
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
