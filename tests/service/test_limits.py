"""The offline rules and limits, each with its stable code.

Card rules are judged when the payment method is collected; location, device and amount rules
when the payment is confirmed offline. What a reader did is a fact: the record is stored
whatever rule it broke, and each broken rule is a breach on it, with what the check saw.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from ledger import Code, Ledger, LedgerError
from tests.support import records as r

Record = dict[str, Any]

BUSY_DAY = r.T0 + timedelta(minutes=2)  # when the builders' confirmed_offline happens


def new_id() -> str:
    return str(uuid.uuid4())


def event_count(ledger: Ledger) -> int:
    return ledger.store.recorder.max_notification_id() or 0


def apply(ledger: Ledger, records: list[Record]) -> None:
    for record in records:
        ledger.record(record)


def limits(
    per_payment_max: dict[str, int] | None = None,
    stored_amount_max: dict[str, int] | None = None,
    stored_count_max: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "per_payment_max": per_payment_max or {"usd": 50_000},
        "stored_amount_max": stored_amount_max or {"usd": 1_000_000},
    }
    if stored_count_max is not None:
        body["stored_count_max"] = stored_count_max
    return body


def shop(ledger: Ledger, *devices: str, **location: Any) -> Ledger:
    """Configure tml_1 (with `location` overrides) and connect `devices` (default tmr_1)."""
    ledger.record(r.location(**location))
    for device_id in devices or ("tmr_1",):
        ledger.record(r.device(device_id))
    return ledger


def store(ledger: Ledger, amount: int = 1250, device_id: str = "tmr_1", **created: Any) -> str:
    """Create, collect and confirm one payment; return its offline_id."""
    oid = new_id()
    apply(ledger, r.stored_payment(oid, amount=amount, device_id=device_id, **created))
    return oid


def store_at(ledger: Ledger, minutes: float, amount: int, device_id: str = "tmr_1") -> str:
    """Store one payment confirmed `minutes` after the builders' start; its offline_id."""
    oid = new_id()
    created = r.created(oid, amount=amount, device_id=device_id, occurred_at=r.at(minutes - 2))
    collected = r.collected(oid) | {"occurred_at": r.at(minutes - 1)}
    apply(ledger, [created, collected, r.confirmed(oid, occurred_at=r.at(minutes))])
    return oid


def collected_payment(
    ledger: Ledger, amount: int = 1250, device_id: str = "tmr_1", **created: Any
) -> str:
    """Create and collect one payment (ready to be confirmed); return its offline_id."""
    oid = new_id()
    apply(ledger, [r.created(oid, amount=amount, device_id=device_id, **created), r.collected(oid)])
    return oid


def totals(ledger: Ledger) -> list[dict[str, Any]]:
    return [status.to_dict() for status in ledger.status()]


def assert_flagged(ledger: Ledger, record: Record, code: Code) -> SimpleNamespace:
    """The record is recorded, with a breach of `code` on its payment; returns the breach."""
    assert ledger.record(record).recorded is True
    breaches = [b for b in ledger.payment(record["offline_id"]).breaches if b["code"] == code]
    assert breaches, ledger.payment(record["offline_id"]).breaches
    return SimpleNamespace(**breaches[0])


def confirm_flagged(ledger: Ledger, oid: str, code: Code, **overrides: Any) -> SimpleNamespace:
    breach = assert_flagged(ledger, r.confirmed(oid, **overrides), code)
    assert ledger.payment(oid).status == "stored"
    return breach


def collect_flagged(ledger: Ledger, code: Code, field: str, **card: Any) -> SimpleNamespace:
    oid = new_id()
    ledger.record(r.created(oid))
    breach = assert_flagged(ledger, r.collected(oid, **card), code)
    assert breach.field == field
    assert ledger.payment(oid).status == "collected"
    assert len(ledger.history(oid)) == 2
    return breach


def collect_accepted(ledger: Ledger, **card: Any) -> None:
    oid = new_id()
    ledger.record(r.created(oid))
    assert ledger.record(r.collected(oid, **card)).recorded is True
    assert ledger.payment(oid).status == "collected"


# -- location configuration --------------------------------------------------------------------


def test_a_payment_cannot_be_stored_where_offline_mode_is_disabled(memory_ledger: Ledger) -> None:
    shop(memory_ledger, offline_enabled=False)
    oid = collected_payment(memory_ledger)  # creating and collecting are fine

    confirm_flagged(memory_ledger, oid, Code.OFFLINE_MODE_DISABLED)


