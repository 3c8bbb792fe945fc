"""`offline-ledger serve`, the Stripe webhook receiver, over real HTTP: the installed command in a
subprocess on loopback, on a real SQLite file and on real PostgreSQL, fed events built and signed
as Stripe sends them (`t=...,v1=HMAC-SHA256(secret, "t.body")`)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import stripe
from sqlalchemy.engine import make_url

from ledger import Ledger
from ledger.identity import stripe_event_id, stripe_object_id
from tests.support import records as r
from tests.support.cli import run
from tests.support.serve import SECRET, Server, event, free_port, last_id, payment_intent, running


@pytest.fixture
def serve(database: str, tmp_path: Path) -> Iterator[Server]:
    with running(database, tmp_path) as server:
        yield server


@pytest.fixture
def ledger(database: str) -> Iterator[Ledger]:
    """The same database, opened in the test process (to prepare and to check)."""
    with Ledger.open(database) as opened:
        for record in (r.location(), r.device()):
            opened.record(record)
        yield opened


def stored(ledger: Ledger) -> str:
    """A stored, manual-capture payment of 12.50 USD; its offline_id."""
    offline_id = str(uuid.uuid4())
    for record in r.stored_payment(offline_id, capture_method="manual"):
        ledger.record(record)
    return offline_id


def report_rows(database: str) -> list[dict[str, Any]]:
    done = run("report", "--db", database, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)["rows"]
    return rows


def row_of(database: str, offline_id: str) -> dict[str, Any]:
    (row,) = [x for x in report_rows(database) if x["offline_id"] == offline_id]
    return row


def fresh_unique_pi() -> str:
    return "pi_" + uuid.uuid4().hex[:24]


# -- the tests ---------------------------------------------------------------------------------


def test_an_authorization_then_its_capture_and_a_redelivery(
    serve: Server, ledger: Ledger, database: str
) -> None:
    offline_id = stored(ledger)
    authorized = event(
        "payment_intent.amount_capturable_updated",
        payment_intent(offline_id, "requires_capture"),
        created=int(time.time()) - 120,
    )
    assert serve.send(authorized) == (
        200,
        {"received": True, "duplicate": False, "facts": ["payment.forwarded"]},
    )
    payment = ledger.payment(offline_id)
    assert (payment.status, payment.payment_intent_id, payment.stripe_status) == (
        "forwarded",
        "pi_1",
        "requires_capture",
    )
    row = row_of(database, offline_id)
    assert (row["category"], row["stripe_status"]) == ("awaiting_capture", "requires_capture")

    # Stripe delivers the same event again (a new signature, same id): nothing changes.
    before = last_id(ledger)
    assert serve.send(authorized) == (200, {"received": True, "duplicate": True})
    assert last_id(ledger) == before

    captured = event("payment_intent.succeeded", payment_intent(offline_id, "succeeded"))
    assert serve.send(captured) == (
        200,
        {"received": True, "duplicate": False, "facts": ["payment.captured"]},
    )
    payment = ledger.payment(offline_id)
    assert (payment.status, payment.amount_captured) == ("captured", 1250)
    row = row_of(database, offline_id)
    assert (row["category"], row["stripe_status"], row["payment_intent_ids"]) == (
        "matched",
        "succeeded",
        ["pi_1"],
    )
    assert serve.get("/health") == (200, {"status": "ok"})


def test_deliveries_that_fail_verification_or_parsing_record_nothing(
    serve: Server, ledger: Ledger
) -> None:
    offline_id = stored(ledger)
    good = event("payment_intent.succeeded", payment_intent(offline_id, "succeeded"))
    payload = json.dumps(good)
    signed = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
    before = last_id(ledger)

    def refused(status: int, answer: Any, code: str) -> bool:
        return status == 400 and answer["error"]["code"] == code and answer["error"]["message"]

    assert refused(*serve.send(good, secret="whsec_wrong"), "INVALID_SIGNATURE")
    assert refused(*serve.post(payload.encode(), None), "INVALID_SIGNATURE")
    assert refused(*serve.post(payload.encode(), "garbage"), "INVALID_SIGNATURE")
    tampered = payload.replace('"amount": 1250', '"amount": 1')
    assert refused(*serve.post(tampered.encode(), signed), "INVALID_SIGNATURE")
    stale = serve.send(good, timestamp=int(time.time()) - 3600)
    assert refused(*stale, "INVALID_SIGNATURE")
    assert "tolerance" in stale[1]["error"]["message"]
    assert refused(*serve.post(b"\xff\xfe", signed), "INVALID_SIGNATURE")
    # Signed, but not what Stripe sends.
    broken = "{not json"
    header = stripe.WebhookSignature.generate_signature_header(broken, SECRET)
    assert refused(*serve.post(broken.encode(), header), "MALFORMED_JSON")
    bad_amount = event(
        "payment_intent.succeeded", payment_intent(offline_id, "succeeded", amount="12.50")
    )
    status, answer = serve.send(bad_amount)
    assert refused(status, answer, "INVALID_AMOUNT") and answer["error"]["field"] == "amount"
    assert refused(*serve.send({**good, "created": "yesterday"}), "INVALID_TIMESTAMP")

    assert last_id(ledger) == before
    assert ledger.payment(offline_id).status == "stored"
    # The refused deliveries left no receipt: the event, properly signed, is applied.
    assert serve.send(good)[1] == {
        "received": True,
        "duplicate": False,
        "facts": ["payment.forwarded"],
    }
    assert ledger.payment(offline_id).status == "captured"


def test_events_out_of_order_end_in_the_newest_state(
    serve: Server, ledger: Ledger, database: str
) -> None:
    offline_id = stored(ledger)
    now = int(time.time())
    succeeded = event(
        "payment_intent.succeeded", payment_intent(offline_id, "succeeded"), created=now - 60
    )
    authorized = event(
        "payment_intent.amount_capturable_updated",
        payment_intent(offline_id, "requires_capture"),
        created=now - 600,
    )
    assert serve.send(succeeded)[0] == 200
    assert serve.send(authorized) == (200, {"received": True, "duplicate": False, "facts": []})
    payment = ledger.payment(offline_id)
    assert (payment.status, payment.amount_captured) == ("captured", 1250)
    row = row_of(database, offline_id)
    assert (row["category"], row["stripe_status"]) == ("matched", "succeeded")


def test_declines_voids_orphans_and_refunds(serve: Server, ledger: Ledger, database: str) -> None:
    declined, voided, refunded = stored(ledger), stored(ledger), stored(ledger)
    pi_declined, pi_voided, pi_refunded, pi_orphan = (fresh_unique_pi() for _ in range(4))
    failure = {
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "type": "card_error",
    }
    failed = event(
        "payment_intent.payment_failed",
        payment_intent(
            declined, "requires_payment_method", pi_declined, last_payment_error=failure
        ),
    )
    assert serve.send(failed)[1]["facts"] == ["payment.declined"]
    payment = ledger.payment(declined)
    assert (payment.status, payment.decline_code) == ("declined", "insufficient_funds")

    now = int(time.time())
    assert (
        serve.send(
            event(
                "payment_intent.amount_capturable_updated",
                payment_intent(voided, "requires_capture", pi_voided),
                created=now - 60,
            )
        )[0]
        == 200
    )
    canceled = payment_intent(
        voided, "canceled", pi_voided, cancellation_reason="requested_by_customer"
    )
    assert serve.send(event("payment_intent.canceled", canceled))[1]["facts"] == [
        "payment.canceled"
    ]
    assert ledger.payment(voided).status == "canceled"

    unknown = str(uuid.uuid4())
    orphan = event("payment_intent.succeeded", payment_intent(unknown, "succeeded", pi_orphan))
    assert serve.send(orphan) == (200, {"received": True, "duplicate": False, "facts": []})

    assert serve.send(
        event("payment_intent.succeeded", payment_intent(refunded, "succeeded", pi_refunded))
    )[1]["facts"] == ["payment.forwarded"]
    charge = {
        "id": "ch_" + pi_refunded.removeprefix("pi_"),
        "object": "charge",
        "amount": 1250,
        "amount_captured": 1250,
        "currency": "usd",
        "payment_intent": pi_refunded,
        "metadata": {"offline_id": refunded},
        "refunded": False,
    }
    first = event(
        "charge.refunded",
        {**charge, "amount_refunded": 500},
        previous_attributes={"amount_refunded": 0, "refunded": False},
    )
    second = event(
        "charge.refunded",
        {**charge, "amount_refunded": 1250, "refunded": True},
        previous_attributes={"amount_refunded": 500, "refunded": False},
    )
    for refund in (first, second):
        assert serve.send(refund) == (200, {"received": True, "duplicate": False, "facts": []})
    assert serve.send(first) == (200, {"received": True, "duplicate": True})
    # The charge's cumulative amount_refunded is kept as a snapshot, never added up.
    observed = [
        getattr(e, "observation", {})
        for e in ledger.store.events.get(stripe_object_id(pi_refunded))
    ]
    seen = [o for o in observed if o.get("kind") == "charge"]
    assert [(o["amount_refunded"], o["source"]) for o in seen] == [
        (500, "webhook"),
        (1250, "webhook"),
    ]
    assert ledger.payment(refunded).status == "captured"

    rows = {row["offline_id"]: row for row in report_rows(database)}
    assert rows[declined]["category"] == "declined"
    assert rows[voided]["category"] == "canceled"
    assert (rows[unknown]["category"], rows[unknown]["payment_intent_ids"]) == (
        "orphan_in_stripe",
        [pi_orphan],
    )
    assert (rows[refunded]["category"], rows[refunded]["refunded_amount"]) == ("refunded", 1250)


def test_the_server_listens_on_loopback_only_by_default(serve: Server) -> None:
    assert serve.get("/health") == (200, {"status": "ok"})
    # Another loopback address reaches the same machine; bound to 127.0.0.1, it is refused.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        serve.get("/health", host="127.0.0.2")


def test_serve_without_the_secret_exits_2_naming_the_variable(sqlite_url: str) -> None:
    done = run(
        "serve", "--db", sqlite_url, "--port", str(free_port()), env={"STRIPE_WEBHOOK_SECRET": ""}
    )
    assert done.returncode == 2
    assert "STRIPE_WEBHOOK_SECRET" in done.stderr
    assert "--secret" not in run("serve", "--help").stdout


class TcpProxy:
    """A loopback TCP forwarder to the PostgreSQL server, cut and restored to play an outage."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self.sockets: list[socket.socket] = []

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.sockets = [self.listener]
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        for sock in self.sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                return
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def test_a_database_outage_answers_503_so_that_stripe_retries(
    postgres_url: str, tmp_path: Path
) -> None:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    wait = {"OFFLINE_LEDGER_WEBHOOK_DATABASE_WAIT_SECONDS": "2"}
    with Ledger.open(postgres_url) as ledger, running(proxied, tmp_path, **wait) as server:
        for record in (r.location(), r.device()):
            ledger.record(record)
        offline_id = stored(ledger)
        succeeded = event("payment_intent.succeeded", payment_intent(offline_id, "succeeded"))
        proxy.cut()
        try:
            status, answer = server.send(succeeded)
            assert (status, answer["error"]["code"]) == (503, "DATABASE_UNAVAILABLE")
            assert server.get("/ready") == (503, {"status": "unavailable"})
            assert ledger.payment(offline_id).status == "stored"
        finally:
            proxy.start()
        # Stripe delivers it again once the database is back: it is applied (or found
        # applied by the delivery that timed out, which went on alone).
        deadline = time.monotonic() + 120
        while (answer := server.send(succeeded))[0] != 200:
            assert answer[0] == 503 and time.monotonic() < deadline, answer
            time.sleep(0.5)
        assert answer[1]["received"] is True
        assert server.get("/health") == (200, {"status": "ok"})
        assert ledger.payment(offline_id).status == "captured"
    proxy.cut()


