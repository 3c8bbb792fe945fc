"""What a catch-up costs the read models' writer: on SQLite its page caches and temporary
tables' journal kept in memory, its rows inserted without a statement journal; a Stripe batch
reads no row of a stream it begins."""

from __future__ import annotations

import ctypes
import ctypes.util
import sqlite3
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, select

from ledger import Ledger
from ledger.observations import PaymentIntentObservation
from projections import stripe_observations
from projections.read_models import WRITER_CACHE_KIB, ReadModels
from projections.runner import (
    BATCH_SIZE_MAX,
    READ_MODEL_ROWS_PER_INSERT,
    insert_values,
    load_rows,
)
from projections.stripe_fold import discard, fold_snapshot, swap_in
from projections.tables import stripe_objects
from tests.service.test_settling_interleaved import stripe_rows
from tests.support.records import charged_payment_intents


def test_the_writer_caches_more_pages_and_journals_temporary_tables_in_memory(
    sqlite_url: str,
) -> None:
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as read_models:
        with read_models.writer.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA main.cache_size").scalar() == -WRITER_CACHE_KIB
            assert pragma("PRAGMA temp.cache_size").scalar() == -WRITER_CACHE_KIB
            assert pragma("PRAGMA temp.journal_mode").scalar() == "memory"
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
        with read_models.engine.connect() as conn:  # the readers' engine keeps the defaults
            assert conn.exec_driver_sql("PRAGMA main.cache_size").scalar() != -WRITER_CACHE_KIB
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_a_row_breaking_a_constraint_fails_the_insert_and_leaves_the_rows_before_it(
    sqlite_url: str,
) -> None:
    """`INSERT OR FAIL`: the error is raised as before, and the rows of the statement before
    the failing one are not taken back (no statement journal kept for them); the caller's
    transaction is rolled back whole."""
    table = Table("t", MetaData(), Column("k", Integer, primary_key=True), Column("v", String))
    # One statement's rows (`READ_MODEL_ROWS_PER_INSERT`), the 301st a repeat.
    assert READ_MODEL_ROWS_PER_INSERT == 500
    rows = [(k, f"v{k}") for k in range(300)] + [(7, "again")]
    rows += [(k, "after") for k in range(300, 499)]
    with (
        Ledger.open(sqlite_url) as ledger,
        ReadModels(ledger) as read_models,
        read_models.writer.connect() as conn,
    ):
        table.create(conn)
        conn.commit()
        with pytest.raises(sqlite3.IntegrityError), conn.begin():
            insert_values(conn, table, rows)
            pytest.fail("not reached")
        with conn.begin():
            assert conn.execute(select(table)).all() == []
            try:
                insert_values(conn, table, rows)
            except sqlite3.IntegrityError:
                pass
            else:
                pytest.fail("no IntegrityError")
            assert conn.execute(select(table.c.k).order_by(table.c.k)).scalars().all() == (
                list(range(300))
            )
            conn.rollback()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_batch_reads_no_row_of_a_stream_it_sees_first(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Stripe objects' rows a batch reads are those of the streams it does not begin
    (their FirstSeen in an earlier batch); the rows it writes are a single batch's."""
    asked: list[set[str]] = []

    def loading(conn: Connection, table: Table, key: str, ids: Iterable[str]) -> Any:
        if table is stripe_objects:
            asked.append(set(ids))
        return load_rows(conn, table, key, ids)

    monkeypatch.setattr(stripe_observations, "load_rows", loading)
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(6))
        read_models.refresh()
        with read_models.engine.connect() as conn:
            found = conn.execute(select(stripe_objects.c.key, stripe_objects.c.stream_id))
            streams: dict[str, str] = {key: stream for key, stream in found}
        assert asked and not set().union(*asked)
        one_batch = stripe_rows(read_models)

        asked.clear()
        # pi_m5 seen again, with something new; pi_m6 first seen.
        ledger.observe(
            [
                PaymentIntentObservation(
                    source="api",
                    payment_intent_id="pi_m5",
                    amount=505,
                    amount_received=505,
                    currency="usd",
                    status="succeeded",
                    charge_id="ch_m5",
                    card_brand="visa",
                ),
                *charged_payment_intents(1, first=6),
            ]
        )
        read_models.refresh()
        assert set().union(*asked) == {streams["pi_m5"]}
        after = stripe_rows(read_models)
        read_models.rebuild(batch_size=BATCH_SIZE_MAX)
        assert stripe_rows(read_models) == after != one_batch


def test_the_snapshots_resolved_links_are_one_b_tree_on_sqlite(sqlite_url: str) -> None:
    """`fold_snapshot`'s table of resolved links has no rowid on SQLite: its rows are the
    primary key's B-tree alone; the fold made from it is the read model's."""
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(4))
        read_models.refresh()
        folded = stripe_rows(read_models)
        with read_models.writer.connect() as conn, conn.begin():
            made = fold_snapshot(conn)
            found = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_temp_master WHERE name = 'fold_snapshot_keys'"
            ).scalar()
            assert found is not None and found.rstrip().endswith("WITHOUT ROWID")
            swap_in(conn, made)
            discard(conn, made)
        assert stripe_rows(read_models) == folded


def test_a_writer_connection_gives_its_cached_pages_back_to_the_pool(sqlite_url: str) -> None:
    """The larger caches are held only while a connection is in use: a pooled connection
    lives as long as the process, and after a long catch-up its caches held about 120 MiB.
    Counted by SQLite's own tally of the memory it holds (the library Python's module uses)."""
    library = ctypes.CDLL(ctypes.util.find_library("sqlite3"))
    library.sqlite3_memory_used.restype = ctypes.c_int64
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as read_models:
        with read_models.writer.connect() as conn:
            with conn.begin():
                conn.exec_driver_sql("CREATE TABLE filler (v BLOB)")
                conn.exec_driver_sql(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < 8000) INSERT INTO filler SELECT randomblob(2000) FROM n"
                )
            held = library.sqlite3_memory_used()
        returned = library.sqlite3_memory_used()
    assert held - returned > 10 * 2**20  # the table's 16 MB of pages, most of them
