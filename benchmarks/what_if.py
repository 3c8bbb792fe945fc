"""What-if benchmark: sale attempts replayed per second on SQLite, beside plain iteration.

    python -m benchmarks.what_if [--payments N] [--runs N]

On a fresh SQLite ledger the generated day (benchmarks/generate.py) is ingested as
`offline-ledger ingest` does. Then, alternately, `--runs` times each (three by default):

- plain iteration: every event of every location stream read and decoded, nothing else
  (what any replay of the event store must pay to read the same events);
- read model and replay, as `offline-ledger what-if` does: the read models brought up to date
  (nothing new: caught up beforehand and untimed, as `project` or any earlier read leaves
  them), the histories read from the offline sales read model (`projections.offline_sales`,
  one row per sale attempt), then `replay` of each location against half its stored-amount
  limits (`ledger.what_if.halved`; the sales refused go online);
- the same without bringing the read models up to date (the read and the replay alone: the
  catch-up's fixed cost per command is timed apart, "refresh");
- streams and replay: the same replays of the histories read from the location streams
  (`ledger.what_if.histories`, the source for a ledger without read models);
- replay alone: the same replays of the histories already read (the judging's own cost).

Rates are sale attempts (the generated day's are all stored sales: its readers ask no
reservation) per second, medians (and the run of least CPU time: on a shared machine, the
one least slowed by the others); the ratios are plain iteration's time over each one's. The
read model's catch-up from an empty table is timed once, apart. Nothing here asserts a speed;
the load average is printed with the figures, and process CPU time beside the wall time
(the machine is shared: CPU time is what the run itself spent).
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
from projections.offline_sales import sale_histories
from projections.read_models import ReadModels

RUNS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=RUNS)
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
            timings: dict[str, list[tuple[float, float]]] = {name: [] for name in NAMES}

            def timed(name: str) -> Timer:
                return Timer(timings[name])

            for _ in range(args.runs):
                with timed("plain iteration"):
                    events = _iterate(ledger)
                with timed("read model and replay"):
                    sales = sum(_replayed(history, ledger) for history in models.sale_histories())
                with timed("refresh"):
                    models.refresh()
                with timed("read and replay"), models.engine.connect() as conn:
                    assert sales == sum(_replayed(h, ledger) for h in sale_histories(conn))
                with timed("streams and replay"):
                    read = list(histories(ledger.store))
                    assert sales == sum(_replayed(history, ledger) for history in read)
                for history in read:
                    history.refusals = None  # as read: nothing replayed yet
                with timed("replay alone"):
                    for history in read:
                        _replayed(history, ledger)
    print(
        f"{sales:,} sale attempts in {len(read)} locations, {events:,} location events; "
        f"load average {os.getloadavg()}"
    )
    base = statistics.median(wall for wall, _ in timings["plain iteration"])
    for name in NAMES:
        wall = statistics.median(wall for wall, _ in timings[name])
        cpu = statistics.median(cpu for _, cpu in timings[name])
        if name == "refresh":
            print(f"refresh (nothing new): {wall * 1000:.0f} ms, CPU {cpu * 1000:.0f} ms")
            continue
        least = min(cpu for _, cpu in timings[name])
        print(
            f"{name}: {sales / wall:,.0f} sale attempts/s (ratio to plain iteration "
            f"{base / wall:.2f}); CPU time {sales / cpu:,.0f} sale attempts/s "
            f"(least CPU time of the runs: {sales / least:,.0f}/s)"
        )
    print(f"read model catch-up from empty, once: {catch_up:.1f} s")


NAMES = (
    "plain iteration",
    "read model and replay",
    "refresh",
    "read and replay",
    "streams and replay",
    "replay alone",
)


class Timer:
    """Wall and process CPU time of a block, appended to `into`."""

    def __init__(self, into: list[tuple[float, float]]) -> None:
        self.into = into

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *_: object) -> None:
        self.into.append((time.perf_counter() - self.wall, time.process_time() - self.cpu))


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
    done = replay(history, ledger.policy, halved(history.config), refused_go_online=True)
    return len(done.attempts)


if __name__ == "__main__":
    main()
