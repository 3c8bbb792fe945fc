"""The Stripe service's one error policy (ledger/stripe_service.py), through a fake port: what
is recorded when the ledger refuses an implied fact, when modes mix, and which failures stop a
run of captures."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger import Ledger, LedgerError
from ledger.errors import Code, Conflict, InvalidRecord, NotFound, StorageError
from ledger.observations import PaymentIntentObservation
from ledger.stripe_service import StripeService, refuses_one
from tests.support import records as r

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def seen(
    offline_id: str | None, status: str, pi: str = "pi_1", **fields: Any
) -> PaymentIntentObservation:
    return PaymentIntentObservation(
        source="api",
        offline_id=offline_id,
        payment_intent_id=pi,
        amount=1250,
        currency="usd",
        status=status,
        as_of=AT,
        **fields,
    )


class FakeApi:
    """Stripe's API as the port shows it: each capture answers `succeeded`, unless the
    PaymentIntent is listed in `failing` with the error to raise."""

    livemode = False

    def __init__(self, failing: dict[str, LedgerError] | None = None) -> None:
        self.failing = failing or {}
        self.keys: list[str] = []

    def capture(
        self, payment_intent_id: str, amount: int | None, idempotency_key: str
    ) -> PaymentIntentObservation:
        self.keys.append(idempotency_key)
        if payment_intent_id in self.failing:
            raise self.failing[payment_intent_id]
        return seen(None, "succeeded", pi=payment_intent_id)


def stored(ledger: Ledger, count: int) -> list[str]:
    ledger.record(r.location())
    ledger.record(r.device())
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for offline_id in ids:
        for record in r.stored_payment(offline_id, capture_method="manual"):
            ledger.record(record)
    return ids


def authorized(ledger: Ledger, api: FakeApi, count: int) -> list[str]:
    ids = stored(ledger, count)
    service = StripeService(ledger, api)
    for number, offline_id in enumerate(ids):
        service.observe([seen(offline_id, "requires_capture", pi=f"pi_{number}")])
    return ids


def test_observing_records_the_implied_facts_then_the_observation_once(
    memory_ledger: Ledger,
) -> None:
    (offline_id,) = stored(memory_ledger, 1)
    service = StripeService(memory_ledger)
    first = service.observe([seen(offline_id, "requires_capture")], livemode=False)
    assert (first.facts, first.observations_recorded, first.refused) == (
        ["payment.forwarded"],
        1,
        [],
    )
    again = service.observe([seen(offline_id, "requires_capture")], livemode=False)
    assert (again.facts, again.observations_recorded) == ([], 0)
    assert memory_ledger.payment(offline_id).status == "forwarded"
    assert memory_ledger.stripe_mode() is False


def test_a_fact_the_ledger_refuses_is_returned_and_stripes_word_is_still_recorded(
    memory_ledger: Ledger,
) -> None:
    (offline_id,) = stored(memory_ledger, 1)
    service = StripeService(memory_ledger)
    service.observe([seen(offline_id, "requires_capture")])
    # Stripe captured more than the ledger's payment authorized: the report shows it.
    more = seen(offline_id, "succeeded").model_copy(
        update={"amount": 2000, "amount_received": 2000}
    )
    observed = service.observe([more])
    assert [(x.offline_id, x.record_type) for x in observed.refused] == [
        (offline_id, "payment.captured")
    ]
    assert observed.refused[0].error.code == Code.CAPTURE_EXCEEDS_AMOUNT
    assert observed.observations_recorded == 1
    assert memory_ledger.payment(offline_id).status == "forwarded"


def test_an_orphan_records_its_observation_and_no_fact(memory_ledger: Ledger) -> None:
    service = StripeService(memory_ledger)
    for number, offline_id in enumerate([None, "not-a-uuid", str(uuid.uuid4())]):
        observed = service.observe([seen(offline_id, "succeeded", pi=f"pi_{number}")])
        assert (observed.facts, observed.refused, observed.observations_recorded) == ([], [], 1)


def test_objects_of_both_modes_together_are_refused_and_nothing_is_recorded(
    memory_ledger: Ledger,
) -> None:
    service = StripeService(memory_ledger)
    both = [
        seen(None, "succeeded", pi="pi_t", livemode=False),
        seen(None, "succeeded", pi="pi_l", livemode=True),
    ]
    for call in (lambda: service.import_file(both), lambda: service.observe(both)):
        with pytest.raises(Conflict) as refused:
            call()
        assert refused.value.code == Code.STRIPE_MODE_MISMATCH
    assert memory_ledger.stripe_mode() is None
    assert service.import_file(both[:1]).recorded == 1
    assert memory_ledger.stripe_mode() is False


def test_a_webhook_events_receipt_is_recorded_with_its_observations(
    memory_ledger: Ledger,
) -> None:
    service = StripeService(memory_ledger)
    assert not service.event_received("evt_1")
    event = ("evt_1", "payment_intent.succeeded")
    assert (
        service.observe(
            [seen(None, "succeeded")], livemode=True, stripe_event=event
        ).observations_recorded
        == 1
    )
    assert service.event_received("evt_1")
    assert memory_ledger.stripe_mode() is True


def test_capturing_all_lists_what_one_payment_refuses_and_goes_on(memory_ledger: Ledger) -> None:
    api = FakeApi(
        {
            "pi_1": LedgerError(
                Code.STRIPE_INVALID_REQUEST, "This PaymentIntent could not be captured"
            )
        }
    )
    first, second, third = authorized(memory_ledger, api, 3)
    captures = StripeService(memory_ledger, api).capture_all([first, second, third])
    assert [o.payment_intent_id for o in captures.captured] == ["pi_0", "pi_2"]
    assert [(i, e.code) for i, e in captures.failed] == [(second, Code.STRIPE_INVALID_REQUEST)]
    assert memory_ledger.payment(first).status == "captured"
    assert memory_ledger.payment(second).status == "forwarded"
    assert api.keys[0] == f"offline-ledger-capture-{first}-1250"


def test_capturing_all_stops_at_what_concerns_every_payment(memory_ledger: Ledger) -> None:
    api = FakeApi({"pi_0": LedgerError(Code.STRIPE_UNREACHABLE, "no answer from Stripe")})
    first, second = authorized(memory_ledger, api, 2)
    with pytest.raises(LedgerError) as stopped:
        StripeService(memory_ledger, api).capture_all([first, second])
    assert stopped.value.code == Code.STRIPE_UNREACHABLE
    assert len(api.keys) == 1  # the second payment was not tried
    assert memory_ledger.payment(second).status == "forwarded"


def test_a_payment_that_is_not_an_authorization_is_refused_before_stripe_is_called(
    memory_ledger: Ledger,
) -> None:
    api = FakeApi()
    (offline_id,) = stored(memory_ledger, 1)
    with pytest.raises(Conflict) as refused:
        StripeService(memory_ledger, api).capture(offline_id)
    assert refused.value.code == Code.STEP_OUT_OF_ORDER
    (authorized_id,) = authorized(memory_ledger, api, 1)
    with pytest.raises(Conflict) as too_much:
        StripeService(memory_ledger, api).capture(authorized_id, amount=1251)
    assert too_much.value.code == Code.CAPTURE_EXCEEDS_AMOUNT
    assert api.keys == []


@pytest.mark.parametrize(
    ("error", "one"),
    [
        (Conflict(Code.STEP_OUT_OF_ORDER, "x"), True),
        (NotFound(Code.UNKNOWN_PAYMENT, "x"), True),
        (InvalidRecord(Code.INVALID_VALUE, "x"), True),
        (LedgerError(Code.STRIPE_CARD_DECLINED, "x"), True),
        (LedgerError(Code.STRIPE_INVALID_REQUEST, "x"), True),
        (Conflict(Code.CONTENTION, "x"), False),
        (Conflict(Code.STRIPE_MODE_MISMATCH, "x"), False),
        (StorageError(Code.DATABASE_UNAVAILABLE, "x"), False),
        (LedgerError(Code.STRIPE_UNREACHABLE, "x"), False),
        (LedgerError(Code.STRIPE_API_ERROR, "x"), False),
        (LedgerError(Code.STRIPE_RATE_LIMITED, "x"), False),
        (LedgerError(Code.STRIPE_AUTHENTICATION, "x"), False),
    ],
)
def test_the_policy_tells_a_refusal_of_one_payment_from_what_concerns_them_all(
    error: LedgerError, one: bool
) -> None:
    assert refuses_one(error) is one
