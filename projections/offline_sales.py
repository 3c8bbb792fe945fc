"""The offline sales read model: every sale attempt of a location (a sale it stored, or a
reservation it refused), one plain row each, for `what-if` to replay without decoding events.

Built from the same events `ledger.what_if.histories` reads (a configuration, each sale stored
with the limit codes it broke, its breaches re-judged, its release, a moment restated, a
reservation refused with its reasons and what it saw used), folded the same way, so both
sources give the same histories: the event store's for a ledger without read models
(memory://), this one for SQLite and PostgreSQL, where it reads one indexed row per attempt
instead of two JSON events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson
from sqlalchemy import Connection, select

from ledger.collector import collector_paused
from ledger.fields import Fields, StoredFields, moment
from ledger.identity import location_id as location_stream_id
from ledger.location import Location
from ledger.reservation import Reservation
from ledger.what_if import (
    TOPICS,
    History,
    SaleAttempt,
    Seen,
    limit_codes,
    micros,
    moment_of,
    refusal_codes,
    seen_by,
)
from projections.runner import Projection, load_rows, replace_rows
from projections.tables import offline_sale_locations, offline_sales

_SALE_FIELDS = (
    "offline_id, device_id, currency, amount, stored_us, arrival, breaches, released_us, "
    "released_as, seen"
)


class OfflineSalesProjection(Projection):
    name = "offline_sales"
    topics = TOPICS
    tables = (offline_sales, offline_sale_locations)

    def apply(self, conn: Connection, events: Sequence[StoredFields]) -> None:
        """Folded in memory, then each changed row replaced: a batch is one delete and one
        insert per table."""
        streams = {_stream(stream, topic, fields) for _, stream, topic, fields in events}
        locations = load_rows(conn, offline_sale_locations, "stream_id", streams)
        known_locations = set(locations)
        touched = {
            fields["offline_id"] for _, _, topic, fields in events if topic not in _LOCATION_EVENTS
        }
        sales = load_rows(conn, offline_sales, "offline_id", touched)
        known_sales = set(sales)
        changed_locations: set[str] = set()
        for _, event_stream, topic, fields in events:
            stream = _stream(event_stream, topic, fields)
            changed_locations.add(stream)
            if topic == Location.Configured.TOPIC:
                locations[stream] = {
                    "stream_id": stream,
                    "location_id": fields["location_id"],
                    "configured_us": micros(moment(fields["occurred_at"])),
                    "config": orjson.dumps(fields["config"]).decode(),
                    "sales": 0,
                }
            elif topic == Location.Reconfigured.TOPIC:
                locations[stream]["config"] = orjson.dumps(fields["config"]).decode()
            elif topic == Location.PaymentStored.TOPIC:
                location = locations[stream]
                sales[fields["offline_id"]] = {
                    "offline_id": fields["offline_id"],
                    "location_id": location["location_id"],
                    "arrival": location["sales"],
                    "device_id": fields["device_id"],
                    "currency": fields["currency"],
                    "amount": fields["amount"],
                    "stored_us": micros(moment(fields["occurred_at"])),
                    "breaches": ";".join(limit_codes(fields["breaches"])),
                    "released_us": None,
                    "released_as": None,
                    "seen": None,
                }
                location["sales"] += 1
            elif topic == Reservation.Answered.TOPIC:
                if fields["granted"] or fields["offline_id"] in sales:
                    continue  # granted: stored, or abandoned; refused after a store
                location, request = locations[stream], fields["request"]
                sales[fields["offline_id"]] = {
                    "offline_id": fields["offline_id"],
                    "location_id": location["location_id"],
                    "arrival": location["sales"],
                    "device_id": request["device_id"],
                    "currency": request["currency"],
                    "amount": request["amount"],
                    "stored_us": micros(moment(fields["occurred_at"])),
                    "breaches": ";".join(refusal_codes(fields["reasons"])),
                    "released_us": None,
                    "released_as": None,
                    "seen": _seen_text(seen_by(fields["headroom"])),
                }
                location["sales"] += 1
            elif topic == Location.BreachesChanged.TOPIC:
                sales[fields["offline_id"]]["breaches"] = ";".join(limit_codes(fields["breaches"]))
            elif topic == Location.PaymentReleased.TOPIC:
                sale = sales[fields["offline_id"]]
                sale["released_us"] = micros(moment(fields["occurred_at"]))
                sale["released_as"] = fields["reason"]
            else:
                assert topic == Location.MomentRestated.TOPIC, topic
                column = "stored_us" if fields["which"] == "stored" else "released_us"
                sales[fields["offline_id"]][column] = micros(moment(fields["occurred_at"]))
        rows = [locations[stream] for stream in changed_locations]
        replace_rows(conn, offline_sale_locations, "stream_id", known_locations, rows)
        changed = [sales[offline_id] for offline_id in touched if offline_id in sales]
        replace_rows(conn, offline_sales, "offline_id", known_sales, changed)


_LOCATION_EVENTS = (Location.Configured.TOPIC, Location.Reconfigured.TOPIC)


def _stream(stream: str, topic: str, fields: Fields) -> str:
    """The location stream an event belongs to (a reservation's: its request's location)."""
    if topic == Reservation.Answered.TOPIC:
        return location_stream_id(fields["request"]["location_id"]).hex
    return stream


def sale_histories(conn: Connection, location_id: str | None = None) -> Iterator[History]:
    """Each location's sale attempts (every location by id, or one), in arrival order.

    The rows are read through the driver's own statement (`exec_driver_sql`): `what-if` reads
    every row, and a compiled statement's result handling costs as much as the read."""
    query = select(
        offline_sale_locations.c.location_id,
        offline_sale_locations.c.configured_us,
        offline_sale_locations.c.config,
    ).order_by(offline_sale_locations.c.location_id)
    if location_id is not None:
        query = query.where(offline_sale_locations.c.location_id == location_id)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sales_query = (
        f"SELECT {_SALE_FIELDS} FROM {offline_sales.name} WHERE location_id = {mark} "
        "ORDER BY arrival"
    )
    codes: dict[str, tuple[str, ...]] = {"": ()}

    def breaches(text: str) -> tuple[str, ...]:
        found = codes.get(text)
        if found is None:
            found = codes[text] = tuple(text.split(";"))
        return found

    for location, configured_us, config in conn.execute(query).all():
        with collector_paused():
            rows = conn.exec_driver_sql(sales_query, (location,)).all()
            sales = [
                SaleAttempt(offline_id, device, currency, amount, stored, arrival, breaches(text),
                            released, released_as, seen is not None,
                            None if seen is None else _seen(seen))
                for (offline_id, device, currency, amount, stored, arrival, text, released,
                     released_as, seen) in rows
            ]  # fmt: skip
        yield History(location, moment_of(configured_us), orjson.loads(config), sales)


def _seen_text(seen: Seen) -> str:
    return ";".join("" if used is None else str(used) for used in seen)


def _seen(text: str) -> Seen:
    amount, count, device_amount, device_count = (
        None if used == "" else int(used) for used in text.split(";")
    )
    return amount, count, device_amount, device_count
