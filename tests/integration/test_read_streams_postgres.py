"""A live write that read a stream without writing it is refused when that stream moved on,
even when the writer that moved it held the chain head's lock while this one waited for it:
the check must see what the holder committed, not the snapshot taken before the wait; and
it is stored when the holder wrote other streams only."""

from __future__ import annotations

import threading
import time
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger import Ledger
from ledger.chain import CHAIN_HEAD_TABLE
from ledger.storage import POSTGRES_EVENTS_TABLE
from tests.support import records as r

pytestmark = pytest.mark.postgres

WAIT_SECONDS = 60  # only reached if the waiting write never queues for the lock


@pytest.mark.parametrize("holder_moves", ["the stream read", "another stream"])
def test_a_write_that_waited_for_the_head_checks_what_its_holder_wrote(
    postgres_url: str, holder_moves: str
) -> None:
    base, schema = postgres_url.split("?schema=")
    events = f'"{schema}".{POSTGRES_EVENTS_TABLE}'
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        recorder = ledger.store.recorder
        with psycopg.connect(base) as holder:
            stream, version, topic, state = holder.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {events} "
                "ORDER BY notification_id DESC LIMIT 1"
            ).fetchone()
            holder.execute(f'SELECT position FROM "{schema}".{CHAIN_HEAD_TABLE} FOR UPDATE')
            (moved_to,) = holder.execute(
                f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s) RETURNING notification_id",
                (stream, version + 1, topic, state)
                if holder_moves == "the stream read"
                else (uuid4(), 1, topic, state),
            ).fetchone()
            holder.execute(f'UPDATE "{schema}".{CHAIN_HEAD_TABLE} SET position = %s', (moved_to,))

            newcomer = uuid4()
            outcome: list[object] = []

            def write() -> None:
                try:
                    outcome.append(
                        recorder.insert_events(
                            [StoredEvent(newcomer, 1, topic, state)],
                            unchanged=[(UUID(str(stream)), version)],
                        )
                    )
                except IntegrityError as error:
                    outcome.append(error)

            writer = threading.Thread(target=write)
            writer.start()
            deadline = time.monotonic() + WAIT_SECONDS
            with psycopg.connect(base, autocommit=True) as watcher:
                while not watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()[0]:
                    assert time.monotonic() < deadline, "the write never waited for the lock"
                    time.sleep(0.01)
            holder.commit()
            writer.join(WAIT_SECONDS)

        assert len(outcome) == 1
        if holder_moves == "the stream read":
            assert isinstance(outcome[0], IntegrityError), outcome
        else:
            assert outcome == [[moved_to + 1]]
        with psycopg.connect(base) as reader:
            stored = reader.execute(
                f"SELECT count(*) FROM {events} WHERE originator_id = %s", (newcomer,)
            ).fetchone()[0]
        assert stored == (holder_moves == "another stream")


def test_the_streams_read_are_looked_up_by_index_however_large_the_log(postgres_url: str) -> None:
    """A live write's check of the streams it read stays an index lookup in the plan the
    server keeps for the prepared append (a generic plan: the arrays' sizes unknown) on a log
    it has no statistics for (autovacuum off or not yet run). As a join, the planner hashed
    the read streams and scanned every stored event, so a record's cost grew with the log."""
    base, schema = postgres_url.split("?schema=")
    events = f'"{schema}".{POSTGRES_EVENTS_TABLE}'
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        statement = ledger.store.recorder.append_statement
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                "SELECT gen_random_uuid(), 1, 'padding', '\\x00'::bytea "
                "FROM generate_series(1, 100000)"
            )
            conn.execute(f"PREPARE append AS {statement.decode()}")  # numbered as prepared
            conn.execute("SET plan_cache_mode = force_generic_plan")
            values = ([uuid4()], [1], True, [uuid4()], [1], ["topic"], [b"state"], [b"content"])
            plan = "\n".join(
                line
                for (line,) in psycopg.ClientCursor(conn).execute(
                    "EXPLAIN EXECUTE append (%s, %s, %s, %s, %s, %s, %s, %s)", values
                )
            )
    assert "Seq Scan on offlineledger_events" not in plan, plan
    assert "Index" in plan, plan


def test_the_append_keeps_its_generic_plan(postgres_url: str) -> None:
    """A live record's append is planned once per connection, not at every execution: after
    PostgreSQL's five custom plans of the prepared statement it keeps the generic one. When the
    planner could see the arrays' values, every custom plan counted the few events exactly, the
    generic plan looked dearer and the statement was planned again at each record, which cost
    more than running it."""
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        for _ in range(8):
            for record in r.stored_payment():
                ledger.record(record)
        datastore = ledger.store.recorder.datastore
        plans: list[dict[str, int]] = []
        with datastore.get_connection() as first, datastore.get_connection() as second:
            for conn in (first, second):
                plans += conn.execute(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE 'WITH RECURSIVE%%'",
                    prepare=False,
                ).fetchall()
    assert plans, "the append was never prepared"
    assert all(row["custom_plans"] <= 5 for row in plans), plans
    assert any(row["generic_plans"] for row in plans), plans
