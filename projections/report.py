"""The reconciliation report as data: its rows, categories and totals.

`projections.reconciliation` builds a `Report` from the read models; the modules in
`projections/formats/` render it (CSV, JSON, HTML, terminal table). Every total here is
derived from the rows, so a summary can never disagree with them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from projections.stripe_side import PayoutPart


class Category(StrEnum):
    MATCHED = "matched"
    PENDING_FORWARD = "pending_forward"
    STALE_FORWARD = "stale_forward"
    AWAITING_CAPTURE = "awaiting_capture"
    CAPTURE_OVERDUE = "capture_overdue"
    DECLINED = "declined"
    DUPLICATE = "duplicate"
    AMOUNT_MISMATCH = "amount_mismatch"
    MISSING_IN_STRIPE = "missing_in_stripe"
    ORPHAN_IN_STRIPE = "orphan_in_stripe"
    CANCELED = "canceled"
    # Taken in full, then given back in full or in part (refunded_amount).
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    # The cardholder disputed it (disputed_amount, dispute_status): still open, lost, or won.
    DISPUTED = "disputed"
    DISPUTE_LOST = "dispute_lost"
    DISPUTE_WON = "dispute_won"


# What finance must act on, most urgent first (the HTML page shows them in this order).
EXCEPTIONS: tuple[Category, ...] = (
    Category.DECLINED,
    Category.DISPUTE_LOST,
    Category.DISPUTED,
    Category.DUPLICATE,
    Category.STALE_FORWARD,
    Category.CAPTURE_OVERDUE,
    Category.AMOUNT_MISMATCH,
    Category.ORPHAN_IN_STRIPE,
    Category.MISSING_IN_STRIPE,
)

# The CSV columns, in order; JSON rows carry the same fields (README documents them).
COLUMNS: tuple[str, ...] = (
    "offline_id",
    "location_id",
    "device_id",
    "amount",
    "currency",
    "category",
    "ledger_status",
    "payment_intent_ids",
    "stripe_amount",
    "stripe_currency",
    "stripe_status",
    "stored_at",
    "forwarded_at",
    "age_hours",
    "amount_at_risk",
    # Stripe's money after the sale: appended, so readers of the earlier columns still work.
    "refunded_amount",
    "disputed_amount",
    "dispute_status",
    "settlement_amount",
    "settlement_currency",
    "stripe_fee",
    "stripe_net",
    "payout_id",
    "payout_date",
    "breaches",  # the codes of the offline rules the payment's facts broke, ";"-joined
)

# Age buckets of the money at risk, as (label, upper bound in hours; None = no bound).
AGE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("< 24 h", 24),
    ("1-2 days", 48),
    ("2-7 days", 168),
    ("> 7 days", None),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One offline_id, or one Stripe PaymentIntent that matches no ledger payment (orphan)."""

    category: Category
    offline_id: str | None  # None for an orphan without metadata.offline_id
    location_id: str | None
    device_id: str | None
    amount: int | None  # the ledger's amount, minor units; None for an orphan
    currency: str | None  # the ledger's currency; None for an orphan
    ledger_status: str | None
    payment_intent_ids: tuple[str, ...]
    stored_at: datetime | None  # UTC
    forwarded_at: datetime | None  # UTC
    age_seconds: int | None  # as_of minus stored_at (or created_at), whole seconds
    amount_at_risk: int  # minor units of `risk_currency`; 0 when nothing is at risk
    # What Stripe took (amount_received once captured), in the currency the customer paid.
    stripe_amount: int | None = None
    stripe_currency: str | None = None
    stripe_status: str | None = None
    refunded_amount: int = 0  # given back by refunds, in stripe_currency
    disputed_amount: int = 0  # withdrawn by a dispute, in stripe_currency
    dispute_status: str | None = None  # Stripe's Dispute.status, or "open"/"won" from a report
    # The charge as it settled, when in another currency than the customer paid.
    settlement_amount: int | None = None
    settlement_currency: str | None = None
    stripe_fee: int | None = None  # Stripe's fees on all its movements, settlement currency
    stripe_net: int | None = None
    payout_id: str | None = None  # the automatic payout the charge landed in (po_...)
    payout_at: datetime | None = None  # when that payout reached the bank (UTC)
    payouts: tuple[PayoutPart, ...] = ()  # what the payment added to each payout
    # The codes of the offline rules the payment's facts broke (a reader stored it beyond a
    # limit, a card rule...): recorded facts, flagged for review.
    breaches: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.breaches)

    @property
    def risk_currency(self) -> str | None:
        return self.currency or self.stripe_currency

    @property
    def age_hours(self) -> str | None:
        """Hours with one decimal, as text (computed from whole seconds, no float)."""
        if self.age_seconds is None:
            return None
        tenths = (self.age_seconds * 10 + 1800) // 3600
        return f"{tenths // 10}.{tenths % 10}"

    @property
    def day(self) -> str | None:
        """The UTC day the sale was stored (or forwarded), for per-day totals."""
        when = self.stored_at or self.forwarded_at
        return when.date().isoformat() if when else None


