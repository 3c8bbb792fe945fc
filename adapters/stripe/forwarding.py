"""Forwarding stored payments through the API, for POS systems that hold a reusable payment
method: exactly one PaymentIntent per offline_id, whatever crashes or retries.

Payments go FORWARD_BATCH at a time, oldest first, at the peer's pace: a batch's intents are
recorded in one transaction, its requests sent concurrently, and what Stripe created recorded
together; a payment whose request failed, or whose earlier outcome is unknown, goes on alone.
For each payment:
1. The intent is recorded in the ledger (`ForwardRequested`) before Stripe is called.
2. If an earlier intent's outcome is unknown (a crash, a dropped connection, a timeout, a 5xx
   after the write), the offline_id is looked up on Stripe first; a PaymentIntent found there
   is recorded, never created again.
3. Otherwise the PaymentIntent is created and confirmed, off-session and with the saved card's
   Customer (`card.customer_id`), with an Idempotency-Key derived from the offline_id (Stripe
   replays the first answer for 24 hours; the lookup covers the rest, and servers that ignore
   the key). Once a lookup has proved that no PaymentIntent exists for the offline_id, the
   next attempt uses a new key, recorded first like the first one: Stripe may replay a 500
   for the old key for 24 hours, and that key can never create anything any more.
4. Its outcome is recorded: forwarded (and captured), declined with the decline code, or a
   forward_failed: after the attempts allowed (retryable), when the card needs the customer
   to authenticate (`requires_action`, or Stripe's `authentication_required`: only the
   customer can finish it), when Stripe refuses the key (`idempotency_error`), or when it
   refuses the request. A 429 waits as long as Retry-After says.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from adapters.stripe.gateway import StripeFailure, StripeGateway, shown_livemode
from adapters.stripe.port import observed, stripe_service
from ledger import Ledger
from ledger.batches import iter_batches
from ledger.errors import Code
from ledger.views import PaymentState

ATTEMPTS_MAX = 8
# How long before a payment was stored a PaymentIntent for it may say it was created (clocks).
LOOKUP_MARGIN = timedelta(hours=1)
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 8.0
CONCURRENCY_MAX = 64
# Payments whose intents are recorded in one transaction before their requests are sent.
FORWARD_BATCH = 100


class Outcome(StrEnum):
    FORWARDED = "forwarded"
    DECLINED = "declined"
    RECOVERED = "recovered"  # found on Stripe after an unknown outcome, recorded
    FAILED = "failed"  # forward_failed recorded: attempts exhausted, or Stripe refused it
    NEEDS_CUSTOMER = "needs_customer"  # the card needs the customer to authenticate
    SKIPPED = "skipped"  # not stored any more, or no reusable payment method


@dataclass
class ForwardSummary:
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1


def idempotency_key(offline_id: str) -> str:
    """The same key for every attempt at the same payment, in every process."""
    return f"offline-ledger-forward-{offline_id}"


def next_key(key: str, offline_id: str) -> str:
    """The key after `key`, once a lookup proved `key` created nothing: `...-2`, `...-3`."""
    first = idempotency_key(offline_id)
    number = 1 if key == first else int(key.rsplit("-", 1)[1])
    return f"{first}-{number + 1}"


class Forwarder:
    def __init__(
        self,
        ledger: Ledger,
        gateway: StripeGateway,
        *,
        attempts_max: int = ATTEMPTS_MAX,
        settle_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`settle_seconds` (default: the gateway's request timeout) is how long to wait after
        an unknown outcome before looking the payment up, so that a request still in flight
        has landed: a server that ignores Idempotency-Key would otherwise get it twice."""
        assert 0 < attempts_max <= 100
        self.ledger = ledger
        self.gateway = gateway
        self.service = stripe_service(ledger, gateway)
        self.attempts_max = attempts_max
        self.settle_seconds = gateway.timeout_seconds if settle_seconds is None else settle_seconds
        self.sleep = sleep

    def forward_all(
        self,
        offline_ids: Iterable[str],
        *,
        concurrency: int = 4,
        progress: Callable[[Outcome], None] | None = None,
    ) -> ForwardSummary:
        """Forward the payments FORWARD_BATCH at a time (`_forward_batch`), `concurrency`
        requests in flight at most."""
        assert 0 < concurrency <= CONCURRENCY_MAX, concurrency
        self.service.check_mode()
        summary = ForwardSummary()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for batch in iter_batches(offline_ids, FORWARD_BATCH):
                for outcome in self._forward_batch(batch, pool):
                    summary.add(outcome)
                    if progress is not None:
                        progress(outcome)
        return summary

    def _forward_batch(self, offline_ids: list[str], pool: ThreadPoolExecutor) -> list[Outcome]:
        """At the peer's pace: the intents of the batch's payments are recorded in one
        transaction before any request (each then means "look it up before sending again"),
        the requests are sent concurrently, and the PaymentIntents created are recorded
        together (their facts in one transaction, their observations in another). A payment
        whose earlier outcome is unknown, or whose request failed, goes on alone (`forward`):
        lookups, retries and backoff are decided per payment."""
        known = self.ledger.payments(offline_ids)
        # One that names no payment is refused as `Ledger.payment` refuses it.
        payments = [known[i] if i in known else self.ledger.payment(i) for i in offline_ids]
        # Once each: an offline_id listed twice is sent once.
        fresh = {
            p.offline_id: p for p in payments if _sendable(p) and not p.forward_outcome_unknown
        }.values()
        outcomes = {p.offline_id: Outcome.SKIPPED for p in payments if not _sendable(p)}
        requested = self.ledger.request_forwards([(p.offline_id, _key(p)) for p in fresh])
        answers = list(pool.map(self._send, requested))
        created = [
            (payment, answer)
            for payment, answer in zip(requested, answers, strict=True)
            if isinstance(answer, dict) and answer.get("status") != "requires_action"
        ]
        if created:
            self.service.observe(
                [observed(answer) for _, answer in created],
                about=[payment.offline_id for payment, _ in created],
            )
            outcomes.update((payment.offline_id, Outcome.FORWARDED) for payment, _ in created)
        for payment, answer in zip(requested, answers, strict=True):
            if isinstance(answer, dict) and answer.get("status") == "requires_action":
                self._needs_customer(payment, answer)
                outcomes[payment.offline_id] = Outcome.NEEDS_CUSTOMER
        failed = {
            payment.offline_id: answer
            for payment, answer in zip(requested, answers, strict=True)
            if isinstance(answer, StripeFailure)
        }
        alone = [i for i in offline_ids if i not in outcomes]
        for offline_id, outcome in zip(
            alone, pool.map(lambda i: self.forward(i, failed.get(i)), alone), strict=True
        ):
            outcomes[offline_id] = outcome
        return [outcomes[offline_id] for offline_id in offline_ids]

    def _send(self, payment: PaymentState) -> dict[str, Any] | StripeFailure:
        """The batch's one create-and-confirm for the payment: what Stripe created, or why not."""
        try:
            return self._create(payment)
        except StripeFailure as failure:
            return failure

    def _create(self, payment: PaymentState) -> dict[str, Any]:
        """Create and confirm the payment's PaymentIntent under its latest recorded key."""
        assert payment.forward_idempotency_key is not None  # its intent is recorded first
        payment_method_id = _saved(payment, "payment_method_id")
        assert payment_method_id is not None  # only a sendable payment is sent
        return self.gateway.create_and_confirm(
            offline_id=payment.offline_id,
            amount=payment.amount,
            currency=payment.currency,
            payment_method_id=payment_method_id,
            capture_method=payment.capture_method,
            idempotency_key=payment.forward_idempotency_key,
            metadata=payment.metadata,
            customer_id=_saved(payment, "customer_id"),
        )

    def forward(self, offline_id: str, sent: StripeFailure | None = None) -> Outcome:
        """Forward one payment, attempt after attempt. `sent`: its first attempt was made by a
        batch (its intent recorded, its request sent) and failed so; go on from there."""
        payment = self.ledger.payment(offline_id)
        if not _sendable(payment):
            return Outcome.SKIPPED
        key = _key(payment)
        # The batch's failed request is known, not unknown: it is handled as if made here.
        unknown = payment.forward_outcome_unknown and sent is None
        last_error: StripeFailure | None = None
        # PaymentIntents for it were created after it was stored: the lookup's window.
        window = payment.stored_at or payment.created_at
        for attempt in range(self.attempts_max + 1):
            try:
                if unknown:
                    found = self.gateway.find_by_offline_id(offline_id, window - LOOKUP_MARGIN)
                    if found:
                        self._record(payment, _oldest(found))
                        return Outcome.RECOVERED
                    unknown = False  # it never landed: sending again is safe
                    key = next_key(key, offline_id)  # the old key may replay its failure
                if attempt == self.attempts_max:
                    break  # that was the last look
                if attempt == 0 and sent is not None:
                    raise sent
                payment = self.ledger.request_forward(offline_id, key)
                created = self._create(payment)
            except StripeFailure as failure:
                if failure.code is Code.STRIPE_CARD_DECLINED:
                    self._declined(payment, failure)
                    return Outcome.DECLINED
                if failure.code is Code.STRIPE_AUTHENTICATION_REQUIRED:
                    self._failed(payment, failure, retryable=False)
                    return Outcome.NEEDS_CUSTOMER
                if not (failure.outcome_unknown or failure.code is Code.STRIPE_RATE_LIMITED):
                    if not unknown:
                        self._failed(payment, _explained(failure, payment), retryable=False)
                    return Outcome.FAILED
                # A failed lookup leaves the earlier outcome unknown; a failed create makes
                # it unknown unless Stripe said it did nothing (429).
                unknown = unknown or failure.outcome_unknown
                if not unknown:
                    self._failed(payment, failure, retryable=True)
                last_error = failure
                wait = _backoff(attempt, failure.retry_after_seconds)
                self.sleep(max(wait, self.settle_seconds) if unknown else wait)
                continue
            if created.get("status") == "requires_action":
                self._needs_customer(payment, created)
                return Outcome.NEEDS_CUSTOMER
            self._record(payment, created)
            return Outcome.FORWARDED
        # Out of attempts. An outcome still unknown stays on record as such, so that the next
        # run looks the payment up before sending anything.
        assert last_error is not None
        if not unknown:
            self._failed(payment, last_error, retryable=True)
        return Outcome.FAILED

    def _record(self, payment: PaymentState, item: dict[str, Any]) -> None:
        """What Stripe answered about the payment, and the facts it implies."""
        self.service.observe([observed(item)], about=[payment.offline_id])

    def _declined(self, payment: PaymentState, failure: StripeFailure) -> None:
        self.ledger.bind_stripe_mode(self.gateway.mode.livemode)  # Stripe answered
        self.ledger.record(
            {
                "type": "payment.declined",
                "occurred_at": datetime.now(UTC).isoformat(),
                "offline_id": payment.offline_id,
                "payment_intent_id": failure.payment_intent_id,
                "decline_code": failure.decline_code or "card_declined",
            }
        )

    def _needs_customer(self, payment: PaymentState, item: dict[str, Any]) -> None:
        """Stripe created the PaymentIntent but holds it until the cardholder authenticates:
        not forwarded (no money is held), a failed forward only the customer can finish."""
        self.ledger.bind_stripe_mode(shown_livemode(item, self.gateway.mode))
        self._failed(
            payment,
            StripeFailure(
                Code.STRIPE_AUTHENTICATION_REQUIRED,
                f"PaymentIntent {item.get('id')} requires_action: the card needs the customer "
                "to authenticate; ask them to pay again or to confirm it in your app",
                payment_intent_id=item.get("id"),
            ),
            retryable=False,
        )

    def _failed(self, payment: PaymentState, failure: StripeFailure, *, retryable: bool) -> None:
        self.ledger.record(
            {
                "type": "payment.forward_failed",
                "occurred_at": datetime.now(UTC).isoformat(),
                "offline_id": payment.offline_id,
                "error_code": str(failure.code),
                "message": failure.message[:500],
                "retryable": retryable,
            }
        )


