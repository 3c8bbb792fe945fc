"""The log read in batches for the projections (`Ledger.stored_fields`): every event of the
topics asked for, once, in log order, however rare the topic and whatever the batch size (on
PostgreSQL the log is read a window of positions at a time, the window growing while it holds
too few)."""

from __future__ import annotations

import pytest

from ledger import Ledger, LedgerError
from ledger.fields import StoredFields
from ledger.location import Location
from ledger.payment import Payment
from projections.read_models import PROJECTIONS
from tests.support.generators import crash_day_records

EVERY_TOPIC = sorted({topic for projection in PROJECTIONS for topic in projection.topics})


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def batches(ledger: Ledger, topics: list[str], size: int) -> list[list[StoredFields]]:
    """The events of `topics`, read `size` at a time to the end of the log."""
    read: list[list[StoredFields]] = []
    after = 0
    while batch := ledger.stored_fields(after, size, topics):
        read.append(batch)
        after = batch[-1][0]
    return read


@pytest.mark.parametrize(
    "topics",
    [
        [Payment.Canceled.TOPIC],  # a few, spread over the day
        [Location.Configured.TOPIC],  # one per location, at the start
        [Payment.Created.TOPIC, Payment.Declined.TOPIC],
        EVERY_TOPIC,
    ],
)
@pytest.mark.parametrize("size", [1, 3, 500])
def test_batches_hold_every_event_of_their_topics_once_in_log_order(
    url: str, topics: list[str], size: int
) -> None:
    records = list(crash_day_records(60))
    with Ledger.open(url) as ledger:
        assert not any(isinstance(r, LedgerError) for r in ledger.record_many(records))
        whole = ledger.stored_fields(0, 10_000, EVERY_TOPIC)
        assert len(whole) < 10_000
        expected = [event for event in whole if event[2] in topics]
        assert expected

        read = batches(ledger, topics, size)

    assert [event for batch in read for event in batch] == expected
    assert all(len(batch) == size for batch in read[:-1])
    assert 0 < len(read[-1]) <= size
