"""The Stripe service's port (`ledger.stripe_service.StripeApi`) over the API gateway: Stripe's
answers as the observations the service records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.stripe.gateway import StripeGateway
from adapters.stripe.objects import payment_intent_observation
from ledger import Ledger
from ledger.observations import PaymentIntentObservation
from ledger.stripe_service import StripeService


class GatewayApi:
    def __init__(self, gateway: StripeGateway) -> None:
        self.gateway = gateway

    @property
    def livemode(self) -> bool:
        return self.gateway.mode.livemode

    def capture(
        self, payment_intent_id: str, amount: int | None, idempotency_key: str
    ) -> PaymentIntentObservation:
        return observed(self.gateway.capture(payment_intent_id, amount, idempotency_key))


def observed(item: dict[str, Any]) -> PaymentIntentObservation:
    """A PaymentIntent the API returned, as Stripe showed it now."""
    return payment_intent_observation(item, "api", datetime.now(UTC))


def stripe_service(ledger: Ledger, gateway: StripeGateway) -> StripeService:
    """The Stripe service over this ledger, reaching Stripe through `gateway`."""
    return StripeService(ledger, GatewayApi(gateway))
