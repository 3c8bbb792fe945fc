"""Write a generated trading day (`adapters.trading_day.day`, the generator the tests and the
demo draw from too) as JSON Lines, the file `offline-ledger ingest` reads.

    python -m benchmarks.generate --payments 1000 day.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adapters.trading_day import write_jsonl
from adapters.trading_day.day import SEED_DEFAULT, Day, day_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="JSON Lines file to write")
    parser.add_argument("--payments", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    parser.add_argument("--lines", type=int, default=None, help="stop after this many lines")
    args = parser.parse_args()
    written = write_jsonl(args.output, day_records(Day(args.payments, args.seed)), args.lines)
    print(f"{written} records written to {args.output}")


if __name__ == "__main__":
    main()
