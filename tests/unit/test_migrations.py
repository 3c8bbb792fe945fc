"""Migrations are leaves: they copy the code they run. These tests keep each copy honest
against the live code it was taken from, so a change to the live code that would make old
stores disagree with new ones fails here instead of passing silently."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import MetaData, Table

from ledger import chain, storage

VERSIONS = Path(__file__).parents[2] / "migrations" / "versions"


def migration(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, VERSIONS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EVENT_CHAIN = migration("0003_event_chain")

rows = st.lists(
    st.tuples(
        st.uuids(),
        st.integers(min_value=1, max_value=2**62),
        st.text(min_size=1, max_size=80),
        st.binary(max_size=300),
    ),
    max_size=20,
)


def test_the_chain_migration_names_the_tables_the_live_code_uses() -> None:
    assert EVENT_CHAIN.CHAIN_TABLE == chain.CHAIN_TABLE
    assert EVENT_CHAIN.GENESIS == chain.GENESIS
    assert EVENT_CHAIN.POSTGRES_EVENTS_TABLE == storage.POSTGRES_EVENTS_TABLE
    assert EVENT_CHAIN.SQLITE_EVENTS_TABLE == storage.SQLITE_EVENTS_TABLE


@given(rows=rows, previous=st.binary(min_size=32, max_size=32))
def test_the_chain_migration_links_events_exactly_as_the_live_chain_does(
    rows: list[tuple[UUID, int, str, bytes]], previous: bytes
) -> None:
    positioned = [(position, *row) for position, row in enumerate(rows, start=1)]
    assert EVENT_CHAIN.link(previous, positioned) == chain.link(previous, positioned)


def test_the_chain_head_migration_names_the_tables_the_live_code_uses() -> None:
    head = migration("0009_chain_head")
    assert (head.CHAIN_TABLE, head.CHAIN_HEAD_TABLE) == (chain.CHAIN_TABLE, chain.CHAIN_HEAD_TABLE)
    assert head.GENESIS == chain.GENESIS


def test_the_stripe_movements_migration_names_the_live_projection_and_tables() -> None:
    from projections import tables
    from projections.stripe_observations import StripeObservationsProjection

    movements = migration("0005_stripe_movements")
    assert StripeObservationsProjection.name == movements.PROJECTION
    assert all(name in tables.metadata.tables for name in movements.TABLES)


def test_head_is_the_newest_revision_alembic_finds() -> None:
    """`migrations.HEAD` is what every command compares a database with, without loading
    Alembic: a new revision must move it."""
    from alembic.script import ScriptDirectory

    from migrations import HEAD, HERE

    assert ScriptDirectory(str(HERE)).get_current_head() == HEAD


def test_the_api_keys_migration_creates_the_live_table() -> None:
    from adapters.http.api_keys import api_keys

    copy = Table("api_keys", MetaData(), *migration("0007_api_keys").columns())
    assert _shape(copy) == _shape(api_keys)


def test_the_offline_sales_migration_names_the_live_tables() -> None:
    from projections import tables

    sales = migration("0010_offline_sales")
    live = (tables.offline_sales.name, tables.offline_sale_locations.name)
    assert live == (sales.SALES_TABLE, sales.LOCATIONS_TABLE)


@pytest.mark.parametrize(
    "name",
    [
        "0011_offline_refusals",
        "0012_offline_configurations",
        "0013_what_if_holds",
        "0014_what_if_codes",
    ],
)
def test_the_offline_sales_start_overs_name_the_live_tables_and_columns(name: str) -> None:
    """The migrations that empty the offline sales read model for a new column."""
    from projections import tables
    from projections.read_models import PROJECTIONS

    done = migration(name)
    live = (tables.offline_sales.name, tables.offline_sale_locations.name)
    assert live == (done.SALES_TABLE, done.LOCATIONS_TABLE)
    assert tables.projection_positions.name == done.POSITIONS_TABLE
    assert done.PROJECTION in {projection.name for projection in PROJECTIONS}
    if name == "0011_offline_refusals":
        assert done.SEEN in tables.offline_sales.columns
    elif name == "0012_offline_configurations":
        assert done.CONFIGS in tables.offline_sale_locations.columns
        assert done.CONFIG not in tables.offline_sale_locations.columns
    elif name == "0014_what_if_codes":
        assert all(column in tables.offline_sale_locations.columns for column in done.CODE_LISTS)
        assert done.INDEX in {index.name for index in tables.offline_sales.indexes}
        copy = Table(done.SALES_TABLE, MetaData(), *done.sale_columns())
        assert _shape(copy) == _shape(tables.offline_sales)


def _shape(table: Table) -> list[tuple[str, str, bool, bool]]:
    return [(c.name, str(c.type), c.primary_key, bool(c.nullable)) for c in table.columns]


def test_the_stripe_payments_migration_names_the_live_tables_and_indexes() -> None:
    from projections import tables
    from projections.stripe_observations import StripeObservationsProjection

    done = migration("0015_stripe_payments")
    assert StripeObservationsProjection.name == done.PROJECTION
    assert tables.projection_positions.name == done.POSITIONS_TABLE
    live = {table.name for table in StripeObservationsProjection.tables}
    assert set(done.EMPTIED) | {done.KEYS_TABLE, done.PAYMENTS_TABLE} == live
    for name, index, column in (*done.INDEXES, (done.PAYMENTS_TABLE, *done.PAYMENTS_INDEX)):
        found = {i.name: [c.name for c in i.columns] for i in tables.metadata.tables[name].indexes}
        assert found[index] == [column]
    for columns, table in (
        (done.key_columns(), tables.stripe_keys),
        (done.payment_columns(), tables.stripe_payments),
    ):
        assert _shape(Table(table.name, MetaData(), *columns)) == _shape(table)


def test_the_settling_migration_names_the_live_table_column_and_projection() -> None:
    from projections import tables
    from projections.read_models import PROJECTIONS
    from projections.runner import SettlingProjection

    done = migration("0016_projection_settling")
    live = tables.projection_positions
    assert live.name == done.POSITIONS_TABLE
    copy = Table(live.name, MetaData(), done.unsettled_column())
    assert _shape(copy) == [c for c in _shape(live) if c[0] == "unsettled"]
    settling = [p for p in PROJECTIONS if isinstance(p, SettlingProjection)]
    assert [p.name for p in settling] == [done.PROJECTION]
    assert {t.name for t in settling[0].tables} == set(done.TABLES)


def test_the_generation_migration_names_the_live_table_and_column() -> None:
    from projections import tables

    done = migration("0017_projection_generation")
    live = tables.projection_positions
    assert live.name == done.POSITIONS_TABLE
    copy = Table(live.name, MetaData(), done.generation_column())
    assert _shape(copy) == [c for c in _shape(live) if c[0] == "generation"]


def test_the_stripe_ids_migration_names_the_live_bytewise_columns() -> None:
    """Every column 0018 puts in collation "C" is one the live tables declare so
    (`tables.stripe_id`), of the same length, and no other is."""
    from sqlalchemy.dialects import postgresql

    from projections import tables

    done = migration("0018_stripe_ids_bytewise")
    dialect = postgresql.dialect()
    live = {
        (table.name, column.name, column.type.length)  # type: ignore[attr-defined]
        for table in tables.metadata.tables.values()
        for column in table.columns
        if 'COLLATE "C"' in column.type.compile(dialect=dialect)
    }
    copied = {(table, name, length) for table, columns in done.COLUMNS for name, length in columns}
    assert copied == live
