"""`Ledger.decide`: may this prospective sale be taken offline, why not, and how much headroom
is left under each limit? The same rules as storing a payment, and nothing recorded.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger import Code, Decision, Ledger, LedgerError
from ledger.errors import NotFound
from tests.support import records as r

NOW = r.T0 + timedelta(minutes=2)


@pytest.fixture
def shop(memory_ledger: Ledger) -> Ledger:
    """tml_1 as the builders configure it, with tmr_1 online there half an hour ago."""
    memory_ledger.record(r.location())
    memory_ledger.record(r.device())
    return memory_ledger


def store(ledger: Ledger, amount: int, device_id: str = "tmr_1") -> str:
    oid = str(uuid.uuid4())
    for record in r.stored_payment(oid, amount=amount, device_id=device_id):
        ledger.record(record)
    return oid


def decide(ledger: Ledger, amount: int = 1250, **overrides: Any) -> Decision:
    request: dict[str, Any] = {
        "amount": amount,
        "currency": "usd",
        "device_id": "tmr_1",
        "location_id": "tml_1",
        "at": NOW,
    }
    request.update(overrides)
    return ledger.decide(**request)


def codes(decision: Decision) -> list[Code]:
    return [reason.code for reason in decision.reasons]


def headroom(decision: Decision) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row.scope, row.limit): row.to_dict() for row in decision.headroom}


def event_count(ledger: Ledger) -> int:
    return ledger.store.recorder.max_notification_id() or 0


# -- allowed -----------------------------------------------------------------------------------


def test_a_sale_within_every_limit_may_be_taken_offline(shop: Ledger) -> None:
    decision = decide(shop, 1250)

    assert decision.offline_allowed is True
    assert decision.offline_behavior == "prefer_online"
    assert decision.reasons == []
    rows = headroom(decision)
    assert set(rows) == {
        ("payment", "stripe_offline_max"),
        ("payment", "per_payment_max"),
        ("location", "stored_amount_max"),
        ("location", "stored_count_max"),
        ("device", "stored_amount_max"),
        ("device", "stored_count_max"),
    }
    assert rows["payment", "stripe_offline_max"]["max"] == 1_000_000
    assert rows["payment", "per_payment_max"]["max"] == 50_000
    assert rows["location", "stored_amount_max"] == {
        "scope": "location",
        "limit": "stored_amount_max",
        "currency": "usd",
        "max": 200_000,
        "used": 0,
        "remaining": 200_000,
    }
    assert rows["location", "stored_count_max"] == {
        "scope": "location",
        "limit": "stored_count_max",
        "currency": None,
        "max": 100,
        "used": 0,
        "remaining": 100,
    }
    assert rows["device", "stored_amount_max"] == {
        "scope": "device",
        "limit": "stored_amount_max",
        "currency": "usd",
        "max": 100_000,
        "used": 0,
        "remaining": 100_000,
    }
    assert rows["device", "stored_count_max"] == {
        "scope": "device",
        "limit": "stored_count_max",
        "currency": None,
        "max": 40,
        "used": 0,
        "remaining": 40,
    }


def test_headroom_reflects_what_is_already_stored(ledger: Ledger) -> None:
    ledger.record(r.location())
    ledger.record(r.device("tmr_1"))
    ledger.record(r.device("tmr_2"))
    store(ledger, 1_250, "tmr_1")
    store(ledger, 3_000, "tmr_2")
    forwarded = store(ledger, 7_000, "tmr_1")
    ledger.record(r.forwarded(forwarded))  # no longer stored: not counted

    rows = headroom(decide(ledger, 500, device_id="tmr_1"))

    assert rows["location", "stored_amount_max"]["used"] == 4_250
    assert rows["location", "stored_amount_max"]["remaining"] == 200_000 - 4_250
    assert rows["location", "stored_count_max"]["used"] == 2
    assert rows["device", "stored_amount_max"]["used"] == 1_250
    assert rows["device", "stored_amount_max"]["remaining"] == 100_000 - 1_250
    assert (
        rows["device", "stored_count_max"]["used"],
        rows["device", "stored_count_max"]["remaining"],
    ) == (1, 39)


def test_a_sale_exactly_at_the_per_payment_maximum_is_allowed(shop: Ledger) -> None:
    assert decide(shop, 50_000).offline_allowed is True

    over = decide(shop, 50_001)

    assert over.offline_allowed is False
    assert codes(over) == [Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT]
    assert over.reasons[0].details["limit"] == "per_payment_max"


def test_a_sale_exactly_filling_the_device_limit_is_allowed(shop: Ledger) -> None:
    store(shop, 50_000)
    store(shop, 40_000)

    assert decide(shop, 10_000).offline_allowed is True
    over = decide(shop, 10_001)
    assert codes(over) == [Code.STORED_AMOUNT_LIMIT_EXCEEDED]
    assert over.reasons[0].details["scope"] == "device"
    assert over.reasons[0].details["remaining"] == 10_000


# -- refused, with reasons ---------------------------------------------------------------------


def test_a_sale_over_a_stored_limit_must_go_online(shop: Ledger) -> None:
    store(shop, 50_000)
    store(shop, 50_000)  # the device's 1,000.00 is full

    decision = decide(shop, 1)

    assert decision.offline_allowed is False
    assert decision.offline_behavior == "require_online"
    assert codes(decision) == [Code.STORED_AMOUNT_LIMIT_EXCEEDED]
    assert headroom(decision)["device", "stored_amount_max"]["remaining"] == 0


def test_every_broken_rule_is_given_as_a_reason(memory_ledger: Ledger) -> None:
    memory_ledger.record(r.location(offline_enabled=False))
    memory_ledger.record(r.device("tmr_long_gone", occurred_at=r.at(-31 * 24 * 60)))

    decision = decide(
        memory_ledger, 60_000, device_id="tmr_long_gone", offline_behavior="require_online"
    )

    assert decision.offline_allowed is False
    assert decision.offline_behavior == "require_online"
    assert codes(decision) == [
        Code.OFFLINE_MODE_DISABLED,
        Code.NOT_CONNECTED_TO_INTERNET_AND_REQUIRE_ONLINE_SET,
        Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE,
        Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT,
    ]
    assert all(reason.message for reason in decision.reasons)


def test_a_device_the_ledger_has_never_seen_is_unknown_not_merely_offline_too_long(
    shop: Ledger,
) -> None:
    """A mistyped reader id is named as such, like a mistyped location, rather than answered
    "has not connected online in 30 days"."""
    with pytest.raises(NotFound) as refused:
        decide(shop, device_id="tmr_new")

    assert refused.value.code == Code.UNKNOWN_DEVICE and refused.value.field == "device_id"


def test_the_decision_applies_the_30_day_rule_at_the_time_asked(memory_ledger: Ledger) -> None:
    connected = r.T0 - timedelta(minutes=30)
    memory_ledger.record(r.location())
    memory_ledger.record(
        r.device(occurred_at=connected.isoformat(), software_updated_at=connected.isoformat())
    )

    assert decide(memory_ledger, at=connected + timedelta(days=30)).offline_allowed is True
    late = decide(memory_ledger, at=connected + timedelta(days=30, seconds=1))
    assert codes(late) == [Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE]


def test_a_device_online_only_at_another_location_may_not_take_payments_offline_here(
    memory_ledger: Ledger,
) -> None:
    memory_ledger.record(r.location("tml_1"))
    memory_ledger.record(r.location("tml_2"))
    memory_ledger.record(r.device(location_id="tml_2"))

    assert decide(memory_ledger, location_id="tml_2").offline_allowed is True
    here = decide(memory_ledger, location_id="tml_1")
    assert codes(here) == [Code.LOCATION_CONNECTION_NOT_AVAILABLE_OFFLINE]


def test_a_currency_not_configured_offline_is_refused(shop: Ledger) -> None:
    decision = decide(shop, currency="gbp")

    assert codes(decision) == [Code.INVALID_OFFLINE_CURRENCY]
    assert decision.offline_behavior == "require_online"


def test_the_stripe_cap_configured_at_open_is_part_of_the_decision() -> None:
    with Ledger.open("memory://", stripe_offline_max={"usd": 30_000}) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())

        assert decide(ledger, 30_000).offline_allowed is True
        over = decide(ledger, 30_001)

    assert codes(over) == [Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT]
    assert over.reasons[0].details["limit"] == "stripe_offline_max"
    assert headroom(over)["payment", "stripe_offline_max"]["max"] == 30_000


@pytest.mark.parametrize("caps", [{"USD": 30_000}, {"dollars": 30_000}, {"usd": -1}, {"usd": 1.5}])
def test_a_stripe_cap_the_ledger_would_never_apply_is_refused_at_open(caps: Any) -> None:
    with pytest.raises(LedgerError) as refused:
        Ledger.open("memory://", stripe_offline_max=caps)

    assert refused.value.code == Code.INVALID_SETTING
    assert refused.value.field == "stripe_offline_max"
    assert "minor units" in refused.value.message or "ISO 4217" in refused.value.message


def test_a_require_online_request_is_answered_require_online(shop: Ledger) -> None:
    decision = decide(shop, offline_behavior="require_online")

    assert decision.offline_allowed is False
    assert decision.offline_behavior == "require_online"
    assert codes(decision) == [Code.NOT_CONNECTED_TO_INTERNET_AND_REQUIRE_ONLINE_SET]


def test_the_decision_agrees_with_what_storing_the_payment_does(shop: Ledger) -> None:
    store(shop, 50_000)
    store(shop, 49_000)
    allowed, refused = decide(shop, 1_000), decide(shop, 1_001)
    assert (allowed.offline_allowed, codes(refused)) == (True, [Code.STORED_AMOUNT_LIMIT_EXCEEDED])

    over = str(uuid.uuid4())
    shop.record(r.created(over, amount=1_001))
    shop.record(r.collected(over))
    assert shop.record(r.confirmed(over)).recorded is True  # a fact: recorded, flagged
    assert [b["code"] for b in shop.payment(over).breaches] == codes(refused)


def test_the_decision_is_json_ready(shop: Ledger) -> None:
    store(shop, 50_000)
    store(shop, 50_000)

    body = json.loads(json.dumps(decide(shop, 1).to_dict()))

    assert body["offline_allowed"] is False
    assert body["offline_behavior"] == "require_online"
    assert body["code"] == "STORED_AMOUNT_LIMIT_EXCEEDED"
    assert body["reasons"][0]["code"] == "STORED_AMOUNT_LIMIT_EXCEEDED"
    assert {"scope", "limit", "currency", "max", "used", "remaining"} <= set(body["headroom"][0])


# -- records nothing ---------------------------------------------------------------------------


def test_deciding_records_nothing(ledger: Ledger) -> None:
    ledger.record(r.location())
    ledger.record(r.device())
    store(ledger, 1_250)
    events_before = event_count(ledger)
    status_before = ledger.status()

    for amount in (1, 1_250, 50_000, 60_000, 150_000):
        decide(ledger, amount)
    decide(ledger, offline_behavior="require_online")

    assert event_count(ledger) == events_before
    assert ledger.status() == status_before


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, -1, -1250, 12.5, "1250", True, 100_000_000])
def test_an_amount_that_is_not_a_positive_whole_number_of_minor_units_is_refused(
    shop: Ledger, amount: Any
) -> None:
    with pytest.raises(LedgerError) as refused:
        decide(shop, amount)

    assert refused.value.code is Code.INVALID_AMOUNT
    assert refused.value.field == "amount"


@pytest.mark.parametrize("currency", ["xyz", "USD", "Usd", "dollars", "us"])
def test_an_unknown_currency_is_refused(shop: Ledger, currency: str) -> None:
    with pytest.raises(LedgerError) as refused:
        decide(shop, currency=currency)

    assert refused.value.code is Code.UNKNOWN_CURRENCY
    assert refused.value.field == "currency"


def test_an_unknown_location_is_refused(shop: Ledger) -> None:
    with pytest.raises(LedgerError) as refused:
        decide(shop, location_id="tml_nowhere")

    assert refused.value.code is Code.UNKNOWN_LOCATION
    assert refused.value.field == "location_id"


def test_a_time_without_an_offset_is_refused(shop: Ledger) -> None:
    with pytest.raises(LedgerError) as refused:
        decide(shop, at=datetime(2026, 11, 22, 8, 2))

    assert refused.value.code is Code.INVALID_TIMESTAMP
    assert refused.value.field == "at"
