"""The database's report (`projections.report_sql`) against the Python categorizer it
replaced (`tests/support/reconciliation_oracle.py`), over random ledgers and random Stripe
sides: PaymentIntents in every status (partial captures by `amount_received`, declines,
awaiting the customer), balance-report rows of every reporting category (charges named by
PaymentIntent, by charge only or by balance transaction only; refunds, disputes and their
reversals; partial-capture reversals; settlement in another currency; fees and payouts), charge
and dispute webhooks, at random moments, thresholds and filters. Rows, their order and every
total must be the same, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, select

from adapters.trading_day import numbered_offline_id
from ledger import Ledger
from ledger.errors import NotFound
from ledger.observations import (
    BalanceTransactionObservation,
    ChargeObservation,
    DisputeObservation,
    Observation,
    PaymentIntentObservation,
)
from projections import stripe_fold
from projections.formats import FORMATS, render
from projections.read_models import PROJECTIONS, ReadModels
from projections.reconciliation import Filters, Thresholds
from projections.report import ReportTotals
from projections.runner import BATCH_SIZE_DEFAULT, unsettled
from projections.stripe_fold import ChunkedFold, fold_all
from projections.stripe_side import CHARGED, DISPUTED, REFUNDED
from projections.tables import stripe_keys, stripe_payments
from tests.conftest import POSTGRES_ENV, POSTGRES_SKIP, postgres_base_url
from tests.support import records as r
from tests.support.generators import Scenario, scenarios
from tests.support.reconciliation_oracle import build_report
from tests.support.stopping import Stopped, stop

PI_STATUSES = (
    "succeeded",
    "requires_capture",
    "canceled",
    "requires_payment_method",
    "requires_action",
    "requires_confirmation",
    "processing",
)
# Every reporting category the report reads, and none (a report without that column).
CATEGORIES = (*sorted(CHARGED | REFUNDED | DISPUTED), None)
DISPUTE_STATUSES = ("lost", "won", "needs_response", "under_review", "warning_closed")
MOMENTS = st.integers(-30, 24 * 8).map(lambda hours: r.T0 + timedelta(hours=hours))


@st.composite
def stripe_side(draw: st.DrawFn, count: int) -> list[Observation]:
    """What Stripe might say about the scenario's payments (by metadata, by the ids the
    generators use: pi_1/pi_2) and about strangers, in many shapes."""
    found: list[Observation] = []
    for n in range(draw(st.integers(0, 10))):
        number = draw(st.integers(1, count + 2))
        pi = draw(st.sampled_from(["pi_1", "pi_2", f"pi_x{n % 3}"]))
        charge = f"ch_{draw(st.integers(0, 3))}"
        offline_id = draw(
            st.sampled_from(
                [numbered_offline_id(number), numbered_offline_id(number).upper(), None]
            )
        )
        currency = draw(st.sampled_from(["usd", "eur"]))
        amount = draw(st.sampled_from([1250, 700, 2500, draw(st.integers(1, 7_000))]))
        kind = draw(st.sampled_from(["pi", "txn", "txn", "charge", "dispute"]))
        if kind == "pi":
            status = draw(st.sampled_from(PI_STATUSES))
            found.append(
                PaymentIntentObservation(
                    source="api",
                    payment_intent_id=pi,
                    offline_id=offline_id,
                    amount=amount,
                    amount_received=draw(st.sampled_from([None, amount, amount // 2])),
                    currency=currency,
                    status=status,
                    created_at=draw(st.none() | MOMENTS),
                    charge_id=draw(st.sampled_from([None, charge])),
                    offline_collected=draw(st.sampled_from([True, None])),
                    card_brand=draw(st.sampled_from([None, "visa", "mastercard"])),
                    decline_code=draw(st.sampled_from([None, None, "do_not_honor"])),
                )
            )
        elif kind == "txn":
            converted = draw(st.booleans())
            fee = draw(st.sampled_from([None, 30, 0]))
            gross = draw(st.sampled_from([amount, -amount, -(amount // 3)]))
            found.append(
                BalanceTransactionObservation(
                    source="report_file",
                    balance_transaction_id=f"txn_{n}",
                    payment_intent_id=draw(st.sampled_from([pi, None])),
                    charge_id=draw(st.sampled_from([charge, None])),
                    source_id=draw(st.sampled_from([None, f"re_{n}", charge])),
                    offline_id=offline_id,
                    currency="cad" if converted else currency,
                    gross=gross,
                    fee=fee,
                    net=None if fee is None else gross - fee,
                    created_at=draw(st.none() | MOMENTS),
                    reporting_category=draw(st.sampled_from(CATEGORIES)),
                    customer_facing_amount=amount if converted else None,
                    customer_facing_currency=currency if converted else None,
                    payout_id=draw(st.sampled_from([None, "po_1", "po_2"])),
                    payout_at=r.T0 + timedelta(days=2),
                )
            )
        elif kind == "charge":
            found.append(
                ChargeObservation(
                    source="webhook",
                    charge_id=charge,
                    payment_intent_id=draw(st.sampled_from([pi, None])),
                    currency=currency,
                    amount_refunded=draw(st.sampled_from([0, amount, amount // 2])),
                )
            )
        else:
            found.append(
                DisputeObservation(
                    source="webhook",
                    dispute_id=f"dp_{n % 4}",
                    charge_id=charge,
                    payment_intent_id=draw(st.sampled_from([pi, None])),
                    currency=currency,
                    amount=amount,
                    status=draw(st.sampled_from(DISPUTE_STATUSES)),
                )
            )
    return found


@st.composite
def cases(draw: st.DrawFn) -> tuple[Scenario, list[Observation], Thresholds, Filters]:
    scenario = draw(scenarios(max_payments=8))
    seen = draw(stripe_side(len(scenario.offline_ids)))
    thresholds = Thresholds(
        stale_after=timedelta(hours=draw(st.sampled_from([1, 24, 72]))),
        capture_warning=timedelta(hours=draw(st.sampled_from([0, 12]))),
        capture_windows=draw(st.sampled_from([{}, {"visa": timedelta(days=4, hours=18)}])),
    )
    locations = sorted(scenario.locations)
    filters = Filters(
        location_id=draw(st.sampled_from([None, None, *locations])),
        since=draw(st.none() | MOMENTS),
        until=draw(st.none() | MOMENTS),
    )
    return scenario, seen, thresholds, filters


def check_against_the_oracle(
    url: str,
    case: tuple[Scenario, list[Observation], Thresholds, Filters],
    as_of_hours: int,
    parts: int = 1,
    catch_up: tuple[int, str] = (BATCH_SIZE_DEFAULT, ""),
) -> None:
    """`parts`: the observations arrive in that many batches, the read models caught up
    after each (Stripe's side is folded batch by batch, a charge's link perhaps after its
    movements); the rows folded so must be those a rebuild from the log folds.

    `catch_up`: events per batch, and where the first catch-up stops: after its first batch
    ("batch"), after the first chunk of its end's fold ("chunk"), or not (""). Small
    batches make a catch-up from the start of the log leave the fold to its end
    (`projections.runner.SettlingProjection`), folded a chunk of as many ids a transaction
    (`stripe_fold.FOLD_ALL_CHUNKS_MAX` is 0 here); stopped there, the fold stays pending until
    the next catch-up, which every read runs first."""
    scenario, seen, thresholds, filters = case
    batch_size, stopped = catch_up
    as_of = r.T0 + timedelta(hours=as_of_hours)
    with (
        Ledger.open(url) as ledger,
        ReadModels(ledger) as read_models,
        patch.object(stripe_fold, "FOLD_ALL_CHUNKS_MAX", 0),
    ):
        ledger.record_many(scenario.setup)
        ledger.record_many(scenario.records)
        size = -(-len(seen) // parts) or 1
        for start in range(0, len(seen), size):
            ledger.observe(seen[start : start + size])
            if stopped == "batch" and start == 0:
                with pytest.raises(Stopped):
                    read_models.refresh(stop, batch_size)
                with read_models.engine.connect() as conn:
                    pending = unsettled(conn, PROJECTIONS)
                # Pending only short of the end of the log: the reads below catch up first.
                assert not pending or read_models.lag() > 0
            elif stopped == "chunk" and start == 0:
                with stopped_after_a_chunk() as chunks, suppress(Stopped):
                    read_models.refresh(batch_size=batch_size)
                with read_models.engine.connect() as conn:
                    pending = unsettled(conn, PROJECTIONS)
                # Stopped between two chunks: at the end of the log, still pending.
                assert pending == (chunks[0] > 1)
            else:
                read_models.refresh(batch_size=batch_size)
        if parts > 1:
            assert [d for d in read_models.audit_rebuild() if not d.clean] == []
            assert folded_at_once(read_models) == folded_rows(read_models)
        with read_models.engine.connect() as conn:
            read_models.refresh()
            expected = build_report(conn, as_of, thresholds, filters)
        try:
            report = read_models.report(as_of, thresholds, filters)
        except NotFound:
            assert not expected.rows
            return
        assert list(report.rows) == [replace(row, payouts=()) for row in expected.rows]
        assert report.totals == ReportTotals.of(expected.rows)
        # Equal, and of the same types (PostgreSQL's sums are NUMERIC; a Decimal equals an
        # int but no format writes it): every format renders the report.
        assert len(json.loads(render(report, "json"))["rows"]) == len(expected.rows)
        assert all(render(report, fmt) for fmt in FORMATS)
        # The CSV the database writes (`Report.csv_lines`) is the one written from the rows.
        with read_models.streamed_report(as_of, thresholds, filters) as streamed:
            assert streamed.csv_lines is not None
            assert render(streamed, "csv") == render(expected, "csv")


@contextmanager
def stopped_after_a_chunk() -> Iterator[list[int]]:
    """The fold at the end of a catch-up (`ChunkedFold`) stopped as a crash would stop it,
    after its first chunk's transaction committed: the second step raises before it folds.
    Yields the count of steps begun."""
    steps = [0]
    folding = ChunkedFold.step

    def step(self: ChunkedFold, conn: Connection) -> bool:
        steps[0] += 1
        if steps[0] == 2:
            raise Stopped
        return folding(self, conn)

    with patch.object(ChunkedFold, "step", step):
        yield steps


def folded_rows(read_models: ReadModels) -> list[list[Any]]:
    with read_models.engine.connect() as conn:
        return _folded(conn)


def folded_at_once(read_models: ReadModels) -> list[list[Any]]:
    """The folded tables as `fold_all` makes them from the observations' tables (rolled
    back)."""
    with read_models.writer.connect() as conn:
        conn.begin()
        fold_all(conn)
        folded = _folded(conn)
        conn.rollback()
    return folded


def _folded(conn: Connection) -> list[list[Any]]:
    return [
        sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
        for table in (stripe_keys, stripe_payments)
    ]


EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# Events per batch and where the first catch-up stops (after one batch, after the first
# chunk of its end's fold): whole catch-ups in one batch, or in small ones from the start of
# the log (folded at their end, a chunk a transaction).
CATCH_UPS = st.sampled_from(
    [(BATCH_SIZE_DEFAULT, ""), (3, ""), (3, "batch"), (7, "batch"), (3, "chunk"), (7, "chunk")]
)


@EXAMPLES
@given(cases(), st.sampled_from([1, 10, 30, 24 * 6]), st.sampled_from([1, 1, 2, 5]), CATCH_UPS)
def test_sqlite_report_equals_the_oracle(
    case: tuple[Scenario, list[Observation], Thresholds, Filters],
    as_of_hours: int,
    parts: int,
    catch_up: tuple[int, str],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        check_against_the_oracle(url, case, as_of_hours, parts, catch_up)


@contextmanager
def postgres_schema() -> Iterator[str]:
    base = postgres_base_url()
    if base is None:
        pytest.skip(f"{POSTGRES_SKIP} set {POSTGRES_ENV} to run it")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@settings(EXAMPLES, max_examples=20)
@given(cases(), st.sampled_from([1, 10, 30, 24 * 6]), st.sampled_from([1, 1, 2, 5]), CATCH_UPS)
def test_postgres_report_equals_the_oracle(
    case: tuple[Scenario, list[Observation], Thresholds, Filters],
    as_of_hours: int,
    parts: int,
    catch_up: tuple[int, str],
) -> None:
    with postgres_schema() as url:
        check_against_the_oracle(url, case, as_of_hours, parts, catch_up)
