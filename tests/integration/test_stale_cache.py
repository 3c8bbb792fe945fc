"""A live record takes the streams its ledger holds in memory without asking the store for
their versions (`UnitOfWork(optimistic=True)`). When another writer (another process, another
`Ledger` on the same database) moved one of them meanwhile, the write is refused by the store,
stores nothing, and runs again on fresh state: the answer is the one the fresh state gives."""

from __future__ import annotations

import uuid

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger import Ledger, identity
from tests.support import records as r


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_stream_read_but_not_written_that_moved_is_read_again(url: str) -> None:
    """The location is only read by a card's collection (for its SCA rule): the other writer's
    change of it must still reach the decision."""
    offline_id = str(uuid.uuid4())
    with Ledger.open(url) as ours, Ledger.open(url) as theirs:
        ours.record(r.location())
        ours.record(r.device())
        ours.record(r.created(offline_id))
        theirs.record(r.location(sca_required=True))
        result = ours.record(r.collected(offline_id, read_method="contactless_emv"))
    assert [breach["code"] for breach in result.breaches] == ["CONTACTLESS_NOT_ALLOWED_OFFLINE"]


def test_the_store_refuses_a_write_whose_read_stream_moved_and_stores_nothing(url: str) -> None:
    location = identity.location_id("tml_1")
    event = StoredEvent(uuid.uuid4(), 1, "offline_ledger:Anything", b"{}")
    with Ledger.open(url) as ledger:
        ledger.record(r.location())
        ledger.record(r.location(sca_required=True))  # the location is at version 2
        recorder = ledger.store.recorder
        last = recorder.max_notification_id()
        with pytest.raises(IntegrityError):
            recorder.insert_events([event], unchanged=[(location, 1)])
        assert recorder.max_notification_id() == last
        assert recorder.insert_events([event], unchanged=[(location, 2)])
