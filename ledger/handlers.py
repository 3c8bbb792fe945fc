"""What each wire record does to the aggregates it touches.

One function per record type. Each first runs every check (ordering, idempotency, card rules,
limits) and only then triggers events, so a refused record leaves nothing behind; the unit of
work verifies that after every refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from ledger import identity, wire
from ledger.device import Device
from ledger.errors import Code, NotFound
from ledger.idempotency import IdempotencyKey, field_digests
from ledger.limits import Policy, Sale, check_card
from ledger.location import Location
from ledger.payment import Payment, Plan, field_conflict
from ledger.unit_of_work import UnitOfWork


def stream_ids(record: wire.Record) -> list[UUID]:
    """The streams a record needs, known before anything is loaded."""
    ids: list[UUID] = []
    if record.idempotency_key is not None:
        ids.append(identity.idempotency_key_id(record.idempotency_key))
    if isinstance(record, wire.LocationConfigured):
        ids.append(identity.location_id(record.location_id))
    elif isinstance(record, wire.DeviceConnectedOnline):
        ids += [identity.device_id(record.device_id), identity.location_id(record.location_id)]
    else:
        ids.append(identity.payment_id(record.offline_id))
        if isinstance(record, wire.PaymentCreated):
            ids += [identity.location_id(record.location_id), identity.device_id(record.device_id)]
    return ids


def related_ids(aggregates: Iterable[Any]) -> list[UUID]:
    """Streams a loaded payment points to (its location and device)."""
    ids: list[UUID] = []
    for aggregate in aggregates:
        if isinstance(aggregate, Payment):
            ids += [
                identity.location_id(aggregate.location_id),
                identity.device_id(aggregate.device_id),
            ]
    return ids


def apply_record(record: wire.Record, uow: UnitOfWork, policy: Policy) -> bool:
    """Apply one record; True if it recorded something new, False for a repeat."""
    key = record.idempotency_key
    if key is None:
        return _HANDLERS[type(record)](record, uow, policy)
    digests = field_digests(record.model_dump(mode="json", exclude={"idempotency_key"}))
    known: IdempotencyKey | None = uow.get(identity.idempotency_key_id(key))
    if known is not None:
        known.check_same(digests)
        return False
    outcome = _HANDLERS[type(record)](record, uow, policy)
    uow.add(IdempotencyKey.record(key, record.type, digests))
    return outcome


def subject(record: wire.Record) -> tuple[str, UUID]:
    """The key a record is about (offline_id, location_id or device_id) and its stream."""
    if isinstance(record, wire.LocationConfigured):
        return record.location_id, identity.location_id(record.location_id)
    if isinstance(record, wire.DeviceConnectedOnline):
        return record.device_id, identity.device_id(record.device_id)
    return str(record.offline_id), identity.payment_id(record.offline_id)


# -- locations and devices ------------------------------------------------------------------


def _location_configured(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    config = record.model_dump(
        mode="json",
        include={"offline_enabled", "sca_required", "currencies", "limits", "device_limits"},
    )
    location: Location | None = uow.get(identity.location_id(record.location_id))
    if location is None:
        uow.add(Location.configure(record.location_id, config, record.occurred_at))
        return True
    return location.reconfigure(config, record.occurred_at)


def _device_connected(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    _require_location(uow, record.location_id)
    device: Device | None = uow.get(identity.device_id(record.device_id))
    if device is None:
        uow.add(
            Device.register(
                record.device_id,
                record.location_id,
                record.reader_type,
                record.software_updated_at,
                record.occurred_at,
            )
        )
        return True
    if not device.is_news(record.location_id, record.occurred_at):
        return False
    device.connect_online(
        record.location_id, record.reader_type, record.software_updated_at, record.occurred_at
    )
    return True


# -- payments ---------------------------------------------------------------------------------


def _created(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    _require_location(uow, record.location_id)
    if uow.get(identity.device_id(record.device_id)) is None:
        raise NotFound(
            Code.UNKNOWN_DEVICE,
            f"device {record.device_id} is unknown: record device.connected_online for it first",
            field="device_id",
        )
    fields = {
        "device_id": record.device_id,
        "location_id": record.location_id,
        "amount": record.amount,
        "currency": record.currency,
        "capture_method": record.capture_method,
        "offline_behavior": record.offline_behavior,
        "payment_intent_id": record.payment_intent_id,
        "metadata": dict(record.metadata),
    }
    existing: Payment | None = uow.get(identity.payment_id(record.offline_id))
    if existing is not None:
        differs = existing.creation_difference(**fields)
        if differs is not None:
            recorded = existing.creation_fields()[differs]
            raise field_conflict(differs, recorded, fields[differs])
        return False
    uow.add(Payment.create(offline_id=record.offline_id, occurred_at=record.occurred_at, **fields))
    return True


def _collected(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    payment = _require_payment(uow, record.offline_id)
    card = record.card.model_dump(mode="json")
    if payment.plan_collect(card) is Plan.REPEAT:
        return False
    location = _require_location(uow, payment.location_id)
    check_card(card, sca_required=location.sca_required, occurred_at=record.occurred_at)
    payment.collect(card, record.occurred_at)
    return True


def _confirmed(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    payment = _require_payment(uow, record.offline_id)
    if payment.plan_confirm(record.stored_at) is Plan.REPEAT:
        return False
    location = _require_location(uow, payment.location_id)
    device: Device | None = uow.get(identity.device_id(payment.device_id))
    sale = Sale(
        payment.amount,
        payment.currency,
        payment.device_id,
        payment.offline_behavior,
        record.occurred_at,
    )
    policy.check_store(sale, location, device)
    payment.confirm_offline(record.stored_at, record.occurred_at)
    location.store_payment(
        payment.offline_id, payment.device_id, payment.currency, payment.amount, record.occurred_at
    )
    return True


def _forwarded(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    payment = _require_payment(uow, record.offline_id)
    plan = payment.plan_forward(record.payment_intent_id)
    if plan is Plan.REPEAT:
        return False
    _release_then(
        uow,
        payment,
        "forwarded",
        record.occurred_at,
        lambda: payment.forward(record.payment_intent_id, record.status, record.occurred_at),
    )
    return True


def _forward_failed(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    payment = _require_payment(uow, record.offline_id)
    if payment.plan_forward_failure(record.error_code, record.occurred_at) is Plan.REPEAT:
        return False
    payment.record_forward_failure(
        record.error_code, record.message, record.retryable, record.occurred_at
    )
    return True


def _declined(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    payment = _require_payment(uow, record.offline_id)
    if payment.plan_decline(record.payment_intent_id, record.decline_code) is Plan.REPEAT:
        return False
    _release_then(
        uow,
        payment,
        "declined",
        record.occurred_at,
        lambda: payment.decline(record.payment_intent_id, record.decline_code, record.occurred_at),
    )
    return True


def _captured(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    payment = _require_payment(uow, record.offline_id)
    if payment.plan_capture(record.payment_intent_id, record.amount_captured) is Plan.REPEAT:
        return False
    payment.capture(record.payment_intent_id, record.amount_captured, record.occurred_at)
    return True


def _canceled(record: Any, uow: UnitOfWork, policy: Policy) -> bool:
    payment = _require_payment(uow, record.offline_id)
    if payment.plan_cancel(record.reason) is Plan.REPEAT:
        return False
    _release_then(
        uow,
        payment,
        "canceled",
        record.occurred_at,
        lambda: payment.cancel(record.reason, record.occurred_at),
    )
    return True


def _release_then(
    uow: UnitOfWork, payment: Payment, reason: str, occurred_at: Any, trigger: Callable[[], None]
) -> None:
    """Trigger the payment's event and, if it was stored, release it from the stored totals."""
    was_stored = payment.is_stored
    location = _require_location(uow, payment.location_id) if was_stored else None
    trigger()
    if location is not None:
        location.release_payment(payment.offline_id, reason, occurred_at)


