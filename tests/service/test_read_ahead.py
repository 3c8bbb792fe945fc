"""A catch-up reads its next batch in a thread of its own while the current one is written
(`projections.read_ahead`), and on PostgreSQL builds a settling projection's rows of it in
another: the same rows and positions as a catch-up read batch by batch, a failed read ahead
read again (a failed build built again) by the writer, no thread left behind, and events
that arrive while it goes applied as before."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import select

from ledger import Ledger, LedgerError
from projections import read_ahead
from projections.read_ahead import BuildAhead, Overlap, ReadAhead
from projections.read_models import PROJECTIONS, ReadModels
from projections.runner import BATCH_SIZE_MAX, position
from projections.stripe_observations import StripeObservationsProjection
from tests.support.generators import crash_day_records
from tests.support.records import charged_payment_intents

READER = "catch-up-read-ahead"
BUILDER = "catch-up-build-ahead"
STRIPE = StripeObservationsProjection()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def overlaps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Overlap]]:
    """Every catch-up's record of its read-ahead; each batch read ahead is read to its end
    before the writer goes on, so which batch a read saw does not depend on timing."""
    found: list[Overlap] = []
    start, close = ReadAhead.start, ReadAhead.close

    def read_at_once(self: ReadAhead, after: int) -> None:
        start(self, after)
        self.wait()

    def kept(self: ReadAhead) -> None:
        found.append(self.overlap)
        close(self)

    monkeypatch.setattr(ReadAhead, "start", read_at_once)
    monkeypatch.setattr(ReadAhead, "close", kept)
    yield found


def readers() -> list[threading.Thread]:
    """The read-ahead's threads still running, its builder's too."""
    return [thread for thread in threading.enumerate() if thread.name.startswith((READER, BUILDER))]


def every_row(read_models: ReadModels) -> list[list[tuple[Any, ...]]]:
    with read_models.engine.connect() as conn:
        return [
            sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
            for projection in PROJECTIONS
            for table in projection.tables
        ]


def positions(read_models: ReadModels) -> list[int]:
    with read_models.engine.connect() as conn:
        return [position(conn, projection.name) for projection in PROJECTIONS]


def filled(ledger: Ledger) -> None:
    """A day of payments with Stripe's word on PaymentIntents in between."""
    records = list(crash_day_records(40))
    assert not any(isinstance(r, LedgerError) for r in ledger.record_many(records[:100]))
    ledger.observe(charged_payment_intents(15))
    assert not any(isinstance(r, LedgerError) for r in ledger.record_many(records[100:]))
    ledger.observe(charged_payment_intents(15, first=15))


def test_batches_read_ahead_make_the_rows_of_one_batch(url: str, overlaps: list[Overlap]) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        filled(ledger)
        read_models.refresh(batch_size=7)
        by_small_batches = every_row(read_models), positions(read_models)
        assert overlaps[-1].taken > 10  # nearly every batch after the first was read ahead
        # On PostgreSQL Stripe's rows of the batches with its events were built ahead, each
        # from the rows the batch before wrote (its PaymentIntents' events straddle batches).
        # The batches read ahead hold the payments' topics too: none of them fails a build.
        built = overlaps[-1].builds_taken
        assert built > 3 if url.startswith("postgresql") else built == 0
        assert overlaps[-1].builds_failed == 0

        read_models.rebuild(batch_size=BATCH_SIZE_MAX)  # one batch: nothing read ahead

        assert overlaps[-1].reads == 0
        assert (every_row(read_models), positions(read_models)) == by_small_batches
        assert positions(read_models) == [ledger.last_position()] * len(PROJECTIONS)
    assert readers() == []


