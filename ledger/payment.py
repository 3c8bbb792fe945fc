"""The lifecycle of one offline payment, as an event-sourced aggregate.

Each command is split in two: `plan_*` decides from the current state alone (a new fact, a
repeat of a recorded fact, or a refusal) and raises nothing but typed errors; the trigger method
records the event. The application runs every check of every aggregate a record touches before
it triggers anything, so a refused record leaves no event behind. The handler asks for the plan
once and hands it to the trigger method where the event depends on it (`confirm_offline`,
`forward`); the trigger methods of the steps most records are do not decide it again (a
second `plan_*` and a property or two for each step of every payment, about 0.8 Python calls
an event of the ~18 the deciding makes).

    created -> collected -> stored --forwarded--> forwarded --captured--> captured
                                 \\--declined--> declined     \\--declined--> declined
    canceled: from created or collected, from stored (releases it), or a void of an
    authorization (forwarded, requires_capture).

What a reader or Stripe already did is a fact: it is recorded whatever rule it broke, with
each broken rule as a breach (its code and what the check saw). A step that arrives before the
steps it implies (Stripe's webhook before the POS's records, a reader forwarding as soon as it
reconnects) is recorded, and the implied steps with it, marked `implied`; when their own
records come, they are recorded once, `reported_late`, and fix the moments the implied steps
could only bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from typing_extensions import TypedDict

from ledger.card import CollectedCard
from ledger.errors import Breach, Code, Conflict
from ledger.identity import offline_text, payment_id
from ledger.journal import Journaled

FORWARD_FAILURES_MAX = 1000


class Status(StrEnum):
    CREATED = "created"
    COLLECTED = "collected"
    STORED = "stored"
    FORWARDED = "forwarded"
    CAPTURED = "captured"
    DECLINED = "declined"
    CANCELED = "canceled"


class Plan(StrEnum):
    NEW = "new"  # a new fact: trigger it
    REPEAT = "repeat"  # already recorded: idempotent no-op
    DUPLICATE_FORWARD = "duplicate_forward"  # a second, different PaymentIntent
    LATE = "late"  # the report of a step that was implied: fixes its moment


# The members as module globals, for the rules below that read them on every record: a member
# read through its enum (`Status.STORED`) goes through `EnumType.__getattr__`'s slot hook on
# Python 3.11, ten times the cost of a global. The handlers compare plans with these too.
CREATED, COLLECTED, STORED = Status.CREATED, Status.COLLECTED, Status.STORED
FORWARDED, CAPTURED, DECLINED, CANCELED = (
    Status.FORWARDED,
    Status.CAPTURED,
    Status.DECLINED,
    Status.CANCELED,
)
NEW, REPEAT, DUPLICATE_FORWARD, LATE = Plan.NEW, Plan.REPEAT, Plan.DUPLICATE_FORWARD, Plan.LATE


class ForwardFailure(TypedDict):
    """A forward Stripe refused or that never arrived, as the payment keeps it: enough to
    tell a repeated report (same moment and code) and whether to try again."""

    occurred_at: str  # ISO 8601, as recorded
    error_code: str
    retryable: bool


class Payment(Journaled):
    TOPIC = "offline_ledger:Payment"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:Payment.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:Payment.Created"
        offline_id: str
        device_id: str
        location_id: str
        amount: int
        currency: str
        capture_method: str
        offline_behavior: str
        payment_intent_id: str | None
        metadata: dict[str, str]
        occurred_at: datetime

        def apply(self, aggregate: Payment) -> None:
            payment: Payment = aggregate
            payment.offline_id = self.offline_id
            payment.device_id = self.device_id
            payment.location_id = self.location_id
            payment.amount = self.amount
            payment.currency = self.currency
            payment.capture_method = self.capture_method
            payment.offline_behavior = self.offline_behavior
            payment.payment_intent_id = self.payment_intent_id
            payment.created_payment_intent_id = self.payment_intent_id
            payment.metadata = dict(self.metadata)
            payment.created_at = self.occurred_at
            payment.status = CREATED
            payment.card = None
            payment.cards_collected = []
            payment.stored_at = None
            payment.forwarded_at = None
            payment.stripe_status = None
            payment.duplicate_payment_intent_ids = []
            payment.forward_failures = []
            payment.forward_pending = False
            payment.forward_key = None
            payment.decline_code = None
            payment.amount_captured = 0
            payment.cancel_reason = None
            payment.canceled_at = None
            payment.card_breaches = []
            payment.store_breaches = []
            payment.stored_implied = False
            payment.forward_implied = False
            payment.reported_late = False

    class PaymentMethodCollected(Event):
        """Version 2 adds `breaches` (the card rules the card broke) and `reported_late`
        (collected after a later step was recorded)."""

        TOPIC = "offline_ledger:Payment.PaymentMethodCollected"
        card: CollectedCard
        breaches: list[Breach]
        reported_late: bool
        occurred_at: datetime

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            state["breaches"] = []  # version 1 refused a card that broke a rule
            state["reported_late"] = False

        def apply(self, aggregate: Payment) -> None:
            aggregate.card = self.card.copy()
            aggregate.cards_collected.append(aggregate.card)
            aggregate.card_breaches = list(self.breaches)
            if self.reported_late:
                aggregate.reported_late = True
            else:
                aggregate.status = COLLECTED

    class ConfirmedOffline(Event):
        """Version 2 adds `breaches` (every rule and limit the storing broke, with what the
        check saw), `implied` (not reported: a later step showed the payment was stored; the
        moment is a bound, the payment's creation) and `reported_late` (the report of a
        confirmation that was implied, with its real moment)."""

        TOPIC = "offline_ledger:Payment.ConfirmedOffline"
        stored_at: datetime
        breaches: list[Breach]
        implied: bool
        reported_late: bool
        occurred_at: datetime

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            state["breaches"] = []  # version 1 refused a confirmation that broke a rule
            state["implied"] = False
            state["reported_late"] = False

        def apply(self, aggregate: Payment) -> None:
            aggregate.stored_at = self.stored_at
            aggregate.store_breaches = list(self.breaches)
            aggregate.stored_implied = self.implied
            if self.implied or self.reported_late:
                aggregate.reported_late = True
            if not self.reported_late:
                aggregate.status = STORED

    class Rejudged(Event):
        """The payment's stored-limit breaches changed because a fact about another payment
        of the location, earlier by `occurred_at`, arrived after this one's confirmation; or,
        `cause_offline_id` empty, a configuration in force from before it did."""

        TOPIC = "offline_ledger:Payment.Rejudged"
        breaches: list[Breach]
        cause_offline_id: str
        occurred_at: datetime

        def apply(self, aggregate: Payment) -> None:
            aggregate.store_breaches = list(self.breaches)

    class Forwarded(Event):
        """Version 2 adds `implied` (not reported: a capture showed Stripe had the payment;
        the moment is a bound, the capture's) and `reported_late` (the report of a forward
        that was implied: it fixes the moment and changes nothing else)."""

        TOPIC = "offline_ledger:Payment.Forwarded"
        payment_intent_id: str
        status: str
        implied: bool
        reported_late: bool
        occurred_at: datetime

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            state["implied"] = False
            state["reported_late"] = False

        def apply(self, aggregate: Payment) -> None:
            aggregate.forwarded_at = self.occurred_at
            aggregate.forward_implied = self.implied
            if self.implied:
                aggregate.reported_late = True
            if self.reported_late:
                return  # the capture came first: only the moment is news
            aggregate.payment_intent_id = self.payment_intent_id
            aggregate.stripe_status = self.status
            if aggregate.status == DECLINED:
                return  # the decline came first; Stripe's id is news, the outcome is not
            if self.status == "succeeded":
                aggregate.status = CAPTURED
                aggregate.amount_captured = aggregate.amount
            else:
                aggregate.status = FORWARDED

    class ForwardRequested(Event):
        """A forwarder is about to send this payment to Stripe with `idempotency_key`:
        recorded first, so that after a crash the outcome is known to be unknown."""

        TOPIC = "offline_ledger:Payment.ForwardRequested"
        idempotency_key: str
        occurred_at: datetime

        def apply(self, aggregate: Payment) -> None:
            aggregate.forward_pending = True
            aggregate.forward_key = self.idempotency_key

    class ForwardFailed(Event):
        TOPIC = "offline_ledger:Payment.ForwardFailed"
        error_code: str
        message: str
        retryable: bool
        occurred_at: datetime

        def apply(self, aggregate: Payment) -> None:
            aggregate.forward_pending = False
            aggregate.forward_failures.append(
                {
                    "occurred_at": self.occurred_at.isoformat(),
                    "error_code": self.error_code,
                    "retryable": self.retryable,
                }
            )

    class Declined(Event):
        TOPIC = "offline_ledger:Payment.Declined"
        payment_intent_id: str | None
        decline_code: str
        occurred_at: datetime

        def apply(self, aggregate: Payment) -> None:
            if self.payment_intent_id is not None:
                aggregate.payment_intent_id = self.payment_intent_id
            aggregate.decline_code = self.decline_code
            aggregate.status = DECLINED

    class Captured(Event):
        TOPIC = "offline_ledger:Payment.Captured"
        payment_intent_id: str
        amount_captured: int
        occurred_at: datetime

        def apply(self, aggregate: Payment) -> None:
            aggregate.amount_captured = self.amount_captured
            aggregate.stripe_status = "succeeded"
            aggregate.status = CAPTURED

    class Canceled(Event):
        TOPIC = "offline_ledger:Payment.Canceled"
        reason: str
        occurred_at: datetime

        def apply(self, aggregate: Payment) -> None:
            aggregate.cancel_reason = self.reason
            aggregate.canceled_at = self.occurred_at
            aggregate.status = CANCELED

    class DuplicateForwardDetected(Event):
        """Stripe reported a second PaymentIntent for this offline_id: the customer may be
        charged twice, and `refund_amount` is what to give back if both succeed."""

        TOPIC = "offline_ledger:Payment.DuplicateForwardDetected"
        payment_intent_id: str
        status: str
        refund_amount: int
        occurred_at: datetime

        def apply(self, aggregate: Payment) -> None:
            aggregate.duplicate_payment_intent_ids.append(self.payment_intent_id)

    if TYPE_CHECKING:  # set by the events' apply(); runtime annotations would make
        # the eventsourcing metaclass generate a dataclass __init__
        offline_id: str
        device_id: str
        location_id: str
        amount: int
        currency: str
        capture_method: str
        offline_behavior: str
        payment_intent_id: str | None
        created_payment_intent_id: str | None  # as given at creation (online-created payments)
        metadata: dict[str, str]
        created_at: datetime
        status: Status
        card: CollectedCard | None  # the card the payment is taken with (the last collected)
        cards_collected: list[CollectedCard]  # every card tried, so late retries are repeats
        stored_at: datetime | None
        forwarded_at: datetime | None
        stripe_status: str | None
        duplicate_payment_intent_ids: list[str]
        forward_failures: list[ForwardFailure]
        forward_pending: bool  # a forward was requested and its outcome is not recorded
        forward_key: str | None  # the Idempotency-Key of the latest forward requested
        decline_code: str | None
        amount_captured: int
        cancel_reason: str | None
        canceled_at: datetime | None
        card_breaches: list[Breach]  # the card rules the collected card broke
        store_breaches: list[Breach]  # the rules and limits storing it broke
        stored_implied: bool  # stored as a later step showed, not (yet) reported
        forward_implied: bool  # forwarded as a capture showed, not (yet) reported
        reported_late: bool  # a step was implied by a later one, or reported after it

    @classmethod
    def create(cls, offline_id: UUID, fields: Mapping[str, Any], occurred_at: datetime) -> Payment:
        """The payment `payment.created` makes, from the fields `creation_fields` names as one
        mapping, as its handler has them: a call with ten keywords cost more than the rest of
        the creation's Python. The created event's fields are in this order, the stored
        bytes' (`metadata` copied)."""
        amount = fields["amount"]
        assert amount > 0, amount
        return cls._create_fields(
            cls.Created,
            payment_id(offline_id),
            {
                "offline_id": offline_text(offline_id),
                "device_id": fields["device_id"],
                "location_id": fields["location_id"],
                "amount": amount,
                "currency": fields["currency"],
                "capture_method": fields["capture_method"],
                "offline_behavior": fields["offline_behavior"],
                "payment_intent_id": fields["payment_intent_id"],
                "metadata": dict(fields["metadata"]),
                "occurred_at": occurred_at,
            },
        )

    def creation_fields(self) -> dict[str, object]:
        """What `payment.created` said, to compare a repeat against."""
        return {
            "device_id": self.device_id,
            "location_id": self.location_id,
            "amount": self.amount,
            "currency": self.currency,
            "capture_method": self.capture_method,
            "offline_behavior": self.offline_behavior,
            "payment_intent_id": self.created_payment_intent_id,
            "metadata": self.metadata,
        }

    def creation_difference(self, **fields: object) -> str | None:
        """Name the first field where a repeated `created` differs from the recorded one."""
        for name, value in self.creation_fields().items():
            if fields[name] != value:
                return name
        return None

    @property
    def breaches(self) -> list[Breach]:
        """Every rule the facts of this payment broke, card rules first."""
        return [*self.card_breaches, *self.store_breaches]

    @property
    def is_stored(self) -> bool:
        """Confirmed offline and not yet forwarded, declined or canceled: money at risk."""
        return self.status == STORED

    # -- payment method ---------------------------------------------------------------------

    def plan_collect(self, card: CollectedCard) -> Plan:
        # A customer may try card A, then pay with card B: a late report of A is a repeat of a
        # recorded fact, never a switch back to A.
        if card in self.cards_collected:
            return REPEAT
        if self.status in (CREATED, COLLECTED) or not self.cards_collected:
            return NEW  # in order, or the card of a payment whose later steps came first
        raise self._out_of_order(
            "payment_method_collected",
            "a card can only be collected before the payment is confirmed",
        )

    def collect(self, card: CollectedCard, breaches: list[Breach], occurred_at: datetime) -> None:
        """After `plan_collect` said NEW."""
        self.trigger_fields(
            self.PaymentMethodCollected,
            {
                "card": card,
                "breaches": breaches,
                "reported_late": self.status not in (CREATED, COLLECTED),
                "occurred_at": occurred_at,
            },
        )

    # -- confirmation -------------------------------------------------------------------------

    def plan_confirm(self, stored_at: datetime) -> Plan:
        if self.status in (CREATED, COLLECTED):
            return NEW
        if self.stored_implied:
            return LATE  # a later step implied it; this is its report
        if self.stored_at is None:
            if self.status == CANCELED:
                return LATE  # stored, then canceled: the cancel came first
            raise self._out_of_order("confirmed_offline", "the payment was never stored")
        if self.stored_at != stored_at:
            raise field_conflict("stored_at", self.stored_at, stored_at)
        return REPEAT

    def confirm_offline(
        self,
        plan: Plan,
        stored_at: datetime,
        breaches: list[Breach],
        occurred_at: datetime,
        *,
        implied: bool = False,
    ) -> None:
        """`plan` as `plan_confirm` gave it: NEW, or LATE (the report of an implied one)."""
        assert plan is NEW or (plan is LATE and not implied), plan
        self.trigger_fields(
            self.ConfirmedOffline,
            {
                "stored_at": stored_at,
                "breaches": breaches,
                "implied": implied,
                "reported_late": plan is LATE,
                "occurred_at": occurred_at,
            },
        )

    def rejudge(self, breaches: list[Breach], cause_offline_id: str, occurred_at: datetime) -> None:
        assert breaches != self.store_breaches
        self.trigger_fields(
            self.Rejudged,
            {
                "breaches": breaches,
                "cause_offline_id": cause_offline_id,
                "occurred_at": occurred_at,
            },
        )

    @property
    def needs_storing(self) -> bool:
        """A later step arrived before the confirmation: it implies the payment was stored.
        Not for a payment created online (with its PaymentIntent): Stripe's word on it may
        be that of an online confirmation, which stores nothing."""
        return self.status in (CREATED, COLLECTED) and self.created_payment_intent_id is None

    # -- forwarding ---------------------------------------------------------------------------

    def plan_forward(self, payment_intent_id: str) -> Plan:
        if self.status in (STORED, CREATED, COLLECTED):
            return NEW  # before the confirmation was reported: the handler implies it
        # The same pi_ reported again is a no-op whatever happened since.
        if payment_intent_id == self.payment_intent_id:
            return LATE if self.forward_implied else REPEAT
        if payment_intent_id in self.duplicate_payment_intent_ids:
            return REPEAT
        if self.status == CANCELED:
            raise self._out_of_order("forwarded", "the payment was canceled")
        if self.status == DECLINED and self.payment_intent_id is None:
            return NEW
        return DUPLICATE_FORWARD

    def forward(
        self,
        plan: Plan,
        payment_intent_id: str,
        status: str,
        occurred_at: datetime,
        implied: bool = False,
    ) -> None:
        """`plan` as `plan_forward` gave it (not REPEAT), the confirmation implied first."""
        if plan is NEW or plan is LATE:
            self.trigger_fields(
                self.Forwarded,
                {
                    "payment_intent_id": payment_intent_id,
                    "status": status,
                    "implied": implied,
                    "reported_late": plan is LATE,
                    "occurred_at": occurred_at,
                },
            )
        else:
            assert plan is DUPLICATE_FORWARD, plan
            self.trigger_event(
                self.DuplicateForwardDetected,
                payment_intent_id=payment_intent_id,
                status=status,
                refund_amount=self.amount,
                occurred_at=occurred_at,
            )

    def plan_forward_failure(self, error_code: str, occurred_at: datetime) -> Plan:
        seen = {"occurred_at": occurred_at.isoformat(), "error_code": error_code}
        if any(seen.items() <= failure.items() for failure in self.forward_failures):
            return REPEAT
        if self.status != STORED and not self.needs_storing:
            raise self._out_of_order("forward_failed", "only a stored payment can fail to forward")
        if len(self.forward_failures) >= FORWARD_FAILURES_MAX:
            raise Conflict(
                Code.TOO_MANY_FORWARD_FAILURES,
                f"{FORWARD_FAILURES_MAX} forwarding failures are recorded for this payment; "
                "investigate the device instead of retrying",
            )
        return NEW

    def record_forward_failure(
        self, error_code: str, message: str, retryable: bool, occurred_at: datetime
    ) -> None:
        assert self.plan_forward_failure(error_code, occurred_at) is NEW
        assert not self.needs_storing, "imply the confirmation first"
        self.trigger_fields(
            self.ForwardFailed,
            {
                "error_code": error_code,
                "message": message,
                "retryable": retryable,
                "occurred_at": occurred_at,
            },
        )

    # -- outcome ------------------------------------------------------------------------------

    def plan_decline(self, payment_intent_id: str | None, decline_code: str) -> Plan:
        if self.status == DECLINED:
            if decline_code != self.decline_code:
                raise field_conflict("decline_code", self.decline_code, decline_code)
            if payment_intent_id not in (None, self.payment_intent_id):
                raise self._mismatch(payment_intent_id)
            return REPEAT
        if self.status in (STORED, CREATED, COLLECTED):
            return NEW
        if self.status == FORWARDED:
            if payment_intent_id not in (None, self.payment_intent_id):
                raise self._mismatch(payment_intent_id)
            return NEW
        raise self._out_of_order("declined", "only a stored or forwarded payment can be declined")

    def decline(
        self, payment_intent_id: str | None, decline_code: str, occurred_at: datetime
    ) -> None:
        assert self.plan_decline(payment_intent_id, decline_code) is NEW
        assert not self.needs_storing, "imply the confirmation first"
        self.trigger_fields(
            self.Declined,
            {
                "payment_intent_id": payment_intent_id,
                "decline_code": decline_code,
                "occurred_at": occurred_at,
            },
        )

    def plan_capture(self, payment_intent_id: str, amount_captured: int) -> Plan:
        if self.status in (DECLINED, CANCELED):
            raise self._out_of_order("captured", f"the payment is {self.status}")
        if self.status == CAPTURED:
            if payment_intent_id != self.payment_intent_id:
                raise self._mismatch(payment_intent_id)
            if amount_captured != self.amount_captured:
                raise field_conflict("amount_captured", self.amount_captured, amount_captured)
            return REPEAT
        if self.status == FORWARDED and payment_intent_id != self.payment_intent_id:
            raise self._mismatch(payment_intent_id)
        if amount_captured > self.amount:
            raise Conflict(
                Code.CAPTURE_EXCEEDS_AMOUNT,
                f"cannot capture {amount_captured}: only {self.amount} was authorized",
                field="amount_captured",
            )
        return NEW  # before the forward was reported: the handler implies it

    @property
    def needs_forwarding(self) -> bool:
        """A capture arrived before the forward: it implies Stripe had the payment."""
        return self.status in (CREATED, COLLECTED, STORED)

    def capture(self, payment_intent_id: str, amount_captured: int, occurred_at: datetime) -> None:
        """After `plan_capture` said NEW, the forward implied first."""
        self.trigger_fields(
            self.Captured,
            {
                "payment_intent_id": payment_intent_id,
                "amount_captured": amount_captured,
                "occurred_at": occurred_at,
            },
        )

    def plan_cancel(self, reason: str) -> Plan:
        if self.status == CANCELED:
            if reason != self.cancel_reason:
                raise field_conflict("reason", self.cancel_reason, reason)
            return REPEAT
        if self.status in (CREATED, COLLECTED, STORED):
            return NEW
        if self.status == FORWARDED and self.stripe_status == "requires_capture":
            return NEW  # void of an uncaptured authorization
        raise self._out_of_order("canceled", f"a {self.status} payment cannot be canceled")

    def cancel(self, reason: str, occurred_at: datetime) -> None:
        assert self.plan_cancel(reason) is NEW
        self.trigger_fields(self.Canceled, {"reason": reason, "occurred_at": occurred_at})

    # -- forwarding through the API ------------------------------------------------------------

    @property
    def forward_outcome_unknown(self) -> bool:
        """Still stored, and a forward was sent whose answer was never recorded."""
        return self.is_stored and self.forward_pending

    def request_forward(self, idempotency_key: str, occurred_at: datetime) -> bool:
        """Record the intent to send it to Stripe; False if one is already outstanding under
        the same key. A new key while one is outstanding is recorded: the forwarder moves to
        one only after a lookup proved the earlier key created nothing."""
        if not self.is_stored:
            raise self._out_of_order("forward", "only a stored payment is forwarded")
        if self.forward_pending and self.forward_key == idempotency_key:
            return False
        self.trigger_event(
            self.ForwardRequested, idempotency_key=idempotency_key, occurred_at=occurred_at
        )
        return True

    # -- errors -------------------------------------------------------------------------------

    def _out_of_order(self, step: str, fix: str) -> Conflict:
        return Conflict(
            Code.STEP_OUT_OF_ORDER,
            f"'{step}' is not allowed while the payment is {self.status}: {fix}",
            details={"status": str(self.status)},
        )

    def _mismatch(self, payment_intent_id: str | None) -> Conflict:
        return Conflict(
            Code.PAYMENT_INTENT_MISMATCH,
            f"payment_intent_id {payment_intent_id} is not this payment's "
            f"({self.payment_intent_id})",
            field="payment_intent_id",
        )


def field_conflict(field: str, recorded: object, given: object) -> Conflict:
    return Conflict(
        Code.IDEMPOTENCY_CONFLICT,
        f"'{field}' differs from the recorded fact (recorded {recorded}, given {given}); "
        "a correction needs a new record type, not a changed repeat",
        field=field,
    )