@dataclass(frozen=True)
class Totals:
    count: int = 0
    amount: int = 0  # minor units

    def plus(self, amount: int) -> Totals:
        return Totals(self.count + 1, self.amount + amount)


@dataclass(frozen=True)
class PayoutTotals:
    payout_id: str
    payout_at: datetime | None
    currency: str
    payments: int = 0
    gross: int = 0
    fees: int = 0
    refunds: int = 0
    disputes: int = 0
    net: int = 0

    def plus(self, part: PayoutPart) -> PayoutTotals:
        return PayoutTotals(
            self.payout_id,
            self.payout_at or part.payout_at,
            self.currency,
            self.payments + 1,
            self.gross + part.gross,
            self.fees + part.fees,
            self.refunds + part.refunds,
            self.disputes + part.disputes,
            self.net + part.net,
        )


# {group: {currency: Totals}}; a row without a currency counts under "".
Breakdown = dict[str, dict[str, Totals]]


@dataclass(frozen=True)
class Report:
    as_of: datetime  # UTC
    rows: list[Row]
    filters: dict[str, str] = field(default_factory=dict)  # location, since, until as given
    # The thresholds the categories were decided with, for readers: {"stale_after_hours": "24"}
    thresholds: dict[str, str] = field(default_factory=dict)

    def summary(self) -> Breakdown:
        """Per category and currency: the count of rows and the sum of their amounts (the
        ledger's amount, or Stripe's for an orphan)."""
        return self._breakdown(lambda row: row.category.value, _row_amount)

    def at_risk(self) -> dict[str, int]:
        """Money at risk per currency (stored, declined, duplicate...: see each row)."""
        totals: dict[str, int] = defaultdict(int)
        for row in self.rows:
            if row.amount_at_risk:
                totals[row.risk_currency or ""] += row.amount_at_risk
        return dict(sorted(totals.items()))

    def stored_beyond_policy(self) -> dict[str, int]:
        """Money per currency of the payments stored offline although a rule or limit said
        no (flagged rows that were stored), whatever became of them since."""
        totals: dict[str, int] = defaultdict(int)
        for row in self.rows:
            if row.flagged and row.stored_at is not None and row.amount is not None:
                totals[row.currency or ""] += row.amount
        return dict(sorted(totals.items()))

    def at_risk_by_age(self) -> Breakdown:
        """Money at risk per age bucket and currency."""
        return self._breakdown(
            _age_bucket, lambda row: row.amount_at_risk, only=lambda row: row.amount_at_risk > 0
        )

    def by_location(self) -> Breakdown:
        return self._breakdown(lambda row: row.location_id or "(unknown)", _row_amount)

    def by_device(self) -> Breakdown:
        return self._breakdown(lambda row: row.device_id or "(unknown)", _row_amount)

    def payouts(self) -> list[PayoutTotals]:
        """Per payout and settlement currency, what the report's payments put in it: gross
        charged, fees, refunds, disputes and net, to tie a shop's day to its bank deposit."""
        totals: dict[tuple[str, str], PayoutTotals] = {}
        for row in self.rows:
            for part in row.payouts:
                key = (part.payout_id, part.currency)
                known = totals.get(key, PayoutTotals(part.payout_id, part.payout_at, part.currency))
                totals[key] = known.plus(part)
        return [totals[key] for key in sorted(totals)]

    def by_day(self) -> Breakdown:
        return self._breakdown(lambda row: row.day or "(unknown)", _row_amount)

    def _breakdown(
        self,
        key: Callable[[Row], str],
        amount: Callable[[Row], int],
        only: Callable[[Row], bool] = lambda row: True,
    ) -> Breakdown:
        groups: dict[str, dict[str, Totals]] = defaultdict(dict)
        for row in self.rows:
            if not only(row):
                continue
            currency = row.risk_currency or ""
            group = groups[key(row)]
            group[currency] = group.get(currency, Totals()).plus(amount(row))
        return {name: dict(sorted(groups[name].items())) for name in sorted(groups)}


def _row_amount(row: Row) -> int:
    if row.amount is not None:
        return row.amount
    return row.stripe_amount or 0


def _age_bucket(row: Row) -> str:
    hours = (row.age_seconds or 0) // 3600
    for label, bound in AGE_BUCKETS:
        if bound is None or hours < bound:
            return label
    raise AssertionError("the last bucket has no bound")
