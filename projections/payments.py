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
    delete_rows,
    insert_rows,
    insert_values,
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
        """Folded on each payment's row as a list of its values in the table's order, as the
        driver reads them and `insert_values` writes them: no dict per row built, filled
        and taken apart again. A payment created in the batch has no row to look up (its
        creation is its stream's first event)."""
        created = {stream for _, stream, topic, _ in events if topic == _CREATED}
        rows: dict[str, Row] = {
            values[_STREAM]: list(values)
            for values in rows_among(
                conn,
                payments,
                "stream_id",
                {stream for _, stream, _, _ in events}.difference(created),
            )
        }
        existing = list(rows)
        links: set[tuple[str, str]] = set()
        moment = stored_moments(conn)
        folds = _FOLDS
        for _, stream, topic, fields in events:
            if topic == _CREATED:
                row = rows[stream] = _created(stream, fields, moment)
            else:
                row = rows[stream]
                folds[topic](row, fields, moment)
            payment_intent_id = fields.get("payment_intent_id")
            if payment_intent_id is not None:
                links.add((payment_intent_id, row[_OFFLINE_ID]))
        delete_rows(conn, payments, "stream_id", existing)
        insert_values(conn, payments, list(rows.values()))
        _link(conn, links)


Row = list[Any]  # a payment's values, in the order of the table's columns
_AT = {column.name: index for index, column in enumerate(payments.columns)}
_STREAM, _OFFLINE_ID, _AMOUNT, _STATUS = (
    _AT["stream_id"],
    _AT["offline_id"],
    _AT["amount"],
    _AT["status"],
)
_CARD_BRAND, _PAYMENT_INTENT, _STRIPE_STATUS, _DECLINE_CODE = (
    _AT["card_brand"],
    _AT["payment_intent_id"],
    _AT["stripe_status"],
    _AT["decline_code"],
)
_DUPLICATES, _DUPLICATE_REFUND, _AMOUNT_CAPTURED = (
    _AT["duplicate_payment_intent_ids"],
    _AT["duplicate_refund_amount"],
    _AT["amount_captured"],
)
_STORED_AT, _FORWARDED_AT, _DECLINED_AT, _CAPTURED_AT, _CANCELED_AT = (
    _AT["stored_at"],
    _AT["forwarded_at"],
    _AT["declined_at"],
    _AT["captured_at"],
    _AT["canceled_at"],
)
_CREATED_AT, _BREACHES, _REPORTED_LATE = _AT["created_at"], _AT["breaches"], _AT["reported_late"]
_CREATED_FIELDS = tuple(
    (_AT[name], name)
    for name in ("offline_id", "location_id", "device_id", "amount", "currency", "capture_method")
)

_CREATED = Payment.Created.TOPIC
_CREATED_STATUS = Status.CREATED.value
# A new payment's row: what `Payment.Created` does not say.
_NEW: Row = [
    {
        "status": _CREATED_STATUS,
        "duplicate_payment_intent_ids": "",
        "duplicate_refund_amount": 0,
        "amount_captured": 0,
        "breaches": "",
        "reported_late": False,
    }.get(column.name)
    for column in payments.columns
]


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


def _created(stream: str, fields: Fields, moment: Moment) -> Row:
    row = _NEW.copy()
    row[_STREAM] = stream
    for index, name in _CREATED_FIELDS:
        row[index] = fields[name]
    row[_PAYMENT_INTENT] = fields["payment_intent_id"]
    row[_CREATED_AT] = _occurred(fields, moment)
    return row


# The same transitions as `Payment`'s events, on a row; the event's moment worked out only by
# those that keep it.


def _occurred(fields: Fields, moment: Moment) -> Any:
    return moment(fields["occurred_at"]["_data_"])


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


def _collected(row: Row, fields: Fields, moment: Moment) -> None:
    row[_CARD_BRAND] = fields["card"].get("brand")
    _breaches(row, card=fields["breaches"])
    if fields["reported_late"]:
        row[_REPORTED_LATE] = True
    else:
        row[_STATUS] = _COLLECTED


def _confirmed(row: Row, fields: Fields, moment: Moment) -> None:
    row[_STORED_AT] = moment(fields["stored_at"]["_data_"])
    _breaches(row, store=fields["breaches"])
    if fields["implied"] or fields["reported_late"]:
        row[_REPORTED_LATE] = True
    if not fields["reported_late"]:
        row[_STATUS] = _STORED


def _rejudged(row: Row, fields: Fields, moment: Moment) -> None:
    _breaches(row, store=fields["breaches"])


def _forwarded(row: Row, fields: Fields, moment: Moment) -> None:
    at = row[_FORWARDED_AT] = _occurred(fields, moment)
    if fields["implied"]:
        row[_REPORTED_LATE] = True
    if fields["reported_late"]:
        return
    status = fields["status"]
    row[_PAYMENT_INTENT] = fields["payment_intent_id"]
    row[_STRIPE_STATUS] = status
    if row[_STATUS] == _DECLINED:
        return
    if status == "succeeded":
        row[_STATUS] = _CAPTURED
        row[_AMOUNT_CAPTURED] = row[_AMOUNT]
        row[_CAPTURED_AT] = at
    else:
        row[_STATUS] = _FORWARDED


def _declined(row: Row, fields: Fields, moment: Moment) -> None:
    if fields["payment_intent_id"] is not None:
        row[_PAYMENT_INTENT] = fields["payment_intent_id"]
    row[_DECLINE_CODE] = fields["decline_code"]
    row[_STATUS] = _DECLINED
    row[_DECLINED_AT] = _occurred(fields, moment)


def _captured(row: Row, fields: Fields, moment: Moment) -> None:
    row[_AMOUNT_CAPTURED] = fields["amount_captured"]
    row[_STRIPE_STATUS] = "succeeded"
    row[_STATUS] = _CAPTURED
    row[_CAPTURED_AT] = _occurred(fields, moment)


def _canceled(row: Row, fields: Fields, moment: Moment) -> None:
    row[_STATUS] = _CANCELED
    row[_CANCELED_AT] = _occurred(fields, moment)


def _duplicate(row: Row, fields: Fields, moment: Moment) -> None:
    known = [i for i in row[_DUPLICATES].split(";") if i]
    row[_DUPLICATES] = ";".join([*known, fields["payment_intent_id"]])
    row[_DUPLICATE_REFUND] += fields["refund_amount"]


_FOLDS: dict[str, Callable[[Row, Fields, Moment], None]] = {
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
    row: Row,
    card: list[Breach] | None = None,
    store: list[Breach] | None = None,
) -> None:
    """Replace the card or the storing breaches; the column holds the codes of both (the
    card rules' codes are never a storing rule's, so each part is told by its codes)."""
    if not row[_BREACHES] and not card and not store:
        return  # none before, none now: most payments
    codes = {code for code in row[_BREACHES].split(";") if code}
    if card is not None:
        codes = {c for c in codes if c not in CARD_CODES} | {b["code"] for b in card}
    if store is not None:
        codes = {c for c in codes if c in CARD_CODES} | {b["code"] for b in store}
    row[_BREACHES] = ";".join(sorted(codes))


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
