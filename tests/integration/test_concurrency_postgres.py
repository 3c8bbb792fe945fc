"""Several OS processes confirming payments at one location at the same moment, on PostgreSQL.

A confirmation is a fact: it is recorded whatever limit it breaks, and judged against the
location's and device's stored totals atomically: of two devices (or two POS servers) racing
for the last slot, exactly one is within the limit and the other is flagged.
Each test starts worker processes (spawn: fresh interpreters, their own connections), lets them
open the ledger, holds them at a barrier and releases them together, so that their
confirmations really race. Afterwards the ledger is read from a fresh connection.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from adapters.trading_day import numbered_offline_id
from ledger import Ledger, LedgerError
from ledger.errors import Code
from tests.support import records as r
from tests.support.outcomes import outcome_of

pytestmark = pytest.mark.postgres

SPAWN = multiprocessing.get_context("spawn")
WAIT_SECONDS = 120  # generous: only reached if a worker hangs


# -- the worker processes ----------------------------------------------------------------------
# (This module is what every spawned worker imports: it stays light, so no tests.support.generators,
# which pulls in hypothesis.)


def confirm_worker(
    url: str,
    name: str,
    rounds: list[list[dict[str, Any]]],
    batch: bool,
    barrier: Any,
    results: Any,
) -> None:
    """Open the ledger, then for each round: wait at the barrier with everybody, apply this
    worker's records of the round (one `record` call each, or one `record_many`), report."""
    try:
        with Ledger.open(url) as ledger:
            for records in rounds:
                barrier.wait(timeout=WAIT_SECONDS)
                if batch:
                    outcomes = [outcome_of(x) for x in ledger.record_many(records)]
                else:
                    outcomes = []
                    for record in records:
                        try:
                            outcomes.append(outcome_of(ledger.record(record)))
                        except LedgerError as error:
                            outcomes.append(outcome_of(error))
                results.put(
                    (
                        name,
                        [(rec["offline_id"], o) for rec, o in zip(records, outcomes, strict=True)],
                    )
                )
    except BaseException:
        results.put((name, traceback.format_exc()))
        raise


@contextmanager
def workers(
    url: str,
    plans: dict[str, list[list[dict[str, Any]]]],
    *,
    parent_in_barrier: bool = False,
    batch: frozenset[str] = frozenset(),
) -> Iterator[tuple[Any, Any]]:
    """Start one spawned process per plan (name -> rounds of records); yield the barrier and
    the results queue; make sure every process has ended afterwards."""
    barrier = SPAWN.Barrier(len(plans) + (1 if parent_in_barrier else 0))
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=confirm_worker,
            name=name,
            args=(url, name, rounds, name in batch, barrier, results),
        )
        for name, rounds in plans.items()
    ]
    for process in processes:
        process.start()
    try:
        yield barrier, results
        for process in processes:
            process.join(WAIT_SECONDS)
            assert process.exitcode == 0, f"worker {process.name} exited with {process.exitcode}"
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


def collect(results: Any, count: int) -> dict[str, str]:
    """`count` workers' reports of one round, as offline_id -> outcome."""
    outcomes: dict[str, str] = {}
    for _ in range(count):
        try:
            name, report = results.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            pytest.fail("a worker reported nothing")
        assert not isinstance(report, str), f"worker {name} failed:\n{report}"
        outcomes.update(report)
    return outcomes


# -- helpers ----------------------------------------------------------------------------------


def collected_payment(oid: str, device_id: str, amount: int) -> list[dict[str, Any]]:
    return [r.created(oid, device_id=device_id, amount=amount), r.collected(oid)]


def flagged_with(url: str, offline_ids: set[str], code: str) -> set[str]:
    """Of these payments, those whose facts broke `code` (read from a fresh connection)."""
    with Ledger.open(url) as ledger:
        return {
            oid for oid in offline_ids if code in [b["code"] for b in ledger.payment(oid).breaches]
        }


def assert_all_stored_once(url: str, stored: dict[str, int]) -> None:
    """From a fresh connection: every payment is stored with one confirmation in its history
    (nothing lost, nothing twice), and the location's totals are exactly theirs."""
    with Ledger.open(url) as ledger:
        for oid in stored:
            assert ledger.payment(oid).status == "stored", oid
            assert [e.event for e in ledger.history(oid)].count("ConfirmedOffline") == 1, oid
        (location,) = ledger.status()
        assert location.offline_payments_count == len(stored)
        assert location.offline_payment_amounts_by_currency == (
            {"usd": sum(stored.values())} if stored else {}
        )
        assert sum(d.offline_payments_count for d in location.devices) == len(stored)


# -- tests ------------------------------------------------------------------------------------

WORKERS = 4
PAYMENTS_PER_WORKER = 7


