"""PostgreSQL specifics of the event store (psycopg 3), used only through `ledger.storage`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing import postgres
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import Environment, EnvType
from psycopg.sql import SQL, Identifier, Literal

from ledger.batches import iter_batches
from ledger.chain import CHAIN_TABLE, GENESIS, Link, Row, link
from ledger.storage import ID_CHUNK, store_not_empty


class PostgresEventRecorder(PostgresApplicationRecorder):
    """eventsourcing's recorder, inserting a batch as four typed arrays instead of one array
    of composite values, in binary (%b): psycopg adapts composites and text-format arrays in
    Python, escaping every value, which made the insert the largest cost of a batch. Same table
    lock, NOTIFY, order and returned ids."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_arrays_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=Identifier(datastore.schema), table=Identifier(events_table_name))
        self.last_link_statement = SQL(
            "SELECT chain_hash FROM {schema}.{table} ORDER BY position DESC LIMIT 1"
        ).format(schema=Identifier(datastore.schema), table=Identifier(CHAIN_TABLE))
        self.import_events_statement = SQL(
            "INSERT INTO {schema}.{table} "
            "(notification_id, originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::bigint[], %b::uuid[], %b::bigint[], %b::text[], %b::bytea[])"
        ).format(schema=Identifier(datastore.schema), table=Identifier(events_table_name))
        self.any_event_statements = [
            SQL("SELECT 1 FROM {schema}.{table} LIMIT 1").format(
                schema=Identifier(datastore.schema), table=Identifier(table)
            )
            for table in (events_table_name, CHAIN_TABLE)
        ]
        self.advance_positions_statement = SQL(
            "SELECT setval(pg_get_serial_sequence({table}, 'notification_id'), %s)"
        ).format(table=Literal(f'"{datastore.schema}"."{events_table_name}"'))
        self.insert_links_statement = SQL(
            "INSERT INTO {schema}.{table} (position, content_hash, chain_hash) "
            "SELECT * FROM unnest(%b::bigint[], %b::bytea[], %b::bytea[])"
        ).format(schema=Identifier(datastore.schema), table=Identifier(CHAIN_TABLE))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's insert, in one transaction but without psycopg's pipeline mode: with
        a large batch the client blocks in `Pipeline.sync` while the server waits in
        `ClientRead` inside the open transaction, holding the table lock (psycopg issue 685),
        and nothing ever returns. A handful of statements per batch gain nothing from a
        pipeline. Not retried here: a failed insert is reported, and every write is
        idempotent, so the caller's next attempt is the retry."""
        with self.datastore.transaction(commit=True) as curs:
            if not stored_events:
                return []
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self.insert_arrays_statement,
            (
                [event.originator_id for event in stored_events],
                [event.originator_version for event in stored_events],
                [event.topic for event in stored_events],
                [event.state for event in stored_events],
            ),
            prepare=True,
        )

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The new events' ids, then their links in the hash chain (`ledger.chain`), in the
        same transaction and still under the table lock taken for the insert."""
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        assert ids is not None and len(ids) == len(stored_events)
        curs.execute(self.last_link_statement, prepare=True)
        last = curs.fetchone()
        links = link(
            last["chain_hash"] if last else GENESIS,
            (
                (position, event.originator_id, event.originator_version, event.topic, event.state)
                for position, event in zip(ids, stored_events, strict=True)
            ),
        )
        self._insert_links(curs, links)
        return ids

    def _insert_links(self, curs: Any, links: Sequence[Link]) -> None:
        curs.execute(
            self.insert_links_statement,
            (
                [position for position, _, _ in links],
                [content for _, content, _ in links],
                [chained for _, _, chained in links],
            ),
            prepare=True,
        )

    def import_log(self, batches: Iterable[tuple[Sequence[Row], Sequence[Link]]]) -> None:
        """Write an exported log into this empty store at its own positions, with the links
        the caller computed, in one transaction that commits only when `batches` ends
        without an error; then the position sequence continues after the last one. The
        table lock of every insert is taken before the store is found empty."""
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            for statement in self.any_event_statements:
                curs.execute(statement)
                if curs.fetchone() is not None:
                    raise store_not_empty()
            last = 0
            for rows, links in batches:
                curs.execute(
                    self.import_events_statement,
                    tuple(list(column) for column in zip(*rows, strict=True)),
                )
                self._insert_links(curs, links)
                last = rows[-1][0] if rows else last
            if last:
                curs.execute(self.advance_positions_statement, (last,))


class PostgresFactory(postgres.PostgresFactory):
    """The library's factory, giving every connection of the pool the ledger's session
    limits (timeouts and TCP keepalives: `ledger.storage.SessionLimits`), which the library
    takes only in part from its environment. They are libpq parameters, JSON in
    POSTGRES_SESSION_PARAMETERS, added before the pool opens its first connection."""

    POSTGRES_SESSION_PARAMETERS = "POSTGRES_SESSION_PARAMETERS"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        parameters = self.env.get(self.POSTGRES_SESSION_PARAMETERS)
        if parameters:
            assert self.datastore.pool.closed, "the pool opened before its parameters were set"
            assert isinstance(self.datastore.pool.kwargs, dict)
            self.datastore.pool.kwargs.update(json.loads(parameters))


class PostgresVersions:
    """Latest version of many streams in one query."""

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self.recorder = recorder
        self.sql = SQL(
            "SELECT originator_id, MAX(originator_version) AS version FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )

    def __call__(self, ids: Iterable[UUID]) -> dict[UUID, int]:
        found: dict[UUID, int] = {}
        for chunk in iter_batches(ids, ID_CHUNK):
            with self.recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
                cursor.execute(self.sql, (chunk,), prepare=True)
                for row in cursor.fetchall():
                    found[row["originator_id"]] = row["version"]
        return found
