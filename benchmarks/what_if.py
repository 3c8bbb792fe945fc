"""What-if benchmark: sale attempts replayed per second on SQLite, beside plain iteration.

    python -m benchmarks.what_if [--payments N]

On a fresh SQLite ledger the generated day (benchmarks/generate.py) is ingested as
`offline-ledger ingest` does. Then, alternately, three times each:

- plain iteration: every event of every location stream read and decoded, nothing else
  (what any replay of the event store must pay to read the same events);
- read model and replay, as `offline-ledger what-if` does: the histories read from the offline
  sales read model (`projections.offline_sales`, one row per sale, caught up beforehand and
  untimed, as `project` or any earlier read leaves it), then `replay` of each location against
  half its stored-amount limits (`ledger.what_if.halved`; the sales refused go online);
- streams and replay: the same replays of the histories read from the location streams
  (`ledger.what_if.histories`, the source for a ledger without read models);
- replay alone: the same replays of the histories already read (the judging's own cost).

Rates are sale attempts (stored sales) per second, medians; the ratios are plain iteration's
time over each one's. The read model's catch-up from an empty table is timed once, apart.
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
from uuid import UUID

from adapters.jsonl import ingest, numbered_lines
from adapters.trading_day.day import Day
from benchmarks.ingest import generate_day
from ledger import Ledger
from ledger.location import Location
from ledger.what_if import History, halved, histories, replay
from projections.read_models import ReadModels

RUNS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        source = work / "day.jsonl"
        generate_day(source, Day(args.payments))
        with Ledger.open(f"sqlite:///{work / 'ledger.db'}") as ledger, ReadModels(ledger) as models:
            ingest(ledger, numbered_lines(io.BytesIO(source.read_bytes())))
            started = time.perf_counter()
            models.refresh()
            catch_up = time.perf_counter() - started
            plain, rows, streams, alone = [], [], [], []
            for _ in range(RUNS):
                started = time.perf_counter()
                events = _iterate(ledger)
                plain.append(time.perf_counter() - started)
                started = time.perf_counter()
                sales = sum(_replayed(history, ledger) for history in models.sale_histories())
                rows.append(time.perf_counter() - started)
                started = time.perf_counter()
                read = list(histories(ledger.store))
                assert sales == sum(_replayed(history, ledger) for history in read)
                streams.append(time.perf_counter() - started)
                started = time.perf_counter()
                for history in read:
                    _replayed(history, ledger)
                alone.append(time.perf_counter() - started)
    print(
        f"{sales:,} sale attempts in {len(read)} locations, {events:,} location events; "
        f"load average {os.getloadavg()}"
    )
    base = statistics.median(plain)
    print(f"plain iteration: {sales / base:,.0f} sale attempts/s")
    for name, times in (("read model and replay", rows), ("streams and replay", streams)):
        median = statistics.median(times)
        print(
            f"{name}: {sales / median:,.0f} sale attempts/s "
            f"(ratio to plain iteration {base / median:.2f})"
        )
    print(f"replay alone: {sales / statistics.median(alone):,.0f} sale attempts/s")
    print(f"read model catch-up from empty, once: {catch_up:.1f} s")


def _iterate(ledger: Ledger) -> int:
    """Every event of every location stream, read and decoded; how many."""
    count = 0
    topics = [Location.Configured.TOPIC]
    for notification in ledger.store.recorder.select_notifications(
        start=None, limit=1_000_000, topics=topics
    ):
        for _ in ledger.store.events.get(UUID(str(notification.originator_id))):
            count += 1
    return count


def _replayed(history: History, ledger: Ledger) -> int:
    """Replay against half the location's stored-amount limits; the sales judged."""
    proposed = halved(history.config)
    done = replay(
        history, ledger.policy, proposed.applied_to(history.config), refused_go_online=True
    )
    return len(done.judged)


if __name__ == "__main__":
    main()
