"""The example POS backend (examples/pos_backend), run with uvicorn in a subprocess on a real
SQLite file and driven over real HTTP: a whole offline sale, a retry, and the errors a POS
engineer meets (step out of order, card number, unknown payment)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
LOCATION, DEVICE = "tml_shop", "tmr_till_1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def when(minutes: int = 0) -> str:
    """Times as the device would send them: RFC 3339 with an offset, fixed per step."""
    return (START + timedelta(minutes=minutes)).isoformat()


START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


class Client:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.call("POST", path, body)

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("GET", path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Client]:
    url = f"sqlite:///{tmp_path / 'pos.db'}"
    # The back office configures the location (as Stripe's Terminal Configuration does),
    # with the library, before the backend starts.
    with Ledger.open(url) as ledger:
        ledger.record(
            {
                "type": "location.configured",
                "occurred_at": when(-60),
                "location_id": LOCATION,
                "offline_enabled": True,
                "limits": {
                    "per_payment_max": {"usd": 50_000},
                    "stored_amount_max": {"usd": 100_000},
                    "stored_count_max": 20,
                },
            }
        )
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.pos_backend.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, "OFFLINE_LEDGER_DATABASE_URL": url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = Client(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                if client.get("/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {(tmp_path / 'server.log').read_text()}")
            time.sleep(0.1)
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


CARD = {
    "brand": "visa",
    "network": "visa",
    "last4": "4242",
    "exp_month": 12,
    "exp_year": 2030,
    "funding": "credit",
    "read_method": "contact_emv",
    "cardholder_verification": "offline_pin",
    "country": "US",
}


def test_a_whole_offline_sale_over_http(server: Client) -> None:
    status, answer = server.post(
        f"/devices/{DEVICE}/connected-online",
        {
            "occurred_at": when(-30),
            "location_id": LOCATION,
            "reader_type": "bbpos_wisepad3",
            "software_updated_at": when(-30),
        },
    )
    assert (status, answer) == (200, {"recorded": True})

    status, decision = server.post(
        "/sales/decide",
        {"amount": 1250, "currency": "usd", "device_id": DEVICE, "location_id": LOCATION},
    )
    assert status == 200
    assert decision["offline_allowed"] is True
    assert decision["offline_behavior"] == "prefer_online"
    location_amount = next(
        row
        for row in decision["headroom"]
        if row["scope"] == "location" and row["limit"] == "stored_amount_max"
    )
    assert location_amount["remaining"] == 100_000

    offline_id = str(uuid.uuid4())
    sale = f"/sales/{offline_id}"
    created = {
        "occurred_at": when(0),
        "device_id": DEVICE,
        "location_id": LOCATION,
        "amount": 1250,
        "currency": "usd",
        "capture_method": "manual",
        "offline_behavior": decision["offline_behavior"],
        "metadata": {"order": "A-17"},
        "idempotency_key": f"{offline_id}:created",
    }
    status, answer = server.post(f"{sale}/created", created)
    assert status == 200
    assert answer["recorded"] is True
    assert answer["payment"]["status"] == "created"

    # The same request again (a retry after a lost answer): the same payment, nothing new.
    status, again = server.post(f"{sale}/created", created)
    assert status == 200
    assert again == {**answer, "recorded": False}

    # A step for a sale never created is refused: there is no amount to record.
    status, refused = server.post(
        f"/sales/{uuid.uuid4()}/confirmed-offline", {"occurred_at": when(1), "stored_at": when(1)}
    )
    assert status == 404
    assert refused["error"]["code"] == "UNKNOWN_PAYMENT"

    # A card number is refused, never echoed, never stored.
    status, refused = server.post(
        f"{sale}/collected",
        {"occurred_at": when(1), "card": {**CARD, "number": "4242 4242 4242 4242"}},
    )
    assert status == 422
    assert refused["error"]["code"] == "CARD_NUMBER_DETECTED"
    assert refused["error"]["field"] == "card.number"
    assert "4242 4242" not in json.dumps(refused)

    status, answer = server.post(f"{sale}/collected", {"occurred_at": when(1), "card": CARD})
    assert (status, answer["payment"]["status"]) == (200, "collected")

    status, answer = server.post(
        f"{sale}/confirmed-offline", {"occurred_at": when(2), "stored_at": when(2)}
    )
    assert (status, answer["payment"]["status"]) == (200, "stored")

    status, totals = server.get("/status")
    assert status == 200
    (location,) = totals["locations"]
    assert location["offline_payments_count"] == 1
    assert location["offline_payment_amounts_by_currency"] == {"usd": 1250}
    (device,) = location["devices"]
    assert (device["device_id"], device["offline_payments_count"]) == (DEVICE, 1)

    status, answer = server.post(
        f"{sale}/forwarded",
        {
            "occurred_at": when(30),
            "payment_intent_id": "pi_3Q0000Example",
            "status": "requires_capture",
        },
    )
    assert (status, answer["payment"]["status"]) == (200, "forwarded")
    status, totals = server.get("/status")
    assert totals["locations"][0]["offline_payments_count"] == 0

    status, answer = server.post(
        f"{sale}/captured",
        {"occurred_at": when(31), "payment_intent_id": "pi_3Q0000Example", "amount_captured": 1250},
    )
    assert status == 200
    assert answer["payment"]["status"] == "captured"
    assert answer["payment"]["amount_captured"] == 1250

    status, state = server.get(sale)
    assert status == 200
    assert state == answer["payment"]
    assert state["metadata"] == {"order": "A-17"}
    assert state["card"]["last4"] == "4242"


def test_errors_map_to_http_statuses(server: Client) -> None:
    unknown = str(uuid.uuid4())
    status, answer = server.get(f"/sales/{unknown}")
    assert status == 404
    assert answer["error"]["code"] == "UNKNOWN_PAYMENT"
    assert answer["error"]["field"] == "offline_id"

    status, answer = server.post(
        f"/sales/{unknown}/collected", {"occurred_at": when(1), "card": CARD}
    )
    assert (status, answer["error"]["code"]) == (404, "UNKNOWN_PAYMENT")

    status, answer = server.post(
        "/sales/decide",
        {"amount": 1250, "currency": "usd", "device_id": DEVICE, "location_id": "tml_nowhere"},
    )
    assert (status, answer["error"]["code"]) == (404, "UNKNOWN_LOCATION")

    status, answer = server.get("/sales/not-a-uuid")
    assert (status, answer["error"]["code"]) == (422, "INVALID_UUID")

    status, answer = server.post(
        f"/sales/{unknown}/canceled", {"occurred_at": when(1), "offline_id": str(uuid.uuid4())}
    )
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (
        422,
        "INVALID_VALUE",
        "offline_id",
    )

    status, answer = server.post(
        "/sales/decide",
        {"amount": 12.5, "currency": "usd", "device_id": DEVICE, "location_id": LOCATION},
    )
    assert (status, answer["error"]["code"]) == (422, "INVALID_AMOUNT")

    status, answer = server.post(
        "/sales/decide",
        {
            "amount": 1250,
            "currency": "usd",
            "device_id": "4111 1111 1111 1111",
            "location_id": LOCATION,
        },
    )
    assert (status, answer["error"]["code"]) == (422, "CARD_NUMBER_DETECTED")
    assert "4111" not in json.dumps(answer)


def test_python_dash_m_runs_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.pos_backend", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--port" in done.stdout
