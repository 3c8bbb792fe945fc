"""What Stripe says about a payment, as the ledger records it (DESIGN §6).

Stripe-side facts enter the ledger as observations, events like any other, so that reports
replay. Two kinds, one per source of truth:

- `PaymentIntentObservation`: a PaymentIntent as the API (or a webhook, or an exported JSON
  file) shows it at one moment: its amounts, status and the offline marker of its charge.
- `BalanceTransactionObservation`: one row of Stripe's itemized balance or payout
  reconciliation report: money that moved (a charge, a refund...), in minor units.

Adapters build these from Stripe's formats; the ledger stores them on one stream per
PaymentIntent (or per charge, for a report row without a PaymentIntent).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator

from ledger.pan import holds_pan
from ledger.wire import Currency

StripeId = Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_]+$")]
SignedMinor = Annotated[StrictInt, Field(ge=-(10**15), le=10**15)]
Minor = Annotated[StrictInt, Field(ge=0, le=10**15)]
Source = Literal["api", "webhook", "json_file", "report_file"]


class _Observation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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

    @model_validator(mode="after")
    def _names_a_payment(self) -> BalanceTransactionObservation:
        if not (self.payment_intent_id or self.charge_id or self.source_id):
            raise ValueError("needs payment_intent_id, charge_id or source_id")
        return self

    @property
    def stream_key(self) -> str:
        key = self.payment_intent_id or self.charge_id or self.source_id
        assert key is not None
        return key


Observation = PaymentIntentObservation | BalanceTransactionObservation


def card_number_field(observation: Observation) -> str | None:
    """The name of the first field holding a full card number (`ledger.pan`), or None.

    The edges search Stripe's raw files and events before they build observations; a library
    caller builds its own, so `Ledger.observe` searches every text and whole number here
    (each field alone: digits of neighbouring fields never join into one number)."""
    for name, value in observation:
        if isinstance(value, str | int) and not isinstance(value, bool) and holds_pan(str(value)):
            return name
    return None
