"""Builders of wire records for tests: valid by default, each field overridable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.observations import (
    BalanceTransactionObservation,
    Observation,
    PaymentIntentObservation,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def at(minutes: float = 0) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def location(location_id: str = "tml_1", **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "location.configured",
        "occurred_at": at(-60),
        "location_id": location_id,
        "offline_enabled": True,
        "sca_required": False,
        "limits": {
            "per_payment_max": {"usd": 50_000, "eur": 50_000},
            "stored_amount_max": {"usd": 200_000, "eur": 200_000},
            "stored_count_max": 100,
        },
        "device_limits": {"stored_amount_max": {"usd": 100_000}, "stored_count_max": 40},
    }
    record.update(overrides)
    return record


def device(
    device_id: str = "tmr_1", location_id: str = "tml_1", **overrides: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "device.connected_online",
        "occurred_at": at(-30),
        "device_id": device_id,
        "location_id": location_id,
        "reader_type": "bbpos_wisepad3",
        "software_updated_at": at(-24 * 60),
    }
    record.update(overrides)
    return record


def created(offline_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "payment.created",
        "occurred_at": at(0),
        "offline_id": offline_id or str(uuid.uuid4()),
        "device_id": "tmr_1",
        "location_id": "tml_1",
        "amount": 1250,
        "currency": "usd",
        "capture_method": "automatic",
        "offline_behavior": "prefer_online",
        "payment_intent_id": None,
        "metadata": {"order": "A-17"},
    }
    record.update(overrides)
    return record


def card(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "brand": "visa",
        "network": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2028,
        "funding": "credit",
        "read_method": "contact_emv",
        "cardholder_verification": "offline_pin",
        "country": "US",
    }
    value.update(overrides)
    return value


def collected(offline_id: str, **card_overrides: Any) -> dict[str, Any]:
    return {
        "type": "payment.payment_method_collected",
        "occurred_at": at(1),
        "offline_id": offline_id,
        "card": card(**card_overrides),
    }


def confirmed(offline_id: str, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "payment.confirmed_offline",
        "occurred_at": at(2),
        "offline_id": offline_id,
        "stored_at": at(2),
    }
    record.update(overrides)
    return record


def forwarded(
    offline_id: str, payment_intent_id: str = "pi_1", status: str = "succeeded", **overrides: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "payment.forwarded",
        "occurred_at": at(120),
        "offline_id": offline_id,
        "payment_intent_id": payment_intent_id,
        "status": status,
    }
    record.update(overrides)
    return record


def forward_failed(offline_id: str, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "payment.forward_failed",
        "occurred_at": at(60),
        "offline_id": offline_id,
        "error_code": "api_connection_error",
        "message": "no network",
        "retryable": True,
    }
    record.update(overrides)
    return record


def declined(offline_id: str, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "payment.declined",
        "occurred_at": at(121),
        "offline_id": offline_id,
        "payment_intent_id": "pi_1",
        "decline_code": "insufficient_funds",
    }
    record.update(overrides)
    return record


def captured(
    offline_id: str, payment_intent_id: str = "pi_1", amount_captured: int = 1250, **overrides: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "payment.captured",
        "occurred_at": at(180),
        "offline_id": offline_id,
        "payment_intent_id": payment_intent_id,
        "amount_captured": amount_captured,
    }
    record.update(overrides)
    return record


def canceled(offline_id: str, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "payment.canceled",
        "occurred_at": at(3),
        "offline_id": offline_id,
        "reason": "requested_by_customer",
    }
    record.update(overrides)
    return record


def stored_payment(offline_id: str | None = None, **created_overrides: Any) -> list[dict[str, Any]]:
    """created + collected + confirmed_offline for one payment."""
    oid = offline_id or str(uuid.uuid4())
    return [created(oid, **created_overrides), collected(oid), confirmed(oid)]


def charged_payment_intents(count: int, first: int = 0, tag: str = "m") -> list[Observation]:
    """Stripe's word on PaymentIntents `first`..: each one's snapshot naming its charge
    (`pi_{tag}N`, `ch_{tag}N`, 500 + N cents), and a balance report row of the charge."""
    found: list[Observation] = []
    for n in range(first, first + count):
        pi, charge = f"pi_{tag}{n}", f"ch_{tag}{n}"
        found.append(
            PaymentIntentObservation(
                source="api",
                payment_intent_id=pi,
                amount=500 + n,
                currency="usd",
                status="succeeded",
                charge_id=charge,
            )
        )
        found.append(
            BalanceTransactionObservation(
                source="report_file",
                balance_transaction_id=f"txn_{tag}{n}",
                charge_id=charge,
                source_id=charge,
                currency="usd",
                gross=500 + n,
                reporting_category="charge",
            )
        )
    return found
