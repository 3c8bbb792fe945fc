"""Reconciliation: each offline_id matched to its Stripe PaymentIntents, in one category.

A pure function of two read models (payments, Stripe observations) and a moment `as_of`: the
categories that depend on time (stale, capture overdue) are evaluated at `as_of`, so the same
data and the same `as_of` always give the same report.

Matching: a Stripe payment (a PaymentIntent with its charges, balance transactions, refunds and
disputes) belongs to a payment when its PaymentIntent is one the ledger recorded for it
(forwarded, declined, duplicate) or when its `metadata.offline_id` is the payment's
offline_id. Every other Stripe payment that carries an offline_id, or whose charge was
collected offline, is an orphan. The database decides all of it (`projections.report_sql`);
this module turns the thresholds and filters into its statements and its rows into `Row`s.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import Connection, Select, func, select

from projections.report import (
    AGE_BUCKETS,
    COLUMNS,
    Breakdown,
    Category,
    PayoutTotals,
    Report,
    ReportTotals,
    Row,
    Totals,
)
from projections.report_sql import (
    STAGES_WORK_MEM_MB,
    ReportQueries,
    csv_queries,
    materialize,
    moments_of,
    payouts_query,
    report_queries,
    totals_query,
)
from projections.tables import naive_utc, payments, stripe_objects

# The longest one statement of a report may run on PostgreSQL: a report of a million payments
# and a million Stripe objects takes minutes on a loaded 2-core machine.
REPORT_STATEMENT_SECONDS = 3600

# The memory the CSV's statements may take on PostgreSQL, in the server, by default
# (OFFLINE_LEDGER_REPORT_WORK_MEM_MB): enough for the hash of a million payments (≈ 220 MB,
# within work_mem times hash_mem_multiplier) and the sort of a million rows' cells (≈ 360 MB)
# to stay in memory. At 64 MB both went to disk (a hash join in 8 batches, a 300 MB external
# merge), about a third of the statement's time at a million payments; the planner still joins
# by hash. Each report running at once may take this much.
REPORT_WORK_MEM_MB = 512

_STREAM_ROWS = 5_000  # rows fetched at a time from the database


@dataclass(frozen=True)
class Thresholds:
    """When a stored payment is stale and when an authorization must be captured.

    Card-present authorizations lapse: Visa after about 5 days (4 days 18 hours),
    Mastercard, Amex and Discover after about 2 days. A capture is overdue once
    `capture_warning` or less is left before that.
    """

    stale_after: timedelta = timedelta(hours=24)
    capture_windows: Mapping[str, timedelta] = field(
        default_factory=lambda: {"visa": timedelta(days=4, hours=18)}
    )
    capture_window_default: timedelta = timedelta(days=2)
    capture_warning: timedelta = timedelta(hours=12)

    def as_dict(self) -> dict[str, str]:
        hours = {
            "stale_after_hours": self.stale_after,
            "capture_window_default_hours": self.capture_window_default,
            "capture_warning_hours": self.capture_warning,
        }
        hours |= {
            f"capture_window_{brand}_hours": window
            for brand, window in sorted(self.capture_windows.items())
        }
        return {name: _hours(span) for name, span in hours.items()}

    def capture_deadline(self, authorized_at: datetime, brand: str | None) -> datetime:
        window = self.capture_windows.get(brand or "", self.capture_window_default)
        return authorized_at + window - self.capture_warning


@dataclass(frozen=True)
class Filters:
    location_id: str | None = None
    since: datetime | None = None  # UTC, inclusive: stored_at (else created_at) >= since
    until: datetime | None = None  # UTC, exclusive

    def as_dict(self) -> dict[str, str]:
        shown = {"location": self.location_id, "since": self.since, "until": self.until}
        return {
            k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in shown.items()
            if v is not None
        }


def stream_report(
    conn: Connection,
    as_of: datetime,
    thresholds: Thresholds,
    filters: Filters,
    work_mem_mb: int = REPORT_WORK_MEM_MB,
) -> Report | None:
    """The report at `as_of` (aware), its rows streamed from `conn` (read them, once, while
    it is open) and its totals counted by the database when first asked for; None when it
    has no row. `conn` reads one snapshot (`projections.read_models.ReadModels`), or rows
    and totals may disagree. On PostgreSQL the CSV's statements may take `work_mem_mb` of
    the server's memory for each sort or hash, the others at most `STAGES_WORK_MEM_MB`."""
    now = naive_utc(as_of)
    moments = moments_of(
        now,
        thresholds.stale_after,
        thresholds.capture_windows,
        thresholds.capture_window_default,
        thresholds.capture_warning,
        AGE_BUCKETS,
    )
    queries = report_queries(
        moments,
        filters.location_id,
        naive_utc(filters.since) if filters.since else None,
        naive_utc(filters.until) if filters.until else None,
        ranked=conn.dialect.name == "postgresql",
    )
    if conn.dialect.name == "postgresql":
        # A report reads every row: hash and merge joins only (a nested loop over a guessed
        # few hundred rows is quadratic at a million), and no JIT (its estimate of the
        # statements' cost made it spend seconds compiling them). Its statements get a limit
        # of their own, far above the session's (`REPORT_STATEMENT_SECONDS`), but still a
        # limit: nothing waits forever.
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        conn.exec_driver_sql("SET LOCAL jit = off")
        # ANALYZE of the report's temporary tables (`materialize`) samples 3,000 rows instead
        # of 30,000: their sizes are what the planner needs from it.
        conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
        # Its sorts and hashes (windows, GROUP BYs, merge joins over every payment) in memory:
        # at the default 4 MB, the sort of 100,000 payments' facts went to disk in batches.
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{min(work_mem_mb, STAGES_WORK_MEM_MB)}MB'")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {REPORT_STATEMENT_SECONDS * 1000}")
    materialize(conn, queries.stages)
    if not conn.execute(queries.any_row).scalar():
        return None
    return Report(
        as_of=now.replace(tzinfo=UTC),
        # Read only if asked for: a CSV is written by the database (`csv_lines`).
        rows=_rows(conn, queries),
        filters=filters.as_dict(),
        thresholds=thresholds.as_dict(),
        counted=lambda: _totals(conn, queries, moments),
        card_brands=lambda offline_ids: card_brands(conn, offline_ids),
        csv_lines=lambda out: _csv_lines(conn, queries, out, work_mem_mb),
    )


