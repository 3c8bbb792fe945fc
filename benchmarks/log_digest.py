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
clock (`tests.support.fixed_clock`). The digest covers every stored event (stream id, version,
topic, state bytes) in notification order, every link of the hash chain, and each record's
outcome (its error code, or whether it recorded something and its breaches). Snapshots are not
part of the log and are left out.
"""

from __future__ import annotations

import argparse
import hashlib
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=600, help="payments of the generated day")
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    parser.add_argument("--scenarios", type=int, default=100, help="random files to record")
    parser.add_argument("--scenario-payments", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=7, help="records per record_many")
    options = parser.parse_args(argv)
    drawn = drawn_scenarios(options.scenarios, options.scenario_payments)
    with tempfile.TemporaryDirectory() as workdir, fixed_clock_frequent_snapshots():
        directory = Path(workdir)
        day = Digest()
        day.record(list(day_records(Day(options.payments, options.seed))), 1_000, directory)
        print(day.line(f"day of {options.payments:,} payments"))
        files = Digest()
        for scenario in drawn:
            files.record(scenario.all_records, options.batch_size, directory)
        print(files.line(f"{len(drawn)} scenarios"))


if __name__ == "__main__":
    main()
