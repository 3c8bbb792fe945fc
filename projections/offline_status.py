"""The offline status read model: what is stored right now, per location, device and currency.

Built from the location streams' `PaymentStored` / `PaymentReleased` events, the same events
that enforce the limits, so the read model and the limits can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ledger.fields import StoredFields
from ledger.location import Location
from projections.runner import Projection, insert_rows, load_rows, replace_rows, stored_moments
from projections.tables import naive_utc, offline_locations, offline_stored


class OfflineStatusProjection(Projection):
    name = "offline_status"
    topics = (
        Location.Configured.TOPIC,
        Location.PaymentStored.TOPIC,
        Location.PaymentReleased.TOPIC,
    )
    tables = (offline_stored, offline_locations)

    def apply(self, conn: Connection, events: Sequence[StoredFields]) -> None:
        """Folded in memory first, then written in three statements: one per event was most
        of the time a catch-up took."""
        streams = {stream for _, stream, _, _ in events}
        locations = {
            key: row["location_id"]
            for key, row in load_rows(conn, offline_locations, "stream_id", streams).items()
        }
        new_locations: list[dict[str, str]] = []
        stored: dict[str, dict[str, Any]] = {}  # offline_id -> row, stored in this batch
        released: list[str] = []  # stored before this batch
        at = stored_moments(conn)
        for _, stream, topic, fields in events:
            if topic == Location.Configured.TOPIC:
                locations[stream] = fields["location_id"]
                new_locations.append({"stream_id": stream, "location_id": fields["location_id"]})
            elif topic == Location.PaymentStored.TOPIC:
                stored[fields["offline_id"]] = {
                    "offline_id": fields["offline_id"],
                    "location_id": locations[stream],
                    "device_id": fields["device_id"],
                    "currency": fields["currency"],
                    "amount": fields["amount"],
                    "stored_at": at(fields["occurred_at"]["_data_"]),
                }
            else:
                assert topic == Location.PaymentReleased.TOPIC, topic
                if stored.pop(fields["offline_id"], None) is None:
                    released.append(fields["offline_id"])
        if new_locations:
            insert_rows(conn, offline_locations, new_locations)
        replace_rows(conn, offline_stored, "offline_id", released, [])
        if stored:
            insert_rows(conn, offline_stored, list(stored.values()))


@dataclass(frozen=True)
class StoredTotal:
    location_id: str
    device_id: str
    currency: str
    count: int
    amount: int  # minor units


def stored_totals(conn: Connection, location_id: str | None = None) -> list[StoredTotal]:
    """Stored count and amount per location, device and currency."""
    query = (
        select(
            offline_stored.c.location_id,
            offline_stored.c.device_id,
            offline_stored.c.currency,
            func.count(),
            func.sum(offline_stored.c.amount),
        )
        .group_by(
            offline_stored.c.location_id, offline_stored.c.device_id, offline_stored.c.currency
        )
        .order_by(
            offline_stored.c.location_id, offline_stored.c.device_id, offline_stored.c.currency
        )
    )
    if location_id is not None:
        query = query.where(offline_stored.c.location_id == location_id)
    return [
        StoredTotal(loc, dev, cur, int(n), int(total))
        for loc, dev, cur, n, total in conn.execute(query)
    ]


@dataclass(frozen=True)
class StoredPayment:
    """A payment still stored on its reader: confirmed offline, not forwarded, declined or
    canceled yet."""

    offline_id: str
    location_id: str
    device_id: str
    amount: int
    currency: str
    stored_at: datetime


def stored_payments(
    conn: Connection,
    *,
    location_id: str | None = None,
    device_id: str | None = None,
    stored_before: datetime | None = None,
    limit: int | None = None,
) -> list[StoredPayment]:
    """The stored payments, the longest stored first: all, or one location's or device's,
    or those stored before a time."""
    table = offline_stored.c
    query = select(
        table.offline_id,
        table.location_id,
        table.device_id,
        table.amount,
        table.currency,
        table.stored_at,
    ).order_by(table.stored_at, table.offline_id)
    if location_id is not None:
        query = query.where(table.location_id == location_id)
    if device_id is not None:
        query = query.where(table.device_id == device_id)
    if stored_before is not None:
        query = query.where(table.stored_at < naive_utc(stored_before))
    return [
        StoredPayment(*row[:5], stored_at=row.stored_at.replace(tzinfo=UTC))
        for row in conn.execute(query.limit(limit))
    ]


def stored_oldest_first(conn: Connection, limit: int | None = None) -> list[str]:
    """The offline_ids of the stored payments, the longest stored first."""
    return [payment.offline_id for payment in stored_payments(conn, limit=limit)]
