"""Ingest benchmark: the ledger against a raw batched insert and against naive library use.

    python -m benchmarks.ingest [--payments N] [--stores sqlite,postgres] [--postgres-url URL]
                                [--memory-lines N] [--profile]

For each store, in one run on one machine:
  - ledger ingest: the real path (`adapters.jsonl.ingest` over a generated JSON Lines file,
    batches of 1,000), in records/s and in stored events/s (rows counted after the run);
  - raw insert: the same rows into an empty table shaped like the event table, in as many
    transactions (executemany on SQLite, binary COPY on PostgreSQL);
  - naive use: one `Ledger.record` per record, one transaction each, on a sample of payments;
  - where an ingested event's time goes: parsing and validating its line, the card-number
    scan, transcoding, the hash chain, the raw insert and deciding in memory (the same
    records through `record_many` into the in-memory store) each timed alone, in µs per
    event, beside the ingest's CPU time in this process (steadier on a loaded machine);
  - on PostgreSQL, the latency of a single live `Ledger.record` on a warmed ledger and its
    round trips to the server, against one INSERT + COMMIT of one of the ledger's rows.
Then the peak resident memory of the `offline-ledger ingest` command on a 1,000,000-line file.

Nothing here asserts a speed: it measures, prints, and writes benchmarks/out/results-*.json.
Figures are noisy on a shared machine; the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from adapters.jsonl import BATCH_SIZE_DEFAULT, ingest, numbered_lines
from adapters.trading_day import Record, write_jsonl
from adapters.trading_day.day import (
    SEED_DEFAULT,
    Day,
    day_records,
    live_payments,
    payments_for_lines,
)
from benchmarks import harness
from benchmarks.harness import console
from benchmarks.pan import per_record
from benchmarks.stores import (
    POSTGRES,
    SQLITE,
    Database,
    Databases,
    RawResult,
    RoundTrips,
    count_stored,
    raw_insert,
    raw_insert_latencies,
    source_rows,
)
from ledger import Ledger, LedgerError, wire
from ledger.batches import iter_batches
from ledger.chain import GENESIS, link
from ledger.collector import collector_paused
from ledger.pan import suspects
from ledger.storage import engine_for, events_after_sql, parse_database_url

LATENCY_WARMUP_PAYMENTS = 50
ROUND_TRIP_PAYMENTS = 10  # live payments whose round trips are counted, after the timed ones
LAYER_SAMPLE = 10_000  # lines and stored events each layer is timed over
LAYER_REPEAT = 3
LATENCY_TYPES = ("payment.created", "payment.payment_method_collected", "payment.confirmed_offline")
PROFILE_LINES_SHOWN = 15
POLL_SECONDS = 0.2
Advance = Callable[[float], None]


@dataclass(frozen=True)
class Options:
    payments: int
    stores: tuple[str, ...]
    postgres_url: str
    memory_lines: int
    batch_size: int
    naive_payments: int
    latency_calls: int
    seed: int
    profile: bool


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestFigures:
    records: int
    rejected: int
    batches: int
    seconds: float
    events: int
    snapshots: int
    snapshot_bytes: int
    streams: int
    state_bytes_avg: float
    records_per_second: float
    events_per_second: float
    # This process's CPU time per stored event: steadier than the wall clock on a loaded
    # machine; the whole cost on SQLite, the client's share on PostgreSQL.
    cpu_us_per_event: float


@dataclass(frozen=True)
class RawFigures:
    method: str
    rows: int
    transactions: int
    seconds: float
    rows_per_second: float


@dataclass(frozen=True)
class NaiveFigures:
    payments: int
    records: int
    rejected: int
    seconds: float
    events: int
    records_per_second: float
    events_per_second: float
    full_day_seconds_estimate: float  # the ledger ingest's records at the naive rate


@dataclass(frozen=True)
class Latency:
    calls: int
    median_ms: float
    p95_ms: float
    max_ms: float
    round_trips: float = 0.0  # client-server round trips per call (libpq trace), on average


@dataclass(frozen=True)
class Layer:
    """Microseconds per stored event spent in one layer of the ingest, measured alone."""

    name: str
    us_per_event: float
    note: str


@dataclass(frozen=True)
class StoreFigures:
    store: str
    ingest: IngestFigures
    raw: RawFigures
    naive: NaiveFigures
    ledger_over_raw: float  # events/s of the ledger / rows/s of the raw insert
    ledger_over_naive: float  # records/s of the ledger ingest / records/s of naive use
    latency: dict[str, Latency] = field(default_factory=dict)  # record type -> figures
    raw_latency: Latency | None = None  # one INSERT + COMMIT per row (PostgreSQL)
    layers: list[Layer] = field(default_factory=list)
    load_average_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_average_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class MemoryFigures:
    command: str
    lines: int
    accepted: int
    rejected: int
    exit_status: int
    seconds: float
    lines_per_second: float
    cpu_seconds: float  # user + system: what compares while other work loads the machine
    max_rss_mib: float  # getrusage of the command alone
    polled_peak_rss_mib: float  # the largest VmHWM seen while polling /proc (a cross-check)
    startup_rss_mib: float  # `offline-ledger schema`: the same imports, no data


# -- progress -----------------------------------------------------------------------------------


@contextmanager
def phase(description: str, total: float | None) -> Iterator[Advance]:
    """A transient progress bar for one long phase, then one log line with its duration."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        refresh_per_second=4,
    )
    started = time.perf_counter()
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda amount: progress.advance(task, amount)
    console.print(
        f"{datetime.now():%H:%M:%S} {description}: done in {time.perf_counter() - started:,.1f} s",
        highlight=False,
    )


