"""What Stripe says about a payment, as the ledger records it.

Stripe-side facts enter the ledger as observations, events like any other, so that reports
replay. Two kinds, one per source of truth:

- `PaymentIntentObservation`: a PaymentIntent as the API (or a webhook, or an exported JSON
  file) shows it at one moment: its amounts, status and the offline marker of its charge.
- `BalanceTransactionObservation`: one row of Stripe's itemized balance or payout
  reconciliation report, or a refund or dispute a webhook announced: money that moved (a
  charge, a refund, a dispute...), in minor units.
- `ChargeObservation`: a charge as a `charge.*` webhook shows it (its PaymentIntent and the
  cumulative amount refunded).
- `DisputeObservation`: a dispute as a `charge.dispute.*` webhook shows it (its status).

Adapters build these from Stripe's formats; the ledger stores them on one stream per
PaymentIntent (or per charge, or per balance transaction, for what names no PaymentIntent).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from ledger.pan import holds_pan
from ledger.wire import Currency

StripeId = Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_]+$")]
SignedMinor = Annotated[StrictInt, Field(ge=-(10**15), le=10**15)]
Minor = Annotated[StrictInt, Field(ge=0, le=10**15)]
Source = Literal["api", "webhook", "json_file", "report_file"]


class _Observation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    source: Source
    # metadata.offline_id as Stripe has it: text, not necessarily a UUID (a mistyped one is
    # still worth showing as an orphan).
    offline_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class PaymentIntentObservation(_Observation):
    kind: Literal["payment_intent"] = "payment_intent"
    # When Stripe showed it so (a webhook event's `created`, the time of an API read): a
    # snapshot older than one already seen never replaces it. None for exported files.
    as_of: AwareDatetime | None = None
    payment_intent_id: StripeId
    amount: Minor
    currency: Currency
    status: Annotated[str, Field(min_length=1, max_length=64)]
    amount_received: Minor | None = None
    amount_capturable: Minor | None = None
    created_at: AwareDatetime | None = None
    charge_id: StripeId | None = None
    # charge.payment_method_details.card_present.offline is set: collected offline
    offline_collected: bool | None = None
    card_brand: Annotated[str, Field(max_length=64)] | None = None
    decline_code: Annotated[str, Field(max_length=128)] | None = None
    # Other ids naming this PaymentIntent's money: its earlier charges (the pre-2022-11-15
    # `charges` list keeps a failed attempt beside the one that succeeded) and the balance
    # transactions (`txn_`) of its charges, so report rows naming only those are linked.
    related_ids: tuple[StripeId, ...] = ()
    # The object's `livemode`: which Stripe mode showed it (not part of what it says).
    livemode: bool | None = None

    @property
    def stream_key(self) -> str:
        return self.payment_intent_id


class BalanceTransactionObservation(_Observation):
    kind: Literal["balance_transaction"] = "balance_transaction"
    # The report's balance_transaction_id; when the file has none, the importer derives a
    # stable id from the row's content, so re-importing the same file is a no-op.
    balance_transaction_id: Annotated[str, Field(min_length=1, max_length=255)]
    payment_intent_id: StripeId | None = None
    charge_id: StripeId | None = None
    source_id: StripeId | None = None
    currency: Currency
    gross: SignedMinor
    fee: SignedMinor | None = None
    net: SignedMinor | None = None
    created_at: AwareDatetime | None = None
    reporting_category: Annotated[str, Field(max_length=64)] | None = None
    # A settlement in another currency: what the customer paid, in the currency they paid in
    # (the report's customer_facing_amount / customer_facing_currency).
    customer_facing_amount: SignedMinor | None = None
    customer_facing_currency: Currency | None = None
    # The payout reconciliation report: the automatic payout this money landed in.
    payout_id: StripeId | None = None
    payout_at: AwareDatetime | None = None

    @property
    def movement_key(self) -> str:
        return movement_key(self.model_dump())

    @property
    def stream_key(self) -> str:
        return self.payment_intent_id or self.charge_id or self.movement_key


# Refunds and disputes, whose money a webhook announces and a report lists again.
MOVEMENT_SOURCE_PREFIXES = ("re_", "pyr_", "dp_", "du_")


def movement_key(content: dict[str, Any]) -> str:
    """What makes a money movement one fact whichever way it arrived (`content` is a
    balance transaction observation as a dict): a refund or a dispute by its own object
    (`re_`, `dp_`) and category, as a webhook knows it before its balance transaction exists;
    anything else by its balance transaction."""
    source = content.get("source_id") or ""
    category = content.get("reporting_category")
    if source.startswith(MOVEMENT_SOURCE_PREFIXES) and category:
        return f"{source}:{category}"
    return str(content["balance_transaction_id"])


class ChargeObservation(_Observation):
    """A charge as a `charge.*` webhook shows it: which PaymentIntent it belongs to, and the
    cumulative amount refunded (a snapshot, never added up)."""

    kind: Literal["charge"] = "charge"
    as_of: AwareDatetime | None = None
    charge_id: StripeId
    payment_intent_id: StripeId | None = None
    currency: Currency
    amount_refunded: Minor

    @property
    def stream_key(self) -> str:
        return self.payment_intent_id or self.charge_id


class DisputeObservation(_Observation):
    """A dispute as a `charge.dispute.*` webhook shows it; its status says whether the money
    is still contested (`needs_response`, `under_review`...), lost or won back."""

    kind: Literal["dispute"] = "dispute"
    as_of: AwareDatetime | None = None
    dispute_id: StripeId
    charge_id: StripeId
    payment_intent_id: StripeId | None = None
    currency: Currency
    amount: Minor
    status: Annotated[str, Field(min_length=1, max_length=64)]

    @property
    def stream_key(self) -> str:
        return self.payment_intent_id or self.charge_id


Observation = (
    PaymentIntentObservation
    | BalanceTransactionObservation
    | ChargeObservation
    | DisputeObservation
)


def card_number_field(observation: Observation) -> str | None:
    """The name of the first field holding a full card number (`ledger.pan`), or None.

    The edges search Stripe's raw files and events before they build observations; a library
    caller builds its own, so `Ledger.observe` searches every text and whole number here
    (each field alone: digits of neighbouring fields never join into one number)."""
    for name, value in observation:
        if isinstance(value, str | int) and not isinstance(value, bool) and holds_pan(str(value)):
            return name
    return None
