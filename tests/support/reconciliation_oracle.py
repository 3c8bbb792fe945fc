"""The reconciliation report as it was computed in Python, payment by payment: the oracle the
database's report (`projections.report_sql`) is held to by the property tests.

Where the Python version depended on the order rows came back in (the first movement's
offline_id, the first open dispute's status, the first settlement currency), it takes the
smallest, as the SQL does; rows are read in key order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from ledger.payment import Status
from projections.reconciliation import Filters, Thresholds
from projections.report import Category, Report, Row
from projections.report_sql import AWAITING_CUSTOMER, LINK_HOPS, NO_MONEY
from projections.stripe_side import (
    CHARGED,
    DISPUTE_LOST,
    DISPUTE_WON,
    DISPUTED,
    REFUNDED,
    PayoutPart,
)
from projections.tables import (
    naive_utc,
    payments,
    stripe_charges,
    stripe_disputes,
    stripe_links,
    stripe_movements,
    stripe_objects,
)

_SNAPSHOT_COLUMNS = (
    "key",
    "payment_intent_id",
    "offline_id",
    "amount",
    "amount_received",
    "currency",
    "status",
    "offline_collected",
    "card_brand",
    "decline_code",
    "created_at",
)


def admit(filters: Filters, when: datetime | None, location_id: str | None) -> bool:
    if filters.location_id is not None and location_id != filters.location_id:
        return False
    if when is None:
        return filters.since is None and filters.until is None
    return (filters.since is None or when >= naive_utc(filters.since)) and (
        filters.until is None or when < naive_utc(filters.until)
    )


@dataclass(slots=True)
class StripePayment:
    """One PaymentIntent (or, when no link names it, one charge or balance transaction) with
    everything Stripe said about it."""

    key: str
    objects: list[dict[str, Any]] = field(default_factory=list)  # stripe_objects rows
    movements: list[dict[str, Any]] = field(default_factory=list)
    refunded_snapshot: int = 0  # the largest cumulative amount_refunded a charge showed
    disputes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def snapshot(self) -> dict[str, Any] | None:
        """The PaymentIntent as the API, a webhook or a JSON file showed it."""
        return self.objects[0] if self.objects else None

    def first(self, name: str) -> Any:
        return next((o[name] for o in self.objects if o[name] is not None), None)

    @property
    def offline_id(self) -> str | None:
        return self.first("offline_id") or min(
            (m["offline_id"] for m in self.movements if m["offline_id"]), default=None
        )

    @property
    def offline_collected(self) -> bool:
        return any(o["offline_collected"] for o in self.objects)

    @property
    def created_at(self) -> datetime | None:
        return self.first("created_at") or min(
            (m["created_at"] for m in self.movements if m["created_at"]), default=None
        )

    def _in(self, categories: Iterable[str]) -> list[dict[str, Any]]:
        wanted = frozenset(categories)
        return [m for m in self.movements if m["category"] in wanted]

    def _charge_movements(self) -> list[dict[str, Any]]:
        # A report without reporting_category: positive rows are charges (as Stripe's
        # balance report lists them), negative ones give money back.
        return [
            m
            for m in self.movements
            if m["category"] in CHARGED or (m["category"] is None and m["gross"] >= 0)
        ]

    @property
    def currency(self) -> str | None:
        """The currency the customer paid in."""
        if self.snapshot is not None:
            return str(self.snapshot["currency"])
        for m in self._charge_movements() or self.movements:
            return str(m["customer_facing_currency"] or m["currency"])
        return None

    def _customer(self, movements: Iterable[dict[str, Any]]) -> int:
        """The sum of movements in the customer's currency."""
        total = 0
        for m in movements:
            converted = m["customer_facing_amount"] is not None and m[
                "customer_facing_currency"
            ] not in (None, m["currency"])
            total += m["customer_facing_amount"] if converted else m["gross"]
        return total

    @property
    def charged(self) -> int | None:
        """What the report's rows say was captured: the charge, less the uncaptured part of
        a partial capture (its `partial_capture_reversal` row); None without such rows."""
        rows = self._charge_movements()
        return self._customer(rows) if rows else None

    @property
    def refunded(self) -> int:
        """Money given back by refunds, in the customer's currency (positive)."""
        refund_rows = self._in(REFUNDED) + [
            m for m in self.movements if m["category"] is None and m["gross"] < 0
        ]
        return max(-self._customer(refund_rows), self.refunded_snapshot, 0)

    @property
    def dispute(self) -> tuple[int, str | None]:
        """The disputed amount and the dispute's status: a webhook's status when one came
        ("lost", "won", "needs_response"...), else from the report's rows ("won" when a
        `dispute_reversal` gave the money back, "open" otherwise)."""
        if self.disputes:
            amount = sum(int(d["amount"]) for d in self.disputes)
            statuses = [str(d["status"]) for d in self.disputes]
            if DISPUTE_LOST in statuses:
                return amount, DISPUTE_LOST
            open_ = [s for s in statuses if s not in DISPUTE_WON]
            return amount, min(open_) if open_ else "won"
        withdrawn = [m for m in self.movements if m["category"] == "dispute"]
        if not withdrawn:
            return 0, None
        reversed_ = any(m["category"] == "dispute_reversal" for m in self.movements)
        return -self._customer(withdrawn), "won" if reversed_ else "open"

    @property
    def settlement(self) -> tuple[int, str] | None:
        """The charge as it settled, when it settled in another currency than it was paid."""
        rows = [m for m in self._charge_movements() if m["customer_facing_currency"]]
        converted = [m for m in rows if m["customer_facing_currency"] != m["currency"]]
        if not converted:
            return None
        return sum(int(m["gross"]) for m in converted), min(str(m["currency"]) for m in converted)

    @property
    def fees(self) -> int | None:
        known = [m["fee"] for m in self.movements if m["fee"] is not None]
        return sum(known) if known else None

    @property
    def net(self) -> int | None:
        known = [m["net"] for m in self.movements if m["net"] is not None]
        return sum(known) if known else None

    @property
    def payout(self) -> tuple[str | None, datetime | None]:
        """The payout the charge landed in (else the first payout any movement landed in)."""
        for m in [*self._charge_movements(), *self.movements]:
            if m["payout_id"]:
                return m["payout_id"], m["payout_at"]
        return None, None

    def payout_parts(self) -> tuple[PayoutPart, ...]:
        parts: dict[tuple[str, str], dict[str, Any]] = {}
        for m in self.movements:
            if not m["payout_id"]:
                continue
            part = parts.setdefault(
                (m["payout_id"], m["currency"]),
                {
                    "payout_at": m["payout_at"],
                    "gross": 0,
                    "fees": 0,
                    "refunds": 0,
                    "disputes": 0,
                    "net": 0,
                },
            )
            gross = int(m["gross"])
            fee = int(m["fee"] or 0)
            if m["category"] in REFUNDED:
                part["refunds"] += gross
            elif m["category"] in DISPUTED:
                part["disputes"] += gross
            else:
                part["gross"] += gross
            part["fees"] += fee
            part["net"] += int(m["net"]) if m["net"] is not None else gross - fee
        return tuple(
            PayoutPart(payout_id=payout, currency=currency, **values)
            for (payout, currency), values in sorted(parts.items())
        )