def counted(records: Iterable[Record], advance: Advance, every: int = 1_000) -> Iterator[Record]:
    """Pass records through, advancing a progress bar every `every` records."""
    pending = 0
    for record in records:
        yield record
        pending += 1
        if pending == every:
            advance(pending)
            pending = 0
    advance(pending)


# -- the measurements ---------------------------------------------------------------------------


def generate_day(path: Path, day: Day, max_lines: int | None = None) -> int:
    expected = max_lines or round(day.payments * 4.9)
    with phase(f"generating {path.name}", expected) as advance:
        return write_jsonl(path, counted(day_records(day), advance), max_lines)


def measure_ledger_ingest(
    databases: Databases, where: Database, source: Path, batch_size: int
) -> IngestFigures:
    """The `offline-ledger ingest` path, timed from the first line read to the last commit."""
    with (
        Ledger.open(where.url) as ledger,
        source.open("rb") as stream,
        phase(f"{where.kind}: ledger ingest", source.stat().st_size) as advance,
    ):
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = ingest(ledger, numbered_lines(stream), batch_size=batch_size, on_batch=advance)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    counts = count_stored(databases, where)
    return IngestFigures(
        records=summary.lines,
        rejected=summary.rejected_count,
        batches=math.ceil(summary.lines / batch_size),
        seconds=seconds,
        events=counts.events,
        snapshots=counts.snapshots,
        snapshot_bytes=counts.snapshot_bytes,
        streams=counts.streams,
        state_bytes_avg=counts.state_bytes_avg,
        records_per_second=summary.lines / seconds,
        events_per_second=counts.events / seconds,
        cpu_us_per_event=cpu_seconds / max(counts.events, 1) * 1e6,
    )


def measure_raw(databases: Databases, source: Database, ledger: IngestFigures) -> RawFigures:
    """The ledger's stored rows, inserted raw in as many transactions as the ledger used."""
    target = databases.fresh(source.kind, "raw")
    rows_per_transaction = math.ceil(ledger.events / max(ledger.batches, 1))
    with phase(f"{source.kind}: raw insert", ledger.events) as advance:
        result: RawResult = raw_insert(databases, source, target, rows_per_transaction, advance)
    return RawFigures(
        result.method, result.rows, result.transactions, result.seconds, result.rows_per_second
    )


