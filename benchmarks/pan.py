"""What the card-number scanner costs per record on the ingest path.

    python -m benchmarks.pan [--payments N] [--repeat N]

Every JSON Lines record is searched for a card number (`ledger.pan.holds_pan`) as raw text
before it is parsed. Over the lines of a generated day (the ingest benchmark's records), this
times, per record: orjson's parse alone (the floor of any JSON reader), the scanner alone, and
`ledger.wire.parse_line` (size check, scanner, bounds, validation: what `ingest` does to a line
before the database), and prints the scanner's share. The same for lines whose metadata holds
non-ASCII text (the scanner's slower path, every Unicode digit made ASCII). No database.
Nothing here asserts a speed; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import TypeVar

import orjson

from adapters.trading_day.day import Day, day_records
from ledger import wire
from ledger.pan import holds_pan

T = TypeVar("T")


def per_record(function: Callable[[T], object], lines: list[T], repeat: int) -> float:
    """The best of `repeat` passes over the lines (or batches), in microseconds per item."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for line in lines:
            function(line)
        best = min(best, time.perf_counter() - started)
    return best / len(lines) * 1e6


def measure(name: str, lines: list[bytes], repeat: int) -> None:
    parse = per_record(orjson.loads, lines, repeat)
    scan = per_record(holds_pan, lines, repeat)
    full = per_record(wire.parse_line, lines, repeat)
    size = sum(map(len, lines)) / len(lines)
    print(f"{name}: {len(lines):,} records, {size:.0f} bytes on average")
    print(f"  orjson.loads alone     {parse:7.2f} us/record")
    print(f"  scanner (holds_pan)    {scan:7.2f} us/record  = {scan / parse:5.1f} x orjson.loads")
    print(f"  wire.parse_line        {full:7.2f} us/record  (scanner: {scan / full:.0%} of it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    records = list(day_records(Day(payments=args.payments)))
    lines = [json.dumps(record).encode() for record in records]
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    measure("a generated day", lines, args.repeat)
    accented = [
        json.dumps(
            record | {"metadata": {"note": "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e \u00d72"}}
            if record["type"] == "payment.created"
            else record,
            ensure_ascii=False,
        ).encode()
        for record in records
    ]
    measure("the same, non-ASCII notes on every payment", accented, args.repeat)


if __name__ == "__main__":
    main()
