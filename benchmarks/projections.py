"""Read-side benchmark: projection catch-up, and the reconciliation report at scale.

    python -m benchmarks.projections [--payments N] [--report-payments N] [--stores sqlite,postgres]
                                     [--postgres-url URL] [--csv stream|string] [--profile]

For each store, in one run on one machine:
  - catch-up: a generated day (`adapters.trading_day.day`) is ingested into a fresh ledger
    (`adapters.jsonl.ingest`, batches of 1,000), then `ReadModels(ledger).rebuild()` is timed:
    every projection from zero, default batch size, in events applied per second. Baseline: the
    same projections with one transaction per event (`runner.reset`, then
    `catch_up(..., batch_size=1)`), on a sample of the first events of the log shared among the
    projections as in the full replay, stopped after 5,000 events or 20 s;
  - report: the read-model tables are filled directly (executemany on SQLite, COPY on
    PostgreSQL) with synthetic payments, PaymentIntent links and Stripe objects shaped so that
    every category occurs; then a child process opens the ledger, builds
    `ReadModels(ledger).report(as_of)` and writes it as CSV to a file (`write_csv`, streamed, as
    `offline-ledger report` does; `--csv string`: `render_csv`, then the string), timed end to
    end, with its peak RSS. Baseline: one hand-written SQL statement that puts each payment in
    a category with CASE expressions over the same tables (the rules of
    projections/reconciliation.py, simplified) and counts rows per category; its counts are
    compared with the report's and with the categories the data was generated for.

Nothing here asserts a speed: it measures, prints, and writes
benchmarks/out/results-projections-*.json. Figures are noisy on a shared machine; the load
average is recorded with them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from rich.table import Table as RichTable
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    String,
    Table,
    and_,
    case,
    distinct,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from adapters.trading_day import random_offline_id
from adapters.trading_day.day import SEED_DEFAULT, Day
from adapters.trading_day.stores import STORES
from benchmarks import harness
from benchmarks.harness import console
from benchmarks.ingest import (
    ChildRun,
    IngestFigures,
    _json_or_empty,
    generate_day,
    measure_ledger_ingest,
    phase,
    run_measured,
)
from benchmarks.stores import POSTGRES, SQLITE, Database, Databases
from ledger import Ledger
from ledger.storage import POSTGRES_EVENTS_TABLE, SQLITE_EVENTS_TABLE
from projections.read_models import PROJECTIONS, ReadModels
from projections.reconciliation import Thresholds
from projections.report import Category
from projections.runner import BATCH_SIZE_DEFAULT, catch_up, reset
from projections.stripe_fold import fold_all
from projections.tables import (
    payment_intent_links,
    payments,
    stripe_keys,
    stripe_movements,
    stripe_objects,
    stripe_payments,
)

INGEST_BATCH_SIZE = 1_000
CATCH_UP_TARGET_EVENTS_PER_SECOND = 50_000
REPORT_TARGET_SECONDS = 20.0
REPORT_TARGET_RSS_MIB = 300.0  # the target at 1M payments + 1M Stripe objects
FILL_CHUNK = 50_000  # payments generated and inserted per transaction
# The report's moment: synthetic payments were taken in the week before it.
AS_OF = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PROFILE_LINES_SHOWN = 15

Advance = Callable[[float], None]


@dataclass(frozen=True)
class Options:
    payments: int
    report_payments: int
    report_stripe_objects: int
    stores: tuple[str, ...]
    postgres_url: str
    baseline_events: int
    baseline_seconds: float
    csv_mode: str
    seed: int
    profile: bool


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatchUpFigures:
    ingest: IngestFigures
    events_by_projection: dict[str, int]  # stored events each projection reads
    events: int  # applied by the rebuild
    seconds: float
    events_per_second: float
    cpu_seconds: float  # the process's (on PostgreSQL the client's): the wall clock's share
    batch_size: int
    baseline_events: int  # one transaction per event, on a sample
    baseline_seconds: float
    baseline_events_per_second: float
    baseline_by_projection: dict[str, int]
    speedup: float  # events/s of the rebuild over events/s of the baseline
    target_events_per_second: int = CATCH_UP_TARGET_EVENTS_PER_SECOND

    @property
    def target_met(self) -> bool:
        return self.events_per_second >= self.target_events_per_second


@dataclass(frozen=True)
class FillFigures:
    method: str
    payments: int
    links: int
    stripe_objects: int
    orphans: int
    seconds: float
    fold_seconds: float  # `fold_all` after the fill: what an import's catch-up folds
    analyzed: bool  # VACUUM ANALYZE afterwards (PostgreSQL: what autovacuum would do)
    shapes: dict[str, int]  # how many payments of each generated shape
    expected: dict[str, int]  # report rows per category, as the data was generated


@dataclass(frozen=True)
class ReportFigures:
    csv_mode: str  # "stream": write_csv into the file; "string": render_csv, then write
    rows: int
    seconds: float  # in the child: open the ledger, report, render CSV, write the file
    process_seconds: float  # the child's wall time, interpreter start and imports included
    rows_per_second: float
    open_seconds: float
    report_seconds: float  # to the first row (refresh: nothing to apply; the queries run)
    render_seconds: float  # write_csv (streamed: writing included) or render_csv
    write_seconds: float
    import_seconds: float
    csv_bytes: int
    max_rss_mib: float  # getrusage of the child alone
    polled_peak_rss_mib: float
    peak_after_imports_mib: float  # the child's own peak RSS so far, at three points
    peak_after_report_mib: float
    peak_after_render_mib: float
    exit_status: int
    categories: dict[str, int]
    target_seconds: float = REPORT_TARGET_SECONDS
    target_rss_mib: float = REPORT_TARGET_RSS_MIB


@dataclass(frozen=True)
class SqlFigures:
    seconds: float
    categories: dict[str, int]
    statement: str
    # The same statement's rows (id, category), ordered, written to a CSV file as the
    # report's are (COPY on PostgreSQL, csv.writer on SQLite).
    rows_seconds: float = 0.0
    rows: int = 0


@dataclass(frozen=True)
class StoreFigures:
    store: str
    catch_up: CatchUpFigures
    fill: FillFigures
    report: ReportFigures
    sql: SqlFigures
    report_over_sql: float  # report seconds / SQL seconds
    report_over_sql_rows: float  # report seconds / seconds of the SQL's rows written
    counts_equal: bool  # report's per-category counts == the SQL statement's
    counts_as_generated: bool  # report's per-category counts == the generated shapes'
    load_average_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_average_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    profiles: dict[str, str] = field(default_factory=dict)


# -- 1. projection catch-up ---------------------------------------------------------------------


class _Enough(Exception):
    """Raised from a progress callback to end a bounded catch-up (after a committed batch)."""


def events_by_projection(engine: Engine, kind: str) -> dict[str, int]:
    """How many stored events each projection reads: the log's rows per topic."""
    events_table = SQLITE_EVENTS_TABLE if kind == SQLITE else POSTGRES_EVENTS_TABLE
    with engine.connect() as conn:
        found = conn.execute(text(f"SELECT topic, COUNT(*) FROM {events_table} GROUP BY topic"))
        per_topic: dict[str, int] = {str(topic): int(n) for topic, n in found}
    return {p.name: sum(per_topic.get(topic, 0) for topic in p.topics) for p in PROJECTIONS}


