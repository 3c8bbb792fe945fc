"""How a catch-up cuts the log into batches and what runs between them: the collector is
held off from the first batch to the last."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ledger import Ledger
from projections.read_models import ReadModels
from tests.support.records import charged_payment_intents

BATCH = 20


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was:
            gc.disable()


def test_the_collector_is_held_off_between_batches(url: str, collector_on: None) -> None:
    """Between two batches the next one's events and rows (read and built ahead) are alive:
    a collection there walked them all to free next to nothing."""
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(40))
        between: list[bool] = []
        read_models.refresh(batch_size=BATCH, progress=lambda _: between.append(gc.isenabled()))
        assert len(between) > 3
        assert not any(between)
        assert gc.isenabled()  # on again once the catch-up is over
