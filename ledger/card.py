"""The card a payment was collected with, as the payment's events record it. Apart from the
payment's aggregate (`ledger.payment`) so that what only shows it (`ledger.views`) does not
load the aggregate's event classes."""

from __future__ import annotations

from typing import NotRequired

from typing_extensions import TypedDict  # pydantic reads typing.TypedDict on 3.12+ only


class CollectedCard(TypedDict):
    """The card a payment was collected with, as its event records it: what the reader
    reported (never the card number), in JSON's types. Cards recorded before forwarding
    through the API lack `payment_method_id`, and before saved cards `customer_id`."""

    brand: str
    network: str | None
    last4: str
    exp_month: int
    exp_year: int
    funding: str
    read_method: str
    cardholder_verification: str
    country: str | None
    payment_method_id: NotRequired[str | None]
    customer_id: NotRequired[str | None]