def measure_naive(
    databases: Databases, kind: str, day: Day, records: list[Record], ledger: IngestFigures
) -> NaiveFigures:
    """One `Ledger.record` call, hence one transaction, per record."""
    where = databases.fresh(kind, "naive")
    rejected = 0
    with (
        Ledger.open(where.url) as naive,
        phase(f"{kind}: naive Ledger.record per record", len(records)) as advance,
    ):
        started = time.perf_counter()
        for record in records:
            try:
                naive.record(record)
            except LedgerError:
                rejected += 1
            advance(1)
        seconds = time.perf_counter() - started
    events = count_stored(databases, where).events
    rate = len(records) / seconds
    return NaiveFigures(
        day.payments,
        len(records),
        rejected,
        seconds,
        events,
        rate,
        events / seconds,
        ledger.records / rate,
    )


def measure_latency(
    databases: Databases, where: Database, day: Day, calls: int, workdir: Path
) -> tuple[dict[str, Latency], Latency]:
    """Single live records on the ingested (warmed) ledger, each durable when it returns, and
    their round trips (counted on further payments: tracing costs time); then the baseline,
    one INSERT + COMMIT per row of the ledger's own, into an event-shaped table."""
    samples: dict[str, list[float]] = {kind: [] for kind in LATENCY_TYPES}
    trips: dict[str, list[int]] = {kind: [] for kind in LATENCY_TYPES}
    total = LATENCY_WARMUP_PAYMENTS + calls + ROUND_TRIP_PAYMENTS
    payments = live_payments(day, total, seed=day.seed + 1)
    with (
        RoundTrips(workdir) as round_trips,
        Ledger.open(where.url) as ledger,
        phase(f"{where.kind}: live record latency", total) as advance,
    ):
        for number, records in enumerate(payments):
            tracing = number >= LATENCY_WARMUP_PAYMENTS + calls
            for record in records:
                before = round_trips.count() if tracing else 0
                started = time.perf_counter()
                ledger.record(record)
                elapsed_ms = (time.perf_counter() - started) * 1000
                if tracing:
                    trips[record["type"]].append(round_trips.count() - before)
                elif number >= LATENCY_WARMUP_PAYMENTS:
                    samples[record["type"]].append(elapsed_ms)
            advance(1)
    rows = source_rows(databases, where, calls)
    raw = raw_insert_latencies(databases, databases.fresh(where.kind, "raw_live"), rows)
    latency = {
        kind: summarize_latency(values, statistics.mean(trips[kind]))
        for kind, values in samples.items()
    }
    return latency, summarize_latency(raw, 2.0)


def summarize_latency(values_ms: list[float], round_trips: float) -> Latency:
    ordered = sorted(values_ms)
    p95 = ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]  # nearest rank
    return Latency(len(ordered), statistics.median(ordered), p95, ordered[-1], round_trips)


def measure_store(
    options: Options,
    databases: Databases,
    kind: str,
    source: Path,
    naive_records: list[Record],
    workdir: Path,
) -> StoreFigures:
    load_before = os.getloadavg()
    where = databases.fresh(kind, "ledger")
    ledger = measure_ledger_ingest(databases, where, source, options.batch_size)
    raw = measure_raw(databases, where, ledger)
    naive_day = Day(min(options.naive_payments, options.payments), options.seed)
    naive = measure_naive(databases, kind, naive_day, naive_records, ledger)
    latency, raw_latency = (
        measure_latency(
            databases, where, Day(options.payments, options.seed), options.latency_calls, workdir
        )
        if kind == POSTGRES
        else ({}, None)
    )
    return StoreFigures(
        store=kind,
        ingest=ledger,
        raw=raw,
        naive=naive,
        ledger_over_raw=ledger.events_per_second / raw.rows_per_second,
        ledger_over_naive=ledger.records_per_second / naive.records_per_second,
        latency=latency,
        raw_latency=raw_latency,
        layers=measure_layers(where, source, ledger, raw),
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
    )


