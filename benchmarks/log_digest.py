"""One digest of what the ledger stores for fixed inputs, to compare two versions of the code.

A change to the decision or saving layers that is meant to store the same log (a faster path
through the same rules) must leave this digest unchanged: run it in a checkout of each version
(in one that predates it, with this file and `tests/support/fixed_clock.py` copied in) and
compare the lines it prints.

    python -m benchmarks.log_digest --payments 3000 --scenarios 200

Inputs: one generated trading day (`adapters.trading_day.day`; no breaches, facts in order)
and `--scenarios` random files from the property tests' strategy
(`tests.support.generators.scenarios`, drawn from a fixed seed: refusals, repeats, late and
out-of-order facts, limit breaches and the rejudging they cause). Each is recorded through
`Ledger.record_many` in batches of `--batch-size` into a fresh SQLite store under a fixed
clock (`tests.support.fixed_clock`). Hypothesis draws its examples partly from the literals
in the loaded modules' source, so two versions of the code draw different scenarios from the
same seed: `--draws FILE` writes the drawn files' records there on the first run and records
the same ones on the next (draw with one version, record with both). The digest covers every
stored event (stream id, version, topic, state bytes) in notification order, every link of the
hash chain, and each record's outcome (its error code, or whether it recorded something and its
breaches). Snapshots are not part of the log and are left out.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from adapters.trading_day import Record
from adapters.trading_day.day import SEED_DEFAULT, Day, day_records
from ledger import Ledger, LedgerError, wire
from ledger.chain import CHAIN_TABLE
from tests.support.fixed_clock import fixed_clock_frequent_snapshots
from tests.support.generators import Scenario, scenarios

# What a stored event's state holds when a storing rule's limit was broken (for the count).
_LIMIT_CODES = (b"STORED_AMOUNT_LIMIT_EXCEEDED", b"OFFLINE_PAYMENTS_DATABASE_TOO_LARGE")


class Digest:
    """The running digest, with how many events and limit-breaching events it covered."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.events = 0
        self.with_limit_breaches = 0

    def record(self, records: Sequence[Record], batch_size: int, directory: Path) -> None:
        """Record `records` (wire dicts) into a fresh store and add what it stored."""
        items: list[wire.Record | LedgerError] = []
        for record in records:
            try:
                items.append(wire.parse_record(record))
            except LedgerError as error:
                items.append(error)
        path = directory / f"{self.events}-{len(items)}.db"
        with Ledger.open(f"sqlite:///{path}") as ledger:
            for start in range(0, len(items), batch_size):
                for result in ledger.record_many(items[start : start + batch_size]):
                    if isinstance(result, LedgerError):
                        self.hash.update(f"refused {result.code}\n".encode())
                    else:
                        self.hash.update(f"{result.recorded} {result.breaches!r}\n".encode())
            events_table = ledger.store.recorder.events_table_name  # type: ignore[attr-defined]
        with sqlite3.connect(path) as connection:
            for row in connection.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {events_table} "
                "ORDER BY rowid"
            ):
                self.hash.update(repr(row).encode())
                self.events += 1
                self.with_limit_breaches += any(code in row[3] for code in _LIMIT_CODES)
            for row in connection.execute(f"SELECT * FROM {CHAIN_TABLE} ORDER BY position"):
                self.hash.update(repr(row).encode())
        connection.close()

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.hash.hexdigest()} ({self.events:,} events, "
            f"{self.with_limit_breaches:,} with a stored-limit breach)"
        )


def drawn_scenarios(count: int, payments_max: int) -> list[Scenario]:
    """`count` scenarios drawn from a fixed seed: the same ones on every run."""
    drawn: list[Scenario] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(scenarios(max_payments=payments_max))
    def draw(scenario: Scenario) -> None:
        drawn.append(scenario)

    draw()
    return drawn


def scenario_files(draws: Path | None, count: int, payments_max: int) -> list[list[Record]]:
    """The records of each drawn scenario, read from `draws` when it exists (pickled by an
    earlier run: only ever a file this command wrote), else drawn and written there."""
    if draws is not None and draws.exists():
        files: list[list[Record]] = pickle.loads(draws.read_bytes())
        return files
    files = [scenario.all_records for scenario in drawn_scenarios(count, payments_max)]
    if draws is not None:
        draws.write_bytes(pickle.dumps(files))
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=600, help="payments of the generated day")
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    parser.add_argument("--scenarios", type=int, default=100, help="random files to record")
    parser.add_argument("--scenario-payments", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=7, help="records per record_many")
    parser.add_argument(
        "--draws", type=Path, help="the scenarios' records: read if it exists, else written"
    )
    options = parser.parse_args(argv)
    files = scenario_files(options.draws, options.scenarios, options.scenario_payments)
    with tempfile.TemporaryDirectory() as workdir, fixed_clock_frequent_snapshots():
        directory = Path(workdir)
        day = Digest()
        day.record(list(day_records(Day(options.payments, options.seed))), 1_000, directory)
        print(day.line(f"day of {options.payments:,} payments"))
        digest = Digest()
        for records in files:
            digest.record(records, options.batch_size, directory)
        print(digest.line(f"{len(files)} scenarios"))


if __name__ == "__main__":
    main()
