"""Audit benchmark: what the hash chain costs at ingest, `verify`, and read-model rebuilds.

    python -m benchmarks.audit [--payments N] [--stores sqlite,postgres] [--postgres-url URL]
                               [--ingest-runs N] [--profile auto|always|never]

The issue's targets: verify >= 200,000 events/s and rebuild >= 50,000 events/s on both stores;
the hash chain costs at most 15% of ingest throughput, measured in the same run with and
without it.

For each store, in one run on one machine:
  - chain cost: the generated day (`adapters.trading_day.day`) ingested as `offline-ledger ingest`
    does (`adapters.jsonl.ingest`, batches of 1,000) into fresh databases, WITH the chain (the
    store's own recorder) and WITHOUT it (`UnchainedSQLiteRecorder` /
    `UnchainedPostgresRecorder` below: the same recorder with the step that writes the links
    skipped, chosen through the eventsourcing env APPLICATION_RECORDER_TOPIC), in alternating
    order (with, without, without, with, ...); the medians of events/s of each, and the cost
    `1 - with / without`. The chain table's rows are counted after each run (a check that the
    variant really did, or did not, write links);
  - verify: `adapters.audit.verify(ledger)` on the last chained database, in events/s (events
    verified / seconds); then each of its passes on its own, through the module's internal
    functions (read-only): the chain walk (`_check_chain`), the same walk's read of the events
    with their links without hashing them, and the invariants (`check_invariants`, which reads
    the events of the topics it needs);
  - rebuild: `ReadModels(ledger).rebuild()` (the live read models emptied and replayed from
    zero), then `ReadModels(ledger).audit_rebuild()` (the whole log replayed into scratch read
    models, then compared row by row with the live ones), in events applied per second.
A measurement that misses its target is profiled afterwards in a separate run (cProfile, top
15 by own time, then by cumulative time): `--profile always|never` to change that.

Nothing here asserts a speed: it measures, prints, and writes
benchmarks/out/results-audit-*.json. Figures are noisy on a shared machine; the load average is
recorded with them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier
from rich.table import Table

from adapters import audit
from adapters.jsonl import BATCH_SIZE_DEFAULT, ingest, numbered_lines
from adapters.trading_day.day import SEED_DEFAULT, Day
from benchmarks import harness
from benchmarks.harness import console
from benchmarks.ingest import IngestFigures, generate_day, phase
from benchmarks.stores import Database, Databases, count_stored
from ledger import Ledger
from ledger.chain import CHAIN_HEAD_TABLE, CHAIN_TABLE
from ledger.event_store import EventStore
from ledger.limits import Policy
from ledger.money import STRIPE_OFFLINE_MAX_DEFAULT
from ledger.postgres import APPEND_EVENTS_MAX, EVENT_TYPES, PostgresEventRecorder, _event_arrays
from ledger.sqlite import SQLiteEventRecorder, _stream_bytes
from ledger.storage import (
    POSTGRES_EVENTS_TABLE,
    SQLITE_EVENTS_TABLE,
    engine_for,
    parse_database_url,
    stored_columns,
)
from migrations import ensure_schema
from projections.read_models import ReadModels

CHAIN_COST_TARGET = 0.15  # at most: 1 - chained events/s / unchained events/s
VERIFY_TARGET_EVENTS_PER_SECOND = 200_000
REBUILD_TARGET_EVENTS_PER_SECOND = 50_000
PROFILE_LINES_SHOWN = 15
PROFILE_CHOICES = ("auto", "always", "never")


# -- the recorders without the chain ------------------------------------------------------------


class UnchainedSQLiteRecorder(SQLiteEventRecorder):
    """`ledger.sqlite.SQLiteEventRecorder` with its chain step skipped: the same one
    `executemany` of the events (`_append`), and nothing else (the benchmark's "without the
    chain"; before, eventsourcing's own insert of one statement per event)."""

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        columns = stored_columns(stored_events)
        return self._append(c, columns, _stream_bytes(columns.originator_ids))


class UnchainedPostgresRecorder(PostgresEventRecorder):
    """`ledger.postgres.PostgresEventRecorder` with its chain step skipped: a live record's
    one statement under the chain head's row lock, inserting the events as arrays in binary,
    and a larger batch's lock, positions and binary COPY of the events (`_copy`), but neither
    linking them nor moving the head. (Before, a batch went through the one statement too,
    so the comparison set the chain's COPY against another way of inserting.)"""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        if len(stored_events) > APPEND_EVENTS_MAX:
            return list(super().insert_events(stored_events, **kwargs) or [])
        statement = SQL(
            "WITH head AS (SELECT FROM {schema}.{head} FOR UPDATE) "
            "INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
            "SELECT new.id, new.version, new.topic, new.state FROM head, "
            "unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "WITH ORDINALITY AS new (id, version, topic, state, n) ORDER BY new.n "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(self.datastore.schema),
            head=Identifier(CHAIN_HEAD_TABLE),
            events=Identifier(self.events_table_name),
        )
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            encoding = conn.info.encoding
            curs.execute(
                statement, _event_arrays(stored_events, encoding, hashed=False), prepare=True
            )
            return [position for (position,) in curs.fetchall()]

    def _copy(
        self,
        curs: Any,
        read: tuple[list[UUID], list[int]],
        stored_events: Sequence[StoredEvent],
        snapshots: Sequence[StoredEvent],
    ) -> list[int]:
        # The recorder's own transaction (begun with the head's lock, committed by hand), its
        # events' COPY and snapshots; no links, the head not moved.
        curs.execute(self.begin_and_lock_statement)
        curs.nextset()
        curs.fetchone()
        curs.execute(self.reserve_statement, (*read, len(stored_events)), prepare=True)
        reserved = curs.fetchone()
        assert reserved is not None, "a stream read moved on during the benchmark"
        first = reserved[0] - len(stored_events) + 1
        rows = [
            (position, event.originator_id, event.originator_version, event.topic, event.state)
            for position, event in enumerate(stored_events, start=first)
        ]
        with curs.copy(self.copy_events_statement) as copy:
            copy.set_types(EVENT_TYPES)
            for row in rows:
                copy.write_row(row)
        self._snapshot(curs, snapshots)
        curs.execute("COMMIT")
        return [row[0] for row in rows]


_UNCHAINED: dict[str, type[Any]] = {
    "sqlite": UnchainedSQLiteRecorder,
    "postgresql": UnchainedPostgresRecorder,
}
_CHAINED: dict[str, type[Any]] = {
    "sqlite": SQLiteEventRecorder,
    "postgresql": PostgresEventRecorder,
}


def open_ledger(url: str, chained: bool) -> Ledger:
    """`Ledger.open(url)`, step by step; without the chain, the store's recorder is replaced by
    its unchained subclass through the env's APPLICATION_RECORDER_TOPIC. The library code is
    the same either way."""
    config = parse_database_url(url)
    if not chained:
        # get_topic registers the class under its topic, so it resolves even when this module
        # runs as __main__.
        topic = get_topic(_UNCHAINED[config.kind])
        config = replace(config, env={**config.env, "APPLICATION_RECORDER_TOPIC": topic})
    ensure_schema(config)
    store = EventStore(env=config.env)
    store.recorder.max_notification_id()
    wanted = (_CHAINED if chained else _UNCHAINED)[config.kind]
    assert type(store.recorder) is wanted, (type(store.recorder), wanted)
    return Ledger(store, config, Policy(stripe_offline_max=dict(STRIPE_OFFLINE_MAX_DEFAULT)))


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestRun:
    order: int  # 1-based, among this store's ingests
    chained: bool
    chain_rows: int  # links in the chain table afterwards: the events' count, or 0 without
    ingest: IngestFigures


@dataclass(frozen=True)
class ChainCostFigures:
    runs: list[IngestRun]
    with_events_per_second: float  # median of the chained runs
    without_events_per_second: float  # median of the unchained runs
    with_over_without: float
    cost: float  # 1 - with / without
    pair_costs: list[float]  # the same, for each (with, without) pair run back to back
    target: float
    target_met: bool


@dataclass(frozen=True)
class VerifyFigures:
    ok: bool
    count: int  # events verified (chain links walked)
    stored_events: int
    head_hash: str
    problem: str | None
    invariant_problems: int
    seconds: float  # verify(ledger), end to end
    events_per_second: float
    chain_seconds: float  # _check_chain on its own
    chain_events_per_second: float
    read_seconds: float  # the walk's two ordered reads (events, links), no hashing
    read_events_per_second: float
    invariants_seconds: float  # check_invariants on its own
    invariants_decoded: int  # the events of the topics it decodes
    invariants_events_per_second: float  # all verified events / its seconds
    target: int
    target_met: bool


@dataclass(frozen=True)
class RebuildFigures:
    method: str
    events: int  # applied by the projections
    seconds: float
    events_per_second: float
    replay_seconds: float  # to the last batch applied
    compare_seconds: float  # audit_rebuild: after the last batch (compare, scratch removed)
    tables: int  # audit_rebuild: tables compared
    tables_drifted: int
    target: int
    target_met: bool


@dataclass(frozen=True)
class StoreFigures:
    store: str
    chain_cost: ChainCostFigures
    verify: VerifyFigures
    rebuild: RebuildFigures
    audit_rebuild: RebuildFigures
    load_average_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_average_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    profiles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    payments: int
    stores: tuple[str, ...]
    postgres_url: str
    batch_size: int
    ingest_runs: int  # of each variant
    seed: int
    profile: str  # auto | always | never


# -- 1. the chain's cost at ingest --------------------------------------------------------------


def chain_rows(where: Database) -> int:
    engine = engine_for(parse_database_url(where.url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {CHAIN_TABLE}")).scalar_one())
    finally:
        engine.dispose()


def measure_ingest(
    databases: Databases, kind: str, order: int, chained: bool, source: Path, batch_size: int
) -> tuple[IngestRun, Database]:
    """`benchmarks.ingest.measure_ledger_ingest`, on a ledger opened with or without the
    chain: timed from the first line read to the last commit."""
    variant = "chain" if chained else "nochain"
    where = databases.fresh(kind, f"{variant}_{order}")
    with (
        open_ledger(where.url, chained) as ledger,
        source.open("rb") as stream,
        phase(
            f"{kind}: ingest {order} {'with' if chained else 'WITHOUT'} the chain",
            source.stat().st_size,
        ) as advance,
    ):
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = ingest(ledger, numbered_lines(stream), batch_size=batch_size, on_batch=advance)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    counts = count_stored(databases, where)
    figures = IngestFigures(
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
    links = chain_rows(where)
    expected = counts.events if chained else 0
    if links != expected:
        console.print(
            f"[bold red]{kind}: {links:,} links after an ingest "
            f"{'with' if chained else 'without'} the chain, {expected:,} expected[/]",
            highlight=False,
        )
    return IngestRun(order, chained, links, figures), where


def measure_chain_cost(
    options: Options, databases: Databases, kind: str, source: Path
) -> tuple[ChainCostFigures, Database]:
    """Alternate the variants (with, without, without, with, ...) so that a drift in the
    machine's speed during the run weighs on both; return the figures and the last chained
    database."""
    runs: list[IngestRun] = []
    pairs: list[tuple[IngestRun, IngestRun]] = []
    last_chained: Database | None = None
    for round_ in range(options.ingest_runs):
        order = (True, False) if round_ % 2 == 0 else (False, True)
        pair: dict[bool, IngestRun] = {}
        for chained in order:
            run, where = measure_ingest(
                databases, kind, len(runs) + 1, chained, source, options.batch_size
            )
            runs.append(run)
            pair[chained] = run
            if chained:
                last_chained = where
        pairs.append((pair[True], pair[False]))
    assert last_chained is not None
    with_rate = statistics.median(r.ingest.events_per_second for r in runs if r.chained)
    without_rate = statistics.median(r.ingest.events_per_second for r in runs if not r.chained)
    cost = 1 - with_rate / without_rate
    return ChainCostFigures(
        runs=runs,
        with_events_per_second=with_rate,
        without_events_per_second=without_rate,
        with_over_without=with_rate / without_rate,
        cost=cost,
        pair_costs=[
            1 - w.ingest.events_per_second / wo.ingest.events_per_second for w, wo in pairs
        ],
        target=CHAIN_COST_TARGET,
        target_met=cost <= CHAIN_COST_TARGET,
    ), last_chained


# -- 2. verify --------------------------------------------------------------------------------


def decoded_by_invariants(ledger: Ledger) -> int:
    """The stored events of the topics `check_invariants` decodes."""
    table = SQLITE_EVENTS_TABLE if ledger.config.kind == "sqlite" else POSTGRES_EVENTS_TABLE
    query = sa.text(f"SELECT COUNT(*) FROM {table} WHERE topic IN :topics").bindparams(
        sa.bindparam("topics", expanding=True)
    )
    engine = engine_for(ledger.config)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    query, {"topics": sorted(audit._Invariants(ledger.store.mapper).topics)}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def measure_verify(where: Database, stored_events: int) -> VerifyFigures:
    kind = where.kind
    with Ledger.open(where.url) as ledger:
        with phase(f"{kind}: verify(ledger)", stored_events) as advance:
            started = time.perf_counter()
            result = audit.verify(ledger, progress=advance)
            seconds = time.perf_counter() - started
        if not result.ok:
            console.print(
                f"[bold red]{kind}: verify failed: {result.to_dict()}[/]", highlight=False
            )
        # Its passes on their own, through the module's internals (all read-only).
        engine = engine_for(ledger.config)
        try:
            with phase(f"{kind}: verify's chain walk alone", None), engine.connect() as conn:
                walked = audit.VerifyResult()
                started = time.perf_counter()
                audit._check_chain(conn, ledger.config.kind, walked, None)
                chain_seconds = time.perf_counter() - started
            with (
                phase(f"{kind}: the walk's reads alone (no hashing)", None),
                engine.connect() as conn,
            ):
                started = time.perf_counter()
                read = sum(len(rows) for rows in audit._linked_pages(conn, ledger.config.kind))
                read_seconds = time.perf_counter() - started
        finally:
            engine.dispose()
        assert walked.count == read == result.count, (walked.count, read, result.count)
        with phase(f"{kind}: verify's invariants alone", None):
            started = time.perf_counter()
            problems = audit.check_invariants(ledger)
            invariants_seconds = time.perf_counter() - started
        decoded = decoded_by_invariants(ledger)
    count = result.count
    rate = count / seconds
    return VerifyFigures(
        ok=result.ok,
        count=count,
        stored_events=stored_events,
        head_hash=result.head_hash,
        problem=None if result.problem is None else str(vars(result.problem)),
        invariant_problems=len(problems),
        seconds=seconds,
        events_per_second=rate,
        chain_seconds=chain_seconds,
        chain_events_per_second=count / chain_seconds,
        read_seconds=read_seconds,
        read_events_per_second=count / read_seconds,
        invariants_seconds=invariants_seconds,
        invariants_decoded=decoded,
        invariants_events_per_second=count / invariants_seconds,
        target=VERIFY_TARGET_EVENTS_PER_SECOND,
        target_met=rate >= VERIFY_TARGET_EVENTS_PER_SECOND,
    )


# -- 3. rebuilds ------------------------------------------------------------------------------


class Applied:
    """A progress callback: events applied, and when the last batch was."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        self.advance = advance
        self.events = 0
        self.last = time.perf_counter()

    def __call__(self, events: int) -> None:
        self.events += events
        self.last = time.perf_counter()
        self.advance(events)


def measure_rebuilds(where: Database, stored_events: int) -> tuple[RebuildFigures, RebuildFigures]:
    kind = where.kind
    with Ledger.open(where.url) as ledger, ReadModels(ledger) as models:
        with phase(f"{kind}: ReadModels.rebuild()", stored_events) as advance:
            applied = Applied(advance)
            started = time.perf_counter()
            events = models.rebuild(progress=applied)
            seconds = time.perf_counter() - started
        assert events == applied.events, (events, applied.events)
        rebuild = RebuildFigures(
            method="ReadModels.rebuild()",
            events=events,
            seconds=seconds,
            events_per_second=events / seconds,
            replay_seconds=applied.last - started,
            compare_seconds=0.0,
            tables=0,
            tables_drifted=0,
            target=REBUILD_TARGET_EVENTS_PER_SECOND,
            target_met=events / seconds >= REBUILD_TARGET_EVENTS_PER_SECOND,
        )
        with phase(f"{kind}: ReadModels.audit_rebuild()", stored_events) as advance:
            applied = Applied(advance)
            started = time.perf_counter()
            drifts = models.audit_rebuild(progress=applied)
            seconds = time.perf_counter() - started
    drifted = [d for d in drifts if not d.clean]
    if drifted:
        console.print(
            f"[bold red]{kind}: audit_rebuild found drift in "
            f"{', '.join(d.table for d in drifted)}[/]",
            highlight=False,
        )
    rate = applied.events / seconds
    audited = RebuildFigures(
        method="ReadModels.audit_rebuild()",
        events=applied.events,
        seconds=seconds,
        events_per_second=rate,
        replay_seconds=applied.last - started,
        compare_seconds=started + seconds - applied.last,
        tables=len(drifts),
        tables_drifted=len(drifted),
        target=REBUILD_TARGET_EVENTS_PER_SECOND,
        target_met=rate >= REBUILD_TARGET_EVENTS_PER_SECOND,
    )
    return rebuild, audited


# -- profiles ---------------------------------------------------------------------------------


def profiled(run: Callable[[], object]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run()
    finally:
        profiler.disable()
    shown = io.StringIO()
    stats = pstats.Stats(profiler, stream=shown)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES_SHOWN)
    stats.sort_stats("cumulative").print_stats(PROFILE_LINES_SHOWN)
    return shown.getvalue()


def profile_store(
    where: Database,
    wanted: str,
    verify: VerifyFigures,
    rebuild: RebuildFigures,
    audited: RebuildFigures,
) -> dict[str, str]:
    """cProfile of each measurement that missed its target (or of all, or none): separate
    runs, profiling slows them down."""

    def chosen(figures: VerifyFigures | RebuildFigures) -> bool:
        return wanted == "always" or (wanted == "auto" and not figures.target_met)

    profiles: dict[str, str] = {}
    with Ledger.open(where.url) as ledger, ReadModels(ledger) as models:
        if chosen(verify):
            with phase(f"{where.kind}: profiled verify(ledger)", None):
                profiles["verify"] = profiled(lambda: audit.verify(ledger))
        if chosen(rebuild):
            with phase(f"{where.kind}: profiled ReadModels.rebuild()", None):
                profiles["rebuild"] = profiled(models.rebuild)
        if chosen(audited):
            with phase(f"{where.kind}: profiled ReadModels.audit_rebuild()", None):
                profiles["audit_rebuild"] = profiled(models.audit_rebuild)
    return profiles


def measure_store(options: Options, databases: Databases, kind: str, source: Path) -> StoreFigures:
    load_before = os.getloadavg()
    cost, chained = measure_chain_cost(options, databases, kind, source)
    stored_events = cost.runs[-1].ingest.events
    verify = measure_verify(chained, stored_events)
    rebuild, audited = measure_rebuilds(chained, stored_events)
    load_after = os.getloadavg()
    profiles = (
        profile_store(chained, options.profile, verify, rebuild, audited)
        if options.profile != "never"
        else {}
    )
    return StoreFigures(
        store=kind,
        chain_cost=cost,
        verify=verify,
        rebuild=rebuild,
        audit_rebuild=audited,
        load_average_before=load_before,
        load_average_after=load_after,
        profiles=profiles,
    )


# -- printing -----------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _met(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]NO[/]"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def ingest_table(figures: StoreFigures) -> Table:
    c = figures.chain_cost
    table = Table(
        title=f"{figures.store}: ingest with and without the hash chain "
        f"({c.runs[0].ingest.records:,} records)",
        title_justify="left",
    )
    for column in ("run", "chain", "events", "seconds", "records/s", "events/s", "links"):
        table.add_column(column, justify="left" if column in ("run", "chain") else "right")
    table.add_column("notes")
    for run in c.runs:
        f = run.ingest
        table.add_row(
            str(run.order),
            "with" if run.chained else "without",
            _n(f.events),
            f"{f.seconds:,.2f}",
            _n(f.records_per_second),
            _n(f.events_per_second),
            _n(run.chain_rows),
            f"{f.batches:,} transactions, {f.rejected} rejected",
        )
    table.add_section()
    table.add_row("median", "with", "", "", "", _n(c.with_events_per_second), "", "")
    table.add_row("median", "without", "", "", "", _n(c.without_events_per_second), "", "")
    table.add_row("with / without", "", "", "", "", f"{c.with_over_without:.3f}", "", "")
    pairs = ", ".join(_pct(p) for p in c.pair_costs)
    table.add_row(
        "chain cost",
        "",
        "",
        "",
        "",
        _pct(c.cost),
        "",
        f"1 - with/without of the medians; per pair: {pairs}; target ≤ "
        f"{_pct(c.target)}: {_met(c.target_met)}",
    )
    return table


def verify_table(figures: StoreFigures) -> Table:
    v = figures.verify
    table = Table(
        title=f"{figures.store}: verify(ledger) over {v.count:,} events", title_justify="left"
    )
    for column in ("measurement", "events", "seconds", "events/s", "share"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    table.add_column("notes")
    table.add_row(
        "verify(ledger)",
        _n(v.count),
        f"{v.seconds:,.2f}",
        _n(v.events_per_second),
        "100%",
        f"ok={v.ok}; target ≥ {v.target:,}/s: {_met(v.target_met)} "
        f"({v.events_per_second / v.target:.2f}x of it)",
    )
    table.add_row(
        "  chain walk",
        _n(v.count),
        f"{v.chain_seconds:,.2f}",
        _n(v.chain_events_per_second),
        _pct(v.chain_seconds / v.seconds),
        "_check_chain alone: ordered reads of events and links, SHA-256 twice per event",
    )
    table.add_row(
        "    reads only",
        _n(v.count),
        f"{v.read_seconds:,.2f}",
        _n(v.read_events_per_second),
        _pct(v.read_seconds / v.seconds),
        "the walk's two paged queries, iterated, no hashing",
    )
    table.add_row(
        "  invariants",
        _n(v.count),
        f"{v.invariants_seconds:,.2f}",
        _n(v.invariants_events_per_second),
        _pct(v.invariants_seconds / v.seconds),
        f"check_invariants alone: {v.invariants_decoded:,} events of its topics "
        f"read and decoded ({_n(v.invariants_decoded / v.invariants_seconds)}/s); "
        f"{v.invariant_problems} problems",
    )
    return table


def rebuild_table(figures: StoreFigures) -> Table:
    table = Table(title=f"{figures.store}: read-model rebuilds", title_justify="left")
    for column in ("measurement", "events", "seconds", "events/s", "replay s", "compare s"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    table.add_column("notes")
    for r in (figures.rebuild, figures.audit_rebuild):
        notes = (
            f"target ≥ {r.target:,}/s: {_met(r.target_met)} "
            f"({r.events_per_second / r.target:.2f}x of it)"
        )
        if r.tables:
            notes += f"; {r.tables} tables compared, {r.tables_drifted} drifted"
        table.add_row(
            r.method,
            _n(r.events),
            f"{r.seconds:,.2f}",
            _n(r.events_per_second),
            f"{r.replay_seconds:,.2f}",
            f"{r.compare_seconds:,.2f}" if r.tables else "",
            notes,
        )
    return table


def summary_table(stores: list[StoreFigures]) -> Table:
    table = Table(title="summary", title_justify="left")
    table.add_column("figure")
    for figures in stores:
        table.add_column(figures.store, justify="right")
    lines: list[tuple[str, Callable[[StoreFigures], str]]] = [
        (
            "ingest with the chain: events/s (median)",
            lambda f: _n(f.chain_cost.with_events_per_second),
        ),
        (
            "ingest without the chain: events/s (median)",
            lambda f: _n(f.chain_cost.without_events_per_second),
        ),
        ("ingest with / without", lambda f: f"{f.chain_cost.with_over_without:.3f}"),
        ("chain cost 1 - with/without (target ≤ 15%)", lambda f: _pct(f.chain_cost.cost)),
        ("chain cost per pair", lambda f: ", ".join(_pct(p) for p in f.chain_cost.pair_costs)),
        ("chain cost: target met", lambda f: _met(f.chain_cost.target_met)),
        ("verify: events/s (target ≥ 200,000)", lambda f: _n(f.verify.events_per_second)),
        ("verify: seconds", lambda f: f"{f.verify.seconds:,.2f}"),
        ("verify / target", lambda f: f"{f.verify.events_per_second / f.verify.target:.2f}x"),
        ("verify: chain walk events/s", lambda f: _n(f.verify.chain_events_per_second)),
        ("verify: chain walk reads only events/s", lambda f: _n(f.verify.read_events_per_second)),
        ("verify: invariants events/s", lambda f: _n(f.verify.invariants_events_per_second)),
        (
            "verify: chain walk / invariants seconds",
            lambda f: f"{f.verify.chain_seconds:,.2f} / {f.verify.invariants_seconds:,.2f}",
        ),
        ("verify: ok", lambda f: _met(f.verify.ok)),
        ("verify: target met", lambda f: _met(f.verify.target_met)),
        ("rebuild(): events/s (target ≥ 50,000)", lambda f: _n(f.rebuild.events_per_second)),
        ("rebuild() / target", lambda f: f"{f.rebuild.events_per_second / f.rebuild.target:.2f}x"),
        ("rebuild(): target met", lambda f: _met(f.rebuild.target_met)),
        (
            "audit_rebuild(): events/s (target ≥ 50,000)",
            lambda f: _n(f.audit_rebuild.events_per_second),
        ),
        (
            "audit_rebuild() / target",
            lambda f: f"{f.audit_rebuild.events_per_second / f.audit_rebuild.target:.2f}x",
        ),
        (
            "audit_rebuild(): replay / compare seconds",
            lambda f: (
                f"{f.audit_rebuild.replay_seconds:,.2f} / {f.audit_rebuild.compare_seconds:,.2f}"
            ),
        ),
        ("audit_rebuild(): no drift", lambda f: _met(f.audit_rebuild.tables_drifted == 0)),
        ("audit_rebuild(): target met", lambda f: _met(f.audit_rebuild.target_met)),
    ]
    for label, value in lines:
        table.add_row(label, *(value(f) for f in stores))
    return table


def print_results(stores: list[StoreFigures]) -> None:
    for figures in stores:
        console.print()
        console.print(ingest_table(figures))
        console.print(verify_table(figures))
        console.print(rebuild_table(figures))
        harness.print_load(figures.load_average_before, figures.load_average_after)
    console.print()
    console.print(summary_table(stores))
    harness.print_profiles(
        ((f.store, name, profile) for f in stores for name, profile in f.profiles.items()),
        PROFILE_LINES_SHOWN,
    )


# -- command line ---------------------------------------------------------------------------------


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.audit",
        description="Audit benchmark of offline-ledger (hash chain cost at ingest, verify, "
        "read-model rebuilds) on SQLite and PostgreSQL.",
    )
    parser.add_argument(
        "--payments",
        type=int,
        default=20_000,
        help="payments in the generated day (about 6.8 stored events each)",
    )
    harness.add_store_options(parser)
    parser.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE_DEFAULT, help="records per ingest transaction"
    )
    parser.add_argument(
        "--ingest-runs",
        type=int,
        default=2,
        help="ingests of each variant (with, without the chain), alternated",
    )
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    parser.add_argument(
        "--profile",
        choices=PROFILE_CHOICES,
        default="auto",
        help="cProfile (separate runs): auto = the measurements that missed their target",
    )
    args = parser.parse_args(argv)
    stores = harness.parsed_stores(parser, args)
    if args.payments < 1 or args.ingest_runs < 1:
        parser.error("--payments and --ingest-runs must be positive")
    if not 1 <= args.batch_size <= 5_000:
        parser.error("--batch-size must be between 1 and 5000")
    return Options(
        args.payments,
        stores,
        args.postgres_url,
        args.batch_size,
        args.ingest_runs,
        args.seed,
        args.profile,
    )


def run(options: Options, workdir: Path, databases: Databases) -> dict[str, Any]:
    source = workdir / "day.jsonl"
    lines = generate_day(source, Day(options.payments, options.seed))
    stores = [measure_store(options, databases, kind, source) for kind in options.stores]
    print_results(stores)
    return {
        "day": {
            "payments": options.payments,
            "records": lines,
            "seed": options.seed,
            "bytes": source.stat().st_size,
        },
        "targets": {
            "verify_events_per_second": VERIFY_TARGET_EVENTS_PER_SECOND,
            "rebuild_events_per_second": REBUILD_TARGET_EVENTS_PER_SECOND,
            "chain_cost_max": CHAIN_COST_TARGET,
        },
        "stores": [asdict(s) for s in stores],
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    options = parse_options(argv)
    targets = (
        f"targets: verify ≥ {VERIFY_TARGET_EVENTS_PER_SECOND:,} events/s, rebuild ≥ "
        f"{REBUILD_TARGET_EVENTS_PER_SECOND:,} events/s, chain cost ≤ "
        f"{_pct(CHAIN_COST_TARGET)} of ingest events/s"
    )
    harness.main(
        "audit",
        argv,
        options,
        run,
        stores=options.stores,
        postgres_url=options.postgres_url,
        notes=[targets],
    )


if __name__ == "__main__":
    main()