def _require_location(uow: UnitOfWork, location_id: str) -> Location:
    location: Location | None = uow.get(identity.location_id(location_id))
    if location is None:
        raise NotFound(
            Code.UNKNOWN_LOCATION,
            f"location {location_id} is unknown: record location.configured for it first",
            field="location_id",
        )
    return location


def _require_payment(uow: UnitOfWork, offline_id: UUID) -> Payment:
    payment: Payment | None = uow.get(identity.payment_id(offline_id))
    if payment is None:
        raise NotFound(
            Code.UNKNOWN_PAYMENT,
            f"payment {offline_id} is unknown: record payment.created for it first",
            field="offline_id",
        )
    return payment


_HANDLERS: dict[type[Any], Callable[[Any, UnitOfWork, Policy], bool]] = {
    wire.LocationConfigured: _location_configured,
    wire.DeviceConnectedOnline: _device_connected,
    wire.PaymentCreated: _created,
    wire.PaymentMethodCollected: _collected,
    wire.PaymentConfirmedOffline: _confirmed,
    wire.PaymentForwarded: _forwarded,
    wire.PaymentForwardFailed: _forward_failed,
    wire.PaymentDeclined: _declined,
    wire.PaymentCaptured: _captured,
    wire.PaymentCanceled: _canceled,
}