def measure_catch_up(
    options: Options, databases: Databases, kind: str, source: Path
) -> tuple[CatchUpFigures, Database]:
    where = databases.fresh(kind, "catchup")
    ingested = measure_ledger_ingest(databases, where, source, INGEST_BATCH_SIZE)
    with Ledger.open(where.url) as ledger, ReadModels(ledger) as models:
        per_projection = events_by_projection(models.engine, kind)
        total = sum(per_projection.values())
        with phase(f"{kind}: ReadModels.rebuild() of {total:,} events", total) as advance:
            started, cpu_started = time.perf_counter(), time.process_time()
            applied = models.rebuild(progress=advance)
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
        if applied != total:
            console.print(
                f"[yellow]note:[/] rebuild applied {applied:,} events, the log holds "
                f"{total:,} for the projections",
                highlight=False,
            )
        # The engine ReadModels.rebuild writes with (on SQLite, its BEGIN IMMEDIATE writer).
        baseline = measure_one_per_event(options, ledger, models.writer, kind, per_projection)
    rate = applied / seconds
    base_events, base_seconds, base_by_projection = baseline
    base_rate = base_events / base_seconds if base_seconds else 0.0
    return CatchUpFigures(
        ingest=ingested,
        events_by_projection=per_projection,
        events=applied,
        seconds=seconds,
        events_per_second=rate,
        cpu_seconds=cpu_seconds,
        batch_size=BATCH_SIZE_DEFAULT,
        baseline_events=base_events,
        baseline_seconds=base_seconds,
        baseline_events_per_second=base_rate,
        baseline_by_projection=base_by_projection,
        speedup=rate / base_rate if base_rate else math.inf,
    ), where


def measure_one_per_event(
    options: Options, ledger: Ledger, engine: Engine, kind: str, per_projection: dict[str, int]
) -> tuple[int, float, dict[str, int]]:
    """`rebuild` with one transaction per event: `reset` (not timed), then
    `catch_up(..., batch_size=1)`, each projection on its share of the sample (and of the time
    budget) as in the full replay. Returns events, seconds, events per projection."""
    total = sum(per_projection.values())
    reset(engine, PROJECTIONS)
    applied: dict[str, int] = {}
    seconds = 0.0
    sample = min(options.baseline_events, total)
    with phase(
        f"{kind}: one transaction per event, {sample:,}-event sample "
        f"(≤ {options.baseline_seconds:.0f} s)",
        sample,
    ) as advance:
        for projection in PROJECTIONS:
            count = per_projection[projection.name]
            if count == 0:
                continue
            share = count / total
            limit = max(1, math.ceil(sample * share))
            budget = options.baseline_seconds * share
            done = 0
            started = time.perf_counter()

            def stop_when_enough(
                events: int, limit: int = limit, budget: float = budget, started: float = started
            ) -> None:
                nonlocal done
                done += events
                advance(events)
                if done >= limit or time.perf_counter() - started >= budget:
                    raise _Enough

            with contextlib.suppress(_Enough):
                catch_up(ledger, engine, [projection], batch_size=1, progress=stop_when_enough)
            seconds += time.perf_counter() - started
            applied[projection.name] = done
    return sum(applied.values()), seconds, applied


# -- 2. the report at scale: synthetic read models ----------------------------------------------


@dataclass(frozen=True)
class Shape:
    """A kind of synthetic payment, the share of payments it gets, and its report category."""

    name: str
    share: float  # of all payments; "matched" takes what the others leave
    category: Category


SHAPES: tuple[Shape, ...] = (
    Shape("pending_forward", 0.010, Category.PENDING_FORWARD),  # stored < 24 h ago
    Shape("pending_unstored", 0.001, Category.PENDING_FORWARD),  # collected, never stored
    Shape("stale_forward", 0.003, Category.STALE_FORWARD),  # stored > 24 h ago
    Shape("abandoned", 0.0005, Category.CANCELED),  # collected, never stored, > 24 h ago
    Shape("awaiting_capture", 0.015, Category.AWAITING_CAPTURE),
    Shape("capture_overdue", 0.003, Category.CAPTURE_OVERDUE),
    Shape("declined", 0.004, Category.DECLINED),  # with Stripe's requires_payment_method
    Shape("declined_unseen", 0.004, Category.DECLINED),  # no Stripe object
    Shape("duplicate", 0.003, Category.DUPLICATE),  # 2 Stripe objects with one offline_id
    Shape("duplicate_known", 0.0005, Category.DUPLICATE),  # the ledger saw the 2nd forward
    Shape("amount_mismatch", 0.003, Category.AMOUNT_MISMATCH),  # 1 in 5: the currency
    Shape("missing_in_stripe", 0.004, Category.MISSING_IN_STRIPE),
    Shape("canceled", 0.008, Category.CANCELED),  # before forwarding
    Shape("voided", 0.004, Category.CANCELED),  # forwarded, then canceled on Stripe
    Shape("matched_report_row", 0.05, Category.MATCHED),  # Stripe's side from a balance report
    Shape("matched", 0.0, Category.MATCHED),
)
# Hours before AS_OF within which each shape's payment was created.
_CREATED_HOURS_AGO: dict[str, tuple[float, float]] = {
    "pending_forward": (0.02, 20.0),
    "pending_unstored": (0.02, 20.0),
    "stale_forward": (25.0, 120.0),
    "abandoned": (25.0, 120.0),
    "awaiting_capture": (1.5, 12.0),
    "capture_overdue": (120.0, 168.0),
}
_CREATED_HOURS_AGO_DEFAULT = (1.5, 168.0)
_BRANDS, _BRAND_WEIGHTS = ("visa", "mastercard", "amex", "discover"), (50, 35, 10, 5)
_DEVICES = {store.location_id: store.reader_ids() for store in STORES}

Row = dict[str, Any]


