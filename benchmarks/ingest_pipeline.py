"""Does parsing the next batch while the previous one commits make the ingest faster?

    python -m benchmarks.ingest_pipeline [--payments N] [--rounds N] [--stores sqlite,postgres]

One generated day, ingested into a fresh database per run, on each store, in rounds that
alternate three ways of feeding the ledger:
  - serial: `adapters.jsonl.ingest` as it is (`Ledger.record_stream`): read and parse a batch
    (`ledger.wire.parse_line`), record it, then the next; on PostgreSQL a batch's write runs
    in a thread of its own while the next is parsed and decided;
  - thread: a second thread reads and parses up to two batches ahead while the ledger records
    them (`Ledger.record_many`, each batch written before the next is decided; sqlite3 and
    psycopg let it run while they wait on the database; the parsing itself holds the
    interpreter's lock);
  - process: a child process parses the batches and sends the parsed records back (pickled),
    up to two ahead: the parsing is off the interpreter's lock, the unpickling is not.
The last two are measured here only: the ingest takes neither until one measurably helps.
Prints wall-clock and this process's CPU seconds per run, the best and median of each way,
and each way's best against serial's; the load average is printed with them. Nothing here
asserts a speed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from adapters.jsonl import ingest, numbered_lines
from adapters.trading_day import write_jsonl
from adapters.trading_day.day import Day, day_records
from benchmarks import harness
from benchmarks.stores import Databases
from ledger import Ledger
from ledger.batches import BATCH_SIZE_DEFAULT, iter_batches
from ledger.wire import parse_lines

Lines = Iterable[tuple[int, bytes]]
AHEAD = 2


def serial(ledger: Ledger, lines: Lines) -> int:
    return ingest(ledger, lines, batch_size=BATCH_SIZE_DEFAULT).lines


def threaded(ledger: Ledger, lines: Lines) -> int:
    """A second thread reads and parses up to `AHEAD` batches while this one records."""
    ready: queue.Queue[list[Any] | None] = queue.Queue(AHEAD)

    def read() -> None:
        for batch in iter_batches(lines, BATCH_SIZE_DEFAULT):
            ready.put(parse_lines([text for _, text in batch]))
        ready.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    recorded = 0
    while (parsed := ready.get()) is not None:
        ledger.record_many(parsed)
        recorded += len(parsed)
    reader.join()
    return recorded


def _parse_batches(raw: Queue[list[bytes] | None], parsed: Queue[list[Any]]) -> None:
    for texts in iter(raw.get, None):
        parsed.put(parse_lines(texts))


def in_a_process(ledger: Ledger, lines: Lines) -> int:
    """A child process parses up to `AHEAD` batches while this one records."""
    context = multiprocessing.get_context("fork")
    raw: Queue[list[bytes] | None] = context.Queue(AHEAD + 1)
    parsed: Queue[list[Any]] = context.Queue(AHEAD + 1)
    child = context.Process(target=_parse_batches, args=(raw, parsed), daemon=True)
    child.start()
    batches = iter_batches(lines, BATCH_SIZE_DEFAULT)
    waiting: deque[int] = deque()
    recorded = 0
    try:
        for batch in batches:
            raw.put([text for _, text in batch])
            waiting.append(len(batch))
            if len(waiting) > AHEAD:
                ledger.record_many(parsed.get())
                recorded += waiting.popleft()
        while waiting:
            ledger.record_many(parsed.get())
            recorded += waiting.popleft()
    finally:
        raw.put(None)
        child.join(timeout=10)
    return recorded


WAYS: dict[str, Callable[[Ledger, Lines], int]] = {
    "serial": serial,
    "thread": threaded,
    "process": in_a_process,
}


def timed(way: Callable[[Ledger, Lines], int], url: str, source: Path) -> tuple[float, float, int]:
    """(wall-clock seconds, CPU seconds of this process, lines recorded)."""
    with Ledger.open(url) as ledger, source.open("rb") as stream:
        started, cpu = time.perf_counter(), time.process_time()
        lines = way(ledger, numbered_lines(stream))
        return time.perf_counter() - started, time.process_time() - cpu, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    harness.add_store_options(parser)
    args = parser.parse_args()
    stores = harness.parsed_stores(parser, args)
    with tempfile.TemporaryDirectory(prefix="ol-pipeline-") as folder:
        workdir = Path(folder)
        source = workdir / "day.jsonl"
        count = write_jsonl(source, day_records(Day(args.payments)))
        databases = Databases(workdir, args.postgres_url)
        try:
            for kind in stores:
                print(f"{kind}: {count:,} lines, {args.rounds} rounds; load {_load()}")
                figures: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
                for round_ in range(args.rounds):
                    for name, way in WAYS.items():
                        where = databases.fresh(kind, f"{name}_{round_}")
                        wall, cpu, lines = timed(way, where.url, source)
                        assert lines == count, (name, lines, count)
                        figures[name].append((wall, cpu))
                        print(f"  round {round_ + 1} {name:<8} {wall:7.2f} s  {cpu:7.2f} s CPU")
                _summary(figures)
                print(f"  load {_load()}")
        finally:
            databases.drop_all()


def _summary(figures: dict[str, list[tuple[float, float]]]) -> None:
    base = min(wall for wall, _ in figures["serial"])
    for name, runs in figures.items():
        walls = [wall for wall, _ in runs]
        best = min(walls)
        print(
            f"  {name:<8} best {best:7.2f} s, median {statistics.median(walls):7.2f} s, "
            f"CPU best {min(cpu for _, cpu in runs):7.2f} s; best / serial's {best / base:5.2f}"
        )


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
