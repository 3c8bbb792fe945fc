"""Rows into SQLite many to a statement: the event store's batches and the read models'
rows, which the sqlite3 module would otherwise step one statement a row."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

# Rows per multi-row INSERT of the log's events, links and snapshots: 50 took as few
# instructions as 100 or 200.
ROWS_PER_INSERT = 50


def insert_together(
    cursor: Any, insert: str, rows: Sequence[Sequence[object]], per_statement: int = ROWS_PER_INSERT
) -> None:
    """`cursor.executemany(insert, rows)`, the same rows inserted in the same order, with
    `per_statement` rows to a statement (`insert` with its one row's `VALUES (...)` repeated;
    fewer where SQLite's limit on a statement's parameters says so) and the rest through
    `executemany`. `executemany` runs the statement's program to its end once per row,
    releasing and taking back the GIL around each step and resetting the statement after it:
    a ledger's event and its link cost about 4,500 instructions a row more that way than as
    rows of a statement of 50, the read models' Stripe rows an eighth to a third more CPU. A
    statement inserts its rows in the order of its VALUES, each new one at the table's
    largest rowid plus one, as a statement a row does; an IntegrityError undoes the
    statement, and the caller's transaction, as before."""
    if rows:
        insert_values(cursor, insert, list(chain.from_iterable(rows)), len(rows[0]), per_statement)


def insert_values(
    cursor: Any, insert: str, values: list[object], width: int, per_statement: int = ROWS_PER_INSERT
) -> None:
    """`insert_together` of the rows whose `width` values each follow one another in `values`:
    a statement binds a list of its rows' values, which a caller that builds them can make
    at once rather than as a tuple a row taken apart again (the log's batches)."""
    count = len(values) // width
    size = max(1, min(per_statement, _parameters_max() // max(1, width)))
    full = count - count % size if size > 1 else 0
    if full:
        statement, step = _multi_row(insert, size), size * width
        for at in range(0, full * width, step):
            cursor.execute(statement, values[at : at + step])
    if full < count:
        rest = range(full * width, count * width, width)
        cursor.executemany(insert, [values[at : at + width] for at in rest])


@lru_cache(maxsize=256)
def _multi_row(insert: str, size: int) -> str:
    """`insert` (one row's `... VALUES (...)`) with `size` rows' VALUES."""
    head, _, row = insert.rpartition("VALUES")
    return head + "VALUES " + ", ".join([row.strip()] * size)


@lru_cache(maxsize=1)
def _parameters_max() -> int:
    """The most parameters a statement may bind: the SQLite library's own limit (999 before
    3.32, 32,766 since), the same for every connection this process opens (none sets it)."""
    probe = sqlite3.connect(":memory:")
    try:
        return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        probe.close()
