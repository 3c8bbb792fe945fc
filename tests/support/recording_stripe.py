"""A scripted Stripe peer over real HTTP on 127.0.0.1 that records every request.

For what localstripe cannot show: the headers and parameters the gateway sends (Stripe-Version,
`created[gte]`, `expand[]`, `customer`, `off_session`), and answers only real Stripe gives
(`requires_action`, `idempotency_error`, Search missing). Answers are Stripe-shaped: objects
from Stripe's OpenAPI fixtures (tests/support/data/stripe_fixtures3.json), errors as
`{"error": {"type", "code", "message"}}` (component `error` of the spec).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]  # query and form parameters
    headers: dict[str, str]

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


# A request -> (status, JSON body)
Handler = Callable[[Request], tuple[int, Any]]


@dataclass
class RecordingStripe:
    url: str
    requests: list[Request] = field(default_factory=list)

    def made(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]


def error(status: int, kind: str, message: str, code: str | None = None) -> tuple[int, Any]:
    return status, {"error": {"type": kind, "code": code, "message": message}}


@contextmanager
def recording_stripe(handler: Handler) -> Iterator[RecordingStripe]:
    """Serve `handler` on a free loopback port until the block ends."""
    peer = RecordingStripe(url="")
    lock = threading.Lock()

    class _Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            params = dict(parse_qsl(split.query)) | dict(parse_qsl(body))
            request = Request(self.command, split.path, params, dict(self.headers.items()))
            with lock:
                peer.requests.append(request)
            status, answer = handler(request)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads `requests`."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
