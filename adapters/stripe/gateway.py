"""The one place that talks to Stripe, through the official `stripe` library's StripeClient.

Stripe's errors become `StripeFailure`s (a LedgerError with a stable code) that say what a
caller needs to decide: whether the request may have taken effect (`outcome_unknown`: a dropped
connection, a timeout, a 5xx), how long to wait (`retry_after_seconds` from a 429), and the
issuer's `decline_code`. The API key never appears in an error or a log line.

Creating a PaymentIntent is never retried by the library (a retry after a lost answer would
create a second PaymentIntent on a server that ignores Idempotency-Key): the forwarder decides,
after looking the offline_id up. Reads are retried by the library.

Every request carries `Stripe-Version: API_VERSION`, the version this code reads: Stripe
renders objects in the version a request asks for, so the shapes never change under the code
when the account's default version moves. The readers also accept the older shapes (a
PaymentIntent's `charges` list before 2022-11-15) found in exports and webhooks.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stripe

from adapters.settings import StripeSettings
from ledger.errors import Code, LedgerError

CONFIG_FILE_ENV = "OFFLINE_LEDGER_STRIPE_CONFIG"
LIST_PAGE = 100
# The Stripe API version this code was written against and sends with every request.
API_VERSION = "2024-06-20"
# What a PaymentIntent must show for the ledger to read it whole: its latest charge, with the
# card_present.offline marker and the balance transaction id the reports name.
EXPAND = ("data.latest_charge",)
_KEY = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9_]{8,255}")


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
        """The key's mode; a key that is neither a secret nor a restricted key of either mode
        (a publishable `pk_` key, a typo) is refused before any call."""
        if not _KEY.fullmatch(api_key):
            raise LedgerError(
                Code.STRIPE_NOT_CONFIGURED,
                "STRIPE_API_KEY is not a Stripe secret or restricted key (sk_test_..., "
                "sk_live_..., rk_test_... or rk_live_...): check the key",
            )
        return cls(api_key.split("_", 2)[1] == "live")

    @property
    def name(self) -> str:
        return "live" if self.livemode else "test"


def shown_livemode(item: dict[str, Any], gateway_mode: Mode) -> bool:
    """The mode of an object Stripe returned (its `livemode`; the key's when it has none)."""
    livemode = item.get("livemode")
    return livemode if isinstance(livemode, bool) else gateway_mode.livemode


def load_settings() -> StripeSettings:
    """From the environment, or the `.env`-style file named by OFFLINE_LEDGER_STRIPE_CONFIG."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file:
        # A missing file would otherwise read as an empty one: the operator would be told the
        # key is missing rather than the file.
        if not Path(config_file).is_file():
            raise LedgerError(
                Code.CONFIG_FILE_NOT_FOUND,
                f"{CONFIG_FILE_ENV} names {config_file}, which is not a file: create it with "
                "STRIPE_API_KEY=... in it, fix the path, or unset the variable",
            )
        return StripeSettings.from_environ(file=Path(config_file))
    return StripeSettings.from_environ()


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
            stripe_version=API_VERSION,
        )
        self._search_available: bool | None = None
        self._created_filter: bool | None = None  # does the server filter by `created`?
        self._index = _OfflineIdIndex()

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
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        """Create and confirm a card PaymentIntent for a stored payment; sent once.

        `off_session`: the customer is gone, the sale happened earlier, so Stripe applies the
        rules of a merchant-initiated charge (and answers a card that needs authentication with
        an error instead of waiting). A saved card belongs to a Customer: Stripe refuses its
        PaymentMethod without `customer`."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "payment_method": payment_method_id,
            "capture_method": capture_method,
            "confirm": True,
            "off_session": True,
            "metadata": {**metadata, "offline_id": offline_id},
        }
        if customer_id is not None:
            params["customer"] = customer_id
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
        """Every PaymentIntent (created at or after `created_since`: Stripe filters, so the
        history before it is never walked), page by page, each with its latest charge."""
        since = int(created_since.timestamp()) if created_since else None
        first: dict[str, Any] = {"limit": LIST_PAGE, "expand": list(EXPAND)}
        if since is not None and self._created_filter is not False:
            first["created"] = {"gte": since}
        params = first
        while True:
            try:
                page = self._call_page(params)
            except StripeFailure as failure:
                # A server without the `created` filter (a local one): filter here instead.
                if "created" not in params or failure.code is not Code.STRIPE_INVALID_REQUEST:
                    raise
                if self._created_filter:
                    raise
                self._created_filter = False
                first = {k: v for k, v in first.items() if k != "created"}
                params = {k: v for k, v in params.items() if k != "created"}
                continue
            if "created" in params:
                self._created_filter = True
            for item in page["data"]:
                if since is None or item.get("created", since) >= since:
                    yield item
            if not page.get("has_more") or not page["data"]:
                return
            params = {**first, "starting_after": page["data"][-1]["id"]}

    def find_by_offline_id(
        self, offline_id: str, created_since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Every PaymentIntent whose metadata.offline_id is `offline_id`: the Search API where
        the server has it; else (a server without Search, e.g. a local one) PaymentIntents
        created since `created_since` are listed once per run and indexed by offline_id, and
        each later lookup only lists what was created since the newest one indexed."""
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
        with self._index.lock:
            since = created_since or datetime.fromtimestamp(0, UTC)
            self._index.cover(since, self.payment_intents)
            return list(self._index.by_offline_id.get(offline_id, []))

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


class _OfflineIdIndex:
    """PaymentIntents listed by `created` window, by metadata.offline_id (one per run)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: datetime | None = None  # the window's start
        self.newest = 0  # the newest `created` seen (unix seconds)
        self.seen: set[str] = set()
        self.by_offline_id: dict[str, list[dict[str, Any]]] = {}

    def cover(
        self, since: datetime, listing: Callable[[datetime | None], Iterator[dict[str, Any]]]
    ) -> None:
        """List what the index lacks: the whole window the first time (or when asked for an
        earlier start), else only what was created since the newest one seen (a PaymentIntent
        created a moment ago by this run is then found)."""
        if self.since is None or since < self.since:
            self.since, start = since, since
        else:
            start = datetime.fromtimestamp(self.newest, UTC)
        for item in listing(start):
            self.newest = max(self.newest, int(item.get("created") or 0))
            if item["id"] in self.seen:
                continue
            self.seen.add(item["id"])
            offline_id = (item.get("metadata") or {}).get("offline_id")
            if isinstance(offline_id, str):
                self.by_offline_id.setdefault(offline_id, []).append(item)


def _failure(error: stripe.StripeError) -> StripeFailure:
    """Stripe's exception as our typed error; messages are Stripe's, never the key."""
    message = (error.user_message or str(error._message or "") or type(error).__name__)[:500]
    if isinstance(error, stripe.CardError) and error.code == "authentication_required":
        return StripeFailure(
            Code.STRIPE_AUTHENTICATION_REQUIRED,
            f"the card needs the customer to authenticate: {message}",
            payment_intent_id=_payment_intent_id(error),
        )
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
        return StripeFailure(
            Code.STRIPE_IDEMPOTENCY_ERROR,
            f"Stripe refused the Idempotency-Key (used before with other parameters): {message}",
        )
    if isinstance(error, stripe.InvalidRequestError):
        return StripeFailure(Code.STRIPE_INVALID_REQUEST, f"Stripe refused the request: {message}")
    if isinstance(error, stripe.APIConnectionError):
        return StripeFailure(
            Code.STRIPE_UNREACHABLE,
            f"no answer from Stripe ({_network_reason(error)}): check the network and "
            "STRIPE_API_BASE, then run again",
            outcome_unknown=True,
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


def _network_reason(error: BaseException) -> str:
    """The innermost cause of a network error (`Connection refused`, `timed out`), not
    stripe-python's paragraph around the whole requests and urllib3 chain."""
    cause: BaseException = error
    while (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    return getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
