"""The ledger's HTTP API, under `/v1`: one endpoint per library call, for POS backends in any
language. Served by `offline-ledger serve` beside Stripe's webhook endpoint (`adapters.http.app`).

Bodies are read raw and parsed by the wire format's own functions (`ledger.wire`), so a record
is refused over HTTP exactly as in a file or a library call (same checks, same codes, a card
number found before anything else reads the body); the OpenAPI document still describes them,
from the same pydantic models. Every call of the ledger runs in a worker thread, for at most
the database wait: past it the answer is 503 and the call finishes on its own (every write is
atomic and idempotent, so the client's retry finds it done or does it).

`Idempotency-Key` (as Stripe's API takes it) names a record: it becomes the record's
`idempotency_key`. The same key with the same body answers the payment's state with
`recorded: false` and `Idempotent-Replayed: true`, however many servers the retries reach;
with a different body, 409 IDEMPOTENCY_CONFLICT naming the field that differs. On a batch,
each record without its own key gets `<key>:<index>`.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from adapters.http import access, metrics
from adapters.http.access import RateLimiter, require_location, require_role
from adapters.http.api_keys import ApiKey
from adapters.http.http_limits import REQUEST_TIMEOUT
from adapters.http.key_checks import KeyChecks
from adapters.http.problems import (
    BATCH_TOO_LARGE,
    CLIENT_DISCONNECTED,
    PAYLOAD_TOO_LARGE,
    ApiError,
)
from adapters.http.schemas import (
    AllowRequest,
    BatchAnswer,
    BatchItem,
    DecideRequest,
    DecisionAnswer,
    ItemError,
    RecordAnswer,
    RecordBatch,
    ReleaseRequest,
    ReserveRequest,
    StoredPayment,
)
from ledger import Ledger, LedgerError, wire
from ledger.application import BATCH_SIZE_MAX, Result
from ledger.bounds import LINE_BYTES_MAX, decode
from ledger.errors import Code, Conflict, InvalidRecord, NotFound, StorageError
from ledger.moments import MomentError, parse_moment
from ledger.pan import holds_pan
from ledger.status_views import AllowanceState, DeviceStatus, LocationStatus
from ledger.views import HistoryEntry, PaymentState, ReservationState
from projections.formats import write
from projections.read_models import ReadModels
from projections.reconciliation import Filters, Thresholds

T = TypeVar("T")
BATCH_BYTES_MAX = 16 * 1024 * 1024  # BATCH_SIZE_MAX records of a few kB each
IDEMPOTENCY_KEY_MAX = 255


THREADS = 40  # the ledger calls one server process runs at once (anyio's default)


@dataclass
class Services:
    """What every request of one server process shares.

    Its waits and threads are asyncio's own (`asyncio.timeout`, an executor): anyio's
    cancel scopes and thread hop cost a request more than its JSON does."""

    ledger: Ledger
    keys: KeyChecks
    read_models: ReadModels
    rate: RateLimiter
    body_seconds: float
    database_wait_seconds: float
    threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(THREADS, thread_name_prefix="offline-ledger")
    )

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function` in a worker thread, in the request's context (its id on the log lines
        written there), for at most the database wait: past it the call is left to finish
        on its own."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.database_wait_seconds):
                return await loop.run_in_executor(self.threads, context.run, function, *args)
        except TimeoutError:
            raise StorageError(
                Code.DATABASE_UNAVAILABLE,
                f"the database did not answer within {self.database_wait_seconds} s; "
                "nothing is lost by retrying the same request",
            ) from None

    async def body(self, request: Request, limit: int) -> bytes:
        """The raw body: at most `limit` bytes, within `body_seconds`."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_seconds):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise ApiError(
                REQUEST_TIMEOUT,
                f"the body did not arrive within {self.body_seconds} s",
                headers={"connection": "close"},
            ) from None
        except ClientDisconnect:
            raise ApiError(CLIENT_DISCONNECTED, "the client disconnected") from None
        return b"".join(chunks)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def services_dependency(request: Request) -> Services:
    """`services_of` as a dependency: a coroutine, so that FastAPI calls it in place (it
    hands a plain function to a worker thread, a hop on every request)."""
    return services_of(request)


