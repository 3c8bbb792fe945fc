"""SQLite specifics of the event store, used only through `ledger.storage`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.chain import CHAIN_TABLE, GENESIS, link


class SQLiteEventRecorder(SQLiteApplicationRecorder):
    """eventsourcing's recorder, also writing each event's link in the hash chain
    (`ledger.chain`) in the same transaction; SQLite has one writer at a time, so the chain
    follows the log's order."""

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        assert ids is not None and len(ids) == len(stored_events)
        c.execute(f"SELECT chain_hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1")
        last = c.fetchone()
        links = link(
            last[0] if last else GENESIS,
            (
                (position, event.originator_id, event.originator_version, event.topic, event.state)
                for position, event in zip(ids, stored_events, strict=True)
            ),
        )
        c.executemany(
            f"INSERT INTO {CHAIN_TABLE} (position, content_hash, chain_hash) VALUES (?, ?, ?)",
            links,
        )
        return ids
