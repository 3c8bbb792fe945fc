"""A busy location's snapshots hold its whole timeline (every payment stored or released in
the last week): the bytes written as snapshots must grow with its events, not with their
square, however long the day. Counted in the store's snapshots table, with small intervals
so that the growth shows on a short day."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from unittest import mock

from adapters.trading_day.day import STORES, Day, day_records
from ledger import Ledger
from ledger.batches import iter_batches
from ledger.device import Device
from ledger.event_store import EventStore, snapshot_due
from ledger.identity import location_id
from ledger.location import Location
from ledger.storage import SQLITE_EVENTS_TABLE, SQLITE_SNAPSHOTS_TABLE

INTERVALS = {Location: 10, Device: 10}


def snapshots_of_one_busy_location(folder: Path, payments: int) -> tuple[int, int, int]:
    """(the location's events, its snapshots, their bytes) after a day of `payments`
    payments in one store, ingested in batches of 100 records."""
    store = STORES[0]
    url = f"sqlite:///{folder / f'day-{payments}.db'}"
    with (
        mock.patch.object(EventStore, "snapshotting_intervals", INTERVALS),
        Ledger.open(url) as ledger,
    ):
        for batch in iter_batches(day_records(Day(payments, stores=(store,))), 100):
            ledger.record_many(batch)
    stream = location_id(store.location_id).hex
    with sqlite3.connect(folder / f"day-{payments}.db") as db:
        (events,) = db.execute(
            f"SELECT MAX(originator_version) FROM {SQLITE_EVENTS_TABLE} WHERE originator_id = ?",
            (stream,),
        ).fetchone()
        count, size = db.execute(
            f"SELECT COUNT(*), SUM(LENGTH(state)) FROM {SQLITE_SNAPSHOTS_TABLE} "
            "WHERE originator_id = ?",
            (stream,),
        ).fetchone()
    return events, count, size


def test_snapshot_bytes_grow_linearly_with_a_busy_locations_events(tmp_path: Path) -> None:
    short = snapshots_of_one_busy_location(tmp_path, 150)
    long = snapshots_of_one_busy_location(tmp_path, 600)
    (short_events, short_count, short_bytes), (long_events, long_count, long_bytes) = short, long
    assert long_events > 3.5 * short_events, (short, long)
    assert short_count >= 3 and long_count > short_count, (short, long)
    # Quadratic growth would make the long day's bytes per event about four times the short
    # day's; linear keeps them within the step's doubling.
    assert long_bytes / long_events < 2 * short_bytes / short_events, (short, long)


def test_a_stream_is_snapshotted_once_its_events_reach_its_size() -> None:
    # Small state: every `interval` events, as the library does.
    assert [v for v in range(1, 41) if snapshot_due(10, 3, v - 1, v)] == [10, 20, 30, 40]
    # 25 entries: the step doubles to 40.
    assert [v for v in range(1, 121) if snapshot_due(10, 25, v - 1, v)] == [40, 80, 120]
    # A batch passing a step's multiple snapshots once, at the version it leaves the stream.
    assert snapshot_due(10, 3, 5, 27) and not snapshot_due(10, 25, 5, 27)
