"""The read side: `project` and the reconciliation `report`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from adapters.cli.errors import EXIT_USAGE, fail
from adapters.cli.group import main
from adapters.cli.options import db_option, no_card_number, time_option
from adapters.cli.output import stderr, stdout, with_progress
from adapters.cli.session import open_read_models, opened
from ledger.errors import Code
from projections.formats import FORMATS, write
from projections.formats.table import render_table
from projections.reconciliation import Filters, Thresholds
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
    if since is not None and until is not None and since >= until:
        fail(
            f"--since ({since.isoformat()}) is not before --until ({until.isoformat()}): "
            "give the earlier time to --since",
            EXIT_USAGE,
            fmt == "json",
            Code.INVALID_VALUE,
        )
    thresholds = Thresholds(
        stale_after=timedelta(hours=stale_hours),
        capture_warning=timedelta(hours=capture_warning_hours),
    )
    filters = Filters(location_id=location_id, since=since, until=until)
    with opened(database_url, fmt == "json") as ledger, open_read_models(ledger) as read_models:
        with_progress(read_models.refresh)
        built = read_models.report(as_of or datetime.now(UTC), thresholds, filters)
    if out is None and fmt == "table":
        # On the terminal the table fits its width; a file gets the fixed, documented one.
        sys.stdout.write(render_table(built, stdout.width))
        return
    if out is None:
        write(built, fmt, sys.stdout)
        return
    with out.open("w", encoding="utf-8", newline="") as file:
        write(built, fmt, file)
    stderr.print(f"{len(built.rows)} rows written to {out}", highlight=False)
