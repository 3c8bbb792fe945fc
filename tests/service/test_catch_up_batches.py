"""What a catch-up does around its batches: the collector is held off from the first batch
to the last, and a first catch-up's first batch looks up no row in tables known to be
empty."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from ledger import Ledger
from projections import runner, stripe_observations
from projections.read_models import ReadModels
from projections.runner import BATCH_SIZE_MAX
from projections.stripe_observations import StripeObservationsProjection
from tests.service.test_read_ahead import every_row
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


def test_a_first_catch_up_looks_up_no_row_for_its_first_batch(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At position 0 Stripe's tables are empty (a reset empties them as it moves the position
    there, and every write moves it on): the first batch's rows are built without a lookup;
    the batches after it look up what the batch before did not write, and the rows are those
    of the whole log applied in one batch."""
    lookups: list[int] = []  # each build's lookups in the tables, by the thread that built it
    counted = threading.local()
    load_rows = stripe_observations.load_rows
    build_unsettled = StripeObservationsProjection.build_unsettled

    def counting_load(*args: Any) -> Any:
        counted.n += 1
        return load_rows(*args)

    def counting_build(self: StripeObservationsProjection, *args: Any) -> Any:
        counted.n = 0
        try:
            return build_unsettled(self, *args)
        finally:
            lookups.append(counted.n)

    monkeypatch.setattr(stripe_observations, "load_rows", counting_load)
    monkeypatch.setattr(StripeObservationsProjection, "build_unsettled", counting_build)
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(40))
        read_models.refresh(batch_size=BATCH)
        caught_up = every_row(read_models)
        assert len(lookups) > 3
        assert lookups[0] == 0
        assert all(lookups[1:])

        monkeypatch.undo()
        read_models.rebuild(batch_size=BATCH_SIZE_MAX)
        assert every_row(read_models) == caught_up


class _Cycle:
    """Garbage only the collector frees: an object referring to itself."""

    def __init__(self) -> None:
        self.me = self


def test_other_threads_cycles_are_collected_during_a_long_catch_up(
    url: str, collector_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector is the process's: a cycle another thread leaves while a catch-up runs
    (here, between its batches) is freed within `PAUSED_COLLECTION_SECONDS` (made 0 here),
    not held until the catch-up's end."""
    monkeypatch.setattr(runner, "PAUSED_COLLECTION_SECONDS", 0.0)
    left: list[weakref.ref[_Cycle]] = []
    freed_before_the_end: list[bool] = []

    def between(_: int) -> None:
        if left:
            freed_before_the_end.append(left[-1]() is None)
        left.append(weakref.ref(_Cycle()))

    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        ledger.observe(charged_payment_intents(40))
        read_models.refresh(batch_size=BATCH, progress=between)
    assert len(freed_before_the_end) > 2
    assert all(freed_before_the_end)
