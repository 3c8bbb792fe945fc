"""A payment's creation from the handler's mapping is the keyword creation's, field for field."""

from datetime import UTC, datetime
from uuid import UUID

from ledger.payment import Payment

OFFLINE_ID = UUID("6a0c7f1e-3c1b-4f5e-9d7a-2b8e4c6f1a30")
MOMENT = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)
FIELDS = {
    "device_id": "tmr_1",
    "location_id": "tml_1",
    "amount": 1250,
    "currency": "eur",
    "capture_method": "automatic",
    "offline_behavior": "prefer_online",
    "payment_intent_id": None,
    "metadata": {"order": "42"},
}


def _own_fields(payment: Payment) -> list[tuple[str, object]]:
    (event,) = payment.pending_events
    return [(k, v) for k, v in vars(event).items() if k != "timestamp"]


def test_create_from_makes_the_keyword_creation() -> None:
    by_keywords = Payment.create(offline_id=OFFLINE_ID, occurred_at=MOMENT, **FIELDS)
    from_mapping = Payment.create_from(OFFLINE_ID, FIELDS, MOMENT)
    # The same fields in the same order: the order is the stored bytes'.
    assert _own_fields(from_mapping) == _own_fields(by_keywords)
    assert from_mapping.id == by_keywords.id
    assert from_mapping.creation_fields() == by_keywords.creation_fields()


def test_the_created_event_keeps_a_copy_of_the_metadata() -> None:
    metadata = {"order": "42"}
    payment = Payment.create_from(OFFLINE_ID, {**FIELDS, "metadata": metadata}, MOMENT)
    metadata["order"] = "43"
    assert payment.metadata == {"order": "42"}
    (event,) = payment.pending_events
    assert event.metadata == {"order": "42"}
