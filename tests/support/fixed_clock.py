"""A fixed clock for comparing stored logs byte for byte.

The library stamps every event and snapshot with the time it was made: the one input a record
file does not give. Under `fixed_clock_frequent_snapshots` every event and snapshot is stamped
CLOCK, and locations and devices are snapshotted every few events (so that loads go through
snapshots), so two runs over the same file store the same bytes whenever their rules agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from unittest import mock

from ledger.device import Device
from ledger.event_store import EventStore
from ledger.location import Location

CLOCK = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SNAPSHOT_INTERVALS = {Location: 3, Device: 2}


@contextmanager
def fixed_clock_frequent_snapshots() -> Iterator[None]:
    """Every event and snapshot made inside is stamped CLOCK (the library's one clock), and
    locations and devices are snapshotted every few events."""
    with (
        mock.patch("eventsourcing.domain.datetime_now_with_tzinfo", return_value=CLOCK),
        mock.patch.object(EventStore, "snapshotting_intervals", SNAPSHOT_INTERVALS),
    ):
        yield
