"""Forwarding stored payments through the API against a real Stripe-compatible server
(localstripe on 127.0.0.1) behind a fault-injecting proxy: whatever faults happen, each
offline_id ends with exactly one PaymentIntent, with the right amount and metadata, and the
ledger shows each payment forwarded once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import stripe
from pydantic import SecretStr

from adapters.settings import StripeSettings
from adapters.stripe import forwarding
from adapters.stripe.forwarding import Forwarder, Outcome, idempotency_key
from adapters.stripe.gateway import StripeGateway
from adapters.stripe.port import stripe_service
from adapters.stripe.sync import sync
from ledger import Ledger, LedgerError
from tests.support import records as r
from tests.support.forwarding import (
    KEY,
    assert_exactly_one_each,
    gateway,
    server_payment_intents,
    stored,
)

if TYPE_CHECKING:  # loaded by pytest_plugins, which also rewrites its asserts
    from tests.support.stripe_fixtures import FaultProxy

pytest_plugins = ["tests.support.stripe_fixtures"]


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    with Ledger.open(sqlite_url) as opened:
        opened.record(
            r.location(
                limits={
                    "per_payment_max": {"usd": 50_000},
                    "stored_amount_max": {"usd": 10**9},
                    "stored_count_max": 10_000,
                },
                device_limits={},
            )
        )
        opened.record(r.device())
        yield opened


def test_stored_payments_are_forwarded_once_each(ledger: Ledger, fault_proxy: FaultProxy) -> None:
    ids = stored(ledger, 5)
    summary = Forwarder(ledger, gateway(fault_proxy.url)).forward_all(ids, concurrency=2)
    assert summary.outcomes == {"forwarded": 5}
    assert_exactly_one_each(ledger, ids, fault_proxy.upstream)
    assert {ledger.payment(i).status for i in ids} == {"captured"}
    again = Forwarder(ledger, gateway(fault_proxy.url)).forward_all(ids)
    assert again.outcomes == {"skipped": 5}
    keys = {entry["idempotency_key"] for entry in fault_proxy.log() if entry["method"] == "POST"}
    assert keys == {idempotency_key(i) for i in ids}


def test_a_payment_listed_again_in_a_later_batch_is_sent_once(
    ledger: Ledger, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payment listed again in a later batch finds its first answer recorded there: it is
    skipped, never sent twice."""
    monkeypatch.setattr(forwarding, "FORWARD_BATCH", 2)
    ids = stored(ledger, 5)
    listed = [ids[0], ids[1], ids[0], ids[2], ids[1], ids[3], ids[4]]
    summary = Forwarder(ledger, gateway(fault_proxy.url)).forward_all(listed, concurrency=2)
    assert summary.outcomes == {"forwarded": 5, "skipped": 2}
    assert_exactly_one_each(ledger, ids, fault_proxy.upstream)
    posts = [entry for entry in fault_proxy.log() if entry["method"] == "POST"]
    assert len(posts) == 5


def test_a_declined_card_is_recorded_as_declined_with_its_code(
    ledger: Ledger,
    fault_proxy: FaultProxy,
) -> None:
    (offline_id,) = stored(ledger, 1, method="pm_card_chargeCustomerFail")
    outcome = Forwarder(ledger, gateway(fault_proxy.url)).forward(offline_id)
    assert outcome is Outcome.DECLINED
    payment = ledger.payment(offline_id)
    assert (payment.status, payment.decline_code) == ("declined", "card_declined")
    assert len(server_payment_intents(fault_proxy.upstream)) == 1


@pytest.mark.parametrize("action", ["drop_after", "status_after"])
def test_a_lost_answer_is_looked_up_before_sending_again(
    ledger: Ledger,
    fault_proxy: FaultProxy,
    action: str,
) -> None:
    (offline_id,) = stored(ledger, 1)
    fault_proxy.rules(
        [
            {
                "action": action,
                "status": 502,
                "method": "POST",
                "path": "^/v1/payment_intents$",
                "times": 1,
            }
        ]
    )
    outcome = Forwarder(
        ledger, gateway(fault_proxy.url), settle_seconds=0, sleep=lambda s: None
    ).forward(offline_id)
    assert outcome is Outcome.RECOVERED
    assert_exactly_one_each(ledger, [offline_id], fault_proxy.upstream)


