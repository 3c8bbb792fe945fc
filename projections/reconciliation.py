"""Reconciliation: each offline_id matched to its Stripe PaymentIntents, in one category.

A pure function of two read models (payments, Stripe observations) and a moment `as_of`: the
categories that depend on time (stale, capture overdue) are evaluated at `as_of`, so the same
data and the same `as_of` always give the same report.

Matching: a Stripe object belongs to a payment when its PaymentIntent is one the ledger
recorded for it (forwarded, declined, duplicate) or when its `metadata.offline_id` is the
payment's offline_id. Every other Stripe object that carries an offline_id, or whose charge
was collected offline, is an orphan.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Select, exists, or_, select, union

from ledger.payment import Status
from projections.report import Category, Report, Row
from projections.tables import naive_utc, payment_intent_links, payments, stripe_objects

_STREAM_ROWS = 5_000  # rows fetched at a time from the database

# Stripe statuses in which a PaymentIntent holds or took no money.
_NO_MONEY = frozenset({"canceled", "requires_payment_method"})


@dataclass(frozen=True)
class Thresholds:
    """When a stored payment is stale and when an authorization must be captured.

    Card-present authorizations lapse: Visa after about 5 days (4 days 18 hours),
    Mastercard, Amex and Discover after about 2 days (DESIGN §4). A capture is overdue once
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

    The database does the matching (two indexed joins, streamed in offline_id order); this
    walks payments and matches side by side, so memory holds the report's rows, not the
    tables.
    """
    now = naive_utc(as_of)
    rows: list[Row] = []
    for payment, seen in _payments_with_stripe(conn):
        if filters.admit(payment["stored_at"] or payment["created_at"], payment["location_id"]):
            rows.append(_payment_row(payment, seen, now, thresholds))
    if filters.location_id is None:  # an orphan has no location
        for orphan in conn.execute(_orphans_query()).mappings():
            if filters.admit(orphan["created_at"], None):
                rows.append(_orphan_row(dict(orphan), now))
    return Report(
        as_of=now.replace(tzinfo=UTC),
        rows=rows,
        filters=filters.as_dict(),
        thresholds=thresholds.as_dict(),
    )


def _payments_with_stripe(
    conn: Connection,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each payment with the Stripe objects that belong to it: by a PaymentIntent the ledger
    recorded, or by metadata.offline_id. One streamed query, in offline_id order."""
    links = payment_intent_links
    by_link = select(links.c.offline_id.label("owner"), stripe_objects).join(
        stripe_objects, stripe_objects.c.payment_intent_id == links.c.payment_intent_id
    )
    by_metadata = select(payments.c.offline_id.label("owner"), stripe_objects).join(
        stripe_objects, stripe_objects.c.offline_id == payments.c.offline_id
    )
    matched = union(by_link, by_metadata).subquery()
    stripe_columns = [column.name for column in stripe_objects.columns]
    query = (
        select(payments, *(matched.c[name].label(f"s__{name}") for name in stripe_columns))
        .outerjoin(matched, matched.c.owner == payments.c.offline_id)
        .order_by(payments.c.offline_id, matched.c.created_at, matched.c.key)
    )
    # Plain tuples, sliced by position: a million rows make per-row mapping objects count.
    payment_names = [column.name for column in payments.columns]
    width = len(payment_names)
    offline_id_at = payment_names.index("offline_id")
    found = conn.execution_options(yield_per=_STREAM_ROWS).execute(query)
    for _, group in groupby(found, key=itemgetter(offline_id_at)):
        joined = list(group)
        payment = dict(zip(payment_names, joined[0][:width], strict=True))
        seen = [
            dict(zip(stripe_columns, row[width:], strict=True))
            for row in joined
            if row[width] is not None
        ]
        yield payment, seen


def _orphans_query() -> Select[Any]:
    """Stripe objects that say they were taken offline and belong to no payment."""
    s = stripe_objects
    return (
        select(s)
        .where(or_(s.c.offline_id.is_not(None), s.c.offline_collected.is_(True)))
        .where(~exists().where(payments.c.offline_id == s.c.offline_id))
        .where(~exists().where(payment_intent_links.c.payment_intent_id == s.c.payment_intent_id))
        .order_by(s.c.created_at, s.c.key)
    )


def _ledger_payment_intents(payment: Mapping[str, Any]) -> list[str]:
    duplicates = [i for i in payment["duplicate_payment_intent_ids"].split(";") if i]
    return [i for i in [payment["payment_intent_id"], *duplicates] if i]


def _payment_row(
    payment: Mapping[str, Any], seen: list[dict[str, Any]], now: datetime, thresholds: Thresholds
) -> Row:
    pis = sorted({*_ledger_payment_intents(payment), *(_pi(s) for s in seen)})
    primary = _primary(payment, seen)
    category, at_risk = _categorize(payment, seen, primary, pis, now, thresholds)
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
        stripe_amount=_stripe_amount(primary) if primary else None,
        stripe_currency=primary["currency"] if primary else None,
        stripe_status=_stripe_status(primary) if primary else None,
        stored_at=_aware(payment["stored_at"]),
        forwarded_at=_aware(payment["forwarded_at"]),
        age_seconds=max(0, int((now - began).total_seconds())),
        amount_at_risk=at_risk,
        breaches=tuple(code for code in payment["breaches"].split(";") if code),
    )


