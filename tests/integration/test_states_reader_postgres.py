"""PostgreSQL's reader of the log (`ledger.postgres.PostgresStates`) reads in windows of
positions, each its own statement: whatever other writers commit between those statements,
what one read returns is a prefix of the log (of its topics) with no position left out,
else a catch-up would move its read models past events it never applied."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from ledger import Ledger
from ledger.postgres import PostgresStates
from ledger.storage import POSTGRES_EVENTS_TABLE
from tests.support import records as r

pytestmark = pytest.mark.postgres

BEFORE = 10  # events of the topic in the log when the read starts
BURST = 200  # events another writer commits between two of the reader's statements
LIMIT = 100  # events asked for: more than the log holds at first, fewer than after the burst


class _Interleaved:
    """A cursor that lets another writer commit a burst of events just before the reader's
    statement number `before` (counted from 1)."""

    def __init__(self, cursor: Any, burst: Any, before: int) -> None:
        self._cursor, self._burst, self._before = cursor, burst, before
        self.statements = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.statements += 1
        if self.statements == self._before:
            self._burst()
        return self._cursor.execute(*args, **kwargs)

    def fetchall(self) -> Any:
        return self._cursor.fetchall()


@pytest.mark.parametrize("before", [1, 2, 3])
def test_a_read_returns_a_prefix_of_the_log_whatever_commits_meanwhile(
    postgres_url: str, before: int
) -> None:
    base, schema = postgres_url.split("?schema=")
    events = f'"{schema}".{POSTGRES_EVENTS_TABLE}'
    with Ledger.open(postgres_url) as ledger, psycopg.connect(base, autocommit=True) as writer:
        ledger.record(r.location())
        topic, state = writer.execute(f"SELECT topic, state FROM {events} LIMIT 1").fetchone()

        def insert(count: int) -> None:
            with writer.transaction():
                for _ in range(count):
                    writer.execute(
                        f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                        "VALUES (%s, 1, %s, %s)",
                        (uuid4(), topic, state),
                    )

        insert(BEFORE - 1)
        recorder = ledger.store.recorder
        datastore = recorder.datastore
        cursors: list[_Interleaved] = []

        @contextmanager
        def connection() -> Iterator[Any]:
            with datastore.get_connection() as conn:
                real_cursor = conn.cursor

                @contextmanager
                def cursor(**kwargs: Any) -> Iterator[_Interleaved]:
                    with real_cursor(**kwargs) as inner:
                        cursors.append(_Interleaved(inner, lambda: insert(BURST), before))
                        yield cursors[-1]

                yield SimpleNamespace(cursor=cursor)

        reader = PostgresStates(recorder)
        reader.recorder = SimpleNamespace(  # type: ignore[assignment]
            datastore=SimpleNamespace(get_connection=connection)
        )
        read = reader(0, LIMIT, [topic])

        now = PostgresStates(recorder)(0, BEFORE + BURST, [topic])
        assert cursors[0].statements >= min(before, 2), "the burst came between two statements"
        assert [row[0] for row in read] == [row[0] for row in now[: len(read)]]
        assert len(read) >= BEFORE
