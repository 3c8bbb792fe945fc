"""The read side: `project` and the reconciliation `report`."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from adapters.cli.group import main
from adapters.cli.options import MomentType, db_option, no_card_number
from adapters.cli.output import stderr, stdout, with_progress
from adapters.cli.session import open_read_models, opened
from projections.formats import FORMATS, write
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
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--as-of",
    "as_of",
    type=MomentType(),
    help="Evaluate ages and deadlines at this time; default now.",
)
@click.option(
    "--location",
    "location_id",
    help="Only this location (leaves out orphans).",
    callback=no_card_number,
)
@click.option("--since", type=MomentType(), help="Only payments stored (or created) from then.")
@click.option("--until", type=MomentType(), help="Only payments stored (or created) before then.")
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
    thresholds = Thresholds(
        stale_after=timedelta(hours=stale_hours),
        capture_warning=timedelta(hours=capture_warning_hours),
    )
    filters = Filters(location_id=location_id, since=since, until=until)
    with (
        opened(database_url, fmt == "json") as ledger,
        open_read_models(ledger) as read_models,
    ):
        with_progress(read_models.refresh)
        with read_models.streamed_report(as_of or datetime.now(UTC), thresholds, filters) as built:
            rows = _Counted(built.rows)
            if out is None:
                write(replace(built, rows=rows), fmt, sys.stdout)
                return
            with out.open("w", encoding="utf-8", newline="") as file:
                write(replace(built, rows=rows), fmt, file)
    stderr.print(f"{rows.count} rows written to {out}", highlight=False)


class _Counted:
    """The report's rows as they stream past, counted."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[Row]:
        for row in self.rows:
            self.count += 1
            yield row
