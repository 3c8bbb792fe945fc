"""The Stripe observations read model: per PaymentIntent (or charge), Stripe's latest word.

PaymentIntent snapshots (API, webhooks, JSON files) set its amounts and status; balance report
rows add up the money that moved (charges, refunds).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ledger.stripe_object import StripeObject
from projections.runner import Projection, load_rows, replace_rows, utc
from projections.tables import stripe_objects

# Stripe's reporting categories for money collected from a customer, and given back.
CHARGE_CATEGORIES = frozenset({"charge", "payment"})
REFUND_CATEGORIES = frozenset(
    {"refund", "payment_refund", "charge_failure", "refund_failure", "dispute", "dispute_reversal"}
)


class StripeObservationsProjection(Projection):
    name = "stripe_observations"
    topics = (
        StripeObject.FirstSeen.TOPIC,
        StripeObject.PaymentIntentObserved.TOPIC,
        StripeObject.BalanceTransactionObserved.TOPIC,
    )
    tables = (stripe_objects,)

    def apply(self, conn: Connection, events: Sequence[Any]) -> None:
        rows = load_rows(conn, stripe_objects, "stream_id", {e.originator_id.hex for e in events})
        existing = list(rows)
        for event in events:
            stream = event.originator_id.hex
            if isinstance(event, StripeObject.FirstSeen):
                rows[stream] = _first_seen(stream, event.key)
            elif isinstance(event, StripeObject.PaymentIntentObserved):
                _payment_intent(rows[stream], event.observation)
            else:
                assert isinstance(event, StripeObject.BalanceTransactionObserved), event
                _balance_transaction(rows[stream], event.observation)
        replace_rows(conn, stripe_objects, "stream_id", existing, list(rows.values()))


def _first_seen(stream: str, key: str) -> dict[str, Any]:
    row: dict[str, Any] = {column.name: None for column in stripe_objects.columns}
    row.update(stream_id=stream, key=key, charged_gross=0, refunded_gross=0, balance_transactions=0)
    return row


def _payment_intent(row: dict[str, Any], seen: dict[str, Any]) -> None:
    as_of = _time(seen.get("as_of"))  # absent before observations carried it
    # Webhooks arrive out of order: a snapshot older than the one shown keeps only what it
    # adds (an offline_id, a charge), never its status or amounts.
    newer = as_of is None or row["observed_at"] is None or as_of >= row["observed_at"]
    if newer:
        row.update(
            payment_intent_id=seen["payment_intent_id"],
            amount=seen["amount"],
            amount_received=seen["amount_received"],
            amount_capturable=seen["amount_capturable"],
            currency=seen["currency"],
            status=seen["status"],
            decline_code=seen["decline_code"],
            observed_at=as_of or row["observed_at"],
        )
    if seen["offline_id"] is not None:
        row["offline_id"] = seen["offline_id"].lower()
    for name in ("charge_id", "offline_collected", "card_brand"):
        if seen[name] is not None:
            row[name] = seen[name]
    if seen["created_at"] is not None:
        row["created_at"] = _time(seen["created_at"])


def _time(text: str | None) -> datetime | None:
    return None if text is None else utc(datetime.fromisoformat(text))


def _balance_transaction(row: dict[str, Any], seen: dict[str, Any]) -> None:
    row["balance_transactions"] += 1
    category = seen["reporting_category"]
    if category in REFUND_CATEGORIES or (category is None and seen["gross"] < 0):
        row["refunded_gross"] += seen["gross"]
    elif category in CHARGE_CATEGORIES or category is None:
        row["charged_gross"] += seen["gross"]
    if row["offline_id"] is None and seen["offline_id"] is not None:
        row["offline_id"] = seen["offline_id"].lower()
    for name in ("payment_intent_id", "charge_id", "currency"):
        if row[name] is None and seen[name] is not None:
            row[name] = seen[name]
    if row["created_at"] is None and seen["created_at"] is not None:
        row["created_at"] = _time(seen["created_at"])
