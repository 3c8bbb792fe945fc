"""A trading day of wire records, deterministic for a seed: the one generator the benchmarks
and the tests draw their days from (the demo draws its sales from the same draws, and adds its
own script of outages).

The stores' locations are configured and their readers connected online first. Sales then
arrive through each store's opening hours, busier at lunch and in the evening; each goes
created -> payment_method_collected -> confirmed_offline -> forwarded (minutes later, when
the network is back) -> captured, and some are declined, voided or canceled, or fail to forward
once first; a store's first `stuck` sales never get forwarded. Records are emitted in time
order, so the steps of payments in flight interleave as they would in a real day, with memory
for the payments in flight only.

Limits are far above what a day stores unless a store sets `stored_count_max`: the ledger
refuses nothing, and flags only the cards the offline rules refuse (a swipe, an expired card).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from adapters.trading_day import (
    Record,
    device_connected,
    payment_step,
    random_id,
    random_offline_id,
)
from adapters.trading_day.draws import apportion, basket_amount, card, sale_moment
from adapters.trading_day.stores import LIMIT_AMOUNT_MINOR, STORES, Store

DATE = date(2026, 11, 22)
SEED_DEFAULT = 20261122
FORWARD_DELAY_MAX_SECONDS = 3_600.0

# One step of a payment: when, and the record.
Step = tuple[datetime, Record]


@dataclass(frozen=True)
class Day:
    """The shape of a generated day: how many payments, in which stores, on which date."""

    payments: int
    seed: int = SEED_DEFAULT
    stores: tuple[Store, ...] = STORES
    date: date = DATE

    def __post_init__(self) -> None:
        assert self.payments >= 0, self.payments
        assert self.stores, "a day needs a store"


def day_records(day: Day) -> Iterator[Record]:
    """Every record of the day in order: stores, then readers, then payments."""
    yield from setup_records(day)
    yield from payment_records(day)


def setup_records(day: Day) -> list[Record]:
    """location.configured for every store, then device.connected_online for every reader."""
    records = [_location(store, day.date) for store in day.stores]
    for store in day.stores:
        for index, device_id in enumerate(store.reader_ids()):
            records.append(_device(store, device_id, index, day.date))
    return records


def payment_records(day: Day) -> Iterator[Record]:
    """The payments' records in time order, with bounded memory (only payments in flight)."""
    rng = random.Random(day.seed)
    counts = apportion(day.payments, [store.weight for store in day.stores])
    arrivals = heapq.merge(
        *(
            _arrivals(rng, store, count, day.date)
            for store, count in zip(day.stores, counts, strict=True)
        ),
        key=lambda arrival: arrival[0],
    )
    pending: list[tuple[datetime, int, Record]] = []
    sequence = itertools.count()
    made = {store.location_id: 0 for store in day.stores}
    for number, (moment, store) in enumerate(arrivals, start=1):
        made[store.location_id] += 1
        fate = "stuck" if made[store.location_id] <= store.stuck else _fate(rng)
        device_id = rng.choice(store.reader_ids())
        for at, record in _payment(rng, store, device_id, moment, number, fate, day.date):
            heapq.heappush(pending, (at, next(sequence), record))
        while pending and pending[0][0] <= moment:
            yield heapq.heappop(pending)[2]
    while pending:
        yield heapq.heappop(pending)[2]


def live_payments(day: Day, count: int, seed: int) -> Iterator[list[Record]]:
    """`count` payments after the day's end, each as [created, collected, confirmed_offline]."""
    rng = random.Random(seed)
    for number in range(count):
        store = day.stores[number % len(day.stores)]
        device_id = rng.choice(store.reader_ids())
        start = store.at(store.closes, day.date) + timedelta(minutes=10 + number)
        steps = _payment(rng, store, device_id, start, number + 1, "captured", day.date)
        yield [record for _, record in steps][:3]


def payments_for_lines(lines: int) -> int:
    """Enough payments for a file of `lines` records (a payment averages about 4.9)."""
    return math.ceil(lines / 4.5) + 100


