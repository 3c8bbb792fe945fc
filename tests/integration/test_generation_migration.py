"""The count of a projection's resets (migration 0017) going down and up again: the positions
stay where they were, the count starts again at 0, and resets count from there."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from ledger import Ledger
from ledger.storage import parse_database_url
from migrations import upgrade
from projections.read_models import PROJECTIONS, ReadModels
from projections.runner import generation, position
from tests.support.migrating import downgraded
from tests.support.records import charged_payment_intents


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_the_generation_goes_down_and_up_with_its_migration(url: str) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(6))
        read_models.rebuild()
        read_models.rebuild()
        end = ledger.last_position()
        with read_models.engine.connect() as conn:
            assert {generation(conn, p.name) for p in PROJECTIONS} == {2}

    with downgraded(url, "0016") as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("projection_positions")}
        assert "generation" not in columns
        assert {position(conn, p.name) for p in PROJECTIONS} == {end}
    upgrade(parse_database_url(url))

    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        with read_models.engine.connect() as conn:
            assert {generation(conn, p.name) for p in PROJECTIONS} == {0}
            assert {position(conn, p.name) for p in PROJECTIONS} == {end}
        ledger.observe(charged_payment_intents(2, 6))
        assert read_models.refresh() > 0
        read_models.rebuild()
        with read_models.engine.connect() as conn:
            assert {generation(conn, p.name) for p in PROJECTIONS} == {1}