def test_enabling_offline_mode_lets_the_payment_be_stored(memory_ledger: Ledger) -> None:
    shop(memory_ledger, offline_enabled=False)
    oid = collected_payment(memory_ledger)
    memory_ledger.record(r.location(offline_enabled=True, occurred_at=r.at(1)))

    assert memory_ledger.record(r.confirmed(oid)).recorded is True
    assert memory_ledger.payment(oid).status == "stored"


def test_a_currency_not_configured_for_offline_cannot_be_stored(memory_ledger: Ledger) -> None:
    shop(memory_ledger, limits=limits({"usd": 50_000}, {"usd": 200_000}))
    oid = collected_payment(memory_ledger, currency="eur")

    error = confirm_flagged(memory_ledger, oid, Code.INVALID_OFFLINE_CURRENCY)
    assert error.field == "currency"


def test_an_explicit_currency_list_allows_a_currency_without_limits(
    memory_ledger: Ledger,
) -> None:
    shop(memory_ledger, currencies=["usd", "cad"], limits=limits({"usd": 50_000}, {"usd": 200_000}))

    oid = store(memory_ledger, amount=5_000, currency="cad")

    assert memory_ledger.payment(oid).status == "stored"
    (status,) = memory_ledger.status()
    assert status.offline_payment_amounts_by_currency == {"cad": 5_000}


def test_a_require_online_payment_cannot_be_stored(memory_ledger: Ledger) -> None:
    shop(memory_ledger)
    oid = collected_payment(memory_ledger, offline_behavior="require_online")

    error = confirm_flagged(
        memory_ledger, oid, Code.NOT_CONNECTED_TO_INTERNET_AND_REQUIRE_ONLINE_SET
    )
    assert error.field == "offline_behavior"


@pytest.mark.parametrize("behavior", ["prefer_online", "force_offline"])
def test_prefer_online_and_force_offline_payments_can_be_stored(
    memory_ledger: Ledger, behavior: str
) -> None:
    shop(memory_ledger)
    oid = store(memory_ledger, offline_behavior=behavior)
    assert memory_ledger.payment(oid).status == "stored"


# -- per-payment maximum -----------------------------------------------------------------------


def test_the_merchant_per_payment_maximum_is_enforced_to_the_minor_unit(ledger: Ledger) -> None:
    shop(ledger, limits=limits({"usd": 50_000}))
    at_max = store(ledger, amount=50_000)
    over = collected_payment(ledger, amount=50_001)  # creating it is fine: it could go online

    error = confirm_flagged(ledger, over, Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT)

    assert ledger.payment(at_max).status == "stored"
    assert error.field == "amount"
    assert error.details["limit"] == "per_payment_max"
    assert error.details["max"] == 50_000


def test_the_per_payment_maximum_is_per_currency(memory_ledger: Ledger) -> None:
    shop(
        memory_ledger,
        limits=limits({"usd": 50_000, "eur": 10_000}, {"usd": 1_000_000, "eur": 1_000_000}),
    )
    store(memory_ledger, amount=40_000, currency="usd")
    oid = collected_payment(memory_ledger, amount=10_001, currency="eur")

    error = confirm_flagged(memory_ledger, oid, Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT)
    assert (error.details["currency"], error.details["max"]) == ("eur", 10_000)


@pytest.fixture
def capped_ledger() -> Iterator[Ledger]:
    """A ledger whose Stripe cap for USD is 300.00, below the merchant's maximum of 500.00."""
    with Ledger.open("memory://", stripe_offline_max={"usd": 30_000}) as opened:
        yield opened


def test_the_stripe_cap_configured_at_open_is_enforced(capped_ledger: Ledger) -> None:
    shop(capped_ledger, limits=limits({"usd": 50_000}))
    at_cap = store(capped_ledger, amount=30_000)
    over = collected_payment(capped_ledger, amount=30_001)

    error = confirm_flagged(capped_ledger, over, Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT)

    assert capped_ledger.payment(at_cap).status == "stored"
    assert error.details["limit"] == "stripe_offline_max"
    assert error.details["max"] == 30_000


