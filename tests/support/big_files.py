"""Inputs of a real merchant's size: a month's itemized balance report (CSV) and a long
JSON Lines file, deterministic, written in constant memory.

The report's columns are those of Stripe's itemized balance change reports
(docs.stripe.com/reports/report-types/balance, "Balance change from activity itemized"), as the
other import tests use them: every tenth payment is refunded in part, so a PaymentIntent's
stream gets more than one row.

    python -m tests.support.big_files report 50000 report.csv
    python -m tests.support.big_files jsonl 1000000 day.jsonl
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPORT_HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
    "source_id,payment_intent_id,charge_id,payment_metadata[offline_id]"
)
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)


def write_report(path: Path, rows: int) -> int:
    """A report of exactly `rows` rows; returns how many name a payment (all of them)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(REPORT_HEADER + "\n")
        written = payment = 0
        while written < rows:
            payment += 1
            at = (MONTH_START + timedelta(seconds=37 * payment)).strftime("%Y-%m-%d %H:%M:%S")
            gross = 500 + payment % 9_000
            fee = 30 + gross * 29 // 1000
            offline_id = uuid.UUID(int=payment, version=4)
            out.write(
                f"txn_c{payment},{at},usd,{gross / 100:.2f},{-fee / 100:.2f},"
                f"{(gross - fee) / 100:.2f},charge,ch_{payment},pi_{payment},ch_{payment},"
                f"{offline_id}\n"
            )
            written += 1
            if payment % 10 == 0 and written < rows:
                out.write(
                    f"txn_r{payment},{at},usd,{-gross / 200:.2f},0.00,{-gross / 200:.2f},"
                    f"refund,re_{payment},pi_{payment},ch_{payment},\n"
                )
                written += 1
    return written


def write_jsonl(path: Path, lines: int) -> int:
    """One location and one reader, then payments created, their card read and confirmed
    offline (three lines each) until `lines` lines; limits far above what the file stores."""
    head = [
        {
            "type": "location.configured",
            "occurred_at": MONTH_START.isoformat(),
            "location_id": "tml_big",
            "offline_enabled": True,
            "limits": {"stored_amount_max": {"usd": 10**15}, "stored_count_max": 1_000_000},
            "device_limits": {"stored_amount_max": {"usd": 10**15}},
        },
        {
            "type": "device.connected_online",
            "occurred_at": MONTH_START.isoformat(),
            "device_id": "tmr_big",
            "location_id": "tml_big",
        },
    ]
    with path.open("w", encoding="utf-8") as out:
        for record in head:
            out.write(json.dumps(record) + "\n")
        written, payment = len(head), 0
        while written < lines:
            payment += 1
            at = (MONTH_START + timedelta(seconds=payment)).isoformat()
            offline_id = str(uuid.UUID(int=payment, version=4))
            created = {
                "type": "payment.created",
                "occurred_at": at,
                "offline_id": offline_id,
                "device_id": "tmr_big",
                "location_id": "tml_big",
                "amount": 100 + payment % 5_000,
                "currency": "usd",
            }
            collected = {
                "type": "payment.payment_method_collected",
                "occurred_at": at,
                "offline_id": offline_id,
                "card": {
                    "brand": "visa",
                    "last4": "4242",
                    "exp_month": 12,
                    "exp_year": 2030,
                    "read_method": "contact_emv",
                },
            }
            confirmed = {
                "type": "payment.confirmed_offline",
                "occurred_at": at,
                "offline_id": offline_id,
                "stored_at": at,
            }
            for record in (created, collected, confirmed)[: lines - written]:
                out.write(json.dumps(record) + "\n")
                written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["report", "jsonl"])
    parser.add_argument("count", type=int)
    parser.add_argument("path", type=Path)
    args = parser.parse_args()
    write = write_report if args.kind == "report" else write_jsonl
    print(write(args.path, args.count))


if __name__ == "__main__":
    main()