def test_a_live_mode_event_is_ignored_by_a_test_mode_ledger(serve: Server, ledger: Ledger) -> None:
    offline_id = stored(ledger)
    test_mode = event(
        "payment_intent.amount_capturable_updated", payment_intent(offline_id, "requires_capture")
    )
    assert serve.send(test_mode)[0] == 200
    before = last_id(ledger)
    live = event("payment_intent.succeeded", payment_intent(offline_id, "succeeded")) | {
        "livemode": True
    }
    # 2xx, or Stripe would retry it for three days: the event is not for this ledger. Only
    # its receipt is recorded, with why.
    ignored = {
        "received": True,
        "ignored": True,
        "reason": "a live-mode event; this ledger holds test-mode objects",
    }
    assert serve.send(live) == (200, ignored)
    assert serve.send(live) == (200, ignored)  # again: the same answer, nothing more
    recorded = ledger.store.recorder.select_notifications(before + 1, 100)
    assert [n.topic for n in recorded] == ["offline_ledger:StripeEvent.Ignored"]
    (receipt,) = ledger.store.events.get(stripe_event_id(live["id"]))
    assert getattr(receipt, "reason", None) == ignored["reason"]
    assert ledger.payment(offline_id).status == "forwarded"


def test_events_not_applied_are_answered_2xx_and_recorded_with_why(
    serve: Server, ledger: Ledger
) -> None:
    """Stripe retries every non-2xx answer for three days: a type the ledger does not use and
    a v2 thin event are answered 200, and their receipt says why they were not applied."""
    other_type = event("customer.created", {"id": "cus_1", "object": "customer"})
    thin = {
        "id": "evt_test_65R4ghi8RlC2rIdbnXQK2yC5yLnVLTBW",
        "object": "v2.core.event",
        "type": "v1.billing.meter.error_report_triggered",
        "created": "2026-11-22T10:00:00.000Z",
        "livemode": False,
        "related_object": {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters"},
    }
    reasons = {
        other_type["id"]: "not an event type this ledger applies",
        thin["id"]: "a v2 thin event: it carries no object to record",
    }
    for delivered in (other_type, thin, other_type):
        reason = reasons[delivered["id"]]
        assert serve.send(delivered) == (
            200,
            {"received": True, "ignored": True, "reason": reason},
        )
    for event_id, reason in reasons.items():
        (receipt,) = ledger.store.events.get(stripe_event_id(event_id))
        assert getattr(receipt, "reason", None) == reason
