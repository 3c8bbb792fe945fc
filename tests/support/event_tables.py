"""The event store's own table, opened raw, for tests that tamper with stored events the way
an attacker with database access would (the ledger's API never lets them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from ledger import Ledger
from ledger.storage import POSTGRES_EVENTS_TABLE, SQLITE_EVENTS_TABLE, engine_for


@contextmanager
def event_table(url: str) -> Iterator[tuple[sa.Connection, str, str]]:
    with Ledger.open(url) as ledger:
        engine = engine_for(ledger.config)
        kind = ledger.config.kind
    try:
        with engine.begin() as conn:
            if kind == "postgresql":
                yield conn, POSTGRES_EVENTS_TABLE, "notification_id"
            else:
                yield conn, SQLITE_EVENTS_TABLE, "rowid"
    finally:
        engine.dispose()
