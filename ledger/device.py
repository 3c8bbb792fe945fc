"""A reader or POS acting as a store-and-forward agent, and when it was last online.

Stripe lets a device collect offline only if it connected online at that location within the
last 30 days and its software was updated within that time (READER_/LOCATION_CONNECTION_NOT_
AVAILABLE_OFFLINE); this stream keeps what those rules need.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from eventsourcing.domain import Aggregate

from ledger.identity import device_id as device_stream_id
from ledger.journal import Journaled


class Device(Journaled):
    TOPIC = "offline_ledger:Device"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:Device.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:Device.Created"

    class Registered(Created):
        TOPIC = "offline_ledger:Device.Registered"
        device_id: str
        location_id: str
        reader_type: str | None
        software_updated_at: datetime | None
        occurred_at: datetime

        def apply(self, aggregate: Device) -> None:
            device: Device = aggregate
            device.device_id = self.device_id
            device.reader_type = None
            device.software_updated_at = None
            device.connections = {}
            device.last_connected_at = self.occurred_at
            device.last_location_id = self.location_id
            _connect(
                device,
                self.location_id,
                self.reader_type,
                self.software_updated_at,
                self.occurred_at,
            )

    class ConnectedOnline(Event):
        TOPIC = "offline_ledger:Device.ConnectedOnline"
        location_id: str
        reader_type: str | None
        software_updated_at: datetime | None
        occurred_at: datetime

        def apply(self, aggregate: Device) -> None:
            _connect(
                aggregate,
                self.location_id,
                self.reader_type,
                self.software_updated_at,
                self.occurred_at,
            )

    if TYPE_CHECKING:  # set by the events' apply(); runtime annotations would make
        # the eventsourcing metaclass generate a dataclass __init__
        device_id: str
        reader_type: str | None
        software_updated_at: datetime | None
        last_connected_at: datetime
        last_location_id: str
        connections: dict[str, datetime]  # location_id -> last online connection there

    @classmethod
    def register(
        cls,
        device_id: str,
        location_id: str,
        reader_type: str | None,
        software_updated_at: datetime | None,
        occurred_at: datetime,
    ) -> Device:
        return cls._create(
            cls.Registered,
            id=device_stream_id(device_id),
            device_id=device_id,
            location_id=location_id,
            reader_type=reader_type,
            software_updated_at=software_updated_at,
            occurred_at=occurred_at,
        )

    def is_news(self, location_id: str, occurred_at: datetime) -> bool:
        """A connection no later than the last one known at that location changes nothing."""
        known = self.connections.get(location_id)
        return known is None or occurred_at > known

    def connect_online(
        self,
        location_id: str,
        reader_type: str | None,
        software_updated_at: datetime | None,
        occurred_at: datetime,
    ) -> None:
        assert self.is_news(location_id, occurred_at)
        self.trigger_event(
            self.ConnectedOnline,
            location_id=location_id,
            reader_type=reader_type,
            software_updated_at=software_updated_at,
            occurred_at=occurred_at,
        )


def _connect(
    device: Device,
    location_id: str,
    reader_type: str | None,
    software_updated_at: datetime | None,
    occurred_at: datetime,
) -> None:
    device.connections[location_id] = occurred_at
    if occurred_at >= device.last_connected_at:
        device.last_connected_at = occurred_at
        device.last_location_id = location_id
    if reader_type is not None:
        device.reader_type = reader_type
    if software_updated_at is not None and (
        device.software_updated_at is None or software_updated_at > device.software_updated_at
    ):
        device.software_updated_at = software_updated_at