def test_the_default_stripe_cap_is_10000_usd_whatever_the_merchant_allows(
    memory_ledger: Ledger,
) -> None:
    shop(memory_ledger, limits=limits({"usd": 5_000_000}, {"usd": 10_000_000}), device_limits={})
    store(memory_ledger, amount=1_000_000)
    over = collected_payment(memory_ledger, amount=1_000_001)

    error = confirm_flagged(memory_ledger, over, Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT)
    assert error.details["limit"] == "stripe_offline_max"


def test_a_currency_without_a_stripe_cap_is_not_available_offline() -> None:
    with Ledger.open("memory://", stripe_offline_max={"usd": 1_000_000}) as ledger:
        shop(ledger)  # the location's limits name usd and eur
        oid = collected_payment(ledger, currency="eur")

        confirm_flagged(ledger, oid, Code.INVALID_OFFLINE_CURRENCY)


# -- stored totals -----------------------------------------------------------------------------


def test_the_location_stored_amount_limit_counts_every_device(ledger: Ledger) -> None:
    shop(
        ledger, "tmr_1", "tmr_2", limits=limits(stored_amount_max={"usd": 3_000}), device_limits={}
    )
    store(ledger, amount=1_000, device_id="tmr_1")
    store(ledger, amount=1_999, device_id="tmr_2")
    over = collected_payment(ledger, amount=2, device_id="tmr_1")

    error = confirm_flagged(ledger, over, Code.STORED_AMOUNT_LIMIT_EXCEEDED)
    assert error.details["scope"] == "location"
    assert (error.details["max"], error.details["used"]) == (3_000, 2_999)

    (status,) = ledger.status()
    assert status.offline_payment_amounts_by_currency == {"usd": 3_001}  # a fact, stored
    assert status.stored_beyond_policy == {
        "STORED_AMOUNT_LIMIT_EXCEEDED": {"count": 1, "amounts_by_currency": {"usd": 2}}
    }
    ledger.record(r.canceled(over, occurred_at=r.at(3)))
    exactly = store_at(ledger, 10, amount=1)  # 3,000 stored: exactly at the limit
    assert ledger.payment(exactly).breaches == []
    (status,) = ledger.status()
    assert status.offline_payment_amounts_by_currency == {"usd": 3_000}


def test_the_device_stored_amount_limit_is_per_device(ledger: Ledger) -> None:
    shop(
        ledger,
        "tmr_1",
        "tmr_2",
        limits=limits(stored_amount_max={"usd": 1_000_000}),
        device_limits={"stored_amount_max": {"usd": 2_000}},
    )
    store(ledger, amount=1_500, device_id="tmr_1")
    over = collected_payment(ledger, amount=501, device_id="tmr_1")

    error = confirm_flagged(ledger, over, Code.STORED_AMOUNT_LIMIT_EXCEEDED)
    assert error.details["scope"] == "device"
    assert (error.details["max"], error.details["used"]) == (2_000, 1_500)
    ledger.record(r.canceled(over, occurred_at=r.at(3)))

    exactly = store_at(ledger, 10, amount=500)
    other_device = store_at(ledger, 10, amount=2_000, device_id="tmr_2")
    assert ledger.payment(exactly).status == "stored"
    assert ledger.payment(other_device).status == "stored"
    (status,) = ledger.status()
    by_device = {d.device_id: d.offline_payment_amounts_by_currency for d in status.devices}
    assert by_device == {"tmr_1": {"usd": 2_000}, "tmr_2": {"usd": 2_000}}


def test_stored_amount_limits_are_per_currency(memory_ledger: Ledger) -> None:
    shop(memory_ledger, limits=limits({"usd": 50_000, "eur": 50_000}, {"usd": 2_000, "eur": 2_000}))
    store(memory_ledger, amount=2_000, currency="usd")

    eur = store(memory_ledger, amount=2_000, currency="eur")

    assert memory_ledger.payment(eur).status == "stored"
    usd = collected_payment(memory_ledger, amount=1, currency="usd")
    confirm_flagged(memory_ledger, usd, Code.STORED_AMOUNT_LIMIT_EXCEEDED)


def test_the_location_stored_count_limit_counts_every_device(ledger: Ledger) -> None:
    shop(ledger, "tmr_1", "tmr_2", limits=limits(stored_count_max=2), device_limits={})
    store(ledger, device_id="tmr_1")
    store(ledger, device_id="tmr_2")
    third = collected_payment(ledger, device_id="tmr_1")

    error = confirm_flagged(ledger, third, Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE)
    assert error.details["scope"] == "location"
    assert (error.details["max"], error.details["used"]) == (2, 2)


