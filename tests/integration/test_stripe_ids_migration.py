"""The Stripe read model's id columns in collation "C" (migration 0018) on a store holding
rows, going down and up again: the rows are kept, the read model catches up from where it
stood, and a rebuild gives the same rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, select, text

from ledger import Ledger
from ledger.storage import parse_database_url
from migrations import upgrade
from projections.read_models import ReadModels
from projections.stripe_observations import StripeObservationsProjection
from tests.support.migrating import downgraded
from tests.support.records import charged_payment_intents

COLLATIONS = text(
    "SELECT table_name, column_name, collation_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name LIKE 'stripe%'"
)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def _rows(conn: Connection) -> dict[str, list[Any]]:
    return {
        table.name: sorted(map(tuple, conn.execute(select(table))), key=repr)
        for table in StripeObservationsProjection.tables
    }


def _bytewise(conn: Connection) -> set[tuple[str, str]]:
    """The Stripe tables' columns in collation "C" (PostgreSQL)."""
    return {(t, c) for t, c, collation in conn.execute(COLLATIONS) if collation == "C"}


def test_the_stripe_ids_collation_goes_down_and_up_with_its_rows(url: str) -> None:
    postgres = url.startswith("postgresql")
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(6))
        read_models.refresh()
        with read_models.engine.connect() as conn:
            before = _rows(conn)
            if postgres:
                assert ("stripe_links", "target_id") in _bytewise(conn)
                assert ("stripe_payments", "offline_id") not in _bytewise(conn)

    with downgraded(url, "0017") as conn:
        if postgres:
            assert _bytewise(conn) == set()
        assert _rows(conn) == before
    upgrade(parse_database_url(url))

    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        with read_models.engine.connect() as conn:
            assert _rows(conn) == before
            if postgres:
                assert len(_bytewise(conn)) == 19
        ledger.observe(charged_payment_intents(2, 6))
        assert read_models.refresh() > 0
        with read_models.engine.connect() as conn:
            caught_up = _rows(conn)
        read_models.rebuild()
        with read_models.engine.connect() as conn:
            assert _rows(conn) == caught_up
