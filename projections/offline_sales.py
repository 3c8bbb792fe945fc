"""The offline sales read model: every sale attempt of a location (a sale it stored, or a
reservation it refused), one plain row each, for `what-if` to replay without decoding events.

Built by `ledger.what_if.fold`, the fold `ledger.what_if.histories` applies to the same events
(a configuration, each sale stored with the limit codes it broke, its breaches re-judged, its
release, a moment restated, a reservation refused with its reasons and what it saw used, a
reservation granted with what it saw and how long it held its headroom),
into the same rows, so both sources give the same histories: the event store's for a ledger
without read models (memory://), this one for SQLite and PostgreSQL, where it reads one
indexed row per attempt instead of two JSON events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, select

from ledger.collector import collector_paused
from ledger.fields import StoredFields
from ledger.what_if import (
    LOCATION_TOPICS,
    TOPICS,
    AttemptRow,
    History,
    fold,
    history_of,
    location_stream,
    sale_key,
)
from projections.runner import Projection, load_rows, replace_rows
from projections.tables import offline_sale_locations, offline_sales

# `SaleAttempt`'s fields, in its order: a fetched row is one's fields as they are.
_SALE_COLUMNS = (
    "offline_id, device, currency, amount, stored_us, arrival, breaches, released_us, "
    "released_as, seen"
)


class OfflineSalesProjection(Projection):
    name = "offline_sales"
    topics = TOPICS
    tables = (offline_sales, offline_sale_locations)

    def apply(self, conn: Connection, events: Sequence[StoredFields]) -> None:
        """Folded in memory, then each changed row replaced: a batch is one delete and one
        insert per table."""
        batch = [
            (location_stream(stream, topic, fields), topic, fields)
            for _, stream, topic, fields in events
        ]
        streams = {stream for stream, _, _ in batch}
        locations = load_rows(conn, offline_sale_locations, "stream_id", streams)
        known_locations = set(locations)
        touched = {
            sale_key(topic, fields) for _, topic, fields in batch if topic not in LOCATION_TOPICS
        }
        sales = load_rows(conn, offline_sales, "offline_id", touched)
        known_sales = set(sales)
        for stream, topic, fields in batch:
            fold(locations, sales, topic, fields, stream)
        rows = [locations[stream] for stream in streams]
        replace_rows(conn, offline_sale_locations, "stream_id", known_locations, rows)
        changed = [sales[offline_id] for offline_id in touched if offline_id in sales]
        replace_rows(conn, offline_sales, "offline_id", known_sales, changed)


def sale_histories(conn: Connection, location_id: str | None = None) -> Iterator[History]:
    """Each location's sale attempts (every location by id, or one), in arrival order.

    The rows are read through the driver's own cursor: `what-if` reads every row, and any
    result handling above the driver's costs as much as the read; each fetched tuple is
    kept as it is (`History.rows`)."""
    query = select(offline_sale_locations).order_by(offline_sale_locations.c.location_id)
    if location_id is not None:
        query = query.where(offline_sale_locations.c.location_id == location_id)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sales_query = (
        f"SELECT {_SALE_COLUMNS} FROM {offline_sales.name} WHERE location_id = {mark} "
        "ORDER BY arrival"
    )
    for location in conn.execute(query).mappings().all():
        with collector_paused():
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sales_query, (location["location_id"],))
                sales: list[AttemptRow] = list(cursor.fetchall())
            finally:
                cursor.close()
        yield history_of(dict(location), sales)
