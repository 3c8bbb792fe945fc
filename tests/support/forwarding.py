"""What the forwarding tests share: stored payments to forward, a gateway to the peer, and the
check that each payment reached the peer exactly once and the ledger agrees with it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import stripe
from pydantic import SecretStr

from adapters.settings import StripeSettings
from adapters.stripe.gateway import StripeGateway
from ledger import Ledger
from tests.support import records as r

KEY = "sk_test_offline_ledger"


def gateway(url: str, *, timeout_seconds: float = 5.0) -> StripeGateway:
    return StripeGateway(
        StripeSettings(
            api_key=SecretStr(KEY),
            api_base=url,
            timeout_seconds=timeout_seconds,
            max_network_retries=2,
        )
    )


def server_payment_intents(url: str) -> list[dict[str, Any]]:
    """Every PaymentIntent on the server itself (not through the proxy)."""
    client = stripe.StripeClient(KEY, base_addresses={"api": url})
    return [
        item.to_dict()
        for item in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    ]


def stored(
    ledger: Ledger, count: int, *, method: str = "pm_card_visa", capture_method: str = "automatic"
) -> list[str]:
    ids = []
    for n in range(count):
        offline_id = str(uuid.uuid4())
        ledger.record_many(
            [
                r.created(
                    offline_id,
                    amount=1000 + n,
                    capture_method=capture_method,
                    metadata={"order": f"A-{n}"},
                ),
                r.collected(offline_id, payment_method_id=method),
                r.confirmed(offline_id, occurred_at=r.at(2 + n / 100), stored_at=r.at(2 + n / 100)),
            ]
        )
        ids.append(offline_id)
    return ids


def assert_exactly_one_each(ledger: Ledger, ids: list[str], server: str) -> None:
    on_server = server_payment_intents(server)
    per_id = Counter(item["metadata"].get("offline_id") for item in on_server)
    assert {i: per_id[i] for i in ids} == dict.fromkeys(ids, 1)
    by_id = {item["metadata"]["offline_id"]: item for item in on_server}
    for offline_id in ids:
        payment = ledger.payment(offline_id)
        assert payment.status in ("forwarded", "captured", "declined"), payment.status
        assert payment.duplicate_payment_intent_ids == []
        if payment.status != "declined":
            assert payment.payment_intent_id == by_id[offline_id]["id"]
            assert by_id[offline_id]["amount"] == payment.amount
            assert by_id[offline_id]["metadata"]["order"] == payment.metadata["order"]
