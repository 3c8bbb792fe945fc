"""The eventsourcing application that holds every stream of the ledger, with the few places
where it departs from the library's own `Application` (each says what it saves and why)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic

import ledger.topics  # noqa: F401  (the stored topics of every aggregate resolve from here on)
from ledger.device import Device
from ledger.identity import cipher_keys_id
from ledger.journal import PendingEvent
from ledger.location import INDEX, Location
from ledger.storage import EVENT_STORE_NAME, SnapshotsFolder, StoredColumns
from ledger.transcoder import OrjsonTranscoder

if TYPE_CHECKING:
    from ledger.cipher import CipherKeys, KeyringCipher


class EventStore(Application[UUID]):
    """The eventsourcing application holding every stream of the ledger."""

    name = EVENT_STORE_NAME
    # Location and device streams grow with every payment; payments stay short. The least
    # number of events between two snapshots of a stream (`snapshot_due`).
    snapshotting_intervals = {Location: 500, Device: 200}  # noqa: RUF012

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env=env)
        cipher = self.mapper.cipher
        self._keyring: KeyringCipher | None = None
        if cipher is not None:  # the library resolved its topic: `ledger.cipher` is loaded
            from ledger.cipher import KeyringCipher

            self._keyring = cipher if isinstance(cipher, KeyringCipher) else None
        # The version of the rotations' stream the cipher's last check read (None: no check
        # yet, or no keyring). Every write then asks the store to refuse it if that stream
        # has moved on, as for any stream the write read: a rotation recorded by another
        # process since is learnt at the next write, not at the next restart.
        self._rotations_read: int | None = None
        if self._keyring is not None:
            self._keyring.retired_ids = self._retired_cipher_keys
        # Whether the recorder writes a batch's snapshots in the batch's own transaction.
        self._snapshots_folded = False
        if self.snapshots is not None and isinstance(self.recorder, SnapshotsFolder):
            table = getattr(self.snapshots.recorder, "events_table_name", None)
            if isinstance(table, str):
                self.recorder.fold_snapshots_into(table)
                self._snapshots_folded = True

    def _retired_cipher_keys(self) -> frozenset[str]:
        """The key ids the ledger's rotations retired (`ledger.cipher.CipherKeys`). A rotation
        encrypted with a key this keyring lacks retired this keyring's current key too."""
        from ledger.cipher import UnknownCipherKey

        assert self._keyring is not None
        try:
            keys: CipherKeys = self.repository.get(cipher_keys_id())
        except AggregateNotFoundError:
            self._rotations_read = 0
            return frozenset()
        except MapperDeserialisationError as error:
            if isinstance(error.__cause__, UnknownCipherKey):
                return frozenset({self._keyring.current_id})
            raise
        self._rotations_read = keys.version
        return frozenset(keys.retired)

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def prepare(
        self,
        *aggregates: object,
        unchanged: Sequence[tuple[UUID, int]] = (),
        order: Sequence[PendingEvent] | None = None,
    ) -> PreparedWrite:
        """The aggregates' pending events collected and encoded, with the snapshots they make
        due, ready to `write`: the library's `Application.save` but the database's part, which
        needs nothing more of the aggregates (the next batch may change them meanwhile), and
        less what costs time and serves nobody here: a runtime Protocol check of every saved
        object (about 40 us each on Python 3.11) and a Recording object per event for
        in-process subscribers (there are none; projections read the log).

        `unchanged`: streams the write read without writing, at the versions it read; the
        SQLite and PostgreSQL recorders refuse the write (IntegrityError) if one has moved
        on. The in-memory store has one writer, whose cache cannot be behind.

        `order`: the aggregates' pending events in the order they are to be logged (the
        order they happened, `ledger.journal`); by default aggregate after aggregate."""
        events: list[Any] = []
        # Each saved aggregate with its first new version; the saved streams' ids as integers
        # (a UUID's hash is Python code).
        first: list[tuple[Aggregate, int]] = []
        saved: set[int] = set()
        for aggregate in aggregates:
            assert isinstance(aggregate, Aggregate), aggregate
            saved.add(aggregate.id.int)
            collected = aggregate.collect_events()
            if collected:
                first.append((aggregate, collected[0].originator_version))
            events.extend(collected)
        if order is not None:
            assert len(order) == len(events), (len(order), len(events))
            events = list(order)
        stored = self._stored_events(events)
        snapshots = self._stored_events(self._snapshots_due(first))
        # Read after encrypting: the first write's check reads the rotations' stream.
        rotations = self._rotations_read
        if rotations is not None and cipher_keys_id().int not in saved:
            unchanged = [*unchanged, (cipher_keys_id(), rotations)]
        return PreparedWrite(stored, snapshots, unchanged, rotations)

    def write(self, prepared: PreparedWrite) -> None:
        """Store what `prepare` made, in one transaction (the snapshots in another after it
        when the recorder cannot fold them in): the database's part alone, which another
        thread may run while this one prepares the next write."""
        snapshots = prepared.snapshots
        folded = {"snapshots": snapshots} if snapshots and self._snapshots_folded else {}
        self.recorder.insert_events(prepared.events, unchanged=prepared.unchanged, **folded)
        if snapshots and not folded:
            assert self.snapshots is not None
            self.snapshots.recorder.insert_events(snapshots)

    def refused(self, prepared: PreparedWrite) -> None:
        """After the store refused `prepared` (IntegrityError): when a cipher key rotation was
        recorded since the write's check, the keyring takes it, so that the caller's retry
        writes with the new key."""
        rotations = prepared.rotations
        if rotations is not None and self._rotated_since(rotations):
            assert self._keyring is not None
            self._keyring.rotated()

    def _stored_events(self, events: Sequence[Any]) -> Sequence[StoredEvent]:
        mapper = self.mapper
        # The library's own mapper over this store's transcoder, which `stored_events` repeats.
        if type(mapper) is Mapper and isinstance(mapper.transcoder, OrjsonTranscoder):
            return stored_events(mapper, events)
        return [mapper.to_stored_event(event) for event in events]

    def _rotated_since(self, version: int) -> bool:
        return bool(self.recorder.select_events(cipher_keys_id(), gt=version, limit=1))

    def _snapshots_due(self, first: list[tuple[Aggregate, int]]) -> list[Any]:
        """A snapshot of each aggregate whose new events (from its version in `first` on) make
        it due (`snapshot_due`), from the object in hand, at its current version. The
        library's own way replays the stream from the store to rebuild the object first: on
        a busy location, 500 events read and decoded per snapshot, about a quarter of all
        events decoded during a long ingest.

        Taken before the events are written, so that a recorder that can (`SnapshotsFolder`)
        writes them in the events' own transaction: the library writes each in a transaction
        of its own after the events', a commit (and on PostgreSQL a wait for the server's
        flush) apiece, about a tenth of a PostgreSQL ingest's time. Either way a snapshot is
        never stored without the events it follows, and one lost is only rebuilt by replay."""
        if self.snapshots is None:
            return []
        intervals = self.snapshotting_intervals
        taken = []
        for aggregate, version in first:
            interval = intervals.get(type(aggregate))
            if interval is None or not snapshot_due(
                interval, snapshot_entries(aggregate), version - 1, aggregate.version
            ):
                continue
            snapshot_class = getattr(type(aggregate), "Snapshot", self.snapshot_class)
            assert snapshot_class is not None, type(aggregate)
            snapshot = snapshot_class.take(aggregate)
            snapshot.state.pop(INDEX, None)  # derived from the timeline, rebuilt on load
            taken.append(snapshot)
        return taken


