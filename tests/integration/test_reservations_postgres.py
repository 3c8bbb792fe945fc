"""Several OS processes reserving headroom at one location at the same moment, on PostgreSQL.

Each worker (a spawned interpreter with its own connections, as a POS backend per device would
be) waits at a barrier with the others, then asks for reservations as fast as it can. The sum
of the granted reservations never passes the location's limit, and every slot is taken.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger import Ledger
from tests.support import records as r

pytestmark = pytest.mark.postgres

SPAWN = multiprocessing.get_context("spawn")
WAIT_SECONDS = 120  # only reached if a worker hangs
AT = datetime(2026, 11, 22, 8, 1, tzinfo=UTC)
WORKERS = 4
ASKS = 12
AMOUNT = 700
LIMIT = 20_000


def reserve_worker(url: str, worker: int, barrier: Any, results: Any) -> None:
    """Open the ledger, wait for everybody, ask ASKS reservations (each twice: the retry must
    answer the same); report [(offline_id, granted)]."""
    try:
        with Ledger.open(url) as ledger:
            barrier.wait(timeout=WAIT_SECONDS)
            answers = []
            for k in range(ASKS):
                oid = f"00000000-0000-4000-8000-{worker * 1000 + k:012d}"
                first = ledger.reserve(oid, AMOUNT, "usd", f"tmr_{worker}", "tml_1", at=AT)
                again = ledger.reserve(oid, AMOUNT, "usd", f"tmr_{worker}", "tml_1", at=AT)
                assert again == first
                answers.append((oid, first.granted))
            results.put((worker, answers))
    except BaseException:
        results.put((worker, traceback.format_exc()))
        raise


def test_processes_reserving_together_never_pass_the_limit(postgres_url: str) -> None:
    limits = {"per_payment_max": {"usd": 5_000}, "stored_amount_max": {"usd": LIMIT}}
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location(limits=limits, device_limits={}))
        for worker in range(WORKERS):
            ledger.record(r.device(f"tmr_{worker}"))
    barrier = SPAWN.Barrier(WORKERS)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=reserve_worker, args=(postgres_url, w, barrier, results))
        for w in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        granted = []
        for _ in range(WORKERS):
            try:
                worker, answers = results.get(timeout=WAIT_SECONDS)
            except queue.Empty:
                pytest.fail("a worker reported nothing")
            assert not isinstance(answers, str), f"worker {worker} failed:\n{answers}"
            granted += [oid for oid, ok in answers if ok]
        for process in processes:
            process.join(WAIT_SECONDS)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert WORKERS * ASKS * AMOUNT > LIMIT
    assert len(granted) == LIMIT // AMOUNT  # every slot granted, none twice
    with Ledger.open(postgres_url) as ledger:
        decision = ledger.decide(
            amount=AMOUNT, currency="usd", device_id="tmr_0", location_id="tml_1", at=AT
        )
    location_row = next(row for row in decision.headroom if row.scope == "location")
    assert location_row.used == len(granted) * AMOUNT <= LIMIT
