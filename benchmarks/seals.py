"""Sealed periods benchmark: what a seal costs, and what checking seals adds to `audit verify`.

    python -m benchmarks.seals [--payments N] [--seals K]

On a fresh SQLite ledger, the generated day (benchmarks/generate.py) is ingested as
`offline-ledger ingest` does, in K equal slices, and the ledger is sealed after each slice
(`adapters.seals.seal`, no --through, so no event is decoded: the seal's cost is the chain
walk that checks the log before signing, and the seals stream's read and write). Then
`adapters.audit.verify` and `adapters.seals.verify_sealed` (the same walk noting the chain
hash at each of the K seals' positions, then every seal's signature and hash checked) run on
the whole log, alternately, three times each; their median events/s and ratio are printed.

Nothing here asserts a speed; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters.audit import verify
from adapters.jsonl import ingest, numbered_lines
from adapters.seals import seal, verify_sealed
from adapters.trading_day.day import Day
from benchmarks.ingest import generate_day
from ledger import Ledger

RUNS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=5_000)
    parser.add_argument("--seals", type=int, default=10)
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        public = work / "seal-key.pub.pem"
        public.write_bytes(
            key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        source = work / "day.jsonl"
        generate_day(source, Day(args.payments))
        lines = source.read_bytes().splitlines(keepends=True)
        size = -(-len(lines) // args.seals)
        seal_seconds = []
        with Ledger.open(f"sqlite:///{work / 'ledger.db'}") as ledger:
            for start in range(0, len(lines), size):
                ingest(ledger, numbered_lines(io.BytesIO(b"".join(lines[start : start + size]))))
                started = time.perf_counter()
                seal(ledger, key, work / "seals")
                seal_seconds.append(time.perf_counter() - started)
            plain, sealed = [], []
            for _ in range(RUNS):
                started = time.perf_counter()
                events = verify(ledger).count
                plain.append(events / (time.perf_counter() - started))
                started = time.perf_counter()
                checked = verify_sealed(ledger, work / "seals", public)
                sealed.append(events / (time.perf_counter() - started))
                assert checked.ok, checked.to_dict()
    print(f"{events:,} events, {len(seal_seconds)} seals; load average {os.getloadavg()}")
    print(
        f"seal: median {statistics.median(seal_seconds):.3f} s, last (whole log walked) "
        f"{seal_seconds[-1]:.3f} s"
    )
    print(
        f"verify: {statistics.median(plain):,.0f} events/s; verify --seals: "
        f"{statistics.median(sealed):,.0f} events/s "
        f"(ratio {statistics.median(sealed) / statistics.median(plain):.2f})"
    )


if __name__ == "__main__":
    main()
