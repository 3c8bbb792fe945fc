"""Reservations: the offline decision that holds the headroom, atomically, before the sale.

Granted, it holds the amount against every limit of the location and device until the payment
is confirmed offline, the sale is released, or the hold expires; refused, it says why. The
answer is recorded: a retry of the same request gets it unchanged.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from ledger import Code, Ledger, LedgerError
from tests.support import records as r

AT = r.T0 + timedelta(minutes=1)
LIMIT = 1_000


def shop(ledger: Ledger, *devices: str) -> None:
    limits = {"per_payment_max": {"usd": 5_000}, "stored_amount_max": {"usd": LIMIT}}
    ledger.record(r.location(limits=limits, device_limits={"stored_amount_max": {}}))
    for device_id in devices or ("tmr_1",):
        ledger.record(r.device(device_id))


def new_id() -> str:
    return str(uuid.uuid4())


def test_a_granted_reservation_holds_the_headroom_for_every_device(ledger: Ledger) -> None:
    shop(ledger, "tmr_1", "tmr_2")
    first = ledger.reserve(new_id(), 800, "usd", "tmr_1", "tml_1", at=AT)
    assert (first.granted, first.offline_behavior) == (True, "prefer_online")
    assert first.expires_at == AT + timedelta(minutes=5)

    second = ledger.reserve(new_id(), 300, "usd", "tmr_2", "tml_1", at=AT)
    assert (second.granted, second.offline_behavior) == (False, "require_online")
    assert second.code == Code.STORED_AMOUNT_LIMIT_EXCEEDED
    assert second.reasons[0]["details"]["used"] == 800  # the hold counts
    # decide holds nothing, and says the same as a reservation would.
    assert ledger.decide(amount=300, currency="usd", device_id="tmr_2", location_id="tml_1",
                         at=AT).offline_allowed is False  # fmt: skip


def test_the_same_request_gets_the_same_answer_even_after_the_headroom_changed(
    ledger: Ledger,
) -> None:
    shop(ledger)
    holder, refused_sale = new_id(), new_id()
    ledger.reserve(holder, 800, "usd", "tmr_1", "tml_1", at=AT)
    refused = ledger.reserve(refused_sale, 300, "usd", "tmr_1", "tml_1", at=AT)
    assert not refused.granted

    ledger.release(holder, at=AT + timedelta(seconds=30))  # headroom is free again
    assert ledger.reserve(refused_sale, 300, "usd", "tmr_1", "tml_1", at=AT) == refused
    later = AT + timedelta(minutes=2)
    assert ledger.reserve(refused_sale, 300, "usd", "tmr_1", "tml_1", at=later) == refused
    with pytest.raises(LedgerError) as changed:
        ledger.reserve(refused_sale, 301, "usd", "tmr_1", "tml_1", at=later)
    assert changed.value.code is Code.IDEMPOTENCY_CONFLICT
    # A new sale (a new offline_id) is decided afresh: the released headroom is there.
    assert ledger.reserve(new_id(), 300, "usd", "tmr_1", "tml_1", at=later).granted


def test_the_confirmation_consumes_the_reservation_and_an_expired_one_frees_its_hold(
    ledger: Ledger,
) -> None:
    shop(ledger)
    sale = new_id()
    assert ledger.reserve(sale, 600, "usd", "tmr_1", "tml_1", at=AT).granted
    for record in r.stored_payment(sale, amount=600):  # confirmed at T0 + 2 minutes
        ledger.record(record)
    assert ledger.payment(sale).breaches == []
    (status,) = ledger.status()
    assert status.offline_payment_amounts_by_currency == {"usd": 600}
    # 600 stored, nothing held: 400 is left, not 400 - 600.
    assert ledger.reserve(new_id(), 400, "usd", "tmr_1", "tml_1", at=AT).granted

    abandoned = AT + timedelta(minutes=1)
    assert not ledger.reserve(new_id(), 1, "usd", "tmr_1", "tml_1", at=abandoned).granted
    after_expiry = AT + timedelta(minutes=6)  # the 400 was never confirmed
    assert ledger.reserve(new_id(), 400, "usd", "tmr_1", "tml_1", at=after_expiry).granted


def test_releasing_an_unknown_reservation_is_refused(ledger: Ledger) -> None:
    shop(ledger)
    with pytest.raises(LedgerError) as unknown:
        ledger.release(new_id())
    assert unknown.value.code is Code.UNKNOWN_RESERVATION


def test_threads_racing_for_the_last_headroom_never_overbook(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as setup:
        shop(setup, "tmr_1", "tmr_2", "tmr_3", "tmr_4")
    granted: list[int] = []
    start = threading.Barrier(4)

    def device(number: int) -> None:
        with Ledger.open(sqlite_url) as ledger:
            start.wait()
            for _ in range(10):
                answer = ledger.reserve(new_id(), 70, "usd", f"tmr_{number}", "tml_1", at=AT)
                if answer.granted:
                    granted.append(answer.amount)

    threads = [threading.Thread(target=device, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == LIMIT // 70 * 70  # every slot taken, none twice
