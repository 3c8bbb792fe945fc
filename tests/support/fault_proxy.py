"""A fault-injecting HTTP proxy on loopback, in front of a Stripe-compatible peer.

    python -m tests.support.fault_proxy --upstream http://127.0.0.1:PORT [--idempotency] [--port 0]
                                [--exit-on-stdin-eof]

prints ``READY http://127.0.0.1:PORT`` like tests/support/stripe_peer.py. Control routes:

- ``POST /_fault/rules`` with a JSON list replaces the rules. A rule is
  ``{"action": ..., "method": "POST", "path": "^/v1/payment_intents$", "times": 1}``; ``method``
  (default: any), ``path`` (a regex searched in the path, default: any) and ``times`` (default:
  unlimited) are optional, as are ``probability`` (0..1, default 1) and ``seed`` (default 0) for
  seeded random faults. The first rule that matches, still has ``times`` left and wins its draw
  applies. Actions:

  - ``status``: answer ``status`` (+ optional ``headers``, ``body``) without calling upstream;
  - ``status_after``: forward (the write happens), then answer ``status`` instead;
  - ``drop_before``: close the connection without forwarding;
  - ``drop_after``: forward, then close the connection without answering;
  - ``late``: wait until the client gives up (its timeout closes the connection), then
    forward: the request reaches the peer after nobody waits for its answer, however fast or
    slow the machine is.

  Without ``body``, error bodies are Stripe-shaped: ``rate_limit_error`` for 429, ``api_error``
  for 5xx, ``invalid_request_error`` for other statuses.
- ``GET /_fault/log``: one entry per proxied request: method, path, idempotency_key, action,
  status (None when the connection was dropped), upstream_status, replayed.
- ``DELETE /_fault/log``: clears the rules, the log and the idempotency cache.
- ``POST /_fault/idempotency`` ``{"enabled": true}``: switches the idempotency emulation.

The idempotency emulation follows Stripe's documented behaviour (localstripe ignores
Idempotency-Key): the first answer below 500 to a POST with an Idempotency-Key is saved; a repeat
with the same method, path and body gets it again with ``Idempotent-Replayed: true``, a repeat
with anything else gets 400 ``idempotency_error``. Concurrent repeats wait for the first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from yarl import URL

from tests.support.stripe_peer import serve

ACTIONS = ("status", "status_after", "drop_before", "drop_after", "late")
LATE_WAIT_MAX_SECONDS = 300  # a client that never gives up: forward anyway rather than hang
# Hop-by-hop or recomputed headers, never copied between the two connections.
SKIPPED_HEADERS = frozenset(
    "host connection keep-alive content-length transfer-encoding content-encoding "
    "accept-encoding".split()
)


def stripe_error(status: int, message: str, error_type: str | None = None) -> web.Response:
    if error_type is None:
        if status == 429:
            error_type = "rate_limit_error"
        elif status >= 500:
            error_type = "api_error"
        else:
            error_type = "invalid_request_error"
    return web.json_response({"error": {"type": error_type, "message": message}}, status=status)


@dataclass
class Rule:
    action: str
    method: str | None = None
    path: str = ""
    times: int | None = None
    probability: float = 1.0
    seed: int = 0
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}, expected one of {ACTIONS}")
        re.compile(self.path)
        self.rng = random.Random(self.seed)

    def claims(self, method: str, path: str) -> bool:
        """Whether the rule applies to this request; counts it against ``times`` if so."""
        if self.method is not None and self.method.upper() != method:
            return False
        if not re.search(self.path, path) or self.times == 0:
            return False
        if self.probability < 1.0 and self.rng.random() >= self.probability:
            return False
        if self.times is not None:
            self.times -= 1
        return True

    def response(self) -> web.Response:
        if self.body is None:
            response = stripe_error(self.status, f"Injected {self.status} by fault_proxy")
        elif isinstance(self.body, str):
            response = web.Response(status=self.status, text=self.body)
        else:
            response = web.json_response(self.body, status=self.status)
        response.headers.update(self.headers)
        return response


@dataclass(frozen=True)
class Answer:
    """An upstream answer, kept whole so that it can be replayed."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def response(self, replayed: bool) -> web.Response:
        response = web.Response(status=self.status, body=self.body)
        for name, value in self.headers:
            response.headers.add(name, value)
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response


