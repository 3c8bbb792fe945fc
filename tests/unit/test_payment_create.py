"""A payment's creation from the handler's mapping: its event's fields in their stored order."""

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


def test_the_created_events_fields_in_their_stored_order() -> None:
    payment = Payment.create(OFFLINE_ID, FIELDS, MOMENT)
    (event,) = payment.pending_events
    # The order is the stored bytes'.
    assert [(k, v) for k, v in vars(event).items() if k != "timestamp"] == [
        ("originator_id", payment.id),
        ("originator_version", 1),
        ("originator_topic", event.originator_topic),
        ("offline_id", str(OFFLINE_ID)),
        *FIELDS.items(),
        ("occurred_at", MOMENT),
    ]
    assert payment.creation_fields() == FIELDS


def test_the_created_event_keeps_a_copy_of_the_metadata() -> None:
    metadata = {"order": "42"}
    payment = Payment.create(OFFLINE_ID, {**FIELDS, "metadata": metadata}, MOMENT)
    metadata["order"] = "43"
    assert payment.metadata == {"order": "42"}
    (event,) = payment.pending_events
    assert event.metadata == {"order": "42"}
