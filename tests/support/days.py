"""Small recorded days that unit, service and command-line tests share, so that each is
written once: a what-if day (three sales against a stored-amount limit) and an alerts day (a
payment still stored, one awaiting capture, one forwarded twice).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from ledger import Ledger
from tests.support import records as r

A = "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a01"
B = "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a02"
C = "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a03"
D = "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a04"


def record_day(ledger: Ledger, *, refusal: bool = False) -> None:
    """Three sales of 800, 500 and 300 at a location that may store 1000: the second and the
    third broke the limit; the first was declined at minute 40. With `refusal`, a sale of 400
    asked to reserve at minute 35 (1600 stored: refused, it went online)."""
    limits = {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": 1000}}
    ledger.record(r.location(limits=limits, device_limits={"stored_amount_max": {}}))
    ledger.record(r.device())
    for minute, (oid, amount) in enumerate([(A, 800), (B, 500), (C, 300)]):
        ledger.record(r.created(oid, amount=amount, occurred_at=r.at(10 * minute)))
        ledger.record(r.collected(oid) | {"occurred_at": r.at(10 * minute + 1)})
        ledger.record(
            r.confirmed(oid, occurred_at=r.at(10 * minute + 2), stored_at=r.at(10 * minute + 2))
        )
    if refusal:
        ledger.reserve(D, 400, "usd", "tmr_1", "tml_1", at=datetime.fromisoformat(r.at(35)))
    ledger.record(r.declined(A, occurred_at=r.at(40)))


STORED, AUTHORIZED, TWICE = (str(uuid.uuid4()) for _ in range(3))


def a_day(url: str) -> None:
    """One payment still stored, one authorized awaiting capture, one forwarded twice: all
    recorded on 2026-11-22."""
    with Ledger.open(url) as ledger:
        ledger.record_many([r.location(), r.device()])
        ledger.record_many(r.stored_payment(STORED, amount=4000))
        ledger.record_many(
            [
                *r.stored_payment(AUTHORIZED, amount=2000, capture_method="manual"),
                r.forwarded(AUTHORIZED, "pi_auth", "requires_capture"),
            ]
        )
        ledger.record_many(
            [
                *r.stored_payment(TWICE, amount=1000),
                r.forwarded(TWICE, "pi_first"),
                r.forwarded(TWICE, "pi_second"),
            ]
        )
