"""What `offline-ledger serve` runs: the API (`adapters.http.api`), Stripe's webhook endpoint
(`adapters.http.webhooks`, with its raw-body signature check), `GET /health` (the process
answers), `GET /ready` (the database answers and its schema is current), `GET /metrics`
(`adapters.http.metrics`), and the OpenAPI document at `/openapi.json` (committed as
docs/openapi.json).

Every answer carries a `Request-Id` (the client's own, when it sends a short safe one), named
in the log line of every refusal; the log never holds a key or a card number.

The app is stateless: each server process opens its own ledger and key store on the same
database, so any number of them (`--workers N`, or several hosts) serve one PostgreSQL with
every guarantee the database gives one of them (limits across devices, exactly-once records,
the hash chain). `from_environment` is the factory each worker process calls.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from adapters.http import metrics, webhooks
from adapters.http.access import FINANCE, RateLimiter, require_role
from adapters.http.api import REQUEST_MODELS, Caller, Services, ServicesOf, router
from adapters.http.api_keys import KeyStore
from adapters.http.bounded_http import BoundedHttpProtocol
from adapters.http.http_limits import HttpLimits
from adapters.http.key_checks import KeyChecks
from adapters.http.links import add_links
from adapters.http.logs import REQUEST_ID
from adapters.http.problems import (
    STATUSES,
    ApiError,
    Problem,
    http_code,
    ledger_problem,
    problem,
)
from adapters.http.schemas import Health
from adapters.settings import Settings
from ledger import Ledger, LedgerError
from ledger.errors import Code
from ledger.pan import redacted
from migrations import HEAD, stored_revision
from projections.read_models import ReadModels

log = logging.getLogger("offline_ledger.api")
access_log = logging.getLogger("offline_ledger.access")
TITLE = "offline-ledger"
VERSION = "1"
DESCRIPTION = (
    "Record Stripe Terminal offline payments, decide and reserve offline headroom, read "
    "payments, status and the reconciliation report. Authenticate with `Authorization: Bearer "
    "<key>` (`offline-ledger keys create`). Refusals are RFC 9457 problem details carrying the "
    "ledger's stable `code` and the `field` at fault. `Idempotency-Key` names a record: a "
    "retry with the same key and body is answered the same, with another body 409 "
    "IDEMPOTENCY_CONFLICT."
)
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def http_limits_of(settings: Settings) -> HttpLimits:
    return HttpLimits(
        header_seconds=settings.http_header_seconds,
        body_seconds=settings.http_body_seconds,
        connections=settings.http_connections,
    )


class ServedProtocol(BoundedHttpProtocol):
    """uvicorn's `http` for `serve`, named by its import path so that each worker process
    builds it, with the limits of the environment."""

    limits = http_limits_of(Settings.from_environ())


def from_environment() -> FastAPI:
    """The app of one server process, on OFFLINE_LEDGER_DATABASE_URL (`serve` checked the
    configuration before starting any)."""
    settings = Settings.from_environ()
    secret = settings.stripe_webhook_secret
    assert secret is not None
    ledger = Ledger.open(settings.database_url, stripe_offline_max=settings.stripe_offline_max)
    return create_app(ledger, secret.get_secret_value(), settings, owns_ledger=True)


def create_app(
    ledger: Ledger, webhook_secret: str, settings: Settings, *, owns_ledger: bool = False
) -> FastAPI:
    """The API and the webhook endpoint on `ledger` (closed with the app when it `owns_ledger`)."""
    limits = http_limits_of(settings)
    keys = KeyStore(ledger.config)
    checks = KeyChecks(keys, settings.webhook_database_wait_seconds)
    read_models = ReadModels(ledger, settings.report_work_mem_mb)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            services.threads.shutdown(cancel_futures=True)  # the calls under way end first
            read_models.close()
            await checks.close()
            keys.close()
            if owns_ledger:
                ledger.close()

    app = api_app(lifespan)
    app.state.services = services = Services(
        ledger=ledger,
        keys=checks,
        read_models=read_models,
        rate=RateLimiter(settings.api_rate_per_second, settings.api_rate_burst),
        body_seconds=limits.body_seconds,
        database_wait_seconds=settings.webhook_database_wait_seconds,
    )
    stripe = webhooks.create_app(
        ledger,
        webhook_secret,
        database_wait_seconds=settings.webhook_database_wait_seconds,
        limits=limits,
    )
    app.router.routes.extend(stripe.routes)
    app.add_middleware(
        RequestLog, plain_routes=frozenset(getattr(r, "path", "") for r in stripe.routes)
    )
    return app


def api_app(lifespan: Lifespan[FastAPI] | None = None) -> FastAPI:
    """The API's routes, errors and document, before any database is attached (what the
    OpenAPI document is made from)."""
    app = FastAPI(
        title=TITLE,
        version=VERSION,
        summary="The ledger of Stripe Terminal offline payments, for POS backends.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.include_router(router)
    app.add_api_route("/health", health, methods=["GET"], tags=["operations"])
    app.add_api_route(
        "/ready",
        ready,
        methods=["GET"],
        tags=["operations"],
        response_model=Health,
        responses={503: {"model": Health, "description": "Not ready: see the log."}},
    )
    app.add_api_route(
        "/metrics",
        prometheus,
        methods=["GET"],
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {metrics.CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    )
    _handle_errors(app)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


async def health() -> Health:
    """Liveness: the process answers (it reads nothing)."""
    return Health(status="ok")


async def prometheus(key: Caller, services: ServicesOf) -> Response:
    """Prometheus' text format (`adapters.http.metrics`); a finance or admin key."""
    require_role(key, FINANCE)
    text = await services.run(metrics.exposition, services.read_models)
    return Response(text, media_type=metrics.CONTENT_TYPE)