def _sendable(payment: PaymentState) -> bool:
    """Whether the payment can be sent: still stored, with a reusable payment method."""
    return payment.status == "stored" and bool(_saved(payment, "payment_method_id"))


def _saved(payment: PaymentState, key: Literal["payment_method_id", "customer_id"]) -> str | None:
    """The saved card's PaymentMethod or Customer, if the collected card names one (cards
    collected before forwarding through the API name neither)."""
    return payment.card.get(key) if payment.card is not None else None


def _key(payment: PaymentState) -> str:
    """The key of its latest recorded intent, or the first key for it."""
    return payment.forward_idempotency_key or idempotency_key(payment.offline_id)


def _explained(failure: StripeFailure, payment: PaymentState) -> StripeFailure:
    """Stripe's refusal, saying what is needed when the saved card's Customer is unknown."""
    if failure.code is not Code.STRIPE_INVALID_REQUEST or _saved(payment, "customer_id"):
        return failure
    return StripeFailure(
        failure.code,
        f"{failure.message[:300]}; a saved card belongs to a Customer: give its id "
        "(cus_...) in the payment's card.customer_id",
    )


def _oldest(found: list[dict[str, Any]]) -> dict[str, Any]:
    """More than one can only come from someone else's duplicate: the first one is ours."""
    return min(found, key=lambda item: (item.get("created", 0), item["id"]))


def _backoff(attempt: int, retry_after_seconds: float | None) -> float:
    if retry_after_seconds is not None:
        return min(retry_after_seconds, BACKOFF_MAX_SECONDS * 4)
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)
