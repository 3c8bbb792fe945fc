"""Crash safety: `offline-ledger ingest` killed with SIGKILL mid-file, restarted, killed again,
then run to completion, applies every record exactly once.

The file (tests.support.generators.crash_day_records) holds thousands of payments, with
breaches that stay the same however often the file is applied, so the outcome of any
number of interrupted runs must be the ledger of one clean run: the same status, the same
state and history of every payment, the same number of stored events; and one more full run
finds nothing new to record.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from adapters.trading_day import write_jsonl
from ledger import Ledger
from ledger.storage import POSTGRES_EVENTS_TABLE, SQLITE_EVENTS_TABLE
from tests.conftest import postgres_base_url
from tests.support.cli import CLI, clean_environment
from tests.support.generators import crash_day_records, payment_ids_in, snapshot

PAYMENTS = 3_000
KILLS = 4
BATCH_SIZE = "250"  # several commits per second, so kills land in and between transactions
WAIT_SECONDS = 300  # only reached if something hangs


def ingest(path: Path, url: str) -> dict[str, Any]:
    """A whole run to completion; its JSON summary."""
    done = subprocess.run(
        [str(CLI), "ingest", str(path), "--db", url, "--json", "--batch-size", BATCH_SIZE],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    # The file's payments beyond the limits are facts: recorded, flagged, never refused.
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def stored_events(url: str) -> int:
    """How many events the store holds (0 while its tables do not exist yet)."""
    if url.startswith("sqlite:///"):
        try:
            with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as conn:
                (count,) = conn.execute(f"SELECT count(*) FROM {SQLITE_EVENTS_TABLE}").fetchone()
        except sqlite3.OperationalError:  # no table yet
            return 0
        return int(count)
    schema = parse_qs(urlsplit(url).query)["schema"][0]
    base = postgres_base_url()
    assert base is not None
    with psycopg.connect(base, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s)", (f'"{schema}".{POSTGRES_EVENTS_TABLE}',)
        ).fetchone()
        if exists is None or exists[0] is None:
            return 0
        row = conn.execute(f'SELECT count(*) FROM "{schema}".{POSTGRES_EVENTS_TABLE}').fetchone()
        assert row is not None
        return int(row[0])


def kill_repeatedly(path: Path, url: str, events: int, rng: random.Random) -> int:
    """Start the ingest and SIGKILL it once it has stored a random number of new events, at most
    half of the `events` a clean run leaves, so that it is killed mid-file however fast or slow
    the machine is; repeat. Return how many runs were killed."""
    killed = 0
    for _ in range(KILLS):
        before = stored_events(url)
        target = before + rng.randint(1, max(1, (events - before) // 2))
        run = subprocess.Popen(
            [str(CLI), "ingest", str(path), "--db", url, "--batch-size", BATCH_SIZE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_environment(),
        )
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while run.poll() is None and stored_events(url) < target:
                assert time.monotonic() < deadline, "the ingest stopped storing"
                time.sleep(0.01)
            if run.poll() is not None:
                break  # it finished first: nothing left to interrupt
            run.send_signal(signal.SIGKILL)
            if run.wait(WAIT_SECONDS) != -signal.SIGKILL:
                break  # it finished between the last look and the signal
            killed += 1
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    return killed


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "day.jsonl"
    write_jsonl(path, crash_day_records(PAYMENTS))
    return path


@pytest.fixture(scope="module")
def clean_run(day: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted ingest of the file into a fresh SQLite database: the reference."""
    url = f"sqlite:///{tmp_path_factory.mktemp('clean') / 'clean.db'}"
    summary = ingest(day, url)
    # Facts beyond the limits are recorded and flagged, never refused: the breaches are what
    # must come out the same however often the ingest is killed and run again.
    assert summary["flagged_count"] > 0 and summary["accepted"] > 0
    assert summary["duplicates"] == 0
    with Ledger.open(url) as ledger:
        state = snapshot(ledger, offline_ids(day), with_recorded_at=False)
    return {"summary": summary, "state": state, "events": stored_events(url)}


def offline_ids(day: Path) -> list[str]:
    with day.open() as lines:
        return payment_ids_in(json.loads(line) for line in lines)


def assert_applied_exactly_once(day: Path, url: str, clean_run: dict[str, Any]) -> None:
    seed = random.randrange(2**32)
    killed = kill_repeatedly(day, url, clean_run["events"], random.Random(seed))
    assert killed >= 1, "no run was interrupted"

    reference = clean_run["summary"]
    final = ingest(day, url)  # to completion
    assert final["lines"] == reference["lines"]
    assert final["accepted"] + final["duplicates"] == reference["accepted"], f"seed {seed}"
    assert final["rejected"] == reference["rejected"], f"seed {seed}"

    with Ledger.open(url) as ledger:
        state = snapshot(ledger, offline_ids(day), with_recorded_at=False)
    assert state["status"] == clean_run["state"]["status"], f"seed {seed}"
    for kind in ("payments", "histories"):
        differing = [
            oid for oid, value in state[kind].items() if value != clean_run["state"][kind][oid]
        ]
        assert not differing, (
            f"seed {seed}: {kind} of {len(differing)} payments differ, e.g. {differing[:3]}"
        )
    assert stored_events(url) == clean_run["events"], f"seed {seed}"

    again = ingest(day, url)
    assert (again["accepted"], again["duplicates"]) == (0, reference["accepted"])
    assert again["rejected"] == reference["rejected"]


def test_an_ingest_killed_repeatedly_on_sqlite_applies_every_record_once(
    day: Path, clean_run: dict[str, Any], sqlite_url: str
) -> None:
    assert_applied_exactly_once(day, sqlite_url, clean_run)


@pytest.mark.postgres
def test_an_ingest_killed_repeatedly_on_postgres_applies_every_record_once(
    day: Path, clean_run: dict[str, Any], postgres_url: str
) -> None:
    assert_applied_exactly_once(day, postgres_url, clean_run)
