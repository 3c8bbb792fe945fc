"""The read side: `project`, the reconciliation `report`, and the payments `stored` on
readers."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.table import Table

from adapters.cli.errors import configured
from adapters.cli.group import main
from adapters.cli.options import check_period, db_option, json_option, no_card_number, time_option
from adapters.cli.output import print_json, stderr, stdout, with_progress
from adapters.cli.session import open_read_models, opened
from adapters.settings import Settings
from ledger.money import format_minor
from projections.formats import FORMATS, write
from projections.formats.table import render_table
from projections.reconciliation import Filters, Thresholds
from projections.report import Row
from projections.runner import BATCH_SIZE_DEFAULT as PROJECTION_BATCH_SIZE_DEFAULT
from projections.runner import BATCH_SIZE_MAX


@main.command()
@db_option
@click.option("--rebuild", is_flag=True, help="Empty the read models and replay the whole log.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, BATCH_SIZE_MAX),
    default=PROJECTION_BATCH_SIZE_DEFAULT,
    show_default=True,
    help="Events per transaction.",
)
def project(database_url: str | None, rebuild: bool, batch_size: int) -> None:
    """Bring the read models (payments, offline status, Stripe observations) up to date.

    Every command that reads them does this first; run it to catch up ahead of time, or with
    --rebuild after a change of projection code. Safe to interrupt: it resumes where it
    stopped.
    """
    with opened(database_url) as ledger, open_read_models(ledger) as read_models:
        run = read_models.rebuild if rebuild else read_models.refresh
        applied = with_progress(lambda progress: run(progress, batch_size))
    stdout.print(f"{'rebuilt from' if rebuild else 'applied'} {applied} events")


@main.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the report to this file instead of standard output (a table: 120 columns "
    "wide; on a terminal it fits the terminal).",
)
@time_option("--as-of", "as_of", help="Evaluate ages and deadlines at this time; default now.")
@click.option(
    "--location",
    "location_id",
    help="Only this location (leaves out orphans).",
    callback=no_card_number,
)
@time_option("--since", help="Only payments stored (or created) from then.")
@time_option("--until", help="Only payments stored (or created) before then.")
@click.option(
    "--stale-hours",
    type=click.IntRange(1, 24 * 365),
    default=24,
    show_default=True,
    help="A stored payment not forwarded after this long is stale.",
)
@click.option(
    "--capture-warning-hours",
    type=click.IntRange(0, 24 * 5),
    default=12,
    show_default=True,
    help="An authorization is capture-overdue this long before "
    "its brand's window ends (Visa 4 d 18 h, others 2 d).",
)
def report(
    database_url: str | None,
    fmt: str,
    out: Path | None,
    as_of: datetime | None,
    location_id: str | None,
    since: datetime | None,
    until: datetime | None,
    stale_hours: int,
    capture_warning_hours: int,
) -> None:
    """The reconciliation report: every offline_id matched to its Stripe PaymentIntents, in
    one category, with totals and the money at risk."""
    check_period(since, until, fmt == "json")
    thresholds = Thresholds(
        stale_after=timedelta(hours=stale_hours),
        capture_warning=timedelta(hours=capture_warning_hours),
    )
    filters = Filters(location_id=location_id, since=since, until=until)
    settings = configured(Settings.from_environ, "configuration", fmt == "json")
    with (
        opened(database_url, fmt == "json") as ledger,
        open_read_models(ledger, settings.report_work_mem_mb) as read_models,
    ):
        with_progress(read_models.refresh)
        with read_models.streamed_report(as_of or datetime.now(UTC), thresholds, filters) as built:
            rows = _Counted(built.rows)
            counted = replace(built, rows=rows)
            if out is None and fmt == "table":
                # On the terminal the table fits its width; a file gets the fixed, documented one.
                sys.stdout.write(render_table(counted, stdout.width))
                return
            if out is None:
                write(counted, fmt, sys.stdout)
                return
            with out.open("w", encoding="utf-8", newline="") as file:
                write(counted, fmt, file)
    stderr.print(f"{rows.count} rows written to {out}", highlight=False)


@main.command()
@db_option
@json_option
@click.option("--location", "location_id", help="Only this location.", callback=no_card_number)
@click.option("--device", "device_id", help="Only this device.", callback=no_card_number)
@click.option(
    "--older-than",
    "older_than_hours",
    type=click.IntRange(0),
    help="Only payments stored at least this many hours ago.",
)
def stored(
    database_url: str | None,
    as_json: bool,
    location_id: str | None,
    device_id: str | None,
    older_than_hours: int | None,
) -> None:
    """Every payment still stored on a reader (confirmed offline, not yet forwarded, declined
    or canceled), the longest stored first, with its age and amount: what each reader's
    offline queue holds, and what is lost with a reader that never comes back online."""
    now = datetime.now(UTC)
    before = None if older_than_hours is None else now - timedelta(hours=older_than_hours)
    with opened(database_url, as_json) as ledger, open_read_models(ledger) as read_models:
        payments = read_models.stored(location_id, device_id, before)
    totals: dict[str, int] = {}
    for payment in payments:
        totals[payment.currency] = totals.get(payment.currency, 0) + payment.amount
    rows = [
        {
            **asdict(payment),
            "stored_at": payment.stored_at.isoformat(),
            "age_hours": round((now - payment.stored_at).total_seconds() / 3600, 1),
        }
        for payment in payments
    ]
    if as_json:
        print_json(
            {
                "as_of": now.isoformat(),
                "count": len(rows),
                "amounts_by_currency": totals,
                "payments": rows,
            }
        )
        return
    if not rows:
        stdout.print("no payment is stored on a reader (for these filters)", highlight=False)
        return
    # Ids under one another and the time under the date: four columns that fit 80.
    table = Table(title="Payments stored on readers, oldest first", title_justify="left")
    table.add_column("Payment\nlocation\ndevice", no_wrap=True)
    table.add_column("Amount", justify="right", no_wrap=True)
    table.add_column("Stored\n(UTC)", no_wrap=True)
    table.add_column("Age (h)", justify="right", no_wrap=True)
    for payment, row in zip(payments, rows, strict=True):
        table.add_row(
            f"{payment.offline_id}\n{payment.location_id}\n{payment.device_id}",
            format_minor(payment.amount, payment.currency),
            payment.stored_at.strftime("%Y-%m-%d\n%H:%M:%S"),
            f"{row['age_hours']:,}",
        )
    stdout.print(table)
    shown = ", ".join(format_minor(amount, currency) for currency, amount in totals.items())
    stdout.print(f"{len(rows)} stored payments: {shown}", highlight=False)


class _Counted:
    """The report's rows as they stream past, counted."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[Row]:
        for row in self.rows:
            self.count += 1
            yield row
