"""The Stripe webhook receiver: an ASGI application, served by `offline-ledger serve`.

`POST /stripe/webhook` verifies the `Stripe-Signature` header over the raw body before reading
anything, then applies each event id once:

- `payment_intent.*`: first the ledger facts that the PaymentIntent's state implies (each
  idempotent), then the observation together with the event's receipt, in one transaction. A
  crash between the two is safe: Stripe redelivers, the facts repeat as no-ops and the receipt
  is recorded then. A fact the ledger refuses (e.g. STEP_OUT_OF_ORDER) is logged and skipped:
  Stripe's word is still kept as the observation and the report shows the disagreement.
- refunds, charges and disputes (`refund.*`, `charge.refunded`, `charge.dispute.*`...): see
  `adapters.stripe.events`; each refund counts once, by its `re_` id, however many events and
  reports name it.
- Anything else (another type, a v2 thin event, an event of the other Stripe mode) is answered
  200 with `"ignored": true` and the reason, which the log records too: Stripe retries every
  other answer for three days.

A body holding a full card number anywhere, in any disguise (`ledger.pan`), the event id
included, is refused with 400 CARD_NUMBER_DETECTED before it is parsed: nothing is stored and
the log line names neither the event nor the number.

Status codes follow what Stripe does with them: 2xx is final; 400 means "this delivery can never
succeed" (bad signature, malformed event); 503 asks Stripe to retry (database unavailable).
A body that does not arrive within the limits' `body_seconds` is answered 408, and a client
that disconnects mid-body is one log line (`adapters.http.http_limits` bounds the rest).

The ledger is synchronous: its calls run in worker threads, for at most `database_wait_seconds`.
A database that is down does not fail fast (the PostgreSQL recorder retries for a minute and
more), so past that wait the answer is 503 and the call is left to finish on its own: what it
records is atomic and idempotent, so Stripe's next delivery either completes it or finds it done.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import stripe
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.http.http_limits import DEFAULT as DEFAULT_LIMITS
from adapters.http.http_limits import REQUEST_TIMEOUT, HttpLimits
from adapters.http.problems import CLIENT_DISCONNECTED, PAYLOAD_TOO_LARGE
from adapters.stripe import events as stripe_events
from adapters.stripe.objects import payment_intent_observation
from adapters.stripe.problems import StripeFileError
from ledger import Ledger, LedgerError
from ledger.bounds import check_value, decode
from ledger.errors import Code, InvalidRecord, StorageError
from ledger.moments import MomentError, from_unix_seconds
from ledger.observations import Observation
from ledger.pan import holds_pan
from ledger.stripe_service import StripeService

log = logging.getLogger("offline_ledger.webhooks")
T = TypeVar("T")

INVALID_SIGNATURE = "INVALID_SIGNATURE"
BODY_MAX = 4 * 1024 * 1024  # Stripe's events are a few kB; refuse bodies no event could fill
PAYMENT_INTENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.amount_capturable_updated",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
    }
)
APPLIED_EVENTS = (
    PAYMENT_INTENT_EVENTS
    | stripe_events.REFUND_EVENTS
    | stripe_events.CHARGE_EVENTS
    | stripe_events.DISPUTE_EVENTS
)
THIN_EVENT = "v2.core.event"  # Stripe's v2 "thin" events: an id and a type, no object
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{3,255}")


def create_app(
    ledger: Ledger,
    webhook_secret: str,
    tolerance_seconds: int = 300,
    database_wait_seconds: float = 10.0,
    limits: HttpLimits = DEFAULT_LIMITS,
) -> Starlette:
    async def in_thread(function: Callable[..., T], *args: Any) -> T:
        with anyio.fail_after(database_wait_seconds):
            return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)

    async def webhook(request: Request) -> JSONResponse:
        try:
            with anyio.fail_after(limits.body_seconds):
                body = await _read_body(request)
        except TimeoutError:
            log.warning(
                "webhook: the body did not arrive within %s s, answered 408; nothing was stored",
                limits.body_seconds,
            )
            return _error(
                408,
                REQUEST_TIMEOUT,
                f"the body did not arrive within {limits.body_seconds} s",
                {"connection": "close"},  # the rest of the body is never read
            )
        except ClientDisconnect:
            log.warning(
                "webhook: the client disconnected before the end of the body; nothing was stored"
            )
            return _error(400, CLIENT_DISCONNECTED, "the client disconnected")  # read by none
        if body is None:
            return _error(413, PAYLOAD_TOO_LARGE, f"the body exceeds {BODY_MAX} bytes")
        header = request.headers.get("stripe-signature")
        try:
            if not header:
                raise ValueError("no Stripe-Signature header")
            stripe.WebhookSignature.verify_header(
                body.decode("utf-8"), header, webhook_secret, tolerance_seconds
            )
        except (stripe.SignatureVerificationError, ValueError) as error:  # UnicodeDecodeError
            reason = (
                error.user_message
                if isinstance(error, stripe.StripeError)
                else (
                    "the body is not UTF-8" if isinstance(error, UnicodeDecodeError) else str(error)
                )
            )
            log.warning("webhook refused: invalid signature (%s)", reason)
            return _error(
                400,
                INVALID_SIGNATURE,
                f"the Stripe-Signature header does not verify ({reason}): check that "
                "STRIPE_WEBHOOK_SECRET is this endpoint's signing secret (whsec_...) "
                "and that the server's clock is right",
            )
        if holds_pan(body):
            # Before parsing: neither the event id nor its type is said or logged, since
            # either may be the card number (`evt_4242...`).
            log.warning("webhook refused: the body holds a card number; nothing was stored")
            return _error(
                400,
                Code.CARD_NUMBER_DETECTED,
                "the event holds a full card number (13-19 digits passing the Luhn check); "
                "the ledger never stores one, and Stripe never sends one: check what posts "
                "to this endpoint",
            )
        event: dict[str, Any] = {}
        try:
            event = _parse_event(body)
            answer = await in_thread(_apply, ledger, event)
        except TimeoutError:
            log.error(
                "webhook %s: the database did not answer within %s s, answered 503 so "
                "that Stripe retries",
                _about(event),
                database_wait_seconds,
            )
            return _error(
                503,
                Code.DATABASE_UNAVAILABLE,
                f"the database did not answer within "
                f"{database_wait_seconds} s; Stripe will deliver the event again",
            )
        except LedgerError as error:
            if isinstance(error, StorageError) or error.code == Code.CONTENTION:
                log.error(
                    "webhook %s: %s, answered 503 so that Stripe retries", _about(event), error.code
                )
                return JSONResponse({"error": error.to_dict()}, status_code=503)
            shown = error.problems[0] if isinstance(error, StripeFileError) else error
            log.warning("webhook %s refused: %s", _about(event), shown)
            return JSONResponse({"error": shown.to_dict()}, status_code=400)
        return JSONResponse(answer)

    # Served beside the API, whose /health and /ready probe the same ledger
    # (`adapters.http.app`).
    return Starlette(routes=[Route("/stripe/webhook", webhook, methods=["POST"])])


async def _read_body(request: Request) -> bytes | None:
    """The raw body (the signature covers its exact bytes), or None past BODY_MAX."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > BODY_MAX:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _about(event: dict[str, Any]) -> str:
    return f"{event['id']} {event['type']}" if event else "(not a valid event)"