class SyntheticReadModels:
    """Deterministic rows for the payments, payment_intent_links and stripe_objects tables."""

    def __init__(self, payments: int, stripe_objects: int, seed: int) -> None:
        self.payments = payments
        self.stripe_objects_wanted = stripe_objects
        self.rng = random.Random(seed)
        self.shapes: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()
        self.links = 0
        self.stripe_objects = 0
        self.orphans = 0
        rest = 1.0 - sum(shape.share for shape in SHAPES)
        assert rest > 0.5, rest
        self._thresholds: list[tuple[float, Shape]] = []
        cumulative = 0.0
        for shape in SHAPES:
            cumulative += shape.share if shape.name != "matched" else rest
            self._thresholds.append((cumulative, shape))

    def chunks(self, size: int) -> Iterator[tuple[list[Row], list[Row], list[Row], list[Row]]]:
        """(payments, links, stripe objects, money movements) for `size` payments at a time,
        then the orphans (Stripe objects of no payment) that bring the Stripe objects to the
        number wanted."""
        made = 0
        while made < self.payments:
            count = min(size, self.payments - made)
            chunk: tuple[list[Row], list[Row], list[Row], list[Row]] = ([], [], [], [])
            for _ in range(count):
                self._payment(*chunk)
            made += count
            yield chunk
        orphans = max(0, self.stripe_objects_wanted - self.stripe_objects)
        while orphans > 0:
            count = min(size, orphans)
            yield [], [], [self._orphan() for _ in range(count)], []
            orphans -= count

    # one payment and what Stripe and the ledger's links say about it

    def _pick(self) -> Shape:
        draw = self.rng.random()
        for threshold, shape in self._thresholds:
            if draw < threshold:
                return shape
        return self._thresholds[-1][1]

    def _id(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(120):030x}"

    def _payment(
        self, rows: list[Row], links: list[Row], seen: list[Row], moved: list[Row]
    ) -> None:
        rng, shape = self.rng, self._pick()
        self.shapes[shape.name] += 1
        self.expected[shape.category.value] += 1
        store = rng.choices(STORES, [s.weight for s in STORES])[0]
        amount = max(100, min(int(rng.lognormvariate(math.log(2500), 0.9)), 500_000))
        lo, hi = _CREATED_HOURS_AGO.get(shape.name, _CREATED_HOURS_AGO_DEFAULT)
        created = _naive(AS_OF) - timedelta(hours=rng.uniform(lo, hi))
        stored = created + timedelta(seconds=rng.uniform(10, 60))
        forwarded = stored + timedelta(seconds=rng.uniform(60, 3600))
        offline_id = random_offline_id(rng)
        payment: Row = {
            "stream_id": f"{rng.getrandbits(128):032x}",
            "offline_id": offline_id,
            "location_id": store.location_id,
            "device_id": rng.choice(_DEVICES[store.location_id]),
            "amount": amount,
            "currency": store.currency,
            "capture_method": "automatic" if rng.random() < 0.1 else "manual",
            "status": "stored",
            "card_brand": rng.choices(_BRANDS, _BRAND_WEIGHTS)[0],
            "payment_intent_id": None,
            "duplicate_payment_intent_ids": "",
            "duplicate_refund_amount": 0,
            "stripe_status": None,
            "decline_code": None,
            "amount_captured": 0,
            "created_at": created,
            "stored_at": stored,
            "forwarded_at": None,
            "declined_at": None,
            "captured_at": None,
            "canceled_at": None,
        }
        rows.append(payment)
        name = shape.name
        if name in ("pending_forward", "stale_forward"):
            return
        if name in ("pending_unstored", "abandoned"):
            payment.update(status="collected", stored_at=None)
            return
        if name == "canceled":
            payment.update(
                status="canceled",
                stored_at=None,
                canceled_at=created + timedelta(seconds=rng.uniform(30, 90)),
            )
            return
        pi = self._id("pi_")
        payment["payment_intent_id"] = pi
        self._link(links, pi, offline_id)
        stripe = self._stripe_object(pi, offline_id, payment, forwarded)
        if name in ("declined", "declined_unseen"):
            code = rng.choice(["insufficient_funds", "do_not_honor", "expired_card"])
            payment.update(status="declined", decline_code=code, declined_at=forwarded)
            if name == "declined":
                stripe.update(
                    status="requires_payment_method",
                    decline_code=code,
                    amount_received=0,
                    charge_id=None,
                )
                self._add(seen, stripe)
            return
        payment["forwarded_at"] = forwarded
        if name in ("awaiting_capture", "capture_overdue"):
            payment.update(status="forwarded", stripe_status="requires_capture")
            stripe.update(status="requires_capture", amount_received=0, amount_capturable=amount)
            self._add(seen, stripe)
            return
        if name == "voided":
            payment.update(
                status="canceled",
                stripe_status="requires_capture",
                canceled_at=forwarded + timedelta(seconds=rng.uniform(30, 600)),
            )
            stripe.update(status="canceled", amount_received=0)
            self._add(seen, stripe)
            return
        captured = forwarded + timedelta(seconds=rng.uniform(60, 1200))
        payment.update(
            status="captured",
            stripe_status="succeeded",
            amount_captured=amount,
            captured_at=min(captured, _naive(AS_OF)),
        )
        if name == "missing_in_stripe":
            return
        if name == "matched_report_row":  # a balance report row: a charge, no PaymentIntent
            stripe.update(
                key=stripe["charge_id"],
                amount=None,
                amount_received=None,
                amount_capturable=None,
                status=None,
                card_brand=None,
                observed_at=None,
                charged_gross=amount,
                balance_transactions=1,
            )
            txn = self._id("txn_")
            moved.append(
                {
                    "movement_key": txn,
                    "balance_transaction_id": txn,
                    "charge_id": stripe["charge_id"],
                    "source_id": stripe["charge_id"],
                    "offline_id": offline_id,
                    "currency": payment["currency"],
                    "gross": amount,
                    "category": "charge",
                    "created_at": captured,
                }
            )
        elif name == "amount_mismatch":
            if rng.random() < 0.2:
                stripe["currency"] = "usd" if payment["currency"] != "usd" else "cad"
            else:
                stripe["amount"] = stripe["amount_received"] = amount + rng.randint(1, 500)
        self._add(seen, stripe)
        if name in ("duplicate", "duplicate_known"):
            second = self._id("pi_")
            self._add(
                seen,
                self._stripe_object(second, offline_id, payment, forwarded + timedelta(seconds=90)),
            )
            if name == "duplicate_known":
                payment.update(duplicate_payment_intent_ids=second, duplicate_refund_amount=amount)
                self._link(links, second, offline_id)

    def _stripe_object(
        self, pi: str, offline_id: str | None, payment: Row, created: datetime
    ) -> Row:
        amount = payment["amount"]
        return {
            "stream_id": f"{self.rng.getrandbits(128):032x}",
            "key": pi,
            "payment_intent_id": pi,
            "charge_id": self._id("ch_"),
            "offline_id": offline_id,
            "amount": amount,
            "amount_received": amount,
            "amount_capturable": 0,
            "currency": payment["currency"],
            "status": "succeeded",
            "offline_collected": True,
            "card_brand": payment["card_brand"],
            "decline_code": None,
            "created_at": created,
            "observed_at": created + timedelta(seconds=5),
            "charged_gross": 0,
            "refunded_gross": 0,
            "balance_transactions": 0,
        }

    def _orphan(self) -> Row:
        """A Stripe PaymentIntent collected offline that no ledger payment knows."""
        rng = self.rng
        store = rng.choice(STORES)
        offline_id = random_offline_id(rng) if rng.random() < 0.7 else None
        amount = max(100, min(int(rng.lognormvariate(math.log(2500), 0.9)), 500_000))
        payment = {
            "amount": amount,
            "currency": store.currency,
            "card_brand": rng.choices(_BRANDS, _BRAND_WEIGHTS)[0],
        }
        created = _naive(AS_OF) - timedelta(hours=rng.uniform(*_CREATED_HOURS_AGO_DEFAULT))
        self.orphans += 1
        self.expected[Category.ORPHAN_IN_STRIPE.value] += 1
        self.stripe_objects += 1
        return self._stripe_object(self._id("pi_"), offline_id, payment, created)

    def _add(self, seen: list[Row], stripe: Row) -> None:
        seen.append(stripe)
        self.stripe_objects += 1

    def _link(self, links: list[Row], pi: str, offline_id: str) -> None:
        links.append({"payment_intent_id": pi, "offline_id": offline_id})
        self.links += 1


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


