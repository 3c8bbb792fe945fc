"""Properties of the ledger over random histories (hypothesis).

Each example is a few locations with limits, their devices, and many payments each taking a
random walk through the lifecycle (re-collected cards, forwards with one or two PaymentIntent
ids and Stripe statuses, declines before and after forwarding, captures, cancels and voids,
failed forwards, conflicting repeats), all interleaved, with some records repeated and some out
of order (`tests.support.generators.scenarios`). Whatever the sequence:

(a) every location's and device's stored count and amounts equal the sum over the payments
    whose own state is "stored" there;
(b) no location or device ever stores more than its limits allow (checked after every record);
(c) applying the sequence again changes nothing that was accepted: every record accepted the
    first time is an idempotent repeat, and the ledger ends exactly as if only the records
    refused the first time had been sent again;
(d) a batch (`record_many`) gives the same outcomes and the same ledger as one record at a time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from tests.support import records as r
from tests.support.generators import (
    Scenario,
    apply_one_by_one,
    assert_status_matches_payments,
    assert_within_limits,
    scenarios,
    snapshot,
)
from tests.support.outcomes import outcome_of

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def known(*records: dict) -> Scenario:
    """A fixed scenario at the default location `tml_1` with device `tmr_1`."""
    location = r.location()
    ids = list(dict.fromkeys(str(x["offline_id"]) for x in records))
    return Scenario({"tml_1": location}, [location, r.device()], list(records), ids)


# The smallest sequences the properties found (also the plain tests at the end). As explicit
# examples they fail at once, without minutes of shrinking, for as long as they fail.
OID = "00000000-0000-4000-8000-000000000001"
VOIDED_THEN_FORWARDED_AGAIN = known(
    *r.stored_payment(OID),
    r.forwarded(OID, "pi_1", "requires_capture"),
    r.canceled(OID, reason="voided", occurred_at=r.at(200)),
)
TWO_CARDS_NOT_STORED = known(
    r.created(OID),
    r.collected(OID, last4="4242"),
    r.collected(OID, last4="1111") | {"occurred_at": r.at(1.5)},
)


def apply_checking_every_step(ledger: Ledger, scenario: Scenario) -> list[str]:
    """Apply the scenario one record at a time; after each, (a) and (b) must hold."""
    outcomes = []
    for record in scenario.all_records:
        (outcome,) = apply_one_by_one(ledger, [record])
        outcomes.append(outcome)
        event(f"{record['type']}: {outcome}")
        assert_within_limits(ledger, scenario.locations)
        assert_status_matches_payments(ledger, scenario.offline_ids)
    return outcomes


def apply_in_batches(ledger: Ledger, records: list[dict], size: int) -> list[str]:
    outcomes = []
    for start in range(0, len(records), size):
        outcomes += [outcome_of(x) for x in ledger.record_many(records[start : start + size])]
    return outcomes


def assert_second_pass_is_idempotent(first: list[str], second: list[str]) -> None:
    """Every record accepted the first time (recorded or repeat) is a repeat the second time:
    never recorded again, never refused."""
    for index, (before, after) in enumerate(zip(first, second, strict=True)):
        if before in ("recorded", "repeat"):
            assert after == "repeat", f"record {index}: {before} the first time, {after} again"


@settings(max_examples=120, **SETTINGS)
@given(scenario=scenarios())
def test_stored_totals_equal_the_stored_payments_and_stay_within_the_limits(
    scenario: Scenario,
) -> None:
    with Ledger.open("memory://") as ledger:
        outcomes = apply_checking_every_step(ledger, scenario)
    assert len(outcomes) == len(scenario.all_records)


@settings(max_examples=80, **SETTINGS)
@given(scenario=scenarios())
@example(scenario=VOIDED_THEN_FORWARDED_AGAIN)
@example(scenario=TWO_CARDS_NOT_STORED)
def test_applying_the_sequence_again_changes_nothing_that_was_accepted(
    scenario: Scenario,
) -> None:
    records = scenario.all_records
    with Ledger.open("memory://") as twice, Ledger.open("memory://") as refused_again:
        first = apply_one_by_one(twice, records)
        after_first = snapshot(twice, scenario.offline_ids)
        second = apply_one_by_one(twice, records)
        assert_second_pass_is_idempotent(first, second)

        # A record refused the first time may be accepted now (the location has room again, the
        # step is no longer out of order): the ledger must end as if only those were re-sent.
        refused = [i for i, outcome in enumerate(first) if outcome not in ("recorded", "repeat")]
        assert apply_one_by_one(refused_again, records) == first
        assert apply_one_by_one(refused_again, [records[i] for i in refused]) == [
            second[i] for i in refused
        ]
        assert snapshot(twice, scenario.offline_ids, with_recorded_at=False) == snapshot(
            refused_again, scenario.offline_ids, with_recorded_at=False
        )

        # Payments none of whose records did anything new the second time are untouched, down
        # to when each event was recorded.
        after_second = snapshot(twice, scenario.offline_ids)
        changed = {str(records[i].get("offline_id")) for i in refused if second[i] == "recorded"}
        for oid in scenario.offline_ids:
            if oid not in changed:
                before, now = after_first["histories"][oid], after_second["histories"][oid]
                # A payment whose fact came now (a step that was out of order) may judge again
                # those stored after it at its location: nothing else may move.
                assert now[: len(before)] == before, oid
                added = now[len(before) :]
                assert all(
                    e["event"] == "Rejudged" and e["data"]["cause_offline_id"] in changed
                    for e in added
                ), (oid, added)
                if not added:
                    assert after_second["payments"][oid] == after_first["payments"][oid], oid
        if not changed:
            assert after_second["status"] == after_first["status"]
        assert_within_limits(twice, scenario.locations)
        assert_status_matches_payments(twice, scenario.offline_ids)


@settings(max_examples=60, **SETTINGS)
@given(scenario=scenarios(), batch_size=st.integers(1, 25))
def test_a_batch_gives_the_same_outcomes_as_one_record_at_a_time(
    scenario: Scenario, batch_size: int
) -> None:
    records = scenario.all_records
    with Ledger.open("memory://") as single, Ledger.open("memory://") as batched:
        one_by_one = apply_one_by_one(single, records)
        in_batches = apply_in_batches(batched, records, size=batch_size)
        assert in_batches == one_by_one
        assert snapshot(batched, scenario.offline_ids, with_recorded_at=False) == snapshot(
            single, scenario.offline_ids, with_recorded_at=False
        )
        assert_status_matches_payments(batched, scenario.offline_ids)


@settings(max_examples=12, **SETTINGS)
@given(scenario=scenarios(max_payments=8))
@example(scenario=VOIDED_THEN_FORWARDED_AGAIN)
@example(scenario=TWO_CARDS_NOT_STORED)
def test_the_properties_hold_on_a_real_sqlite_file(scenario: Scenario) -> None:
    records = scenario.all_records
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'ledger.db'}"
        with Ledger.open(url) as ledger:
            first = apply_checking_every_step(ledger, scenario)
            after_first = snapshot(ledger, scenario.offline_ids)
        # Reopened (nothing cached), the whole sequence again in one batch.
        with Ledger.open(url) as ledger:
            assert snapshot(ledger, scenario.offline_ids) == after_first
            second = [outcome_of(x) for x in ledger.record_many(records)]
            assert_second_pass_is_idempotent(first, second)
            refused = [
                i for i, outcome in enumerate(first) if outcome not in ("recorded", "repeat")
            ]
            changed = {
                str(records[i].get("offline_id")) for i in refused if second[i] == "recorded"
            }
            after_second = snapshot(ledger, scenario.offline_ids)
            for oid in scenario.offline_ids:
                if oid not in changed:
                    assert after_second["histories"][oid] == after_first["histories"][oid], oid
            assert_within_limits(ledger, scenario.locations)
            assert_status_matches_payments(ledger, scenario.offline_ids)


# -- the smallest sequences the properties found, kept as plain examples ----------------------


def test_a_forward_reported_again_after_the_authorization_was_voided_is_a_repeat(
    memory_ledger: Ledger,
) -> None:
    """A second report with the same pi_ is a no-op, whatever happened since (here
    the authorization was voided, then the SDK or a webhook reported the forward again)."""
    oid = "00000000-0000-4000-8000-000000000001"
    forwarded = r.forwarded(oid, "pi_1", "requires_capture")
    for record in [
        r.location(),
        r.device(),
        *r.stored_payment(oid),
        forwarded,
        r.canceled(oid, reason="voided", occurred_at=r.at(200)),
    ]:
        assert memory_ledger.record(record).recorded
    before = memory_ledger.history(oid)

    again = memory_ledger.record(forwarded)  # must not raise STEP_OUT_OF_ORDER

    assert not again.recorded
    assert memory_ledger.history(oid) == before
    assert memory_ledger.payment(oid).status == "canceled"


def test_a_card_collected_again_after_another_card_is_a_repeat(memory_ledger: Ledger) -> None:
    """The customer tried card A, then paid with card B; a late retry of the first collection
    is a fact already recorded: a no-op, before and after confirmation, never a new event."""
    oid = "00000000-0000-4000-8000-000000000002"
    card_a = r.collected(oid, last4="4242")
    card_b = r.collected(oid, last4="1111") | {"occurred_at": r.at(1.5)}
    for record in [r.location(), r.device(), r.created(oid), card_a, card_b]:
        assert memory_ledger.record(record).recorded

    retried = memory_ledger.record(card_a)  # before confirmation: must not switch back to A

    assert not retried.recorded
    assert memory_ledger.payment(oid).card is not None
    assert memory_ledger.payment(oid).card["last4"] == "1111"
    assert len(memory_ledger.history(oid)) == 3

    assert memory_ledger.record(r.confirmed(oid)).recorded
    assert not memory_ledger.record(card_a).recorded  # after: must not be STEP_OUT_OF_ORDER
    assert memory_ledger.payment(oid).card["last4"] == "1111"  # type: ignore[index]