_BRANDS_AT_ONCE = 500  # offline_ids per statement of `card_brands`


def card_brands(conn: Connection, offline_ids: list[str]) -> dict[str, str]:
    """The card brand of each payment named that has one: the ledger's (the reader read the
    card), else Stripe's for the payment's PaymentIntent, as the report's categories take it."""
    p, stripe = payments.alias("p"), stripe_objects.alias("o")
    brand = func.coalesce(p.c.card_brand, stripe.c.card_brand)
    found: dict[str, str] = {}
    for start in range(0, len(offline_ids), _BRANDS_AT_ONCE):
        chunk = offline_ids[start : start + _BRANDS_AT_ONCE]
        query = (
            select(p.c.offline_id, brand)
            .select_from(p.outerjoin(stripe, stripe.c.key == p.c.payment_intent_id))
            .where(p.c.offline_id.in_(chunk), brand.is_not(None))
        )
        found.update({offline_id: value for offline_id, value in conn.execute(query)})
    return found


def _rows(conn: Connection, queries: ReportQueries) -> Iterator[Row]:
    streamed = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS)
    for query in (queries.payment_rows, queries.orphan_rows):
        for values in streamed.execute(query):
            yield _row(values)


def _row(values: Sequence[Any]) -> Row:
    (category, offline_id, location_id, device_id, amount, currency, status, ids) = values[:8]
    (stored_at, forwarded_at, age_seconds, at_risk) = values[8:12]
    (stripe_amount, stripe_currency, stripe_status, refunded, disputed) = values[12:17]
    (dispute_status, settled, settled_currency, fee, net, payout_id, payout_at) = values[17:24]
    breaches, began_at = values[24:26]
    return Row(
        category=Category(category),
        offline_id=offline_id,
        location_id=location_id,
        device_id=device_id,
        amount=amount,
        currency=currency,
        ledger_status=status,
        payment_intent_ids=tuple(sorted(set(ids.split(";")))) if ids else (),
        stored_at=_aware(stored_at),
        forwarded_at=_aware(forwarded_at),
        age_seconds=age_seconds,
        amount_at_risk=at_risk,
        stripe_amount=stripe_amount,
        stripe_currency=stripe_currency,
        stripe_status=stripe_status,
        refunded_amount=refunded,
        disputed_amount=disputed,
        dispute_status=dispute_status,
        settlement_amount=settled,
        settlement_currency=settled_currency,
        stripe_fee=fee,
        stripe_net=net,
        payout_id=payout_id,
        payout_at=_aware(payout_at),
        breaches=tuple(code for code in breaches.split(";") if code),
        began_at=_aware(began_at),
    )


