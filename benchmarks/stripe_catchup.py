"""Catch-up of a log of Stripe's observations only, on SQLite and PostgreSQL.

    python -m benchmarks.stripe_catchup [--intents 20000] [--chunk 5000] [--stores ...]

The log is built through the import path (`Ledger.observe_file`): per PaymentIntent an API
snapshot naming its charge and one balance-report row, every second row naming the charge
only (its PaymentIntent known through the snapshot's link), observed `--chunk` at a time.
Then the read models catch up (`ReadModels.refresh`), and are rebuilt (`ReadModels.rebuild`),
each timed in wall and process CPU (the client's), on PostgreSQL also its server backends'
CPU, with a breakdown of the Stripe projection's batch: its own work, and the fold's parts
(`projections.stripe_fold`), each in the CPU of the thread that ran it; and how the
catch-up's writer and the threads reading its next batch ahead and building its rows
(`projections.read_ahead`) overlapped: how long each waited for the other, and their own
time.

Stripe's events outnumber payments' in no real log; this isolates what the per-payment fold
(`stripe_keys`, `stripe_payments`) costs the projection that keeps it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.table import Table as RichTable

from benchmarks import harness
from benchmarks.harness import console
from benchmarks.stores import Databases
from ledger import Ledger
from ledger.observations import (
    BalanceTransactionObservation,
    Observation,
    PaymentIntentObservation,
)
from projections.read_ahead import Overlap, ReadAhead
from projections.read_models import ReadModels
from projections.stripe_fold import BatchFold
from projections.stripe_observations import StripeObservationsProjection

CATCH_UP_TARGET_EVENTS_PER_SECOND = 50_000
# The fold's parts (`projections.stripe_fold.BatchFold`'s steps), timed apart.
PARTS = {
    "__init__": "fold: keys before",
    "moved": "fold: movements moved",
    "finish": "fold: refold",
}
T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Options:
    intents: int
    chunk: int
    stores: tuple[str, ...]
    postgres_url: str


@dataclass(frozen=True)
class Timed:
    events: int
    seconds: float
    cpu_seconds: float
    parts_cpu: dict[str, float]  # the fold's parts and the projection's batch, CPU seconds
    overlap: Overlap = field(default_factory=Overlap)  # the catch-ups' read-ahead, summed
    server_cpu_seconds: float | None = None  # PostgreSQL: the process's backends

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def events_per_cpu_second(self) -> float:
        return self.events / self.cpu_seconds if self.cpu_seconds else 0.0


@dataclass(frozen=True)
class StoreFigures:
    store: str
    observations: int
    import_seconds: float
    catch_up: Timed
    rebuild: Timed


def stripe_log(intents: int) -> list[Observation]:
    """Each PaymentIntent's API snapshot and its balance-report row, the row naming the
    charge only for every second one."""
    found: list[Observation] = []
    for n in range(intents):
        pi, charge, amount = f"pi_b{n}", f"ch_b{n}", 500 + n % 7_000
        created = T0 + timedelta(seconds=n)
        found.append(
            PaymentIntentObservation(
                source="api",
                payment_intent_id=pi,
                amount=amount,
                amount_received=amount,
                currency="usd",
                status="succeeded",
                created_at=created,
                charge_id=charge,
                offline_collected=True,
            )
        )
        found.append(
            BalanceTransactionObservation(
                source="report_file",
                balance_transaction_id=f"txn_b{n}",
                payment_intent_id=None if n % 2 else pi,
                charge_id=charge,
                source_id=charge,
                currency="usd",
                gross=amount,
                fee=30,
                net=amount - 30,
                created_at=created,
                reporting_category="charge",
                payout_id=f"po_b{n // 1_000}",
                payout_at=T0 + timedelta(days=2),
            )
        )
    return found


class PartClock:
    """Process CPU spent in the fold's steps and in the projection's `apply` (its
    `apply_unsettled` and `settle`, or on SQLite `prepare` and `settle_prepared`, when a long
    catch-up folds once at its end), by wrapping the methods (restored on exit); and each
    catch-up's read-ahead record, taken as it closes."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.overlaps: list[Overlap] = []

    @contextmanager
    def wrapping(self) -> Iterator[None]:
        projection = StripeObservationsProjection
        saved: list[tuple[Any, str, str]] = [
            (BatchFold, name, shown) for name, shown in PARTS.items()
        ]
        saved += [
            (projection, "apply", "batch"),
            # A long catch-up's batches: their rows built (on PostgreSQL the next batch's
            # in a thread of their own while one is written), then written.
            (projection, "build_unsettled", "batch unsettled: built"),
            (projection, "write_built", "batch unsettled: written"),
            (projection, "settle", "settle (fold_all)"),
            # SQLite's settling off the write lock: the rows made from a read snapshot, then
            # written in.
            (projection, "prepare", "settle: snapshot"),
            (projection, "settle_prepared", "settle: write-in"),
        ]
        originals = [getattr(owner, name) for owner, name, _ in saved]
        for (owner, name, shown), function in zip(saved, originals, strict=True):
            setattr(owner, name, self._timed(shown, function))
        close = ReadAhead.close

        def kept(ahead: ReadAhead) -> None:
            close(ahead)
            self.overlaps.append(ahead.overlap)

        ReadAhead.close = kept  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            for (owner, name, _), function in zip(saved, originals, strict=True):
                setattr(owner, name, function)
            ReadAhead.close = close  # type: ignore[method-assign]

    def _timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()  # the caller's thread: another may run meanwhile
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - started

        return timed


