"""Reconciliation: each offline_id matched to its Stripe PaymentIntents, in one category.

A pure function of two read models (payments, Stripe observations) and a moment `as_of`: the
categories that depend on time (stale, capture overdue) are evaluated at `as_of`, so the same
data and the same `as_of` always give the same report.

Matching: a Stripe payment (a PaymentIntent with its charges, balance transactions, refunds and
disputes, `projections.stripe_side`) belongs to a payment when its PaymentIntent is one the
ledger recorded for it (forwarded, declined, duplicate) or when its `metadata.offline_id` is
the payment's offline_id. Every other Stripe payment that carries an offline_id, or whose charge
was collected offline, is an orphan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from ledger.payment import Status
from projections.report import Category, Report, Row
from projections.stripe_side import DISPUTE_LOST, StripePayment, StripeSide
from projections.tables import naive_utc, payments

_STREAM_ROWS = 5_000  # rows fetched at a time from the database

# Stripe statuses in which a PaymentIntent holds or took no money.
_NO_MONEY = frozenset({"canceled", "requires_payment_method", "requires_action"})
# ...and in which it waits for the cardholder (to authenticate, to confirm): not forwarded.
_AWAITING_CUSTOMER = frozenset({"requires_action", "requires_confirmation"})


@dataclass(frozen=True)
class Thresholds:
    """When a stored payment is stale and when an authorization must be captured.

    Card-present authorizations lapse: Visa after about 5 days (4 days 18 hours),
    Mastercard, Amex and Discover after about 2 days. A capture is overdue once
    `capture_warning` or less is left before that.
    """

    stale_after: timedelta = timedelta(hours=24)
    capture_windows: Mapping[str, timedelta] = field(
        default_factory=lambda: {"visa": timedelta(days=4, hours=18)}
    )
    capture_window_default: timedelta = timedelta(days=2)
    capture_warning: timedelta = timedelta(hours=12)

    def as_dict(self) -> dict[str, str]:
        hours = {
            "stale_after_hours": self.stale_after,
            "capture_window_default_hours": self.capture_window_default,
            "capture_warning_hours": self.capture_warning,
        }
        hours |= {
            f"capture_window_{brand}_hours": window
            for brand, window in sorted(self.capture_windows.items())
        }
        return {name: _hours(span) for name, span in hours.items()}

    def capture_deadline(self, authorized_at: datetime, brand: str | None) -> datetime:
        window = self.capture_windows.get(brand or "", self.capture_window_default)
        return authorized_at + window - self.capture_warning


@dataclass(frozen=True)
class Filters:
    location_id: str | None = None
    since: datetime | None = None  # UTC, inclusive: stored_at (else created_at) >= since
    until: datetime | None = None  # UTC, exclusive

    def as_dict(self) -> dict[str, str]:
        shown = {"location": self.location_id, "since": self.since, "until": self.until}
        return {
            k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in shown.items()
            if v is not None
        }

    def admit(self, when: datetime | None, location_id: str | None) -> bool:
        if self.location_id is not None and location_id != self.location_id:
            return False
        if when is None:
            return self.since is None and self.until is None
        return (self.since is None or when >= naive_utc(self.since)) and (
            self.until is None or when < naive_utc(self.until)
        )


def build_report(
    conn: Connection, as_of: datetime, thresholds: Thresholds, filters: Filters
) -> Report:
    """The report at `as_of` (aware), from the read models as they are now.

    Payments are streamed in offline_id order; Stripe's side is assembled first
    (`projections.stripe_side`), each PaymentIntent with everything linked to it, so that one
    payment is counted once whichever ids Stripe's files and events named it by.
    """
    now = naive_utc(as_of)
    side = StripeSide(conn)
    rows: list[Row] = []
    claimed: dict[str, None] = {}
    offline_ids: dict[str, None] = {}
    names = [column.name for column in payments.columns]
    query = select(payments).order_by(payments.c.offline_id)
    for found in conn.execution_options(yield_per=_STREAM_ROWS).execute(query):
        payment = dict(zip(names, found, strict=True))
        seen = side.for_payment(payment["offline_id"], _ledger_payment_intents(payment))
        offline_ids[payment["offline_id"]] = None
        claimed.update((s.key, None) for s in seen)
        claimed.update((side.resolve(pi), None) for pi in _ledger_payment_intents(payment))
        if filters.admit(payment["stored_at"] or payment["created_at"], payment["location_id"]):
            rows.append(_payment_row(payment, seen, now, thresholds))
    if filters.location_id is None:  # an orphan has no location
        for orphan in side.orphans(claimed, offline_ids):
            if filters.admit(orphan.created_at, None):
                rows.append(_orphan_row(orphan, now))
    return Report(
        as_of=now.replace(tzinfo=UTC),
        rows=rows,
        filters=filters.as_dict(),
        thresholds=thresholds.as_dict(),
    )


def _ledger_payment_intents(payment: Mapping[str, Any]) -> list[str]:
    duplicates = [i for i in payment["duplicate_payment_intent_ids"].split(";") if i]
    return [i for i in [payment["payment_intent_id"], *duplicates] if i]


def _payment_row(
    payment: Mapping[str, Any], seen: list[StripePayment], now: datetime, thresholds: Thresholds
) -> Row:
    pis = sorted({*_ledger_payment_intents(payment), *(s.key for s in seen)})
    primary = _primary(payment, seen)
    category, at_risk = _categorize(payment, seen, primary, now, thresholds)
    began = payment["stored_at"] or payment["created_at"]
    return Row(
        category=category,
        offline_id=payment["offline_id"],
        location_id=payment["location_id"],
        device_id=payment["device_id"],
        amount=payment["amount"],
        currency=payment["currency"],
        ledger_status=payment["status"],
        payment_intent_ids=tuple(pis),
        stored_at=_aware(payment["stored_at"]),
        forwarded_at=_aware(payment["forwarded_at"]),
        age_seconds=max(0, int((now - began).total_seconds())),
        amount_at_risk=at_risk,
        **_stripe_fields(primary),
        breaches=tuple(code for code in payment["breaches"].split(";") if code),
    )


def _stripe_fields(primary: StripePayment | None) -> dict[str, Any]:
    """The row's columns that say what Stripe holds: amounts, refunds, disputes, settlement,
    fees, payout."""
    if primary is None:
        return {}
    disputed, dispute_status = primary.dispute
    settlement = primary.settlement
    payout_id, payout_at = primary.payout
    return {
        "stripe_amount": _stripe_amount(primary),
        "stripe_currency": primary.currency,
        "stripe_status": _stripe_status(primary),
        "refunded_amount": primary.refunded,
        "disputed_amount": disputed,
        "dispute_status": dispute_status,
        "settlement_amount": settlement[0] if settlement else None,
        "settlement_currency": settlement[1] if settlement else None,
        "stripe_fee": primary.fees,
        "stripe_net": primary.net,
        "payout_id": payout_id,
        "payout_at": _aware(payout_at),
        "payouts": primary.payout_parts(),
    }


def _primary(payment: Mapping[str, Any], seen: list[StripePayment]) -> StripePayment | None:
    """Stripe's payment for the PaymentIntent the ledger holds, else the first one seen."""
    for s in seen:
        if payment["payment_intent_id"] == s.key:
            return s
    return seen[0] if seen else None


