"""A Stripe payment's currency and payout come from its first movement (charges first, then
by movement key) and its first paid-out one: picked by a window on PostgreSQL and by `min()`
of ordered texts on SQLite, which must keep a NULL payout time of the movement it picks rather
than take another movement's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from ledger import Ledger
from ledger.observations import BalanceTransactionObservation
from projections.read_models import ReadModels
from projections.tables import stripe_payments

PAID_AT = datetime(2026, 3, 4, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def _row(
    txn: str, category: str, payout: str | None, paid_at: datetime | None
) -> BalanceTransactionObservation:
    return BalanceTransactionObservation(
        source="report_file",
        balance_transaction_id=txn,
        payment_intent_id="pi_first",
        charge_id="ch_first",
        source_id="ch_first" if category == "charge" else f"re_{txn}",
        currency="usd",
        gross=1_000 if category == "charge" else -400,
        reporting_category=category,
        customer_facing_amount=900 if category == "charge" else None,
        customer_facing_currency="eur" if category == "charge" else None,
        payout_id=payout,
        payout_at=paid_at,
    )


def test_the_first_movement_and_the_first_paid_out_one_are_picked(url: str) -> None:
    rows = [
        # Paid out, its time not known: the first paid-out movement (a charge comes first).
        _row("txn_b", "charge", "po_1", None),
        # Before it by key but a refund, and paid out later with a time: not picked.
        _row("txn_a", "refund", "po_2", PAID_AT),
        _row("txn_c", "refund", None, None),
    ]
    with Ledger.open(url) as ledger, ReadModels(ledger) as models:
        ledger.observe(rows)
        models.rebuild()  # a long catch-up: the fold at its end
        with models.engine.connect() as conn:
            rebuilt = conn.execute(select(stripe_payments)).mappings().one()
        ledger.observe([_row("txn_d", "refund", "po_0", PAID_AT)])
        models.refresh()  # a short one: the batch's own fold
        with models.engine.connect() as conn:
            folded = conn.execute(select(stripe_payments)).mappings().one()
    assert (rebuilt["currency"], rebuilt["payout_id"], rebuilt["payout_at"]) == (
        "eur",
        "po_1",
        None,
    )
    assert (folded["currency"], folded["payout_id"], folded["payout_at"]) == ("eur", "po_1", None)
