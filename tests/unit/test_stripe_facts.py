"""What Stripe's view of a PaymentIntent records in the ledger (used by sync and webhooks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger import Ledger
from ledger.observations import PaymentIntentObservation
from ledger.stripe_facts import facts
from tests.support import records as r

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def seen(status: str, amount: int = 1250, **fields: Any) -> PaymentIntentObservation:
    return PaymentIntentObservation(
        source="webhook",
        payment_intent_id="pi_1",
        amount=amount,
        currency="usd",
        status=status,
        as_of=AT,
        **fields,
    )


def apply(ledger: Ledger, offline_id: str, observation: PaymentIntentObservation) -> str:
    for record in facts(observation, ledger.payment(offline_id)):
        ledger.record(record)
    return ledger.payment(offline_id).status


@pytest.fixture
def stored(memory_ledger: Ledger) -> tuple[Ledger, str]:
    offline_id = str(uuid.uuid4())
    for record in [
        r.location(),
        r.device(),
        *r.stored_payment(offline_id, capture_method="manual"),
    ]:
        memory_ledger.record(record)
    return memory_ledger, offline_id


def test_an_authorization_then_its_capture_are_forwarded_then_captured(
    stored: tuple[Ledger, str],
) -> None:
    ledger, offline_id = stored
    assert apply(ledger, offline_id, seen("requires_capture")) == "forwarded"
    assert apply(ledger, offline_id, seen("succeeded", amount_received=1250)) == "captured"
    assert ledger.payment(offline_id).amount_captured == 1250
    # The same states seen again (a redelivery, a second sync) record nothing new.
    assert all(
        not ledger.record(x).recorded for x in facts(seen("succeeded"), ledger.payment(offline_id))
    )


def test_a_partial_capture_seen_first_records_the_authorization_and_what_was_received(
    stored: tuple[Ledger, str],
) -> None:
    ledger, offline_id = stored
    assert apply(ledger, offline_id, seen("succeeded", amount_received=1000)) == "captured"
    assert ledger.payment(offline_id).amount_captured == 1000


def test_a_decline_is_recorded_with_its_code_or_a_generic_one(
    stored: tuple[Ledger, str],
) -> None:
    ledger, offline_id = stored
    assert apply(ledger, offline_id, seen("requires_payment_method")) == "declined"
    assert ledger.payment(offline_id).decline_code == "generic_decline"


def test_a_second_payment_intent_for_the_payment_is_flagged_as_a_duplicate(
    stored: tuple[Ledger, str],
) -> None:
    ledger, offline_id = stored
    apply(ledger, offline_id, seen("succeeded"))
    other = seen("succeeded").model_copy(update={"payment_intent_id": "pi_2"})
    apply(ledger, offline_id, other)
    assert ledger.payment(offline_id).duplicate_payment_intent_ids == ["pi_2"]


def test_a_voided_authorization_cancels_the_payment(stored: tuple[Ledger, str]) -> None:
    ledger, offline_id = stored
    apply(ledger, offline_id, seen("requires_capture"))
    assert apply(ledger, offline_id, seen("canceled")) == "canceled"


def test_history_shows_what_stripe_said_beside_the_payments_events(
    stored: tuple[Ledger, str],
) -> None:
    ledger, offline_id = stored
    observed = seen("requires_capture").model_copy(update={"offline_id": offline_id})
    apply(ledger, offline_id, observed)
    ledger.observe([observed])
    entries = ledger.history(offline_id)
    assert [(e.source, e.event) for e in entries][-2:] == [
        ("ledger", "Forwarded"),
        ("stripe", "PaymentIntentObserved"),
    ]
    assert entries[-1].data["observation"]["status"] == "requires_capture"
