"""What a PaymentIntent's state on Stripe says about the ledger's payment: the wire records
(forwarded, captured, declined, canceled) that the Stripe service (`ledger.stripe_service`)
records, whichever way Stripe's word arrived.

Every record is one the ledger treats idempotently, so the same Stripe state seen by a webhook,
a sync and a retry records each fact once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.observations import PaymentIntentObservation
from ledger.views import PaymentState

# A wire record of a payment's step, as a dict of JSON scalars (`Ledger.record` parses it).
Fact = dict[str, str | int | None]

# Stripe statuses that mean Stripe has the payment (it was forwarded).
_AT_STRIPE = frozenset({"requires_capture", "processing", "succeeded"})
DECLINE_CODE_UNKNOWN = "generic_decline"  # Stripe's code when the issuer gives no reason


def facts(
    seen: PaymentIntentObservation, payment: PaymentState, now: datetime | None = None
) -> list[Fact]:
    """The records that bring `payment` up to what Stripe shows in `seen`, in order."""
    occurred_at = (seen.as_of or now or datetime.now(UTC)).isoformat()
    base: Fact = {"occurred_at": occurred_at, "offline_id": payment.offline_id}
    pi = seen.payment_intent_id
    if seen.status in _AT_STRIPE:
        return _forwarded(seen, payment, base)
    if seen.status == "requires_payment_method" and (
        seen.decline_code or payment.status in ("stored", "forwarded")
    ):
        return [
            {
                **base,
                "type": "payment.declined",
                "payment_intent_id": pi,
                "decline_code": seen.decline_code or DECLINE_CODE_UNKNOWN,
            }
        ]
    if (
        seen.status == "canceled"
        and payment.status == "forwarded"
        and payment.payment_intent_id == pi
    ):
        return [{**base, "type": "payment.canceled", "reason": "voided"}]
    return []


def _forwarded(seen: PaymentIntentObservation, payment: PaymentState, base: Fact) -> list[Fact]:
    pi = seen.payment_intent_id
    received = seen.amount_received if seen.amount_received is not None else seen.amount
    partial = seen.status == "succeeded" and received < seen.amount
    # A partial capture must show as an authorization, then a capture of what was received.
    shown = "requires_capture" if partial else seen.status
    records: list[Fact] = [
        {**base, "type": "payment.forwarded", "payment_intent_id": pi, "status": shown}
    ]
    already_forwarded_uncaptured = (
        payment.payment_intent_id == pi and payment.stripe_status == "requires_capture"
    )
    if seen.status == "succeeded" and (partial or already_forwarded_uncaptured):
        records.append(
            {
                **base,
                "type": "payment.captured",
                "payment_intent_id": pi,
                "amount_captured": received,
            }
        )
    return records