class StripeSide:
    """Every Stripe payment the read models know, by PaymentIntent and by offline_id."""

    def __init__(self, conn: Connection) -> None:
        self.links = {r.object_id: r.target_id for r in conn.execute(select(stripe_links))}
        self.by_key: dict[str, StripePayment] = {}
        # PaymentIntent snapshots (the columns the report reads: a million rows count); a
        # stream that holds only movements adds nothing to them.
        o = stripe_objects.c
        snapshots = (
            select(*(o[name] for name in _SNAPSHOT_COLUMNS))
            .where(o.status.is_not(None))
            .order_by(o.key)
        )
        for values in conn.execute(snapshots):
            snapshot = dict(zip(_SNAPSHOT_COLUMNS, values, strict=True))
            self._payment(snapshot["payment_intent_id"] or snapshot["key"]).objects.append(snapshot)
        movements = select(stripe_movements).order_by(stripe_movements.c.movement_key)
        for row in conn.execute(movements).mappings():
            txn = row["balance_transaction_id"]
            owner = row["payment_intent_id"] or row["charge_id"] or row["source_id"] or txn
            self._payment(owner, txn).movements.append(dict(row))
        for row in conn.execute(select(stripe_charges)).mappings():
            payment = self._payment(row["payment_intent_id"] or row["charge_id"])
            payment.refunded_snapshot = max(payment.refunded_snapshot, row["amount_refunded"])
        for row in conn.execute(select(stripe_disputes)).mappings():
            self._payment(row["payment_intent_id"] or row["charge_id"]).disputes.append(dict(row))
        self.by_offline_id: dict[str, list[StripePayment]] = defaultdict(list)
        for payment in self.by_key.values():
            offline_id = payment.offline_id
            if offline_id is not None:
                self.by_offline_id[offline_id].append(payment)

    def resolve(self, object_id: str) -> str:
        """The PaymentIntent an id belongs to, as far as the links know (else the id)."""
        for _ in range(LINK_HOPS):
            if object_id.startswith("pi_") or object_id not in self.links:
                break
            object_id = self.links[object_id]
        return object_id

    def _payment(self, object_id: str, also: str | None = None) -> StripePayment:
        key = self.resolve(object_id)
        if key == object_id and also is not None:
            key = self.resolve(also)
        payment = self.by_key.get(key)
        if payment is None:
            payment = self.by_key[key] = StripePayment(key)
        return payment

    def for_payment(
        self, offline_id: str, payment_intent_ids: Iterable[str]
    ) -> list[StripePayment]:
        """Stripe's payments belonging to one ledger payment: by a PaymentIntent the ledger
        recorded, or by metadata.offline_id; each once."""
        found: dict[str, StripePayment] = {}
        for pi in payment_intent_ids:
            seen = self.by_key.get(self.resolve(pi))
            if seen is not None:
                found[seen.key] = seen
        for seen in self.by_offline_id.get(offline_id, []):
            found[seen.key] = seen
        return sorted(found.values(), key=lambda s: (s.created_at or datetime.min, s.key))

    def orphans(
        self, claimed: Mapping[str, Any], offline_ids: Mapping[str, Any]
    ) -> list[StripePayment]:
        """Payments Stripe says were taken offline that no ledger payment claims."""
        return sorted(
            (
                s
                for s in self.by_key.values()
                if (s.offline_id is not None or s.offline_collected)
                and s.key not in claimed
                and (s.offline_id is None or s.offline_id not in offline_ids)
            ),
            key=lambda s: (s.created_at or datetime.min, s.key),
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
    for found in conn.execute(query):
        payment = dict(zip(names, found, strict=True))
        seen = side.for_payment(payment["offline_id"], _ledger_payment_intents(payment))
        offline_ids[payment["offline_id"]] = None
        claimed.update((s.key, None) for s in seen)
        claimed.update((side.resolve(pi), None) for pi in _ledger_payment_intents(payment))
        if admit(filters, payment["stored_at"] or payment["created_at"], payment["location_id"]):
            rows.append(_payment_row(payment, seen, now, thresholds))
    if filters.location_id is None:  # an orphan has no location
        for orphan in side.orphans(claimed, offline_ids):
            if admit(filters, orphan.created_at, None):
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
        began_at=_aware(began),
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
    live = [s for s in seen if _stripe_status(s) not in NO_MONEY]
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
    if primary is not None and _stripe_status(primary) in AWAITING_CUSTOMER:
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
        began_at=_aware(created),
    )


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None
