"""`offline-ledger serve` in a subprocess on loopback, and Stripe's objects and events to
send it, built and signed as Stripe sends them (`t=...,v1=HMAC-SHA256(secret, "t.body")`).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe

from ledger import Ledger
from tests.support.cli import CLI, clean_environment

SECRET = "whsec_test_" + uuid.uuid4().hex
START_TIMEOUT = 120.0  # a guard: starting workers on a loaded machine takes a while


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    port: int
    log: Path

    def post(self, payload: bytes, signature: str | None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/stripe/webhook",
            data=payload,
            headers=headers,
            method="POST",
        )
        return _answer(request)

    def send(
        self, event: dict[str, Any], secret: str = SECRET, timestamp: int | None = None
    ) -> tuple[int, Any]:
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
        return self.post(payload.encode(), header)

    def get(self, path: str, host: str = "127.0.0.1") -> tuple[int, Any]:
        return _answer(urllib.request.Request(f"http://{host}:{self.port}{path}"))


def _answer(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def running(database: str, tmp_path: Path, *args: str, **env: str) -> Iterator[Server]:
    """`offline-ledger serve` on `database`, default host, a free port (more of its `args`
    given); always stopped."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    environment = clean_environment()
    environment.update(STRIPE_WEBHOOK_SECRET=SECRET, **env)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(CLI), "serve", "--db", database, "--port", str(port), *args],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Server(port, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"serve exited:\n{log.read_text()}"
            try:
                if server.get("/health") == (200, {"status": "ok"}):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, f"serve did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    text = log.read_text()
    assert "Traceback" not in text, text
    # One JSON object per line, uvicorn's too. Lines end at "\n" only: a logged path may hold
    # U+2028 or U+0085, which JSON leaves unescaped and `str.splitlines` would cut at.
    for line in filter(None, text.split("\n")):
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
    assert SECRET not in text and "v1=" not in text, "the secret or a signature was logged"


def payment_intent(offline_id: str, status: str, pi: str = "pi_1", **fields: Any) -> dict[str, Any]:
    """A PaymentIntent as a webhook's data.object carries it (12.50 USD, manual capture)."""
    capturable = 1250 if status == "requires_capture" else 0
    return {
        "id": pi,
        "object": "payment_intent",
        "amount": 1250,
        "amount_capturable": capturable,
        "amount_received": 1250 if status == "succeeded" else 0,
        "currency": "usd",
        "capture_method": "manual",
        "created": int(time.time()) - 3600,
        "livemode": False,
        "latest_charge": "ch_" + pi.removeprefix("pi_"),
        "last_payment_error": None,
        "metadata": {"offline_id": offline_id},
        "status": status,
        **fields,
    }


def event(
    event_type: str, data_object: dict[str, Any], created: int | None = None, **data: Any
) -> dict[str, Any]:
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": data_object, **data},
    }


def last_id(ledger: Ledger) -> int:
    """The event store's newest notification id: unchanged means nothing was recorded."""
    return int(ledger.store.recorder.max_notification_id() or 0)
