"""The one place that talks to Stripe, through the official `stripe` library's StripeClient.

Stripe's errors become `StripeFailure`s (a LedgerError with a stable code) that say what a
caller needs to decide: whether the request may have taken effect (`outcome_unknown`: a dropped
connection, a timeout, a 5xx), how long to wait (`retry_after_seconds` from a 429), and the
issuer's `decline_code`. The API key never appears in an error or a log line.

Creating a PaymentIntent is never retried by the library (a retry after a lost answer would
create a second PaymentIntent on a server that ignores Idempotency-Key): the forwarder decides,
after looking the offline_id up. Reads are retried by the library.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import stripe

from adapters.settings import StripeSettings
from ledger.errors import Code, LedgerError

CONFIG_FILE_ENV = "OFFLINE_LEDGER_STRIPE_CONFIG"
LIST_PAGE = 100


class StripeFailure(LedgerError):
    def __init__(
        self,
        code: Code,
        message: str,
        *,
        outcome_unknown: bool = False,
        retry_after_seconds: float | None = None,
        decline_code: str | None = None,
        payment_intent_id: str | None = None,
    ) -> None:
        super().__init__(code, message)
        self.outcome_unknown = outcome_unknown
        self.retry_after_seconds = retry_after_seconds
        self.decline_code = decline_code
        self.payment_intent_id = payment_intent_id


@dataclass(frozen=True)
class Mode:
    """Test or live: a ledger holds one or the other, never both."""

    livemode: bool

    @classmethod
    def of_key(cls, api_key: str) -> Mode:
        if api_key.startswith(("sk_live_", "rk_live_")):
            return cls(True)
        return cls(False)


def load_settings() -> StripeSettings:
    """From the environment, or the `.env`-style file named by OFFLINE_LEDGER_STRIPE_CONFIG."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file:
        return StripeSettings(_env_file=Path(config_file))  # type: ignore[call-arg]
    return StripeSettings()


class StripeGateway:
    def __init__(self, settings: StripeSettings) -> None:
        if settings.api_key is None or not settings.api_key.get_secret_value().strip():
            raise LedgerError(
                Code.STRIPE_NOT_CONFIGURED,
                "no Stripe API key: set STRIPE_API_KEY "
                f"in the environment or in the file named by {CONFIG_FILE_ENV}",
            )
        key = settings.api_key.get_secret_value()
        self.mode = Mode.of_key(key)
        self.timeout_seconds = settings.timeout_seconds
        http = stripe.RequestsClient(timeout=settings.timeout_seconds)
        base = {"api": settings.api_base} if settings.api_base else None
        self._client = stripe.StripeClient(
            key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=settings.max_network_retries,
            http_client=http,
        )
        self._search_available: bool | None = None

    # -- payment intents ------------------------------------------------------------------------

    def create_and_confirm(
        self,
        *,
        offline_id: str,
        amount: int,
        currency: str,
        payment_method_id: str,
        capture_method: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        """Create and confirm a card PaymentIntent for a stored payment; sent once."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "payment_method": payment_method_id,
            "capture_method": capture_method,
            "confirm": True,
            "metadata": {**metadata, "offline_id": offline_id},
        }
        return self._call(
            lambda: self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key, "max_network_retries": 0},
            )
        )

    def capture(
        self, payment_intent_id: str, amount: int | None, idempotency_key: str
    ) -> dict[str, Any]:
        params: dict[str, Any] = {} if amount is None else {"amount_to_capture": amount}
        return self._call(
            lambda: self._client.v1.payment_intents.capture(
                payment_intent_id,
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )

    def retrieve(self, payment_intent_id: str) -> dict[str, Any]:
        return self._call(lambda: self._client.v1.payment_intents.retrieve(payment_intent_id))

    def payment_intents(self, created_since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every PaymentIntent (created at or after `created_since`), page by page."""
        since = int(created_since.timestamp()) if created_since else None
        params: dict[str, Any] = {"limit": LIST_PAGE}
        while True:
            page = self._call_page(params)
            for item in page["data"]:
                if since is None or item.get("created", since) >= since:
                    yield item
            if not page.get("has_more") or not page["data"]:
                return
            params = {"limit": LIST_PAGE, "starting_after": page["data"][-1]["id"]}

    def find_by_offline_id(self, offline_id: str) -> list[dict[str, Any]]:
        """Every PaymentIntent whose metadata.offline_id is `offline_id`: the Search API where
        the server has it, else a full listing (a server without search, e.g. a local one)."""
        if self._search_available is not False:
            try:
                found = self._call(
                    lambda: self._client.v1.payment_intents.search(
                        params={"query": f"metadata['offline_id']:'{offline_id}'"}
                    )
                )
                self._search_available = True
                return list(found["data"])
            except StripeFailure as failure:
                if failure.code is not Code.STRIPE_INVALID_REQUEST or self._search_available:
                    raise
                self._search_available = False
        return [
            item
            for item in self.payment_intents()
            if (item.get("metadata") or {}).get("offline_id") == offline_id
        ]

    # -- errors ---------------------------------------------------------------------------------

    def _call_page(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._call(lambda: self._client.v1.payment_intents.list(params=params))  # type: ignore[arg-type]

    def _call(self, request: Any) -> dict[str, Any]:
        try:
            answer = request()
        except stripe.StripeError as error:
            raise _failure(error) from None
        result: dict[str, Any] = answer.to_dict()
        return result


def _failure(error: stripe.StripeError) -> StripeFailure:
    """Stripe's exception as our typed error; messages are Stripe's, never the key."""
    message = (error.user_message or str(error._message or "") or type(error).__name__)[:500]
    if isinstance(error, stripe.CardError):
        body = error.error
        return StripeFailure(
            Code.STRIPE_CARD_DECLINED,
            f"the card was declined: {message}",
            decline_code=getattr(body, "decline_code", None) or error.code or "card_declined",
            payment_intent_id=_payment_intent_id(error),
        )
    if isinstance(error, stripe.RateLimitError):
        return StripeFailure(
            Code.STRIPE_RATE_LIMITED,
            f"Stripe is rate limiting: {message}",
            retry_after_seconds=_retry_after(error),
        )
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return StripeFailure(
            Code.STRIPE_AUTHENTICATION, "Stripe refused the API key: check STRIPE_API_KEY"
        )
    if isinstance(error, stripe.IdempotencyError):
        return StripeFailure(Code.STRIPE_INVALID_REQUEST, f"idempotency conflict: {message}")
    if isinstance(error, stripe.InvalidRequestError):
        return StripeFailure(Code.STRIPE_INVALID_REQUEST, f"Stripe refused the request: {message}")
    if isinstance(error, stripe.APIConnectionError):
        return StripeFailure(
            Code.STRIPE_UNREACHABLE, f"no answer from Stripe: {message}", outcome_unknown=True
        )
    # APIError and anything else (5xx): the request may or may not have taken effect.
    return StripeFailure(
        Code.STRIPE_API_ERROR,
        f"Stripe failed: {message}",
        outcome_unknown=True,
        retry_after_seconds=_retry_after(error),
    )


def _retry_after(error: stripe.StripeError) -> float | None:
    headers = error.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _payment_intent_id(error: stripe.StripeError) -> str | None:
    body: Any = error.json_body or {}
    intent = (body.get("error") or {}).get("payment_intent")
    if isinstance(intent, dict):
        return intent.get("id")
    return intent if isinstance(intent, str) else None
