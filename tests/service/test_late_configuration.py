"""A configuration recorded late (its moment before facts already stored): every payment is
judged by the configuration in force at its own moment, whatever order the configurations and
the facts came in, as the what-if replay of the limits in force judges it."""

from __future__ import annotations

from datetime import datetime
from unittest import mock

from ledger import Code, Ledger
from ledger.event_store import EventStore
from ledger.identity import location_id as location_stream_id
from ledger.location import Location
from ledger.what_if import histories, replay
from tests.support import records as r
from tests.support.days import A, B, C, D

TIGHT = {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": 1000}}
LOOSE = {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": 5000}}
NO_DEVICE_LIMITS = {"stored_amount_max": {}}


def _sale(ledger: Ledger, offline_id: str, amount: int, minute: int) -> None:
    ledger.record(r.created(offline_id, amount=amount, occurred_at=r.at(minute)))
    ledger.record(r.collected(offline_id) | {"occurred_at": r.at(minute)})
    ledger.record(r.confirmed(offline_id, occurred_at=r.at(minute), stored_at=r.at(minute)))


def _configured(ledger: Ledger, limits: dict[str, object], minute: int) -> None:
    ledger.record(
        r.location(limits=limits, device_limits=NO_DEVICE_LIMITS, occurred_at=r.at(minute))
    )


def _shop(ledger: Ledger, limits: dict[str, object]) -> None:
    _configured(ledger, limits, -60)
    ledger.record(r.device())


def _codes(ledger: Ledger, offline_id: str) -> set[str]:
    return {str(b["code"]) for b in ledger.payment(offline_id).breaches}


def _replayed_as_recorded(ledger: Ledger) -> None:
    """The replay of the limits in force gives every sale the breaches the ledger holds."""
    (history,) = histories(ledger.store)
    for judged in replay(history, ledger.policy, refused_go_online=False).judged:
        assert judged.breaches == judged.sale.breaches, judged.sale.offline_id
        recorded = _codes(ledger, judged.sale.offline_id) & {str(c) for c in judged.breaches}
        assert set(judged.breaches) == recorded, judged.sale.offline_id


def test_a_late_configuration_judges_again_the_payments_stored_after_its_moment(
    ledger: Ledger,
) -> None:
    _shop(ledger, TIGHT)
    _sale(ledger, A, 800, 0)
    _sale(ledger, B, 500, 10)  # 1300 stored: over 1000
    assert str(Code.STORED_AMOUNT_LIMIT_EXCEEDED) in _codes(ledger, B)
    _configured(ledger, LOOSE, 5)  # recorded now, in force from minute 5
    assert _codes(ledger, B) == set()
    assert _codes(ledger, A) == set()
    _replayed_as_recorded(ledger)
    (status,) = ledger.status()
    assert status.limits["stored_amount_max"] == {"usd": 5000}
    assert status.stored_beyond_policy == {}


def test_a_fact_before_a_configuration_is_judged_by_the_one_in_force_at_its_moment(
    ledger: Ledger,
) -> None:
    _shop(ledger, TIGHT)
    _configured(ledger, LOOSE, 20)
    _sale(ledger, A, 800, 0)
    _sale(ledger, B, 500, 10)  # before minute 20: the 1000 limit holds
    _sale(ledger, C, 500, 30)  # after it: 5000
    assert str(Code.STORED_AMOUNT_LIMIT_EXCEEDED) in _codes(ledger, B)
    assert _codes(ledger, C) == set()
    _replayed_as_recorded(ledger)


def test_a_configuration_older_than_the_one_in_force_does_not_replace_it(
    ledger: Ledger,
) -> None:
    _shop(ledger, TIGHT)
    _configured(ledger, LOOSE, 20)
    _configured(ledger, TIGHT | {"stored_amount_max": {"usd": 2000}}, 5)  # late, older
    (status,) = ledger.status()
    assert status.limits["stored_amount_max"] == {"usd": 5000}  # still in force now
    _sale(ledger, A, 1500, 10)
    _sale(ledger, B, 1000, 12)  # 2500 stored under the 2000 in force from minute 5
    _sale(ledger, D, 1000, 30)  # 3500 under the 5000 in force from minute 20
    assert str(Code.STORED_AMOUNT_LIMIT_EXCEEDED) in _codes(ledger, B)
    assert _codes(ledger, A) == _codes(ledger, D) == set()
    _replayed_as_recorded(ledger)


def test_a_late_configuration_disabling_offline_mode_flags_the_payments_stored_since(
    ledger: Ledger,
) -> None:
    _shop(ledger, LOOSE)
    _sale(ledger, A, 800, 0)
    _sale(ledger, B, 500, 10)
    disabled = r.location(
        limits=LOOSE, device_limits=NO_DEVICE_LIMITS, offline_enabled=False, occurred_at=r.at(5)
    )
    assert ledger.record(disabled).recorded
    assert _codes(ledger, A) == set()
    assert _codes(ledger, B) == {str(Code.OFFLINE_MODE_DISABLED)}
    (status,) = ledger.status()
    assert not status.offline_enabled
    assert set(status.stored_beyond_policy) == {str(Code.OFFLINE_MODE_DISABLED)}
    # The same configuration again is a repeat: nothing stored.
    assert not ledger.record(disabled).recorded


def test_the_configurations_in_force_survive_the_location_s_snapshots(
    sqlite_url: str,
) -> None:
    """Read back from a snapshot (taken every other event here), a location still judges a
    fact by the configuration in force at its moment."""
    with mock.patch.object(EventStore, "snapshotting_intervals", {Location: 2}):
        with Ledger.open(sqlite_url) as ledger:
            _shop(ledger, TIGHT)
            _configured(ledger, LOOSE, 20)
            _sale(ledger, A, 800, 30)
        with Ledger.open(sqlite_url) as ledger:
            assert ledger.store.snapshots is not None
            stream = location_stream_id("tml_1")
            assert list(ledger.store.snapshots.get(stream))
            location: Location = ledger.store.repository.get(stream)
            assert [at for at, _ in location.configs] == [
                datetime.fromisoformat(r.at(m)) for m in (-60, 20)
            ]
            _sale(ledger, B, 500, 10)  # before minute 20: judged with the 1000 limit
            assert str(Code.STORED_AMOUNT_LIMIT_EXCEEDED) not in _codes(ledger, B)
            _sale(ledger, C, 600, 12)  # 500 stored before it: 1100, over 1000
            assert str(Code.STORED_AMOUNT_LIMIT_EXCEEDED) in _codes(ledger, C)
            _replayed_as_recorded(ledger)


def test_a_decision_judges_by_the_configuration_in_force_at_its_moment(ledger: Ledger) -> None:
    """Asked about minute 10, the ledger answers with the 1000 limit in force then, not the
    5000 recorded for minute 20 (and at minute 30, with the 5000)."""
    _shop(ledger, TIGHT)
    _configured(ledger, LOOSE, 20)
    ask = {"amount": 1500, "currency": "usd", "device_id": "tmr_1", "location_id": "tml_1"}
    before = ledger.decide(**ask, at=datetime.fromisoformat(r.at(10)))
    assert not before.offline_allowed
    assert [str(reason.code) for reason in before.reasons] == [
        str(Code.STORED_AMOUNT_LIMIT_EXCEEDED)
    ]
    assert ledger.decide(**ask, at=datetime.fromisoformat(r.at(30))).offline_allowed


def test_a_reservation_judges_by_the_configuration_in_force_at_its_moment(
    ledger: Ledger,
) -> None:
    _shop(ledger, TIGHT)
    _configured(ledger, LOOSE, 20)
    early = ledger.reserve(A, 1500, "usd", "tmr_1", "tml_1", at=datetime.fromisoformat(r.at(10)))
    assert not early.granted
    late = ledger.reserve(B, 1500, "usd", "tmr_1", "tml_1", at=datetime.fromisoformat(r.at(30)))
    assert late.granted


def test_an_allowance_is_cut_to_the_configuration_in_force_at_its_moment(
    ledger: Ledger,
) -> None:
    _shop(ledger, TIGHT)
    _configured(ledger, LOOSE, 20)
    until = datetime.fromisoformat(r.at(120))
    early = ledger.allow(
        "tmr_1", "tml_1", {"usd": 3000}, 5, until, at=datetime.fromisoformat(r.at(10))
    )
    assert early.amounts == {"usd": 1000}
    late = ledger.allow(
        "tmr_1", "tml_1", {"usd": 3000}, 5, until, at=datetime.fromisoformat(r.at(30))
    )
    assert late.amounts == {"usd": 3000}
