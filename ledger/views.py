"""What the library returns: plain, JSON-ready snapshots of aggregate state (a location's
status and allowances: `ledger.status_views`).

Field names follow Stripe where Stripe has one (`offline_payments_count`,
`offline_payment_amounts_by_currency` are the Terminal SDK's OfflineStatus names).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

from ledger.card import CollectedCard
from ledger.device import Device
from ledger.errors import Breach
from ledger.limits import Headroom, HeadroomRow

if TYPE_CHECKING:  # a view of a location loads neither aggregate
    from ledger.payment import Payment
    from ledger.reservation import Reservation


class _View(BaseModel):
    # Built when first used: a command builds the views it returns, not all of them.
    model_config = ConfigDict(frozen=True, defer_build=True)


# Headroom rows in their JSON form (`max`, `remaining`), the same in every view.
HeadroomRows = Annotated[
    list[Headroom],
    PlainSerializer(lambda rows: [row.to_dict() for row in rows], return_type=list[HeadroomRow]),
]


class PaymentState(_View):
    offline_id: str
    status: str
    amount: int
    currency: str
    device_id: str
    location_id: str
    capture_method: str
    offline_behavior: str
    payment_intent_id: str | None
    duplicate_payment_intent_ids: list[str]
    stripe_status: str | None
    card: CollectedCard | None
    created_at: datetime
    stored_at: datetime | None
    forwarded_at: datetime | None
    amount_captured: int
    decline_code: str | None
    cancel_reason: str | None
    forward_failures: int
    forward_outcome_unknown: bool
    forward_idempotency_key: str | None  # the key of the latest forward requested
    metadata: dict[str, str]
    breaches: list[Breach]  # every rule its facts broke: code, message, details
    reported_late: bool  # a step came before the steps it implies
    implied_steps: list[str]  # steps recorded as implied, their reports still missing
    version: int

    @classmethod
    def of(cls, payment: Payment) -> PaymentState:
        return cls(
            offline_id=payment.offline_id,
            status=str(payment.status),
            amount=payment.amount,
            currency=payment.currency,
            device_id=payment.device_id,
            location_id=payment.location_id,
            capture_method=payment.capture_method,
            offline_behavior=payment.offline_behavior,
            payment_intent_id=payment.payment_intent_id,
            duplicate_payment_intent_ids=list(payment.duplicate_payment_intent_ids),
            stripe_status=payment.stripe_status,
            card=payment.card,
            created_at=payment.created_at,
            stored_at=payment.stored_at,
            forwarded_at=payment.forwarded_at,
            amount_captured=payment.amount_captured,
            decline_code=payment.decline_code,
            cancel_reason=payment.cancel_reason,
            forward_failures=len(payment.forward_failures),
            forward_outcome_unknown=payment.forward_outcome_unknown,
            forward_idempotency_key=payment.forward_key,
            metadata=payment.metadata,
            breaches=payment.breaches,
            reported_late=payment.reported_late,
            implied_steps=[
                step
                for step, implied in (
                    ("confirmed_offline", payment.stored_implied),
                    ("forwarded", payment.forward_implied),
                )
                if implied
            ],
            version=payment.version,
        )


class DeviceState(_View):
    device_id: str
    reader_type: str | None
    last_connected_at: datetime
    last_location_id: str
    software_updated_at: datetime | None
    connections: dict[str, datetime]

    @classmethod
    def of(cls, device: Device) -> DeviceState:
        return cls(
            device_id=device.device_id,
            reader_type=device.reader_type,
            last_connected_at=device.last_connected_at,
            last_location_id=device.last_location_id,
            software_updated_at=device.software_updated_at,
            connections=dict(device.connections),
        )


class ReservationState(_View):
    """The answer to a reservation request, as recorded: a retry gets it unchanged."""

    offline_id: str
    granted: bool
    offline_behavior: str  # what to pass to the Terminal SDK: prefer_online | require_online
    code: str | None  # the first reason's code when refused
    reasons: list[Breach]  # code, message, field, details (what the check saw)
    headroom: HeadroomRows  # per limit, as it was when answered (holds included)
    amount: int
    currency: str
    device_id: str
    location_id: str
    answered_at: datetime
    expires_at: datetime | None  # the hold ends then unless the payment is confirmed
    released_at: datetime | None

    @classmethod
    def of(cls, reservation: Reservation) -> ReservationState:
        request = reservation.request
        return cls(
            offline_id=reservation.offline_id,
            granted=reservation.granted,
            offline_behavior="prefer_online" if reservation.granted else "require_online",
            code=reservation.reasons[0]["code"] if reservation.reasons else None,
            reasons=reservation.reasons,
            headroom=[Headroom.from_dict(row) for row in reservation.headroom],
            amount=request["amount"],
            currency=request["currency"],
            device_id=request["device_id"],
            location_id=request["location_id"],
            answered_at=reservation.answered_at,
            expires_at=reservation.expires_at,
            released_at=reservation.released_at,
        )


class HistoryEntry(_View):
    source: str  # "ledger" (the payment's own events) or "stripe" (observations)
    version: int
    event: str
    occurred_at: datetime | None
    recorded_at: datetime
    data: dict[str, Any]
