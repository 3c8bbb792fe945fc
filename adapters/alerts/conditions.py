"""The conditions the watch looks for, evaluated from the read models at one moment.

Each condition has a stable `key` (its kind and what it is about): the outbox raises an alert
when a key appears and forgets it when it clears, so an alert goes out once per condition,
not on every evaluation, and again only if the condition comes back.

The money at risk and the payments' states are the reconciliation report's (one definition
for the report and the alerts); the captures due are the ones `capture --all-due
--within-hours` would take.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapters.alerts.config import Conditions
from adapters.stripe.sync import due
from ledger.errors import Code, LedgerError
from ledger.payment import Status
from projections.read_models import ReadModels
from projections.reconciliation import Thresholds
from projections.report import Category, Row


@dataclass(frozen=True)
class Condition:
    key: str  # kind/subject: stable while the condition holds
    kind: str  # money_at_risk | stored_too_long | capture_due | duplicate | device_silent
    message: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "message": self.message, **self.details}


def evaluate(read_models: ReadModels, wanted: Conditions, now: datetime) -> list[Condition]:
    """Every condition of `wanted` that holds at `now` (aware), by key."""
    rows = _rows(read_models, now)
    found = [
        *_money_at_risk(rows, wanted.money_at_risk),
        *_stored_too_long(rows, wanted.stored_older_than_hours, now),
        *_duplicates(rows, wanted.duplicates),
        *_devices_silent(rows, wanted.device_silent_hours, now),
    ]
    if wanted.captures_due_within_hours is not None:
        within = timedelta(hours=wanted.captures_due_within_hours)
        for payment in due(read_models.authorized(), Thresholds(), now, within):
            found.append(
                Condition(
                    f"capture_due/{payment.offline_id}",
                    "capture_due",
                    f"payment {payment.offline_id} ({payment.amount} {payment.currency}) must "
                    f"be captured within {wanted.captures_due_within_hours} hours",
                    {
                        "offline_id": payment.offline_id,
                        "payment_intent_id": payment.payment_intent_id,
                        "amount": payment.amount,
                        "currency": payment.currency,
                    },
                )
            )
    return sorted(found, key=lambda condition: condition.key)


def _rows(read_models: ReadModels, now: datetime) -> list[Row]:
    try:
        return list(read_models.report(now).rows)
    except LedgerError as error:
        if error.code == Code.NO_REPORT_DATA:
            return []
        raise


def _money_at_risk(rows: list[Row], limits: dict[str, int]) -> list[Condition]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        currency = row.risk_currency
        if row.location_id is not None and currency in limits and row.amount_at_risk:
            totals[(row.location_id, currency)] += row.amount_at_risk
    return [
        Condition(
            f"money_at_risk/{location}/{currency}",
            "money_at_risk",
            f"{amount} {currency} at risk at location {location}, above {limits[currency]}",
            {"location_id": location, "currency": currency, "amount": amount},
        )
        for (location, currency), amount in totals.items()
        if amount > limits[currency]
    ]


def _stored_too_long(rows: list[Row], hours: int | None, now: datetime) -> list[Condition]:
    if hours is None:
        return []
    since = now - timedelta(hours=hours)
    return [
        Condition(
            f"stored_too_long/{row.offline_id}",
            "stored_too_long",
            f"payment {row.offline_id} ({row.amount} {row.currency}) has been stored offline "
            f"on device {row.device_id} for over {hours} hours without being forwarded",
            {
                "offline_id": row.offline_id,
                "location_id": row.location_id,
                "device_id": row.device_id,
                "amount": row.amount,
                "currency": row.currency,
                "stored_at": row.stored_at.isoformat(),
            },
        )
        for row in rows
        if row.ledger_status == Status.STORED and row.stored_at and row.stored_at <= since
    ]


def _duplicates(rows: list[Row], wanted: bool) -> list[Condition]:
    return [
        Condition(
            f"duplicate/{row.offline_id}",
            "duplicate",
            f"payment {row.offline_id} was taken more than once by Stripe "
            f"({', '.join(row.payment_intent_ids)}): {row.amount_at_risk} "
            f"{row.risk_currency} to refund",
            {
                "offline_id": row.offline_id,
                "location_id": row.location_id,
                "payment_intent_ids": list(row.payment_intent_ids),
                "amount": row.amount_at_risk,
                "currency": row.risk_currency,
            },
        )
        for row in rows
        if wanted and row.category == Category.DUPLICATE
    ]


def _devices_silent(rows: list[Row], hours: int | None, now: datetime) -> list[Condition]:
    """Devices holding a payment stored before the window that forwarded nothing in it."""
    if hours is None:
        return []
    since = now - timedelta(hours=hours)
    oldest: dict[str, datetime] = {}
    forwarded: dict[str, datetime] = {}
    for row in rows:
        if row.device_id is None:
            continue
        if row.ledger_status == Status.STORED and row.stored_at is not None:
            oldest[row.device_id] = min(row.stored_at, oldest.get(row.device_id, row.stored_at))
        if row.forwarded_at is not None:
            latest = forwarded.get(row.device_id, row.forwarded_at)
            forwarded[row.device_id] = max(row.forwarded_at, latest)
    return [
        Condition(
            f"device_silent/{device}",
            "device_silent",
            f"device {device} holds payments stored since {stored.isoformat()} and has not "
            f"forwarded for {hours} hours",
            {
                "device_id": device,
                "oldest_stored_at": stored.isoformat(),
                "last_forwarded_at": None
                if device not in forwarded
                else forwarded[device].isoformat(),
            },
        )
        for device, stored in sorted(oldest.items())
        if stored <= since and forwarded.get(device, stored) <= since
    ]