def _primary(payment: Mapping[str, Any], seen: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Stripe's object for the PaymentIntent the ledger holds, else the first one seen."""
    for s in seen:
        if payment["payment_intent_id"] in (s["payment_intent_id"], s["key"]):
            return s
    return seen[0] if seen else None


def _categorize(
    payment: Mapping[str, Any],
    seen: list[dict[str, Any]],
    primary: dict[str, Any] | None,
    pis: list[str],
    now: datetime,
    thresholds: Thresholds,
) -> tuple[Category, int]:
    amount, status = payment["amount"], payment["status"]
    # PaymentIntents that hold or took money: live on Stripe, or known only to the ledger.
    live = [s for s in seen if _stripe_status(s) not in _NO_MONEY]
    observed = {_pi(s) for s in seen}
    live_pis = {_pi(s) for s in live} | {
        i
        for i in _ledger_payment_intents(payment)
        if i not in observed and status != Status.DECLINED
    }
    if status == Status.CANCELED and not live:
        return Category.CANCELED, 0
    if len(live_pis) > 1 or payment["duplicate_refund_amount"]:
        extra = sum(_stripe_amount(s) or amount for s in live[1:])
        return Category.DUPLICATE, max(payment["duplicate_refund_amount"], extra)
    if status == Status.DECLINED or (primary is not None and _is_declined(primary)):
        return Category.DECLINED, amount
    if primary is None:
        if payment["payment_intent_id"] is not None:
            return Category.MISSING_IN_STRIPE, amount
        stale = now - (payment["stored_at"] or payment["created_at"]) >= thresholds.stale_after
        if status != Status.STORED:
            # Never confirmed offline (e.g. refused by an offline rule): still being sold, or
            # abandoned once stale. Nothing was stored, so nothing is at risk.
            return (Category.CANCELED if stale else Category.PENDING_FORWARD), 0
        return (Category.STALE_FORWARD if stale else Category.PENDING_FORWARD), amount
    # A report alone shows what was charged: a partial capture charged amount_captured.
    partial = primary["amount"] is None and payment["amount_captured"]
    expected = payment["amount_captured"] if partial else amount
    stripe_amount = _stripe_amount(primary)
    if primary["currency"] != payment["currency"]:
        return Category.AMOUNT_MISMATCH, amount
    if stripe_amount != expected:
        return Category.AMOUNT_MISMATCH, abs(expected - (stripe_amount or 0))
    stripe_status = _stripe_status(primary)
    if stripe_status == "canceled":
        return Category.CANCELED, 0
    if stripe_status == "requires_capture":
        authorized_at = payment["forwarded_at"] or primary["created_at"] or payment["created_at"]
        brand = payment["card_brand"] or primary["card_brand"]
        if now >= thresholds.capture_deadline(authorized_at, brand):
            return Category.CAPTURE_OVERDUE, amount
        return Category.AWAITING_CAPTURE, 0
    return Category.MATCHED, 0


def _hours(span: timedelta) -> str:
    whole, rest = divmod(int(span.total_seconds()), 3600)
    return str(whole) if rest == 0 else f"{whole}.{rest * 10 // 3600}"


def _pi(stripe: Mapping[str, Any]) -> str:
    """The PaymentIntent id, or the charge id of a report row that names none."""
    return str(stripe["payment_intent_id"] or stripe["key"])


def _is_declined(stripe: Mapping[str, Any]) -> bool:
    return stripe["decline_code"] is not None or stripe["status"] == "requires_payment_method"


def _stripe_amount(stripe: Mapping[str, Any]) -> int | None:
    """The PaymentIntent's amount; from a report alone, the gross charged."""
    if stripe["amount"] is not None:
        return int(stripe["amount"])
    if stripe["balance_transactions"]:
        return int(stripe["charged_gross"])
    return None


def _stripe_status(stripe: Mapping[str, Any]) -> str | None:
    """The PaymentIntent's status; from a report alone, a charge means it succeeded."""
    if stripe["status"] is not None:
        return str(stripe["status"])
    if stripe["charged_gross"] > 0:
        return "succeeded"
    return None


def _orphan_row(stripe: Mapping[str, Any], now: datetime) -> Row:
    created = stripe["created_at"]
    return Row(
        category=Category.ORPHAN_IN_STRIPE,
        offline_id=stripe["offline_id"],
        location_id=None,
        device_id=None,
        amount=None,
        currency=None,
        ledger_status=None,
        payment_intent_ids=(_pi(stripe),),
        stripe_amount=_stripe_amount(stripe),
        stripe_currency=stripe["currency"],
        stripe_status=_stripe_status(stripe),
        stored_at=None,
        forwarded_at=None,
        age_seconds=max(0, int((now - created).total_seconds())) if created else None,
        amount_at_risk=0,
    )


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None
