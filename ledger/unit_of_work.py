"""Loading, caching and saving aggregates for a batch of records.

A batch touches many streams; loading them one query at a time would cost a round trip each.
Instead the unit of work asks the store for the latest version of every stream the batch needs
in one query, reuses aggregates it still holds at that version (a bounded LRU cache kept between
batches), loads only the rest, and saves every new event of the batch in one transaction, in the
order the events happened (`ledger.journal`). A writing unit may skip the question for the
aggregates the cache holds (`optimistic`). The event store's primary key (stream, version) is
the concurrency control, and the save also checks that the streams the batch only read are still
at the versions it read: if another writer moved any of them, the whole batch fails with
IntegrityError, its aggregates are evicted and the caller runs the batch again on fresh state.

A live record may also presume that the streams it would create (a new payment's) are absent
without asking (`presume_absent`): if one exists after all, creating it takes a version that is
taken, a stream only read is checked at version 0, and a unit that writes nothing asks after
the commit; each refuses the unit (IntegrityError) and the caller decides again on loaded state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from ledger import identity, journal
from ledger.errors import Code, NotFound
from ledger.storage import VersionReader

if TYPE_CHECKING:
    from ledger.event_store import EventStore, PreparedWrite
    from ledger.location import Location
    from ledger.payment import Payment

# Aggregates kept between batches: bounds the memory of a long ingest. A million-line day held
# 505 MiB at 50,000 (over its 500 MB budget) and 432 MiB at 30,000, and ran faster: the
# collector's full passes walk every aggregate held.
CACHE_SIZE_MAX = 30_000


class AggregateCache:
    """Keyed by the streams' ids as integers (`UUID.int`): a `UUID`'s hash and equality are
    Python code, an `int`'s are not, and a batch looks its streams up several times a record."""

    def __init__(self, size_max: int = CACHE_SIZE_MAX) -> None:
        assert size_max > 0
        self.size_max = size_max
        self._items: OrderedDict[int, Aggregate] = OrderedDict()

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        key = aggregate_id.int
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    @property
    def peek(self) -> Callable[[int], Aggregate | None]:
        """The aggregate of an id's integer, or None, left where it is in the order: the
        dict's own `get`, a call with no Python frame."""
        return self._items.get

    def keep(self, aggregates: dict[int, Aggregate | None]) -> None:
        """Hold `aggregates` (by their ids' integers, None for an absent stream) as the most
        recently used, in their order; keyed as given, without reading each one's `id` (a
        property, a Python call)."""
        items = self._items
        for key, aggregate in aggregates.items():
            if aggregate is not None:
                items[key] = aggregate
                items.move_to_end(key)
        while len(items) > self.size_max:
            items.popitem(last=False)

    def evict(self, keys: Iterable[int]) -> None:
        """Forget the streams whose ids' integers are `keys`."""
        for key in keys:
            self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


