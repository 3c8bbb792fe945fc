"""Other runners' work interleaved, deterministically, between the batches of a long catch-up
that leaves Stripe's fold to its end (`projections.runner.SettlingProjection`): a rebuild run
whole in between, and Stripe's events arriving with a read each time. Every interleaving ends
in the rows `fold_all` makes of the same tables, one row per Stripe payment, and every read
finishes.

A fold carried over from one transaction to the next went wrong here: a rebuild run whole
between two of its steps reset the tables and caught up to the same position, and the first
runner went on from its old step and cleared the mark over an empty `stripe_keys` (every
charge its own payment: twice the rows); Stripe's events projected between each step
started the fold over, so no read ever finished. A reset counts in the position row
(`generation`) for a runner to tell a read model built again from the one it began with."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from ledger import Ledger, LedgerError
from projections import runner
from projections.read_models import PROJECTIONS, ReadModels
from projections.runner import PositionMoved, generation, position, unsettled
from projections.stripe_fold import fold_all
from projections.stripe_observations import StripeObservationsProjection
from projections.tables import stripe_payments
from tests.support.records import charged_payment_intents, device, location, stored_payment
from tests.support.stopping import Stopped, stop

STRIPE = StripeObservationsProjection()
PAYMENT_INTENTS = 30
BATCH = 10  # events: a rebuild of the 60 events is six batches, the fold left to the last
AS_OF = datetime.now(UTC) + timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def stripe_rows(read_models: ReadModels) -> list[list[tuple[Any, ...]]]:
    with read_models.engine.connect() as conn:
        return _dump(conn)


def _dump(conn: Any) -> list[list[tuple[Any, ...]]]:
    return [
        sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
        for table in STRIPE.tables
    ]


def folded_at_once(read_models: ReadModels) -> list[list[tuple[Any, ...]]]:
    """The Stripe tables as `fold_all` makes them of the same observations (rolled back)."""
    with read_models.writer.connect() as conn, conn.begin() as transaction:
        fold_all(conn)
        rows = _dump(conn)
        transaction.rollback()
    return rows


def counted_rows(read_models: ReadModels) -> int:
    with read_models.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(stripe_payments)).scalar_one())


def stripe_generation(read_models: ReadModels) -> int:
    with read_models.engine.connect() as conn:
        return generation(conn, STRIPE.name)


def settled_at_the_end(read_models: ReadModels, ledger: Ledger, payment_intents: int) -> None:
    """Settled at the log's end, one row per PaymentIntent, the rows `fold_all`'s."""
    with read_models.engine.connect() as conn:
        assert not unsettled(conn, PROJECTIONS)
        assert position(conn, STRIPE.name) == ledger.last_position()
    assert counted_rows(read_models) == payment_intents
    assert stripe_rows(read_models) == folded_at_once(read_models)


def test_a_rebuild_run_whole_between_two_batches_of_a_settling(url: str) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as first, ReadModels(ledger) as second:
        ledger.observe(charged_payment_intents(PAYMENT_INTENTS))
        first.refresh()
        started = stripe_generation(first)
        rebuilt: list[int] = []

        def rebuild_elsewhere(applied: int) -> None:
            """After the first runner's batch is committed, its fold still ahead of it:
            another rebuild, whole, to the same position."""
            with first.engine.connect() as conn:
                if not unsettled(conn, PROJECTIONS):
                    return
                at = position(conn, STRIPE.name)
            second.rebuild(batch_size=BATCH)
            rebuilt.append(at)

        first.rebuild(batch_size=BATCH, progress=rebuild_elsewhere)

        assert rebuilt  # the second rebuild did run between two of the first's batches
        assert stripe_generation(first) == started + 2
        settled_at_the_end(first, ledger, PAYMENT_INTENTS)


def test_a_rebuild_run_whole_at_every_batch_of_a_settling(url: str) -> None:
    """The first runner's catch-up is a rebuild of its own each time (it began before the
    other's): the position it reaches after a reset is another read model's, and whatever
    it does there is that read model's batches, never its old ones'."""
    with Ledger.open(url) as ledger, ReadModels(ledger) as first, ReadModels(ledger) as second:
        ledger.observe(charged_payment_intents(PAYMENT_INTENTS))
        first.refresh()
        rebuilt: list[int] = []

        def stopped_rebuild_elsewhere(applied: int) -> None:
            """Another rebuild's first batch, then a reset by the next one, each time."""
            if len(rebuilt) < 4:
                rebuilt.append(applied)
                with pytest.raises(Stopped):
                    second.rebuild(batch_size=BATCH, progress=stop)

        first.rebuild(batch_size=BATCH, progress=stopped_rebuild_elsewhere)
        assert len(rebuilt) == 4
        assert stripe_generation(first) == 1 + 4  # its own reset, then the four others
        with first.engine.connect() as conn:
            assert not unsettled(conn, PROJECTIONS)
        assert counted_rows(first) == PAYMENT_INTENTS
        assert stripe_rows(first) == folded_at_once(first)