class _SqliteLoader:
    """executemany, one transaction per chunk, in the text format SQLAlchemy reads back."""

    method = "sqlite3 executemany, one transaction per 50,000 payments"

    def __init__(self, where: Database) -> None:
        assert where.path is not None
        self.conn = sqlite3.connect(where.path, isolation_level=None)

    def load(self, chunk: Sequence[tuple[Table, list[Row]]]) -> None:
        self.conn.execute("BEGIN")
        for table, rows in chunk:
            if not rows:
                continue
            names, defaults = _columns(table)
            times = {column.name for column in table.columns if isinstance(column.type, DateTime)}
            statement = (
                f"INSERT INTO {table.name} ({', '.join(map(_quoted, names))}) "
                f"VALUES ({', '.join('?' * len(names))})"
            )
            self.conn.executemany(
                statement,
                (
                    tuple(
                        _sqlite_time(row.get(n, defaults[n]))
                        if n in times
                        else row.get(n, defaults[n])
                        for n in names
                    )
                    for row in rows
                ),
            )
        self.conn.execute("COMMIT")

    def finish(self) -> bool:
        self.conn.close()
        return False  # no ANALYZE: the application never runs one on SQLite


class _PostgresLoader:
    """COPY into the schema's tables, one transaction per chunk; VACUUM ANALYZE at the end."""

    method = "psycopg COPY, one transaction per 50,000 payments"

    def __init__(self, databases: Databases, where: Database) -> None:
        assert where.schema is not None
        self.schema = where.schema
        self.conn = psycopg.connect(databases.postgres_url)

    def load(self, chunk: Sequence[tuple[Table, list[Row]]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            for table, rows in chunk:
                if not rows:
                    continue
                names, defaults = _columns(table)
                copy = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
                    sql.Identifier(self.schema),
                    sql.Identifier(table.name),
                    sql.SQL(", ").join(map(sql.Identifier, names)),
                )
                with cursor.copy(copy) as writer:
                    for row in rows:
                        writer.write_row([row.get(n, defaults[n]) for n in names])

    def finish(self) -> bool:
        self.conn.autocommit = True
        for table in (payments, payment_intent_links, stripe_objects, stripe_movements):
            self.conn.execute(
                sql.SQL("VACUUM ANALYZE {}.{}").format(
                    sql.Identifier(self.schema), sql.Identifier(table.name)
                )
            )
        self.conn.close()
        return True


def _columns(table: Table) -> tuple[list[str], dict[str, Any]]:
    """The table's columns, as the models define them now, and the value of each that a
    generated row leaves out (its scalar default, else NULL)."""
    names = [column.name for column in table.columns]
    defaults = {
        column.name: column.default.arg  # type: ignore[attr-defined]
        if column.default is not None and column.default.is_scalar
        else None
        for column in table.columns
    }
    return names, defaults


def _quoted(name: str) -> str:
    return f'"{name}"'


def _sqlite_time(value: Any) -> Any:
    """SQLAlchemy's SQLite DATETIME text: 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


def fold_stripe_side(where: Database, analyze: bool) -> float:
    """Fold the filled observations per Stripe payment as their projection would have
    (`projections.stripe_fold.fold_all`), in one transaction; its seconds. With `analyze`
    (PostgreSQL), VACUUM ANALYZE the folded tables after, as the fill does its own."""
    with Ledger.open(where.url) as ledger, ReadModels(ledger) as models:
        started = time.perf_counter()
        with models.writer.begin() as conn:
            fold_all(conn)
        seconds = time.perf_counter() - started
        if analyze:
            with models.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                for table in (stripe_keys, stripe_payments):
                    conn.exec_driver_sql(f"VACUUM ANALYZE {table.name}")
    return seconds


def fill_read_models(
    options: Options, databases: Databases, kind: str
) -> tuple[FillFigures, Database]:
    """A fresh ledger (migrations run by `Ledger.open`), its read models filled directly."""
    where = databases.fresh(kind, "report")
    with Ledger.open(where.url):
        pass
    synthetic = SyntheticReadModels(
        options.report_payments, options.report_stripe_objects, options.seed
    )
    loader: _SqliteLoader | _PostgresLoader = (
        _SqliteLoader(where) if kind == SQLITE else _PostgresLoader(databases, where)
    )
    total = options.report_payments + options.report_stripe_objects
    with phase(
        f"{kind}: filling read models ({options.report_payments:,} payments, "
        f"~{options.report_stripe_objects:,} Stripe objects)",
        total,
    ) as advance:
        started = time.perf_counter()
        for rows, links, seen, moved in synthetic.chunks(FILL_CHUNK):
            loader.load(
                [
                    (payments, rows),
                    (payment_intent_links, links),
                    (stripe_objects, seen),
                    (stripe_movements, moved),
                ]
            )
            advance(len(rows) + len(seen))
        analyzed = loader.finish()
        seconds = time.perf_counter() - started
    with phase(f"{kind}: folding Stripe's side per Stripe payment (fold_all)", None):
        fold_seconds = fold_stripe_side(where, analyzed)
    return FillFigures(
        method=loader.method + ("; VACUUM ANALYZE" if analyzed else "; no ANALYZE"),
        payments=options.report_payments,
        links=synthetic.links,
        stripe_objects=synthetic.stripe_objects,
        orphans=synthetic.orphans,
        seconds=seconds,
        fold_seconds=fold_seconds,
        analyzed=analyzed,
        shapes=dict(sorted(synthetic.shapes.items())),
        expected=dict(sorted(synthetic.expected.items())),
    ), where


# The report, end to end, in a process of its own: argv = url, as_of, output path, profile path
# ("" for none), mode ("stream": the CSV streamed into the file as `offline-ledger report` does;
# "string": render_csv, then write the string; json, html, table: that format, as the command
# writes it). Prints timings and rows per category as JSON.
_REPORT_CHILD = """
import time
started = time.perf_counter()
import json, resource, sys
from collections import Counter
from datetime import datetime
from ledger import Ledger
from projections.read_models import ReadModels
url, as_of, csv_path, profile_path, csv_mode = sys.argv[1:6]
from projections.formats import write
from projections.formats.csv import render_csv
from dataclasses import replace
profiler = None
if profile_path:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
imported = time.perf_counter()
peak_after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
categories = Counter()
def counted(rows):
    for row in rows:
        categories[row.category.value] += 1
        yield row
with Ledger.open(url) as ledger, ReadModels(ledger) as models:
    opened = time.perf_counter()
    with models.streamed_report(datetime.fromisoformat(as_of)) as report:
        reported = time.perf_counter()  # the first row read
        peak_after_report = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = replace(report, rows=counted(report.rows))
        with open(csv_path, "w", encoding="utf-8", newline="") as out:
            if csv_mode == "string":
                csv_text = render_csv(report)
                rendered = time.perf_counter()
                out.write(csv_text)
                del csv_text
            else:
                write(report, "csv" if csv_mode == "stream" else csv_mode, out)
                rendered = time.perf_counter()
    written = time.perf_counter()
    peak_after_render = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if csv_mode in ("stream", "string") and not categories:
    # The database wrote the CSV (`Report.csv_lines`): count its rows' categories (not timed).
    import csv
    with open(csv_path, encoding="utf-8", newline="") as written_csv:
        for line in csv.DictReader(written_csv):
            categories[line["category"]] += 1
if profiler is not None:
    import io, pstats
    profiler.disable()
    shown = io.StringIO()
    stats = pstats.Stats(profiler, stream=shown)
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(15)
    with open(profile_path, "w", encoding="utf-8") as out:
        out.write(shown.getvalue())
print(json.dumps({
    "rows": sum(categories.values()), "import_seconds": imported - started,
    "open_seconds": opened - imported, "report_seconds": reported - opened,
    "render_seconds": rendered - reported, "write_seconds": written - rendered,
    "seconds": written - imported,
    "peak_after_imports_kib": peak_after_imports, "peak_after_report_kib": peak_after_report,
    "peak_after_render_kib": peak_after_render,
    "categories": dict(categories),
}))
"""


def run_report_child(
    where: Database, workdir: Path, label: str, csv_mode: str, profile_path: Path | None = None
) -> tuple[ChildRun, dict[str, Any], float, Path]:
    csv_path = workdir / f"{label}.csv"
    command = [
        sys.executable,
        "-c",
        _REPORT_CHILD,
        where.url,
        AS_OF.isoformat(),
        str(csv_path),
        str(profile_path or ""),
        csv_mode,
    ]
    started = time.perf_counter()
    child = run_measured(command, workdir, label, None)
    process_seconds = time.perf_counter() - started
    if child.exit_status != 0:
        stderr = (workdir / f"{label}.stderr").read_text(encoding="utf-8", errors="replace")
        console.print(
            f"[red]the report child failed ({child.exit_status}):[/]\n{stderr[-3000:]}",
            highlight=False,
        )
    return child, _json_or_empty(child.stdout), process_seconds, csv_path


def measure_report(where: Database, workdir: Path, kind: str, csv_mode: str) -> ReportFigures:
    with phase(f"{kind}: report + CSV ({csv_mode}) in a child process", None):
        child, out, process_seconds, csv_path = run_report_child(
            where, workdir, f"report-{kind}", csv_mode
        )
    rows, seconds = int(out.get("rows", 0)), float(out.get("seconds", 0.0))
    return ReportFigures(
        csv_mode=csv_mode,
        rows=rows,
        seconds=seconds,
        process_seconds=process_seconds,
        rows_per_second=rows / seconds if seconds else 0.0,
        open_seconds=float(out.get("open_seconds", 0.0)),
        report_seconds=float(out.get("report_seconds", 0.0)),
        render_seconds=float(out.get("render_seconds", 0.0)),
        write_seconds=float(out.get("write_seconds", 0.0)),
        import_seconds=float(out.get("import_seconds", 0.0)),
        csv_bytes=csv_path.stat().st_size if csv_path.exists() else 0,
        max_rss_mib=child.max_rss_kib / 1024,
        polled_peak_rss_mib=child.polled_peak_kib / 1024,
        peak_after_imports_mib=float(out.get("peak_after_imports_kib", 0)) / 1024,
        peak_after_report_mib=float(out.get("peak_after_report_kib", 0)) / 1024,
        peak_after_render_mib=float(out.get("peak_after_render_kib", 0)) / 1024,
        exit_status=child.exit_status,
        categories=dict(sorted((str(k), int(v)) for k, v in out.get("categories", {}).items())),
    )


# -- the SQL baseline -------------------------------------------------------------------------


def _label(category: Category) -> ColumnElement[Any]:
    return literal_column(f"'{category.value}'", String)


_NO_MONEY = ("canceled", "requires_payment_method")


def category_counts_query(as_of: datetime, thresholds: Thresholds) -> Any:
    """Rows per category in one statement (`category_rows`, grouped): eleven lines."""
    every = category_rows(as_of, thresholds).subquery("every")
    return select(every.c.category, func.count()).group_by(every.c.category)


def category_rows_query(as_of: datetime, thresholds: Thresholds, kind: str) -> Any:
    """Every row's id and category, ordered by the id (by bytes, as the report orders its
    rows): what the report's CSV is, less its other 23 columns and its orphans' own order."""
    every = category_rows(as_of, thresholds).subquery("every")
    order = every.c.id.collate("C") if kind == POSTGRES else every.c.id
    return select(every.c.id, every.c.category).order_by(order)


def category_rows(as_of: datetime, thresholds: Thresholds) -> Any:
    """Each report row's id (a payment's offline_id, an orphan's Stripe object key) and its
    category: the rules of projections/reconciliation.py, simplified. Simplifications: the
    primary Stripe object is the one whose payment_intent_id is the ledger's (no fallback
    to the first one seen, no match on its key); a ledger duplicate is seen through
    duplicate_refund_amount only; Stripe's objects are read as they are (no links followed
    from a charge or a refund to its PaymentIntent, no movements, charges or disputes
    folded in); no ids, ages, amounts at risk or Stripe columns are computed."""
    now = _naive(as_of)
    p, s, links = payments, stripe_objects, payment_intent_links

    def status_of(t: Any) -> ColumnElement[Any]:  # a charge without a status: succeeded
        return func.coalesce(
            t.c.status, case((t.c.charged_gross > 0, literal_column("'succeeded'", String)))
        )

    def live_pi(t: Any) -> ColumnElement[Any]:  # its PaymentIntent if it holds money
        status = status_of(t)
        return case(
            (
                or_(status.is_(None), status.not_in(_NO_MONEY)),
                func.coalesce(t.c.payment_intent_id, t.c.key),
            )
        )

    # Stripe objects per payment: by a PaymentIntent the ledger recorded, or by offline_id.
    seen = union(
        select(
            links.c.offline_id.label("owner"), s.c.stream_id, live_pi(s).label("live_pi")
        ).join_from(links, s, s.c.payment_intent_id == links.c.payment_intent_id),
        select(p.c.offline_id.label("owner"), s.c.stream_id, live_pi(s).label("live_pi")).join_from(
            p, s, s.c.offline_id == p.c.offline_id
        ),
    ).subquery("seen")
    live = (
        select(
            seen.c.owner,
            func.count(seen.c.live_pi).label("objects"),
            func.count(distinct(seen.c.live_pi)).label("pis"),
        )
        .group_by(seen.c.owner)
        .subquery("live")
    )
    primary = stripe_objects.alias("pr")
    live_objects = func.coalesce(live.c.objects, 0)
    live_pis = func.coalesce(live.c.pis, 0) + case(  # the ledger's PaymentIntent unseen
        (
            and_(
                p.c.payment_intent_id.is_not(None),
                primary.c.stream_id.is_(None),
                p.c.status != "declined",
            ),
            1,
        ),
        else_=0,
    )
    began = func.coalesce(p.c.stored_at, p.c.created_at)
    stale = began <= literal(now - thresholds.stale_after, DateTime)
    stripe_status = status_of(primary)
    stripe_amount = func.coalesce(
        primary.c.amount, case((primary.c.balance_transactions > 0, primary.c.charged_gross))
    )
    expected = case(
        (and_(primary.c.amount.is_(None), p.c.amount_captured != 0), p.c.amount_captured),
        else_=p.c.amount,
    )
    authorized = func.coalesce(p.c.forwarded_at, primary.c.created_at, p.c.created_at)
    brand = func.coalesce(p.c.card_brand, primary.c.card_brand)
    overdue_from = case(  # authorized at or before this: the capture is overdue
        *(
            (brand == name, literal(now - window + thresholds.capture_warning, DateTime))
            for name, window in thresholds.capture_windows.items()
        ),
        else_=literal(
            now - thresholds.capture_window_default + thresholds.capture_warning, DateTime
        ),
    )
    unseen = primary.c.stream_id.is_(None)
    category = case(
        (and_(p.c.status == "canceled", live_objects == 0), _label(Category.CANCELED)),
        (or_(live_pis > 1, p.c.duplicate_refund_amount != 0), _label(Category.DUPLICATE)),
        (
            or_(
                p.c.status == "declined",
                primary.c.decline_code.is_not(None),
                primary.c.status == "requires_payment_method",
            ),
            _label(Category.DECLINED),
        ),
        (and_(unseen, p.c.payment_intent_id.is_not(None)), _label(Category.MISSING_IN_STRIPE)),
        (and_(unseen, p.c.status != "stored", stale), _label(Category.CANCELED)),
        (and_(unseen, stale), _label(Category.STALE_FORWARD)),
        (unseen, _label(Category.PENDING_FORWARD)),
        (
            or_(
                primary.c.currency.is_(None),
                primary.c.currency != p.c.currency,
                stripe_amount.is_(None),
                stripe_amount != expected,
            ),
            _label(Category.AMOUNT_MISMATCH),
        ),
        (stripe_status == "canceled", _label(Category.CANCELED)),
        (
            and_(stripe_status == "requires_capture", authorized <= overdue_from),
            _label(Category.CAPTURE_OVERDUE),
        ),
        (stripe_status == "requires_capture", _label(Category.AWAITING_CAPTURE)),
        else_=_label(Category.MATCHED),
    )
    per_payment = select(p.c.offline_id.label("id"), category.label("category")).select_from(
        p.outerjoin(live, live.c.owner == p.c.offline_id).outerjoin(
            primary, primary.c.payment_intent_id == p.c.payment_intent_id
        )
    )
    orphans = (
        select(s.c.key.label("id"), _label(Category.ORPHAN_IN_STRIPE).label("category"))
        .where(or_(s.c.offline_id.is_not(None), s.c.offline_collected.is_(True)))
        .where(~exists().where(p.c.offline_id == s.c.offline_id))
        .where(~exists().where(links.c.payment_intent_id == s.c.payment_intent_id))
    )
    return union_all(per_payment, orphans)


def measure_sql(where: Database, kind: str, workdir: Path) -> SqlFigures:
    query = category_counts_query(AS_OF, Thresholds())
    with Ledger.open(where.url) as ledger, ReadModels(ledger) as models:
        statement = str(query.compile(models.engine, compile_kwargs={"literal_binds": True}))
        with (
            phase(f"{kind}: SQL baseline (category per payment, GROUP BY)", None),
            models.engine.connect() as conn,
        ):
            started = time.perf_counter()
            found = conn.execute(query).all()
            seconds = time.perf_counter() - started
        with (
            phase(f"{kind}: SQL baseline's rows (id, category; ordered, to a CSV file)", None),
            models.engine.connect() as conn,
        ):
            started = time.perf_counter()
            rows = write_category_rows(conn, kind, workdir / f"sql-rows-{kind}.csv")
            rows_seconds = time.perf_counter() - started
    return SqlFigures(
        seconds,
        dict(sorted((str(k), int(n)) for k, n in found)),
        statement,
        rows_seconds,
        rows,
    )


def write_category_rows(conn: Connection, kind: str, path: Path) -> int:
    """`category_rows_query`'s rows into a CSV file: COPY on PostgreSQL, streamed through
    csv.writer on SQLite (the ways the report writes its CSV); the rows written."""
    query = category_rows_query(AS_OF, Thresholds(), kind)
    written = 0
    if kind == POSTGRES:
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        raw: Any = conn.connection.driver_connection
        copy = f"COPY ({compiled}) TO STDOUT (FORMAT csv)"
        with (
            path.open("wb") as binary,
            raw.cursor() as cursor,
            cursor.copy(copy, compiled.params) as lines,
        ):
            for data in lines:
                binary.write(data)
                written += bytes(data).count(b"\n")
        return written
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        streamed = conn.execution_options(stream_results=True)
        for chunk in streamed.execute(query).partitions(10_000):
            writer.writerows(chunk)
            written += len(chunk)
    return written


# -- one store ----------------------------------------------------------------------------------


def measure_store(
    options: Options, databases: Databases, kind: str, source: Path, workdir: Path
) -> StoreFigures:
    load_before = os.getloadavg()
    catch_up_figures, catch_up_db = measure_catch_up(options, databases, kind, source)
    fill, report_db = fill_read_models(options, databases, kind)
    report = measure_report(report_db, workdir, kind, options.csv_mode)
    sql_figures = measure_sql(report_db, kind, workdir)
    load_after = os.getloadavg()
    profiles = (
        profile_store(databases, kind, catch_up_db, report_db, workdir, options.csv_mode)
        if options.profile
        else {}
    )
    return StoreFigures(
        store=kind,
        catch_up=catch_up_figures,
        fill=fill,
        report=report,
        sql=sql_figures,
        report_over_sql=report.seconds / sql_figures.seconds if sql_figures.seconds else 0.0,
        report_over_sql_rows=report.seconds / sql_figures.rows_seconds
        if sql_figures.rows_seconds
        else 0.0,
        counts_equal=report.categories == sql_figures.categories,
        counts_as_generated=report.categories == fill.expected,
        load_average_before=load_before,
        load_average_after=load_after,
        profiles=profiles,
    )


def profile_store(
    databases: Databases,
    kind: str,
    catch_up_db: Database,
    report_db: Database,
    workdir: Path,
    csv_mode: str,
) -> dict[str, str]:
    """cProfile (top functions by own time) of a second rebuild and of the report child:
    separate runs, profiling slows them down."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    with (
        Ledger.open(catch_up_db.url) as ledger,
        ReadModels(ledger) as models,
        phase(f"{kind}: profiled ReadModels.rebuild()", None),
    ):
        profiler.enable()
        models.rebuild()
        profiler.disable()
    shown = io.StringIO()
    stats = pstats.Stats(profiler, stream=shown)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES_SHOWN)
    stats.sort_stats("cumulative").print_stats(PROFILE_LINES_SHOWN)
    profile_path = workdir / f"profile-report-{kind}.txt"
    with phase(f"{kind}: profiled report child", None):
        run_report_child(report_db, workdir, f"profile-report-{kind}", csv_mode, profile_path)
    report_profile = profile_path.read_text(encoding="utf-8") if profile_path.exists() else ""
    return {"rebuild": shown.getvalue(), "report": report_profile}


