"""The latest version of many streams (`ledger.postgres.PostgresVersions`, asked by every batch
for the streams its cache does not hold) is each stream's last index entry, not a scan of the
event table: the log grows all day, and the table has no statistics until autovacuum analyzes
it (a first long ingest), when a planner seeing the ids chose to read every event."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from ledger import Ledger
from ledger.postgres import PostgresVersions

pytestmark = pytest.mark.postgres

TOPIC = "offline_ledger:Test.Event"


def test_the_versions_of_many_streams_are_read_by_index_on_a_table_never_analyzed(
    postgres_url: str,
) -> None:
    with Ledger.open(postgres_url) as ledger:
        recorder = ledger.store.recorder
        busy = uuid4()
        recorder.insert_events([StoredEvent(busy, n, TOPIC, b"{}") for n in range(1, 1_001)])
        recorder.insert_events([StoredEvent(uuid4(), 1, TOPIC, b"{}") for _ in range(20_000)])
        versions = PostgresVersions(recorder)
        asked = [busy, *(uuid4() for _ in range(200))]

        assert versions(asked) == {busy: 1_000}
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(b"EXPLAIN " + versions.sql.as_bytes(conn), (asked,))
            plan = "\n".join(str(row["QUERY PLAN"]) for row in cursor.fetchall())
    assert "Seq Scan" not in plan and "Bitmap" not in plan, plan
