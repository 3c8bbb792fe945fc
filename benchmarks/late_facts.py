"""What facts out of the time order cost the limits' judgments.

    python -m benchmarks.late_facts [--payments N] [--repeat N]

A location's stored payments are judged by `occurred_at`, so a fact that comes late judges
again the payments stored after it (`ledger.handlers`). This records the same N payments
(created, collected, confirmed offline) into a new in-memory ledger in three shapes, one
`record_many` each, and prints the CPU time per payment and its ratio to the first:

- in order, a minute apart: the baseline, nothing to judge again;
- all at one moment, as a reader that stamps a whole batch with its upload time does: each
  payment is judged after those that arrived before it, and no earlier one changes;
- in reverse order, a minute apart: every payment comes before all those already stored and
  judges again those it changes, with the location's limits broken from the middle on (each
  breach records the totals it saw, so every later breach changes: quadratic in events).

No database: the domain's own cost. Nothing here asserts a speed; the load average is printed
with the figures.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger import Ledger

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
AMOUNT = 1250
# Stored limits half the day's payments reach: the later half breaks them.
LOCATION = {
    "type": "location.configured",
    "occurred_at": (T0 - timedelta(days=1)).isoformat(),
    "location_id": "tml_bench",
    "offline_enabled": True,
    "sca_required": False,
    "limits": {"per_payment_max": {"usd": 50_000}, "stored_amount_max": {"usd": 0}},
    "device_limits": {"stored_amount_max": {}, "stored_count_max": None},
}
DEVICE = {
    "type": "device.connected_online",
    "occurred_at": (T0 - timedelta(hours=1)).isoformat(),
    "device_id": "tmr_bench",
    "location_id": "tml_bench",
    "reader_type": "bbpos_wisepad3",
    "software_updated_at": (T0 - timedelta(days=1)).isoformat(),
}
CARD = {
    "brand": "visa",
    "network": "visa",
    "last4": "4242",
    "exp_month": 12,
    "exp_year": 2030,
    "funding": "credit",
    "read_method": "contact_emv",
    "cardholder_verification": "offline_pin",
    "country": "US",
}


def payment(moment: datetime) -> list[dict[str, Any]]:
    offline_id, at = str(uuid.uuid4()), moment.isoformat()
    created = {
        "type": "payment.created",
        "occurred_at": at,
        "offline_id": offline_id,
        "device_id": "tmr_bench",
        "location_id": "tml_bench",
        "amount": AMOUNT,
        "currency": "usd",
        "capture_method": "automatic",
        "offline_behavior": "prefer_online",
        "payment_intent_id": None,
        "metadata": {},
    }
    collected = {
        "type": "payment.payment_method_collected",
        "occurred_at": at,
        "offline_id": offline_id,
        "card": CARD,
    }
    confirmed = {
        "type": "payment.confirmed_offline",
        "occurred_at": at,
        "offline_id": offline_id,
        "stored_at": at,
    }
    return [created, collected, confirmed]


def shapes(payments: int) -> dict[str, list[list[dict[str, Any]]]]:
    apart = [payment(T0 + timedelta(minutes=n)) for n in range(payments)]
    return {
        "in order, a minute apart": apart,
        "all at one moment": [payment(T0) for _ in range(payments)],
        "in reverse order": [payment(T0 + timedelta(minutes=n)) for n in range(payments)][::-1],
    }


def cpu_per_payment(payments: list[list[dict[str, Any]]], limit: int, repeat: int) -> float:
    """The best of `repeat` runs, in microseconds of CPU per payment."""
    location = LOCATION | {
        "limits": {"per_payment_max": {"usd": 50_000}, "stored_amount_max": {"usd": limit}}
    }
    records = [record for steps in payments for record in steps]
    best = float("inf")
    for _ in range(repeat):
        with Ledger.open("memory://") as ledger:
            ledger.record_many([location, DEVICE])
            started = time.process_time()
            ledger.record_many(records)
            best = min(best, time.process_time() - started)
    return best / len(payments) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    limit = AMOUNT * args.payments // 2
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print(f"{args.payments:,} payments of {AMOUNT} usd, stored amount limit {limit}")
    baseline = None
    for name, payments in shapes(args.payments).items():
        cost = cpu_per_payment(payments, limit, args.repeat)
        baseline = baseline or cost
        print(f"  {name:26} {cost:9.0f} us CPU/payment  {cost / baseline:6.1f} x in order")


if __name__ == "__main__":
    main()
