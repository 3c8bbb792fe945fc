"""A log of Stripe's observations only, as an import makes it: per PaymentIntent an API
snapshot naming its charge and one balance-report row, every second row naming the charge
only (its PaymentIntent known through the snapshot's link)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.observations import (
    BalanceTransactionObservation,
    Observation,
    PaymentIntentObservation,
)

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


def stripe_log(intents: int) -> list[Observation]:
    """Each PaymentIntent's API snapshot and its balance-report row, the row naming the
    charge only for every second one."""
    found: list[Observation] = []
    for n in range(intents):
        pi, charge, amount = f"pi_b{n}", f"ch_b{n}", 500 + n % 7_000
        created = T0 + timedelta(seconds=n)
        found.append(
            PaymentIntentObservation(
                source="api",
                payment_intent_id=pi,
                amount=amount,
                amount_received=amount,
                currency="usd",
                status="succeeded",
                created_at=created,
                charge_id=charge,
                offline_collected=True,
            )
        )
        found.append(
            BalanceTransactionObservation(
                source="report_file",
                balance_transaction_id=f"txn_b{n}",
                payment_intent_id=None if n % 2 else pi,
                charge_id=charge,
                source_id=charge,
                currency="usd",
                gross=amount,
                fee=30,
                net=amount - 30,
                created_at=created,
                reporting_category="charge",
                payout_id=f"po_b{n // 1_000}",
                payout_at=T0 + timedelta(days=2),
            )
        )
    return found
