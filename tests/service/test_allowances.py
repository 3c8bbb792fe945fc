"""Offline allowances: decisions when even the ledger cannot be reached.

While online, a device is granted an allowance carved out of its location's limits; stored
payments plus every outstanding allowance stay within them. During an outage the POS app
decides locally against it; the facts that arrive later are checked against the allowance the
device held, and a breach names the device.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from adapters.trading_day import write_jsonl
from ledger import Code, Ledger, LedgerError
from tests.support import records as r
from tests.support.cli import run_json

AT = r.T0 - timedelta(minutes=10)
UNTIL = r.T0 + timedelta(hours=8)


def shop(ledger: Ledger) -> None:
    limits = {"per_payment_max": {"usd": 5_000}, "stored_amount_max": {"usd": 10_000}}
    ledger.record(r.location(limits=limits, device_limits={"stored_amount_max": {}}))
    ledger.record(r.device("tmr_1"))
    ledger.record(r.device("tmr_2"))


def test_allowances_are_carved_out_of_the_location_limit(ledger: Ledger) -> None:
    shop(ledger)
    first = ledger.allow("tmr_1", "tml_1", {"usd": 6_000}, 10, UNTIL, at=AT)
    second = ledger.allow("tmr_2", "tml_1", {"usd": 6_000}, 10, UNTIL, at=AT)
    assert first.amounts == {"usd": 6_000}
    assert second.amounts == {"usd": 4_000}  # what the first one left
    # Nobody else can reserve what the allowances hold.
    assert not ledger.reserve(
        "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a99", 1, "usd", "tmr_1", "tml_1", at=AT
    ).granted
    # Renewing shrinks or grows it within what is left.
    again = ledger.allow("tmr_2", "tml_1", {"usd": 1_000}, 2, UNTIL, at=AT + timedelta(minutes=1))
    assert (again.amounts, again.count) == ({"usd": 1_000}, 2)


def test_facts_beyond_the_allowance_are_recorded_and_name_the_device(ledger: Ledger) -> None:
    shop(ledger)
    ledger.allow("tmr_1", "tml_1", {"usd": 2_000}, 5, UNTIL, at=AT)
    inside, beyond = (
        "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a10",
        "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a11",
    )
    for record in r.stored_payment(inside, amount=1_500):
        ledger.record(record)
    assert ledger.payment(inside).breaches == []
    for record in [
        r.created(beyond, amount=600, occurred_at=r.at(10)),
        r.collected(beyond) | {"occurred_at": r.at(11)},
        r.confirmed(beyond, occurred_at=r.at(12), stored_at=r.at(12)),
    ]:
        assert ledger.record(record).recorded
    (breach,) = ledger.payment(beyond).breaches
    assert breach["code"] == Code.OFFLINE_ALLOWANCE_EXCEEDED
    assert breach["details"]["device_id"] == "tmr_1"
    assert "tmr_1" in breach["message"]
    (status,) = ledger.status()
    allowance = next(d for d in status.devices if d.device_id == "tmr_1").allowance
    assert allowance is not None
    assert (allowance.used_amounts, allowance.used_count) == ({"usd": 2_100}, 2)


def test_a_payment_after_the_allowance_expired_is_judged_by_the_limits_alone(
    ledger: Ledger,
) -> None:
    shop(ledger)
    ledger.allow("tmr_1", "tml_1", {"usd": 100}, 1, r.T0 + timedelta(minutes=1), at=AT)
    oid = "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a12"
    for record in r.stored_payment(oid, amount=1_500):  # confirmed at T0 + 2 minutes
        ledger.record(record)
    assert ledger.payment(oid).breaches == []


def test_an_allowance_for_an_unknown_device_or_in_the_past_is_refused(ledger: Ledger) -> None:
    shop(ledger)
    with pytest.raises(LedgerError) as unknown:
        ledger.allow("tmr_9", "tml_1", {"usd": 100}, 1, UNTIL, at=AT)
    assert unknown.value.code is Code.UNKNOWN_DEVICE
    with pytest.raises(LedgerError) as past:
        ledger.allow("tmr_1", "tml_1", {"usd": 100}, 1, AT, at=AT)
    assert past.value.code is Code.INVALID_VALUE


def test_the_cli_grants_an_allowance_and_reserves(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "shop.jsonl"
    limits = {"per_payment_max": {"usd": 5_000}, "stored_amount_max": {"usd": 10_000}}
    write_jsonl(path, [r.location(limits=limits, device_limits={}), r.device("tmr_1")])
    run_json("ingest", str(path), "--db", sqlite_url)
    at, until = AT.isoformat(), UNTIL.isoformat()
    granted = run_json("allow", "--device", "tmr_1", "--location", "tml_1", "--amount",
                       "usd=12000", "--count", "3", "--until", until, "--at", at,
                       "--db", sqlite_url)  # fmt: skip
    assert (granted["amounts"], granted["count"]) == ({"usd": 10_000}, 3)
    sale = "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a13"
    refused = run_json("reserve", "--offline-id", sale, "--amount", "100", "--currency", "usd",
                       "--device", "tmr_1", "--location", "tml_1", "--at", at,
                       "--db", sqlite_url)  # fmt: skip
    assert (refused["granted"], refused["code"]) == (False, "STORED_AMOUNT_LIMIT_EXCEEDED")
    status = run_json("status", "--db", sqlite_url)
    assert status["devices"][0]["allowance"]["amounts"] == {"usd": 10_000}


@pytest.mark.parametrize(
    ("amounts", "count"),
    [
        ({"usd": 10.5}, 1),
        ({"usd": True}, 1),
        ({"usd": "100"}, 1),
        ({"usd": 10**30}, 1),
        ({"usd": 100}, 1.5),
        ({"usd": 100}, True),
    ],
    ids=["fraction", "bool", "text", "past-any-total", "fraction-count", "bool-count"],
)
def test_an_allowance_of_anything_but_whole_minor_units_is_refused_and_stores_nothing(
    memory_ledger: Ledger, amounts: dict[str, object], count: object
) -> None:
    """Money is whole minor units: an allowance's amounts and count that are not plain
    integers are refused as invalid, nothing recorded, like a record's amounts."""
    shop(memory_ledger)
    before = memory_ledger.last_position()
    with pytest.raises(LedgerError) as refused:
        memory_ledger.allow("tmr_1", "tml_1", amounts, count, UNTIL, at=AT)  # type: ignore[arg-type]
    assert refused.value.code is Code.INVALID_VALUE
    assert memory_ledger.last_position() == before


