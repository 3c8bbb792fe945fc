"""The snapshots a write makes due are stored with its events: on SQLite and PostgreSQL in the
write's own transaction (no commit of their own), so a write that is refused leaves none
behind; the in-memory store writes them after the events. A load then starts from them."""

from __future__ import annotations

from unittest import mock
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from adapters.trading_day.day import Day, day_records
from adapters.trading_day.stores import STORES
from ledger import Ledger
from ledger.batches import iter_batches
from ledger.identity import location_id
from ledger.postgres import APPEND_EVENTS_MAX
from tests.support.fixed_clock import fixed_clock_frequent_snapshots

TOPIC = "offline_ledger:Test.Event"


def test_a_batchs_snapshots_are_stored_with_its_events(any_url: str) -> None:
    day = Day(20, stores=STORES[:1])
    with fixed_clock_frequent_snapshots(), Ledger.open(any_url) as ledger:
        store = ledger.store
        assert store.snapshots is not None
        apart = mock.patch.object(
            store.snapshots.recorder, "insert_events", wraps=store.snapshots.recorder.insert_events
        )
        with apart as written_apart:
            for batch in iter_batches(day_records(day), 50):
                ledger.record_many(batch)
        stream = location_id(day.stores[0].location_id)
        snapshots = store.snapshots.recorder.select_events(stream)
        latest = store.recorder.select_events(stream, desc=True, limit=1)[0]
        assert snapshots and snapshots[-1].originator_version <= latest.originator_version
        assert written_apart.called == any_url.startswith("memory")
        assert store.repository.get(stream).version == latest.originator_version


@pytest.mark.parametrize("events", [1, APPEND_EVENTS_MAX + 4], ids=["live", "large"])
def test_a_refused_write_leaves_no_snapshot(database: str, events: int) -> None:
    with Ledger.open(database) as ledger:
        store = ledger.store
        assert store.snapshots is not None
        stream = uuid4()
        store.recorder.insert_events([StoredEvent(stream, 1, TOPIC, b"{}")])
        taken = [StoredEvent(stream, version, TOPIC, b"{}") for version in range(1, events + 1)]
        snapshot = StoredEvent(stream, events, TOPIC, b"{}")

        with pytest.raises(IntegrityError):
            store.recorder.insert_events(taken, snapshots=[snapshot])

        assert store.snapshots.recorder.select_events(stream) == []
        fresh = [StoredEvent(stream, version, TOPIC, b"{}") for version in range(2, events + 2)]
        store.recorder.insert_events(fresh, snapshots=[snapshot])
        assert store.snapshots.recorder.select_events(stream) == [snapshot]


@pytest.mark.parametrize("events", [1, APPEND_EVENTS_MAX + 4], ids=["live", "large"])
def test_a_write_refused_for_a_stream_it_read_leaves_no_snapshot(
    database: str, events: int
) -> None:
    with Ledger.open(database) as ledger:
        store = ledger.store
        assert store.snapshots is not None
        read, stream = uuid4(), uuid4()
        store.recorder.insert_events([StoredEvent(read, 1, TOPIC, b"{}")])
        written = [StoredEvent(stream, version, TOPIC, b"{}") for version in range(1, events + 1)]
        snapshot = StoredEvent(stream, events, TOPIC, b"{}")

        with pytest.raises(IntegrityError):
            store.recorder.insert_events(written, unchanged=[(read, 0)], snapshots=[snapshot])

        assert store.snapshots.recorder.select_events(stream) == []
        assert store.recorder.select_events(stream) == []
        store.recorder.insert_events(written, unchanged=[(read, 1)], snapshots=[snapshot])
        assert store.snapshots.recorder.select_events(stream) == [snapshot]