class Proxy:
    def __init__(self, upstream: str, idempotency: bool) -> None:
        self.upstream = upstream.rstrip("/")
        self.idempotency = idempotency
        self.rules: list[Rule] = []
        self.log: list[dict[str, Any]] = []
        self.saved: dict[str, tuple[tuple[str, str, bytes], Answer]] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.session: ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024**2)
        app.router.add_post("/_fault/rules", self.set_rules)
        app.router.add_get("/_fault/log", self.get_log)
        app.router.add_delete("/_fault/log", self.clear)
        app.router.add_post("/_fault/idempotency", self.set_idempotency)
        app.router.add_route("*", "/{tail:.*}", self.proxy)
        app.on_startup.append(self.open_session)
        app.on_cleanup.append(self.close_session)
        return app

    async def open_session(self, _app: web.Application) -> None:
        self.session = ClientSession(timeout=ClientTimeout(total=120))

    async def close_session(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def set_rules(self, request: web.Request) -> web.Response:
        try:
            rules = [Rule(**item) for item in await request.json()]
        except (TypeError, ValueError, re.error) as error:
            return web.json_response({"error": str(error)}, status=400)
        self.rules = rules
        return web.json_response({"rules": len(rules)})

    async def get_log(self, _request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def clear(self, _request: web.Request) -> web.Response:
        self.rules, self.log = [], []
        self.saved.clear()
        self.locks.clear()
        return web.json_response({"cleared": True})

    async def set_idempotency(self, request: web.Request) -> web.Response:
        self.idempotency = bool((await request.json())["enabled"])
        return web.json_response({"enabled": self.idempotency})

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rule = next((r for r in self.rules if r.claims(request.method, request.path)), None)
        action = rule.action if rule else "forward"
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "idempotency_key": request.headers.get("Idempotency-Key"),
            "action": action,
            "status": None,
            "upstream_status": None,
            "replayed": False,
        }
        self.log.append(entry)
        if action == "late":
            await self.client_gone(request)
        if rule is not None and action == "status":
            entry["status"] = rule.status
            return rule.response()
        if action == "drop_before":
            return self.drop(request)
        answer, replayed = await self.forward(request, body)
        entry["upstream_status"], entry["replayed"] = answer.status, replayed
        if action == "drop_after":
            return self.drop(request)
        if rule is not None and action == "status_after":
            entry["status"] = rule.status
            return rule.response()
        entry["status"] = answer.status
        return answer.response(replayed)

    @staticmethod
    async def client_gone(request: web.Request) -> None:
        """Return once the client has closed its connection (or after LATE_WAIT_MAX_SECONDS)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LATE_WAIT_MAX_SECONDS
        while request.transport is not None and not request.transport.is_closing():
            if loop.time() > deadline:
                return
            await asyncio.sleep(0.01)

    @staticmethod
    def drop(request: web.Request) -> web.StreamResponse:
        """Close the client's connection: it sees the connection end with no answer."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=599)  # never written: the transport is gone

    async def forward(self, request: web.Request, body: bytes) -> tuple[Answer, bool]:
        """The upstream answer, or the saved one for a repeated Idempotency-Key."""
        key = request.headers.get("Idempotency-Key")
        if not (self.idempotency and key and request.method == "POST"):
            return await self.call_upstream(request, body), False
        fingerprint = (request.method, request.path_qs, body)
        async with self.locks.setdefault(key, asyncio.Lock()):
            if key in self.saved:
                saved_fingerprint, answer = self.saved[key]
                if saved_fingerprint == fingerprint:
                    return answer, True
                return self.idempotency_error(key), False
            answer = await self.call_upstream(request, body)
            if answer.status < 500:
                self.saved[key] = (fingerprint, answer)
            return answer, False

    @staticmethod
    def idempotency_error(key: str) -> Answer:
        message = (
            f"Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            f"different request."
        )
        error = {"error": {"type": "idempotency_error", "message": message}}
        return Answer(400, (("Content-Type", "application/json"),), json.dumps(error).encode())

    async def call_upstream(self, request: web.Request, body: bytes) -> Answer:
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in SKIPPED_HEADERS}
        url = URL(self.upstream + request.path_qs, encoded=True)
        try:
            async with self.session.request(
                request.method, url, headers=headers, data=body
            ) as upstream:
                payload = await upstream.read()
                kept = tuple(
                    (k, v) for k, v in upstream.headers.items() if k.lower() not in SKIPPED_HEADERS
                )
                return Answer(upstream.status, kept, payload)
        except (ClientError, TimeoutError) as error:
            response = stripe_error(502, f"fault_proxy: upstream unreachable: {error!r}")
            assert isinstance(response.body, bytes)
            return Answer(502, (("Content-Type", "application/json"),), response.body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8420")
    parser.add_argument("--idempotency", action="store_true", help="emulate Idempotency-Key")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()
    proxy = Proxy(args.upstream, args.idempotency)
    serve(proxy.app(), args.port, exit_on_stdin_eof=args.exit_on_stdin_eof)


if __name__ == "__main__":
    main()
