"""A projection's position follows the log, not only its own events: a read model whose topics
the log lacks (no word from Stripe yet) is caught up once, reads 0 lag, and still applies its
first event when one arrives."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ledger import Ledger, LedgerError
from ledger.observations import PaymentIntentObservation
from projections.read_models import PROJECTIONS, ReadModels
from projections.runner import position
from projections.stripe_observations import StripeObservationsProjection
from projections.tables import stripe_objects
from tests.support.generators import crash_day_records


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_projection_without_events_in_the_log_moves_to_its_end(url: str) -> None:
    records = list(crash_day_records(120))
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        assert not any(isinstance(r, LedgerError) for r in ledger.record_many(records))
        assert read_models.lag() == ledger.last_position() > 0
        read_models.refresh(batch_size=50)

        end = ledger.last_position()
        with read_models.engine.connect() as conn:
            positions = {p.name: position(conn, p.name) for p in PROJECTIONS}
            assert conn.execute(select(func.count()).select_from(stripe_objects)).scalar() == 0
        assert positions == dict.fromkeys(positions, end)
        assert read_models.lag() == 0
        assert read_models.refresh() == 0

        forwarded = next(r for r in records if r["type"] == "payment.forwarded")
        amount = next(
            r["amount"]
            for r in records
            if r["type"] == "payment.created" and r["offline_id"] == forwarded["offline_id"]
        )
        ledger.observe(
            [
                PaymentIntentObservation(
                    source="api",
                    payment_intent_id="pi_first_word",
                    offline_id=str(forwarded["offline_id"]),
                    amount=amount,
                    currency="usd",
                    status="succeeded",
                )
            ]
        )
        assert read_models.lag() > 0
        assert read_models.refresh() > 0
        with read_models.engine.connect() as conn:
            observed = conn.execute(select(stripe_objects.c.key)).scalars().all()
            name = StripeObservationsProjection.name
            assert position(conn, name) == ledger.last_position()
        assert observed == ["pi_first_word"]
        assert read_models.lag() == 0