def test_a_rate_limit_waits_as_long_as_retry_after_says(
    ledger: Ledger,
    fault_proxy: FaultProxy,
) -> None:
    (offline_id,) = stored(ledger, 1)
    fault_proxy.rules(
        [
            {
                "action": "status",
                "status": 429,
                "headers": {"Retry-After": "0.2"},
                "method": "POST",
                "path": "^/v1/payment_intents$",
                "times": 2,
            }
        ]
    )
    slept: list[float] = []
    outcome = Forwarder(ledger, gateway(fault_proxy.url), sleep=slept.append).forward(offline_id)
    assert outcome is Outcome.FORWARDED
    assert slept == [0.2, 0.2]
    assert ledger.payment(offline_id).forward_failures == 2  # both refusals are on record
    assert_exactly_one_each(ledger, [offline_id], fault_proxy.upstream)


def test_an_earlier_crash_between_stripe_and_the_ledger_is_recovered_by_lookup(
    ledger: Ledger,
    fault_proxy: FaultProxy,
) -> None:
    """The intent was recorded and the PaymentIntent created, then the process died before
    recording the answer: the next run finds it on Stripe instead of creating another."""
    (offline_id,) = stored(ledger, 1)
    payment = ledger.request_forward(offline_id, idempotency_key(offline_id))
    gateway(fault_proxy.url).create_and_confirm(
        offline_id=offline_id,
        amount=payment.amount,
        currency="usd",
        payment_method_id="pm_card_visa",
        capture_method="automatic",
        idempotency_key=idempotency_key(offline_id),
        metadata=payment.metadata,
    )
    assert ledger.payment(offline_id).forward_outcome_unknown
    assert Forwarder(ledger, gateway(fault_proxy.url)).forward(offline_id) is Outcome.RECOVERED
    assert_exactly_one_each(ledger, [offline_id], fault_proxy.upstream)


@pytest.mark.parametrize(
    "payments",
    # 150 payments meet every fault several times in about a minute; 500 take minutes on a
    # loaded machine and run with `pytest -m slow`.
    [150, pytest.param(500, marks=pytest.mark.slow)],
)
def test_many_payments_under_every_fault_end_with_one_payment_intent_each(
    ledger: Ledger,
    fault_proxy: FaultProxy,
    payments: int,
) -> None:
    ids = stored(ledger, payments)
    create = {"method": "POST", "path": "^/v1/payment_intents$"}
    fault_proxy.rules(
        [
            {
                **create,
                "action": "status",
                "status": 429,
                "headers": {"Retry-After": "0"},
                "probability": 0.1,
                "seed": 1,
            },
            {**create, "action": "status_after", "status": 500, "probability": 0.1, "seed": 2},
            {**create, "action": "drop_after", "probability": 0.1, "seed": 3},
            {**create, "action": "drop_before", "probability": 0.05, "seed": 4},
            {**create, "action": "status", "status": 503, "probability": 0.05, "seed": 5},
            {**create, "action": "late", "probability": 0.03, "seed": 6},
        ]
    )
    forwarder = Forwarder(ledger, gateway(fault_proxy.url, timeout_seconds=1.0), attempts_max=20)
    summary = forwarder.forward_all(ids, concurrency=4)
    assert set(summary.outcomes) <= {"forwarded", "recovered"}, summary.outcomes
    assert sum(summary.outcomes.values()) == len(ids)
    actions = Counter(entry["action"] for entry in fault_proxy.log())
    assert actions["drop_after"] and actions["status_after"] and actions["status"]
    assert_exactly_one_each(ledger, ids, fault_proxy.upstream)