@pytest.mark.parametrize("limit", ["stored_amount_max", "stored_count_max"])
def test_processes_confirming_at_one_location_together_never_pass_its_limit(
    postgres_url: str, limit: str
) -> None:
    amount_max, count_max = 12_000, 9
    if limit == "stored_amount_max":
        limits = {"per_payment_max": {"usd": 5_000}, "stored_amount_max": {"usd": amount_max}}
        refusal = str(Code.STORED_AMOUNT_LIMIT_EXCEEDED)
    else:
        limits = {"per_payment_max": {"usd": 5_000}, "stored_count_max": count_max}
        refusal = str(Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE)
    devices = [f"tmr_{w}" for w in range(WORKERS)]
    amounts: dict[str, int] = {}
    plans: dict[str, list[list[dict[str, Any]]]] = {}
    setup: list[dict[str, Any]] = [r.location(limits=limits, device_limits={})]
    setup += [r.device(device_id) for device_id in devices]
    for w, device_id in enumerate(devices):
        confirmations = []
        for k in range(PAYMENTS_PER_WORKER):
            oid = numbered_offline_id(w * 100 + k)
            amounts[oid] = 700 + 97 * w + 211 * k  # all different, 700 to 2,257
            setup += collected_payment(oid, device_id, amounts[oid])
            confirmations.append(r.confirmed(oid))
        plans[device_id] = [confirmations]
    assert sum(amounts.values()) > amount_max and len(amounts) > count_max
    with Ledger.open(postgres_url) as ledger:
        assert all(not isinstance(x, LedgerError) for x in ledger.record_many(setup))

    # Half the workers send one record per call, half one batch (the batch path's retries).
    with workers(postgres_url, plans, batch=frozenset(devices[::2])) as (_, results):
        outcomes = collect(results, WORKERS)

    assert outcomes == dict.fromkeys(amounts, "recorded")  # facts: never refused
    assert_all_stored_once(postgres_url, amounts)
    flagged = flagged_with(postgres_url, set(amounts), refusal)
    within = {oid: amounts[oid] for oid in amounts if oid not in flagged}
    assert flagged
    if limit == "stored_amount_max":
        assert sum(within.values()) <= amount_max
    else:
        assert len(within) == count_max  # never more, and no slot flagged while free


ROUNDS = 4


@pytest.mark.parametrize("limit", ["stored_count_max", "stored_amount_max"])
def test_two_devices_racing_for_the_last_slot_at_a_location_only_one_gets_it(
    postgres_url: str, limit: str
) -> None:
    """Each round the location has room for exactly one more payment; two processes per device
    (two devices) confirm one payment each at the same moment: one is within the limit, the
    three others are flagged. Then all four are forwarded, which frees the slot again."""
    slots, amount = 3, 1_000
    if limit == "stored_count_max":
        limits = {"per_payment_max": {"usd": 5_000}, "stored_count_max": slots}
        refusal = str(Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE)
    else:  # room for 3 payments of 1,000 and a half
        limits = {
            "per_payment_max": {"usd": 5_000},
            "stored_amount_max": {"usd": slots * amount + amount // 2},
        }
        refusal = str(Code.STORED_AMOUNT_LIMIT_EXCEEDED)
    names = ["tmr_a/1", "tmr_a/2", "tmr_b/1", "tmr_b/2"]
    setup: list[dict[str, Any]] = [
        r.location(limits=limits, device_limits={}),
        r.device("tmr_a"),
        r.device("tmr_b"),
    ]
    already = [numbered_offline_id(900 + k) for k in range(slots - 1)]  # fill all but the last slot
    for oid in already:
        setup += [*collected_payment(oid, "tmr_a", amount), r.confirmed(oid)]
    plans: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in names}
    for round_number in range(ROUNDS):
        for n, name in enumerate(names):
            oid = numbered_offline_id(round_number * 10 + n)
            setup += collected_payment(oid, name.split("/")[0], amount)
            moment = r.at(3 + 10 * round_number)  # after the previous round's forwards
            plans[name].append([r.confirmed(oid, occurred_at=moment, stored_at=moment)])
    with Ledger.open(postgres_url) as ledger:
        assert all(not isinstance(x, LedgerError) for x in ledger.record_many(setup))

    winners: dict[str, int] = {}
    with workers(postgres_url, plans, parent_in_barrier=True) as (barrier, results):
        for round_number in range(ROUNDS):
            barrier.wait(timeout=WAIT_SECONDS)  # go
            outcomes = collect(results, len(names))
            assert set(outcomes.values()) == {"recorded"}, outcomes
            assert_all_stored_once(postgres_url, dict.fromkeys([*already, *outcomes], amount))
            lost = flagged_with(postgres_url, set(outcomes), refusal)
            won = sorted(set(outcomes) - lost)
            assert len(won) == 1, f"round {round_number}: {lost}"
            with Ledger.open(postgres_url) as ledger:  # forward them: the slot frees up
                for n, oid in enumerate(sorted(outcomes)):
                    forwarded = r.forwarded(
                        oid, f"pi_{round_number}_{n}", occurred_at=r.at(8 + 10 * round_number)
                    )
                    assert ledger.record(forwarded).recorded
            winners[won[0]] = round_number
    assert len(winners) == ROUNDS
