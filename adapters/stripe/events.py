"""Stripe's refund, charge and dispute objects (as webhooks carry them) as observations.

Shapes follow Stripe's OpenAPI spec (components `refund`, `charge`, `dispute`,
`balance_transaction`) and its fixtures (tests/support/data/stripe_fixtures3.json):

- a Refund (`refund.created`, `refund.updated`, `charge.refund.updated`) is one money movement,
  keyed by its `re_` id, so that the report's `refund` row for it (whose `source_id` is that
  refund) is the same fact, never a second refund;
- a Charge (`charge.refunded`, `charge.captured`, `charge.succeeded`...) says which
  PaymentIntent it belongs to and its cumulative `amount_refunded`: a snapshot, never added up
  (two refunds of 3,000 leave `amount_refunded` at 6,000, not 9,000); before API version
  2022-11-15 it also lists its refunds, each then recorded as above;
- a Dispute (`charge.dispute.*`) gives its status (`needs_response`, `under_review`, `won`,
  `lost`...) and, when Stripe lists them, its balance transactions (the amount withdrawn,
  and reinstated when won).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from adapters.stripe.objects import OFFLINE_ID_KEYS, dispute_observation
from ledger.errors import Code, InvalidRecord
from ledger.moments import MomentError, from_unix_seconds
from ledger.observations import (
    BalanceTransactionObservation,
    ChargeObservation,
    Observation,
)
from ledger.wire import shown_errors

REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "charge.refund.updated"})
CHARGE_EVENTS = frozenset({"charge.refunded", "charge.succeeded", "charge.captured"})
DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
# Refund.status values that mean no money was given back (or it came back).
_REFUND_NOT_GIVEN = frozenset({"failed", "canceled"})
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{3,255}")


def observations(event_type: str, item: dict[str, Any], as_of: datetime) -> list[Observation]:
    """The observations of one refund, charge or dispute event; raise InvalidRecord naming
    the field when the object is not what the event type carries."""
    try:
        if event_type in REFUND_EVENTS:
            _expect(item, "refund")
            return _refund(item, as_of, None)
        if event_type in CHARGE_EVENTS:
            _expect(item, "charge")
            return _charge(item, as_of)
        _expect(item, "dispute")
        return _dispute(item, as_of)
    except ValidationError as error:
        detail = shown_errors(error)[0]
        name = ".".join(str(part) for part in detail["loc"])
        raise InvalidRecord(
            Code.INVALID_VALUE,
            f"the event's data.object is not a valid {item.get('object')}: {name}: {detail['msg']}",
            field=f"data.object.{name}",
        ) from None


def _expect(item: dict[str, Any], kind: str) -> None:
    if item.get("object") != kind:
        raise InvalidRecord(
            Code.INVALID_VALUE,
            f"the event's data.object.object: this event carries a {kind}",
            field="data.object.object",
        )


def _id(value: Any) -> str | None:
    """An id, or the id of an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None


def _currency(item: dict[str, Any]) -> Any:
    currency = item.get("currency")
    return currency.lower() if isinstance(currency, str) else currency


def _created(item: dict[str, Any], as_of: datetime) -> datetime:
    try:
        return from_unix_seconds(item.get("created"))
    except MomentError:
        return as_of


def _offline_id(item: dict[str, Any]) -> str | None:
    metadata = item.get("metadata")
    if not isinstance(metadata, dict):
        return None
    found = (metadata.get(key) for key in OFFLINE_ID_KEYS)
    return next((value for value in found if isinstance(value, str) and value), None)


def _refund(
    refund: dict[str, Any], as_of: datetime, charge: dict[str, Any] | None
) -> list[Observation]:
    """A refund as money given back, in the currency the customer paid (a report shows it in
    the settlement currency, with this amount as customer_facing_amount)."""
    if refund.get("status") in _REFUND_NOT_GIVEN:
        return []
    refund_id = _id(refund.get("id"))
    amount = refund.get("amount")
    if refund_id is None or type(amount) is not int:
        raise InvalidRecord(
            Code.INVALID_VALUE,
            "the refund needs an id (re_...) and an amount in minor units",
            field="data.object",
        )
    charge_id = _id(refund.get("charge")) or (_id(charge.get("id")) if charge else None)
    payment_intent = _id(refund.get("payment_intent")) or (
        _id(charge.get("payment_intent")) if charge else None
    )
    currency = _currency(refund)
    return [
        BalanceTransactionObservation.model_validate(
            {
                "source": "webhook",
                "balance_transaction_id": _id(refund.get("balance_transaction")) or refund_id,
                "payment_intent_id": payment_intent,
                "charge_id": charge_id,
                "source_id": refund_id,
                "offline_id": _offline_id(charge) if charge else None,
                "currency": currency,
                "gross": -amount,
                "customer_facing_amount": -amount,
                "customer_facing_currency": currency,
                "created_at": _created(refund, as_of),
                "reporting_category": "refund",
            }
        )
    ]


def _charge(charge: dict[str, Any], as_of: datetime) -> list[Observation]:
    seen: list[Observation] = [
        ChargeObservation.model_validate(
            {
                "source": "webhook",
                "as_of": as_of,
                "charge_id": charge.get("id"),
                "payment_intent_id": _id(charge.get("payment_intent")),
                "offline_id": _offline_id(charge),
                "currency": _currency(charge),
                "amount_refunded": charge.get("amount_refunded", 0),
            }
        )
    ]
    refunds = charge.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, dict) else None
    for refund in listed if isinstance(listed, list) else []:
        if isinstance(refund, dict):
            seen += _refund(refund, as_of, charge)
    return seen


def _dispute(dispute: dict[str, Any], as_of: datetime) -> list[Observation]:
    dispute_id = _id(dispute.get("id"))
    charge_id = _id(dispute.get("charge"))
    payment_intent = _id(dispute.get("payment_intent"))
    seen: list[Observation] = [dispute_observation(dispute, "webhook", as_of)]
    # Each balance transaction of the dispute, when expanded: the withdrawal (`dispute`)
    # and, if won, the reinstatement (`dispute_reversal`).
    listed = dispute.get("balance_transactions")
    for txn in listed if isinstance(listed, list) else []:
        if not isinstance(txn, dict) or _id(txn.get("id")) is None:
            continue
        seen.append(
            BalanceTransactionObservation.model_validate(
                {
                    "source": "webhook",
                    "balance_transaction_id": txn["id"],
                    "payment_intent_id": payment_intent,
                    "charge_id": charge_id,
                    "source_id": dispute_id,
                    "currency": _currency(txn),
                    "gross": txn.get("amount"),
                    "fee": txn.get("fee"),
                    "net": txn.get("net"),
                    "created_at": _created(txn, as_of),
                    "reporting_category": txn.get("reporting_category"),
                }
            )
        )
    return seen
