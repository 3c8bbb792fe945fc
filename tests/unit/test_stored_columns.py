"""`ledger.storage.StoredColumns`: a batch's stored events as columns read as the library's
`StoredEvent`s, as the in-memory store's recorder reads them."""

from __future__ import annotations

from uuid import uuid4

from eventsourcing.persistence import StoredEvent

from ledger.storage import StoredColumns, stored_columns


def test_columns_read_as_the_stored_events_they_were_made_of() -> None:
    events = [StoredEvent(uuid4(), n, f"topic:{n}", b"{}" * n) for n in range(1, 4)]
    columns = stored_columns(events)
    assert type(columns) is StoredColumns
    assert stored_columns(columns) is columns
    assert len(columns) == 3
    assert list(columns) == events
    assert columns[0] == events[0]
    assert columns[-1] == events[-1]
    assert columns[1:] == events[1:]
    assert columns.originator_versions == [1, 2, 3]


def test_columns_show_as_their_events() -> None:
    """As the list of events they stand for, which a refusal quoting them shows."""
    events = [StoredEvent(uuid4(), 1, "topic:1", b"{}")]
    assert repr(stored_columns(events)) == repr(events)
