"""The Stripe service: what Stripe showed, recorded with the ledger facts it implies, under one
error policy, whichever way Stripe's word arrives (a webhook event, a page of the API sync, an
answer to forwarding or to a capture, an exported file).

Stripe is reached through a port, `StripeApi`, which the adapters provide over their API
gateway (`adapters.stripe.port`): the ledger package still does no I/O beyond its event store,
and the decisions (which facts a PaymentIntent implies, which payment may be captured, what a
failure means) are made here once.

The error policy:
- Stripe's word is a fact: an observation is always recorded. A fact it implies that the
  ledger refuses (a payment declined on one side and captured on the other, a PaymentIntent
  other than the one recorded) is not recorded; it comes back as a `Refusal`, and the
  reconciliation report shows the disagreement.
- An observation that contradicts one recorded, or objects of the other Stripe mode than the
  ledger's (or of both modes at once), are refused whole: nothing of them is recorded.
- Contention (another writer moved the same streams, past the retries), a database that does
  not answer, and a Stripe that does not answer, fails or rate limits, are raised as they are,
  after what was recorded before them. Every record is idempotent, so running the same thing
  again (Stripe's redelivery, the next sync, forward or capture) completes it.
- Over many payments (`capture_all`), a refusal about one payment (by the ledger or by Stripe)
  is listed and the others go on; what concerns them all (`refuses_one` is False: the
  database, contention, Stripe unreachable, the key or the mode refused) stops the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from eventsourcing.persistence import PersistenceError

from ledger.application import BATCH_SIZE_MAX, Ledger, ObserveSummary
from ledger.batches import iter_batches
from ledger.errors import (
    Code,
    Conflict,
    InvalidRecord,
    LedgerError,
    NotFound,
    RuleViolation,
    StorageError,
)
from ledger.identity import stripe_event_id
from ledger.observations import Observation, PaymentIntentObservation
from ledger.stripe_facts import Fact, facts
from ledger.views import PaymentState

# Stripe's refusals of one request about one payment. Its other failures (unreachable, failing,
# rate limiting, the key refused) concern every request alike.
_STRIPE_REFUSALS = frozenset(
    {
        Code.STRIPE_CARD_DECLINED,
        Code.STRIPE_INVALID_REQUEST,
        Code.STRIPE_IDEMPOTENCY_ERROR,
        Code.STRIPE_AUTHENTICATION_REQUIRED,
    }
)


class StripeApi(Protocol):
    """The port: what the service asks of Stripe's API, answered as observations."""

    @property
    def livemode(self) -> bool:
        """The API key's mode (True: live)."""
        ...

    def capture(
        self, payment_intent_id: str, amount: int | None, idempotency_key: str
    ) -> PaymentIntentObservation:
        """Capture the PaymentIntent's authorization (all of it, or `amount`); the
        PaymentIntent as Stripe answered, with its `livemode`."""
        ...


@dataclass(frozen=True)
class Refusal:
    """A fact Stripe's word implies that the ledger refused: the report shows the disagreement."""

    offline_id: str
    record_type: str
    error: LedgerError


@dataclass
class Observed:
    """What one call recorded: observations, new facts (their record types, in order), and the
    implied facts the ledger refused."""

    observations_recorded: int = 0
    facts: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


@dataclass
class Captures:
    captured: list[PaymentIntentObservation] = field(default_factory=list)
    failed: list[tuple[str, LedgerError]] = field(default_factory=list)  # (offline_id, why)


def refuses_one(error: LedgerError) -> bool:
    """Whether `error` refuses one payment's record or request only, so that the others may go
    on; False when it concerns them all (the database, contention, Stripe or its key, the
    ledger's Stripe mode), which stops a run."""
    if error.code in _STRIPE_REFUSALS:
        return True
    return isinstance(error, InvalidRecord | NotFound | Conflict | RuleViolation) and (
        error.code not in (Code.CONTENTION, Code.STRIPE_MODE_MISMATCH)
    )