def measure_layers(
    where: Database, source: Path, ingest_figures: IngestFigures, raw: RawFigures
) -> list[Layer]:
    """Where an ingested event's time goes: each layer timed alone over the first lines of
    the day and the first events the ledger stored, in microseconds per stored event. What
    is not timed alone (aggregates, eventsourcing's domain objects, the unit of work, the
    recorder's Python) is the rest of the ledger's own figure."""
    per_line = ingest_figures.records / ingest_figures.events  # lines per stored event
    with source.open("rb") as stream:
        # As the ingest reads them: without their line breaks.
        lines = [text for _, text in islice(numbered_lines(stream), LAYER_SAMPLE)]
    config = parse_database_url(where.url)
    engine = engine_for(config)
    try:
        with engine.connect() as conn:
            rows = [
                (position, stream_id, version, topic, bytes(state))
                for position, stream_id, version, topic, state in conn.execute(
                    sa.text(events_after_sql(config.kind)), {"after": 0, "limit": LAYER_SAMPLE}
                )
            ]
    finally:
        engine.dispose()
    states = [row[4] for row in rows]
    with Ledger.open(where.url) as ledger:
        transcoder = ledger.store.mapper.transcoder
        decoded = [transcoder.decode(state) for state in states]
        decode = per_record(transcoder.decode, states, LAYER_REPEAT)
        encode = per_record(transcoder.encode, decoded, LAYER_REPEAT)
    # As the ingest parses: a batch at a time, its card-number pre-filter over the batch, the
    # collector held off (a batch's records live until it is decided).
    batches = list(iter_batches(lines, BATCH_SIZE_DEFAULT))
    per_batch_line = len(batches) / len(lines) * per_line
    with collector_paused():
        parse = per_record(wire.parse_lines, batches, LAYER_REPEAT) * per_batch_line
        scan = per_record(suspects, batches, LAYER_REPEAT) * per_batch_line
    decided = min(decide_in_memory(lines, ingest_figures) for _ in range(LAYER_REPEAT))
    chained = per_record(lambda batch: link(GENESIS, batch), [rows], LAYER_REPEAT) / len(rows)
    inserted = 1e6 / raw.rows_per_second
    total = 1e6 / ingest_figures.events_per_second
    return [
        Layer(
            "parse + validate a line",
            parse,
            "wire.parse_lines by batch, per line x lines per event",
        ),
        Layer(
            "  of which card-number scan",
            scan,
            "ledger.pan.suspects over the batch (parse_line scans its suspects in full)",
        ),
        Layer("transcoder encode", encode, "event state to stored bytes (orjson)"),
        Layer("transcoder decode", decode, "not on the ingest path: catch-up, verify, loads"),
        Layer("hash chain", chained, "ledger.chain.link: content and chain hashes"),
        Layer("raw insert of the row", inserted, raw.method),
        Layer(
            "decide and map, in memory",
            decided,
            "record_many into memory://: aggregates, events, unit of work, mapper with encode",
        ),
        Layer(
            "the rest",
            total - parse - decided - chained - inserted,
            "the recorder's Python, version queries, round trips, commit",
        ),
        Layer("ledger ingest, all of it", total, "1e6 / events per second"),
    ]