def test_the_same_allowance_request_again_stores_nothing_and_gets_the_same_answer(
    ledger: Ledger,
) -> None:
    """A request is its device, location and `at`: asked again (a retry after a lost answer)
    it is answered as the first time, nothing stored, even after the device was granted a
    newer allowance."""
    shop(ledger)
    first = ledger.allow("tmr_1", "tml_1", {"usd": 12_000}, 3, UNTIL, at=AT)
    before = ledger.last_position()
    assert ledger.allow("tmr_1", "tml_1", {"usd": 12_000}, 3, UNTIL, at=AT) == first
    assert ledger.last_position() == before
    later = AT + timedelta(minutes=1)
    ledger.allow("tmr_1", "tml_1", {"usd": 1_000}, 1, UNTIL, at=later)
    after = ledger.last_position()
    again = ledger.allow("tmr_1", "tml_1", {"usd": 12_000}, 3, UNTIL, at=AT)
    assert (again.granted_at, again.amounts, again.count) == (AT, {"usd": 10_000}, 3)
    assert again.valid_until == later  # the newer grant ended it
    assert ledger.last_position() == after
    # Another device, or another moment, is another request.
    ledger.allow("tmr_2", "tml_1", {"usd": 100}, 1, UNTIL, at=AT)
    assert ledger.last_position() > after
    after = ledger.last_position()
    ledger.allow("tmr_1", "tml_1", {"usd": 12_000}, 3, UNTIL, at=AT + timedelta(minutes=2))
    assert ledger.last_position() > after


@pytest.mark.parametrize(
    ("amounts", "count", "until", "field"),
    [
        ({"usd": 11_000}, 3, UNTIL, "amounts.usd"),
        ({"usd": 12_000, "eur": 1}, 3, UNTIL, "amounts.eur"),
        ({"usd": 12_000}, 4, UNTIL, "count"),
        ({"usd": 12_000}, 3, UNTIL + timedelta(hours=1), "valid_until"),
    ],
    ids=["amount", "currency", "count", "valid-until"],
)
def test_the_same_allowance_request_with_other_content_is_a_conflict_and_stores_nothing(
    ledger: Ledger, amounts: dict[str, int], count: int, until: object, field: str
) -> None:
    shop(ledger)
    ledger.allow("tmr_1", "tml_1", {"usd": 12_000}, 3, UNTIL, at=AT)
    before = ledger.last_position()
    with pytest.raises(LedgerError) as conflict:
        ledger.allow("tmr_1", "tml_1", amounts, count, until, at=AT)  # type: ignore[arg-type]
    assert conflict.value.code is Code.IDEMPOTENCY_CONFLICT
    assert conflict.value.field == field
    assert "tmr_1" in str(conflict.value) and field in str(conflict.value)
    assert ledger.last_position() == before
