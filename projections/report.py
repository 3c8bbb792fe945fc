"""The reconciliation report as data: its rows, categories and totals.

`projections.reconciliation` builds a `Report` from the read models; the modules in
`projections/formats/` render it (CSV, JSON, HTML, terminal table). A report read from the
database streams its rows (a million of them never sit in memory) and carries the totals the
database computed over the same rows; a report made of a list of rows (tests, examples)
computes them here, by the same definitions (`ReportTotals.of`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import TextIO

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


# What finance must act on, in the order the report lists it: what can still be saved
# first. An authorization about to lapse must be captured and a payment stored on a reader
# for too long forwarded before they are lost; an open dispute answered before Stripe's
# deadline; then money to give back or find (a duplicate charge, a payment Stripe lacks, an
# amount Stripe took differently, Stripe's payment without a sale); last, what is already
# lost (a decline, a lost dispute).
EXCEPTIONS: tuple[Category, ...] = (
    Category.CAPTURE_OVERDUE,
    Category.STALE_FORWARD,
    Category.DISPUTED,
    Category.DUPLICATE,
    Category.MISSING_IN_STRIPE,
    Category.AMOUNT_MISMATCH,
    Category.ORPHAN_IN_STRIPE,
    Category.DECLINED,
    Category.DISPUTE_LOST,
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
    # The card's brand (visa, mastercard...) as the ledger or Stripe recorded it; a streamed
    # row carries none until `Report.branded` looks it up.
    card_brand: str | None = None
    # When the sale began: stored on the reader, else created (for an orphan, when Stripe
    # created it); `age_seconds` counts from it.
    began_at: datetime | None = None

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
        """The UTC day the sale was stored, else forwarded, else began (an orphan's, or a sale
        canceled before it was stored), for per-day totals."""
        when = self.stored_at or self.forwarded_at or self.began_at
        return when.date().isoformat() if when else None


@dataclass(frozen=True)
class Totals:
    """A group's rows in one currency: how many, the sum of their amounts and, for the
    breakdowns of the HTML page, how many need action, the amount matched and at risk."""

    count: int = 0
    amount: int = 0  # minor units
    exceptions: int = 0
    matched: int = 0  # minor units
    at_risk: int = 0  # minor units

    def plus(self, amount: int, row: Row | None = None) -> Totals:
        if row is None:
            return Totals(self.count + 1, self.amount + amount)
        return Totals(
            self.count + 1,
            self.amount + amount,
            self.exceptions + (row.category in EXCEPTIONS),
            self.matched + (_row_amount(row) if row.category == Category.MATCHED else 0),
            self.at_risk + row.amount_at_risk,
        )


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
class ReportTotals:
    """Every total of a report; `of` computes them from rows, the database computes the
    same from SQL (`projections.report_sql.totals_query`)."""

    summary: Breakdown  # per category
    at_risk_by_age: Breakdown  # rows with money at risk: their count and the amount at risk
    by_location: Breakdown
    by_device: Breakdown
    by_day: Breakdown
    stored_beyond_policy: dict[str, int]
    flagged: int
    payouts: list[PayoutTotals]

    @classmethod
    def of(cls, rows: Iterable[Row]) -> ReportTotals:
        groups: dict[str, Callable[[Row], str]] = {
            "summary": lambda row: row.category.value,
            "by_location": lambda row: row.location_id or "(unknown)",
            "by_device": lambda row: row.device_id or "(unknown)",
            "by_day": lambda row: row.day or "(unknown)",
        }
        found: dict[str, dict[str, dict[str, Totals]]] = {
            name: defaultdict(dict) for name in [*groups, "at_risk_by_age"]
        }
        beyond: dict[str, int] = defaultdict(int)
        flagged = 0
        payouts: dict[tuple[str, str], PayoutTotals] = {}
        for row in rows:
            currency = row.risk_currency or ""
            for name, group_of in groups.items():
                group = found[name][group_of(row)]
                group[currency] = group.get(currency, Totals()).plus(_row_amount(row), row)
            if row.amount_at_risk > 0:
                group = found["at_risk_by_age"][_age_bucket(row)]
                group[currency] = group.get(currency, Totals()).plus(row.amount_at_risk)
            if row.flagged:
                flagged += 1
                if row.stored_at is not None and row.amount is not None:
                    beyond[row.currency or ""] += row.amount
            for part in row.payouts:
                payout = (part.payout_id, part.currency)
                known = payouts.get(
                    payout, PayoutTotals(part.payout_id, part.payout_at, part.currency)
                )
                payouts[payout] = known.plus(part)
        return cls(
            **{name: _sorted(breakdown) for name, breakdown in found.items()},
            stored_beyond_policy=dict(sorted(beyond.items())),
            flagged=flagged,
            payouts=[payouts[payout] for payout in sorted(payouts)],
        )


@dataclass(frozen=True)
class Report:
    as_of: datetime  # UTC
    # A list, or the database's rows streamed in order (`projections.reconciliation`): read
    # them once.
    rows: Iterable[Row]
    filters: dict[str, str] = field(default_factory=dict)  # location, since, until as given
    # The thresholds the categories were decided with, for readers: {"stale_after_hours": "24"}
    thresholds: dict[str, str] = field(default_factory=dict)
    # How the database counts the totals, asked once when first needed (a CSV needs none);
    # without it they are computed from `rows`.
    counted: Callable[[], ReportTotals] | None = field(default=None, compare=False)
    # The card brand of each offline_id given (those known), for rows that carry none: the
    # report's statements leave the brand out, so the few rows that need it (those with money
    # at risk) look it up afterwards.
    card_brands: Callable[[list[str]], dict[str, str]] | None = field(default=None, compare=False)
    # The CSV's lines after the header, written by the database straight into a file (all of
    # them, once, instead of reading `rows`); without it the CSV is written from `rows`.
    csv_lines: Callable[[TextIO], None] | None = field(default=None, compare=False)

    @cached_property
    def totals(self) -> ReportTotals:
        return self.counted() if self.counted is not None else ReportTotals.of(self.rows)

    def branded(self, rows: list[Row]) -> list[Row]:
        """`rows` with their card brand, looked up (`card_brands`) where a row has none.
        Call it once the rows have been read: the lookup is a statement of its own."""
        wanted = [row.offline_id for row in rows if row.offline_id and row.card_brand is None]
        if self.card_brands is None or not wanted:
            return rows
        brands = self.card_brands(wanted)
        return [
            replace(row, card_brand=brands[row.offline_id])
            if row.offline_id in brands and row.card_brand is None
            else row
            for row in rows
        ]

    def row_count(self) -> int:
        return sum(t.count for by_currency in self.summary().values() for t in by_currency.values())

    def summary(self) -> Breakdown:
        """Per category and currency: the count of rows and the sum of their amounts (the
        ledger's amount, or Stripe's for an orphan)."""
        return self.totals.summary

    def at_risk(self) -> dict[str, int]:
        """Money at risk per currency (stored, declined, duplicate...: see each row)."""
        totals: dict[str, int] = defaultdict(int)
        for by_currency in self.totals.at_risk_by_age.values():
            for currency, sums in by_currency.items():
                totals[currency] += sums.amount
        return dict(sorted(totals.items()))

    def stored_beyond_policy(self) -> dict[str, int]:
        """Money per currency of the payments stored offline although a rule or limit said
        no (flagged rows that were stored), whatever became of them since."""
        return self.totals.stored_beyond_policy

    def flagged(self) -> int:
        """Rows whose payment broke an offline rule (`breaches`)."""
        return self.totals.flagged

    def at_risk_by_age(self) -> Breakdown:
        """Money at risk per age bucket and currency."""
        return self.totals.at_risk_by_age

    def by_location(self) -> Breakdown:
        return self.totals.by_location

    def by_device(self) -> Breakdown:
        return self.totals.by_device

    def payouts(self) -> list[PayoutTotals]:
        """Per payout and settlement currency, what the report's payments put in it: gross
        charged, fees, refunds, disputes and net, to tie a shop's day to its bank deposit."""
        return self.totals.payouts

    def by_day(self) -> Breakdown:
        return self.totals.by_day


def _sorted(groups: dict[str, dict[str, Totals]]) -> Breakdown:
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