def decide_in_memory(lines: list[bytes], ingest_figures: IngestFigures) -> float:
    """Microseconds per stored event for `Ledger.record_many` over the parsed lines into the
    in-memory store, in the ingest's batches: everything the ledger does to an event but
    parse it, chain it and write it to a database."""
    records = []
    for line in lines:
        try:
            records.append(wire.parse_line(line))
        except LedgerError:
            continue
    batch = max(ingest_figures.records // max(ingest_figures.batches, 1), 1)
    with Ledger.open("memory://") as ledger:
        started = time.perf_counter()
        for start in range(0, len(records), batch):
            ledger.record_many(records[start : start + batch])
        seconds = time.perf_counter() - started
        events = ledger.store.recorder.max_notification_id() or 1
    return seconds / events * 1e6


# -- peak memory of the command -----------------------------------------------------------------


def cli_path() -> Path:
    return Path(sys.executable).parent / "offline-ledger"


def measure_memory(options: Options, databases: Databases, workdir: Path) -> MemoryFigures:
    """Peak RSS of `offline-ledger ingest` on an SQLite file, as a child process."""
    source = workdir / "memory.jsonl"
    day = Day(payments_for_lines(options.memory_lines), options.seed)
    lines = generate_day(source, day, options.memory_lines)
    where = databases.fresh(SQLITE, "memory")
    command = [
        str(cli_path()),
        "ingest",
        str(source),
        "--db",
        where.url,
        "--json",
        "--batch-size",
        str(options.batch_size),
    ]
    startup = run_measured([str(cli_path()), "schema"], workdir, "startup", None)
    with phase(f"sqlite: offline-ledger ingest of {lines:,} lines", source.stat().st_size) as adv:
        started = time.perf_counter()
        child = run_measured(command, workdir, "memory", (source, adv))
        seconds = time.perf_counter() - started
    summary = _json_or_empty(child.stdout)
    return MemoryFigures(
        command=shlex.join(command),
        lines=lines,
        accepted=int(summary.get("accepted", 0)),
        rejected=int(summary.get("rejected_count", 0)),
        exit_status=child.exit_status,
        seconds=seconds,
        lines_per_second=lines / seconds,
        cpu_seconds=child.cpu_seconds,
        max_rss_mib=child.max_rss_kib / 1024,
        polled_peak_rss_mib=child.polled_peak_kib / 1024,
        startup_rss_mib=startup.max_rss_kib / 1024,
    )


# Runs the command in its arguments and writes that child's max RSS (KiB) and CPU seconds (user
# and system) to the file named first. Linux counts the memory of the process that forked a
# child in the child's ru_maxrss (the hiwater mark survives exec), so measuring straight from
# this large benchmark process would report at least its own size: the command is started from
# this small one instead.
_MAX_RSS_WRAPPER = """
import resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(status)
"""


@dataclass(frozen=True)
class ChildRun:
    exit_status: int
    max_rss_kib: int  # getrusage of the command alone
    cpu_seconds: float  # its user and system time
    polled_peak_kib: int  # the largest VmHWM seen in /proc while it ran (a cross-check)
    stdout: str


def run_measured(
    command: list[str], workdir: Path, label: str, follow: tuple[Path, Advance] | None
) -> ChildRun:
    """Run a command to its end through the wrapper; while it runs, `follow` shows how far
    it has read into a file."""
    out_path, rss_path = workdir / f"{label}.stdout", workdir / f"{label}.maxrss"
    with out_path.open("wb") as out, (workdir / f"{label}.stderr").open("wb") as err:
        wrapper = subprocess.Popen(
            [sys.executable, "-I", "-c", _MAX_RSS_WRAPPER, str(rss_path), *command],
            stdout=out,
            stderr=err,
            cwd=workdir,
        )
        watch = ChildWatch(wrapper.pid, follow)
        while wrapper.poll() is None:
            watch.poll()
            time.sleep(POLL_SECONDS)
    max_rss_kib, cpu_seconds = rss_path.read_text(encoding="ascii").split()
    return ChildRun(
        wrapper.returncode,
        int(max_rss_kib),
        float(cpu_seconds),
        watch.peak_kib,
        out_path.read_text(encoding="utf-8"),
    )


class ChildWatch:
    """Polls the wrapper's child in /proc: its peak RSS and its read position in a file."""

    def __init__(self, wrapper_pid: int, follow: tuple[Path, Advance] | None) -> None:
        self.wrapper_pid = wrapper_pid
        self.follow = follow
        self.peak_kib = 0
        self.read_bytes = 0

    def poll(self) -> None:
        pid = child_pid(self.wrapper_pid)
        if pid is None:
            return
        self.peak_kib = max(self.peak_kib, peak_rss_kib(pid))
        if self.follow is not None:
            path, advance = self.follow
            position = read_position(pid, path)
            advance(max(position - self.read_bytes, 0))
            self.read_bytes = max(self.read_bytes, position)


def child_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            found = children.read().split()
    except OSError:
        return None
    return int(found[0]) if found else None


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the peak resident set of the process's current image (0 if unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def read_position(pid: int, path: Path) -> int:
    """How far process `pid` has read into `path` (Linux /proc); 0 if unknown."""
    try:
        for entry in os.scandir(f"/proc/{pid}/fd"):
            if os.readlink(entry.path) == str(path):
                with open(f"/proc/{pid}/fdinfo/{entry.name}", encoding="ascii") as info:
                    return int(info.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def _json_or_empty(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# -- profile ----------------------------------------------------------------------------------


def profile_sqlite_ingest(databases: Databases, source: Path, batch_size: int) -> str:
    """cProfile of the SQLite ledger ingest (a separate run: profiling slows it down)."""
    where = databases.fresh(SQLITE, "profile")
    profiler = cProfile.Profile()
    with (
        Ledger.open(where.url) as ledger,
        source.open("rb") as stream,
        phase("sqlite: profiled ledger ingest", source.stat().st_size) as advance,
    ):
        profiler.enable()
        ingest(ledger, numbered_lines(stream), batch_size=batch_size, on_batch=advance)
        profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES_SHOWN)
    return text.getvalue()


# -- printing -----------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def store_table(figures: StoreFigures, batch_size: int) -> Table:
    ledger, raw, naive = figures.ingest, figures.raw, figures.naive
    table = Table(
        title=f"{figures.store}: ingest of {ledger.records:,} records", title_justify="left"
    )
    for column in ("measurement", "records", "events", "seconds", "records/s", "events/s"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    table.add_column("notes")
    table.add_row(
        "ledger ingest",
        _n(ledger.records),
        _n(ledger.events),
        f"{ledger.seconds:,.1f}",
        _n(ledger.records_per_second),
        _n(ledger.events_per_second),
        f"adapters.jsonl.ingest, batch {batch_size}, {ledger.batches:,} transactions; "
        f"{ledger.rejected} rejected; +{ledger.snapshots:,} snapshots "
        f"({ledger.snapshot_bytes / 1e6:,.1f} MB); "
        f"{ledger.streams:,} streams; state {ledger.state_bytes_avg:,.0f} B/event; "
        f"CPU {ledger.cpu_us_per_event:,.1f} µs/event in this process",
    )
    table.add_row(
        "raw insert",
        "",
        _n(raw.rows),
        f"{raw.seconds:,.1f}",
        "",
        _n(raw.rows_per_second),
        f"{raw.method}; {raw.transactions:,} transactions; the ledger's own rows",
    )
    table.add_row(
        "naive Ledger.record",
        _n(naive.records),
        _n(naive.events),
        f"{naive.seconds:,.1f}",
        _n(naive.records_per_second),
        _n(naive.events_per_second),
        f"one transaction per record; sample of {naive.payments:,} payments, "
        f"{naive.rejected} rejected; the full day at this rate: "
        f"{naive.full_day_seconds_estimate:,.0f} s",
    )
    table.add_section()
    table.add_row(
        "ledger / raw",
        "",
        "",
        "",
        "",
        f"{figures.ledger_over_raw:.2f}x",
        "ledger events/s over raw rows/s",
    )
    table.add_row(
        "ledger / naive",
        "",
        "",
        "",
        f"{figures.ledger_over_naive:.1f}x",
        "",
        "ledger records/s over naive records/s",
    )
    return table


def latency_table(figures: StoreFigures) -> Table:
    table = Table(
        title=f"{figures.store}: live Ledger.record() latency (warmed ledger, durable on return)",
        title_justify="left",
    )
    for column in ("record", "calls", "median ms", "p95 ms", "max ms", "round trips", "/ raw"):
        table.add_column(column, justify="left" if column == "record" else "right")
    raw = figures.raw_latency
    rows = [*figures.latency.items(), *([("raw INSERT + COMMIT", raw)] if raw else [])]
    for record_type, latency in rows:
        table.add_row(
            record_type,
            str(latency.calls),
            f"{latency.median_ms:.2f}",
            f"{latency.p95_ms:.2f}",
            f"{latency.max_ms:.2f}",
            f"{latency.round_trips:.1f}",
            f"{latency.median_ms / raw.median_ms:.1f}x" if raw else "",
        )
    return table


def layers_table(figures: StoreFigures) -> Table:
    table = Table(
        title=f"{figures.store}: where an ingested event's time goes (each layer timed alone)",
        title_justify="left",
    )
    for column in ("layer", "us/event", "share", "what"):
        table.add_column(column, justify="right" if column in ("us/event", "share") else "left")
    total = figures.layers[-1].us_per_event if figures.layers else 0.0
    for layer in figures.layers:
        share = f"{layer.us_per_event / total:.0%}" if total else ""
        table.add_row(layer.name, f"{layer.us_per_event:,.1f}", share, layer.note)
    return table


def memory_table(figures: MemoryFigures) -> Table:
    table = Table(
        title="offline-ledger ingest as a child process (SQLite): peak memory", title_justify="left"
    )
    for column in (
        "lines",
        "max RSS MiB",
        "polled peak MiB",
        "startup RSS MiB",
        "seconds",
        "lines/s",
        "CPU s",
        "lines/CPU s",
        "exit",
        "rejected",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        _n(figures.lines),
        f"{figures.max_rss_mib:,.1f}",
        f"{figures.polled_peak_rss_mib:,.1f}",
        f"{figures.startup_rss_mib:,.1f}",
        f"{figures.seconds:,.1f}",
        _n(figures.lines_per_second),
        f"{figures.cpu_seconds:,.1f}",
        _n(figures.lines / figures.cpu_seconds),
        str(figures.exit_status),
        _n(figures.rejected),
    )
    return table


def print_results(
    stores: list[StoreFigures], memory: MemoryFigures | None, options: Options
) -> None:
    for figures in stores:
        console.print()
        console.print(store_table(figures, options.batch_size))
        if figures.layers:
            console.print(layers_table(figures))
        if figures.latency:
            console.print(latency_table(figures))
        harness.print_load(figures.load_average_before, figures.load_average_after)
    if memory is not None:
        console.print()
        console.print(memory_table(memory))
        console.print(f"command: {memory.command}", highlight=False, soft_wrap=True)


# -- command line ---------------------------------------------------------------------------------


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest",
        description="Ingest benchmark of offline-ledger on SQLite and PostgreSQL.",
    )
    parser.add_argument(
        "--payments",
        type=int,
        default=100_000,
        help="payments in the generated day (about 4.9 records each)",
    )
    harness.add_store_options(parser)
    parser.add_argument(
        "--memory-lines",
        type=int,
        default=1_000_000,
        help="lines of the peak-memory run of `offline-ledger ingest`; 0 skips",
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE_DEFAULT)
    parser.add_argument(
        "--naive-payments",
        type=int,
        default=2_000,
        help="payments in the sample recorded one Ledger.record at a time",
    )
    parser.add_argument(
        "--latency-calls",
        type=int,
        default=500,
        help="live payments timed on PostgreSQL (after 50 warm-up ones)",
    )
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the SQLite ingest (cProfile, top 15 by tottime)",
    )
    args = parser.parse_args(argv)
    stores = harness.parsed_stores(parser, args)
    if args.payments < 1 or args.memory_lines < 0 or args.naive_payments < 1:
        parser.error("--payments and --naive-payments must be positive, --memory-lines >= 0")
    if not 1 <= args.batch_size <= 5_000:
        parser.error("--batch-size must be between 1 and 5000")
    return Options(
        args.payments,
        stores,
        args.postgres_url,
        args.memory_lines,
        args.batch_size,
        args.naive_payments,
        args.latency_calls,
        args.seed,
        args.profile,
    )


def run(options: Options, workdir: Path, databases: Databases) -> dict[str, Any]:
    source = workdir / "day.jsonl"
    lines = generate_day(source, Day(options.payments, options.seed))
    naive_day = Day(min(options.naive_payments, options.payments), options.seed)
    naive_records = list(day_records(naive_day))
    stores = [
        measure_store(options, databases, kind, source, naive_records, workdir)
        for kind in options.stores
    ]
    memory = measure_memory(options, databases, workdir) if options.memory_lines else None
    profile = (
        profile_sqlite_ingest(databases, source, options.batch_size) if options.profile else None
    )
    print_results(stores, memory, options)
    if profile is not None:
        console.print()
        console.print(
            f"cProfile of the SQLite ledger ingest ({lines:,} records), top "
            f"{PROFILE_LINES_SHOWN} by tottime:",
            highlight=False,
        )
        print(profile, flush=True)
    return {
        "day": {
            "payments": options.payments,
            "records": lines,
            "seed": options.seed,
            "bytes": source.stat().st_size,
        },
        "stores": [asdict(s) for s in stores],
        "memory": asdict(memory) if memory else None,
        "profile": profile,
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    options = parse_options(argv)
    harness.main(
        "ingest",
        argv,
        options,
        run,
        stores=options.stores,
        postgres_url=options.postgres_url,
        results_prefix="results",
    )


if __name__ == "__main__":
    main()