def _categorize(
    payment: Mapping[str, Any],
    seen: list[StripePayment],
    primary: StripePayment | None,
    now: datetime,
    thresholds: Thresholds,
) -> tuple[Category, int]:
    amount, status = payment["amount"], payment["status"]
    # PaymentIntents that hold or took money: live on Stripe, or known only to the ledger.
    live = [s for s in seen if _stripe_status(s) not in _NO_MONEY]
    observed = {s.key for s in seen}
    unseen = {
        i
        for i in _ledger_payment_intents(payment)
        if i not in observed and status != Status.DECLINED
    }
    # A charge no link ties to its PaymentIntent yet (a report without payment_intent_id)
    # may be the charge of a PaymentIntent the ledger holds and Stripe's data does not show:
    # it counts as a second payment only beyond those.
    unlinked = sum(not s.key.startswith("pi_") for s in live)
    payments_taken = sum(s.key.startswith("pi_") for s in live) + max(unlinked, len(unseen))
    if status == Status.CANCELED and not live:
        return Category.CANCELED, 0
    if payments_taken > 1 or payment["duplicate_refund_amount"]:
        extra = sum(_stripe_amount(s) or amount for s in live[1:])
        return Category.DUPLICATE, max(payment["duplicate_refund_amount"], extra)
    if status == Status.DECLINED or (primary is not None and _is_declined(primary)):
        return Category.DECLINED, amount
    if primary is not None and _stripe_status(primary) in _AWAITING_CUSTOMER:
        primary = None  # Stripe holds nothing yet: as if it had not seen the payment
    if primary is None:
        if payment["payment_intent_id"] is not None:
            return Category.MISSING_IN_STRIPE, amount
        stale = now - (payment["stored_at"] or payment["created_at"]) >= thresholds.stale_after
        if status != Status.STORED:
            # Never confirmed offline (e.g. refused by an offline rule): still being sold, or
            # abandoned once stale. Nothing was stored, so nothing is at risk.
            return (Category.CANCELED if stale else Category.PENDING_FORWARD), 0
        return (Category.STALE_FORWARD if stale else Category.PENDING_FORWARD), amount
    stripe_status = _stripe_status(primary)
    # What Stripe took against what the ledger expects it to have taken: a capture (partial
    # or whole) once Stripe says the money was received, the authorization before.
    expected = payment["amount_captured"] or amount
    stripe_amount = _stripe_amount(primary)
    if stripe_status == "requires_capture":
        expected = amount
    if primary.currency != payment["currency"]:
        return Category.AMOUNT_MISMATCH, amount
    # Only a refund or a dispute seen so far says nothing of the amount taken: no mismatch.
    if stripe_amount is not None and stripe_amount != expected:
        return Category.AMOUNT_MISMATCH, abs(expected - stripe_amount)
    if stripe_status == "canceled":
        return Category.CANCELED, 0
    if stripe_status == "requires_capture":
        authorized_at = payment["forwarded_at"] or primary.created_at or payment["created_at"]
        brand = payment["card_brand"] or primary.first("card_brand")
        if now >= thresholds.capture_deadline(authorized_at, brand):
            return Category.CAPTURE_OVERDUE, amount
        return Category.AWAITING_CAPTURE, 0
    return _after_capture(primary, expected)