async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers and its schema is the one this code needs."""
    services: Services = request.app.state.services
    config = services.ledger.config

    def check() -> bool:
        services.ledger.store.recorder.max_notification_id()
        return stored_revision(config) == HEAD

    try:
        current = await services.run(check)
    except Exception as error:  # whatever keeps the database from answering: not ready
        log.error("ready check: the database does not answer: %s", type(error).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    if not current:
        log.error("ready check: the database schema is not current: run offline-ledger migrate")
        return JSONResponse({"status": "migration required"}, status_code=503)
    return JSONResponse({"status": "ok"})


class RequestLog:
    """Each request's id (the client's `Request-Id` when short and safe, else a new one),
    echoed on the answer and carried by every log line written for it (`adapters.http.logs`),
    and one access line per request: method, path (card numbers masked), status, milliseconds
    and the key's id. It replaces uvicorn's access log, which
    would print the path as it came."""

    def __init__(self, app: ASGIApp, plain_routes: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.plain_routes = plain_routes  # routes without a template (the webhook's)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(b"request-id", b"").decode("latin-1")
        request_id = given if _SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 500  # unless an answer starts

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"request-id", request_id.encode()))
                if state.get("replayed"):
                    headers.append((b"idempotent-replayed", b"true"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or (
                scope["path"] if scope["path"] in self.plain_routes else "unmatched"
            )
            metrics.REQUESTS.labels(route, scope["method"], str(status)).inc()
            metrics.LATENCY.labels(route).observe(elapsed)
            access_log.info(
                "%s %s %d",
                scope["method"],
                redacted(scope["path"]),
                status,
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": redacted(scope["path"]),
                        "status": status,
                        "ms": round(elapsed * 1000, 1),
                        "key_id": state.get("key_id"),
                    }
                },
            )
            REQUEST_ID.reset(token)


def _handle_errors(app: FastAPI) -> None:
    """Every refusal as a problem (`adapters.http.problems`), logged in one line: the
    request's id, method, path (card numbers masked), status, code and the key's id (never
    the token)."""

    def logged(request: Request, response: Response, code: str) -> Response:
        state = request.scope.get("state", {})
        log.warning(
            "request %s: %s %s refused %d %s (key %s)",
            state.get("request_id"),
            request.method,
            redacted(request.url.path),
            response.status_code,
            code,
            state.get("key_id", "none"),
        )
        return response

    def request_id(request: Request) -> str | None:
        found: str | None = request.scope.get("state", {}).get("request_id")
        return found

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, error: LedgerError) -> Response:
        return logged(request, ledger_problem(error, request_id(request)), str(error.code))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        answer = problem(
            error.status,
            error.code,
            error.detail,
            request_id=request_id(request),
            headers=error.headers,
        )
        return logged(request, answer, error.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"][1:]) or None
        answer = problem(
            422,
            str(Code.INVALID_VALUE),
            redacted(f"{field}: {first['msg']}"),
            field=field,
            request_id=request_id(request),
        )
        return logged(request, answer, str(Code.INVALID_VALUE))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        code = http_code(error.status_code)
        answer = problem(
            error.status_code,
            code,
            HTTPStatus(error.status_code).description or HTTPStatus(error.status_code).phrase,
            request_id=request_id(request),
            headers=dict(error.headers or {}),
        )
        return logged(request, answer, code)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the bodies read raw (`REQUEST_MODELS`), every refusal's
    problem in place of FastAPI's own validation error, and the links between operations
    (`adapters.http.links`)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=DESCRIPTION,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    ref = "#/components/schemas/{model}"
    for name, model in REQUEST_MODELS.items():
        adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
        schema = adapter.json_schema(ref_template=ref)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    schemas["Problem"] = Problem.model_json_schema(ref_template=ref)
    refused = {"$ref": "#/components/schemas/Problem"}
    for path, operations in document["paths"].items():
        if path in ("/health", "/ready"):
            continue
        for operation in operations.values():
            responses = operation["responses"]
            responses.pop("422", None)
            for status in STATUSES:
                responses[str(status)] = {
                    "description": HTTPStatus(status).phrase,
                    "content": {"application/problem+json": {"schema": refused}},
                }
    add_links(document)
    app.openapi_schema = document
    return document
