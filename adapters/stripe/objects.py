"""Stripe's API objects as observations: a PaymentIntent (from the API, a webhook or an
exported file) and a Dispute, read field by field against Stripe's OpenAPI components
(`payment_intent`, `charge`, `dispute`), every bad field named as Stripe names it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from adapters.stripe.problems import (
    CARD_NUMBER_MESSAGE,
    STRIPE_ID,
    Problems,
    Where,
    pan_in,
    shown,
    validation_problems,
)
from ledger.errors import Code
from ledger.moments import MomentError, from_unix_seconds
from ledger.money import is_currency
from ledger.observations import DisputeObservation, PaymentIntentObservation, Source

# metadata keys for the offline id, in order of preference (the keys Stripe's docs use)
OFFLINE_ID_KEYS = ("offline_id", "offlineId", "unique-id")


JSON_HINT = (
    "export PaymentIntents as the API returns them (GET /v1/payment_intents: a list page, "
    "an array, one object, or one object per line)"
)


def dispute_observation(
    item: dict[str, Any], source: Source, as_of: datetime | None
) -> DisputeObservation:
    """A Dispute object (Stripe's OpenAPI component `dispute`) as an observation; raise
    pydantic's ValidationError when it is not one."""
    if item.get("object") != "dispute":
        raise TypeError(f"the object is {shown(item.get('object'))}, not a 'dispute'")
    return DisputeObservation.model_validate(
        {
            "source": source,
            "as_of": as_of,
            "dispute_id": item.get("id"),
            "charge_id": _expanded_id(item.get("charge")),
            "payment_intent_id": _expanded_id(item.get("payment_intent")),
            "currency": item["currency"].lower() if isinstance(item.get("currency"), str) else None,
            "amount": item.get("amount"),
            "status": item.get("status"),
        }
    )


def _expanded_id(value: Any) -> Any:
    """An id, or the id of an expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def payment_intent_observation(
    item: dict[str, Any], source: Source, as_of: datetime
) -> PaymentIntentObservation:
    """One PaymentIntent from the API or a webhook, as Stripe showed it at `as_of`; raise
    StripeFileError naming the field when it is not a valid PaymentIntent."""
    problems = Problems(f"{source} object")
    observation = read_payment_intent(Where(item="the object"), item, problems, source, as_of)
    problems.raise_if_any()
    assert observation is not None
    return observation


def read_payment_intent(
    where: Where, item: Any, problems: Problems, source: Source, as_of: datetime | None
) -> PaymentIntentObservation | None:
    if not isinstance(item, dict):
        problems.add(
            Code.INVALID_VALUE,
            where,
            None,
            f"{shown(item)} is not a PaymentIntent object; {JSON_HINT}",
        )
        return None
    pan_path = pan_in(item)
    if pan_path is not None:
        problems.add(Code.CARD_NUMBER_DETECTED, where, pan_path, CARD_NUMBER_MESSAGE)
        return None
    object_id = item.get("id")
    if isinstance(object_id, str) and STRIPE_ID.fullmatch(object_id):
        where = replace(where, object_id=object_id)
    kind = item.get("object")
    # Hand-written or trimmed exports may drop `object`; a pi_ id still says what it is.
    is_payment_intent = kind == "payment_intent" or (
        kind is None and isinstance(object_id, str) and object_id.startswith("pi_")
    )
    if not is_payment_intent:
        problems.add(
            Code.INVALID_VALUE,
            where,
            "object",
            f"the object is {shown(kind)}, not a 'payment_intent'; {JSON_HINT}",
        )
        return None
    reader = _ObjectReader(item, where, problems)
    fields: dict[str, Any] = {
        "source": source,
        "as_of": as_of,
        "payment_intent_id": reader.stripe_id("id", required=True),
        "amount": reader.amount_minor("amount", required=True),
        "amount_received": reader.amount_minor("amount_received"),
        "amount_capturable": reader.amount_minor("amount_capturable"),
        "currency": reader.currency(),
        "status": reader.text("status", required=True),
        "created_at": reader.created_at(),
        "offline_id": reader.offline_id(),
        "decline_code": reader.decline_code(),
        "livemode": item.get("livemode") if isinstance(item.get("livemode"), bool) else None,
        **reader.latest_charge(),
    }
    if reader.failed:
        return None
    try:
        return PaymentIntentObservation(**fields)
    except ValidationError as error:
        validation_problems(error, where, problems, _AMOUNT_FIELDS, _JSON_FIELDS)
        return None


_AMOUNT_FIELDS = ("amount", "amount_received", "amount_capturable")
# PaymentIntentObservation's fields as the PaymentIntent object names them
_JSON_FIELDS = {
    "payment_intent_id": "id",
    "created_at": "created",
    "offline_id": "metadata",
    "charge_id": "latest_charge",
    "card_brand": "latest_charge.payment_method_details.card_present.brand",
    "decline_code": "last_payment_error.decline_code",
}


class _ObjectReader:
    """Reads the fields of one PaymentIntent object, adding a problem for each bad one."""

    def __init__(self, item: dict[str, Any], where: Where, problems: Problems) -> None:
        self.item = item
        self.where = where
        self.problems = problems
        self.failed = False

    def problem(self, code: Code, field: str, message: str) -> None:
        self.failed = True
        self.problems.add(code, self.where, field, message)

    def get(self, path: str, required: bool) -> Any:
        """The value at a dotted path; None when absent (a problem if required)."""
        value: Any = self.item
        for name in path.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if value is None and required:
            self.problem(
                Code.MISSING_FIELD, path, f"required field '{path}' is missing; {JSON_HINT}"
            )
        return value

    def stripe_id(self, path: str, required: bool = False) -> str | None:
        value = self.get(path, required)
        if value is None or (isinstance(value, str) and STRIPE_ID.fullmatch(value)):
            return value
        self.problem(
            Code.INVALID_VALUE, path, f"{shown(value)} is not a Stripe id (letters, digits, _)"
        )
        return None

    def text(self, path: str, required: bool = False) -> str | None:
        value = self.get(path, required)
        if value is None or (isinstance(value, str) and value):
            return value
        self.problem(Code.INVALID_VALUE, path, f"{shown(value)} is not a non-empty string")
        return None

    def amount_minor(self, path: str, required: bool = False) -> int | None:
        value = self.get(path, required)
        if value is None or (type(value) is int and 0 <= value <= 10**15):
            return value
        self.problem(
            Code.INVALID_AMOUNT,
            path,
            f"{shown(value)} is not an amount: Stripe's amounts are whole numbers "
            "of minor units (1250 for 12.50 USD); export the object unchanged",
        )
        return None

    def currency(self) -> str | None:
        value = self.get("currency", True)
        if value is None:
            return None
        if isinstance(value, str) and is_currency(value.lower()):
            return value.lower()
        self.problem(
            Code.UNKNOWN_CURRENCY, "currency", f"{shown(value)} is not an ISO 4217 currency code"
        )
        return None

    def created_at(self) -> datetime | None:
        value = self.get("created", False)
        if value is None:
            return None
        try:
            return from_unix_seconds(value)
        except MomentError as error:
            self.problem(Code.INVALID_TIMESTAMP, "created", f"{shown(value)} {error}")
        return None

    def offline_id(self) -> str | None:
        metadata = self.get("metadata", False)
        if metadata is None:
            return None
        if not isinstance(metadata, dict):
            self.problem(Code.INVALID_VALUE, "metadata", f"{shown(metadata)} is not an object")
            return None
        for key in OFFLINE_ID_KEYS:
            value = self.text(f"metadata.{key}") if metadata.get(key) != "" else None
            if value is not None:
                return value
        return None

    def decline_code(self) -> str | None:
        return self.text("last_payment_error.decline_code")

    def latest_charge(self) -> dict[str, Any]:
        """charge_id, and from an expanded charge the offline marker and the card brand.

        Every API version alike: since 2022-11-15 `latest_charge` (an id, or the charge when
        expanded); before, the `charges` list (all attempts, newest first, each expanded).
        The other charges and the charges' balance transactions become `related_ids`."""
        listed = self.get("charges.data", False)
        charges = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
        latest = self.get("latest_charge", False)
        if isinstance(latest, dict):
            charges.insert(0, latest)
            path = "latest_charge"
        elif latest is not None or not charges:
            fields: dict[str, Any] = {"charge_id": self.stripe_id("latest_charge")}
            fields["related_ids"] = self.related(charges, fields["charge_id"])
            return fields
        else:
            path = "charges.data.0"
        # The charge that took the money, else the newest attempt.
        chosen = next((c for c in charges if c.get("status") == "succeeded"), charges[0])
        charge_id = chosen.get("id")
        if not (isinstance(charge_id, str) and STRIPE_ID.fullmatch(charge_id)):
            self.problem(
                Code.MISSING_FIELD if charge_id is None else Code.INVALID_VALUE,
                f"{path}.id",
                f"{shown(charge_id)} is not a charge id",
            )
            return {}
        fields = {"charge_id": charge_id, "related_ids": self.related(charges, charge_id)}
        details = chosen.get("payment_method_details")
        card_present = details.get("card_present") if isinstance(details, dict) else None
        if isinstance(card_present, dict):
            fields["offline_collected"] = any(_collected_offline(c) for c in charges)
            brand = card_present.get("brand")
            fields["card_brand"] = brand if isinstance(brand, str) and brand else None
        return fields

    def related(self, charges: list[dict[str, Any]], charge_id: str | None) -> tuple[str, ...]:
        """The charges other than `charge_id`, and every charge's balance transaction."""
        ids: list[str] = []
        for charge in charges:
            txn = charge.get("balance_transaction")
            if isinstance(txn, dict):  # expanded
                txn = txn.get("id")
            for value in (charge.get("id"), txn):
                if isinstance(value, str) and STRIPE_ID.fullmatch(value) and value != charge_id:
                    ids.append(value)
        return tuple(dict.fromkeys(ids))


def _collected_offline(charge: dict[str, Any]) -> bool:
    """payment_method_details.card_present.offline is set: the card was read offline."""
    details = charge.get("payment_method_details")
    card_present = details.get("card_present") if isinstance(details, dict) else None
    return isinstance(card_present, dict) and card_present.get("offline") is not None
