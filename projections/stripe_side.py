"""Stripe's side of each payment, assembled from the Stripe read models for the report.

Stripe names one payment by several ids: the PaymentIntent (`pi_`), its charges (`ch_`, `py_`),
their balance transactions (`txn_`), refunds (`re_`) and disputes (`dp_`). A report without the
optional `payment_intent_id` column names charges only; a default-column report names balance
transactions only. Everything is folded onto its PaymentIntent through `stripe_links` (learnt
from expanded PaymentIntents, report rows naming both, webhooks), so one payment is counted
once whatever ids its sources used.

Amounts are in minor units. A settlement in another currency is read in the currency the
customer paid (`customer_facing_amount`/`customer_facing_currency`), the currency the ledger
holds, with the settled amount kept beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from projections.tables import (
    stripe_charges,
    stripe_disputes,
    stripe_links,
    stripe_movements,
    stripe_objects,
)

# Stripe's reporting categories (BalanceTransaction.reporting_category).
CHARGED = frozenset({"charge", "payment", "partial_capture_reversal"})
REFUNDED = frozenset({"refund", "payment_refund", "refund_failure"})
DISPUTED = frozenset({"dispute", "dispute_reversal"})
FAILED = frozenset({"charge_failure", "payment_failure"})
# Dispute.status values (Stripe's OpenAPI spec, component `dispute`, field `status`).
DISPUTE_LOST = "lost"
DISPUTE_WON = frozenset({"won", "warning_closed", "prevented"})
_LINK_HOPS = 4  # refund -> charge -> PaymentIntent needs two
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
        return self.first("offline_id") or next(
            (m["offline_id"] for m in self.movements if m["offline_id"]), None
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
            return amount, open_[0] if open_ else "won"
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
        return sum(int(m["gross"]) for m in converted), str(converted[0]["currency"])

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
        snapshots = select(*(o[name] for name in _SNAPSHOT_COLUMNS)).where(o.status.is_not(None))
        for values in conn.execute(snapshots):
            snapshot = dict(zip(_SNAPSHOT_COLUMNS, values, strict=True))
            self._payment(snapshot["payment_intent_id"] or snapshot["key"]).objects.append(snapshot)
        for row in conn.execute(select(stripe_movements)).mappings():
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
        for _ in range(_LINK_HOPS):
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
