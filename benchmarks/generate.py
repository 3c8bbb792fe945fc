"""A realistic trading day of wire records, deterministic for a seed.

Several locations (US, Canada, EU and UK stores; the European ones require strong customer
authentication) with a few readers each are configured and connected online first. Payments
then arrive through the day as a Poisson process; each goes created -> payment_method_collected
-> confirmed_offline -> forwarded (minutes later, when the network is back) -> captured, and
some are declined, voided or canceled, or fail to forward once first. Records are emitted in
time order, so the steps of payments in flight interleave as they would in a real day.

Limits are far above what a day stores, so that the ledger refuses nothing: the benchmark
measures recording, not refusals.

    python -m benchmarks.generate --payments 1000 day.jsonl
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from adapters.trading_day import (
    Record,
    device_connected,
    payment_step,
    random_id,
    random_offline_id,
    reader_ids,
    write_jsonl,
)

DAY_START = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)
LIMIT_AMOUNT_MINOR = 10**12  # stored amount limits no day comes near
LIMIT_COUNT = 1_000_000  # the wire format's largest stored_count_max
PER_PAYMENT_MAX_MINOR = 500_000
FORWARD_DELAY_MAX_SECONDS = 3_600.0
SEED_DEFAULT = 20261122


@dataclass(frozen=True)
class Store:
    """One Stripe Terminal Location of the generated merchant."""

    location_id: str
    currency: str
    country: str
    utc_offset_hours: int
    sca_required: bool
    weight: float  # share of the day's payments, relative to the other stores


STORES: tuple[Store, ...] = (
    Store("tml_nyc_5th_ave", "usd", "US", -5, False, 3.0),
    Store("tml_chicago_loop", "usd", "US", -6, False, 2.0),
    Store("tml_austin_south", "usd", "US", -6, False, 1.5),
    Store("tml_sf_market_st", "usd", "US", -8, False, 2.5),
    Store("tml_toronto_queen", "cad", "CA", -5, False, 1.5),
    Store("tml_london_soho", "gbp", "GB", 0, True, 2.0),
    Store("tml_berlin_mitte", "eur", "DE", 1, True, 1.5),
    Store("tml_paris_marais", "eur", "FR", 1, True, 1.0),
)


@dataclass(frozen=True)
class Day:
    """The shape of a generated day."""

    payments: int
    seed: int = SEED_DEFAULT
    stores: int = len(STORES)
    devices_per_store: int = 4
    hours: float = 14.0

    def __post_init__(self) -> None:
        assert self.payments >= 0, self.payments
        assert 1 <= self.stores <= len(STORES), self.stores
        assert 1 <= self.devices_per_store <= 100, self.devices_per_store

    @property
    def locations(self) -> tuple[Store, ...]:
        return STORES[: self.stores]

    def device_ids(self, store: Store) -> list[str]:
        return reader_ids(store.location_id, self.devices_per_store)


def day_records(day: Day) -> Iterator[Record]:
    """Every record of the day in order: stores, then readers, then payments."""
    yield from setup_records(day)
    yield from payment_records(day)


def setup_records(day: Day) -> list[Record]:
    """location.configured for every store, then device.connected_online for every reader."""
    records = [_location(store) for store in day.locations]
    for store in day.locations:
        for index, device_id in enumerate(day.device_ids(store)):
            records.append(_device(store, device_id, index))
    return records


def payment_records(day: Day) -> Iterator[Record]:
    """The payments' records in time order, with bounded memory (only payments in flight)."""
    rng = random.Random(day.seed)
    rate_per_second = day.payments / (day.hours * 3600) if day.payments else 1.0
    weights = [store.weight for store in day.locations]
    pending: list[tuple[float, int, Record]] = []
    sequence = itertools.count()
    now = 0.0
    for number in range(1, day.payments + 1):
        now += rng.expovariate(rate_per_second)
        store = rng.choices(day.locations, weights)[0]
        device_id = rng.choice(day.device_ids(store))
        for seconds, record in _payment(rng, store, device_id, now, number):
            heapq.heappush(pending, (seconds, next(sequence), record))
        while pending and pending[0][0] <= now:
            yield heapq.heappop(pending)[2]
    while pending:
        yield heapq.heappop(pending)[2]


def live_payments(day: Day, count: int, seed: int) -> Iterator[list[Record]]:
    """`count` payments after the day's end, each as [created, collected, confirmed_offline]."""
    rng = random.Random(seed)
    start = day.hours * 3600 + 600
    for number in range(count):
        store = day.locations[number % len(day.locations)]
        device_id = rng.choice(day.device_ids(store))
        steps = _payment(rng, store, device_id, start + number * 60, number + 1, live=True)
        yield [record for _, record in steps][:3]


def payments_for_lines(lines: int) -> int:
    """Enough payments for a file of `lines` records (a payment averages about 4.9)."""
    return math.ceil(lines / 4.5) + 100


# -- setup ----------------------------------------------------------------------------------------


def _location(store: Store) -> Record:
    currency = store.currency
    return {
        "type": "location.configured",
        "occurred_at": _timestamp(store, -2 * 3600),
        "location_id": store.location_id,
        "offline_enabled": True,
        "sca_required": store.sca_required,
        "limits": {
            "per_payment_max": {currency: PER_PAYMENT_MAX_MINOR},
            "stored_amount_max": {currency: LIMIT_AMOUNT_MINOR},
            "stored_count_max": LIMIT_COUNT,
        },
        "device_limits": {
            "stored_amount_max": {currency: LIMIT_AMOUNT_MINOR},
            "stored_count_max": LIMIT_COUNT,
        },
    }


