"""How much of `offline-ledger serve` one HTTP client can hold: time to send the request
headers, time to send the body, and the number of connections open at once.

uvicorn, the server `serve` runs, waits for request headers with no deadline and accepts every
connection: a client that opens connections and sends a header line now and then (slowloris)
holds each one, and its socket, for ever. Stripe sends a webhook of a few kB in well under a
second, so these bounds cost it nothing:

- headers complete within `header_seconds` (10) of the connection opening, or of the first
  byte of the next request on a kept-alive connection, else 408 REQUEST_TIMEOUT and the
  connection is closed (enforced by `adapters.http.bounded_http`, the connection's protocol: the
  application only sees a request once its headers are complete);
- the body complete within `body_seconds` (30) of the headers, else 408 REQUEST_TIMEOUT
  (enforced by the webhook application, which reads the body);
- at most `connections` (100) open at once: the next one is answered 503
  SERVER_BUSY with `Retry-After: retry_after_seconds` (5) as soon as it opens, and closed
  (`adapters.http.bounded_http`).

A refusal is one log line (the client's address and the rule), never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
SERVER_BUSY = "SERVER_BUSY"

HEADER_SECONDS = 10.0
BODY_SECONDS = 30.0
CONNECTIONS = 100
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class HttpLimits:
    header_seconds: float = HEADER_SECONDS
    body_seconds: float = BODY_SECONDS
    connections: int = CONNECTIONS
    retry_after_seconds: int = RETRY_AFTER_SECONDS


DEFAULT = HttpLimits()
