"""Reading Stripe's PaymentIntents into the ledger (sync) and capturing authorizations.

Sync records each PaymentIntent as an observation and, where its `metadata.offline_id` names a
ledger payment, the facts its state implies (forwarded, captured, declined, canceled); running
it twice records nothing new. Capture sends one capture per payment with an Idempotency-Key
derived from the offline_id and the amount, and records what Stripe answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.stripe.files import payment_intent_observation
from adapters.stripe.gateway import StripeGateway, shown_livemode
from ledger import Ledger, LedgerError
from ledger.batches import iter_batches
from ledger.errors import Code, Conflict
from ledger.observations import PaymentIntentObservation
from ledger.stripe_facts import facts
from projections.payments import AuthorizedPayment
from projections.reconciliation import Thresholds

SYNC_PAGE = 100


@dataclass
class SyncSummary:
    payment_intents: int = 0
    observations_recorded: int = 0
    facts_recorded: int = 0
    facts_refused: int = 0  # Stripe disagrees with the ledger: the report shows it


def sync(
    ledger: Ledger,
    gateway: StripeGateway,
    since: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> SyncSummary:
    ledger.check_stripe_mode(gateway.mode.livemode)
    summary = SyncSummary()
    now = datetime.now(UTC)
    for page in iter_batches(gateway.payment_intents(since), SYNC_PAGE):
        # What Stripe showed binds the ledger to its mode; a key that reached nothing does not.
        for livemode in {shown_livemode(item, gateway.mode) for item in page}:
            ledger.bind_stripe_mode(livemode)
        observations = [payment_intent_observation(item, "api", now) for item in page]
        for observation in observations:
            _record_facts(ledger, observation, now, summary)
        summary.observations_recorded += ledger.observe(observations).recorded
        summary.payment_intents += len(page)
        if progress is not None:
            progress(len(page))
    return summary


def _record_facts(
    ledger: Ledger, observation: PaymentIntentObservation, now: datetime, summary: SyncSummary
) -> None:
    if observation.offline_id is None:
        return
    try:
        payment = ledger.payment(observation.offline_id)
    except LedgerError as error:  # not one of ours (or not a UUID): an orphan in the report
        if error.code not in (Code.UNKNOWN_PAYMENT, Code.INVALID_UUID):
            raise
        return
    for record in facts(observation, payment, now):
        try:
            summary.facts_recorded += ledger.record(record).recorded
        except Conflict:
            summary.facts_refused += 1


# -- capture ----------------------------------------------------------------------------------


def capture(
    ledger: Ledger, gateway: StripeGateway, offline_id: str, amount: int | None = None
) -> PaymentIntentObservation:
    """Capture a forwarded payment's authorization (all of it, or `amount`) and record it."""
    ledger.check_stripe_mode(gateway.mode.livemode)
    payment = ledger.payment(offline_id)
    if payment.payment_intent_id is None or payment.status != "forwarded":
        raise Conflict(
            Code.STEP_OUT_OF_ORDER,
            f"payment {offline_id} is {payment.status}: only "
            "a forwarded, uncaptured payment can be captured",
            field="offline_id",
        )
    if payment.stripe_status != "requires_capture":
        raise Conflict(
            Code.STEP_OUT_OF_ORDER,
            f"payment {offline_id} is {payment.stripe_status} on Stripe, not requires_capture",
            field="offline_id",
        )
    to_capture = payment.amount if amount is None else amount
    if not 0 < to_capture <= payment.amount:
        raise Conflict(
            Code.CAPTURE_EXCEEDS_AMOUNT,
            f"cannot capture {to_capture}: between 1 and the {payment.amount} authorized",
            field="amount",
        )
    key = f"offline-ledger-capture-{offline_id}-{to_capture}"
    item = gateway.capture(
        payment.payment_intent_id, None if to_capture == payment.amount else to_capture, key
    )
    ledger.bind_stripe_mode(shown_livemode(item, gateway.mode))
    observation = payment_intent_observation(item, "api", datetime.now(UTC))
    if observation.amount_received is None and observation.status == "succeeded":
        # Servers that do not report amount_received (a local one) captured what was asked.
        observation = observation.model_copy(update={"amount_received": to_capture})
    for record in facts(observation, payment):
        ledger.record(record)
    ledger.observe([observation])
    return observation


def due(
    authorized: list[AuthorizedPayment],
    thresholds: Thresholds,
    now: datetime,
    within: timedelta | None,
) -> list[AuthorizedPayment]:
    """The authorizations to capture now: all of them, or those whose brand's window ends
    within `within`, the earliest deadline first."""

    def deadline(payment: AuthorizedPayment) -> datetime:
        return (
            thresholds.capture_deadline(
                payment.forwarded_at.replace(tzinfo=UTC), payment.card_brand
            )
            + thresholds.capture_warning
        )

    chosen = [p for p in authorized if within is None or deadline(p) <= now + within]
    return sorted(chosen, key=deadline)
