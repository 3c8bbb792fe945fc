"""A large batch goes to PostgreSQL by COPY at positions taken from the sequence under the chain
head's lock. A batch the database refuses midway stores nothing and leaves the head where it
was: the positions it took are a gap the next writes go past, and the log still verifies.
Writers interleaving live appends and large batches each get consecutive positions, none
shared, and one chain."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from psycopg import Connection, Cursor

from adapters.audit import verify
from ledger import Ledger
from ledger.postgres import APPEND_EVENTS_MAX
from tests.conftest import postgres_base_url
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


def _large_batch_failing_at_its_snapshots(
    ledger: Ledger, failure: Callable[[Any], None], expected: type[BaseException]
) -> None:
    """A large batch whose write fails between its BEGIN and its COMMIT (where its snapshots
    are written): nothing stored, the head where it was, the next large batch written through
    the same pool, and the log verifies."""
    ledger.record(r.location())
    recorder = ledger.store.recorder
    before = ledger.last_position()
    snapshot = type(recorder)._snapshot

    def failing(self: Any, curs: Any, snapshots: Any) -> None:
        failure(curs)
        snapshot(self, curs, snapshots)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(recorder), "_snapshot", failing)
        with pytest.raises(expected):
            recorder.insert_events(events(APPEND_EVENTS_MAX + 4))
    assert ledger.last_position() == before
    assert len(recorder.insert_events(events(APPEND_EVENTS_MAX + 4))) == APPEND_EVENTS_MAX + 4
    assert verify(ledger).ok


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_a_large_batch_interrupted_before_its_commit_stores_nothing(
    postgres_url: str, interruption: type[BaseException]
) -> None:
    """Begun by hand (`BEGIN` with the head's lock, one query) and committed with the head's
    move: what interrupts it in between stores nothing, and the pool writes the next batch."""

    def interrupt(_: Any) -> None:
        raise interruption

    with Ledger.open(postgres_url) as ledger:
        _large_batch_failing_at_its_snapshots(ledger, interrupt, interruption)


def test_a_large_batch_whose_connection_drops_before_its_commit_stores_nothing(
    postgres_url: str,
) -> None:
    def drop(curs: Any) -> None:
        server = postgres_base_url()
        assert server is not None
        with psycopg.connect(server, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (curs.connection.info.backend_pid,))

    with Ledger.open(postgres_url) as ledger:
        _large_batch_failing_at_its_snapshots(ledger, drop, OperationalError)