class StripeService:
    def __init__(self, ledger: Ledger, api: StripeApi | None = None) -> None:
        """`api` is needed only to capture and to check the key's mode; recording what a
        webhook or a file showed needs none."""
        self.ledger = ledger
        self.api = api

    def check_mode(self) -> None:
        """Refuse the API key before any call when the ledger holds the other mode's objects."""
        self.ledger.check_stripe_mode(self._api().livemode)

    def observe(
        self,
        observations: Sequence[Observation],
        *,
        livemode: bool | None = None,
        stripe_event: tuple[str, str] | None = None,
        about: Sequence[str | None] | None = None,
    ) -> Observed:
        """Record what Stripe showed: first the facts each PaymentIntent implies for the ledger
        payment its metadata.offline_id names (each idempotent), then the observations, with
        the event's receipt when they come from one (`stripe_event`: its id and type), in one
        transaction. A crash between the two is safe: the facts repeat as no-ops next time.

        `livemode` is the mode they were shown in when an object does not say (a webhook
        event's; by default the API key's); what Stripe showed binds the ledger to its mode.
        `about` gives, in order, the offline_id of the payment each observation answers a
        request about (a forward, a capture): Stripe's answer concerns it, whatever its
        metadata says."""
        if livemode is None and self.api is not None:
            livemode = self.api.livemode
        self._bind_mode(observations, livemode)
        observed = Observed()
        claimed = [
            (observation, named)
            for observation, named in zip(
                observations, about or [o.offline_id for o in observations], strict=True
            )
            if isinstance(observation, PaymentIntentObservation) and named is not None
        ]
        while claimed:
            # A payment named twice: its second PaymentIntent's facts follow from the state
            # the first one's left.
            now, claimed = _first_of_each(claimed)
            self._record_facts(now, observed)
        summary = self.ledger.observe(observations, stripe_event=stripe_event)
        observed.observations_recorded = summary.recorded
        return observed

    def event_received(self, event_id: str) -> bool:
        """Whether a Stripe event's receipt is recorded: then its facts were too, before it. (A
        redelivery racing the first delivery passes this check, and `observe` then records
        nothing.)"""
        try:
            return bool(
                self.ledger.store.recorder.select_events(stripe_event_id(event_id), limit=1)
            )
        except PersistenceError as error:
            raise StorageError(
                Code.DATABASE_UNAVAILABLE, f"cannot read the event store: {type(error).__name__}"
            ) from None

    def import_file(self, observations: Sequence[Observation]) -> ObserveSummary:
        """Record an exported file (checked whole, then in chunks: `Ledger.observe_file`). A
        file binds the ledger to its objects' mode; a file of the other mode, or of both, is
        refused before anything is recorded."""
        self._bind_mode(observations, None)
        return self.ledger.observe_file(observations)

    def capture(self, offline_id: str, amount: int | None = None) -> PaymentIntentObservation:
        """Capture a forwarded payment's authorization (all of it, or `amount`) and record what
        Stripe answered. The Idempotency-Key follows the offline_id and the amount, so a rerun
        after a lost answer captures nothing twice."""
        api = self._api()
        self.ledger.check_stripe_mode(api.livemode)
        payment = self.ledger.payment(offline_id)
        to_capture = _capturable(payment, amount)
        assert payment.payment_intent_id is not None  # a forwarded payment has one
        observation = api.capture(
            payment.payment_intent_id,
            None if to_capture == payment.amount else to_capture,
            f"offline-ledger-capture-{offline_id}-{to_capture}",
        )
        if observation.amount_received is None and observation.status == "succeeded":
            # Servers that do not report amount_received (a local one) captured what was asked.
            observation = observation.model_copy(update={"amount_received": to_capture})
        self.observe([observation], about=[offline_id])
        return observation

    def capture_all(self, offline_ids: Iterable[str]) -> Captures:
        """Capture each payment in turn: one that cannot be captured is listed with why and the
        others go on; an error that concerns them all stops the run (see the module's policy)."""
        captures = Captures()
        for offline_id in offline_ids:
            try:
                captures.captured.append(self.capture(offline_id))
            except LedgerError as error:
                if not refuses_one(error):
                    raise
                captures.failed.append((offline_id, error))
        return captures

    def _api(self) -> StripeApi:
        if self.api is None:
            raise LedgerError(Code.STRIPE_NOT_CONFIGURED, "this needs Stripe's API: no key given")
        return self.api

    def _bind_mode(self, observations: Sequence[Observation], livemode: bool | None) -> None:
        shown = {_mode(o, livemode) for o in observations} | (
            {livemode} if not observations else set()
        )
        modes = {mode for mode in shown if mode is not None}
        if len(modes) > 1:
            raise Conflict(
                Code.STRIPE_MODE_MISMATCH,
                "Stripe's test-mode and live-mode objects together: a ledger holds one mode; "
                "export (or send) each mode apart",
                field="livemode",
            )
        for mode in modes:
            self.ledger.bind_stripe_mode(mode)

    def _record_facts(
        self, claimed: list[tuple[PaymentIntentObservation, str]], observed: Observed
    ) -> None:
        """The facts each PaymentIntent implies for the payment it names (at most once each),
        recorded in batches (`Ledger.record_many`): one transaction for a page or a batch. The
        payments are read at once (`Ledger.payments`); an offline_id that names none (unknown,
        or not a UUID) makes its PaymentIntent an orphan."""
        payments = self.ledger.payments(offline_id for _, offline_id in claimed)
        records: list[tuple[str, Fact]] = []
        for seen, offline_id in claimed:
            payment = payments.get(offline_id)
            if payment is not None:
                records += [(payment.offline_id, record) for record in facts(seen, payment)]
        for batch in iter_batches(records, BATCH_SIZE_MAX):
            results = self.ledger.record_many([record for _, record in batch])
            for (offline_id, record), result in zip(batch, results, strict=True):
                if isinstance(result, LedgerError):
                    if not refuses_one(result):
                        raise result
                    observed.refused.append(Refusal(offline_id, str(record["type"]), result))
                elif result.recorded:
                    observed.facts.append(str(record["type"]))


def _first_of_each(
    claimed: list[tuple[PaymentIntentObservation, str]],
) -> tuple[list[tuple[PaymentIntentObservation, str]], list[tuple[PaymentIntentObservation, str]]]:
    """The first observation naming each payment, and the others (in order)."""
    first: list[tuple[PaymentIntentObservation, str]] = []
    rest: list[tuple[PaymentIntentObservation, str]] = []
    named: set[str] = set()
    for item in claimed:
        (rest if item[1] in named else first).append(item)
        named.add(item[1])
    return first, rest


def _mode(observation: Observation, default: bool | None) -> bool | None:
    own = observation.livemode if isinstance(observation, PaymentIntentObservation) else None
    return default if own is None else own


def _capturable(payment: PaymentState, amount: int | None) -> int:
    """How much to capture (all of it by default); refuse a payment that is not an uncaptured
    authorization on Stripe, or an amount outside 1..authorized."""
    offline_id = payment.offline_id
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
    return to_capture