class UnitOfWork:
    """`optimistic`: take what the cache holds without asking the store for its version (a
    round trip saved on every live record); the commit then has the store refuse the write
    if any stream it read has moved on since (`EventStore.save`'s `unchanged`), and the
    caller's retry (`ledger.retry`) runs it again on fresh state. Only for units that commit:
    a read alone has no commit to check it, so it always asks."""

    def __init__(
        self,
        app: EventStore,
        cache: AggregateCache,
        versions: VersionReader,
        *,
        optimistic: bool = False,
    ) -> None:
        self.app = app
        self.cache = cache
        self.versions = versions
        self.optimistic = optimistic
        # Keyed by the streams' ids as integers, as the cache is (`AggregateCache`).
        self.loaded: dict[int, Aggregate | None] = {}
        self.presumed: dict[int, UUID] = {}  # streams taken as absent without asking
        self.journal: list[journal.PendingEvent] = []  # the new events in the order they happened

    def recording(self) -> AbstractContextManager[None]:
        """Note the order of the events made inside: the commit saves them in that order."""
        return journal.recording(self.journal)

    def prefetch(self, aggregate_ids: Iterable[UUID]) -> None:
        self.prefetch_keyed({i.int: i for i in aggregate_ids})

    def prefetch_keyed(self, wanted: dict[int, UUID]) -> None:
        """`prefetch` of the ids in `wanted`, keyed by their integers (`AggregateCache`); the
        dict is the unit's to change."""
        loaded = self.loaded
        for key in [k for k in wanted if k in loaded]:
            del wanted[key]
        if self.optimistic:
            # Read without moving each to the end: `stage` keeps every loaded stream as the
            # most recently used, in the unit's order, before the cache next evicts any.
            peek = self.cache.peek
            for key in list(wanted):
                cached = peek(key)
                if cached is not None:
                    loaded[key] = cached
                    del wanted[key]
        if not wanted:
            return
        latest = {i.int: version for i, version in self.versions(wanted.values()).items()}
        for key, aggregate_id in wanted.items():
            version = latest.get(key)
            if version is None:
                loaded[key] = None
                continue
            cached = self.cache.get(aggregate_id)
            if cached is not None and cached.version == version:
                loaded[key] = cached
            else:
                loaded[key] = self._load(aggregate_id)

    def presume_absent(self, aggregate_ids: Iterable[UUID]) -> None:
        """Take the streams the cache does not hold as absent, without asking the store (a
        round trip saved when a record creates them, the common case); `commit` refuses the
        unit if one exists after all. Only for units that commit, on a store that checks the
        streams a write read (`EventStore.save`'s `unchanged`)."""
        for aggregate_id in aggregate_ids:
            key = aggregate_id.int
            if key in self.loaded:
                continue
            cached = self.cache.get(aggregate_id)
            self.loaded[key] = cached
            if cached is None:
                self.presumed[key] = aggregate_id

    def _load(self, aggregate_id: UUID) -> Aggregate:
        try:
            aggregate: Aggregate = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:  # pragma: no cover - the version query just saw it
            raise AssertionError(f"stream {aggregate_id} vanished") from None
        return aggregate

    def get(self, aggregate_id: UUID) -> Any:
        # One lookup, by the id's integer (a UUID's hash is Python code): a batch asks for
        # loaded streams several times a record.
        try:
            return self.loaded[aggregate_id.int]
        except KeyError:
            self.prefetch([aggregate_id])
            return self.loaded[aggregate_id.int]

    def add(self, aggregate: Aggregate) -> None:
        key = aggregate.id.int  # a property: read once
        assert self.loaded.get(key) is None, aggregate.id
        self.loaded[key] = aggregate

    def pending_count(self) -> int:
        return sum(len(a.pending_events) for a in self.loaded.values() if a is not None)

    def commit(self) -> int:
        """Save every pending event in one transaction; return how many were saved.

        Streams presumed absent and still absent are checked: at version 0 with the streams
        read, or, when nothing is written, by asking for their versions after all."""
        staged = self.stage()
        staged.commit()
        return staged.count

    def stage(self) -> Staged:
        """Everything of `commit` but the write itself (`Staged.write`): the pending events
        encoded, and the unit's aggregates kept in the cache as though written, so that the
        next unit can be decided on them while this one's write runs; if the write fails,
        `Staged.undo` evicts them (and whatever the next unit decided on them must go too)."""
        # Each aggregate's pending events read once: a property, a Python call each time.
        changed: list[Aggregate] = []
        pending: list[journal.PendingEvent] = []
        read: list[tuple[UUID, int]] = []
        for a in self.loaded.values():
            if a is None:
                continue
            events = a.pending_events
            if events:
                changed.append(a)
                pending += events
            else:
                read.append((a.id, a.version))
        # Only what this unit changed is evicted when it presumed streams absent: the streams
        # it read are as the cache held them, and the next attempt's commit checks them again.
        touched = [a.id.int for a in changed] if self.presumed else list(self.loaded)
        absent = [i for key, i in self.presumed.items() if self.loaded[key] is None]
        prepared: PreparedWrite | None = None
        if changed:
            read += [(aggregate_id, 0) for aggregate_id in absent]
            try:
                order = journal.in_journal_order(self.journal, pending)
                prepared = self.app.prepare(*changed, unchanged=read, order=order)
            except BaseException:
                self._forget(touched)
                raise
        elif absent and self.versions(absent):
            self._forget(())
            raise IntegrityError("a stream presumed absent exists: decide again on its state")
        self.cache.keep(self.loaded)
        self.journal.clear()
        # Keeping at most the cache's bound evicts only older streams, never this unit's.
        held = len(self.loaded) <= self.cache.size_max
        return Staged(self.app, self.cache, prepared, touched, len(pending), held)

    def discard(self) -> None:
        """Forget everything this batch touched: its in-memory state may not match the store."""
        self._forget(self.loaded)

    def _forget(self, evicted: Iterable[int]) -> None:
        self.cache.evict(evicted)
        self.loaded.clear()
        self.presumed.clear()
        self.journal.clear()