def _arrivals(
    rng: random.Random, store: Store, count: int, on: date
) -> list[tuple[datetime, Store]]:
    """When a store's `count` sales happen, in order, each paired with the store here: a pair
    made later, in a generator over all stores, would pair every moment with the last one."""
    moments = sorted(sale_moment(rng, store, store.opens, store.closes, on) for _ in range(count))
    return [(moment, store) for moment in moments]


# -- setup ----------------------------------------------------------------------------------------


def _location(store: Store, on: date) -> Record:
    currency = store.currency
    return {
        "type": "location.configured",
        "occurred_at": _text(store.at(store.opens - 2, on)),
        "location_id": store.location_id,
        "offline_enabled": True,
        "sca_required": store.sca_required,
        "limits": {
            "per_payment_max": {currency: store.per_payment_max},
            "stored_amount_max": {currency: LIMIT_AMOUNT_MINOR},
            "stored_count_max": store.stored_count_max,
        },
        "device_limits": {"stored_amount_max": {currency: LIMIT_AMOUNT_MINOR}},
    }


def _device(store: Store, device_id: str, index: int, on: date) -> Record:
    return device_connected(
        _text(store.at(store.opens - 1, on) + timedelta(seconds=index * 17)),
        device_id,
        store.location_id,
        "stripe_m2" if index % 2 else "bbpos_wisepad3",
        _text(store.at(store.opens, on - timedelta(days=3))),
    )


# -- one payment ----------------------------------------------------------------------------------


def _payment(
    rng: random.Random,
    store: Store,
    device_id: str,
    start: datetime,
    number: int,
    fate: str,
    on: date,
) -> list[Step]:
    """The records of one payment as (when, record), in order."""
    offline_id = random_offline_id(rng)
    amount = min(basket_amount(rng, store), store.per_payment_max)
    steps: list[Step] = []

    def add(at: datetime, record_type: str, **fields: object) -> None:
        steps.append((at, payment_step(record_type, _text(at), offline_id, **fields)))

    add(
        start,
        "payment.created",
        device_id=device_id,
        location_id=store.location_id,
        amount=amount,
        currency=store.currency,
        capture_method="automatic" if fate == "automatic" else "manual",
        offline_behavior="prefer_online",
        payment_intent_id=None,
        metadata={"order": f"{store.country}-{number:07d}", "lane": device_id.rsplit("_", 1)[-1]},
    )
    at = start + _seconds(rng, 8, 45)
    add(at, "payment.payment_method_collected", card=card(rng, store, on))
    if fate == "canceled":
        add(at + _seconds(rng, 5, 60), "payment.canceled", reason="requested_by_customer")
        return steps
    at += _seconds(rng, 1, 6)
    add(at, "payment.confirmed_offline", stored_at=_text(at))
    _after_confirmation(rng, add, at, fate, amount)
    return steps


def _after_confirmation(
    rng: random.Random, add: Callable[..., None], confirmed_at: datetime, fate: str, amount: int
) -> None:
    """Forwarding (after an optional failed attempt) and the payment's outcome."""
    at = confirmed_at
    failures = 2 if fate == "stuck" else int(rng.random() < 0.05)
    for _ in range(failures):
        at += _seconds(rng, 30, 300)
        add(
            at,
            "payment.forward_failed",
            error_code="api_connection_error",
            message="network unreachable",
            retryable=True,
        )
    if fate == "stuck":
        return
    at += timedelta(seconds=min(rng.expovariate(1 / 600), FORWARD_DELAY_MAX_SECONDS) + 1)
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
            at + _seconds(rng, 60, 1200),
            "payment.captured",
            payment_intent_id=payment_intent_id,
            amount_captured=amount,
        )
    elif fate == "voided":
        add(at + _seconds(rng, 30, 600), "payment.canceled", reason="voided")


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


def _seconds(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(seconds=rng.uniform(low, high))


def _text(moment: datetime) -> str:
    """RFC 3339 in the store's local offset, as a POS would send it."""
    return moment.isoformat(timespec="milliseconds")
