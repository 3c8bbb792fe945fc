"""Exactly-once projections: `offline-ledger project` killed with SIGKILL mid-batch, restarted,
killed again, then run to completion, leaves the read models exactly as a rebuild from zero
does, and the same report; a second runner racing the first changes nothing either."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from typing import Any

import pytest
from sqlalchemy import select

from ledger import Ledger
from ledger.observations import PaymentIntentObservation
from ledger.storage import engine_for
from projections.read_models import PROJECTIONS, ReadModels
from projections.stripe_observations import StripeObservationsProjection
from projections.tables import projection_positions
from tests.support.cli import CLI, clean_environment
from tests.support.generators import crash_day_records

PAYMENTS = 1_500
KILLS = 4
BATCH_SIZE = "40"  # many small transactions, so kills land inside and between them
WAIT_SECONDS = 300  # only reached if something hangs
AS_OF = "2026-11-23T12:00:00Z"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    """A ledger holding a day of payments and Stripe's word on some of them; no read model
    has read anything yet."""
    chosen = str(request.getfixturevalue(f"{request.param}_url"))
    records = list(crash_day_records(PAYMENTS))
    with Ledger.open(chosen) as ledger:
        for start in range(0, len(records), 1_000):
            ledger.record_many(records[start : start + 1_000])
        amounts = {
            str(x["offline_id"]): x["amount"] for x in records if x["type"] == "payment.created"
        }
        # Stripe's word on some forwarded payments (the stuck ones never reach it).
        later = [str(x["offline_id"]) for x in records if x["type"] == "payment.forwarded"][:300]
        ledger.observe(
            [
                PaymentIntentObservation(
                    source="api",
                    payment_intent_id=f"pi_s{n}",
                    offline_id=offline_id,
                    amount=amounts[offline_id] + n % 2,
                    currency="usd",
                    status="succeeded",
                )
                for n, offline_id in enumerate(later)
            ]
        )
    return chosen


def positions(url: str) -> dict[str, int]:
    return {name: at for name, (at, _) in standings(url).items()}


def standings(url: str) -> dict[str, tuple[int, bool]]:
    """Each projection's position, and whether a catch-up left it unsettled."""
    p = projection_positions
    with Ledger.open(url) as ledger:
        engine = engine_for(ledger.config)
        try:
            with engine.connect() as conn:
                found = conn.execute(select(p.c.name, p.c.position, p.c.unsettled))
                return {name: (int(at), bool(marked)) for name, at, marked in found}
        finally:
            engine.dispose()


def tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read model, sorted."""
    with Ledger.open(url) as ledger:
        engine = engine_for(ledger.config)
        try:
            with engine.connect() as conn:
                return {
                    table.name: sorted(tuple(row) for row in conn.execute(select(table)))
                    for projection in PROJECTIONS
                    for table in projection.tables
                }
        finally:
            engine.dispose()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(CLI), *args],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def caught_up(url: str) -> int:
    """The sum of the projections' positions once each has read every event it follows."""
    total = 0
    with Ledger.open(url) as ledger:
        for projection in PROJECTIONS:
            start: int | None = None
            while page := ledger.store.recorder.select_notifications(
                start=start, limit=1_000, topics=projection.topics, inclusive_of_start=False
            ):
                start = page[-1].id
            total += start or 0
    return total


def kill_repeatedly(url: str, rng: random.Random) -> list[dict[str, tuple[int, bool]]]:
    """Start the projection and SIGKILL it once its positions have moved on by a random number
    of events, at most half of what is left, so that it is killed mid-run however fast or slow
    the machine is; repeat. Return the positions (and marks) seen after each kill."""
    end = caught_up(url)
    seen = []
    for _ in range(KILLS):
        before = sum(positions(url).values())
        target = before + rng.randint(1, max(1, (end - before) // 2))
        run = subprocess.Popen(
            [str(CLI), "project", "--db", url, "--batch-size", BATCH_SIZE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_environment(),
        )
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while run.poll() is None and sum(positions(url).values()) < target:
                assert time.monotonic() < deadline, "the projection stopped committing"
                time.sleep(0.005)
            if run.poll() is not None:
                break  # it finished first: nothing left to interrupt
            run.send_signal(signal.SIGKILL)
            if run.wait(WAIT_SECONDS) != -signal.SIGKILL:
                break  # it finished between the last look and the signal
            seen.append(standings(url))
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    return seen


def test_a_projection_killed_mid_batch_resumes_to_the_same_read_models(url: str) -> None:
    seed = random.randrange(2**32)
    killed = kill_repeatedly(url, random.Random(seed))
    assert killed, f"seed {seed}: no run was interrupted"
    # A catch-up from the start of the log leaves Stripe's fold to its end: every kill short
    # of the end left it pending (on SQLite a kill at the end too, before the fold written
    # after the last batch), and the report (its own catch-up) settles it first.
    with Ledger.open(url) as ledger:
        end = ledger.last_position()
    for at in killed:
        position, marked = at[StripeObservationsProjection.name]
        assert marked or position == end, at
        assert not marked or position < end or url.startswith("sqlite"), at
    first_report = cli("report", "--db", url, "--format", "json", "--as-of", AS_OF)
    assert first_report.returncode == 0, first_report.stderr

    finished = cli("project", "--db", url, "--batch-size", BATCH_SIZE)
    assert finished.returncode == 0, finished.stderr
    final = positions(url)
    assert not any(marked for _, marked in standings(url).values())
    assert any({name: position for name, (position, _) in at.items()} != final for at in killed), (
        f"seed {seed}: every kill came after the end"
    )
    live = tables(url)
    live_report = cli("report", "--db", url, "--format", "json", "--as-of", AS_OF)
    assert live_report.returncode == 0, live_report.stderr
    assert json.loads(live_report.stdout) == json.loads(first_report.stdout)

    rebuilt = cli("project", "--db", url, "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert tables(url) == live, f"seed {seed}"
    assert positions(url) == final
    again = cli("report", "--db", url, "--format", "json", "--as-of", AS_OF)
    assert json.loads(again.stdout) == json.loads(live_report.stdout)
    # Every payment of the day was forwarded (a reader's forward is a fact, even for one stored
    # beyond a limit): Stripe's other PaymentIntents for them are duplicates.
    assert {row["category"] for row in json.loads(again.stdout)["rows"]} >= {
        "duplicate",
        "stale_forward",
        "missing_in_stripe",
    }


def test_two_runners_racing_apply_every_event_once(url: str) -> None:
    runs = [
        subprocess.Popen(
            [str(CLI), "project", "--db", url, "--batch-size", BATCH_SIZE],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_environment(),
        )
        for _ in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=WAIT_SECONDS)
        assert run.returncode == 0 and "Traceback" not in err, err
    raced = tables(url)
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        read_models.rebuild()
    assert tables(url) == raced
