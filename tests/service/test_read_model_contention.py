"""Reads, catch-ups and audits that other processes keep getting in the way of: each ends in a
CONTENTION conflict that says to run again (also under `python -O`, unlike an assertion), and
an audit never reports drift because a catch-up elsewhere was half done."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update

from ledger import Ledger
from ledger.errors import Code, Conflict
from projections import runner
from projections.read_models import PROJECTIONS, SETTLE_ATTEMPTS_MAX, ReadModels
from projections.runner import RACE_ATTEMPTS_MAX, position, unsettled
from projections.stripe_observations import StripeObservationsProjection
from projections.tables import projection_positions, stripe_payments
from tests.support.records import charged_payment_intents
from tests.support.stopping import Stopped, stop

STRIPE = StripeObservationsProjection()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_read_kept_unsettled_is_contention(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(4))
        refreshes = []
        refresh = read_models.refresh

        def left_unsettled_elsewhere(*args: Any, **kwargs: Any) -> int:
            """Each catch-up of the read, then one elsewhere leaving Stripe's unsettled."""
            refreshes.append(refresh(*args, **kwargs))
            with read_models.writer.begin() as conn:
                conn.execute(
                    update(projection_positions)
                    .where(projection_positions.c.name == STRIPE.name)
                    .values(unsettled=True)
                )
            return refreshes[-1]

        monkeypatch.setattr(read_models, "refresh", left_unsettled_elsewhere)
        with pytest.raises(Conflict) as refused:
            read_models.report(datetime(2026, 12, 1, tzinfo=UTC))
        assert refused.value.code == Code.CONTENTION
        assert "run again" in refused.value.message
        assert len(refreshes) == SETTLE_ATTEMPTS_MAX
        with pytest.raises(Conflict):
            read_models.audit_rebuild()


def test_runners_that_keep_racing_are_contention(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(4))
        read_models.refresh()
        reached = ledger.last_position()
        ledger.observe(charged_payment_intents(4, 4))

        def stale(conn: Any, name: str) -> runner.Standing:
            """Every position read before another runner moved it."""
            return runner.Standing(0, False, 0)

        monkeypatch.setattr(runner, "_standing", stale)
        with pytest.raises(Conflict) as refused:
            read_models.refresh()
        assert refused.value.code == Code.CONTENTION
        assert refused.value.details == {"attempts": RACE_ATTEMPTS_MAX + 1}
        with read_models.engine.connect() as conn:
            assert {position(conn, p.name) for p in PROJECTIONS} == {reached}
        monkeypatch.undo()
        assert read_models.refresh() > 0


def test_an_audit_waits_for_a_catch_up_elsewhere_to_settle(url: str) -> None:
    """While the audit rebuilds, more of Stripe's word comes in and a catch-up elsewhere stops
    half way, Stripe's read model unsettled: the audit settles the live read models, catches
    the rebuilt ones up to the same event, and finds no drift."""
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(4))
        read_models.refresh()
        interfered = []

        def meanwhile(applied: int) -> None:
            if interfered:
                return
            interfered.append(applied)
            ledger.observe(charged_payment_intents(24, 4))
            with ReadModels(ledger) as elsewhere, pytest.raises(Stopped):
                elsewhere.refresh(stop, batch_size=10)
            with read_models.engine.connect() as conn:
                assert unsettled(conn, PROJECTIONS)

        drifts = read_models.audit_rebuild(progress=meanwhile)
        assert interfered
        assert [drift for drift in drifts if not drift.clean] == []
        assert {drift.table: drift.live_rows for drift in drifts}["stripe_payments"] == 28
        with read_models.engine.connect() as conn:
            assert not unsettled(conn, PROJECTIONS)


def test_an_audit_under_records_arriving_all_along_compares_at_the_live_position(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each time the live read models are brought up to date, one more PaymentIntent was
    observed just before: the rebuilt ones are caught up to the live snapshot's position,
    not to the log's end, so the two meet at once and no drift is shown; the swap keeps the
    live rows; the records after are applied by the next catch-up."""
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(4))
        read_models.refresh()
        refresh, observed = read_models.refresh, [4]

        def after_a_new_record(*args: Any, **kwargs: Any) -> int:
            ledger.observe(charged_payment_intents(1, observed[-1]))
            observed.append(observed[-1] + 1)
            return refresh(*args, **kwargs)

        monkeypatch.setattr(read_models, "refresh", after_a_new_record)
        drifts = read_models.audit_rebuild(swap_in=True)

        assert drifts and all(drift.clean for drift in drifts)
        assert len(observed) == 2  # one refresh: the two met on the first attempt
        monkeypatch.undo()
        assert all(drift.clean for drift in read_models.audit_rebuild())
        with read_models.writer.connect() as conn:
            folded = conn.execute(select(func.count()).select_from(stripe_payments)).scalar()
        assert folded == observed[-1]  # every PaymentIntent observed, once


def test_a_long_catch_up_stopped_shows_as_settling(url: str) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(20))
        with pytest.raises(Stopped):  # the first of a rebuild's batches, then a crash
            read_models.rebuild(batch_size=10, progress=stop)

        assert read_models.settling() is True
        assert read_models.lag() > 0
        read_models.refresh()  # the next catch-up goes on and settles at the end
        assert (read_models.lag(), read_models.settling()) == (0, False)


def test_a_reset_waits_for_a_catch_up_holding_its_position_rows(postgres_url: str) -> None:
    """A rebuild's reset takes the position rows before the tables, as a catch-up does: a
    catch-up that holds the rows when the reset begins finishes, then the reset empties the
    tables (taken the other way round, each waited for the other and PostgreSQL ended one of
    them as a deadlock)."""
    with Ledger.open(postgres_url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(4))
        read_models.refresh()
        ledger.observe(charged_payment_intents(4, first=4))
        with read_models.engine.connect() as conn:
            reset_before = runner.generation(conn, STRIPE.name)
        holding, resume = threading.Event(), threading.Event()
        standing = runner._standing
        catch_up_thread: list[threading.Thread] = []

        def held(conn: Any, name: str) -> Any:
            found = standing(conn, name)
            if threading.current_thread() in catch_up_thread and name == PROJECTIONS[-1].name:
                holding.set()
                assert resume.wait(60)
            return found

        failures: list[BaseException] = []

        def run(step: Any) -> None:
            try:
                step()
            except BaseException as error:  # handed to the test's thread
                failures.append(error)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(runner, "_standing", held)
            catching_up = threading.Thread(target=run, args=(read_models.refresh,))
            catch_up_thread.append(catching_up)
            catching_up.start()
            assert holding.wait(60)
            resetting = threading.Thread(
                target=run, args=(lambda: runner.reset(read_models.writer, PROJECTIONS),)
            )
            resetting.start()
            _wait_for_a_lock_wait(read_models)
            resume.set()
            catching_up.join(60)
            resetting.join(60)
        assert failures == []
        read_models.refresh()  # the reset's emptied tables caught up again
        with read_models.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(stripe_payments)).scalar() == 8
            assert runner.generation(conn, STRIPE.name) == reset_before + 1


def _wait_for_a_lock_wait(read_models: ReadModels) -> None:
    """Until a session of the database waits for a lock (the reset, for the catch-up's)."""
    with read_models.engine.connect() as conn:
        for _ in range(600):
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the reset never waited for the catch-up")
