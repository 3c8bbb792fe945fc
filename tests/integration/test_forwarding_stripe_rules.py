"""Forwarding as real Stripe answers it (a recording peer over real HTTP plays the answers
localstripe never gives): the saved card's Customer and `off_session` sent, `requires_action`
and `authentication_required` as failed forwards needing the customer, `idempotency_error` as
its own fact, and a 500 replayed for a key left behind for a new recorded key once the lookup
proved no PaymentIntent exists."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from adapters.settings import StripeSettings
from adapters.stripe.forwarding import Forwarder, Outcome, idempotency_key
from adapters.stripe.gateway import StripeGateway
from ledger import Ledger
from projections.read_models import ReadModels
from projections.report import Category
from tests.support import records as r
from tests.support.recording_stripe import Handler, Request, error, recording_stripe

FIXTURES = json.loads(
    (Path(__file__).parents[1] / "support" / "data" / "stripe_fixtures3.json").read_text()
)["resources"]
CUSTOMER = "cus_QXg1o8vcGmoR32"  # the shape of resources.customer.id


def gateway(url: str) -> StripeGateway:
    return StripeGateway(
        StripeSettings(
            api_key=SecretStr("sk_test_" + "f" * 24),
            api_base=url,
            max_network_retries=0,
            timeout_seconds=5,
        )
    )


def forwarder(ledger: Ledger, url: str) -> Forwarder:
    return Forwarder(ledger, gateway(url), settle_seconds=0, sleep=lambda seconds: None)


def stored(ledger: Ledger, **card: Any) -> str:
    offline_id = str(uuid.uuid4())
    created, collected, confirmed = r.stored_payment(offline_id)
    collected["card"] = {**collected["card"], "payment_method_id": "pm_1Pgc7AB7WZ01zgkW", **card}
    for record in (created, collected, confirmed):
        ledger.record(record)
    return offline_id


def payment_intent(params: dict[str, str], status: str, number: int = 1) -> dict[str, Any]:
    """Stripe's fixture PaymentIntent as a create would answer it."""
    item = copy.deepcopy(FIXTURES["payment_intent"])
    item.update(
        id=f"pi_3Qfw{number:016d}",
        amount=int(params["amount"]),
        amount_received=int(params["amount"]) if status == "succeeded" else 0,
        currency=params["currency"],
        capture_method=params["capture_method"],
        status=status,
        metadata={"offline_id": params["metadata[offline_id]"]},
        last_payment_error=None,
        latest_charge=None,
        livemode=False,
    )
    return dict(item)


def creating(answer: Callable[[Request], tuple[int, Any]]) -> Handler:
    """A peer whose creates answer `answer`, whose listing is empty and without Search."""

    def handle(request: Request) -> tuple[int, Any]:
        if (request.method, request.path) == ("POST", "/v1/payment_intents"):
            return answer(request)
        if (request.method, request.path) == ("GET", "/v1/payment_intents"):
            return 200, {"object": "list", "url": request.path, "has_more": False, "data": []}
        return error(404, "invalid_request_error", "Unrecognized request URL")

    return handle


def failures(ledger: Ledger, offline_id: str) -> list[dict[str, Any]]:
    return [e.data for e in ledger.history(offline_id) if e.event == "ForwardFailed"]


def keys(ledger: Ledger, offline_id: str) -> list[str]:
    return [
        e.data["idempotency_key"]
        for e in ledger.history(offline_id)
        if e.event == "ForwardRequested"
    ]


