"""How the ingest's cost per line grows with the ledger: one day ingested in slices.

    python -m benchmarks.growth [--payments N] [--slices 5] [--url sqlite:///...]

The generated day of N payments (8 locations) is ingested into one new ledger in equal
slices of lines, each timed on its own (wall clock and the process's CPU), with the time
the cycle collector took per generation. The first slice is the baseline: a cost per record
that depends on what the ledger holds (a location's timeline of the day's payments, its
configurations) shows as the later slices' ratio to it. A SQLite file in a temporary folder
unless `--url` names another store (a fresh one: the day is recorded into it). Nothing here
asserts a speed; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from adapters.jsonl import ingest
from adapters.trading_day.day import Day
from benchmarks.ingest import generate_day
from ledger import Ledger


class CollectorClock:
    """The CPU time the cycle collector takes, per generation, while installed."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
            return
        generation = info["generation"]
        self.seconds[generation] += time.process_time() - self._started
        self.runs[generation] += 1


def run_slices(url: str, lines: list[bytes], slices: int) -> list[dict[str, Any]]:
    step = len(lines) // slices
    found: list[dict[str, Any]] = []
    with Ledger.open(url) as ledger:
        for i in range(slices):
            end = len(lines) if i == slices - 1 else (i + 1) * step
            chunk = list(enumerate(lines[i * step : end], start=i * step + 1))
            clock = CollectorClock()
            gc.callbacks.append(clock)
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                ingest(ledger, iter(chunk))
            finally:
                wall = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
                gc.callbacks.remove(clock)
            found.append(
                {
                    "lines": len(chunk),
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "collector_s": clock.seconds,
                    "collector_runs": clock.runs,
                }
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--url", default=None, help="a fresh store (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="offline-ledger-growth-") as scratch:
        work = Path(scratch)
        source = work / "day.jsonl"
        generate_day(source, Day(args.payments, 7))
        lines = source.read_bytes().splitlines()
        url = args.url or f"sqlite:///{work / 'ledger.db'}"
        load_before = os.getloadavg()
        found = run_slices(url, lines, args.slices)
        load_after = os.getloadavg()
    print(f"{len(lines):,} lines of {args.payments:,} payments in {args.slices} slices")
    first = found[0]["cpu_s"] / found[0]["lines"]
    for i, row in enumerate(found):
        per_line = row["cpu_s"] / row["lines"]
        collector = ", ".join(f"{s:.2f}" for s in row["collector_s"])
        print(
            f"slice {i}: {row['lines'] / row['wall_s']:,.0f} lines/s wall, "
            f"{row['lines'] / row['cpu_s']:,.0f} lines/s CPU ({row['cpu_s']:.1f} s, "
            f"{per_line / first:.2f}x the first slice's CPU per line); "
            f"collector s per generation {collector}, runs {row['collector_runs']}"
        )
    print(
        f"load average {', '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{', '.join(f'{x:.2f}' for x in load_after)} after"
    )


if __name__ == "__main__":
    main()
