"""The generated day: its sales spread over the chain's stores as their weights say."""

from __future__ import annotations

from collections import Counter

from adapters.trading_day.day import Day, day_records
from adapters.trading_day.draws import apportion
from adapters.trading_day.stores import STORES


def test_each_store_takes_its_share_of_the_day() -> None:
    day = Day(2_000, seed=7)
    created = Counter(
        record["location_id"] for record in day_records(day) if record["type"] == "payment.created"
    )
    expected = apportion(day.payments, [store.weight for store in STORES])
    assert created == {store.location_id: n for store, n in zip(STORES, expected, strict=True)}


def test_a_sale_is_taken_on_a_reader_of_its_own_store() -> None:
    readers = {device: store.location_id for store in STORES for device in store.reader_ids()}
    for record in day_records(Day(500, seed=3)):
        if record["type"] == "payment.created":
            assert readers[record["device_id"]] == record["location_id"]
