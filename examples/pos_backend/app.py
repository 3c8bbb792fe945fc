"""An example POS backend: the HTTP endpoints a POS device calls during a sale, each one call
of the offline-ledger library (see docs/pos-engineers.md for when the device calls which).

    POST /sales/decide                          may this sale be taken offline?
    POST /sales/{offline_id}/created            ... /collected, /confirmed-offline, /forwarded,
                                                /forward-failed, /declined, /captured, /canceled
    GET  /sales/{offline_id}                    the payment's state
    POST /devices/{device_id}/connected-online  the reader connected online at a location
    GET  /status                                stored totals and headroom per location/device

Run from the repository root: `uvicorn examples.pos_backend.app:app` or
`python -m examples.pos_backend`. The database is OFFLINE_LEDGER_DATABASE_URL (default
sqlite:///pos-backend.db).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger import Ledger, LedgerError, wire
from ledger.errors import Code, Conflict, InvalidRecord, NotFound, StorageError
from ledger.pan import find_pan
from ledger.views import PaymentState

DEFAULT_DATABASE_URL = "sqlite:///pos-backend.db"

# Each step of a sale, as the URL names it, and the wire record it becomes.
STEPS = {
    "created": "payment.created",  # before collectPaymentMethod
    "collected": "payment.payment_method_collected",  # after collectPaymentMethod
    "confirmed-offline": "payment.confirmed_offline",  # confirm returned offline (no pi_ id)
    "forwarded": "payment.forwarded",  # the SDK's forwarding callback, with the pi_ id
    "forward-failed": "payment.forward_failed",  # the forwarding callback, with an error
    "declined": "payment.declined",  # the issuer declined it after forwarding
    "captured": "payment.captured",
    "canceled": "payment.canceled",
}


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # One Ledger for the process: opening it runs the migrations on an empty database, and it
    # is safe to share between requests (its calls are serialized inside).
    url = os.environ.get("OFFLINE_LEDGER_DATABASE_URL", DEFAULT_DATABASE_URL)
    with Ledger.open(url) as ledger:
        app.state.ledger = ledger
        yield


def ledger_of(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


async def read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object. A card number anywhere in it is refused before anything
    else reads it, so no error message can ever echo one back."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidRecord(Code.MALFORMED_JSON, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidRecord(Code.MALFORMED_JSON, "the body must be a JSON object")
    where = find_pan(body)
    if where is not None:
        raise InvalidRecord(
            Code.CARD_NUMBER_DETECTED,
            "a full card number was sent; send only brand, last4 and expiry",
            field=where,
        )
    return body


def with_url_fields(body: dict[str, Any], **fields: str) -> dict[str, Any]:
    """The body plus what the URL says (type, offline_id...); a body that disagrees is refused."""
    for name, value in fields.items():
        if body.get(name, value) != value:
            raise InvalidRecord(
                Code.INVALID_VALUE,
                f"'{name}' comes from the URL ({value}): leave it out of the body",
                field=name,
            )
    return {**body, **fields}


# -- endpoints --------------------------------------------------------------------------------


async def decide(request: Request) -> JSONResponse:
    """Call it before creating the PaymentIntent, and pass the answer's `offline_behavior` to
    the SDK's CreateConfiguration: the limits are shared by every device of the location, which
    a single device cannot see. `at` defaults to now; nothing is recorded."""
    sale = wire.parse_decision_request({"at": datetime.now(UTC), **await read_body(request)})
    decision = await run_in_threadpool(
        ledger_of(request).decide,
        amount=sale.amount,
        currency=sale.currency,
        device_id=sale.device_id,
        location_id=sale.location_id,
        offline_behavior=sale.offline_behavior,
        at=sale.at,
    )
    return JSONResponse(decision.to_dict())


def record_step(record_type: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        # The device sends the record's fields; the URL gives its type and offline_id. The
        # device generates offline_id (a UUID) before the sale starts and puts it in the
        # PaymentIntent's metadata.offline_id: offline, a PaymentIntent has no Stripe id until
        # it is forwarded, so this UUID is what ties the sale, the ledger and Stripe together.
        record = with_url_fields(
            await read_body(request), type=record_type, offline_id=request.path_params["offline_id"]
        )
        # Networks drop answers: after a timeout the device cannot know whether a step was
        # recorded, so it sends the very same body again (occurred_at included: the device's
        # clock, never ours). A fact already recorded answers `recorded: false`, so a retry
        # is always safe. With an `idempotency_key` per step (e.g. "<offline_id>:collected"),
        # a retry whose body changed by mistake is refused (IDEMPOTENCY_CONFLICT, naming the
        # field) instead of being taken as a new fact, such as a second card.
        result = await run_in_threadpool(ledger_of(request).record, record)
        assert isinstance(result.state, PaymentState)
        return JSONResponse(
            {"recorded": result.recorded, "payment": result.state.model_dump(mode="json")}
        )

    return endpoint


async def payment(request: Request) -> JSONResponse:
    state = await run_in_threadpool(ledger_of(request).payment, request.path_params["offline_id"])
    return JSONResponse(state.model_dump(mode="json"))


async def device_connected_online(request: Request) -> JSONResponse:
    """The reader connected online at a location: without this within the last 30 days (and
    its software updated within them), it may not take payments offline there."""
    record = with_url_fields(
        await read_body(request),
        type="device.connected_online",
        device_id=request.path_params["device_id"],
    )
    result = await run_in_threadpool(ledger_of(request).record, record)
    return JSONResponse({"recorded": result.recorded})


async def status(request: Request) -> JSONResponse:
    locations = await run_in_threadpool(
        ledger_of(request).status, request.query_params.get("location_id")
    )
    return JSONResponse({"locations": [loc.model_dump(mode="json") for loc in locations]})


# -- errors -------------------------------------------------------------------------------


def http_status(error: LedgerError) -> int:
    if isinstance(error, StorageError) or error.code == Code.CONTENTION:
        return 503  # nothing was stored: retry the same request later
    if isinstance(error, NotFound):
        return 404  # unknown payment, location or device
    if isinstance(error, Conflict):
        return 409  # out of order, or contradicts what is recorded
    return 422  # invalid input (InvalidRecord), or an offline rule refuses it (RuleViolation)


async def ledger_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, LedgerError)
    body: dict[str, Any] = {"code": str(error.code), "message": error.message, "field": error.field}
    if error.details:  # e.g. the payment's status, or the limit's headroom
        body["details"] = error.details
    return JSONResponse({"error": body}, status_code=http_status(error))


app = Starlette(
    routes=[
        Route("/sales/decide", decide, methods=["POST"]),
        *(
            Route(f"/sales/{{offline_id}}/{step}", record_step(record_type), methods=["POST"])
            for step, record_type in STEPS.items()
        ),
        Route("/sales/{offline_id}", payment, methods=["GET"]),
        Route("/devices/{device_id}/connected-online", device_connected_online, methods=["POST"]),
        Route("/status", status, methods=["GET"]),
    ],
    exception_handlers={LedgerError: ledger_error},
    lifespan=lifespan,
)
