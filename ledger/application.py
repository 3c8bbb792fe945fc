"""The library API a POS backend imports: `Ledger`.

    from ledger import Ledger
    with Ledger.open("sqlite:///offline-ledger.db") as ledger:
        ledger.record({"type": "payment.confirmed_offline", ...})   # -> Result, or raises
        ledger.decide(amount=1250, currency="usd", device_id="tmr_1", location_id="tml_1")

Records are applied in batches: every record of a batch is checked against the state left by
the records before it, and all the batch's events are saved in one transaction. A refused record
stores nothing and the others go on. When another writer moved a stream the batch saved (the
event store's optimistic concurrency), the batch runs again on fresh state; under persistent
contention each record runs in a transaction of its own.

What only some methods use (the wire records' models, the handlers that apply them, the
aggregates other than locations and devices, the Stripe observations, the cipher) is imported
in those methods: a command that reads locations (`status`) loads none of it, and the topics of
the streams it did not load still resolve (`ledger.topics`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    MapperDeserialisationError,
    OperationalError,
)

from ledger import identity
from ledger.batches import iter_batches
from ledger.collector import collector_paused
from ledger.device import Device
from ledger.errors import Breach, Code, Conflict, InvalidRecord, LedgerError, NotFound, StorageError
from ledger.event_store import EventStore
from ledger.fields import FieldReader, StoredFields
from ledger.journal import PendingEvent
from ledger.keyring import KEYRING_ENV
from ledger.limits import Decision, Policy, Sale, decide
from ledger.location import Location
from ledger.money import STRIPE_OFFLINE_MAX_DEFAULT, cap_problem
from ledger.pan import quoted
from ledger.retry import BATCH_ATTEMPTS, RECORD_ATTEMPTS, retry_on_contention
from ledger.status_views import AllowanceState, LocationStatus
from ledger.storage import (
    CIPHER_KEY_ENV,
    DEFAULT_DATABASE_URL,
    StoreConfig,
    parse_database_url,
    states_reader,
    timeout_setting,
    unreachable,
    version_reader,
)
from ledger.unit_of_work import AggregateCache, Staged, UnitOfWork

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

    from ledger import wire
    from ledger.cipher import CipherKeys
    from ledger.observations import BalanceTransactionObservation, Observation
    from ledger.payment import Payment
    from ledger.reservation import Reservation, ReservationRequest
    from ledger.seal import Seal, Seals
    from ledger.stripe_object import StripeAccountMode, StripeObject
    from ledger.views import DeviceState, HistoryEntry, PaymentState, ReservationState

    State = PaymentState | LocationStatus | DeviceState

BATCH_SIZE_MAX = 5_000
HOLD_DEFAULT = timedelta(minutes=5)  # long enough to collect a card and confirm
HOLD_MAX = timedelta(hours=1)  # a reservation holds headroom for one sale, not for a shift
HANDOVER_SECONDS = 0.000_5  # the interpreter's switch interval while a stream is recorded
OBSERVE_CHUNK = 1_000  # observations per transaction when recording a file
_LIST_PAGE = 1_000

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """One applied record. `recorded` is False for an idempotent repeat (nothing new stored)."""

    recorded: bool
    record: wire.Record
    state: State | None = None  # filled by Ledger.record, not by record_many
    # The offline rules the fact broke (recorded with it): code, message, field, details.
    breaches: tuple[Breach, ...] = ()

    @classmethod
    def of(
        cls, recorded: bool, record: wire.Record, state: State | None, breaches: tuple[Breach, ...]
    ) -> Result:
        """Made for every record of a batch: the fields filled as `__init__` fills them, in
        its order, without the frozen dataclass's `object.__setattr__` for each (three times
        the cost of the whole result)."""
        result = object.__new__(cls)
        fields = result.__dict__
        fields["recorded"] = recorded
        fields["record"] = record
        fields["state"] = state
        fields["breaches"] = breaches
        return result

    @property
    def flagged(self) -> bool:
        return bool(self.breaches)

    @property
    def record_type(self) -> str:
        return self.record.type

    @property
    def key(self) -> str:
        """The offline_id, location_id or device_id the record is about."""
        from ledger.handlers import subject

        return subject(self.record)[0]


@dataclass(frozen=True)
class ObserveSummary:
    recorded: int  # new facts
    repeats: int  # already known (idempotent)


class Ledger:
    def __init__(self, store: EventStore, config: StoreConfig, policy: Policy) -> None:
        self.store = store
        self.config = config
        self.policy = policy
        self._cache = AggregateCache()
        self._versions = version_reader(config.kind, store.recorder)
        # Stores whose recorders check the streams a write read (not the in-memory one).
        self._presume = config.kind in ("sqlite", "postgresql")
        self._presuming = False  # `record_stream`'s batches, until a presumption fails
        self._states = states_reader(config.kind, store.recorder)
        self._fields = FieldReader(store.mapper)
        self._lock = _WriterLock()
        # A stream's writes in a thread of their own (`record_stream`) where the driver mostly
        # waits for a server: on SQLite (and in memory) the overlap gained nothing measurable
        # and cost CPU (docs/benchmarks.md), so there they run at once.
        self._writes_apart = config.kind == "postgresql"

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        stripe_offline_max: dict[str, int] | None = None,
        create: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> Ledger:
        """Open the ledger at `url`; on an empty (or, for SQLite, missing) database, create
        it, or with `create=False` refuse it (DATABASE_NOT_FOUND): what only reads must not
        leave a new database behind a mistyped URL. The cipher keys come from `environ`
        (default os.environ)."""
        from migrations import ensure_schema

        problem = None if stripe_offline_max is None else cap_problem(stripe_offline_max)
        if problem is not None:
            raise LedgerError(
                Code.INVALID_SETTING, f"stripe_offline_max: {problem}", field="stripe_offline_max"
            )
        config = parse_database_url(url or DEFAULT_DATABASE_URL, environ)
        ensure_schema(config, create=create)
        try:
            store = EventStore(env=config.env)
            store.recorder.max_notification_id()
        except (OperationalError, InterfaceError, OSError) as error:
            raise unreachable(config, error) from None
        # A missing or wrong OFFLINE_LEDGER_CIPHER_KEY fails here, once, for every command,
        # rather than wherever an event is first decoded. Without a key, a first event that is
        # JSON text is not encrypted: if it does not decode it was damaged, which is for
        # `audit verify` to find, so it is left alone here.
        with _storage_errors(config):
            try:
                first = store.recorder.select_notifications(start=None, limit=1)
                state = first[0].state if first else b""
                plain = isinstance(state, str) or bytes(state).startswith(b'{"')
                if first and (config.encrypted or not plain):
                    store.mapper.to_domain_event(first[0])
            except BaseException:
                store.close()
                raise
        caps = stripe_offline_max if stripe_offline_max is not None else STRIPE_OFFLINE_MAX_DEFAULT
        return cls(store, config, Policy(stripe_offline_max=dict(caps)))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def record(self, record: wire.Record | dict[str, Any]) -> Result:
        """Apply one record, durable when this returns; raise a LedgerError if refused."""
        from ledger import wire

        (result,) = self._apply([wire.parse_record(record)], with_state=True)
        if isinstance(result, LedgerError):
            raise result
        return result

    def record_many(
        self, records: Sequence[wire.Record | dict[str, Any] | LedgerError]
    ) -> list[Result | LedgerError]:
        """Apply a batch in order; each item's result or its error, in the same order.

        Items may be LedgerErrors already (a parse failure upstream): they pass through, so a
        caller streaming a file keeps one result per line.
        """
        parsed = _parsed(records)
        with collector_paused():
            return self._apply(parsed, with_state=False)

    def record_stream(
        self,
        batches: Iterable[tuple[T, Sequence[wire.Record | dict[str, Any] | LedgerError]]],
        committed: Callable[[T, list[Result | LedgerError]], None],
    ) -> None:
        """Apply each batch of `batches` (a tag and its records) as `record_many` does, in
        order, and call `committed` with its tag and results once it is durable, in the same
        order, before the next batch's write begins.

        On PostgreSQL, while a batch is written (its COPYs and its commit, mostly waiting for
        the server, which lets this thread run), the next one is read from `batches`, decided
        and encoded: the write runs in a thread of its own (`_writes_apart`; elsewhere each
        write runs at once, as `record_many`'s). The next batch is decided on the
        state the written one left: if that write fails, what was decided on it is thrown
        away (its streams evicted from the cache) and the failed batch goes on as
        `record_many`'s would have (its further attempts on fresh state, then each record
        alone; an error of the database's raised), before the next is decided again.

        The ledger's lock is held throughout: a write in flight holds state nothing else may
        decide on. For the same reason `committed` may not use this ledger (it runs while the
        next batch is decided, not yet written): it gets a RuntimeError. Whatever ends the
        stream early (a storage error, an interrupt, an error of `batches` or of `committed`)
        leaves no thread behind and the cache empty, and a batch whose write committed is told
        first."""
        with (
            self._lock,
            _storage_errors(self.config),
            collector_paused(),
            _stream_writer(self._writes_apart) as writer,
        ):
            flight: _Flight[T] | None = None
            self._presuming = self._presume
            try:
                for tag, records in batches:
                    parsed = _parsed(records)
                    if flight is not None and not flight.staged.held:
                        # Its streams outgrew the cache: this batch would read some of them
                        # from the store before the write is there.
                        self._land(flight, None, committed)
                        flight = None
                    flight = self._overlapped(writer, flight, tag, parsed, committed)
                if flight is not None:
                    self._land(flight, None, committed)
            except BaseException:
                self._cache.clear()  # it may hold what was decided on a write not landed
                writer.shutdown()  # the write in flight ends before anything else is done
                if flight is not None and not flight.landed and flight.written.exception() is None:
                    with self._lock.telling():
                        committed(flight.tag, flight.results)
                raise

    def _overlapped(
        self,
        writer: Executor | _AtOnce,
        flight: _Flight[T] | None,
        tag: T,
        parsed: list[wire.Record | LedgerError],
        committed: Callable[[T, list[Result | LedgerError]], None],
    ) -> _Flight[T]:
        """`parsed` decided and encoded while `flight` is written, `flight` landed, then the
        write of `parsed` begun. Decided on a write that failed, it is decided again once
        the failed batch is settled; an error of its deciding is raised only if that write
        did not fail.

        While `_presuming`, the streams `parsed` creates are presumed absent, as a live
        record's are: no question to the store for a batch of new payments. Where one exists
        (a file ingested again), what was decided on it is refused by its write (`UnitOfWork.
        presume_absent`), which then goes on as a failed write does (`_land`), or breaks an
        aggregate's own checks (a payment stored twice). That deciding's `discard` evicted
        the streams `flight` holds as written, so `parsed` is decided again on what is
        stored only once `flight` has landed. Either ends the presumption for the rest of
        the stream: the file's next batches are likely to hold streams that exist too, each
        of which would be decided twice and written once for nothing."""
        decided: tuple[Staged, list[Result | LedgerError]] | None = None
        presumed = self._presuming
        try:
            decided = self._decide(parsed, with_state=False, presume=presumed)
        except Exception:
            if presumed:
                self._presuming = False
                if flight is not None:
                    self._land(flight, None, committed)
            elif flight is None or self._land(flight, None, committed):
                raise
        else:
            if flight is not None and not self._land(flight, decided[0], committed):
                decided = None
        if decided is None:
            decided = self._decide(parsed, with_state=False, presume=self._presuming)
        staged, results = decided
        return _Flight(tag, parsed, staged, results, writer.submit(staged.write))

    def _land(
        self,
        flight: _Flight[T],
        later: Staged | None,
        committed: Callable[[T, list[Result | LedgerError]], None],
    ) -> bool:
        """Wait for `flight`'s write and tell `committed` its results. False when the write
        failed: what was decided on it (`later`) thrown away, the batch went on as
        `record_many`'s would have from its first attempt (`_apply`)."""
        # Landed once the wait is over: an interrupt during it (a signal breaks the wait) leaves
        # the flight to `record_stream`'s handler, which tells it if its write committed.
        failed = flight.written.exception()
        flight.landed = True
        if failed is None:
            with self._lock.telling():
                committed(flight.tag, flight.results)
            return True
        self._presuming = False
        if later is not None:
            later.forget()
        flight.staged.undo(failed)
        results = self._apply(flight.parsed, with_state=False, failed=failed)
        with self._lock.telling():
            committed(flight.tag, results)
        return False

    def _apply(
        self,
        parsed: list[wire.Record | LedgerError],
        *,
        with_state: bool,
        failed: BaseException | None = None,
    ) -> list[Result | LedgerError]:
        """`parsed` applied in one transaction, again on fresh state while another writer
        moves its streams first, then each record alone. `failed`: the error of a first
        attempt made elsewhere (`record_stream`'s write), which the attempts go on from."""
        with self._lock, _storage_errors(self.config):
            if with_state and self._presume:
                # A live record first presumes the streams it would create are absent: one
                # round trip, the write, when they are. If one exists (a repeat), or another
                # writer moved a stream, nothing is stored: decide again below, asking first.
                try:
                    return self._apply_batch(parsed, with_state, presume=True)
                except IntegrityError:
                    pass
            attempt = _raising_first(failed, lambda: self._apply_batch(parsed, with_state))
            try:
                return retry_on_contention(
                    attempt, attempts=BATCH_ATTEMPTS, contended="the same streams"
                )
            except Conflict:
                # Persistent contention: one transaction per record, each retried on its own.
                return [item for one in parsed for item in self._apply_alone(one, with_state)]

    def _apply_alone(
        self, item: wire.Record | LedgerError, with_state: bool
    ) -> list[Result | LedgerError]:
        try:
            return retry_on_contention(
                lambda: self._apply_batch([item], with_state),
                attempts=RECORD_ATTEMPTS,
                contended="the same streams; retry the record",
            )
        except Conflict as gave_up:
            return [gave_up]

    def _apply_batch(
        self, parsed: list[wire.Record | LedgerError], with_state: bool, presume: bool = False
    ) -> list[Result | LedgerError]:
        staged, results = self._decide(parsed, with_state=with_state, presume=presume)
        staged.commit()
        return results

    def _decide(
        self, parsed: list[wire.Record | LedgerError], *, with_state: bool, presume: bool = False
    ) -> tuple[Staged, list[Result | LedgerError]]:
        """The batch's records decided in order on the state the cache and the store hold,
        their events encoded and ready to write (`UnitOfWork.stage`), and their results.

        A refusal kept as a result keeps no traceback: its frames (this one's among them)
        would hold the whole batch in a reference cycle that only the collector frees, and
        an ingest sets aside what is alive while the next batch is decided."""
        from ledger.handlers import apply_record, related_ids, stream_ids, subject
        from ledger.payment import Payment

        # Imported once per batch: an import inside a function called per record costs
        # several microseconds a call, as much as some records' whole decision.
        with_breaches = (Payment.PaymentMethodCollected, Payment.ConfirmedOffline)
        # The same classes, asked by a lookup: `isinstance` of an event class asks its
        # metaclass's `__instancecheck__` (no event class derives from these two).
        breaching = frozenset(with_breaches)
        uow = UnitOfWork(self.store, self._cache, self._versions, optimistic=True)
        journal, policy = uow.journal, self.policy
        results: list[Result | LedgerError] = []
        stated: list[int] = []  # with states: the results whose state is read once all are
        try:
            created: list[UUID] | None = [] if presume else None
            wanted = stream_ids(parsed, created)
            if created is not None:
                uow.presume_absent(created)  # first: the streams it takes are not asked for
            uow.prefetch_keyed(wanted)
            uow.prefetch(related_ids(uow.loaded.values()))
            new = object.__new__
            with uow.recording():
                for item in parsed:
                    if isinstance(item, LedgerError):
                        results.append(item)
                        continue
                    before = len(journal)
                    try:
                        recorded = apply_record(item, uow, policy)
                    except LedgerError as error:
                        # Every check runs before any trigger: a refusal must leave no event.
                        if len(journal) != before:
                            raise AssertionError(f"refused {item.type} left events") from error
                        results.append(error.with_traceback(None))
                        continue
                    breaches: tuple[Breach, ...] = ()
                    event: Any
                    # Most records break nothing: `_breaches` only for one whose events do.
                    for event in journal[before:]:
                        if type(event) in breaching and event.breaches:
                            breaches = _breaches(journal, before, item, with_breaches, subject)
                            break
                    if with_state:
                        stated.append(len(results))
                    # `Result.of`, written out: its call cost as much as filling the result.
                    made = new(Result)
                    fields = made.__dict__
                    fields["recorded"] = recorded
                    fields["record"] = item
                    fields["state"] = None
                    fields["breaches"] = breaches
                    results.append(made)
        except BaseException:
            uow.discard()  # what the batch triggered so far must not stay in the cache
            raise
        for place in stated:
            result = results[place]
            assert isinstance(result, Result)
            state = _state_of(uow.get(subject(result.record)[1]))
            results[place] = Result.of(result.recorded, result.record, state, result.breaches)
        return uow.stage(), results

    def observe(
        self,
        observations: Sequence[Observation],
        *,
        stripe_event: tuple[str, str] | None = None,
    ) -> ObserveSummary:
        """Record what Stripe said, all in one transaction: a conflict stores nothing.

        With `stripe_event` (its `evt_...` id and type) the event's receipt is recorded in
        the same transaction; an event already received records nothing (a redelivery).
        At most BATCH_SIZE_MAX observations (`observe_file` takes a file of any size), none
        holding a card number (CARD_NUMBER_DETECTED: nothing is recorded).
        """
        if len(observations) > BATCH_SIZE_MAX:
            raise InvalidRecord(
                Code.INVALID_VALUE,
                f"{len(observations)} observations in one transaction: send at most "
                f"{BATCH_SIZE_MAX} at a time, or a whole file to observe_file",
                field="observations",
            )
        _refuse_card_numbers(observations)
        return self._observe_atomic(observations, stripe_event)

    def _observe_atomic(
        self, observations: Sequence[Observation], stripe_event: tuple[str, str] | None = None
    ) -> ObserveSummary:
        with self._lock, _storage_errors(self.config):
            return retry_on_contention(
                lambda: self._observe(observations, stripe_event),
                attempts=RECORD_ATTEMPTS,
                contended="the same PaymentIntents; import again",
            )

    def observe_file(self, observations: Sequence[Observation]) -> ObserveSummary:
        """Record a whole file of Stripe's observations (a report, an export) of any size.

        One transaction for a 50,000-row file holds the writers' lock for as long as
        it takes and sends one unbounded batch. So the file is first checked whole against
        what is recorded, reading only (a conflicting row records nothing, as before), then
        recorded OBSERVE_CHUNK observations per transaction, in file order. Each chunk is
        atomic and every observation idempotent: if the database fails mid-file, the error
        says how many rows were recorded, and importing the same file again records the rest
        (the recorded ones count as repeats).
        """
        earlier: dict[tuple[str, str], BalanceTransactionObservation] = {}
        _refuse_card_numbers(observations)
        with self._lock, _storage_errors(self.config):
            for chunk in iter_batches(observations, OBSERVE_CHUNK):
                self._check_observations(chunk, earlier)
        recorded = repeats = start = 0
        for chunk in iter_batches(observations, OBSERVE_CHUNK):
            try:
                summary = self._observe_atomic(chunk)
            except StorageError as error:
                error.message += (
                    f" ({start} of {len(observations)} rows were recorded before; import the "
                    "same file again to record the rest)"
                )
                error.details["rows_recorded"] = start
                raise
            recorded += summary.recorded
            repeats += summary.repeats
            start += len(chunk)
        return ObserveSummary(recorded, repeats)

    def _check_observations(
        self,
        observations: Sequence[Observation],
        earlier: dict[tuple[str, str], BalanceTransactionObservation],
    ) -> None:
        """Raise the Conflict that recording these would raise, recording nothing. A balance
        transaction the file already gave in an earlier chunk (`earlier`, filled here) is
        observed again before its repeat, so that the file is checked as one unit."""
        from ledger.observations import BalanceTransactionObservation

        uow = self._reader()
        uow.prefetch(identity.stripe_object_id(o.stream_key) for o in observations)
        try:
            for observation in observations:
                stream = _stripe_object(uow, observation.stream_key)
                if isinstance(observation, BalanceTransactionObservation):
                    key = (observation.stream_key, observation.balance_transaction_id)
                    first = earlier.setdefault(key, observation)
                    if first is not observation:
                        stream.observe(first)
                stream.observe(observation)
        finally:
            uow.discard()  # a trial: its events are never saved, its aggregates never cached

    def _observe(
        self, observations: Sequence[Observation], stripe_event: tuple[str, str] | None
    ) -> ObserveSummary:
        from ledger.stripe_object import StripeEvent

        uow = self._reader()
        receipt = None if stripe_event is None else identity.stripe_event_id(stripe_event[0])
        uow.prefetch(
            [identity.stripe_object_id(o.stream_key) for o in observations]
            + ([receipt] if receipt is not None else [])
        )
        if receipt is not None and uow.get(receipt) is not None:
            return ObserveSummary(0, len(observations))
        recorded = 0
        try:
            for observation in observations:
                stream = _stripe_object(uow, observation.stream_key)
                recorded += stream.observe(observation)
            if stripe_event is not None:
                uow.add(StripeEvent.receive(*stripe_event))
        except BaseException:
            uow.discard()
            raise
        uow.commit()
        return ObserveSummary(recorded, len(observations) - recorded)

    def ignore_stripe_event(self, event_id: str, event_type: str, reason: str) -> bool:
        """Record that a Stripe event was deliberately not applied, and why; False when the
        event was already received (a redelivery records nothing)."""
        from ledger.stripe_object import StripeEvent

        with self._lock, _storage_errors(self.config):
            uow = self._reader()
            if uow.get(identity.stripe_event_id(event_id)) is not None:
                return False
            uow.add(StripeEvent.ignore(event_id, event_type, reason))
            try:
                uow.commit()
            except IntegrityError:  # recorded concurrently by a redelivery
                return False
            return True

    def stripe_mode(self) -> bool | None:
        """The Stripe mode this ledger is bound to (True: live), or None before any Stripe
        object was seen."""
        with self._lock, _storage_errors(self.config):
            bound: StripeAccountMode | None = self._reader().get(identity.stripe_account_mode_id())
        return None if bound is None else bound.livemode

    def check_stripe_mode(self, livemode: bool) -> None:
        """Refuse a key of the other mode than the one this ledger is bound to, before any
        call; binds nothing (only what Stripe shows binds: `bind_stripe_mode`)."""
        bound = self.stripe_mode()
        if bound is not None and bound != livemode:
            raise Conflict(
                Code.STRIPE_MODE_MISMATCH,
                f"this ledger holds Stripe {'live' if bound else 'test'}-mode objects: a "
                f"{'live' if livemode else 'test'}-mode key is refused; use another database "
                "for it",
                field="livemode",
            )

    def bind_stripe_mode(self, livemode: bool) -> None:
        """Tie this ledger to Stripe's test or live mode once Stripe (or a file) showed an
        object of that mode; refuse the other."""
        from ledger.stripe_object import StripeAccountMode

        wanted, other = ("live", "test") if livemode else ("test", "live")
        with self._lock, _storage_errors(self.config):
            uow = self._reader()
            bound: StripeAccountMode | None = uow.get(identity.stripe_account_mode_id())
            if bound is None:
                uow.add(StripeAccountMode.bind(livemode))
                try:
                    uow.commit()
                except IntegrityError:  # bound concurrently: check what it was bound to
                    bound = self._reader().get(identity.stripe_account_mode_id())
            if bound is not None and bound.livemode != livemode:
                raise Conflict(
                    Code.STRIPE_MODE_MISMATCH,
                    f"this ledger holds Stripe {other}-"
                    f"mode objects: a {wanted}-mode key or event is refused; use "
                    "another database for it",
                    field="livemode",
                )

    def request_forward(self, offline_id: UUID | str, idempotency_key: str) -> PaymentState:
        """Record, durably, that the payment is about to be sent to Stripe (a no-op while an
        earlier request's outcome is unknown); return its state."""
        (state,) = self.request_forwards([(offline_id, idempotency_key)])
        return state

    def request_forwards(self, requests: Sequence[tuple[UUID | str, str]]) -> list[PaymentState]:
        """`request_forward` for many payments (offline_id, Idempotency-Key) in one
        transaction, so that a batch's requests may all be sent once it returns; their states,
        in order. A payment unknown or no longer stored refuses them all: nothing is recorded."""
        if len(requests) > BATCH_SIZE_MAX:
            raise InvalidRecord(
                Code.INVALID_VALUE,
                f"{len(requests)} forwards in one transaction: send at most {BATCH_SIZE_MAX}",
                field="requests",
            )
        if not requests:
            return []
        streams = [
            (str(offline_id), identity.payment_id(_uuid(offline_id))) for offline_id, _ in requests
        ]

        def request(uow: UnitOfWork) -> list[Payment]:
            uow.prefetch(stream for _, stream in streams)
            payments = []
            for (offline_id, stream), (_, key) in zip(streams, requests, strict=True):
                payment: Payment | None = uow.get(stream)
                if payment is None:
                    raise NotFound(
                        Code.UNKNOWN_PAYMENT, f"payment {offline_id} is unknown", field="offline_id"
                    )
                payment.request_forward(key, datetime.now(UTC))
                payments.append(payment)
            return payments

        from ledger.views import PaymentState

        contended = f"payment {streams[0][0]}" if len(streams) == 1 else "the payments"
        return [PaymentState.of(p) for p in self._write(request, contended)]

    # -- reservations -------------------------------------------------------------------------

    def reserve(
        self,
        offline_id: UUID | str,
        amount: int,
        currency: str,
        device_id: str,
        location_id: str,
        *,
        at: datetime | None = None,
        hold_for: timedelta = HOLD_DEFAULT,
    ) -> ReservationState:
        """The offline decision for one sale that also holds its headroom, atomically across
        every device of the location, until `hold_for` after `at` (now) unless the payment is
        confirmed offline first. Granted: pass prefer_online to the SDK. Refused: the reasons
        say why; pass require_online. The same request always gets the same answer."""
        from ledger import reserving, wire

        oid = str(_uuid(offline_id))
        if not timedelta(0) < hold_for <= HOLD_MAX:
            raise InvalidRecord(
                Code.INVALID_VALUE,
                f"a reservation is held for more than 0 and at most {HOLD_MAX}",
                field="hold_for",
            )
        request = wire.parse_decision_request(
            {
                "amount": amount,
                "currency": currency,
                "device_id": device_id,
                "location_id": location_id,
                "at": at or datetime.now(UTC),
            }
        )
        asked: ReservationRequest = {
            "amount": request.amount,
            "currency": request.currency,
            "device_id": request.device_id,
            "location_id": request.location_id,
        }
        return self._reservation_write(
            lambda uow: reserving.reserve(uow, self.policy, oid, asked, request.at, hold_for)
        )

    def release(self, offline_id: UUID | str, *, at: datetime | None = None) -> ReservationState:
        """Give back the headroom a reservation holds (the sale was abandoned)."""
        from ledger import reserving

        oid = str(_uuid(offline_id))
        moment = at or datetime.now(UTC)
        return self._reservation_write(lambda uow: reserving.release(uow, oid, moment))

    def allow(
        self,
        device_id: str,
        location_id: str,
        amounts: dict[str, int],
        count: int,
        valid_until: datetime,
        *,
        at: datetime | None = None,
    ) -> AllowanceState:
        """Grant the device an offline allowance: while nobody can reach the ledger (the
        shop's internet is down), the POS app decides locally against it. What is granted is
        what was asked, cut to what the location's limits leave beside what is stored and
        every other hold (so the location stays within its limits however many devices hold
        one); granting again renews or shrinks it. Facts stored beyond it are flagged
        OFFLINE_ALLOWANCE_EXCEEDED, naming the device. The device, location and `at` name the
        request: the same again stores nothing and gets the same grant; with other amounts,
        count or valid_until it is an IDEMPOTENCY_CONFLICT (without `at`, each call is a new
        request, at now)."""
        from ledger import reserving, wire

        moment = at or datetime.now(UTC)
        if valid_until <= moment or not all(map(_whole, (count, *amounts.values()))):
            raise InvalidRecord(
                Code.INVALID_VALUE,
                "an allowance needs amounts (whole minor units) and a count that are integers "
                f"from 0 to {wire.TOTAL_MAX_MINOR}, and a valid_until after now",
                field="valid_until",
            )
        # The ids are stored with the allowance, even one that asks for no amount.
        wire.refuse_card_number({"device_id": device_id, "location_id": location_id})
        for currency in amounts:
            wire.parse_decision_request(
                {
                    "amount": 1,
                    "currency": currency,
                    "device_id": device_id,
                    "location_id": location_id,
                    "at": moment,
                }
            )
        location = self._write(
            lambda uow: reserving.allow(
                uow, device_id, location_id, amounts, count, valid_until, moment
            ),
            "the location; retry",
        )
        allowance = AllowanceState.latest(location, device_id, moment)
        assert allowance is not None
        return allowance

    def _reservation_write(self, act: Callable[[UnitOfWork], Reservation]) -> ReservationState:
        from ledger.views import ReservationState

        # Another device moved the location meanwhile: decide again on fresh totals.
        return ReservationState.of(self._write(act, "the location; retry"))

    def record_seal(self, seal: Seal) -> tuple[Seal, bool]:
        """Record a signed seal (`ledger.seal`) on the seals stream: True with it, or False
        with the recorded seal that ends at the same position (a repeat)."""
        from ledger.seal import Seals

        def close(uow: UnitOfWork) -> tuple[Seal, bool]:
            seals: Seals | None = uow.get(identity.seals_id())
            if seals is None:
                seals = Seals.start()
                uow.add(seals)
            return seals.close(seal)

        return self._write(close, "the seals; retry")

    def record_cipher_rotation(self, current: str, retired: list[str], reason: str) -> bool:
        """Record a key rotation (`ledger.cipher.CipherKeys`): key `current` encrypts from
        now on, the keys `retired` never again. False when already recorded. The ids and
        the reason are stored as given: CARD_NUMBER_DETECTED when one holds a card number."""
        from ledger import wire
        from ledger.cipher import CipherKeys

        wire.refuse_card_number({"current": current, "retired": retired, "reason": reason})

        def rotate(uow: UnitOfWork) -> bool:
            keys: CipherKeys | None = uow.get(identity.cipher_keys_id())
            if keys is None:
                keys = CipherKeys.start()
                uow.add(keys)
            return keys.rotate(current, retired, reason)

        return self._write(rotate, "the cipher keys; retry")

    def seals(self) -> list[Seal]:
        """Every seal recorded, oldest first."""
        with self._lock, _storage_errors(self.config):
            seals: Seals | None = self._reader().get(identity.seals_id())
        return [] if seals is None else list(seals.seals)

    def _write(self, act: Callable[[UnitOfWork], T], contended: str) -> T:
        """`act` on fresh state in a unit of work of its own, committed; run again on fresh
        state when another writer moved one of its streams first. A refusal (any error that
        is not a version clash) discards what `act` triggered."""

        def once() -> T:
            uow = self._reader()
            try:
                done = act(uow)
                uow.commit()
            except IntegrityError:
                raise
            except BaseException:
                uow.discard()
                raise
            return done

        with self._lock, _storage_errors(self.config):
            return retry_on_contention(once, attempts=RECORD_ATTEMPTS, contended=contended)

    # -- reading ------------------------------------------------------------------------------

    def decide(
        self,
        *,
        amount: int,
        currency: str,
        device_id: str,
        location_id: str,
        offline_behavior: str = "prefer_online",
        at: datetime | None = None,
    ) -> Decision:
        """May this sale be taken offline now? Records nothing. UNKNOWN_LOCATION or
        UNKNOWN_DEVICE when either was never recorded."""
        from ledger import wire

        request = wire.parse_decision_request(
            {
                "amount": amount,
                "currency": currency,
                "device_id": device_id,
                "location_id": location_id,
                "offline_behavior": offline_behavior,
                "at": at or datetime.now(UTC),
            }
        )
        with self._lock, _storage_errors(self.config):
            uow = self._reader()
            location = uow.get(identity.location_id(request.location_id))
            if location is None:
                raise NotFound(
                    Code.UNKNOWN_LOCATION,
                    f"location {request.location_id} is unknown",
                    field="location_id",
                )
            device = uow.get(identity.device_id(request.device_id))
            if device is None:
                # A reader must connect online before it may store payments, so a device the
                # ledger never saw connect is a mistyped id or a missed device.connected_online.
                raise NotFound(
                    Code.UNKNOWN_DEVICE,
                    f"device {request.device_id} is unknown: no device.connected_online was "
                    "recorded for it; check the id, or record the reader's connection first",
                    field="device_id",
                )
            sale = Sale(
                request.amount,
                request.currency,
                request.device_id,
                request.offline_behavior,
                request.at,
            )
            return decide(self.policy, sale, location, device)

    def payment(self, offline_id: UUID | str) -> PaymentState:
        from ledger.views import PaymentState

        with self._lock, _storage_errors(self.config):
            payment = self._reader().get(identity.payment_id(_uuid(offline_id)))
        if payment is None:
            raise NotFound(
                Code.UNKNOWN_PAYMENT, f"payment {offline_id} is unknown", field="offline_id"
            )
        return PaymentState.of(payment)

    def payments(self, offline_ids: Iterable[UUID | str]) -> dict[str, PaymentState]:
        """The states of many payments, read at once (one question to the store for their
        versions, the aggregates the cache holds at those versions reused), by offline_id as
        given: a batch's payments cost a fraction of reading each with `payment`. An id that
        names no payment (unknown, or not a UUID) is left out: `payment` says why."""
        from ledger.views import PaymentState

        streams: dict[str, UUID] = {}
        for offline_id in offline_ids:
            try:
                streams[str(offline_id)] = identity.payment_id(_uuid(offline_id))
            except InvalidRecord:
                continue
        with self._lock, _storage_errors(self.config):
            uow = self._reader()
            uow.prefetch(streams.values())
            found = {offline_id: uow.get(stream) for offline_id, stream in streams.items()}
        return {
            offline_id: PaymentState.of(payment)
            for offline_id, payment in found.items()
            if payment is not None
        }

    def reservation(self, offline_id: UUID | str) -> ReservationState:
        """The answer recorded for a sale's reservation (and whether it was released)."""
        oid = str(_uuid(offline_id))
        with self._lock, _storage_errors(self.config):
            reservation = self._reader().get(identity.reservation_id(oid))
        if reservation is None:
            raise NotFound(
                Code.UNKNOWN_RESERVATION,
                f"no reservation was asked for sale {offline_id}",
                field="offline_id",
            )
        from ledger.views import ReservationState

        return ReservationState.of(reservation)

    def status(self, location_id: str | None = None) -> list[LocationStatus]:
        """Stored counts and amounts, and headroom, per location and per device."""
        with self._lock, _storage_errors(self.config):
            uow = self._reader()
            locations = [x for x in self._all(uow, Location.Configured) if isinstance(x, Location)]
            devices = [d for d in self._all(uow, Device.Registered) if isinstance(d, Device)]
        if location_id is not None:
            locations = [x for x in locations if x.location_id == location_id]
            if not locations:
                raise NotFound(
                    Code.UNKNOWN_LOCATION, f"location {location_id} is unknown", field="location_id"
                )
        return [
            LocationStatus.of(
                loc, [d.device_id for d in devices if loc.location_id in d.connections]
            )
            for loc in sorted(locations, key=lambda x: x.location_id)
        ]

    def refusals(self, location_id: str) -> list[ReservationState]:
        """The reservations refused at a location (each with the reasons and the headroom its
        check saw), in the order they were answered: which sales were sent online, and why."""
        from ledger.reservation import Reservation
        from ledger.views import ReservationState

        with self._lock, _storage_errors(self.config):
            uow = self._reader()
            refused = [
                ReservationState.of(reservation)
                for reservation in self._all(uow, Reservation.Answered)
                if isinstance(reservation, Reservation)
                and not reservation.granted
                and reservation.request["location_id"] == location_id
            ]
        return sorted(refused, key=lambda answer: answer.answered_at)

    def history(self, offline_id: UUID | str) -> list[HistoryEntry]:
        """Every event of one payment, in order, with what Stripe said about each of its
        PaymentIntents beside them (`source` "stripe"), in the order they were recorded."""
        from ledger.stripe_object import StripeObject
        from ledger.views import PaymentState

        stream = identity.payment_id(_uuid(offline_id))
        with self._lock, _storage_errors(self.config):
            events = list(self.store.events.get(stream))
            if not events:
                raise NotFound(
                    Code.UNKNOWN_PAYMENT, f"payment {offline_id} is unknown", field="offline_id"
                )
            payment = PaymentState.of(self._reader().get(stream))
            intents = [
                i for i in [payment.payment_intent_id, *payment.duplicate_payment_intent_ids] if i
            ]
            stripe = [
                event
                for pi in dict.fromkeys(intents)
                for event in self.store.events.get(identity.stripe_object_id(pi))
                if not isinstance(event, StripeObject.FirstSeen)
            ]
        entries = [_history_entry(event, "ledger") for event in events]
        entries += [_history_entry(event, "stripe") for event in stripe]
        return sorted(entries, key=lambda entry: (entry.recorded_at, entry.source != "ledger"))

    def decode(self, notification: Any) -> Any:
        """A stored event read from the log, as its domain event; an undecodable one (a
        missing or wrong cipher key, a damaged row) is a StorageError with its code."""
        with _storage_errors(self.config):
            return self.store.mapper.to_domain_event(notification)

    def last_position(self) -> int:
        """The position of the newest event in the log (0 when it is empty). Every event at
        or before it is committed: a writer takes its positions and commits under the store's
        write lock (the chain head's row on PostgreSQL, SQLite's single writer), so a later
        position is never visible before an earlier one. A rolled-back write leaves a gap,
        never an event that comes later."""
        with _storage_errors(self.config):
            return int(self.store.recorder.max_notification_id() or 0)

    def stored_fields(self, after: int, limit: int, topics: Sequence[str]) -> list[StoredFields]:
        """At most `limit` stored events after position `after` whose topic is among
        `topics`, in log order, each with its fields (`ledger.fields`) rather than decoded:
        for a reader of the whole log that keeps a few fields of each event. An undecodable
        one is a StorageError with its code, as in `decode`."""
        read = self._fields
        with _storage_errors(self.config):
            return [
                (position, stream, topic, read(topic, state))
                for position, stream, topic, state in self._states(after, limit, topics)
            ]

    def _reader(self) -> UnitOfWork:
        return UnitOfWork(self.store, self._cache, self._versions)

    def _all(self, uow: UnitOfWork, created: type[Any]) -> Iterator[Any]:
        topic = created.TOPIC
        start: int | None = None
        while True:
            page = self.store.recorder.select_notifications(
                start=start, limit=_LIST_PAGE, topics=[topic], inclusive_of_start=False
            )
            if not page:
                return
            ids = [UUID(str(n.originator_id)) for n in page]
            uow.prefetch(ids)
            for stream_id in ids:
                yield uow.get(stream_id)
            start = page[-1].id


@dataclass
class _Flight(Generic[T]):
    """A batch of `Ledger.record_stream` decided, its results ready, its write running."""

    tag: T
    parsed: list[wire.Record | LedgerError]
    staged: Staged
    results: list[Result | LedgerError]
    written: Future[None]
    landed: bool = False  # its write waited for, and it told or being told


class _WriterLock:
    """The ledger's lock: one thread writes at a time, and it may enter again, except from a
    `record_stream` callback (`telling`): the stream holds the lock with a batch decided on a
    write still in flight, so a record made there would be decided on what is not written."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._telling = False

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._telling:  # only the thread holding it gets past `acquire` while it tells
            self._lock.release()
            raise RuntimeError(
                "a record_stream callback used the ledger: it runs while the next batch is "
                "decided but not written; record after the stream instead"
            )

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    @contextmanager
    def telling(self) -> Iterator[None]:
        """A callback runs: the ledger refuses the thread holding the lock until it returns."""
        self._telling = True
        try:
            yield
        finally:
            self._telling = False


def _parsed(
    records: Sequence[wire.Record | dict[str, Any] | LedgerError],
) -> list[wire.Record | LedgerError]:
    """Each item as a wire record, or the error refusing it (an error given passes through);
    a batch larger than BATCH_SIZE_MAX refused whole."""
    from ledger import wire

    if len(records) > BATCH_SIZE_MAX:
        raise InvalidRecord(
            Code.INVALID_VALUE,
            f"{len(records)} records in one batch: send at most {BATCH_SIZE_MAX} at a time",
            field="records",
        )
    parsed: list[wire.Record | LedgerError] = []
    models = wire.RECORD_MODELS
    for item in records:
        if type(item) in models:  # a model already: `parse_record` would return it
            parsed.append(item)  # type: ignore[arg-type]
            continue
        if isinstance(item, LedgerError):
            parsed.append(item)
            continue
        try:
            parsed.append(wire.parse_record(item))
        except LedgerError as error:
            parsed.append(error)
    return parsed


class _AtOnce:
    """A stream's writes run at once, in the deciding thread (`Ledger._writes_apart`)."""

    def submit(self, write: Callable[[], None]) -> Future[None]:
        from concurrent.futures import Future

        done: Future[None] = Future()
        try:
            write()
        except Exception as error:
            done.set_exception(error)
        else:
            done.set_result(None)
        return done

    def shutdown(self) -> None:
        """Nothing runs apart: nothing to wait for."""


@contextmanager
def _stream_writer(apart: bool) -> Iterator[Executor | _AtOnce]:
    """Where a stream's writes run: in a thread of their own (`apart`), joined on the way out,
    or at once."""
    if not apart:
        yield _AtOnce()
        return
    from concurrent.futures import ThreadPoolExecutor

    with (
        _handing_over_sooner(),
        ThreadPoolExecutor(1, thread_name_prefix="ledger-write") as pool,
    ):
        yield pool


@contextmanager
def _handing_over_sooner() -> Iterator[None]:
    """Inside, the interpreter's lock goes to a thread that waits for it after
    `HANDOVER_SECONDS` rather than 5 ms. A stream's writer wants it back after each of its
    round trips (about ten a batch), while the deciding thread holds it for a batch's 20 to 30
    ms: at 5 ms a wait, the write took longer than the deciding it overlaps. The previous
    interval is restored after (another thread's stream ending meanwhile may leave it short,
    which costs nothing measurable)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, HANDOVER_SECONDS))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _raising_first(failed: BaseException | None, attempt: Callable[[], T]) -> Callable[[], T]:
    """`attempt`, but raising `failed` (when given) the first time: a first attempt made
    elsewhere, whose failure the retries go on from."""
    if failed is None:
        return attempt
    pending = [failed]

    def first_raising() -> T:
        if pending:
            raise pending.pop()
        return attempt()

    return first_raising


_HIDDEN = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp", "occurred_at"}
)


def _stripe_object(uow: UnitOfWork, stream_key: str) -> StripeObject:
    """The Stripe object's stream in `uow`, started (first seen) when it has none yet."""
    from ledger.stripe_object import StripeObject

    stream: StripeObject | None = uow.get(identity.stripe_object_id(stream_key))
    if stream is None:
        stream = StripeObject.first_seen(stream_key)
        uow.add(stream)
    return stream


def _history_entry(event: Any, source: str) -> HistoryEntry:
    from ledger.views import HistoryEntry

    return HistoryEntry(
        source=source,
        version=event.originator_version,
        event=type(event).__name__,
        occurred_at=getattr(event, "occurred_at", None),
        recorded_at=event.timestamp,
        data={k: v for k, v in event.__dict__.items() if k not in _HIDDEN},
    )


def _breaches(
    journal: list[PendingEvent],
    since: int,
    record: wire.Record,
    with_breaches: tuple[type[Any], ...],
    subject: Callable[[wire.Record], tuple[str, UUID]],
) -> tuple[Breach, ...]:
    """The breaches on the events a record just triggered (from `since` in the unit of work's
    journal) on its own stream, read from the events of `with_breaches`' classes. Most records
    break nothing: their stream is then not even worked out."""
    broken: list[Any] = []
    for event in journal[since:]:  # a loop, not a comprehension made for every record
        if isinstance(event, with_breaches) and event.breaches:
            broken.append(event)
    if not broken:
        return ()
    stream = subject(record)[1]
    return tuple(
        breach for event in broken if event.originator_id == stream for breach in event.breaches
    )


def _state_of(aggregate: object) -> State:
    from ledger.payment import Payment
    from ledger.views import DeviceState, PaymentState

    if isinstance(aggregate, Payment):
        return PaymentState.of(aggregate)
    if isinstance(aggregate, Device):
        return DeviceState.of(aggregate)
    assert isinstance(aggregate, Location), aggregate
    return LocationStatus.of(aggregate, list(aggregate.device_stored_counts))


def _uuid(value: UUID | str) -> UUID:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        raise InvalidRecord(
            Code.INVALID_UUID, f"{quoted(value)} is not a UUID", field="offline_id"
        ) from None


@contextmanager
def _storage_errors(config: StoreConfig) -> Iterator[None]:
    """Turn a lost database connection, or events that cannot be decrypted, into a typed
    StorageError."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        setting = timeout_setting(error)
        if setting is not None:
            raise StorageError(
                Code.DATABASE_TIMEOUT,
                f"the database at {config.redacted} did not finish in time (the limit set by "
                f"{setting}); nothing of this operation was applied: run it again when the "
                "database is less busy, or raise the limit",
                details={"setting": setting},
            ) from error
        raise StorageError(
            Code.DATABASE_UNAVAILABLE,
            f"lost the database at {config.redacted}: check that it is running and "
            "reachable, then run the command again (what was recorded stays recorded once)",
            details={"cause": str(error).splitlines()[0] if str(error) else type(error).__name__},
        ) from error
    except MapperDeserialisationError as error:
        # An event's state did not decode. Without a key, an encrypted state is not JSON
        # (the transcoder fails); with another key, or on events written without encryption,
        # AES-GCM's tag check fails. The library's text (kept in `details`) names the event,
        # never the key.
        from ledger.cipher import UnknownCipherKey

        cause = error.__cause__
        if isinstance(cause, UnknownCipherKey):
            raise StorageError(
                Code.CIPHER_KEY_UNKNOWN,
                f"an event at {config.redacted} was encrypted with key {cause.key_id}, which "
                f"is not among the keys given: set {KEYRING_ENV} to the keyring file that "
                "holds it (the latest one `offline-ledger cipher rotate` wrote), or "
                f"{CIPHER_KEY_ENV} to that key",
                details={"key_id": cause.key_id, "cause": str(error)},
            ) from error
        if config.encrypted:
            code = Code.CIPHER_KEY_MISMATCH
            message = (
                f"the events at {config.redacted} cannot be decrypted with the key in "
                f"{CIPHER_KEY_ENV}: they were written with another key (or without "
                "encryption, or were damaged): set it to the key they were written with"
            )
        else:
            code = Code.CIPHER_KEY_REQUIRED
            message = (
                f"the events at {config.redacted} cannot be read: they are encrypted "
                f"(or damaged): set {CIPHER_KEY_ENV} to the key they were written with"
            )
        raise StorageError(code, message, details={"cause": str(error)}) from error


def _whole(value: object) -> bool:
    """An integer (not a bool, a float or text) of 0 or more within any total's bound."""
    from ledger import wire

    return type(value) is int and 0 <= value <= wire.TOTAL_MAX_MINOR


def _refuse_card_numbers(observations: Sequence[Observation]) -> None:
    """CARD_NUMBER_DETECTED for the first observation holding a card number; its position
    and field are said, never its values."""
    from ledger.observations import card_number_field

    for index, observation in enumerate(observations):
        field = card_number_field(observation)
        if field is not None:
            raise InvalidRecord(
                Code.CARD_NUMBER_DETECTED,
                f"observation {index}: field {field} looks like a full card number (13-19 "
                "digits passing the Luhn check); the ledger never stores card numbers",
                field=field,
            )