def test_the_device_stored_count_limit_is_per_device(ledger: Ledger) -> None:
    shop(
        ledger,
        "tmr_1",
        "tmr_2",
        limits=limits(stored_count_max=100),
        device_limits={"stored_count_max": 1},
    )
    store(ledger, device_id="tmr_1")
    second = collected_payment(ledger, device_id="tmr_1")

    error = confirm_flagged(ledger, second, Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE)
    assert error.details["scope"] == "device"

    other_device = store(ledger, device_id="tmr_2")
    assert ledger.payment(other_device).status == "stored"


def test_of_two_confirmations_in_one_batch_the_second_is_flagged(ledger: Ledger) -> None:
    shop(
        ledger, "tmr_1", "tmr_2", limits=limits(stored_amount_max={"usd": 2_000}), device_limits={}
    )
    first, second = new_id(), new_id()
    results = ledger.record_many(
        [
            *r.stored_payment(first, amount=1_500, device_id="tmr_1"),
            *r.stored_payment(second, amount=1_500, device_id="tmr_2"),
        ]
    )

    assert all(not isinstance(x, LedgerError) for x in results)
    assert ledger.payment(first).breaches == []
    assert [b["code"] for b in ledger.payment(second).breaches] == [
        Code.STORED_AMOUNT_LIMIT_EXCEEDED
    ]
    (status,) = ledger.status()
    assert (status.offline_payments_count, status.offline_payment_amounts_by_currency) == (
        2,
        {"usd": 3_000},
    )


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_second_process_sees_the_stored_total_of_the_first(shared_url: str) -> None:
    """Two POS backends on one database: the second must not take the slot the first took."""
    with Ledger.open(shared_url) as first, Ledger.open(shared_url) as second:
        shop(
            first,
            "tmr_1",
            "tmr_2",
            limits=limits(stored_amount_max={"usd": 2_000}),
            device_limits={},
        )
        waiting = collected_payment(second, amount=1_500, device_id="tmr_2")
        assert (
            second.decide(
                amount=1_500, currency="usd", device_id="tmr_2", location_id="tml_1", at=BUSY_DAY
            ).offline_allowed
            is True
        )

        store(first, amount=1_500, device_id="tmr_1")

        confirm_flagged(second, waiting, Code.STORED_AMOUNT_LIMIT_EXCEEDED)
        (status,) = second.status()
        assert status.offline_payment_amounts_by_currency == {"usd": 3_000}


RELEASES: dict[str, Callable[[str], list[Record]]] = {
    "forwarded": lambda oid: [r.forwarded(oid, status="requires_capture")],
    "forwarded and captured": lambda oid: [r.forwarded(oid, status="succeeded")],
    "declined": lambda oid: [r.declined(oid, payment_intent_id=None)],
    "canceled": lambda oid: [r.canceled(oid, occurred_at=r.at(5))],
}


@pytest.mark.parametrize("release", RELEASES.values(), ids=RELEASES.keys())
def test_releasing_a_stored_payment_makes_room_again(
    ledger: Ledger, release: Callable[[str], list[Record]]
) -> None:
    shop(
        ledger,
        limits=limits(stored_amount_max={"usd": 2_000}, stored_count_max=100),
        device_limits={"stored_count_max": 1},
    )
    first = store(ledger, amount=2_000)
    assert ledger.decide(
        amount=2_000, currency="usd", device_id="tmr_1", location_id="tml_1", at=BUSY_DAY
    ).reasons

    apply(ledger, release(first))

    assert not ledger.decide(
        amount=2_000,
        currency="usd",
        device_id="tmr_1",
        location_id="tml_1",
        at=r.T0 + timedelta(hours=4),
    ).reasons
    waiting = store_at(ledger, 240, amount=2_000)
    assert ledger.payment(waiting).breaches == []
    (status,) = ledger.status()
    assert (status.offline_payments_count, status.offline_payment_amounts_by_currency) == (
        1,
        {"usd": 2_000},
    )


# -- card rules (when the payment method is collected) -----------------------------------------


@pytest.mark.parametrize(
    "brand",
    [
        "visa",
        "mastercard",
        "discover",
        "amex",
        "unionpay",
        "jcb",
        "maestro",
        "eftpos_au",
        "cartes_bancaires",
    ],
)
def test_every_supported_brand_can_be_collected_offline(memory_ledger: Ledger, brand: str) -> None:
    shop(memory_ledger)
    collect_accepted(memory_ledger, brand=brand, network=None)