def a_stored_payment() -> list[dict[str, Any]]:
    """A payment stored on a reader, for the report to have a row."""
    return [location(), device(), *stored_payment()]


def test_stripe_events_arriving_at_every_batch_of_a_settling(url: str) -> None:
    """A webhook's PaymentIntent observed after each of the rebuild's batches, and read
    elsewhere straight after: every read finishes, with every PaymentIntent observed so far."""
    with Ledger.open(url) as ledger, ReadModels(ledger) as first, ReadModels(ledger) as second:
        recorded = ledger.record_many(a_stored_payment())
        assert not any(isinstance(outcome, LedgerError) for outcome in recorded)
        ledger.observe(charged_payment_intents(PAYMENT_INTENTS))
        first.refresh()
        observed = [PAYMENT_INTENTS]

        def webhook_and_read(applied: int) -> None:
            ledger.observe(charged_payment_intents(1, observed[-1], tag="w"))
            observed.append(observed[-1] + 1)
            report = second.report(AS_OF)
            assert report.rows
            assert counted_rows(second) == observed[-1]

        first.rebuild(batch_size=BATCH, progress=webhook_and_read)
        assert len(observed) > 1
        with first.engine.connect() as conn:
            assert not unsettled(conn, PROJECTIONS)
        assert counted_rows(first) == observed[-1]
        assert stripe_rows(first) == folded_at_once(first)


def test_an_audit_swap_counts_as_a_reset(url: str) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(4))
        read_models.rebuild()
        assert stripe_generation(read_models) == 1
        assert all(drift.clean for drift in read_models.audit_rebuild(swap_in=True))
        with read_models.engine.connect() as conn:
            assert {generation(conn, p.name) for p in PROJECTIONS} == {2}
        read_models.refresh()
        assert counted_rows(read_models) == 4


def test_a_position_read_before_a_reset_does_not_move_after_it(url: str) -> None:
    """Work a runner carries from one transaction to the next is tied to the position row
    as it read it: after a rebuild elsewhere, caught up to the very same position, the row
    differs by its generation, and moving it from the old reading is refused."""
    with Ledger.open(url) as ledger, ReadModels(ledger) as first, ReadModels(ledger) as second:
        ledger.observe(charged_payment_intents(4))
        first.refresh()
        with first.writer.begin() as conn:
            before = runner._standing(conn, STRIPE.name)
        second.rebuild()
        with first.writer.begin() as conn:
            after = runner._standing(conn, STRIPE.name)
            assert (after.position, after.unsettled) == (before.position, before.unsettled)
            assert after.generation == before.generation + 1
            with pytest.raises(PositionMoved):
                runner._move(conn, STRIPE.name, before, before.position + 1, unsettled=False)
        with first.engine.connect() as conn:
            assert position(conn, STRIPE.name) == ledger.last_position()


# -- SQLite: the fold made from a snapshot after the last batch, written in after ----------


