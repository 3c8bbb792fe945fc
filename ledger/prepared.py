"""A statement run once per live record: prepared once on each connection of the pool, then
run through libpq directly (psycopg's `pq` layer), its parameters already in binary.

psycopg's cursor is made for any statement and any Python value: each execution makes a
cursor and its adapters' map, converts the query and its parameters, looks the statement up
in the connection's prepared cache, and builds its rows through a row maker. For the one
statement of a live record (`ledger.postgres`), whose parameters are bytes already, that was
about 40 µs of the client's CPU per record; the same statement sent with
`PQsendQueryPrepared` costs the send, the wait and the result.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

from psycopg import Connection, errors
from psycopg.generators import execute
from psycopg.pq import DiagnosticField, ExecStatus, Format, TransactionStatus
from psycopg.pq.abc import PGresult

# invalid_sql_statement_name: the session holds no statement of that name. psycopg sends
# DEALLOCATE ALL after every rollback, DISCARD ALL or schema change it runs while it has
# statements of its own prepared (a failed large batch's, the pool's reset of a connection
# returned in a transaction).
_NOT_PREPARED = b"26000"
# Each statement's name its own: recorders sharing a pool (events and snapshots) each prepare.
_NAMES = itertools.count(1)


def numbered(template: str) -> str:
    """`template` with its psycopg placeholders (`%s`, `%b`) numbered as PostgreSQL's own
    (`$1`, `$2`, ...), in order: done on the statement's own text, before any identifier is
    put in, so that no name in it can be taken for one."""
    count = itertools.count(1)
    return re.sub("%[sb]", lambda _: f"${next(count)}", template)


class Prepared:
    """One statement and its parameters' types (OIDs), prepared on a connection the first
    time it runs there, under a name of its own (psycopg's are `_pg3_<n>`)."""

    def __init__(self, text: bytes, types: Sequence[int]) -> None:
        self.name = b"ledger_%d" % next(_NAMES)
        self.text = text
        self.types = list(types)
        self.formats = [Format.BINARY] * len(self.types)
        # The connections it is prepared on; a connection the pool closed goes with its entry.
        self.prepared_on: WeakKeyDictionary[Connection[Any], bool] = WeakKeyDictionary()

    def run(self, conn: Connection[Any], values: Sequence[bytes]) -> PGresult:
        """The statement's result on `conn` with `values` (each its parameter in binary), in
        binary; a psycopg error if it failed, as a cursor raises it. Prepared again once if
        the session lost it (a DEALLOCATE ALL): a statement that does not exist ran nothing."""
        with conn.lock:
            if conn not in self.prepared_on:
                self._prepare(conn)
            result = self._execute(conn, values)
            if (
                result.status == ExecStatus.FATAL_ERROR
                and result.error_field(DiagnosticField.SQLSTATE) == _NOT_PREPARED
                and conn.pgconn.transaction_status == TransactionStatus.IDLE
            ):
                self._prepare(conn)
                result = self._execute(conn, values)
        if result.status == ExecStatus.FATAL_ERROR:
            raise errors.error_from_result(result, encoding=conn.info.encoding)
        return result

    def _execute(self, conn: Connection[Any], values: Sequence[bytes]) -> PGresult:
        conn.pgconn.send_query_prepared(self.name, values, self.formats, Format.BINARY)
        results: list[PGresult] = conn.wait(execute(conn.pgconn))
        return results[0]

    def _prepare(self, conn: Connection[Any]) -> None:
        # Noted before it is sent: an interrupt while it is under way (a KeyboardInterrupt,
        # which psycopg's wait raises once it has read the server's answer) may leave it
        # prepared on the server, and preparing it again there would fail
        # (duplicate_prepared_statement) at every later record on this connection. Noted
        # and not prepared (interrupted first, or refused), it is prepared again at its
        # first run, after one execution the server refuses (`run`'s retry).
        self.prepared_on[conn] = True
        conn.pgconn.send_prepare(self.name, self.text, self.types)
        results: list[PGresult] = conn.wait(execute(conn.pgconn))
        if results[0].status == ExecStatus.FATAL_ERROR:
            raise errors.error_from_result(results[0], encoding=conn.info.encoding)
