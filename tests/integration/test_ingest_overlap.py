"""The ingest decides a batch while the one before it is written (`Ledger.record_stream`).

Whatever was decided on a write that then failed is thrown away and decided again on what the
store holds; the failed batch goes on as a batch of `record_many` does (its further attempts,
or a storage error that stops the ingest with the last line of the last batch committed). Each
test compares the stored log, byte for byte, with a run that nothing disturbed (or one
record at a time, with the other writer's record at the same point) in the in-memory store,
under a fixed clock."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from adapters.audit import verify
from adapters.jsonl import IngestSummary, ingest
from ledger import Ledger, identity
from ledger.errors import Code
from ledger.event_store import EventStore, PreparedWrite
from ledger.unit_of_work import AggregateCache, UnitOfWork
from tests.support import records as r
from tests.support.fixed_clock import fixed_clock_frequent_snapshots

StoredRow = tuple[str, int, str, bytes]
PAYMENTS = [str(uuid.UUID(int=n)) for n in range(1, 7)]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def day() -> list[dict[str, Any]]:
    """A location, a device, and payments created, collected and confirmed."""
    records: list[dict[str, Any]] = [r.location(), r.device()]
    for offline_id in PAYMENTS:
        records += [
            r.created(offline_id),
            r.collected(offline_id, read_method="contactless_emv"),
            r.confirmed(offline_id),
        ]
    return records


def lines(records: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
    return [(n, json.dumps(record).encode()) for n, record in enumerate(records, start=1)]


def stored_log(ledger: Ledger) -> list[StoredRow]:
    notifications = ledger.store.recorder.select_notifications(start=None, limit=1_000_000)
    return [
        (str(n.originator_id), n.originator_version, n.topic, bytes(n.state)) for n in notifications
    ]


def told(summary: IngestSummary) -> tuple[int, int, list[Any], list[Any]]:
    return (
        summary.accepted,
        summary.duplicates,
        [(entry["line"], entry["code"]) for entry in summary.rejected],
        [(entry["line"], entry["code"]) for entry in summary.flagged],
    )


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ledger-write")]


@contextmanager
def failing_writes(
    fail: Callable[[int], BaseException | None], refused: list[int] | None = None
) -> Iterator[list[int]]:
    """Every write of the event store numbered from 1; `fail(number)` raised instead of the
    write when it gives an error. Yields the numbers of the writes that failed; those the
    store refused (IntegrityError) are added to `refused`."""
    failed: list[int] = []
    write = EventStore.write
    count = 0

    def faulty(store: EventStore, prepared: PreparedWrite) -> None:
        nonlocal count
        count += 1
        error = fail(count)
        if error is not None:
            failed.append(count)
            raise error
        try:
            write(store, prepared)
        except IntegrityError:
            if refused is not None:
                refused.append(count)
            raise

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EventStore, "write", faulty)
        yield failed


def reference(records: list[dict[str, Any]], size: int) -> tuple[Any, list[StoredRow]]:
    """What the ingest tells and stores when nothing disturbs it (the in-memory store stores
    the same log as the others)."""
    with Ledger.open("memory://") as ledger:
        summary = ingest(ledger, iter(lines(records)), batch_size=size)
        return told(summary), stored_log(ledger)


def test_a_write_refused_is_attempted_again_and_what_followed_decided_again(
    url: str,
) -> None:
    records = day()
    refused = {3, 4, 7}  # the third batch's first two attempts, then the fifth's first
    with fixed_clock_frequent_snapshots():
        expected = reference(records, 2)
        with (
            failing_writes(lambda n: IntegrityError("taken") if n in refused else None) as failed,
            Ledger.open(url) as ledger,
        ):
            summary = ingest(ledger, iter(lines(records)), batch_size=2)
            log = stored_log(ledger)
            chain = verify(ledger)
    assert failed == sorted(refused)
    assert (told(summary), log) == expected
    assert chain.ok and chain.count == len(log)
    assert summary.last_applied_line == len(records)
    assert not writer_threads()


def ingested_in_turn(url: str, files: list[list[dict[str, Any]]], size: int) -> tuple[Any, ...]:
    """What each ingest of `files`, one after the other into the store of `url`, each by a
    ledger opened for it (whose cache holds none of the store's streams), tells, and the log
    stored at the end."""
    summaries = []
    for records in files:
        with Ledger.open(url) as ledger:
            summaries.append(told(ingest(ledger, iter(lines(records)), batch_size=size)))
            log = stored_log(ledger)
    return summaries, log


def ingested_by_one(files: list[list[dict[str, Any]]], size: int) -> tuple[Any, ...]:
    """The same by one ledger of the in-memory store, which presumes nothing."""
    with Ledger.open("memory://") as ledger:
        summaries = [
            told(ingest(ledger, iter(lines(records)), batch_size=size)) for records in files
        ]
        return summaries, stored_log(ledger)


@pytest.mark.parametrize("size", [2, 3, 1_000])
def test_a_file_ingested_again_is_told_as_the_store_holds_it(url: str, size: int) -> None:
    """An ingest presumes the streams a batch creates absent: a file ingested again holds
    payments that exist, its batches' writes are refused, and each is decided again on what
    is stored. The same answers and log as a store that presumes nothing, with a file of old
    and new payments after it."""
    records = day()
    newer = [uuid.UUID(int=n).hex for n in range(50, 53)]
    mixed = records[:5] + [r.created(oid) for oid in newer] + records[5:] + [r.confirmed(newer[0])]
    files = [records, records, mixed]
    refused: list[int] = []
    with fixed_clock_frequent_snapshots():
        expected = ingested_by_one(files, size)
        with failing_writes(lambda n: None, refused):
            found = ingested_in_turn(url, files, size)
    assert found == expected
    assert [accepted for accepted, *_ in expected[0]] == [len(records), 0, len(newer) + 1]
    if size == 2:
        # Each payment's creation and collection decided alone: the store refused them. In
        # larger batches a confirmation on a payment presumed new broke its location's check
        # first, and the batch was decided again before any write.
        assert refused


def test_a_presumption_broken_while_deciding_waits_for_the_write_before_it(url: str) -> None:
    """A batch that presumes an existing payment new breaks its location's check while
    deciding (a payment stored twice), which evicts what the cache held of the batch still
    being written. It is decided again only once that write has landed: a forward of the
    payment the batch before created is accepted, not refused as unknown."""
    old, new = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
    first = [r.location(), r.device(), r.created(old), r.confirmed(old)]
    second = [r.location(), r.device(), r.created(new), r.confirmed(new)]
    second += [r.created(old), r.confirmed(old), r.forwarded(new)]
    with fixed_clock_frequent_snapshots():
        expected = ingested_by_one([first, second], 4)
        found = ingested_in_turn(url, [first, second], 4)
    assert found == expected
    assert expected[0][1] == (3, 4, [], [])


def test_a_storage_error_stops_the_ingest_after_the_last_batch_committed(
    url: str,
) -> None:
    records = day()
    with fixed_clock_frequent_snapshots():
        with (
            failing_writes(lambda n: OperationalError("gone") if n == 4 else None),
            Ledger.open(url) as ledger,
        ):
            stopped = ingest(ledger, iter(lines(records)), batch_size=3)
            assert len(stored_log(ledger)) > 0
        assert stopped.stopped is not None
        assert stopped.stopped.code is Code.DATABASE_UNAVAILABLE
        assert stopped.last_applied_line == 9  # three batches of three committed
        assert stopped.accepted == 9
        assert not writer_threads()
        with Ledger.open(url) as ledger:
            again = ingest(ledger, iter(lines(records)), batch_size=3)
            log = stored_log(ledger)
        assert again.stopped is None and again.duplicates == 9
        assert log == reference(records, 3)[1]


def test_an_error_deciding_a_batch_is_raised_once_the_one_before_it_is_committed(
    url: str,
) -> None:
    """The version query of the fourth batch (lines 10 to 12, the fourth payment created on
    the last) fails while the third is written: the third is committed and told, the fourth
    and later are not. (The batch first presumes the payment absent, without a query: that
    fails too, and the batch is decided again, asking.)"""
    records = day()
    fourth = identity.payment_id(uuid.UUID(PAYMENTS[3]))
    with Ledger.open(url) as ledger, pytest.MonkeyPatch.context() as patch:
        versions = ledger._versions
        presume_absent = UnitOfWork.presume_absent

        def failing(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
            asked = list(ids)
            if fourth in asked:
                raise OperationalError("gone")
            return versions(asked)

        def failing_presumed(uow: UnitOfWork, ids: Iterable[uuid.UUID]) -> None:
            asked = list(ids)
            if fourth in asked:
                raise OperationalError("gone")
            presume_absent(uow, asked)

        ledger._versions = failing
        patch.setattr(UnitOfWork, "presume_absent", failing_presumed)
        stopped = ingest(ledger, iter(lines(records)), batch_size=3)
        assert len(ledger._cache._items) == 0
    assert stopped.stopped is not None and stopped.last_applied_line == 9
    assert stopped.accepted == 9
    assert not writer_threads()


def test_another_writer_between_batches_is_seen_by_the_batches_decided_before_it(
    url: str,
) -> None:
    """The other writer requires SCA at the location while the third batch (a payment's
    creation, which reads the location) is decided and the fourth (its contactless
    collection) not yet: the third's write is refused, and both are decided again on the
    location as stored, so the collection is flagged, as one record at a time would have it."""
    records = [r.location(), r.device(), r.created(PAYMENTS[0])]
    records.append(r.collected(PAYMENTS[0], read_method="contactless_emv"))
    sca = r.location(sca_required=True)
    with fixed_clock_frequent_snapshots():
        with Ledger.open(url) as ours, Ledger.open(url) as theirs:
            batches: list[int] = []

            def between(_: int) -> None:
                batches.append(1)
                if len(batches) == 2:
                    theirs.record(sca)

            summary = ingest(ours, iter(lines(records)), batch_size=1, on_batch=between)
            log = stored_log(ours)
        with Ledger.open("memory://") as single:
            for record in [*records[:2], sca, *records[2:]]:
                single.record(record)
            single_log = stored_log(single)
    assert [entry["code"] for entry in summary.flagged] == ["CONTACTLESS_NOT_ALLOWED_OFFLINE"]
    assert log == single_log


def test_an_interrupt_leaves_no_thread_and_what_was_committed_stays(
    url: str,
) -> None:
    records = day()

    def interrupted(_: int) -> None:
        raise KeyboardInterrupt

    with fixed_clock_frequent_snapshots():
        with Ledger.open(url) as ledger:
            with pytest.raises(KeyboardInterrupt):
                ingest(ledger, iter(lines(records)), batch_size=4, on_batch=interrupted)
            assert not writer_threads()
            assert len(ledger._cache._items) == 0
            done = ingest(ledger, iter(lines(records)), batch_size=4)
            log = stored_log(ledger)
        assert done.stopped is None and done.duplicates == 4
        assert log == reference(records, 4)[1]


def test_an_interrupt_while_a_write_is_awaited_tells_the_batch_it_committed(url: str) -> None:
    """Ctrl-C reaches the ingest while it waits for a batch's write (a wait a signal breaks),
    after that write committed: the batch is told before the interrupt goes on."""
    records = day()
    told_tags: list[int] = []
    exception = Future.exception
    interrupted: list[bool] = []

    def interrupting(future: Future[None], timeout: float | None = None) -> Any:
        if not interrupted:
            interrupted.append(True)
            future.result()  # the write ends, committed, as the interrupt arrives
            raise KeyboardInterrupt
        return exception(future, timeout)

    batches = [(n, records[n : n + 4]) for n in range(0, len(records), 4)]
    with fixed_clock_frequent_snapshots(), Ledger.open(url) as ledger:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Future, "exception", interrupting)
            with pytest.raises(KeyboardInterrupt):
                ledger.record_stream(iter(batches), lambda tag, _: told_tags.append(tag))
        log = stored_log(ledger)
        with Ledger.open("memory://") as alone:
            alone.record_stream(iter(batches[:1]), lambda tag, _: None)
            expected = stored_log(alone)
    assert interrupted and told_tags == [0]
    assert log == expected


@contextmanager
def slow_writes() -> Iterator[None]:
    """Every write of the event store waits first, as over a slow disk or link: the next
    batch is decided while it waits."""
    write = EventStore.write

    def slow(store: EventStore, prepared: PreparedWrite) -> None:
        time.sleep(0.2)
        write(store, prepared)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EventStore, "write", slow)
        yield


def test_a_batch_whose_streams_outgrow_the_cache_is_written_before_the_next_is_decided(
    url: str,
) -> None:
    """With a cache of one stream, a batch's own streams are pushed out of it as it is kept:
    the next batch, reading the payment the batch before created, must find it written, not
    take it for absent (UNKNOWN_PAYMENT) or as it was."""
    records = [r.location(), r.device(), r.created(PAYMENTS[0]), r.location("tml_2")]
    records += [r.collected(PAYMENTS[0], read_method="contactless_emv"), r.location("tml_3")]
    with fixed_clock_frequent_snapshots():
        expected = reference(records, 2)
        with slow_writes(), Ledger.open(url) as ledger:
            ledger._cache = AggregateCache(1)
            summary = ingest(ledger, iter(lines(records)), batch_size=2)
            log = stored_log(ledger)
    assert (told(summary), log) == expected


def test_a_callback_may_not_record_while_the_next_batch_is_decided_but_not_written(
    url: str,
) -> None:
    """The payment's creation (third batch) is decided, not written, when the second batch is
    told: a collection recorded from there would be logged before the creation it follows."""
    records = [r.location(), r.device(), r.created(PAYMENTS[0])]
    refused: list[Exception] = []

    def on_batch(_: int) -> None:
        try:
            ledger.record(r.collected(PAYMENTS[0], read_method="contactless_emv"))
        except RuntimeError as error:
            refused.append(error)

    with fixed_clock_frequent_snapshots():
        with Ledger.open(url) as ledger:
            summary = ingest(ledger, iter(lines(records)), batch_size=1, on_batch=on_batch)
            log = stored_log(ledger)
        expected = reference(records, 1)
    assert len(refused) == 3 and "record_stream callback" in str(refused[0])
    assert (told(summary), log) == expected


def test_a_batch_committed_when_the_input_fails_is_told(url: str) -> None:
    """Reading the next batch fails while one is written: that one is durable, and told."""
    records = [r.location(f"tml_{n}") for n in range(5)]

    def source() -> Iterator[tuple[int, bytes]]:
        yield from lines(records)
        raise OSError("the input went away")

    sizes: list[int] = []
    with Ledger.open(url) as ledger:
        with pytest.raises(OSError):
            ingest(ledger, source(), batch_size=5, on_batch=sizes.append)
        stored = len(stored_log(ledger))
        assert not writer_threads()
    assert (stored, len(sizes)) == (5, 1)
