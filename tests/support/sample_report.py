"""A sample reconciliation report with a row of every category, in several currencies (zero,
two and three decimals), an orphan, a duplicate and a location id that is HTML: the report
formats' unit tests and the browser test render it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from projections.report import Category, Report, Row
from projections.stripe_side import PayoutPart

AS_OF = datetime(2026, 11, 23, 12, 45, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"


def sale(category: Category, number: int, amount: int, currency: str, **changes: Any) -> Row:
    """A ledger payment stored `age_hours` (default 26.5) before AS_OF on tmr_1 at loc_1."""
    age_seconds = changes.pop("age_seconds", 95_400)
    row = Row(
        category=category,
        offline_id=f"00000000-0000-4000-8000-{number:012d}",
        location_id="loc_1",
        device_id="tmr_1",
        amount=amount,
        currency=currency,
        ledger_status="forwarded",
        payment_intent_ids=(f"pi_{number}",),
        stripe_amount=amount,
        stripe_currency=currency,
        stripe_status="succeeded",
        stored_at=AS_OF - timedelta(seconds=age_seconds),
        forwarded_at=None,
        age_seconds=age_seconds,
        amount_at_risk=0,
    )
    return replace(row, **changes)


ORPHAN = Row(
    category=Category.ORPHAN_IN_STRIPE,
    offline_id=None,
    location_id=SCRIPT,
    device_id=None,
    amount=None,
    currency=None,
    ledger_status=None,
    payment_intent_ids=("pi_orphan",),
    stripe_amount=700,
    stripe_currency="usd",
    stripe_status="succeeded",
    stored_at=None,
    forwarded_at=None,
    age_seconds=None,
    amount_at_risk=0,
)

DUPLICATE = sale(
    Category.DUPLICATE,
    7,
    1250,
    "usd",
    payment_intent_ids=("pi_7a", "pi_7b"),
    stored_at=datetime(2026, 11, 22, 10, 15, tzinfo=UTC),
    forwarded_at=datetime(2026, 11, 22, 12, 20, 30, tzinfo=timezone(timedelta(hours=2))),
    age_seconds=95_400,
    amount_at_risk=1250,
)

# Refunds and disputes, at another location and three days earlier, so the sections that
# count the older rows are unchanged by them.
LATER: dict[str, Any] = {"location_id": "loc_3", "device_id": "tmr_3", "age_seconds": 72 * 3600}

ROWS = [
    sale(Category.MATCHED, 1, 1250, "usd"),
    sale(Category.MATCHED, 2, 4999, "eur", location_id="loc_2", device_id="tmr_2"),
    sale(
        Category.PENDING_FORWARD,
        3,
        1000,
        "jpy",
        ledger_status="stored",
        payment_intent_ids=(),
        stripe_amount=None,
        stripe_currency=None,
        stripe_status=None,
        age_seconds=7_200,
        amount_at_risk=1000,
    ),
    sale(
        Category.STALE_FORWARD,
        4,
        1250,
        "kwd",
        ledger_status="stored",
        payment_intent_ids=(),
        stripe_amount=None,
        stripe_currency=None,
        stripe_status=None,
        age_seconds=30 * 3600,
        amount_at_risk=1250,
    ),
    sale(Category.AWAITING_CAPTURE, 5, 2000, "usd", stripe_status="requires_capture"),
    sale(
        Category.CAPTURE_OVERDUE,
        6,
        3000,
        "usd",
        stripe_status="requires_capture",
        age_seconds=6 * 24 * 3600,
        forwarded_at=AS_OF - timedelta(days=5),  # Visa's 114 hours ended 6 hours ago
        card_brand="visa",
        amount_at_risk=3000,
    ),
    DUPLICATE,
    sale(
        Category.DECLINED,
        8,
        500,
        "usd",
        ledger_status="declined",
        stripe_status="requires_payment_method",
        age_seconds=3 * 24 * 3600,
        card_brand="mastercard",
        amount_at_risk=500,
    ),
    sale(Category.AMOUNT_MISMATCH, 9, 2000, "eur", stripe_amount=2100, amount_at_risk=100),
    sale(
        Category.MISSING_IN_STRIPE,
        10,
        500,
        "jpy",
        payment_intent_ids=("pi_10",),
        stripe_amount=None,
        stripe_currency=None,
        stripe_status=None,
        amount_at_risk=500,
    ),
    ORPHAN,
    sale(
        Category.CANCELED,
        11,
        999,
        "usd",
        ledger_status="canceled",
        stripe_status="canceled",
        age_seconds=9 * 24 * 3600,
    ),
    sale(
        Category.REFUNDED, 12, 1500, "usd", **LATER, ledger_status="captured", refunded_amount=1500
    ),
    sale(Category.PARTIALLY_REFUNDED, 13, 1500, "usd", **LATER, refunded_amount=300),
    sale(
        Category.DISPUTED,
        14,
        2500,
        "usd",
        **LATER,
        disputed_amount=2500,
        dispute_status="needs_response",
        amount_at_risk=2500,
    ),
    sale(
        Category.DISPUTE_LOST,
        15,
        800,
        "eur",
        **LATER,
        disputed_amount=800,
        dispute_status="lost",
        amount_at_risk=800,
        settlement_amount=880,
        settlement_currency="usd",
        stripe_fee=-1500,
        stripe_net=-2380,
        payout_id="po_1",
        payout_at=datetime(2026, 11, 24, tzinfo=UTC),
        payouts=(
            PayoutPart(
                "po_1", datetime(2026, 11, 24, tzinfo=UTC), "usd", 880, -1526, 0, -880, -1526
            ),
        ),
    ),
    sale(Category.DISPUTE_WON, 16, 900, "usd", **LATER, disputed_amount=900, dispute_status="won"),
]

THRESHOLDS = {
    "stale_after_hours": "24",
    "capture_window_default_hours": "48",
    "capture_warning_hours": "12",
    "capture_window_visa_hours": "114",
}
REPORT = Report(AS_OF, ROWS, {"location": "loc_1", "since": "2026-11-01"}, THRESHOLDS)
EMPTY = Report(AS_OF, [])