class Counted:
    """How many times the Stripe projection's settling steps ran, each wrapped to run
    `meanwhile` once right after the snapshot's rows are made (its read still open)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, meanwhile: Any = None) -> None:
        self.calls: dict[str, int] = {}
        self.meanwhile = meanwhile
        for name in ("prepare", "settle", "settle_prepared"):
            self._wrap(monkeypatch, name)

    def _wrap(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        original = getattr(StripeObservationsProjection, name)

        def counted(projection: Any, *args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            found = original(projection, *args)
            if name == "prepare" and self.meanwhile is not None:
                meanwhile, self.meanwhile = self.meanwhile, None
                meanwhile()
            return found

        monkeypatch.setattr(StripeObservationsProjection, name, counted)


def stopped_elsewhere(ledger: Ledger, step: str) -> None:
    """Another runner's `refresh` or `rebuild`, stopped once its first batch is committed
    (before it settles)."""
    with ReadModels(ledger) as second, pytest.raises(Stopped):
        getattr(second, step)(batch_size=BATCH, progress=stop)


def test_the_fold_is_made_while_writers_get_in(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the snapshot's rows are made no write lock is held (a writer that would not
    wait gets in), and the ledger's own records applied meanwhile change nothing Stripe's
    fold reads: the rows made are written in, the same as `fold_all`'s."""
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as first:
        ledger.observe(charged_payment_intents(PAYMENT_INTENTS))
        path = sqlite_url.removeprefix("sqlite:///")

        def writers_meanwhile() -> None:
            with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as raw:
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("COMMIT")
            recorded = ledger.record_many(a_stored_payment())
            assert not any(isinstance(outcome, LedgerError) for outcome in recorded)
            stopped_elsewhere(ledger, "refresh")  # the records' batch applied, not settled

        counted = Counted(monkeypatch, writers_meanwhile)
        first.rebuild(batch_size=BATCH)
        assert counted.calls == {"prepare": 1, "settle_prepared": 1}
        settled_at_the_end(first, ledger, PAYMENT_INTENTS)


def test_a_reset_while_the_fold_is_made_is_not_written_over(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild elsewhere stopped after its first batch, while the first runner's snapshot
    rows were being made: they belong to the read model reset since, and are dropped; the
    new one is folded as it stands, and the next catch-up brings it to the end."""
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as first:
        ledger.observe(charged_payment_intents(PAYMENT_INTENTS))

        counted = Counted(monkeypatch, lambda: stopped_elsewhere(ledger, "rebuild"))
        first.rebuild(batch_size=BATCH)
        assert counted.calls == {"prepare": 1, "settle": 1}
        assert stripe_generation(first) == 2
        assert stripe_rows(first) == folded_at_once(first)
        first.refresh()
        assert counted_rows(first) == PAYMENT_INTENTS
        assert stripe_rows(first) == folded_at_once(first)


def test_stripe_events_while_the_fold_is_made_fold_at_once(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook's PaymentIntent applied elsewhere while the snapshot's rows were made: they
    miss it, so `fold_all` runs where they would have been written in; the settling
    finishes all the same, never started over."""
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as first:
        ledger.observe(charged_payment_intents(PAYMENT_INTENTS))

        def webhook() -> None:
            ledger.observe(charged_payment_intents(1, PAYMENT_INTENTS, tag="w"))
            stopped_elsewhere(ledger, "refresh")  # applied unsettled, not settled

        counted = Counted(monkeypatch, webhook)
        first.rebuild(batch_size=BATCH)
        assert counted.calls == {"prepare": 1, "settle": 1}
        settled_at_the_end(first, ledger, PAYMENT_INTENTS + 1)


def test_a_write_in_that_cannot_get_the_lock_leaves_nothing_behind(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot made, another connection holds the write lock past the writer's wait:
    the settling fails with the lock's error, its temporary tables are dropped all the same
    (without the lock), and the next catch-up on the same read models settles."""
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as first:
        ledger.observe(charged_payment_intents(PAYMENT_INTENTS))

        @event.listens_for(first.writer, "checkout")
        def short_wait(dbapi_connection: Any, *args: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout = 100")

        holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        counted = Counted(monkeypatch, lambda: holder.execute("BEGIN IMMEDIATE"))
        try:
            with pytest.raises(OperationalError, match="locked"):
                first.rebuild(batch_size=BATCH)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert counted.calls == {"prepare": 1}
        first.refresh()
        assert counted.calls == {"prepare": 2, "settle_prepared": 1}
        settled_at_the_end(first, ledger, PAYMENT_INTENTS)
