"""The offline sales read model: every sale a location stored, one plain row each, for
`what-if` to replay without decoding the location streams.

Built from the same location-stream events `ledger.what_if.histories` reads (a configuration,
each sale stored with the limit codes it broke, its breaches re-judged, its release, a moment
restated), folded the same way, so both sources give the same histories: the event store's for
a ledger without read models (memory://), this one for SQLite and PostgreSQL, where it reads
one indexed row per sale instead of two JSON events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson
from sqlalchemy import Connection, select, text

from ledger.fields import StoredFields, moment
from ledger.location import Location
from ledger.what_if import History, StoredSale, limit_codes, micros, moment_of
from projections.runner import Projection, load_rows, replace_rows
from projections.tables import offline_sale_locations, offline_sales

_SALE_FIELDS = (
    "offline_id, device_id, currency, amount, stored_us, arrival, breaches, released_us, "
    "released_as"
)


class OfflineSalesProjection(Projection):
    name = "offline_sales"
    topics = (
        Location.Configured.TOPIC,
        Location.Reconfigured.TOPIC,
        Location.PaymentStored.TOPIC,
        Location.BreachesChanged.TOPIC,
        Location.PaymentReleased.TOPIC,
        Location.MomentRestated.TOPIC,
    )
    tables = (offline_sales, offline_sale_locations)

    def apply(self, conn: Connection, events: Sequence[StoredFields]) -> None:
        """Folded in memory, then each changed row replaced: a batch is one delete and one
        insert per table."""
        streams = {stream for _, stream, _, _ in events}
        locations = load_rows(conn, offline_sale_locations, "stream_id", streams)
        known_locations = set(locations)
        touched = {
            fields["offline_id"] for _, _, topic, fields in events if topic not in _LOCATION_EVENTS
        }
        sales = load_rows(conn, offline_sales, "offline_id", touched)
        known_sales = set(sales)
        changed_locations: set[str] = set()
        for _, stream, topic, fields in events:
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
        changed = [sales[offline_id] for offline_id in touched]
        replace_rows(conn, offline_sales, "offline_id", known_sales, changed)


_LOCATION_EVENTS = (Location.Configured.TOPIC, Location.Reconfigured.TOPIC)


def sale_histories(conn: Connection, location_id: str | None = None) -> Iterator[History]:
    """Each location's stored sales (every location by id, or one), in arrival order."""
    query = select(
        offline_sale_locations.c.location_id,
        offline_sale_locations.c.configured_us,
        offline_sale_locations.c.config,
    ).order_by(offline_sale_locations.c.location_id)
    if location_id is not None:
        query = query.where(offline_sale_locations.c.location_id == location_id)
    sales_query = text(
        f"SELECT {_SALE_FIELDS} FROM {offline_sales.name} WHERE location_id = :location "
        "ORDER BY arrival"
    )
    codes: dict[str, tuple[str, ...]] = {"": ()}

    def breaches(text: str) -> tuple[str, ...]:
        found = codes.get(text)
        if found is None:
            found = codes[text] = tuple(text.split(";"))
        return found

    for location, configured_us, config in conn.execute(query).all():
        rows = conn.execute(sales_query, {"location": location}).all()
        sales = [
            StoredSale(offline_id, device, currency, amount, stored, arrival, breaches(text),
                       released, released_as)
            for offline_id, device, currency, amount, stored, arrival, text, released, released_as
            in rows
        ]  # fmt: skip
        yield History(location, moment_of(configured_us), orjson.loads(config), sales)
