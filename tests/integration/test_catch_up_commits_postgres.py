"""A catch-up's batches commit on PostgreSQL without waiting for their WAL to be flushed
(`projections.runner._commit_unflushed`): the setting holds for each batch's transaction
alone, never for what the pooled connection runs after it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import Connection

from ledger import Ledger
from ledger.fields import StoredFields
from projections.read_models import ReadModels
from projections.stripe_observations import StripeObservationsProjection
from tests.support.records import charged_payment_intents

pytestmark = pytest.mark.postgres


def test_batches_commit_without_waiting_for_the_flush(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    apply = StripeObservationsProjection.apply

    def spied(
        self: StripeObservationsProjection, conn: Connection, events: Sequence[StoredFields]
    ) -> None:
        seen.append(str(conn.exec_driver_sql("SHOW synchronous_commit").scalar()))
        apply(self, conn, events)

    monkeypatch.setattr(StripeObservationsProjection, "apply", spied)
    with Ledger.open(postgres_url) as ledger, ReadModels(ledger) as models:
        ledger.observe(charged_payment_intents(3))
        assert models.refresh() > 0
        ledger.observe(charged_payment_intents(5))
        assert models.refresh() > 0
        assert seen == ["off", "off"]
        with models.writer.begin() as conn:
            # The pool's connection that ran the batches, as every other session has it.
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