def _after_capture(primary: StripePayment, captured: int) -> tuple[Category, int]:
    """A payment Stripe took in full: what happened to the money since (a dispute first,
    since it puts money at risk; then refunds, which the merchant chose)."""
    disputed, dispute_status = primary.dispute
    if dispute_status == DISPUTE_LOST:
        return Category.DISPUTE_LOST, disputed
    if dispute_status == "won":
        return Category.DISPUTE_WON, 0
    if dispute_status is not None:
        return Category.DISPUTED, disputed
    refunded = primary.refunded
    if refunded >= captured > 0:
        return Category.REFUNDED, 0
    if refunded:
        return Category.PARTIALLY_REFUNDED, 0
    return Category.MATCHED, 0


def _hours(span: timedelta) -> str:
    whole, rest = divmod(int(span.total_seconds()), 3600)
    return str(whole) if rest == 0 else f"{whole}.{rest * 10 // 3600}"


def _is_declined(stripe: StripePayment) -> bool:
    snapshot = stripe.snapshot
    if snapshot is None:
        return False
    return snapshot["decline_code"] is not None or snapshot["status"] == "requires_payment_method"


def _stripe_amount(stripe: StripePayment) -> int | None:
    """What Stripe took: a PaymentIntent's `amount_received` once it succeeded (a partial
    capture received less than its `amount`), its `amount` before; from a report alone, the
    charge less any partial-capture reversal."""
    snapshot = stripe.snapshot
    if snapshot is not None:
        if snapshot["status"] == "succeeded" and snapshot["amount_received"] is not None:
            return int(snapshot["amount_received"])
        return int(snapshot["amount"])
    return stripe.charged


def _stripe_status(stripe: StripePayment) -> str | None:
    """The PaymentIntent's status; from a report alone, a charge means it succeeded."""
    snapshot = stripe.snapshot
    if snapshot is not None:
        return str(snapshot["status"])
    charged = stripe.charged
    if charged is not None and charged > 0:
        return "succeeded"
    return None


def _orphan_row(stripe: StripePayment, now: datetime) -> Row:
    created = stripe.created_at
    return Row(
        category=Category.ORPHAN_IN_STRIPE,
        offline_id=stripe.offline_id,
        location_id=None,
        device_id=None,
        amount=None,
        currency=None,
        ledger_status=None,
        payment_intent_ids=(stripe.key,),
        stored_at=None,
        forwarded_at=None,
        age_seconds=max(0, int((now - created).total_seconds())) if created else None,
        amount_at_risk=0,
        **_stripe_fields(stripe),
    )


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None
