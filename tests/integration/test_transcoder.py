"""Stored events written before the transcoder moved to orjson's `default=` hook (the fixture
`tests/support/data/old_encoding_log/`, an audit export, and `old_encoding_snapshot.json`, both
written by the earlier transcoder from `old_log_records`) still load, verify, replay and grow on
SQLite and PostgreSQL, and the new transcoder writes the same bytes for the same state."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import orjson
import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    TranscodingNotRegisteredError,
)
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import TzInfo

from adapters.audit import check_invariants, verify
from adapters.audit_export import import_log, read_manifest
from ledger import Ledger, identity
from ledger.event_store import stored_events
from ledger.payment import Payment
from ledger.status_views import LocationStatus
from ledger.transcoder import OrjsonTranscoder, library_state
from projections.read_models import ReadModels
from tests.support import records as r

DATA = Path(__file__).parent.parent / "support" / "data"
OLD_LOG = DATA / "old_encoding_log"
OLD_SNAPSHOT = DATA / "old_encoding_snapshot.json"
PAYMENTS = 24


def old_log_records() -> Iterator[list[dict[str, Any]]]:
    """The batches the fixture was recorded from (then a snapshot of the location and the
    device, then one more payment.created)."""
    yield [r.location()]
    yield [r.device()]
    for n in range(PAYMENTS):
        offline_id = str(uuid.UUID(int=n + 1))
        records = r.stored_payment(
            offline_id, amount=1000 + n, capture_method="manual", occurred_at=r.at(n)
        )
        if n % 3 == 0:
            records.append(r.forwarded(offline_id, f"pi_{n}", "requires_capture"))
        if n % 6 == 0:
            records.append(r.captured(offline_id, f"pi_{n}", 1000 + n))
        if n % 7 == 1:
            records.append(r.canceled(offline_id))
        yield records
    yield [r.created(str(uuid.UUID(int=1000)), occurred_at=r.at(40))]


def old_states() -> list[bytes]:
    lines = (OLD_LOG / "events-00001.jsonl").read_text(encoding="utf-8").splitlines()
    return [base64.b64decode(json.loads(line)["state"]) for line in lines]


def payments(ledger: Ledger) -> list[tuple[Any, ...]]:
    found = []
    for n in [*range(PAYMENTS), 999]:
        state = ledger.payment(uuid.UUID(int=n + 1))
        found.append((state.status, state.amount, state.amount_captured, state.stripe_status))
    return found


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_old_log_loads_verifies_replays_and_grows(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{kind}_url"))
    manifest = read_manifest(OLD_LOG)
    with Ledger.open(url) as ledger:
        import_log(ledger, OLD_LOG)
        checked = verify(ledger)
        assert checked.ok and (checked.count, checked.head_hash) == (126, manifest.head_hash)
        assert check_invariants(ledger) == []
        with Ledger.open("memory://") as fresh:
            for batch in old_log_records():
                fresh.record_many(batch)
            assert payments(ledger) == payments(fresh)
            assert ledger.status() == fresh.status()
        with ReadModels(ledger) as read_models:
            assert read_models.refresh() > 0
            totals = read_models.stored_totals()
            assert sum(t.count for t in totals) == ledger.status()[0].offline_payments_count > 0
        ledger.record_many(r.stored_payment(amount=777))
        grown = verify(ledger)
        assert grown.ok and grown.count > checked.count


def test_old_states_are_written_again_byte_for_byte() -> None:
    """Decoding an old state and encoding it again gives its bytes: the chain over stored
    bytes means the same thing before and after the change."""
    with Ledger.open("memory://") as ledger:
        transcoder = ledger.store.mapper.transcoder
        snapshot = json.loads(OLD_SNAPSHOT.read_text(encoding="utf-8"))["state"].encode()
        for state in [*old_states(), snapshot]:
            assert transcoder.encode(transcoder.decode(state)) == state


def test_an_old_snapshot_reads_as_its_stream_replayed(sqlite_url: str) -> None:
    row = json.loads(OLD_SNAPSHOT.read_text(encoding="utf-8"))
    with Ledger.open(sqlite_url) as ledger:
        import_log(ledger, OLD_LOG)
        snapshot = ledger.store.mapper.to_domain_event(
            StoredEvent(
                uuid.UUID(row["originator_id"]),
                row["originator_version"],
                row["topic"],
                row["state"].encode(),
            )
        )
        assert isinstance(snapshot, Snapshot)
        replayed = ledger.store.repository.get(
            identity.location_id("tml_1"), version=row["originator_version"]
        )
        restored = snapshot.mutate(None)
        assert LocationStatus.of(restored, ["tmr_1"]) == LocationStatus.of(replayed, ["tmr_1"])


def test_a_uuid_in_a_state_is_refused_rather_than_stored_as_plain_text() -> None:
    with Ledger.open("memory://") as ledger, pytest.raises(TranscodingNotRegisteredError):
        ledger.store.mapper.transcoder.encode({"offline_id": uuid.uuid4()})


def test_a_uuid_in_a_batchs_state_is_refused() -> None:
    """A batch of events is encoded together: a UUID in any one's state refuses the batch."""
    with Ledger.open("memory://") as ledger:
        offline_id = uuid.uuid4()
        events = [
            Payment.Rejudged(
                originator_id=offline_id,
                originator_version=version,
                timestamp=datetime.now(UTC),
                breaches=[],
                cause_offline_id=cause,  # type: ignore[arg-type]
                occurred_at=datetime.now(UTC),
            )
            for version, cause in ((2, str(offline_id)), (3, offline_id))
        ]
        with pytest.raises(TranscodingNotRegisteredError):
            stored_events(ledger.store.mapper, events)


