"""Going back below the mark of a pending fold (migration 0016) while a stopped catch-up
left Stripe's read model unsettled: the older code folds batch by batch and would build on
tables never folded, so that read model starts over; upgraded again, the store catches up
to what a rebuild makes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from ledger import Ledger
from ledger.storage import parse_database_url
from migrations import upgrade
from projections.read_models import PROJECTIONS, ReadModels
from projections.runner import position, unsettled
from projections.stripe_observations import StripeObservationsProjection
from tests.support.migrating import downgraded
from tests.support.records import charged_payment_intents
from tests.support.stopping import Stopped, stop

STRIPE = StripeObservationsProjection()
PAYMENT_INTENTS = 12


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def stripe_rows(read_models: ReadModels) -> list[list[tuple[Any, ...]]]:
    with read_models.engine.connect() as conn:
        return [
            sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
            for table in STRIPE.tables
        ]


def test_a_downgrade_starts_an_unsettled_stripe_read_model_over(url: str) -> None:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(PAYMENT_INTENTS))
        with pytest.raises(Stopped):
            read_models.refresh(stop, batch_size=10)
        with read_models.engine.connect() as conn:
            assert unsettled(conn, PROJECTIONS)
            assert 0 < position(conn, STRIPE.name) < ledger.last_position()

    with downgraded(url, "0015") as conn:
        assert position(conn, STRIPE.name) == 0
        for table in STRIPE.tables:
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0
    upgrade(parse_database_url(url))

    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        read_models.refresh()
        caught_up = stripe_rows(read_models)
        assert STRIPE.tables[-1].name == "stripe_payments" and caught_up[-1]
        read_models.rebuild()
        assert stripe_rows(read_models) == caught_up