def test_idempotency_replay_on_the_server_answers_the_retry_with_the_first_payment_intent(
    ledger: Ledger,
    fault_proxy: FaultProxy,
) -> None:
    fault_proxy.idempotency(True)
    ids = stored(ledger, 20)
    fault_proxy.rules(
        [
            {
                "method": "POST",
                "path": "^/v1/payment_intents$",
                "action": "drop_after",
                "probability": 0.3,
                "seed": 9,
            }
        ]
    )
    summary = Forwarder(
        ledger, gateway(fault_proxy.url), settle_seconds=0, sleep=lambda s: None
    ).forward_all(ids)
    assert sum(summary.outcomes.values()) == 20
    assert_exactly_one_each(ledger, ids, fault_proxy.upstream)


def test_sync_records_what_stripe_says_and_twice_adds_nothing(
    ledger: Ledger,
    fault_proxy: FaultProxy,
) -> None:
    ids = stored(ledger, 3, capture_method="manual")
    # Forwarded by the device, not by us: the ledger does not know yet.
    client = stripe.StripeClient(KEY, base_addresses={"api": fault_proxy.upstream})
    for offline_id in ids:
        client.v1.payment_intents.create(
            params={
                "amount": ledger.payment(offline_id).amount,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "capture_method": "manual",
                "confirm": True,
                "metadata": {"offline_id": offline_id},
            }
        )
    first = sync(ledger, gateway(fault_proxy.url))
    assert (first.payment_intents, first.observations_recorded, first.facts_recorded) == (3, 3, 3)
    assert {ledger.payment(i).status for i in ids} == {"forwarded"}
    events = ledger.store.recorder.max_notification_id()
    second = sync(ledger, gateway(fault_proxy.url))
    assert (second.observations_recorded, second.facts_recorded) == (0, 0)
    assert ledger.store.recorder.max_notification_id() == events


def test_captures_land_once_under_retries_and_partial_captures_record_the_amount(
    ledger: Ledger,
    fault_proxy: FaultProxy,
) -> None:
    full, partial = stored(ledger, 2, capture_method="manual")
    Forwarder(ledger, gateway(fault_proxy.url)).forward_all([full, partial])
    assert ledger.payment(full).stripe_status == "requires_capture"
    fault_proxy.rules(
        [{"method": "POST", "path": "/capture$", "action": "status", "status": 503, "times": 1}]
    )
    stripe_service(ledger, gateway(fault_proxy.url)).capture(full)  # the library retries 503
    stripe_service(ledger, gateway(fault_proxy.url)).capture(partial, amount=600)
    assert (ledger.payment(full).status, ledger.payment(full).amount_captured) == (
        "captured",
        ledger.payment(full).amount,
    )
    assert ledger.payment(partial).amount_captured == 600
    captures = [e for e in fault_proxy.log() if e["path"].endswith("/capture")]
    assert len({e["idempotency_key"] for e in captures}) == 2
    with pytest.raises(LedgerError) as again:
        stripe_service(ledger, gateway(fault_proxy.url)).capture(full)
    assert again.value.code == "STEP_OUT_OF_ORDER"


def test_a_live_key_is_refused_by_a_test_mode_ledger(
    ledger: Ledger,
    fault_proxy: FaultProxy,
) -> None:
    # Stripe showed a test-mode PaymentIntent: the ledger is bound to test mode.
    (offline_id,) = stored(ledger, 1)
    assert Forwarder(ledger, gateway(fault_proxy.url)).forward_all([offline_id]).outcomes == {
        "forwarded": 1
    }
    assert ledger.stripe_mode() is False
    live_key = "sk_live_" + "x" * 24
    live = StripeGateway(StripeSettings(api_key=SecretStr(live_key), api_base=fault_proxy.url))
    with pytest.raises(LedgerError) as refused:
        sync(ledger, live)
    assert refused.value.code == "STRIPE_MODE_MISMATCH"
    assert live_key not in str(refused.value)