def timed(step: Callable[[], int], server: BackendClock | None) -> Timed:
    clock = PartClock()
    with clock.wrapping():
        server_started = server.cpu() if server else {}
        started, cpu_started = time.perf_counter(), time.process_time()
        events = step()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        server_cpu = server.spent(server_started) if server else None
    overlap = Overlap()
    for found in clock.overlaps:
        for name, value in asdict(found).items():
            setattr(overlap, name, getattr(overlap, name) + value)
    return Timed(events, seconds, cpu, dict(sorted(clock.cpu.items())), overlap, server_cpu)


class BackendClock:
    """CPU seconds of this process's PostgreSQL backends (Linux, the server on this machine):
    the backends whose client ports are this process's sockets' (`pg_stat_activity`), each
    one's utime and stime (`/proc/<pid>/stat`). A backend that ends within a step is not
    counted; the pools keep theirs open."""

    def __init__(self, url: str) -> None:
        self.url = url

    def spent(self, before: dict[int, float]) -> float:
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in self.cpu().items())

    def cpu(self) -> dict[int, float]:
        ports = _own_ports()
        with psycopg.connect(self.url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT pid, client_port FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            ).fetchall()
        ticks = os.sysconf("SC_CLK_TCK")
        spent: dict[int, float] = {}
        for pid, port in found:
            if port in ports:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                spent[pid] = (int(fields[11]) + int(fields[12])) / ticks
        return spent


def _own_ports() -> set[int]:
    """The local TCP ports of this process's sockets."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            columns = line.split()
            if columns[9] in inodes:
                ports.add(int(columns[1].rsplit(":", 1)[1], 16))
    return ports


def measure_store(options: Options, databases: Databases, kind: str) -> StoreFigures:
    where = databases.fresh(kind, "stripe")
    observations = stripe_log(options.intents)
    with Ledger.open(where.url) as ledger:
        started = time.perf_counter()
        for at in range(0, len(observations), options.chunk):
            ledger.observe_file(observations[at : at + options.chunk])
        imported = time.perf_counter() - started
        server = BackendClock(options.postgres_url) if kind == "postgres" else None
        with ReadModels(ledger) as models:
            console.print(f"{kind}: catch-up of the imported log", highlight=False)
            catch_up = timed(models.refresh, server)
            console.print(f"{kind}: rebuild", highlight=False)
            rebuilt = timed(models.rebuild, server)
    return StoreFigures(kind, len(observations), imported, catch_up, rebuilt)


def figures_table(stores: list[StoreFigures]) -> RichTable:
    table = RichTable(title="Stripe-only log: catch-up and rebuild (CPU: this process)")
    for column in (
        "store",
        "step",
        "events",
        "wall s",
        "events/s",
        "CPU s",
        "events/CPU s",
        "server CPU s",
    ):
        table.add_column(column, justify="left" if column in ("store", "step") else "right")
    table.add_column(
        "read ahead: batches taken/read, reader wall (CPU) s; writer waited, reader waited s; "
        "rows built ahead taken/built (CPU s), writer waited s"
    )
    table.add_column(
        "CPU s by part (batch = the Stripe projection's apply, parts within; a long "
        "catch-up's batches unsettled, then one settle)"
    )
    for s in stores:
        for step, t in (("catch-up", s.catch_up), ("rebuild", s.rebuild)):
            table.add_row(
                s.store,
                step,
                f"{t.events:,}",
                f"{t.seconds:.2f}",
                f"{t.events_per_second:,.0f}",
                f"{t.cpu_seconds:.2f}",
                f"{t.events_per_cpu_second:,.0f}",
                "—" if t.server_cpu_seconds is None else f"{t.server_cpu_seconds:.2f}",
                _overlap_text(t.overlap),
                ", ".join(f"{name} {cpu:.2f}" for name, cpu in t.parts_cpu.items()),
            )
    table.caption = (
        f"target: catch-up >= {CATCH_UP_TARGET_EVENTS_PER_SECOND:,} events/s; import "
        + ", ".join(f"{s.store} {s.import_seconds:.1f} s" for s in stores)
    )
    return table


def _overlap_text(o: Overlap) -> str:
    return (
        f"{o.taken}/{o.reads}, {o.reading:.2f} ({o.reading_cpu:.2f}); "
        f"{o.writer_waited:.2f}, {o.reader_waited:.2f}; built ahead {o.builds_taken}/"
        f"{o.builds} ({o.building_cpu:.2f}), writer waited {o.writer_waited_build:.2f}"
    )


def run(options: Options, workdir: Path, databases: Databases) -> dict[str, Any]:
    del workdir
    stores = [measure_store(options, databases, kind) for kind in options.stores]
    console.print(figures_table(stores))
    return {"stores": [asdict(s) for s in stores]}


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stripe_catchup",
        description="Catch-up and rebuild of a log of Stripe's observations only.",
    )
    parser.add_argument("--intents", type=int, default=20_000, help="PaymentIntents observed")
    parser.add_argument(
        "--chunk", type=int, default=5_000, help="observations per observe_file call"
    )
    harness.add_store_options(parser)
    args = parser.parse_args(argv)
    if min(args.intents, args.chunk) < 1:
        parser.error("--intents and --chunk must be positive")
    return Options(args.intents, args.chunk, harness.parsed_stores(parser, args), args.postgres_url)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    options = parse_options(argv)
    harness.main(
        "stripe_catchup",
        argv,
        options,
        run,
        stores=options.stores,
        postgres_url=options.postgres_url,
    )


if __name__ == "__main__":
    main()