_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="olk_<id>_<secret>",
    description="An API key made by `offline-ledger keys create`.",
)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> ApiKey:
    """The live key of the request (401 without detail otherwise), within its rate."""
    services = services_of(request)
    token = credentials.credentials if credentials else None
    key = await services.keys.authenticate(token, services.run)
    request.state.key_id = key.key_id  # for the log: the key's id, never the token
    services.rate.take(key.key_id)
    return key


Caller = Annotated[ApiKey, Depends(caller)]
ServicesOf = Annotated[Services, Depends(services_dependency)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Names the record (its idempotency_key): a retry with the same key and "
        "body is answered the same; with another body, 409 IDEMPOTENCY_CONFLICT.",
    ),
]


def body_of(name: str) -> dict[str, Any]:
    """The request body the OpenAPI document shows for an endpoint that reads its body raw
    (one of REQUEST_MODELS, which `adapters.http.app` puts into the document's components)."""
    schema = {"$ref": f"#/components/schemas/{name}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# The bodies read raw, whose schemas the document needs: name -> model or type adapter.
REQUEST_MODELS: dict[str, Any] = {
    "Record": wire.RECORD_ADAPTER,
    "RecordBatch": RecordBatch,
    "DecideRequest": DecideRequest,
    "ReserveRequest": ReserveRequest,
    "ReleaseRequest": ReleaseRequest,
    "AllowRequest": AllowRequest,
}

router = APIRouter(prefix="/v1")


def as_json(answer: BaseModel) -> Response:
    """The answer serialized once, by its own model. Returned as a model, FastAPI would dump
    it to a dict, validate that against the route's response model and serialize the
    result: three passes where one does, on the endpoints that record."""
    return Response(answer.model_dump_json(), media_type="application/json")


# -- records ----------------------------------------------------------------------------------


@router.post(
    "/records", tags=["records"], response_model=RecordAnswer, openapi_extra=body_of("Record")
)
async def record_one(
    request: Request, key: Caller, services: ServicesOf, idempotency_key: IdempotencyKey = None
) -> Response:
    """Record one fact (a wire record: `payment.*`, `device.connected_online`, or, for an
    admin key, `location.configured`); durable when answered. A repeat records nothing and
    answers `recorded: false`."""
    require_role(key, access.WRITERS)
    record = wire.parse_line(await services.body(request, LINE_BYTES_MAX))
    require_role(key, _roles_for(record))
    record = _keyed(record, idempotency_key, None)

    def apply() -> Result:
        error = _out_of_scope(services.ledger, key, record)
        if error is not None:
            raise error
        return services.ledger.record(record)

    try:
        result = await services.run(apply)
    except LedgerError as error:
        metrics.RECORDS.labels("refused", str(error.code)).inc()
        raise
    metrics.RECORDS.labels("recorded" if result.recorded else "repeat", "").inc()
    if not result.recorded:
        request.state.replayed = True
    answer = RecordAnswer(
        recorded=result.recorded,
        record_type=result.record_type,
        key=result.key,
        breaches=list(result.breaches),
        state=result.state,
    )
    return as_json(answer)


@router.post(
    "/records/batch",
    tags=["records"],
    response_model=BatchAnswer,
    openapi_extra=body_of("RecordBatch"),
)
async def record_batch(
    request: Request, key: Caller, services: ServicesOf, idempotency_key: IdempotencyKey = None
) -> Response:
    """Record several facts in order, as `Ledger.record_many` does: each gets its own result
    or its own refusal (which stores nothing for it), in the same order."""
    require_role(key, access.WRITERS)
    document = decode(await services.body(request, BATCH_BYTES_MAX), what="the body")
    raw = _batch_records(document)
    items: list[wire.Record | LedgerError] = []
    for index, item in enumerate(raw):
        try:
            record = wire.parse_record(item)
            require_role(key, _roles_for(record))
            items.append(_keyed(record, idempotency_key, index))
        except LedgerError as error:
            items.append(error)

    def apply() -> list[Result | LedgerError]:
        scoped = [
            item
            if isinstance(item, LedgerError)
            else (_out_of_scope(services.ledger, key, item) or item)
            for item in items
        ]
        return services.ledger.record_many(scoped)

    results = await services.run(apply)
    for result in results:
        if isinstance(result, LedgerError):
            metrics.RECORDS.labels("refused", str(result.code)).inc()
        else:
            metrics.RECORDS.labels("recorded" if result.recorded else "repeat", "").inc()
    answers = [_batch_item(index, result) for index, result in enumerate(results)]
    answer = BatchAnswer(
        recorded=sum(1 for a in answers if a.recorded),
        repeats=sum(1 for a in answers if a.recorded is False),
        refused=sum(1 for a in answers if a.error is not None),
        results=answers,
    )
    return as_json(answer)


def _batch_records(document: Any) -> list[Any]:
    if not isinstance(document, dict):
        raise InvalidRecord(Code.MALFORMED_JSON, 'the body must be {"records": [...]}')
    unknown = sorted(set(document) - {"records"})
    if unknown:
        raise InvalidRecord(
            Code.UNKNOWN_FIELD,
            f"field '{unknown[0]}' is not part of a batch; send only records",
            field=unknown[0],
        )
    records = document.get("records")
    if not isinstance(records, list) or not records:
        raise InvalidRecord(
            Code.MISSING_FIELD, "'records' must be a non-empty list of records", field="records"
        )
    if len(records) > BATCH_SIZE_MAX:
        raise ApiError(
            BATCH_TOO_LARGE,
            f"{len(records)} records in one batch: send at most {BATCH_SIZE_MAX} at a time",
        )
    return records


def _roles_for(record: wire.Record) -> tuple[Any, ...]:
    """A location's configuration is the admin's; every other fact, a writer's."""
    return access.ADMIN if isinstance(record, wire.LocationConfigured) else access.WRITERS


def _keyed(record: wire.Record, header: str | None, index: int | None) -> wire.Record:
    """The record named by the request's Idempotency-Key (its own key must agree)."""
    if header is None:
        return record
    if holds_pan(header):
        raise InvalidRecord(
            Code.CARD_NUMBER_DETECTED,
            "the Idempotency-Key header holds a full card number; use a random key",
            field="Idempotency-Key",
        )
    if index is not None:
        if record.idempotency_key is not None:
            return record
        return record.model_copy(update={"idempotency_key": f"{header}:{index}"})
    if record.idempotency_key not in (None, header):
        raise Conflict(
            Code.IDEMPOTENCY_CONFLICT,
            "the Idempotency-Key header and the record's idempotency_key differ; send one",
            field="idempotency_key",
        )
    return record.model_copy(update={"idempotency_key": header})


def _out_of_scope(ledger: Ledger, key: ApiKey, record: wire.Record) -> NotFound | None:
    """The refusal of a record about a location, or a payment, the key may not see (as if
    unknown), else None."""
    if not key.locations or isinstance(record, wire.LocationConfigured):
        return None
    location_id = getattr(record, "location_id", None)
    if location_id is not None and not key.sees(location_id):
        return access.unknown_location(location_id)
    offline_id = getattr(record, "offline_id", None)
    if offline_id is not None:
        try:
            seen = ledger.payment(offline_id)
        except NotFound:
            return None
        if not key.sees(seen.location_id):
            return access.unknown_payment(str(offline_id))
    return None


def _batch_item(index: int, result: Result | LedgerError) -> BatchItem:
    if isinstance(result, LedgerError):
        return BatchItem(index=index, error=ItemError.model_validate(result.to_dict()))
    return BatchItem(
        index=index,
        recorded=result.recorded,
        record_type=result.record_type,
        key=result.key,
        breaches=list(result.breaches),
    )


# -- before a sale ----------------------------------------------------------------------------


@router.post("/decisions", tags=["sales"], openapi_extra=body_of("DecideRequest"))
async def decide(request: Request, key: Caller, services: ServicesOf) -> DecisionAnswer:
    """May this sale be taken offline now? Pass the answer's `offline_behavior` to the
    Terminal SDK. Advice only: nothing is recorded or held (a reservation holds)."""
    require_role(key, access.WRITERS)
    sale = wire.parse_body(DecideRequest, await services.body(request, LINE_BYTES_MAX))
    require_location(key, sale.location_id)
    decision = await services.run(
        lambda: services.ledger.decide(
            amount=sale.amount,
            currency=sale.currency,
            device_id=sale.device_id,
            location_id=sale.location_id,
            offline_behavior=sale.offline_behavior,
            at=sale.at,
        )
    )
    return DecisionAnswer.model_validate(decision.to_dict())


@router.post("/reservations", tags=["sales"], openapi_extra=body_of("ReserveRequest"))
async def reserve(request: Request, key: Caller, services: ServicesOf) -> ReservationState:
    """Decide and hold the sale's headroom, atomically across every device of the location
    and every server; the same request always gets the same answer."""
    require_role(key, access.WRITERS)
    sale = wire.parse_body(ReserveRequest, await services.body(request, LINE_BYTES_MAX))
    require_location(key, sale.location_id)
    return await services.run(
        lambda: services.ledger.reserve(
            sale.offline_id,
            sale.amount,
            sale.currency,
            sale.device_id,
            sale.location_id,
            at=sale.at,
            hold_for=timedelta(seconds=sale.hold_seconds),
        )
    )


@router.post(
    "/reservations/{offline_id}/release", tags=["sales"], openapi_extra=body_of("ReleaseRequest")
)
async def release(
    offline_id: str, request: Request, key: Caller, services: ServicesOf
) -> ReservationState:
    """Give back the headroom the sale's reservation holds (the sale was abandoned)."""
    require_role(key, access.WRITERS)
    raw = await services.body(request, LINE_BYTES_MAX)
    asked = wire.parse_body(ReleaseRequest, raw or b"{}")

    def apply() -> ReservationState:
        held = services.ledger.reservation(offline_id)
        if not key.sees(held.location_id):
            raise NotFound(
                Code.UNKNOWN_RESERVATION,
                f"no reservation was asked for sale {offline_id}",
                field="offline_id",
            )
        return services.ledger.release(offline_id, at=asked.at)

    return await services.run(apply)


@router.post("/allowances", tags=["sales"], openapi_extra=body_of("AllowRequest"))
async def allow(request: Request, key: Caller, services: ServicesOf) -> AllowanceState:
    """Grant a device an offline allowance for when nobody can reach the ledger; what is
    granted may be less than asked (it is carved out of the location's limits)."""
    require_role(key, access.WRITERS)
    asked = wire.parse_body(AllowRequest, await services.body(request, LINE_BYTES_MAX))
    require_location(key, asked.location_id)
    return await services.run(
        lambda: services.ledger.allow(
            asked.device_id,
            asked.location_id,
            dict(asked.amounts),
            asked.count,
            asked.valid_until,
            at=asked.at,
        )
    )


# -- reading ----------------------------------------------------------------------------------


# A location or a reader named in a path or a query is a name as the wire format writes it:
# anything else (a NUL byte, a space) is refused here with the field named, rather than
# reaching the read models' SQL, which PostgreSQL would refuse with a server error.
NamePath = Annotated[
    str,
    Path(min_length=1, max_length=wire.IDENTIFIER_MAX, pattern=wire.IDENTIFIER_PATTERN),
]


def name_query(description: str) -> Any:
    """A query parameter naming a location or a reader, checked as `NamePath` is."""
    return Query(
        description=description, max_length=wire.IDENTIFIER_MAX, pattern=wire.IDENTIFIER_PATTERN
    )


@router.get("/locations", tags=["status"])
async def locations(key: Caller, services: ServicesOf) -> list[LocationStatus]:
    """Stored counts, amounts and headroom of every location the key sees, with its devices."""
    everything = await services.run(services.ledger.status)
    return [status for status in everything if key.sees(status.location_id)]


@router.get("/locations/{location_id}", tags=["status"])
async def location(location_id: NamePath, key: Caller, services: ServicesOf) -> LocationStatus:
    require_location(key, location_id)
    (status,) = await services.run(services.ledger.status, location_id)
    return status


@router.get("/locations/{location_id}/devices/{device_id}", tags=["status"])
async def device(
    location_id: NamePath, device_id: NamePath, key: Caller, services: ServicesOf
) -> DeviceStatus:
    """One reader at the location: what it stores, its headroom and its allowance."""
    require_location(key, location_id)
    (status,) = await services.run(services.ledger.status, location_id)
    for one in status.devices:
        if one.device_id == device_id:
            return one
    raise NotFound(
        Code.UNKNOWN_DEVICE,
        f"device {device_id} never connected online at location {location_id}",
        field="device_id",
    )


@router.get("/locations/{location_id}/devices/{device_id}/allowance", tags=["status"])
async def allowance(
    location_id: NamePath, device_id: NamePath, key: Caller, services: ServicesOf
) -> AllowanceState:
    """The device's latest allowance at the location, and what it used."""
    held = (await device(location_id, device_id, key, services)).allowance
    if held is None:
        raise NotFound(
            Code.UNKNOWN_DEVICE,
            f"device {device_id} was granted no allowance at location {location_id}",
            field="device_id",
        )
    return held


@router.get("/locations/{location_id}/stored-payments", tags=["status"])
async def stored(
    location_id: NamePath,
    key: Caller,
    services: ServicesOf,
    device_id: Annotated[str | None, name_query("Only this reader.")] = None,
) -> list[StoredPayment]:
    """The payments still stored on the location's readers (not yet forwarded), the longest
    waiting first, with their age: which payments are still on which reader."""
    require_location(key, location_id)
    await services.run(services.ledger.status, location_id)  # UNKNOWN_LOCATION
    rows = await services.run(services.read_models.stored, location_id, device_id)
    now = datetime.now(UTC)
    return [
        StoredPayment(
            offline_id=row.offline_id,
            location_id=row.location_id,
            device_id=row.device_id,
            amount=row.amount,
            currency=row.currency,
            stored_at=row.stored_at,
            age_seconds=max(0, int((now - row.stored_at).total_seconds())),
        )
        for row in rows
    ]


@router.get("/locations/{location_id}/refusals", tags=["status"])
async def refusals(
    location_id: NamePath, key: Caller, services: ServicesOf
) -> list[ReservationState]:
    """The reservations refused at the location, with what each check saw."""
    require_location(key, location_id)
    await services.run(services.ledger.status, location_id)  # UNKNOWN_LOCATION
    return await services.run(services.ledger.refusals, location_id)


@router.get("/payments/{offline_id}", tags=["payments"])
async def payment(offline_id: str, key: Caller, services: ServicesOf) -> PaymentState:
    """The payment's state: status, amounts, Stripe's ids, breaches."""
    return await services.run(_payment_seen, services.ledger, key, offline_id)


@router.get("/payments/{offline_id}/history", tags=["payments"])
async def history(offline_id: str, key: Caller, services: ServicesOf) -> list[HistoryEntry]:
    """Every event of the payment, with what Stripe said beside them."""

    def read() -> list[HistoryEntry]:
        _payment_seen(services.ledger, key, offline_id)
        return services.ledger.history(offline_id)

    return await services.run(read)


def _payment_seen(ledger: Ledger, key: ApiKey, offline_id: str) -> PaymentState:
    state = ledger.payment(offline_id)
    if not key.sees(state.location_id):
        raise access.unknown_payment(offline_id)
    return state


# -- the report -------------------------------------------------------------------------------


def _moment(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value)
    except MomentError as error:
        raise InvalidRecord(Code.INVALID_TIMESTAMP, str(error), field=field) from None


@router.get(
    "/report",
    tags=["report"],
    response_class=Response,
    responses={
        200: {
            "description": "The report as JSON or CSV (one row per offline_id).",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def report(
    key: Caller,
    services: ServicesOf,
    format: Literal["json", "csv"] = "json",
    location_id: Annotated[str | None, name_query("Only this location.")] = None,
    since: Annotated[str | None, Query(description="RFC 3339: stored from then.")] = None,
    until: Annotated[str | None, Query(description="RFC 3339: stored before then.")] = None,
    as_of: Annotated[str | None, Query(description="RFC 3339; default now.")] = None,
    stale_hours: Annotated[int, Query(ge=1, le=24 * 365)] = 24,
    capture_warning_hours: Annotated[int, Query(ge=0, le=24 * 5)] = 12,
) -> Response:
    """The reconciliation report, with the command line's filters. A key with locations must
    name one of them."""
    require_role(key, access.FINANCE)
    if key.locations and location_id is None:
        raise InvalidRecord(
            Code.MISSING_FIELD,
            "this key sees some locations only: name one in location_id",
            field="location_id",
        )
    if location_id is not None:
        require_location(key, location_id)
    filters = Filters(
        location_id=location_id,
        since=_moment(since, "since"),
        until=_moment(until, "until"),
    )
    thresholds = Thresholds(
        stale_after=timedelta(hours=stale_hours),
        capture_warning=timedelta(hours=capture_warning_hours),
    )
    moment = _moment(as_of, "as_of") or datetime.now(UTC)
    built = await services.run(services.read_models.report, moment, thresholds, filters)
    text = io.StringIO()
    write(built, format, text)
    media = "application/json" if format == "json" else "text/csv"
    return Response(text.getvalue(), media_type=media)