@pytest.mark.parametrize(
    "read_method",
    ["magnetic_stripe_track2", "magnetic_stripe_fallback", "contactless_magstripe_mode"],
)
def test_a_swiped_card_is_refused_offline(memory_ledger: Ledger, read_method: str) -> None:
    shop(memory_ledger)
    collect_flagged(
        memory_ledger, Code.CARD_SWIPE_NOT_AVAILABLE, "card.read_method", read_method=read_method
    )


def test_contactless_is_refused_where_strong_customer_authentication_applies(
    memory_ledger: Ledger,
) -> None:
    shop(memory_ledger, sca_required=True)
    collect_flagged(
        memory_ledger,
        Code.CONTACTLESS_NOT_ALLOWED_OFFLINE,
        "card.read_method",
        read_method="contactless_emv",
    )
    collect_accepted(memory_ledger, read_method="contact_emv")  # insert + PIN is fine


def test_contactless_is_fine_where_strong_customer_authentication_does_not_apply(
    memory_ledger: Ledger,
) -> None:
    shop(memory_ledger, sca_required=False)
    collect_accepted(memory_ledger, read_method="contactless_emv", cardholder_verification="none")


@pytest.mark.parametrize(
    "card",
    [{"brand": "interac", "network": "interac"}, {"brand": "visa", "network": "interac"}],
    ids=["interac brand", "interac network"],
)
def test_interac_is_refused_offline(memory_ledger: Ledger, card: dict[str, str]) -> None:
    shop(memory_ledger)
    error = collect_flagged(memory_ledger, Code.INTERAC_NOT_SUPPORTED_OFFLINE, "card.brand", **card)
    assert "Interac" in error.message


@pytest.mark.parametrize("brand", ["diners", "link", "unknown"])
def test_an_unsupported_brand_is_refused_offline(memory_ledger: Ledger, brand: str) -> None:
    shop(memory_ledger)
    collect_flagged(
        memory_ledger,
        Code.PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE,
        "card.brand",
        brand=brand,
        network=None,
    )


@pytest.mark.parametrize("network", ["girocard", "nyce", "pulse", "star"])
def test_an_unsupported_debit_network_is_refused_offline(
    memory_ledger: Ledger, network: str
) -> None:
    shop(memory_ledger)
    collect_flagged(
        memory_ledger,
        Code.PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE,
        "card.network",
        brand="mastercard",
        network=network,
        funding="debit",
    )


def test_a_cartes_bancaires_network_is_supported_offline(memory_ledger: Ledger) -> None:
    shop(memory_ledger)
    collect_accepted(memory_ledger, brand="visa", network="cartes_bancaires", country="FR")


def test_an_online_pin_is_refused_offline(memory_ledger: Ledger) -> None:
    shop(memory_ledger)
    collect_flagged(
        memory_ledger,
        Code.ONLINE_PIN_NOT_SUPPORTED_OFFLINE,
        "card.cardholder_verification",
        cardholder_verification="online_pin",
    )


@pytest.mark.parametrize("verification", ["offline_pin", "signature", "none"])
def test_cardholder_verifications_other_than_online_pin_are_fine(
    memory_ledger: Ledger, verification: str
) -> None:
    shop(memory_ledger)
    collect_accepted(memory_ledger, cardholder_verification=verification)


def test_a_card_is_valid_through_the_end_of_its_expiry_month(memory_ledger: Ledger) -> None:
    shop(memory_ledger)
    last_moment = new_id()
    memory_ledger.record(r.created(last_moment))
    result = memory_ledger.record(
        {
            **r.collected(last_moment, exp_month=11, exp_year=2026),
            "occurred_at": "2026-11-30T23:59:59+00:00",
        }
    )
    assert result.recorded is True

    next_month = new_id()
    memory_ledger.record(r.created(next_month))
    error = assert_flagged(
        memory_ledger,
        {
            **r.collected(next_month, exp_month=11, exp_year=2026),
            "occurred_at": "2026-12-01T00:00:00+00:00",
        },
        Code.OFFLINE_AND_CARD_EXPIRED,
    )
    assert error.field is not None and error.field.startswith("card.exp")
    assert memory_ledger.payment(next_month).status == "collected"