def _csv_lines(conn: Connection, queries: ReportQueries, out: TextIO, work_mem_mb: int) -> None:
    """The CSV's lines as the database writes them: `COPY ... TO STDOUT` on PostgreSQL, on
    SQLite the cells of `csv_queries` through one `csv.writer` (no `Row` made)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{work_mem_mb}MB'")
    for query in csv_queries(queries):
        if conn.dialect.name == "postgresql":
            _copy_csv(conn, query, out)
        else:
            streamed = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS)
            writer = csv.writer(out, lineterminator="\n")
            writer.writerows(_ids_sorted(streamed.execute(query)))


def _copy_csv(conn: Connection, query: Select[Any], out: TextIO) -> None:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    raw: Any = conn.connection.driver_connection  # a psycopg.Connection
    decoder = codecs.getincrementaldecoder(raw.info.encoding)()
    copy = f"COPY ({compiled}) TO STDOUT (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(copy, compiled.params) as lines:
        for data in lines:
            out.write(decoder.decode(data))


_IDS = COLUMNS.index("payment_intent_ids")


def _ids_sorted(cells: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    """The cells, a payment's several PaymentIntents sorted (SQLite joins them unsorted)."""
    for line in cells:
        ids = line[_IDS]
        if ids is not None and ";" in ids:
            line = [*line[:_IDS], ";".join(sorted(ids.split(";"))), *line[_IDS + 1 :]]
        yield line


_BREAKDOWNS = {
    "summary": "summary",
    "location": "by_location",
    "device": "by_device",
    "day": "by_day",
    "age": "at_risk_by_age",
}


def _totals(conn: Connection, queries: ReportQueries, moments: Any) -> ReportTotals:
    found: dict[str, dict[str, dict[str, Totals]]] = {name: {} for name in _BREAKDOWNS.values()}
    beyond: dict[str, int] = {}
    flagged = 0
    for kind, group, currency, count, amount, exceptions, matched, at_risk in conn.execute(
        totals_query(queries, moments)
    ):
        if kind == "flagged":
            flagged += count
        elif kind == "beyond":
            beyond[currency] = amount
        elif kind == "age":
            found["at_risk_by_age"].setdefault(group, {})[currency] = Totals(count, at_risk)
        else:
            found[_BREAKDOWNS[kind]].setdefault(str(group), {})[currency] = Totals(
                count, amount, exceptions, matched, at_risk
            )
    payouts = [
        PayoutTotals(
            payout_id=line.payout_id,
            payout_at=line.payout_at,  # naive UTC, as `PayoutPart` holds it
            currency=line.currency,
            payments=line.payments,
            gross=line.gross,
            fees=line.fees,
            refunds=line.refunds,
            disputes=line.disputes,
            net=line.net,
        )
        for line in conn.execute(payouts_query(queries))
    ]
    return ReportTotals(
        **{name: _sorted(breakdown) for name, breakdown in found.items()},
        stored_beyond_policy=dict(sorted(beyond.items())),
        flagged=flagged,
        payouts=payouts,
    )


def _sorted(groups: dict[str, dict[str, Totals]]) -> Breakdown:
    return {name: dict(sorted(groups[name].items())) for name in sorted(groups)}


def _hours(span: timedelta) -> str:
    whole, rest = divmod(int(span.total_seconds()), 3600)
    return str(whole) if rest == 0 else f"{whole}.{rest * 10 // 3600}"


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None