def test_a_batch_whose_read_ahead_failed_is_read_by_the_writer(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read ahead only saves time: when it fails (in its thread only, as a passing
    failure would), the writer reads the batch itself and the catch-up ends as though no
    reader had been."""
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(10))
        stored_fields = ledger.stored_fields
        failures: list[OSError] = []

        def failing_in_the_reader(*args: Any) -> Any:
            if threading.current_thread().name.startswith(READER):
                failures.append(OSError("the log's connection went away"))
                raise failures[-1]
            return stored_fields(*args)

        monkeypatch.setattr(ledger, "stored_fields", failing_in_the_reader)
        read_models.refresh(batch_size=7)

        assert failures
        assert readers() == []
        assert set(positions(read_models)) == {ledger.last_position()}
        caught_up = every_row(read_models)
        monkeypatch.undo()
        read_models.rebuild(batch_size=BATCH_SIZE_MAX)
        assert every_row(read_models) == caught_up


def test_the_writers_error_ends_the_reader(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(10))
        started: list[int] = []
        start, failure = ReadAhead.start, RuntimeError("the writer failed")

        def counted(self: ReadAhead, after: int) -> None:
            started.append(after)
            start(self, after)

        def fail(applied: int) -> None:
            raise failure

        monkeypatch.setattr(ReadAhead, "start", counted)
        with pytest.raises(RuntimeError) as raised:
            read_models.refresh(batch_size=7, progress=fail)

        assert raised.value is failure
        assert len(started) == 1  # the second batch was being read when the first failed
        assert readers() == []


@pytest.mark.parametrize(("payment_intents", "reads", "taken"), [(2, 2, 1), (3, 3, 3)])
def test_events_arriving_while_a_batch_is_read_ahead_are_applied(
    url: str, overlaps: list[Overlap], payment_intents: int, reads: int, taken: int
) -> None:
    """Four events a PaymentIntent, batches of 5: after the first batch, the second has been
    read ahead when one more PaymentIntent is observed. A read that reached the end of the
    log (3 events of 8) is read again, from the end the log has now; one that held a full
    batch (5 of 12) is still the next batch, and is applied as read."""
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(payment_intents))
        assert ledger.last_position() == 4 * payment_intents
        observed: list[int] = []

        def meanwhile(applied: int) -> None:
            if not observed:
                ledger.observe(charged_payment_intents(1, first=100))
                observed.append(applied)

        read_models.refresh(batch_size=5, progress=meanwhile)

        assert observed == [5]
        assert (overlaps[-1].reads, overlaps[-1].taken) == (reads, taken)
        assert positions(read_models) == [ledger.last_position()] * len(PROJECTIONS)
        caught_up = every_row(read_models)
        read_models.rebuild(batch_size=BATCH_SIZE_MAX)
        assert every_row(read_models) == caught_up


def test_a_failed_read_or_one_from_elsewhere_is_not_taken() -> None:
    """A read ahead from a position the writer does not find there (another runner moved
    it), or one that failed, is not taken, nor its error raised: the writer reads that
    batch itself."""

    def read(after: int) -> read_ahead.Read:
        raise OSError(f"the batch after {after}")

    ahead = ReadAhead(read)
    try:
        ahead.start(10)
        assert ahead.take(20, 30, 7) is None
        ahead.start(20)
        assert ahead.take(20, 30, 7) is None
        assert (ahead.overlap.reads, ahead.overlap.taken, ahead.overlap.failed) == (2, 0, 1)
    finally:
        ahead.close()
    assert readers() == []


def test_no_read_ahead_where_no_thread_can_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread that cannot be started (the interpreter shutting down) leaves the writer to
    read the batch itself; the catch-up does not fail for it."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(read_ahead.ThreadPoolExecutor, "submit", refused)
    ahead = ReadAhead(lambda after: read_ahead.Read(after, after, []))
    try:
        ahead.start(10)
        assert ahead.take(10, 10, 7) is None
        assert ahead.overlap.reads == 0
    finally:
        ahead.close()
    assert readers() == []


def test_a_read_whose_thread_failed_to_start_is_not_run_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`submit` queues a read before it starts its thread: a thread that failed to start
    must not leave that read to run ahead of the next one."""
    started = threading.Thread.start
    failures = [RuntimeError("can't start new thread")]

    def start_failing_once(self: threading.Thread) -> None:
        if failures:
            raise failures.pop()
        started(self)

    monkeypatch.setattr(threading.Thread, "start", start_failing_once)
    reads: list[int] = []

    def read(after: int) -> read_ahead.Read:
        reads.append(after)
        return read_ahead.Read(after, after + 7, [])

    ahead = ReadAhead(read)
    try:
        ahead.start(10)
        ahead.start(20)
        assert ahead.take(20, 27, 7) == []
    finally:
        ahead.close()
    assert reads == [20]
    assert readers() == []


def test_rows_whose_build_ahead_failed_are_built_by_the_writer(
    postgres_url: str, overlaps: list[Overlap], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building ahead only saves time: a build that fails in its thread (as a passing
    failure would) leaves the writer to build those rows itself, to the same read model."""
    with Ledger.open(postgres_url) as ledger, ReadModels(ledger) as read_models:
        filled(ledger)
        build = StripeObservationsProjection.build_unsettled
        failures: list[OSError] = []

        def failing_in_the_builder(self: Any, *args: Any) -> Any:
            if threading.current_thread().name.startswith(BUILDER):
                failures.append(OSError("the read models' connection went away"))
                raise failures[-1]
            return build(self, *args)

        monkeypatch.setattr(StripeObservationsProjection, "build_unsettled", failing_in_the_builder)
        read_models.refresh(batch_size=7)

        assert failures
        assert overlaps[-1].builds_taken == 0
        assert readers() == []
        caught_up = every_row(read_models), positions(read_models)
        monkeypatch.undo()
        read_models.rebuild(batch_size=BATCH_SIZE_MAX)
        assert (every_row(read_models), positions(read_models)) == caught_up


def test_rows_built_ahead_are_taken_only_by_the_batch_they_were_built_for(
    postgres_url: str,
) -> None:
    """Rows built ahead are the writer's only for the very events they were built from
    (not a batch it read again), with the projection's position and generation where the
    builder expected them (no other runner, no reset in between); a build that failed is
    not taken, nor its error raised."""
    with Ledger.open(postgres_url) as ledger, ReadModels(ledger) as read_models:
        events = ledger.stored_fields(0, 10, sorted(STRIPE.topics))
        read: Future[read_ahead.Read] = Future()
        read.set_result(read_ahead.Read(0, 10, events))
        built = BuildAhead(read_models.engine, Overlap())
        try:
            for position, generation, given in [
                (5, 2, list(events)),
                (6, 2, events),
                (5, 3, events),
            ]:
                built.start("p", (5, 2), read, lambda conn, got: ("rows of", got))
                built.wait()
                assert built.take("p", position, generation, given) is None
            built.start("p", (5, 2), read, lambda conn, got: ("rows of", got))
            built.wait()
            assert built.take("p", 5, 2, events) == ("rows of", events)

            def fail(conn: Any, got: Any) -> Any:
                raise OSError("the read models' connection went away")

            built.start("p", (5, 2), read, fail)
            built.wait()
            assert built.take("p", 5, 2, events) is None
            assert (built.overlap.builds, built.overlap.builds_taken) == (5, 1)
        finally:
            built.close()
        assert readers() == []
