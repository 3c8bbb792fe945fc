"""A live append sends its arrays already in PostgreSQL's binary format: the server stores each
event's stream id, version, topic and state as they were given, links them as `ledger.chain`
does (the content hashes the client sends, the chain hashes the server computes), checks the
streams read at their versions, and stores the snapshots with the events."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from adapters.audit import verify
from ledger import Ledger
from ledger.chain import CHAIN_HEAD_TABLE, CHAIN_TABLE, link
from ledger.postgres import APPEND_EVENTS_MAX
from ledger.storage import POSTGRES_EVENTS_TABLE, POSTGRES_SNAPSHOTS_TABLE
from tests.support import records as r

pytestmark = pytest.mark.postgres

TOPICS = ("offline_ledger:Test.Event", "offline_ledger:Test.Événement")


def test_a_live_append_stores_and_links_its_events_as_given(postgres_url: str) -> None:
    base, schema = postgres_url.split("?schema=")
    stream, other = uuid4(), uuid4()
    batch = [
        StoredEvent(stream, version, TOPICS[version % 2], bytes(range(version * 40 % 256)))
        for version in range(1, APPEND_EVENTS_MAX + 1)
    ]
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        recorder = ledger.store.recorder
        recorder.insert_events([StoredEvent(other, 2**40, TOPICS[1], b"\x00\xff")])
        with psycopg.connect(base) as conn:
            (head,) = conn.execute(
                f'SELECT chain_hash FROM "{schema}".{CHAIN_HEAD_TABLE}'
            ).fetchone()

        positions = recorder.insert_events(batch, unchanged=[(other, 2**40)])

        with psycopg.connect(base) as conn:
            stored = conn.execute(
                "SELECT notification_id, originator_id, originator_version, topic, state FROM "
                f'"{schema}".{POSTGRES_EVENTS_TABLE} WHERE originator_id = %s '
                "ORDER BY notification_id",
                (stream,),
            ).fetchall()
            links = conn.execute(
                f'SELECT position, content_hash, chain_hash FROM "{schema}".{CHAIN_TABLE} '
                "WHERE position = ANY(%s) ORDER BY position",
                (positions,),
            ).fetchall()
        given = [
            (position, event.originator_id, event.originator_version, event.topic, event.state)
            for position, event in zip(positions, batch, strict=True)
        ]
        assert stored == given
        assert links == link(head, given)
        assert verify(ledger).ok


def test_a_live_append_whose_stream_read_moved_stores_nothing(postgres_url: str) -> None:
    stream = uuid4()
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        recorder = ledger.store.recorder
        recorder.insert_events([StoredEvent(stream, 1, TOPICS[0], b"{}")])
        before = ledger.last_position()

        with pytest.raises(IntegrityError):
            recorder.insert_events(
                [StoredEvent(uuid4(), 1, TOPICS[0], b"{}")], unchanged=[(stream, 0)]
            )

        assert ledger.last_position() == before


def test_a_live_append_stores_its_snapshots_with_its_events(postgres_url: str) -> None:
    base, schema = postgres_url.split("?schema=")
    stream = uuid4()
    with Ledger.open(postgres_url) as ledger:
        recorder = ledger.store.recorder
        snapshot = StoredEvent(stream, 1, TOPICS[1], b'{"snapshot": true}')

        recorder.insert_events([StoredEvent(stream, 1, TOPICS[1], b"{}")], snapshots=[snapshot])

        with psycopg.connect(base) as conn:
            stored = conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM "
                f'"{schema}".{POSTGRES_SNAPSHOTS_TABLE}'
            ).fetchall()
        assert stored == [(stream, 1, TOPICS[1], b'{"snapshot": true}')]


def test_the_appends_dumpers_leave_other_arrays_to_psycopg(postgres_url: str) -> None:
    """The append's arrays are dumped as the bytes they already are, by their own classes:
    a binary COPY of lists whose types are given by OID, in the same process, still gets
    psycopg's own list dumpers."""
    base, schema = postgres_url.split("?schema=")
    row = ([uuid4()], [1, 2], ["a"], [b"x"])
    with psycopg.connect(base) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".arrays (ids uuid[], versions bigint[], topics text[], '
            "states bytea[])"
        )
        with conn.cursor() as curs:
            copy_into = f'COPY "{schema}".arrays FROM STDIN (FORMAT BINARY)'
            with curs.copy(copy_into) as copy:
                copy.set_types(["uuid[]", "bigint[]", "text[]", "bytea[]"])
                copy.write_row(row)
        assert conn.execute(f'SELECT * FROM "{schema}".arrays').fetchall() == [row]


def test_a_live_append_prepares_its_statement_again_once_the_session_lost_it(
    postgres_url: str,
) -> None:
    """The append is prepared once per connection and run through libpq, out of psycopg's
    sight: a rollback psycopg makes while it has statements of its own prepared ends with
    DEALLOCATE ALL, which drops the append's too. The next append prepares it again."""
    stream = uuid4()
    with Ledger.open(postgres_url) as ledger:
        recorder = ledger.store.recorder
        with recorder.datastore.get_connection() as conn:
            recorder.insert_events([StoredEvent(stream, 1, TOPICS[0], b"{}")])
            assert recorder._append_live(conn, [StoredEvent(stream, 2, TOPICS[0], b"{}")], (), ())
            with pytest.raises(ZeroDivisionError), conn.transaction():
                conn.execute("SELECT 1", prepare=True)
                raise ZeroDivisionError
            assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchall() == [
                {"n": 0}
            ]

            positions = recorder._append_live(
                conn, [StoredEvent(stream, 3, TOPICS[0], b"{}")], [(stream, 2)], ()
            )

        assert positions == [ledger.last_position()]
        assert verify(ledger).ok


def test_a_live_append_interrupted_while_it_prepares_leaves_its_connection_usable(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt (Ctrl-C in a session using the library) that lands while the append's
    statement is being prepared: the server prepared it, the interrupt reached the caller.
    The connection's next append runs the statement as prepared, without preparing it again
    (which the server refuses: duplicate_prepared_statement)."""
    stream = uuid4()
    with Ledger.open(postgres_url) as ledger:
        recorder = ledger.store.recorder
        with recorder.datastore.get_connection() as conn:
            wait = conn.wait

            def interrupted(generator: Any) -> Any:
                wait(generator)  # the server's answer read, as psycopg's wait does on Ctrl-C
                raise KeyboardInterrupt

            monkeypatch.setattr(conn, "wait", interrupted)
            with pytest.raises(KeyboardInterrupt):
                recorder._append_live(conn, [StoredEvent(stream, 1, TOPICS[0], b"{}")], (), ())
            monkeypatch.undo()
            assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchall() == [
                {"n": 1}
            ]

            positions = recorder._append_live(
                conn, [StoredEvent(stream, 1, TOPICS[0], b"{}")], (), ()
            )

        assert positions == [ledger.last_position()]
        assert verify(ledger).ok
