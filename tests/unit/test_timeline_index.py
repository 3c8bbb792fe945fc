"""The location's timeline index answers as the plain scans over the timeline do: what was
stored just before a payment, before each of several, and which payments a change may judge
again, whatever order the payments were stored, released and restated in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.location import Location, LocationConfig, Ordered

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
CONFIG: LocationConfig = {
    "offline_enabled": True,
    "sca_required": False,
    "currencies": None,
    "limits": {
        "per_payment_max": {"usd": 10_000},
        "stored_amount_max": {"usd": 50_000},
        "stored_count_max": 20,
    },
    "device_limits": {"stored_amount_max": {"usd": 20_000}, "stored_count_max": 8},
}

moments = st.integers(0, 40).map(lambda m: START + timedelta(minutes=m))
steps = st.lists(
    st.tuples(
        st.sampled_from(["store", "release", "restate_stored", "restate_released"]),
        st.integers(0, 30),  # which payment
        moments,
        st.sampled_from(["d1", "d2", "d3"]),
        st.sampled_from(["usd", "eur"]),
        st.integers(1, 5_000),
    ),
    max_size=80,
)


def played(ops: list[tuple[Any, ...]]) -> Location:
    location = Location.configure("tml_x", CONFIG, START)
    location.indexed()  # kept as the events apply
    for op, n, moment, device, currency, amount in ops:
        key = f"p{n}"
        if op == "store" and key not in location.timeline:
            location.store_payment(key, device, currency, amount, [], moment)
        elif op == "release" and key in location.stored:
            location.release_payment(key, "forwarded", moment)
        elif op == "restate_stored":
            location.restate(key, "stored", moment)
        elif op == "restate_released" and location.timeline.get(key, [None] * 5)[4]:
            location.restate(key, "released", moment)
    return location


def plain(location: Location, moment: datetime, key: str, device: str) -> tuple[Any, ...]:
    """What was stored just before `key` was, at `moment`, by a scan of the whole timeline:
    stored earlier (or at the same moment and arrived before it), not released by then."""
    timeline = location.timeline
    if location.horizon is not None and moment > location.horizon:
        before = [e for k, e in timeline.items() if e[4] is None and k != key]
    else:
        own = timeline.get(key)
        position = (moment, own[6] if own is not None else location.arrivals + 1)
        before = [
            e
            for k, e in timeline.items()
            if k != key
            and e[3] is not None
            and (e[3], e[6]) < position
            and (e[4] is None or e[4] > moment)
        ]
    amounts: dict[str, int] = {}
    device_amounts: dict[str, int] = {}
    count = device_count = 0
    for entry_device, currency, amount, *_ in before:
        amounts[currency] = amounts.get(currency, 0) + amount
        count += 1
        if entry_device == device:
            device_amounts[currency] = device_amounts.get(currency, 0) + amount
            device_count += 1
    return amounts, count, device_amounts, device_count


@settings(max_examples=300, deadline=None)
@given(steps, moments, st.integers(0, 32), st.sampled_from(["d1", "d2"]))
def test_the_index_answers_as_the_scans_do(
    ops: list[tuple[Any, ...]], moment: datetime, n: int, device: str
) -> None:
    with mock.patch.object(Ordered, "LOAD", 2):  # many blocks, split and emptied often
        check_index(ops, moment, n, device)


def check_index(ops: list[tuple[Any, ...]], moment: datetime, n: int, device: str) -> None:
    location = played(ops)
    rebuilt = played(ops)
    vars(rebuilt).pop("_timeline_index")  # as loaded: built from the timeline
    timeline = location.timeline
    key = f"p{n}"
    for each in (location, rebuilt):
        if location.horizon is None or moment <= location.horizon:
            assert each.held_before(moment, key, device) == plain(location, moment, key, device)
        keys = sorted(timeline)
        expected = {k: plain(location, timeline[k][3], k, timeline[k][0]) for k in keys if k != key}
        assert each.held_before_each([k for k in keys if k != key]) == expected
        for arrival in (None, n):
            found = each.stored_after(moment, location.horizon, arrival)
            assert found == sorted(
                k
                for k, e in timeline.items()
                if location.horizon is not None
                and moment <= location.horizon
                and (e[3] > moment or (e[3] == moment and (arrival is None or e[6] > arrival)))
            )
    index, fresh = location.indexed(), rebuilt.indexed()
    assert (index.amounts, index.count, index.devices) == (
        fresh.amounts,
        fresh.count,
        fresh.devices,
    )


class Small(Ordered):
    LOAD = 2  # blocks split and empty often


@given(st.lists(st.integers(0, 60)), st.lists(st.tuples(st.booleans(), st.integers(0, 60))))
def test_an_ordered_list_stays_sorted_through_adds_and_removes(
    first: list[int], ops: list[tuple[bool, int]]
) -> None:
    ordered, plain_list = Small((n,) for n in first), [(n,) for n in first]
    for add, n in ops:
        if add:
            ordered.add((n,))
            plain_list.append((n,))
        elif (n,) in plain_list:
            ordered.remove((n,))
            plain_list.remove((n,))
    plain_list.sort()
    assert [i for b in ordered.blocks for i in b] == plain_list
    assert ordered.maxes == [b[-1] for b in ordered.blocks]
    for probe in range(-1, 62, 7):
        assert ordered.from_((probe,)) == [i for i in plain_list if i >= (probe,)]
        assert ordered.after(probe) == [i for i in plain_list if i[0] > probe]
