"""The fuzzer (`tests/support/fuzz.py`) at CI's size, 500 mutated inputs across the five edges, on
SQLite and on PostgreSQL; and what it found, kept as plain regression tests.

`python -m tests.support.fuzz --count 10000 --db URL` runs it at full size."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from adapters.stripe.events import observations
from ledger.errors import InvalidRecord
from ledger.moments import from_unix_seconds
from tests.support import fuzz
from tests.support.serve import event

CI_COUNT = 500


def test_mutated_inputs_break_no_promise_at_any_edge(database: str, tmp_path: Path) -> None:
    report = fuzz.run(CI_COUNT, database, tmp_path, seed=11)
    print("\n" + "\n".join(report.lines()))

    assert report.failures == []
    assert report.leaked == []
    assert report.found_by_scanner == []
    assert sum(t.tried for t in report.tallies.values()) == CI_COUNT
    for edge, tally in report.tallies.items():
        assert tally.tried == CI_COUNT // len(fuzz.EDGES), edge
        assert tally.refused + tally.accepted == tally.tried, edge
        assert tally.refused > 0 and tally.planted > 0, edge
    # Both sides are reached: inputs the ledger takes, whose contents are then searched.
    assert sum(t.accepted for t in report.tallies.values()) > CI_COUNT // 50


def test_a_refund_the_ledger_refuses_is_explained_without_its_values() -> None:
    """Found by the fuzzer: pydantic's own message quoted the charge id, digits and all."""
    charge = {
        "id": "ch_" + uuid.uuid4().hex[:20] + " 5105 1051 0510 5100",
        "object": "charge",
        "amount": 1250,
        "amount_refunded": 100,
        "currency": "usd",
        "payment_intent": "pi_1",
    }
    refunded = event("charge.refunded", charge)

    with pytest.raises(InvalidRecord) as refused:
        observations("charge.refunded", charge, from_unix_seconds(refunded["created"]))

    message = str(refused.value)
    assert "charge_id" in message and "5105" not in message
    assert re.search(r"[0-9]{6}", message) is None
