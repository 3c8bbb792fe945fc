"""A live record takes the streams its ledger holds in memory without asking the store for
their versions (`UnitOfWork(optimistic=True)`). When another writer (another process, another
`Ledger` on the same database) moved one of them meanwhile, the write is refused by the store,
stores nothing, and runs again on fresh state: the answer is the one the fresh state gives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger import Ledger, identity
from ledger.errors import LedgerError
from ledger.unit_of_work import AggregateCache, UnitOfWork
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


def test_a_payment_another_writer_created_is_a_repeat_or_a_conflict_here(url: str) -> None:
    """A live `payment.created` presumes its payment absent (no version query): when another
    writer created it, the insert finds the version taken and the record is decided again on
    the stored payment, with the answer a repeat gets."""
    offline_id = str(uuid.uuid4())
    with Ledger.open(url) as ours, Ledger.open(url) as theirs:
        ours.record(r.location())
        ours.record(r.device())
        theirs.record(r.created(offline_id, amount=1500))
        last = ours.store.recorder.max_notification_id()
        assert ours.record(r.created(offline_id, amount=1500)).recorded is False
        with pytest.raises(LedgerError) as ours_refused:
            ours.record(r.created(offline_id, amount=1600))
        with pytest.raises(LedgerError) as theirs_refused:
            theirs.record(r.created(offline_id, amount=1600))
        assert ours.store.recorder.max_notification_id() == last
        fresh = ours.record(r.created(amount=1500))
    assert ours_refused.value.to_dict() == theirs_refused.value.to_dict()
    assert fresh.recorded is True


def test_a_stream_presumed_absent_that_exists_refuses_the_unit(url: str) -> None:
    """Checked whether the unit writes (at version 0 with the streams read) or not (asked)."""
    offline_id = str(uuid.uuid4())
    payment = identity.payment_id(uuid.UUID(offline_id))
    device = identity.device_id("tmr_1")
    with Ledger.open(url) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        ledger.record(r.created(offline_id))
        recorder = ledger.store.recorder
        last = recorder.max_notification_id()

        def unit() -> UnitOfWork:
            uow = UnitOfWork(ledger.store, AggregateCache(), ledger._versions, optimistic=True)
            uow.presume_absent([payment])
            assert uow.get(payment) is None
            return uow

        with pytest.raises(IntegrityError):
            unit().commit()
        writes = unit()
        writes.get(device).connect_online("tml_2", None, None, datetime.now(UTC))
        with pytest.raises(IntegrityError):
            writes.commit()
        assert recorder.max_notification_id() == last
        absent = UnitOfWork(ledger.store, AggregateCache(), ledger._versions, optimistic=True)
        absent.presume_absent([uuid.uuid4()])
        assert absent.commit() == 0