class UnhashableZone(tzinfo):
    """A fixed offset of a kind that cannot be hashed, as dateutil's zones (`tzutc`,
    `tzoffset`) are: a datetime a caller of the library may pass."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return self.offset

    def dst(self, dt: datetime | None) -> None:
        return None


# Every kind of offset a datetime in a state can carry: none, UTC, whole minutes as the wire's
# parser gives them (the standard library's fixed offsets) and as Stripe's facts carry them
# (pydantic's TzInfo), offsets in seconds and microseconds, and zones of other kinds,
# unhashable ones too.
OFFSETS = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes))),
    st.integers(-1439, 1439).map(lambda minutes: TzInfo(minutes * 60)),
    st.integers(-86_399, 86_399).map(TzInfo),
    st.timedeltas(timedelta(hours=-23), timedelta(hours=23)).map(timezone),
    st.timedeltas(timedelta(hours=-23), timedelta(hours=23)).map(UnhashableZone),
)


@given(st.datetimes(timezones=OFFSETS))
def test_a_datetime_is_written_as_the_library_writes_it(moment: datetime) -> None:
    """The library's own transcoder's bytes for any datetime, whatever its offset."""
    library, ours = JSONTranscoder(), OrjsonTranscoder()
    for transcoder in (library, ours):
        transcoder.register(DatetimeAsISO())
    state = {"timestamp": moment, "nested": [{"at": moment}]}
    assert ours.encode(state) == library.encode(state)


@given(
    st.datetimes(timezones=OFFSETS),
    st.datetimes(timezones=OFFSETS),
    st.datetimes(timezones=OFFSETS),
    st.booleans(),
)
def test_an_event_is_stored_as_the_library_stores_it(
    timestamp: datetime, stored_at: datetime, occurred_at: datetime, implied: bool
) -> None:
    """The ledger's way to an event's stored row (its datetimes tagged as the state is made)
    gives the library mapper's row over the library's transcoder, for events of either class
    version and datetimes at any depth."""
    with Ledger.open("memory://") as ledger:
        ours = ledger.store.mapper
        library = Mapper[uuid.UUID](transcoder=JSONTranscoder())
        library.transcoder.register(DatetimeAsISO())
        offline_id = uuid.uuid4()
        breaches: list[Any] = [{"code": "x", "message": "y", "seen": {"at": occurred_at}}]
        events = [
            Payment.ConfirmedOffline(
                originator_id=offline_id,
                originator_version=3,
                timestamp=timestamp,
                stored_at=stored_at,
                breaches=breaches,
                implied=implied,
                reported_late=not implied,
                occurred_at=occurred_at,
            ),
            Payment.Rejudged(
                originator_id=offline_id,
                originator_version=4,
                timestamp=timestamp,
                breaches=breaches,
                cause_offline_id=str(offline_id),
                occurred_at=occurred_at,
            ),
        ]
        for event in events:
            assert ledger.store.mapper.to_stored_event(event) == library.to_stored_event(event)
            assert list(stored_events(ours, [event])) == [library.to_stored_event(event)]
        # A batch's states are encoded together: each the same as alone.
        assert list(stored_events(ours, [*events, *events])) == [
            library.to_stored_event(event) for event in [*events, *events]
        ]


def test_a_state_nested_to_the_limit_is_written_in_a_batch_as_alone() -> None:
    """The batch's list puts each state one level deeper than `encode` does: a state nested
    as deep as orjson writes alone is written with the same bytes in a batch."""
    transcoder = OrjsonTranscoder()
    transcoder.register(DatetimeAsISO())
    deepest: list[Any] = []
    while True:
        deeper: list[Any] = [deepest]
        try:
            transcoder.encode({"nested": deeper})
        except orjson.JSONEncodeError:
            break
        deepest = deeper
    fields = [
        {"originator_id": uuid.uuid4(), "originator_version": 1, "nested": nested, "at": at}
        for nested, at in ((deepest, datetime.now(UTC)), ([], datetime.now(UTC)))
    ]
    alone = [transcoder.encode(library_state(one, 1)) for one in fields]
    assert transcoder.encode_events(fields, [1, 1]) == alone
