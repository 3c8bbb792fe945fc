"""Reconciliation scenarios: each category produced at least once, on a real SQLite file and
on the real PostgreSQL server, through the library API and the read models."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from ledger import Ledger, LedgerError
from ledger.observations import (
    BalanceTransactionObservation,
    ChargeObservation,
    DisputeObservation,
    PaymentIntentObservation,
)
from projections.formats.urgency import capture_deadline
from projections.read_models import ReadModels
from projections.reconciliation import Filters, Thresholds
from projections.report import Category, Report, Row
from tests.support import records as r

AS_OF = r.T0 + timedelta(hours=10)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def opened(db_url: str) -> Iterator[tuple[Ledger, ReadModels]]:
    with Ledger.open(db_url) as ledger, ReadModels(ledger) as read_models:
        for record in (r.location(), r.device()):
            ledger.record(record)
        yield ledger, read_models


def pi(
    payment_intent_id: str,
    offline_id: str | None,
    amount: int = 1250,
    *,
    status: str = "succeeded",
    **fields: Any,
) -> PaymentIntentObservation:
    return PaymentIntentObservation(
        source="json_file",
        payment_intent_id=payment_intent_id,
        offline_id=offline_id,
        amount=amount,
        currency="usd",
        status=status,
        **fields,
    )


def record_all(ledger: Ledger, records: list[dict[str, Any]]) -> None:
    for record in records:
        ledger.record(record)


def stored(ledger: Ledger, minutes: float = 2, **created: Any) -> str:
    offline_id = str(uuid.uuid4())
    record_all(
        ledger,
        [
            r.created(offline_id, **created),
            r.collected(offline_id),
            r.confirmed(offline_id, occurred_at=r.at(minutes), stored_at=r.at(minutes)),
        ],
    )
    return offline_id


def forwarded(
    ledger: Ledger,
    payment_intent_id: str,
    status: str = "succeeded",
    minutes: float = 120,
    **created: Any,
) -> str:
    offline_id = stored(ledger, **created)
    ledger.record(r.forwarded(offline_id, payment_intent_id, status, occurred_at=r.at(minutes)))
    return offline_id


def row_of(report: Report, offline_id: str) -> Row:
    (row,) = [row for row in report.rows if row.offline_id == offline_id]
    return row


def test_every_category_is_produced_and_each_offline_id_appears_once(
    opened: tuple[Ledger, ReadModels],
) -> None:
    ledger, read_models = opened
    expect: dict[str, Category] = {}
    expect[forwarded(ledger, "pi_matched")] = Category.MATCHED
    expect[stored(ledger, minutes=9 * 60)] = Category.PENDING_FORWARD
    expect[stored(ledger, minutes=-20 * 60)] = Category.STALE_FORWARD
    expect[
        forwarded(ledger, "pi_auth", "requires_capture", minutes=8 * 60, capture_method="manual")
    ] = Category.AWAITING_CAPTURE
    overdue = forwarded(
        ledger, "pi_overdue", "requires_capture", minutes=-100 * 60, capture_method="manual"
    )
    expect[overdue] = Category.CAPTURE_OVERDUE
    declined = stored(ledger)
    ledger.record(r.declined(declined, payment_intent_id="pi_declined"))
    expect[declined] = Category.DECLINED
    duplicate = forwarded(ledger, "pi_dup_a")
    ledger.record(r.forwarded(duplicate, "pi_dup_b", occurred_at=r.at(130)))
    expect[duplicate] = Category.DUPLICATE
    expect[forwarded(ledger, "pi_mismatch")] = Category.AMOUNT_MISMATCH
    expect[forwarded(ledger, "pi_missing")] = Category.MISSING_IN_STRIPE
    canceled = str(uuid.uuid4())
    record_all(ledger, [r.created(canceled), r.canceled(canceled)])
    expect[canceled] = Category.CANCELED
    orphan = str(uuid.uuid4())
    after = {
        "refunded": Category.REFUNDED,
        "partially_refunded": Category.PARTIALLY_REFUNDED,
        "disputed": Category.DISPUTED,
        "dispute_lost": Category.DISPUTE_LOST,
        "dispute_won": Category.DISPUTE_WON,
    }
    for name, category in after.items():
        expect[forwarded(ledger, f"pi_{name}")] = category
    charges = [
        ChargeObservation(
            source="webhook",
            charge_id=f"ch_{name}",
            payment_intent_id=f"pi_{name}",
            currency="usd",
            amount_refunded=refunded,
        )
        for name, refunded in (("refunded", 1250), ("partially_refunded", 300))
    ]
    disputes = [
        DisputeObservation(
            source="webhook",
            dispute_id=f"dp_{name}",
            charge_id=f"ch_{name}",
            payment_intent_id=f"pi_{name}",
            currency="usd",
            amount=1250,
            status=status,
        )
        for name, status in (
            ("disputed", "needs_response"),
            ("dispute_lost", "lost"),
            ("dispute_won", "won"),
        )
    ]

    ledger.observe(
        [
            *charges,
            *disputes,
            *(pi(f"pi_{name}", None) for name in after),
            pi("pi_matched", None),
            pi("pi_auth", None, status="requires_capture"),
            pi("pi_overdue", overdue, status="requires_capture"),
            pi(
                "pi_declined",
                declined,
                status="requires_payment_method",
                decline_code="insufficient_funds",
            ),
            pi("pi_dup_a", duplicate),
            pi("pi_dup_b", duplicate),
            pi("pi_mismatch", None, amount=1300),
            pi("pi_orphan", orphan, amount=999),
            pi("pi_online_sale", None, amount=5000),  # no offline_id, not offline: not ours
        ]
    )
    report = read_models.report(AS_OF)

    assert {row.offline_id: row.category for row in report.rows if row.offline_id != orphan} == {
        offline_id: category for offline_id, category in expect.items()
    }
    (orphan_row,) = [row for row in report.rows if row.category is Category.ORPHAN_IN_STRIPE]
    assert (orphan_row.offline_id, orphan_row.payment_intent_ids, orphan_row.stripe_amount) == (
        orphan,
        ("pi_orphan",),
        999,
    )
    assert {row.category for row in report.rows} == set(Category)
    assert len(report.rows) == len(expect) + 1
    assert row_of(report, duplicate).payment_intent_ids == ("pi_dup_a", "pi_dup_b")
    assert row_of(report, duplicate).amount_at_risk == 1250
    assert (
        row_of(
            report, next(k for k, v in expect.items() if v is Category.AMOUNT_MISMATCH)
        ).amount_at_risk
        == 50
    )


def test_a_payment_never_confirmed_is_pending_then_abandoned_with_nothing_at_risk(
    opened: tuple[Ledger, ReadModels],
) -> None:
    ledger, read_models = opened
    offline_id = str(uuid.uuid4())
    ledger.record(r.created(offline_id))
    early = row_of(read_models.report(r.T0 + timedelta(hours=1)), offline_id)
    late = row_of(read_models.report(r.T0 + timedelta(hours=25)), offline_id)
    assert (early.category, early.amount_at_risk) == (Category.PENDING_FORWARD, 0)
    assert (late.category, late.amount_at_risk, late.ledger_status) == (
        Category.CANCELED,
        0,
        "created",
    )
    # never stored: its age and the time it happened count from its creation
    assert late.stored_at is None and late.began_at is not None
    assert late.age_seconds == (r.T0 + timedelta(hours=25) - late.began_at).total_seconds()


def test_the_same_data_and_as_of_give_the_same_report(opened: tuple[Ledger, ReadModels]) -> None:
    ledger, read_models = opened
    stored(ledger)
    forwarded(ledger, "pi_1")
    assert read_models.report(AS_OF) == read_models.report(AS_OF)


def test_stale_and_capture_thresholds_are_configurable(
    opened: tuple[Ledger, ReadModels],
) -> None:
    ledger, read_models = opened
    waiting = stored(ledger)
    authorized = forwarded(ledger, "pi_auth", "requires_capture", capture_method="manual")
    ledger.observe([pi("pi_auth", authorized, status="requires_capture")])
    strict = Thresholds(
        stale_after=timedelta(hours=1),
        capture_window_default=timedelta(hours=3),
        capture_windows={},
        capture_warning=timedelta(0),
    )
    default = read_models.report(AS_OF)
    tight = read_models.report(AS_OF, strict)
    assert row_of(default, waiting).category is Category.PENDING_FORWARD
    assert row_of(tight, waiting).category is Category.STALE_FORWARD
    assert row_of(default, authorized).category is Category.AWAITING_CAPTURE
    assert row_of(tight, authorized).category is Category.CAPTURE_OVERDUE


def test_visa_authorizations_have_a_longer_capture_window_than_mastercard(
    opened: tuple[Ledger, ReadModels],
) -> None:
    ledger, read_models = opened
    ids = {}
    for brand in ("visa", "mastercard"):
        offline_id = str(uuid.uuid4())
        record_all(
            ledger,
            [
                r.created(offline_id, capture_method="manual"),
                r.collected(offline_id, brand=brand, network=brand),
                r.confirmed(offline_id),
                r.forwarded(offline_id, f"pi_{brand}", "requires_capture"),
            ],
        )
        ids[brand] = offline_id
    ledger.observe([pi(f"pi_{b}", o, status="requires_capture") for b, o in ids.items()])
    three_days_later = r.T0 + timedelta(days=3)
    report = read_models.report(three_days_later)
    assert row_of(report, ids["visa"]).category is Category.AWAITING_CAPTURE
    assert row_of(report, ids["mastercard"]).category is Category.CAPTURE_OVERDUE

    # The rows carry no brand; the report looks it up for those with money at risk, read in
    # a list or streamed, and it sets the capture deadline the page shows.
    overdue = row_of(report, ids["mastercard"])
    assert overdue.card_brand is None
    (branded,) = report.branded([overdue])
    assert branded.card_brand == "mastercard"
    with read_models.streamed_report(three_days_later) as streamed:
        rows = list(streamed.rows)
        assert {row.card_brand for row in streamed.branded(rows)} == {"visa", "mastercard"}
    deadline = capture_deadline(branded, report.thresholds)
    assert deadline is not None and branded.forwarded_at is not None
    assert deadline - branded.forwarded_at == timedelta(days=2)  # not Visa's 4 days 18 hours


def test_a_balance_report_alone_matches_a_forwarded_payment_and_a_partial_capture(
    opened: tuple[Ledger, ReadModels],
) -> None:
    ledger, read_models = opened
    full = forwarded(ledger, "pi_full")
    partial = forwarded(ledger, "pi_partial", "requires_capture", capture_method="manual")
    ledger.record(r.captured(partial, "pi_partial", amount_captured=1000))
    ledger.observe(
        [
            BalanceTransactionObservation(
                source="report_file",
                balance_transaction_id="txn_1",
                payment_intent_id="pi_full",
                currency="usd",
                gross=1250,
                reporting_category="charge",
            ),
            BalanceTransactionObservation(
                source="report_file",
                balance_transaction_id="txn_2",
                payment_intent_id="pi_partial",
                currency="usd",
                gross=1000,
                reporting_category="charge",
            ),
        ]
    )
    report = read_models.report(AS_OF)
    assert row_of(report, full).category is Category.MATCHED
    assert row_of(report, partial).category is Category.MATCHED
    assert row_of(report, full).stripe_status == "succeeded"


def test_filters_select_rows_by_location_and_period(opened: tuple[Ledger, ReadModels]) -> None:
    ledger, read_models = opened
    record_all(ledger, [r.location("tml_2"), r.device("tmr_2", "tml_2")])
    here = stored(ledger)
    there = stored(ledger, device_id="tmr_2", location_id="tml_2")
    later = stored(ledger, minutes=5 * 60)
    by_location = read_models.report(AS_OF, filters=Filters(location_id="tml_2"))
    by_period = read_models.report(AS_OF, filters=Filters(until=r.T0 + timedelta(hours=1)))
    assert [row.offline_id for row in by_location.rows] == [there]
    assert sorted(row.offline_id for row in by_period.rows) == sorted([here, there])
    assert later not in {row.offline_id for row in by_period.rows}


def test_a_period_without_data_is_a_clear_error(opened: tuple[Ledger, ReadModels]) -> None:
    ledger, read_models = opened
    stored(ledger)
    with pytest.raises(LedgerError) as refused:
        read_models.report(AS_OF, filters=Filters(since=datetime(2030, 1, 1, tzinfo=UTC)))
    assert refused.value.code == "NO_REPORT_DATA"
    assert "since=2030-01-01" in refused.value.message


def test_summary_totals_equal_the_sums_of_the_rows(opened: tuple[Ledger, ReadModels]) -> None:
    ledger, read_models = opened
    for minutes in (0, 60, -30 * 60):
        stored(ledger, minutes=minutes)
    forwarded(ledger, "pi_1")
    report = read_models.report(AS_OF)
    for category, by_currency in report.summary().items():
        for currency, totals in by_currency.items():
            rows = [
                row for row in report.rows if row.category == category and row.currency == currency
            ]
            assert (totals.count, totals.amount) == (
                len(rows),
                sum(row.amount or 0 for row in rows),
            )
    # Three stored payments, and one the ledger forwarded that Stripe does not have (yet).
    assert report.at_risk() == {"usd": 4 * 1250}


def test_a_report_reads_one_snapshot_while_a_catch_up_commits_elsewhere(
    opened: tuple[Ledger, ReadModels],
) -> None:
    """Rows and totals are those of the database as the report began, not as a catch-up
    elsewhere leaves it before they are read: no total that its rows do not add up to."""
    ledger, read_models = opened
    stored(ledger)
    forwarded(ledger, "pi_1")
    before = read_models.report(AS_OF)
    with read_models.streamed_report(AS_OF) as streamed:
        late = stored(ledger)
        with ReadModels(ledger) as elsewhere:
            elsewhere.refresh()
        rows, totals = list(streamed.rows), streamed.totals
    assert (rows, totals) == (before.rows, before.totals)
    after = read_models.report(AS_OF)
    assert row_of(after, late).amount_at_risk == 1250
    assert after.totals != before.totals


@pytest.mark.parametrize(("given", "stages", "csv"), [(300, "256MB", "300MB"), (8, "8MB", "8MB")])
def test_a_report_on_postgresql_takes_the_memory_it_is_given(
    postgres_url: str, given: int, stages: str, csv: str
) -> None:
    """The CSV's sorts and hashes may take what `OFFLINE_LEDGER_REPORT_WORK_MEM_MB` gives
    (each report running at once takes it, so an operator sizes it); the other statements at
    most the stages' share. The report is the same whatever the memory."""
    with Ledger.open(postgres_url) as ledger, ReadModels(ledger, given) as read_models:
        record_all(ledger, [r.location(), r.device()])
        stored(ledger)
        forwarded(ledger, "pi_1")
        settings: list[str] = []

        @event.listens_for(read_models.engine, "before_cursor_execute")
        def seen(*args: Any) -> None:
            statement = str(args[2])
            if "work_mem" in statement:
                settings.append(statement)

        written = io.StringIO()
        with read_models.streamed_report(AS_OF) as streamed:
            assert streamed.csv_lines is not None
            streamed.csv_lines(written)
        with ReadModels(ledger) as default:
            expected = io.StringIO()
            with default.streamed_report(AS_OF) as streamed:
                assert streamed.csv_lines is not None
                streamed.csv_lines(expected)
    assert settings == [f"SET LOCAL work_mem = '{stages}'", f"SET LOCAL work_mem = '{csv}'"]
    assert written.getvalue() == expected.getvalue()
    assert written.getvalue().count("\n") == 2
