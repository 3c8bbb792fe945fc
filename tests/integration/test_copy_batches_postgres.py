"""A large batch goes to PostgreSQL by COPY at positions taken from the sequence under the chain
head's lock. A batch the database refuses midway stores nothing and leaves the head where it
was: the positions it took are a gap the next writes go past, and the log still verifies.
Writers interleaving live appends and large batches each get consecutive positions, none
shared, and one chain."""

from __future__ import annotations

import threading
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from psycopg import Connection, Cursor

from adapters.audit import verify
from ledger import Ledger
from ledger.postgres import APPEND_EVENTS_MAX
from tests.support import records as r

pytestmark = pytest.mark.postgres

TOPIC = "offline_ledger:Test.Event"


def events(count: int) -> list[StoredEvent]:
    return [StoredEvent(uuid4(), 1, TOPIC, b"{}") for _ in range(count)]


def test_a_large_batch_refused_midway_stores_nothing(postgres_url: str) -> None:
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        recorder = ledger.store.recorder
        before = ledger.last_position()
        stream = uuid4()
        batch = [StoredEvent(stream, n, TOPIC, b"{}") for n in range(1, APPEND_EVENTS_MAX + 4)]
        batch.append(StoredEvent(stream, 1, TOPIC, b"{}"))  # a version taken: COPY fails

        with pytest.raises(IntegrityError):
            recorder.insert_events(batch)

        assert ledger.last_position() == before
        live = recorder.insert_events(events(1))
        large = recorder.insert_events(events(APPEND_EVENTS_MAX + 4))
        assert live[0] > before and large == list(range(large[0], large[0] + len(large)))
        assert large[0] > live[0]
        assert verify(ledger).ok


def test_writers_interleaving_live_and_large_batches_share_no_position(
    postgres_url: str,
) -> None:
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        recorder = ledger.store.recorder
        written: list[list[int]] = []
        failures: list[BaseException] = []

        def write(writer: int) -> None:
            try:
                for n in range(20):
                    size = 1 if (n + writer) % 2 else APPEND_EVENTS_MAX + 4
                    written.append(list(recorder.insert_events(events(size))))
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=write, args=(writer,)) for writer in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert not failures
        every = [position for batch in written for position in batch]
        assert len(every) == len(set(every))
        assert all(batch == list(range(batch[0], batch[0] + len(batch))) for batch in written)
        assert verify(ledger).ok


def test_a_large_batch_is_written_in_five_round_trips(postgres_url: str) -> None:
    """The transaction begun with the head's lock and committed with the head's move (each
    pair one query of the simple protocol), between them the positions taken and the two
    COPYs; the snapshots a batch makes due add one."""
    sent: list[str] = []

    def counted(method: str) -> Any:
        original = getattr(Cursor, method)

        def call(self: Cursor[Any], *args: Any, **kwargs: Any) -> Any:
            sent.append(method)
            return original(self, *args, **kwargs)

        return call

    def command(self: Connection[Any], command: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(f"command {command!r}")
        return exec_command(self, command, *args, **kwargs)

    exec_command = Connection._exec_command
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        recorder = ledger.store.recorder
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Cursor, "execute", counted("execute"))
            patch.setattr(Cursor, "copy", counted("copy"))
            patch.setattr(Connection, "_exec_command", command)
            positions = recorder.insert_events(events(APPEND_EVENTS_MAX + 4))
        assert sent == ["execute", "execute", "copy", "copy", "execute"]
        assert len(positions) == APPEND_EVENTS_MAX + 4
        assert verify(ledger).ok
