"""Errors of the HTTP API as RFC 9457 problem details, and the one table from a code to its
status.

Every refusal answers `application/problem+json`: `type` (`about:blank`: the status says the
kind), `title` (the status' phrase), `status`, `detail` (the ledger's message: what is wrong
and how to fix it), and our own members `code` (the stable code clients branch on), `field`
(where, when known), `details` (what a check saw) and `request_id`. The statuses:

- 400 a body that is not JSON; 401 no key or a bad one (no detail); 403 a role that may not
  call the endpoint; 404 an id that does not exist or that the key may not see;
  408 a body that did not arrive in time; 409 a conflict with what is recorded (idempotency,
  order, another PaymentIntent); 413 a body too large; 422 a well-formed request the ledger
  refuses (a batch of too many records too); 429 past the key's rate; 503 the database is
  unavailable or busy (nothing was stored: retry).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from adapters.http.http_limits import REQUEST_TIMEOUT, SERVER_BUSY
from ledger import LedgerError
from ledger.errors import Code, Conflict, NotFound, StorageError

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
RATE_LIMITED = "RATE_LIMITED"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
NOT_FOUND = "NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
CLIENT_DISCONNECTED = "CLIENT_DISCONNECTED"

# Codes of the HTTP layer itself, and ledger codes whose status is not their category's.
_STATUS_BY_CODE: dict[str, int] = {
    Code.MALFORMED_JSON: 400,
    CLIENT_DISCONNECTED: 400,
    UNAUTHENTICATED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    REQUEST_TIMEOUT: 408,
    Code.RECORD_TOO_LARGE: 413,
    PAYLOAD_TOO_LARGE: 413,
    BATCH_TOO_LARGE: 422,  # a well-formed batch of too many records
    RATE_LIMITED: 429,
    Code.CONTENTION: 503,
    SERVER_BUSY: 503,
}
# Every status an endpoint of the API may answer with a problem (the OpenAPI document's).
STATUSES = (400, 401, 403, 404, 408, 409, 413, 422, 429, 503)


class Problem(BaseModel):
    """RFC 9457 problem details with the ledger's stable code."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    details: dict[str, Any] | None = None
    request_id: str | None = None


def status_of(error: LedgerError) -> int:
    """The one table: a code's own status, else its category's."""
    if error.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[error.code]
    if isinstance(error, StorageError):
        return 503
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):
        return 409
    return 422  # InvalidRecord, RuleViolation


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        code=code,
        field=field,
        details=details or None,
        request_id=request_id,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def ledger_problem(error: LedgerError, request_id: str | None = None) -> JSONResponse:
    status = status_of(error)
    retry = {"retry-after": "1"} if status == 503 else None
    return problem(
        status,
        str(error.code),
        error.message,
        field=error.field,
        details=error.details,
        request_id=request_id,
        headers=retry,
    )


def http_code(status: int) -> str:
    """The code of a status the HTTP layer answers on its own (an unknown route...)."""
    return {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(status, HTTPStatus(status).name)


class ApiError(Exception):
    """A refusal of the HTTP layer (authentication, rate, size) with its code."""

    def __init__(self, code: str, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = _STATUS_BY_CODE[code]
        self.headers = headers
