"""Rows inserted many to a statement land as `executemany` lands them: the same rows, the same
rowids, in the same order; a duplicate key refuses the statement as it refused the row."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.sqlite_rows import insert_together, insert_values

VALUES = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.binary())


def _table(width: int) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    columns = ", ".join(f"c{i}" for i in range(width))
    conn.execute(f"CREATE TABLE t ({columns})")
    return conn


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda width: st.tuples(
            st.just(width),
            st.lists(st.tuples(*[VALUES] * width), max_size=260),
            st.sampled_from([1, 3, 50, 500]),
        )
    )
)
def test_the_rows_and_their_rowids_are_those_of_executemany(
    case: tuple[int, list[tuple[object, ...]], int],
) -> None:
    width, rows, per_statement = case
    insert = f"INSERT INTO t VALUES ({', '.join('?' * width)})"
    one_by_one, together, flat = _table(width), _table(width), _table(width)
    one_by_one.executemany(insert, rows)
    insert_together(together.cursor(), insert, rows, per_statement)
    insert_values(flat.cursor(), insert, [v for row in rows for v in row], width, per_statement)
    read = "SELECT rowid, * FROM t ORDER BY rowid"
    expected = one_by_one.execute(read).fetchall()
    assert together.execute(read).fetchall() == expected
    assert flat.execute(read).fetchall() == expected


def test_a_duplicate_key_refuses_the_insert() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    rows = [(k,) for k in range(120)] + [(7,)]
    with pytest.raises(sqlite3.IntegrityError):
        insert_together(conn.cursor(), "INSERT INTO t (k) VALUES (?)", rows[::-1])