# -- printing -----------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _met(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]NO[/]"


def catch_up_table(figures: StoreFigures) -> RichTable:
    c = figures.catch_up
    table = RichTable(
        title=f"{figures.store}: projection catch-up ({c.ingest.records:,} records "
        f"ingested, {c.ingest.events:,} stored events)",
        title_justify="left",
    )
    for column in ("measurement", "events", "seconds", "events/s"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    table.add_column("notes")
    per_projection = ", ".join(f"{k} {v:,}" for k, v in c.events_by_projection.items())
    table.add_row(
        "ReadModels.rebuild()",
        _n(c.events),
        f"{c.seconds:,.2f}",
        _n(c.events_per_second),
        f"every projection from zero, batch {c.batch_size:,}; {per_projection}; "
        f"process CPU {c.cpu_seconds:,.2f} s ({_n(c.events / max(c.cpu_seconds, 1e-9))}/s of CPU); "
        f"target ≥ {c.target_events_per_second:,}/s: {_met(c.target_met)}",
    )
    sample = ", ".join(f"{k} {v:,}" for k, v in c.baseline_by_projection.items())
    table.add_row(
        "one transaction per event",
        _n(c.baseline_events),
        f"{c.baseline_seconds:,.2f}",
        _n(c.baseline_events_per_second),
        f"runner.reset, then catch_up(batch_size=1), first events: {sample}",
    )
    table.add_section()
    table.add_row("rebuild / baseline", "", "", f"{c.speedup:,.1f}x", "events/s over events/s")
    return table


def report_table(figures: StoreFigures) -> RichTable:
    f, r, q = figures.fill, figures.report, figures.sql
    table = RichTable(
        title=f"{figures.store}: report over {f.payments:,} payments and "
        f"{f.stripe_objects:,} Stripe objects",
        title_justify="left",
    )
    for column in ("measurement", "rows", "seconds", "rows/s", "peak RSS MiB"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    table.add_column("notes")
    table.add_row(
        "fill read models",
        _n(f.payments + f.links + f.stripe_objects),
        f"{f.seconds:,.1f}",
        _n((f.payments + f.links + f.stripe_objects) / f.seconds),
        "",
        f"{f.method}; {f.links:,} links, {f.orphans:,} orphans (not timed below)",
    )
    table.add_row(
        "fold Stripe's side",
        _n(f.stripe_objects),
        f"{f.fold_seconds:,.1f}",
        _n(f.stripe_objects / f.fold_seconds) if f.fold_seconds else "",
        "",
        "fold_all: what the observations' catch-up folds as it goes (not timed below)",
    )
    table.add_row(
        f"report + CSV {r.csv_mode} (child)",
        _n(r.rows),
        f"{r.seconds:,.2f}",
        _n(r.rows_per_second),
        f"{r.max_rss_mib:,.0f}",
        f"open {r.open_seconds:.2f} s, report {r.report_seconds:.2f} s, CSV "
        f"{r.render_seconds:.2f} s, write {r.write_seconds:.2f} s; process "
        f"{r.process_seconds:.2f} s with imports; CSV {r.csv_bytes / 2**20:,.0f} MiB; "
        f"peak RSS after imports {r.peak_after_imports_mib:,.0f}, report "
        f"{r.peak_after_report_mib:,.0f}, CSV {r.peak_after_render_mib:,.0f} MiB; "
        f"polled peak {r.polled_peak_rss_mib:,.0f} MiB; exit {r.exit_status}; "
        f"targets ≤ {r.target_seconds:.0f} s: {_met(r.seconds <= r.target_seconds)}, "
        f"≤ {r.target_rss_mib:,.0f} MiB: {_met(r.max_rss_mib <= r.target_rss_mib)}",
    )
    table.add_row(
        "SQL baseline",
        _n(sum(q.categories.values())),
        f"{q.seconds:,.2f}",
        _n(sum(q.categories.values()) / q.seconds) if q.seconds else "",
        "",
        "one statement: CASE per payment + orphans, GROUP BY category",
    )
    table.add_row(
        "SQL baseline's rows",
        _n(q.rows),
        f"{q.rows_seconds:,.2f}",
        _n(q.rows / q.rows_seconds) if q.rows_seconds else "",
        "",
        "the same statement's (id, category) per row, ordered by id, written to a CSV file",
    )
    table.add_section()
    table.add_row(
        "report / SQL",
        "",
        f"{figures.report_over_sql:,.1f}x",
        "",
        "",
        "report seconds over SQL seconds",
    )
    table.add_row(
        "report / SQL's rows",
        "",
        f"{figures.report_over_sql_rows:,.1f}x",
        "",
        "",
        "report seconds over the seconds of the SQL's rows written",
    )
    return table


def categories_table(figures: StoreFigures) -> RichTable:
    generated, report, sql_counts = (
        figures.fill.expected,
        figures.report.categories,
        figures.sql.categories,
    )
    table = RichTable(title=f"{figures.store}: rows per category", title_justify="left")
    for column in ("category", "as generated", "report", "SQL", "report - SQL"):
        table.add_column(column, justify="left" if column == "category" else "right")
    names = [c.value for c in Category]
    names += sorted({*generated, *report, *sql_counts} - set(names))
    for name in names:
        g, r, s = generated.get(name, 0), report.get(name, 0), sql_counts.get(name, 0)
        diff = r - s
        style = "" if r == s == g else "[bold red]"
        table.add_row(f"{style}{name}", _n(g), _n(r), _n(s), f"{style}{diff:+,}" if diff else "0")
    table.add_section()
    total_report, total_sql = sum(report.values()), sum(sql_counts.values())
    table.add_row(
        "total",
        _n(sum(generated.values())),
        _n(total_report),
        _n(total_sql),
        f"{total_report - total_sql:+,}",
    )
    return table


def summary_table(stores: list[StoreFigures]) -> RichTable:
    table = RichTable(title="summary", title_justify="left")
    table.add_column("figure")
    for figures in stores:
        table.add_column(figures.store, justify="right")
    lines: list[tuple[str, Callable[[StoreFigures], str]]] = [
        (
            "catch-up: rebuild events/s (target ≥ 50,000)",
            lambda f: _n(f.catch_up.events_per_second),
        ),
        (
            "catch-up: one-transaction-per-event events/s",
            lambda f: _n(f.catch_up.baseline_events_per_second),
        ),
        ("catch-up: rebuild / baseline", lambda f: f"{f.catch_up.speedup:,.1f}x"),
        ("catch-up: target met", lambda f: _met(f.catch_up.target_met)),
        ("report: rows", lambda f: _n(f.report.rows)),
        ("report: seconds (open → CSV written; target ≤ 20)", lambda f: f"{f.report.seconds:,.2f}"),
        (
            "report: child process seconds (with imports)",
            lambda f: f"{f.report.process_seconds:,.2f}",
        ),
        ("report: rows/s", lambda f: _n(f.report.rows_per_second)),
        ("report: peak RSS MiB (target ≤ 300)", lambda f: f"{f.report.max_rss_mib:,.0f}"),
        (
            "report: targets met",
            lambda f: _met(
                f.report.seconds <= f.report.target_seconds
                and f.report.max_rss_mib <= f.report.target_rss_mib
            ),
        ),
        ("SQL baseline: seconds", lambda f: f"{f.sql.seconds:,.2f}"),
        ("report / SQL", lambda f: f"{f.report_over_sql:,.1f}x"),
        ("SQL baseline's rows to CSV: seconds", lambda f: f"{f.sql.rows_seconds:,.2f}"),
        ("report / SQL's rows", lambda f: f"{f.report_over_sql_rows:,.1f}x"),
        ("category counts: report = SQL", lambda f: _met(f.counts_equal)),
        ("category counts: report = as generated", lambda f: _met(f.counts_as_generated)),
    ]
    for label, value in lines:
        table.add_row(label, *(value(f) for f in stores))
    return table


def print_results(stores: list[StoreFigures]) -> None:
    for figures in stores:
        console.print()
        console.print(catch_up_table(figures))
        console.print(report_table(figures))
        console.print(categories_table(figures))
        if not figures.counts_equal:
            differ = sorted(
                name
                for name in {*figures.report.categories, *figures.sql.categories}
                if figures.report.categories.get(name, 0) != figures.sql.categories.get(name, 0)
            )
            console.print(
                f"[bold red]{figures.store}: the report and the SQL baseline "
                f"disagree on: {', '.join(differ)}[/]",
                highlight=False,
            )
        if not figures.counts_as_generated:
            console.print(
                f"[bold red]{figures.store}: the report's categories differ from "
                "those the data was generated for[/]",
                highlight=False,
            )
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
        prog="python -m benchmarks.projections",
        description="Read-side benchmark of offline-ledger (projection catch-up, reconciliation "
        "report) on SQLite and PostgreSQL.",
    )
    parser.add_argument(
        "--payments",
        type=int,
        default=20_000,
        help="payments in the generated day replayed by the projections",
    )
    parser.add_argument(
        "--report-payments",
        type=int,
        default=1_000_000,
        help="synthetic payments in the read models of the report",
    )
    parser.add_argument(
        "--report-stripe-objects",
        type=int,
        default=None,
        help="synthetic Stripe objects (default: as many as --report-payments); "
        "orphans make up what the payments' own objects leave",
    )
    harness.add_store_options(parser)
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=5_000,
        help="events of the one-transaction-per-event sample",
    )
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=20.0,
        help="time budget of the one-transaction-per-event sample",
    )
    parser.add_argument(
        "--csv",
        choices=("stream", "string", "json", "html", "table"),
        default="stream",
        help="stream: the CSV streamed into the file, as `offline-ledger report` does; "
        "string: render_csv, then write the string; json, html, table: the report in that "
        "format instead of CSV, as the command writes it",
    )
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile a rebuild and the report (cProfile, separate runs)",
    )
    args = parser.parse_args(argv)
    stores = harness.parsed_stores(parser, args)
    stripe = (
        args.report_payments if args.report_stripe_objects is None else args.report_stripe_objects
    )
    if (
        min(args.payments, args.report_payments, args.baseline_events) < 1
        or stripe < 0
        or args.baseline_seconds <= 0
    ):
        parser.error(
            "--payments, --report-payments, --baseline-events and --baseline-seconds "
            "must be positive"
        )
    return Options(
        args.payments,
        args.report_payments,
        stripe,
        stores,
        args.postgres_url,
        args.baseline_events,
        args.baseline_seconds,
        args.csv,
        args.seed,
        args.profile,
    )


def run(options: Options, workdir: Path, databases: Databases) -> dict[str, Any]:
    source = workdir / "day.jsonl"
    lines = generate_day(source, Day(options.payments, options.seed))
    stores = [measure_store(options, databases, kind, source, workdir) for kind in options.stores]
    print_results(stores)
    return {
        "day": {"payments": options.payments, "records": lines, "seed": options.seed},
        "as_of": AS_OF.isoformat(),
        "stores": [asdict(s) for s in stores],
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    options = parse_options(argv)
    harness.main(
        "projections", argv, options, run, stores=options.stores, postgres_url=options.postgres_url
    )


if __name__ == "__main__":
    main()