@pytest.mark.parametrize(("exp_month", "exp_year"), [(10, 2026), (12, 2025), (1, 2020)])
def test_an_expired_card_is_refused_offline(
    memory_ledger: Ledger, exp_month: int, exp_year: int
) -> None:
    shop(memory_ledger)  # the builders collect on 2026-11-22
    collect_flagged(
        memory_ledger,
        Code.OFFLINE_AND_CARD_EXPIRED,
        "card.exp_year",
        exp_month=exp_month,
        exp_year=exp_year,
    )


# -- device connection (30 days, at this location) ---------------------------------------------


def test_a_device_last_online_exactly_30_days_before_the_payment_qualifies(
    memory_ledger: Ledger,
) -> None:
    memory_ledger.record(r.location())
    memory_ledger.record(
        r.device(occurred_at=(BUSY_DAY - timedelta(days=30)).isoformat(), software_updated_at=None)
    )

    oid = store(memory_ledger)

    assert memory_ledger.payment(oid).status == "stored"


def test_a_device_not_online_in_the_30_days_before_the_payment_cannot_store_it(
    ledger: Ledger,
) -> None:
    ledger.record(r.location())
    ledger.record(
        r.device(
            occurred_at=(BUSY_DAY - timedelta(days=30, seconds=1)).isoformat(),
            software_updated_at=None,
        )
    )
    oid = collected_payment(ledger)

    confirm_flagged(ledger, oid, Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE)


def test_the_30_days_are_counted_back_from_the_confirmation(memory_ledger: Ledger) -> None:
    memory_ledger.record(r.location())
    memory_ledger.record(r.device(occurred_at=r.at(-60), software_updated_at=None))
    oid = collected_payment(memory_ledger)
    later = (BUSY_DAY + timedelta(days=31)).isoformat()

    confirm_flagged(
        memory_ledger,
        oid,
        Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE,
        occurred_at=later,
        stored_at=later,
    )


def test_reconnecting_online_requalifies_the_device(memory_ledger: Ledger) -> None:
    memory_ledger.record(r.location())
    memory_ledger.record(
        r.device(occurred_at=(r.T0 - timedelta(days=40)).isoformat(), software_updated_at=None)
    )
    oid = collected_payment(memory_ledger)
    confirm_flagged(memory_ledger, oid, Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE)

    memory_ledger.record(r.device(occurred_at=r.at(-5), software_updated_at=r.at(-5)))

    assert store(memory_ledger) and memory_ledger.payment(store(memory_ledger)).breaches == []


def test_device_software_older_than_30_days_cannot_store_payments(ledger: Ledger) -> None:
    ledger.record(r.location())
    ledger.record(
        r.device(software_updated_at=(BUSY_DAY - timedelta(days=30, seconds=1)).isoformat())
    )
    oid = collected_payment(ledger)

    error = confirm_flagged(ledger, oid, Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE)
    assert "software" in error.message


def test_device_software_updated_exactly_30_days_ago_qualifies(memory_ledger: Ledger) -> None:
    memory_ledger.record(r.location())
    memory_ledger.record(r.device(software_updated_at=(BUSY_DAY - timedelta(days=30)).isoformat()))

    assert memory_ledger.payment(store(memory_ledger)).status == "stored"


def test_a_device_online_recently_but_only_at_another_location_cannot_store_here(
    ledger: Ledger,
) -> None:
    ledger.record(r.location("tml_1"))
    ledger.record(r.location("tml_2"))
    ledger.record(
        r.device(
            location_id="tml_1",
            occurred_at=(r.T0 - timedelta(days=40)).isoformat(),
            software_updated_at=None,
        )
    )
    ledger.record(r.device(location_id="tml_2", occurred_at=r.at(-30)))
    oid = collected_payment(ledger)  # at tml_1

    error = confirm_flagged(ledger, oid, Code.LOCATION_CONNECTION_NOT_AVAILABLE_OFFLINE)
    assert "tml_1" in error.message


def test_a_device_never_online_at_this_location_cannot_store_here(memory_ledger: Ledger) -> None:
    memory_ledger.record(r.location("tml_1"))
    memory_ledger.record(r.location("tml_2"))
    memory_ledger.record(r.device(location_id="tml_2"))
    oid = collected_payment(memory_ledger, location_id="tml_1")

    confirm_flagged(memory_ledger, oid, Code.LOCATION_CONNECTION_NOT_AVAILABLE_OFFLINE)
