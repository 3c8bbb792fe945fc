"""The payments read model: one row per offline_id, its current state and key timestamps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ledger.errors import Breach
from ledger.fields import Fields, StoredFields
from ledger.limits import CARD_CODES
from ledger.payment import Payment, Status
from projections.runner import (
    Moment,
    Projection,
    insert_rows,
    load_rows,
    replace_rows,
    rows_among,
    stored_moments,
)
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
        at = stored_moments(conn)
        for _, stream, topic, fields in events:
            if topic == _CREATED:
                rows[stream] = _created(stream, fields, at)
            else:
                _fold(rows[stream], topic, fields, at)
            payment_intent_id = fields.get("payment_intent_id")
            if payment_intent_id is not None:
                links.add((payment_intent_id, rows[stream]["offline_id"]))
        replace_rows(conn, payments, "stream_id", existing, list(rows.values()))
        _link(conn, links)


_CREATED = Payment.Created.TOPIC
_CREATED_STATUS = Status.CREATED.value


def _link(conn: Connection, links: set[tuple[str, str]]) -> None:
    """Add the batch's (PaymentIntent, offline_id) pairs that are not there yet."""
    if not links:
        return
    known = set(
        map(
            tuple,
            rows_among(conn, payment_intent_links, "payment_intent_id", {p for p, _ in links}),
        )
    )
    new = [
        {"payment_intent_id": pi, "offline_id": offline_id}
        for pi, offline_id in sorted(links - known)
    ]
    if new:
        insert_rows(conn, payment_intent_links, new)


def _created(stream: str, fields: Fields, at: Moment) -> dict[str, Any]:
    return {
        "stream_id": stream,
        "offline_id": fields["offline_id"],
        "location_id": fields["location_id"],
        "device_id": fields["device_id"],
        "amount": fields["amount"],
        "currency": fields["currency"],
        "capture_method": fields["capture_method"],
        "status": _CREATED_STATUS,
        "card_brand": None,
        "payment_intent_id": fields["payment_intent_id"],
        "duplicate_payment_intent_ids": "",
        "duplicate_refund_amount": 0,
        "stripe_status": None,
        "decline_code": None,
        "amount_captured": 0,
        "created_at": at(fields["occurred_at"]["_data_"]),
        "stored_at": None,
        "forwarded_at": None,
        "declined_at": None,
        "captured_at": None,
        "canceled_at": None,
        "breaches": "",
        "reported_late": False,
    }


def _fold(row: dict[str, Any], topic: str, fields: Fields, moment: Moment) -> None:
    """The same transitions as `Payment`'s events, on a row."""
    _FOLDS[topic](row, fields, moment(fields["occurred_at"]["_data_"]), moment)


# Status values as plain text, looked up once (an enum member's `.value` is a descriptor call).
_COLLECTED, _STORED, _FORWARDED = (
    Status.COLLECTED.value,
    Status.STORED.value,
    Status.FORWARDED.value,
)
_CAPTURED, _DECLINED, _CANCELED = (
    Status.CAPTURED.value,
    Status.DECLINED.value,
    Status.CANCELED.value,
)


def _collected(row: dict[str, Any], fields: Fields, at: Any, moment: Moment) -> None:
    row["card_brand"] = fields["card"].get("brand")
    _breaches(row, card=fields["breaches"])
    if fields["reported_late"]:
        row["reported_late"] = True
    else:
        row["status"] = _COLLECTED


def _confirmed(row: dict[str, Any], fields: Fields, at: Any, moment: Moment) -> None:
    row["stored_at"] = moment(fields["stored_at"]["_data_"])
    _breaches(row, store=fields["breaches"])
    if fields["implied"] or fields["reported_late"]:
        row["reported_late"] = True
    if not fields["reported_late"]:
        row["status"] = _STORED


def _rejudged(row: dict[str, Any], fields: Fields, at: Any, moment: Moment) -> None:
    _breaches(row, store=fields["breaches"])


def _forwarded(row: dict[str, Any], fields: Fields, at: Any, moment: Moment) -> None:
    row["forwarded_at"] = at
    if fields["implied"]:
        row["reported_late"] = True
    if fields["reported_late"]:
        return
    status = fields["status"]
    row["payment_intent_id"] = fields["payment_intent_id"]
    row["stripe_status"] = status
    if row["status"] == _DECLINED:
        return
    if status == "succeeded":
        row.update(status=_CAPTURED, amount_captured=row["amount"], captured_at=at)
    else:
        row["status"] = _FORWARDED


def _declined(row: dict[str, Any], fields: Fields, at: Any, moment: Moment) -> None:
    if fields["payment_intent_id"] is not None:
        row["payment_intent_id"] = fields["payment_intent_id"]
    row.update(decline_code=fields["decline_code"], status=_DECLINED, declined_at=at)


def _captured(row: dict[str, Any], fields: Fields, at: Any, moment: Moment) -> None:
    row.update(
        amount_captured=fields["amount_captured"],
        stripe_status="succeeded",
        status=_CAPTURED,
        captured_at=at,
    )


def _canceled(row: dict[str, Any], fields: Fields, at: Any, moment: Moment) -> None:
    row["status"] = _CANCELED
    row["canceled_at"] = at


def _duplicate(row: dict[str, Any], fields: Fields, at: Any, moment: Moment) -> None:
    known = [i for i in row["duplicate_payment_intent_ids"].split(";") if i]
    row["duplicate_payment_intent_ids"] = ";".join([*known, fields["payment_intent_id"]])
    row["duplicate_refund_amount"] += fields["refund_amount"]


_FOLDS: dict[str, Callable[[dict[str, Any], Fields, Any, Moment], None]] = {
    Payment.PaymentMethodCollected.TOPIC: _collected,
    Payment.ConfirmedOffline.TOPIC: _confirmed,
    Payment.Rejudged.TOPIC: _rejudged,
    Payment.Forwarded.TOPIC: _forwarded,
    Payment.Declined.TOPIC: _declined,
    Payment.Captured.TOPIC: _captured,
    Payment.Canceled.TOPIC: _canceled,
    Payment.DuplicateForwardDetected.TOPIC: _duplicate,
}


def _breaches(
    row: dict[str, Any],
    card: list[Breach] | None = None,
    store: list[Breach] | None = None,
) -> None:
    """Replace the card or the storing breaches; the column holds the codes of both (the
    card rules' codes are never a storing rule's, so each part is told by its codes)."""
    if not row["breaches"] and not card and not store:
        return  # none before, none now: most payments
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