@dataclasses.dataclass(frozen=True)
class PreparedWrite:
    """A save's stored events and snapshots and the streams it read (`EventStore.prepare`),
    with the version of the cipher keys' stream its encryption was checked against."""

    events: Sequence[StoredEvent]
    snapshots: Sequence[StoredEvent]
    unchanged: Sequence[tuple[UUID, int]]
    rotations: int | None


class _ClassTags(dict[type[Any], tuple[str, int]]):
    """An event class's topic, and the class version its stored state names (above 1 only);
    looked up on a class's first event."""

    def __missing__(self, cls: type[Any]) -> tuple[str, int]:
        tags = self[cls] = (get_topic(cls), getattr(cls, "class_version", 1))
        return tags


_CLASS_TAGS = _ClassTags()
_TOPIC, _CLASS_VERSION = itemgetter(0), itemgetter(1)  # of a class's tags
_ORIGINATOR_ID, _ORIGINATOR_VERSION = itemgetter("originator_id"), itemgetter("originator_version")
# An object's `__dict__`, as `vars` reads it less its argument's tuple: half its instructions.
_FIELDS_OF = attrgetter("__dict__")


def stored_events(mapper: Mapper[UUID], events: Sequence[object]) -> StoredColumns:
    """`[mapper.to_stored_event(event) for event in events]` (the library's mapper over an
    `OrjsonTranscoder`), the same stored events as columns (`StoredColumns`), less what it
    does again for every event: the topic and class version are looked up once per class,
    the mapper's parts once per batch, the states encoded together
    (`OrjsonTranscoder.encode_events`), and no `StoredEvent` is made: each column is read
    from the events' fields or tags by one `map`, in C."""
    transcoder, compressor, cipher = mapper.transcoder, mapper.compressor, mapper.cipher
    assert isinstance(transcoder, OrjsonTranscoder), transcoder
    tags = list(map(_CLASS_TAGS.__getitem__, map(type, events)))
    fields = list(map(_FIELDS_OF, events))
    states = transcoder.encode_events(fields, list(map(_CLASS_VERSION, tags)))
    if compressor:
        states = list(map(compressor.compress, states))
    if cipher:
        states = list(map(cipher.encrypt, states))
    return StoredColumns(
        list(map(_ORIGINATOR_ID, fields)),
        list(map(_ORIGINATOR_VERSION, fields)),
        list(map(_TOPIC, tags)),
        states,
    )


def snapshot_entries(aggregate: object) -> int:
    """How many entries a snapshot of `aggregate` holds beside its fixed fields: a location's
    timeline and holds grow with its busy days; the other streams stay small."""
    if type(aggregate) is Location:  # not `isinstance`: an ABC's check of a payment costs more
        return len(aggregate.timeline) + len(aggregate.holds)
    return 0


def snapshot_due(interval: int, entries: int, before: int, after: int) -> bool:
    """Whether a stream whose new events took it from version `before` to `after` is
    snapshotted at `after`, its state holding `entries` entries: when its version passed a
    multiple of its step, `interval` doubled until it is at least `entries`.

    A snapshot of a busy location holds its whole timeline: taken every `interval` events, the
    bytes written as snapshots would grow with the square of its events. A snapshot here holds
    at most twice its step's entries, and its stream moved on by at least a step since the
    last one taken at that step or a larger one (its entries can have grown since only by
    those events): the bytes written as snapshots stay within a constant factor of the
    events. The rule reads only versions and the state, never what was written before, so
    the same input always gives the same snapshots."""
    step = interval
    while step < entries:
        step *= 2
    return after // step > before // step