def _device(store: Store, device_id: str, index: int) -> Record:
    return device_connected(
        _timestamp(store, -3600 + index * 17),
        device_id,
        store.location_id,
        "stripe_m2" if index % 2 else "bbpos_wisepad3",
        _timestamp(store, -3 * 24 * 3600),
    )


# -- one payment ----------------------------------------------------------------------------------


def _payment(
    rng: random.Random,
    store: Store,
    device_id: str,
    start: float,
    number: int,
    *,
    live: bool = False,
) -> list[tuple[float, Record]]:
    """The records of one payment as (seconds into the day, record), in order."""
    offline_id = random_offline_id(rng)
    fate = "captured" if live else _fate(rng)
    manual = fate != "automatic"
    amount = _amount(rng)
    steps: list[tuple[float, Record]] = []

    def add(seconds: float, record_type: str, **fields: Any) -> None:
        steps.append(
            (seconds, payment_step(record_type, _timestamp(store, seconds), offline_id, **fields))
        )

    add(
        start,
        "payment.created",
        device_id=device_id,
        location_id=store.location_id,
        amount=amount,
        currency=store.currency,
        capture_method="manual" if manual else "automatic",
        offline_behavior="prefer_online",
        payment_intent_id=None,
        metadata={"order": f"{store.country}-{number:07d}", "lane": "1"},
    )
    at = start + rng.uniform(8, 45)
    add(at, "payment.payment_method_collected", card=_card(rng, store))
    if fate == "canceled":
        add(at + rng.uniform(5, 60), "payment.canceled", reason="requested_by_customer")
        return steps
    at += rng.uniform(1, 6)
    add(at, "payment.confirmed_offline", stored_at=_timestamp(store, at))
    _after_confirmation(rng, add, at, fate, amount)
    return steps


def _after_confirmation(
    rng: random.Random, add: Any, confirmed_at: float, fate: str, amount: int
) -> None:
    """Forwarding (after an optional failed attempt) and the payment's outcome."""
    at = confirmed_at
    if rng.random() < 0.05:
        at += rng.uniform(30, 300)
        add(
            at,
            "payment.forward_failed",
            error_code="api_connection_error",
            message="network unreachable",
            retryable=True,
        )
    at += min(rng.expovariate(1 / 600), FORWARD_DELAY_MAX_SECONDS) + 1
    payment_intent_id = random_id(rng, "pi_")
    if fate == "declined":
        add(
            at,
            "payment.declined",
            payment_intent_id=payment_intent_id,
            decline_code=rng.choice(["insufficient_funds", "do_not_honor", "expired_card"]),
        )
        return
    status = "succeeded" if fate == "automatic" else "requires_capture"
    add(at, "payment.forwarded", payment_intent_id=payment_intent_id, status=status)
    if fate == "captured":
        add(
            at + rng.uniform(60, 1200),
            "payment.captured",
            payment_intent_id=payment_intent_id,
            amount_captured=amount,
        )
    elif fate == "voided":
        add(at + rng.uniform(30, 600), "payment.canceled", reason="voided")


def _fate(rng: random.Random) -> str:
    """How the payment ends: mostly a manual capture after forwarding."""
    draw = rng.random()
    for fate, share in (
        ("canceled", 0.02),
        ("declined", 0.03),
        ("voided", 0.02),
        ("automatic", 0.10),
    ):
        if draw < share:
            return fate
        draw -= share
    return "captured"


def _amount(rng: random.Random) -> int:
    """Minor units; median about 25.00, a long tail of larger baskets."""
    return max(100, min(int(rng.lognormvariate(math.log(2500), 0.9)), PER_PAYMENT_MAX_MINOR))


def _card(rng: random.Random, store: Store) -> Record:
    brand = rng.choices(["visa", "mastercard", "amex", "discover"], [50, 35, 10, 5])[0]
    if store.country != "US" and brand == "discover":
        brand = "visa"
    network = "cartes_bancaires" if store.country == "FR" and rng.random() < 0.5 else brand
    contactless = not store.sca_required and rng.random() < 0.6
    return {
        "brand": brand,
        "network": network,
        "last4": f"{rng.randrange(10_000):04d}",
        "exp_month": rng.randint(1, 12),
        "exp_year": rng.randint(2027, 2031),
        "funding": rng.choice(["credit", "debit"]),
        "read_method": "contactless_emv" if contactless else "contact_emv",
        "cardholder_verification": (
            rng.choice(["none", "consumer_device"])
            if contactless
            else rng.choice(["offline_pin", "signature"])
        ),
        "country": store.country,
    }


def _timestamp(store: Store, seconds: float) -> str:
    """RFC 3339 in the store's local offset, as a POS would send it."""
    local = timezone(timedelta(hours=store.utc_offset_hours))
    moment = DAY_START + timedelta(seconds=seconds)
    return moment.astimezone(local).isoformat(timespec="milliseconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="JSON Lines file to write")
    parser.add_argument("--payments", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    parser.add_argument("--lines", type=int, default=None, help="stop after this many lines")
    args = parser.parse_args()
    written = write_jsonl(args.output, day_records(Day(args.payments, args.seed)), args.lines)
    print(f"{written} records written to {args.output}")


if __name__ == "__main__":
    main()
