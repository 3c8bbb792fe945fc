"""`what-if`: replay the offline sale attempts against proposed limits, beside what happened.

Reads the offline sales read model (`projections.offline_sales`: one row per sale stored or
reservation refused),
brought up to date first as `report` does, and replays it with `ledger.what_if`: nothing is
recorded. The proposed limits come from a JSON file shaped like a location's configured
limits; a file that is not that is refused with INVALID_LIMITS_FILE before anything is read.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import orjson
from pydantic import ValidationError
from rich.table import Table

from adapters.cli.errors import EXIT_REFUSED, fail
from adapters.cli.group import main
from adapters.cli.options import check_period, db_option, json_option, no_card_number, time_option
from adapters.cli.output import print_json, stdout
from adapters.cli.session import open_read_models, opened
from ledger.errors import Code, NotFound, StorageError
from ledger.money import format_minor
from ledger.what_if import Outcome, ProposedLimits, compare
from ledger.wire import shown_errors

if TYPE_CHECKING:
    from ledger import Ledger

FORMATS = ("table", "json", "csv")

# The CSV's columns: one row per location and currency.
CSV_COLUMNS = (
    "location_id",
    "currency",
    "sales",
    "reservations_refused",
    "refused_recorded",
    "refused_proposed",
    "newly_refused",
    "newly_offline",
    "peak_amount_recorded",
    "peak_amount_proposed",
    "peak_count_recorded",
    "peak_count_proposed",
    "at_risk_recorded",
    "at_risk_proposed",
    "at_risk_unknown_proposed",
    "declines_avoided",
    "declines_added",
)


@main.command("what-if")
@click.option(
    "--limits",
    "limits_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help='Proposed limits, JSON: {"limits": {...}, "device_limits": {...}, "currencies": [...]}'
    " as in a location.configured record.",
)
@click.option("--location", "location_id", help="Only this location.", callback=no_card_number)
@time_option(
    "--since", help="Only sales stored or refused from then (earlier ones still count as stored)."
)
@time_option("--until", help="Only sales stored or refused before then.")
@click.option(
    "--top", type=click.IntRange(0, 1000), default=10, show_default=True,
    help="The largest sale attempts whose outcome changes, per location and currency.",
)  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a page with the stored amount over time under both limit sets.",
)
@db_option
@json_option
def what_if(
    limits_path: Path,
    location_id: str | None,
    since: datetime | None,
    until: datetime | None,
    top: int,
    fmt: str,
    html_path: Path | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Replay the offline sale attempts (sales stored, reservations refused) against proposed
    limits, beside what happened: sales refused or taken offline, peak stored amount and
    count, money at risk, declines avoided or added, per location and currency. Records
    nothing."""
    fmt = "json" if as_json else fmt
    check_period(since, until, fmt == "json")
    proposed = _proposed(limits_path, fmt == "json")
    with opened(database_url, fmt == "json") as ledger:
        if ledger.config.kind == "memory":
            raise StorageError(
                Code.INVALID_DATABASE_URL,
                "what-if replays the sale attempts a database recorded, and a memory:// ledger "
                "starts empty in each command: use sqlite:///file.db or postgresql://...",
            )
        outcomes = _outcomes(ledger, proposed, location_id, since, until, top)
    if html_path is not None:
        from adapters.what_if_page import page  # jinja2, only when a page is asked for

        html_path.write_text(page(outcomes), encoding="utf-8")
    if fmt == "json":
        print_json(
            {
                "proposed": proposed.model_dump(mode="json"),
                "since": since,
                "until": until,
                "outcomes": [outcome.to_dict() for outcome in outcomes],
            }
        )
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for outcome in outcomes:
            writer.writerow([getattr(outcome, column) for column in CSV_COLUMNS])
    else:
        stdout.print(_summary(outcomes))
        changes = _changes(outcomes)
        if changes.row_count:
            stdout.print(changes)


def _outcomes(
    ledger: Ledger,
    proposed: ProposedLimits,
    location_id: str | None,
    since: datetime | None,
    until: datetime | None,
    top: int,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    found = False
    with open_read_models(ledger) as models:
        for history in models.sale_histories(location_id):
            found = True
            outcomes += compare(history, ledger.policy, proposed, since=since, until=until, top=top)
    if location_id is not None and not found:
        raise NotFound(
            Code.UNKNOWN_LOCATION, f"location {location_id} is unknown", field="location_id"
        )
    return outcomes


def _proposed(path: Path, as_json: bool) -> ProposedLimits:
    """The proposed limits in `path`, or a stop with INVALID_LIMITS_FILE naming the problem."""
    try:
        value: Any = orjson.loads(path.read_bytes())
    except OSError as error:
        _refuse(f"cannot read {path}: {error.strerror}", as_json)
    except orjson.JSONDecodeError as error:
        _refuse(f"{path} is not JSON: {error}", as_json)
    try:
        return ProposedLimits.model_validate(value)
    except ValidationError as error:
        first = shown_errors(error)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        _refuse(f"{path}: {where}: {first['msg']}", as_json)


def _refuse(message: str, as_json: bool) -> NoReturn:
    fail(message, EXIT_REFUSED, as_json, Code.INVALID_LIMITS_FILE)


def _summary(outcomes: list[Outcome]) -> Table:
    table = Table(title="What-if: recorded → proposed", title_justify="left")
    for column in ("location", "attempts", "refused", "peak stored", "peak count", "at risk"):
        table.add_column(column, justify="left" if column == "location" else "right")
    table.add_column("newly refused / offline", justify="right")
    table.add_column("declines avoided / added", justify="right")
    for row in outcomes:
        money = row.currency

        def pair(recorded: int, proposed: int, currency: str | None = money) -> str:
            if currency is None:
                return f"{recorded} → {proposed}"
            return f"{format_minor(recorded, currency)} → {format_minor(proposed, currency)}"

        table.add_row(
            f"{row.location_id} {row.currency.upper()}",
            f"{row.sales} ({row.reservations_refused} refused reservations)"
            if row.reservations_refused
            else str(row.sales),
            pair(row.refused_recorded, row.refused_proposed, None),
            pair(row.peak_amount_recorded, row.peak_amount_proposed),
            pair(row.peak_count_recorded, row.peak_count_proposed, None),
            pair(row.at_risk_recorded, row.at_risk_proposed)
            + (
                f" (+ {format_minor(row.at_risk_unknown_proposed, money)} unknown)"
                if row.at_risk_unknown_proposed
                else ""
            ),
            f"{row.newly_refused} / {row.newly_offline}",
            f"{row.declines_avoided} / {row.declines_added}",
        )
    return table


def _changes(outcomes: list[Outcome]) -> Table:
    table = Table(title="Sale attempts whose outcome changes, largest first", title_justify="left")
    for column in ("location", "offline_id", "device", "amount", "at", "was", "would be"):
        table.add_column(column, no_wrap=column == "offline_id", overflow="fold")
    for row in outcomes:
        for change in row.changes:
            sale = change.sale
            table.add_row(
                row.location_id,
                sale.offline_id,
                sale.device_id,
                format_minor(sale.amount, sale.currency),
                sale.stored_at.isoformat(sep=" ", timespec="seconds"),
                ", ".join(change.recorded) + " (reservation)"
                if sale.refused
                else ", ".join(change.recorded) or "offline",
                ", ".join(change.proposed) or "offline",
            )
    return table
