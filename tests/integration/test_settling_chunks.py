"""The fold at the end of a long catch-up (`projections.stripe_fold.ChunkedFold`) holds the
write lock a chunk at a time: on SQLite, where the lock is the whole database's, a writer
elsewhere (an ingest) gets in between two chunks without waiting, while the read model is
still marked unsettled; and the chunks fold the same rows as `fold_all` at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import Connection, event, select, update

from ledger import Ledger
from ledger.observations import PaymentIntentObservation
from projections import runner, stripe_fold
from projections.read_models import PROJECTIONS, ReadModels
from projections.runner import unsettled
from projections.stripe_fold import ChunkedFold, fold_all
from projections.stripe_observations import StripeObservationsProjection
from projections.tables import projection_positions, stripe_keys, stripe_payments
from tests.support import records as r
from tests.support.stripe_log import T0, stripe_log

INTENTS = 120
BATCH_SIZE = 40  # events per batch, ids per chunk of the fold (none folded at once)


def next_intent() -> PaymentIntentObservation:
    """A PaymentIntent the log does not hold yet."""
    return PaymentIntentObservation(
        source="api",
        payment_intent_id="pi_meanwhile",
        amount=700,
        amount_received=700,
        currency="usd",
        status="succeeded",
        created_at=T0,
        charge_id="ch_meanwhile",
        offline_collected=True,
    )


def folded(conn: Connection) -> list[list[Any]]:
    return [
        sorted(tuple(row) for row in conn.execute(select(t)))
        for t in (stripe_keys, stripe_payments)
    ]


@pytest.fixture
def read_models(sqlite_url: str) -> Iterator[ReadModels]:
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as models:
        ledger.observe(stripe_log(INTENTS))
        yield models


def test_a_writer_gets_in_between_the_chunks_of_the_fold(read_models: ReadModels) -> None:
    path = read_models.writer.url.database
    assert path
    name = StripeObservationsProjection.name
    seen: list[tuple[int, bool]] = []
    refused: list[str] = []

    def write_elsewhere() -> tuple[int, bool]:
        """A write transaction on a connection of its own that does not wait for the lock
        (busy timeout 0): it fails at once if the lock is held. Rolled back."""
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            found = other.execute(
                "SELECT position, unsettled FROM projection_positions WHERE name = ?", (name,)
            ).fetchone()
            other.execute("ROLLBACK")
            return (int(found[0]), bool(found[1])) if found else (0, False)
        finally:
            other.close()

    def after_each_transaction(dbapi_connection: Any, record: Any) -> None:
        seen.append(write_elsewhere())

    folding = ChunkedFold.step

    def step(self: ChunkedFold, conn: Connection) -> bool:
        # Within a chunk's transaction the write lock is held: the same writer is refused.
        try:
            write_elsewhere()
        except sqlite3.OperationalError as error:
            refused.append(str(error))
        return folding(self, conn)

    event.listen(read_models.writer, "checkin", after_each_transaction)
    try:
        with (
            patch.object(stripe_fold, "FOLD_ALL_CHUNKS_MAX", 0),
            patch.object(ChunkedFold, "step", step),
        ):
            read_models.refresh(batch_size=BATCH_SIZE)
    finally:
        event.remove(read_models.writer, "checkin", after_each_transaction)
    end = read_models.ledger.last_position()
    # The writer got in, at the end of the log with the mark still set, after the last batch,
    # after the catch-up's look for more, and after every chunk but the last.
    pending = [at for at, marked in seen if at == end and marked]
    assert len(pending) == len(refused) + 1
    assert len(refused) >= 4
    assert all("database is locked" in error for error in refused)
    assert seen[-1] == (end, False)
    with read_models.writer.connect() as conn:
        conn.begin()
        chunked = folded(conn)
        fold_all(conn)
        assert folded(conn) == chunked
        conn.rollback()
    assert len(chunked[1]) == INTENTS


@pytest.mark.parametrize("stripe_meanwhile", [False, True])
def test_a_batch_applied_meanwhile_starts_the_settling_over_only_if_it_held_stripe_events(
    read_models: ReadModels, stripe_meanwhile: bool
) -> None:
    """Another runner's batch moves every projection's position. One holding only the
    ledger's own records (an ingest going on during a long settling) changed no Stripe row:
    the chunks go on. One holding a Stripe observation may have changed rows already
    folded: the settling starts over."""
    ledger, engine = read_models.ledger, read_models.writer
    projection = next(p for p in PROJECTIONS if isinstance(p, StripeObservationsProjection))
    with (
        patch.object(stripe_fold, "FOLD_ALL_CHUNKS_MAX", 0),
        patch.object(runner, "_settle", lambda *_: None),
    ):
        read_models.refresh(batch_size=BATCH_SIZE)  # a catch-up stopped before settling
    with engine.connect() as conn:
        assert unsettled(conn, [projection])
    if stripe_meanwhile:
        ledger.observe([next_intent()])
    else:
        ledger.record(r.location(location_id="tml_elsewhere"))
    starts: list[int] = []
    stepping = ChunkedFold.step

    def step(self: ChunkedFold, conn: Connection) -> bool:
        if not starts or starts[-1] != id(self):
            starts.append(id(self))
        if len(starts) == 1 and self.after is not None:  # a runner's batch, mid-settling
            conn.execute(update(projection_positions).values(position=ledger.last_position()))
        return stepping(self, conn)

    with (
        patch.object(stripe_fold, "FOLD_ALL_CHUNKS_MAX", 0),
        patch.object(ChunkedFold, "step", step),
    ):
        runner._settle(ledger, engine, projection, BATCH_SIZE)

    assert len(starts) == (2 if stripe_meanwhile else 1)
    with engine.connect() as conn:
        assert not unsettled(conn, [projection])
        conn.rollback()
        conn.begin()
        chunked = folded(conn)
        fold_all(conn)
        assert folded(conn) == chunked
        conn.rollback()