def test_the_saved_cards_customer_and_off_session_are_sent(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        for record in (r.location(), r.device()):
            ledger.record(record)
        offline_id = stored(ledger, customer_id=CUSTOMER)
        answer = creating(lambda request: (200, payment_intent(request.params, "succeeded")))
        with recording_stripe(answer) as peer:
            assert forwarder(ledger, peer.url).forward(offline_id) is Outcome.FORWARDED
        (create,) = peer.made("POST", "/v1/payment_intents")
        assert (create.params["customer"], create.params["off_session"]) == (CUSTOMER, "true")
        assert create.headers["Idempotency-Key"] == idempotency_key(offline_id)
        assert ledger.payment(offline_id).status == "captured"


def test_a_saved_card_without_its_customer_says_what_is_needed(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        for record in (r.location(), r.device()):
            ledger.record(record)
        offline_id = stored(ledger)
        refusal = error(
            400,
            "invalid_request_error",
            "The provided PaymentMethod belongs to a Customer, but you did not supply one.",
        )
        with recording_stripe(creating(lambda request: refusal)) as peer:
            assert forwarder(ledger, peer.url).forward(offline_id) is Outcome.FAILED
        assert "customer" not in peer.made("POST", "/v1/payment_intents")[0].params
        (failed,) = failures(ledger, offline_id)
        assert failed["retryable"] is False
        assert "card.customer_id" in failed["message"]
        assert ledger.payment(offline_id).status == "stored"


def test_requires_action_is_a_failed_forward_needing_the_customer(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as read_models:
        for record in (r.location(), r.device()):
            ledger.record(record)
        waiting = stored(ledger, customer_id=CUSTOMER)
        declined = stored(ledger, customer_id=CUSTOMER)

        def answer(request: Request) -> tuple[int, Any]:
            if request.params["metadata[offline_id]"] == waiting:
                return 200, payment_intent(request.params, "requires_action")
            body = error(402, "card_error", "This payment requires authentication.")[1]
            body["error"]["code"] = "authentication_required"
            return 402, body

        with recording_stripe(creating(answer)) as peer:
            outcomes = [forwarder(ledger, peer.url).forward(i) for i in (waiting, declined)]
        assert outcomes == [Outcome.NEEDS_CUSTOMER, Outcome.NEEDS_CUSTOMER]
        for offline_id in (waiting, declined):
            assert ledger.payment(offline_id).status == "stored"  # not forwarded
            (failed,) = failures(ledger, offline_id)
            assert (failed["error_code"], failed["retryable"]) == (
                "STRIPE_AUTHENTICATION_REQUIRED",
                False,
            )
        assert "requires_action" in failures(ledger, waiting)[0]["message"]
        row = next(row for row in read_models.report(r.T0).rows if row.offline_id == waiting)
        assert row.category is Category.PENDING_FORWARD


def test_an_idempotency_error_is_its_own_fact(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        for record in (r.location(), r.device()):
            ledger.record(record)
        offline_id = stored(ledger, customer_id=CUSTOMER)
        refusal = error(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters.",
        )
        with recording_stripe(creating(lambda request: refusal)) as peer:
            assert forwarder(ledger, peer.url).forward(offline_id) is Outcome.FAILED
        (failed,) = failures(ledger, offline_id)
        assert (failed["error_code"], failed["retryable"]) == ("STRIPE_IDEMPOTENCY_ERROR", False)


def test_a_500_replayed_for_its_key_is_left_for_a_new_recorded_key(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        for record in (r.location(), r.device()):
            ledger.record(record)
        offline_id = stored(ledger, customer_id=CUSTOMER)
        first = idempotency_key(offline_id)
        created: list[str] = []

        def answer(request: Request) -> tuple[int, Any]:
            if request.idempotency_key == first:  # Stripe replays the stored 500 for this key
                return error(500, "api_error", "An unknown error occurred")
            created.append(str(request.idempotency_key))
            return 200, payment_intent(request.params, "succeeded")

        with recording_stripe(creating(answer)) as peer:
            assert forwarder(ledger, peer.url).forward(offline_id) is Outcome.FORWARDED
        # The lookup proved nothing was created under the first key before the second one.
        methods = [(q.method, q.path) for q in peer.requests]
        assert methods.index(("GET", "/v1/payment_intents")) < len(methods) - 1
        assert keys(ledger, offline_id) == [first, f"{first}-2"]
        assert created == [f"{first}-2"]
        assert ledger.payment(offline_id).status == "captured"


def test_a_batch_records_every_intent_before_its_first_request_and_each_outcome(
    sqlite_url: str,
) -> None:
    with Ledger.open(sqlite_url) as ledger:
        for record in (r.location(), r.device()):
            ledger.record(record)
        ids = [stored(ledger, customer_id=CUSTOMER) for _ in range(4)]
        _, waiting, declined, retried = ids
        intents_recorded: list[bool] = []  # at each create: every intent of the batch
        numbers = iter(range(1, 100))

        def answer(request: Request) -> tuple[int, Any]:
            intents_recorded.append(all(keys(ledger, i) for i in ids))
            offline_id = request.params["metadata[offline_id]"]
            if offline_id == waiting:
                return 200, payment_intent(request.params, "requires_action", next(numbers))
            if offline_id == declined:
                body = error(402, "card_error", "Your card was declined.", "card_declined")
                body[1]["error"]["decline_code"] = "insufficient_funds"
                return body
            if offline_id == retried and request.idempotency_key == idempotency_key(retried):
                return error(500, "api_error", "An unknown error occurred")
            return 200, payment_intent(request.params, "succeeded", next(numbers))

        with recording_stripe(creating(answer)) as peer:
            summary = forwarder(ledger, peer.url).forward_all(ids, concurrency=4)
        assert intents_recorded == [True] * 5
        assert summary.outcomes == {"forwarded": 2, "needs_customer": 1, "declined": 1}
        assert [ledger.payment(i).status for i in ids] == [
            "captured",
            "stored",
            "declined",
            "captured",
        ]
        assert ledger.payment(declined).decline_code == "insufficient_funds"
        # The 500's key created nothing (the lookup said so): the next one was recorded first.
        assert keys(ledger, retried) == [idempotency_key(retried), f"{idempotency_key(retried)}-2"]
        assert len(peer.made("POST", "/v1/payment_intents")) == 5