@dataclass(frozen=True)
class Staged:
    """A unit's write, encoded and ready (`UnitOfWork.stage`), its aggregates already in the
    cache."""

    store: EventStore
    cache: AggregateCache
    prepared: PreparedWrite | None  # None: nothing to write
    touched: list[int]  # the streams (ids' integers) evicted if the write fails
    count: int  # events written
    # Whether the cache still holds every stream of the unit: if not, a unit decided before
    # this write lands would read some of them from the store as they were before it.
    held: bool

    def commit(self) -> None:
        """`write`, and `undo` if it fails."""
        try:
            self.write()
        except BaseException as error:
            self.undo(error)
            raise

    def write(self) -> None:
        """The database's part alone: another thread may run it while this one decides the
        next unit."""
        if self.prepared is not None:
            self.store.write(self.prepared)

    def undo(self, error: BaseException) -> None:
        """After `write` raised `error`: the unit's streams evicted, since the cache holds them
        as though written; after a refusal, a cipher key rotation recorded meanwhile taken."""
        self.cache.evict(self.touched)
        if self.prepared is not None and isinstance(error, IntegrityError):
            self.store.refused(self.prepared)

    def forget(self) -> None:
        """The unit's streams evicted without a write: what was decided on a write that failed
        goes with it."""
        self.cache.evict(self.touched)


# `require_location`'s and `require_payment`'s answer for a stream the unit has not loaded.
_UNLOADED: Any = object()


def require_location(uow: UnitOfWork, location_id: str) -> Location:
    """The location, or the refusal every record and reservation gives for an unknown one.
    Read from the unit's map, as `get` reads it, without `get`'s frame: a batch loads every
    record's streams before deciding it, and this is asked several times a payment."""
    stream = identity.location_id(location_id)
    found = uow.loaded.get(stream.int, _UNLOADED)
    location: Location | None = uow.get(stream) if found is _UNLOADED else found
    if location is None:
        raise NotFound(
            Code.UNKNOWN_LOCATION,
            f"location {location_id} is unknown: record location.configured for it first",
            field="location_id",
        )
    return location


def require_payment(uow: UnitOfWork, offline_id: UUID) -> Payment:
    """The payment, or the refusal every step of an unknown payment gets (read as
    `require_location` reads it)."""
    stream = identity.payment_id(offline_id)
    found = uow.loaded.get(stream.int, _UNLOADED)
    payment: Payment | None = uow.get(stream) if found is _UNLOADED else found
    if payment is None:
        raise NotFound(
            Code.UNKNOWN_PAYMENT,
            f"payment {offline_id} is unknown: record payment.created for it first",
            field="offline_id",
        )
    return payment
