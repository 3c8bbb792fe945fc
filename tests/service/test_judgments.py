"""A stored payment's limit breaches are a function of the location's timeline, whatever
order the facts came in: each payment is judged against what was stored just before it, by
`occurred_at` (and, at one moment, by arrival). A fact that comes late judges again only the
payments it can change, and all of them at once (`Totals.before_each`)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from ledger import Ledger
from ledger.errors import Code
from ledger.identity import location_id as location_stream_id
from ledger.limits import LIMIT_CODES, Sale, Totals
from ledger.location import Location
from tests.support import records as r
from tests.support.generators import Scenario, apply_one_by_one, scenarios


def _judged_alone(location: Location, offline_id: str) -> Totals:
    entry = location.timeline[offline_id]
    return Totals.at(location, offline_id, entry[3], entry[0])


def _without_zeros(totals: Totals) -> Totals:
    return Totals(
        {c: a for c, a in totals.amounts.items() if a},
        totals.count,
        {c: a for c, a in totals.device_amounts.items() if a},
        totals.device_count,
    )


@settings(
    deadline=None,
    max_examples=80,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_every_stored_payment_is_judged_against_what_was_stored_before_it(
    scenario: Scenario,
) -> None:
    with Ledger.open("memory://") as ledger:
        apply_one_by_one(ledger, scenario.all_records)
        for location_id in scenario.locations:
            location = ledger.store.repository.get(location_stream_id(location_id))
            stored = [k for k, e in location.timeline.items() if e[3] is not None]
            swept = Totals.before_each(location, stored)
            for offline_id in stored:
                alone = _judged_alone(location, offline_id)
                assert swept[offline_id] == _without_zeros(alone), offline_id
                device_id, currency, amount, moment, _, codes, _ = location.timeline[offline_id]
                sale = Sale(amount, currency, device_id, "prefer_online", moment)
                expected = {
                    str(v.code) for v in ledger.policy.limit_violations(sale, location, alone)
                }
                assert set(codes) & LIMIT_CODES == expected, offline_id


def test_payments_stored_at_one_moment_count_those_that_arrived_before_them() -> None:
    """A day's sales reported with one moment: the device's count limit (40) is broken by
    the 41st to arrive and every one after it, and none is judged again."""
    with Ledger.open("memory://") as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        payments = [r.stored_payment() for _ in range(60)]
        ledger.record_many([record for payment in payments for record in payment])
        over = [
            str(payment[0]["offline_id"])
            for payment in payments
            if Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE
            in {b["code"] for b in ledger.payment(payment[0]["offline_id"]).breaches}
        ]
        assert over == [str(p[0]["offline_id"]) for p in payments[40:]]
        for payment in payments:
            assert len(ledger.history(payment[0]["offline_id"])) == 3


def test_a_release_at_the_moment_it_was_stored_judges_again_those_that_arrived_after_it() -> None:
    """Three sales stored at one moment on a device that may store one: the second and third
    break the count limit. The first is forwarded at that same moment: it no longer counts
    for the second (now within the limit), while the third still finds the second."""
    with Ledger.open("memory://") as ledger:
        ledger.record(r.location(device_limits={"stored_amount_max": {}, "stored_count_max": 1}))
        ledger.record(r.device())
        first, second, third = (r.stored_payment() for _ in range(3))
        moment = first[2]["occurred_at"]
        ledger.record_many([x for payment in (first, second, third) for x in payment])
        oid = [str(payment[0]["offline_id"]) for payment in (first, second, third)]

        def over(offline_id: str) -> bool:
            codes = {b["code"] for b in ledger.payment(offline_id).breaches}
            return Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE in codes

        assert [over(x) for x in oid] == [False, True, True]
        ledger.record(r.forwarded(oid[0], "pi_1", "requires_capture", occurred_at=moment))
        assert [over(x) for x in oid] == [False, False, True]
