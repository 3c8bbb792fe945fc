"""Stripe's side of each payment: the words the report reads it by.

Stripe names one payment by several ids: the PaymentIntent (`pi_`), its charges (`ch_`, `py_`),
their balance transactions (`txn_`), refunds (`re_`) and disputes (`dp_`). A report without the
optional `payment_intent_id` column names charges only; a default-column report names balance
transactions only. Everything is folded onto its PaymentIntent through `stripe_links` (learnt
from expanded PaymentIntents, report rows naming both, webhooks), so one payment is counted
once whatever ids its sources used (`projections.report_sql` does the folding).

Amounts are in minor units. A settlement in another currency is read in the currency the
customer paid (`customer_facing_amount`/`customer_facing_currency`), the currency the ledger
holds, with the settled amount kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Stripe's reporting categories (BalanceTransaction.reporting_category).
CHARGED = frozenset({"charge", "payment", "partial_capture_reversal"})
REFUNDED = frozenset({"refund", "payment_refund", "refund_failure"})
DISPUTED = frozenset({"dispute", "dispute_reversal"})
FAILED = frozenset({"charge_failure", "payment_failure"})
# Dispute.status values (Stripe's OpenAPI spec, component `dispute`, field `status`).
DISPUTE_LOST = "lost"
DISPUTE_WON = frozenset({"won", "warning_closed", "prevented"})


@dataclass(frozen=True)
class PayoutPart:
    """What one payment's movements added to one payout, in the settlement currency."""

    payout_id: str
    payout_at: datetime | None
    currency: str
    gross: int = 0  # charges
    fees: int = 0
    refunds: int = 0  # negative
    disputes: int = 0  # negative (won back: positive)
    net: int = 0