def _invalid(code: Code, field: str, message: str) -> InvalidRecord:
    return InvalidRecord(code, f"the event's {field}: {message}", field=field)


def _parse_event(body: bytes) -> dict[str, Any]:
    """A v1 snapshot event with the fields this receiver needs, or a v2 thin event (its id
    and type only: it is answered 2xx and ignored); raise InvalidRecord."""
    event = decode(body, what="the body")  # strict JSON: no NaN, no lone surrogate
    check_value(event, what="the event")  # before anything walks it: no recursion limit hit
    if not isinstance(event, dict) or event.get("object", "event") not in ("event", THIN_EVENT):
        raise InvalidRecord(Code.INVALID_VALUE, "the body is not a Stripe event object")
    if not isinstance(event.get("id"), str) or not _STRIPE_ID.fullmatch(event["id"]):
        raise _invalid(Code.MISSING_FIELD, "id", "missing or not a Stripe id (evt_...)")
    if not isinstance(event.get("type"), str) or not event["type"]:
        raise _invalid(Code.MISSING_FIELD, "type", "missing or not a string")
    if event.get("object") == THIN_EVENT:
        return event
    try:
        from_unix_seconds(event.get("created"))
    except MomentError as error:
        raise _invalid(Code.INVALID_TIMESTAMP, "created", f"missing or {error}") from None
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise _invalid(Code.MISSING_FIELD, "data.object", "missing or not an object")
    return event


def _apply(ledger: Ledger, event: dict[str, Any]) -> dict[str, Any]:
    """Record one verified event (in a worker thread: the ledger is synchronous).

    An event deliberately not applied is answered 2xx with the reason (Stripe retries every
    other answer for days): a v2 thin event, a type this ledger does not use, an event of the
    other Stripe mode."""
    event_id, event_type = event["id"], event["type"]
    if event.get("object") == THIN_EVENT:
        return _ignored(
            ledger, event_id, event_type, "a v2 thin event: it carries no object to record"
        )
    if event_type not in APPLIED_EVENTS:
        return _ignored(ledger, event_id, event_type, "not an event type this ledger applies")
    livemode = bool(event.get("livemode", False))
    bound = ledger.stripe_mode()
    if bound is not None and bound != livemode:
        return _ignored(
            ledger,
            event_id,
            event_type,
            f"a {'live' if livemode else 'test'}-mode event; this ledger holds "
            f"{'live' if bound else 'test'}-mode objects",
        )
    service = StripeService(ledger)
    if service.event_received(event_id):
        log.info("webhook %s %s: duplicate (already received)", event_id, event_type)
        return {"received": True, "duplicate": True}
    as_of = from_unix_seconds(event["created"])
    item = event["data"]["object"]
    seen: list[Observation]
    if event_type in PAYMENT_INTENT_EVENTS:
        seen = [payment_intent_observation(item, "webhook", as_of)]
    else:
        seen = stripe_events.observations(event_type, item, as_of)
    # A valid event, so it may tie the ledger to its mode: never test and live mixed.
    observed = service.observe(seen, livemode=livemode, stripe_event=(event_id, event_type))
    for refusal in observed.refused:
        log.warning(
            "webhook %s: %s for payment %s refused (%s); Stripe's view is kept as an observation",
            event_id,
            refusal.record_type,
            refusal.offline_id,
            refusal.error.code,
        )
    log.info(
        "webhook %s %s: recorded (%d new observations, new facts: %s)",
        event_id,
        event_type,
        observed.observations_recorded,
        ", ".join(observed.facts) or "none",
    )
    return {"received": True, "duplicate": False, "facts": observed.facts}


def _ignored(ledger: Ledger, event_id: str, event_type: str, reason: str) -> dict[str, Any]:
    """Recorded as ignored, with why, once; every delivery gets the same answer."""
    new = ledger.ignore_stripe_event(event_id, event_type, reason)
    log.info(
        "webhook %s %s: ignored (%s)%s", event_id, event_type, reason, "" if new else ", again"
    )
    return {"received": True, "ignored": True, "reason": reason}
