"""The payments read model: one row per offline_id, its current state and key timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ledger.errors import Breach
from ledger.fields import Fields, StoredFields
from ledger.limits import CARD_CODES
from ledger.payment import Payment, Status
from projections.runner import Projection, insert_rows, load_rows, replace_rows, utc_of
from projections.tables import payment_intent_links, payments


class PaymentsProjection(Projection):
    name = "payments"
    topics = tuple(
        event.TOPIC
        for event in (
            Payment.Created,
            Payment.PaymentMethodCollected,
            Payment.ConfirmedOffline,
            Payment.Forwarded,
            Payment.Declined,
            Payment.Captured,
            Payment.Canceled,
            Payment.DuplicateForwardDetected,
            Payment.Rejudged,
        )
    )
    tables = (payments, payment_intent_links)

    def apply(self, conn: Connection, events: Sequence[StoredFields]) -> None:
        rows = load_rows(conn, payments, "stream_id", {stream for _, stream, _, _ in events})
        existing = list(rows)
        links: set[tuple[str, str]] = set()
        for _, stream, topic, fields in events:
            if topic == _CREATED:
                rows[stream] = _created(stream, fields)
            else:
                _fold(rows[stream], topic, fields)
            payment_intent_id = fields.get("payment_intent_id")
            if payment_intent_id is not None:
                links.add((payment_intent_id, rows[stream]["offline_id"]))
        replace_rows(conn, payments, "stream_id", existing, list(rows.values()))
        _link(conn, links)


_CREATED = Payment.Created.TOPIC


def _link(conn: Connection, links: set[tuple[str, str]]) -> None:
    """Add the batch's (PaymentIntent, offline_id) pairs that are not there yet."""
    if not links:
        return
    known = {
        (row.payment_intent_id, row.offline_id)
        for row in conn.execute(
            select(payment_intent_links).where(
                payment_intent_links.c.payment_intent_id.in_([pi for pi, _ in links])
            )
        )
    }
    new = [
        {"payment_intent_id": pi, "offline_id": offline_id}
        for pi, offline_id in sorted(links - known)
    ]
    if new:
        insert_rows(conn, payment_intent_links, new)


def _created(stream: str, fields: Fields) -> dict[str, Any]:
    return {
        "stream_id": stream,
        "offline_id": fields["offline_id"],
        "location_id": fields["location_id"],
        "device_id": fields["device_id"],
        "amount": fields["amount"],
        "currency": fields["currency"],
        "capture_method": fields["capture_method"],
        "status": Status.CREATED.value,
        "card_brand": None,
        "payment_intent_id": fields["payment_intent_id"],
        "duplicate_payment_intent_ids": "",
        "duplicate_refund_amount": 0,
        "stripe_status": None,
        "decline_code": None,
        "amount_captured": 0,
        "created_at": utc_of(fields["occurred_at"]),
        "stored_at": None,
        "forwarded_at": None,
        "declined_at": None,
        "captured_at": None,
        "canceled_at": None,
        "breaches": "",
        "reported_late": False,
    }


def _fold(row: dict[str, Any], topic: str, fields: Fields) -> None:
    """The same transitions as `Payment`'s events, on a row."""
    at = utc_of(fields["occurred_at"])
    if topic == Payment.PaymentMethodCollected.TOPIC:
        row.update(card_brand=fields["card"].get("brand"))
        _breaches(row, card=fields["breaches"])
        if fields["reported_late"]:
            row["reported_late"] = True
        else:
            row["status"] = Status.COLLECTED.value
    elif topic == Payment.ConfirmedOffline.TOPIC:
        row["stored_at"] = utc_of(fields["stored_at"])
        _breaches(row, store=fields["breaches"])
        if fields["implied"] or fields["reported_late"]:
            row["reported_late"] = True
        if not fields["reported_late"]:
            row["status"] = Status.STORED.value
    elif topic == Payment.Rejudged.TOPIC:
        _breaches(row, store=fields["breaches"])
    elif topic == Payment.Forwarded.TOPIC:
        row["forwarded_at"] = at
        if fields["implied"]:
            row["reported_late"] = True
        if fields["reported_late"]:
            return
        status = fields["status"]
        row.update(payment_intent_id=fields["payment_intent_id"], stripe_status=status)
        if row["status"] == Status.DECLINED.value:
            return
        if status == "succeeded":
            row.update(status=Status.CAPTURED.value, amount_captured=row["amount"], captured_at=at)
        else:
            row.update(status=Status.FORWARDED.value)
    elif topic == Payment.Declined.TOPIC:
        if fields["payment_intent_id"] is not None:
            row["payment_intent_id"] = fields["payment_intent_id"]
        row.update(
            decline_code=fields["decline_code"], status=Status.DECLINED.value, declined_at=at
        )
    elif topic == Payment.Captured.TOPIC:
        row.update(
            amount_captured=fields["amount_captured"],
            stripe_status="succeeded",
            status=Status.CAPTURED.value,
            captured_at=at,
        )
    elif topic == Payment.Canceled.TOPIC:
        row.update(status=Status.CANCELED.value, canceled_at=at)
    elif topic == Payment.DuplicateForwardDetected.TOPIC:
        known = [i for i in row["duplicate_payment_intent_ids"].split(";") if i]
        row["duplicate_payment_intent_ids"] = ";".join([*known, fields["payment_intent_id"]])
        row["duplicate_refund_amount"] += fields["refund_amount"]
    else:  # pragma: no cover - topics select only the events above
        raise AssertionError(topic)


def _breaches(
    row: dict[str, Any],
    card: list[Breach] | None = None,
    store: list[Breach] | None = None,
) -> None:
    """Replace the card or the storing breaches; the column holds the codes of both (the
    card rules' codes are never a storing rule's, so each part is told by its codes)."""
    codes = {code for code in row["breaches"].split(";") if code}
    if card is not None:
        codes = {c for c in codes if c not in CARD_CODES} | {b["code"] for b in card}
    if store is not None:
        codes = {c for c in codes if c in CARD_CODES} | {b["code"] for b in store}
    row["breaches"] = ";".join(sorted(codes))


@dataclass(frozen=True)
class AuthorizedPayment:
    offline_id: str
    payment_intent_id: str
    amount: int
    currency: str
    card_brand: str | None
    forwarded_at: datetime


def authorized_payments(conn: Connection) -> list[AuthorizedPayment]:
    """Forwarded payments whose authorization awaits a manual capture."""
    query = (
        select(
            payments.c.offline_id,
            payments.c.payment_intent_id,
            payments.c.amount,
            payments.c.currency,
            payments.c.card_brand,
            payments.c.forwarded_at,
        )
        .where(
            payments.c.status == Status.FORWARDED.value,
            payments.c.stripe_status == "requires_capture",
        )
        .order_by(payments.c.forwarded_at, payments.c.offline_id)
    )
    return [AuthorizedPayment(*row) for row in conn.execute(query)]
