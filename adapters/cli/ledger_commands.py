"""The ledger's own commands: ingest, status, history, decide, reserve, release, allow,
schema."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from adapters.cli.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from adapters.cli.group import main
from adapters.cli.options import (
    db_option,
    json_option,
    no_card_number,
    reader_options,
    time_option,
)
from adapters.cli.output import print_json, progress_bar, stderr, stdout
from adapters.cli.session import opened
from adapters.cli.text_table import Column, console_width, draw, fits
from ledger.batches import BATCH_SIZE_DEFAULT
from ledger.money import format_minor

if TYPE_CHECKING:
    from rich.table import Table

    from adapters.jsonl import IngestSummary
    from ledger import Ledger
    from ledger.limits import HeadroomRow
    from ledger.location import BeyondPolicy
    from ledger.status_views import DeviceStatus, LocationStatus
    from ledger.views import ReservationState


@main.command(name="ingest")
@click.argument("source", type=click.File("rb"))
@db_option
@json_option
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write rejected lines with their errors to this JSON Lines file.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 5000),
    default=BATCH_SIZE_DEFAULT,
    show_default=True,
    help="Records per transaction.",
)
def ingest_command(
    source: IO[bytes],
    database_url: str | None,
    as_json: bool,
    rejects: Path | None,
    batch_size: int,
) -> None:
    """Apply wire records from a JSON Lines FILE (or - for stdin), in order.

    Each record is atomic; a rejected record stores nothing and the file goes on. Exit status
    0 when nothing was rejected, 1 when some records were, 2 for usage or connection errors.
    A database failure mid-file stops the ingest (exit status 2); the summary names the last
    line durably applied, and running the same file again takes over from there.
    """
    with opened(database_url, as_json, writes=True) as ledger:
        rejects_file = rejects.open("w", encoding="utf-8") if rejects else None
        try:
            summary = _ingest_with_progress(ledger, source, batch_size, rejects_file)
        finally:
            if rejects_file is not None:
                rejects_file.close()
    if as_json:
        print_json(summary.to_dict())
    else:
        _print_summary(summary, rejects)
    if summary.stopped is not None:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_REFUSED if summary.rejected_count else EXIT_OK)


def _ingest_with_progress(
    ledger: Ledger, source: IO[bytes], batch_size: int, rejects: IO[str] | None
) -> IngestSummary:
    """The ingest with a bar of the file's bytes read (where the file stands, so it ends
    full) and the records applied per second."""
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn

    from adapters.jsonl import ingest, numbered_lines

    size = _size_of(source)
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[records]:,} records, {task.fields[rate]:,.0f}/s"),
        TimeRemainingColumn(),
    )
    read = 0
    started = time.monotonic()

    def counted() -> Iterator[tuple[int, bytes]]:
        nonlocal read
        for line in numbered_lines(source):
            read += 1
            yield line

    shown = size is not None
    with progress_bar("ingesting", size, *columns, shown=shown, records=0, rate=0.0) as bar:

        def on_batch(_: int) -> None:
            if bar is not None:
                rate = read / max(time.monotonic() - started, 1e-6)
                bar(0, completed=source.tell(), records=read, rate=rate)

        return ingest(ledger, counted(), batch_size=batch_size, rejects=rejects, on_batch=on_batch)


def _size_of(source: IO[bytes]) -> int | None:
    try:
        return os.fstat(source.fileno()).st_size or None
    except (OSError, ValueError):
        return None


def _print_summary(summary: IngestSummary, rejects: Path | None) -> None:
    from rich.markup import escape

    stdout.print(
        f"{summary.lines} records: [green]{summary.accepted} accepted[/], "
        f"{summary.duplicates} duplicates (already recorded), "
        f"[{'red' if summary.rejected_count else 'green'}]{summary.rejected_count} rejected[/]"
        + (
            f", [yellow]{summary.flagged_count} flagged[/] (recorded; they broke an offline rule)"
            if summary.flagged_count
            else ""
        )
    )
    for flag in summary.flagged[:50]:
        stderr.print(
            f"  line {flag['line']}: flagged {flag['code']}: {flag['message']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    shown = summary.rejected[:50]
    for rejection in shown:
        field = f" {rejection['field']}" if "field" in rejection else ""
        stderr.print(
            f"  line {rejection['line']}{field}: {rejection['code']}: {rejection['message']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if summary.rejected_count > len(shown):
        stderr.print(
            f"  ... and {summary.rejected_count - len(shown)} more"
            + (f" (all in {rejects})" if rejects else " (use --rejects PATH)")
        )
    if summary.stopped is not None:
        stderr.print(
            f"[bold red]stopped:[/] {escape(str(summary.stopped))}\n"
            f"  the last line applied is line {summary.last_applied_line}: run the same "
            "file again once the database is back (what is recorded repeats as duplicates)",
            highlight=False,
            soft_wrap=True,
        )


@main.command()
@db_option
@json_option
@click.option("--location", "location_id", help="Only this location.", callback=no_card_number)
def status(database_url: str | None, as_json: bool, location_id: str | None) -> None:
    """Stored (outstanding) payments and headroom, per location and per device."""
    with opened(database_url, as_json) as ledger:
        locations = ledger.status(location_id)
    if as_json:
        print_json(
            {
                "locations": [loc.to_dict() for loc in locations],
                "devices": [d.to_dict() for loc in locations for d in loc.devices],
            }
        )
        return
    width = console_width()
    if not locations:
        said = "no locations recorded yet: ingest a location.configured record first"
        print(said) if width is not None and fits([said], width) else stdout.print(said)
        return
    wide = (stdout.width if width is None else width) >= STATUS_WIDE
    columns, rows = _status_rows(locations, wide)
    below = [] if wide else _beyond_lines(locations)
    drawn = None if width is None else draw(STATUS_TITLE, columns, rows, width)
    if drawn is not None and fits("\n".join(below).splitlines(), width or 0):
        print("\n".join([drawn, *below]))  # as rich would print it, without loading rich
        return
    stdout.print(_status_table(columns, rows))
    for line in below:
        stdout.print(line, highlight=False)


STATUS_WIDE = 120  # narrower terminals get what is stored beyond policy below the table
STATUS_TITLE = "Offline status: stored payments and headroom"


def _status_rows(
    locations: list[LocationStatus], wide: bool
) -> tuple[list[Column], list[list[str]]]:
    """One row per location, then one per device under it (indented); a narrow terminal gets
    the stored-beyond-policy column as lines below the table instead (`_beyond_lines`)."""
    ids = [loc.location_id for loc in locations]
    ids += [f"  {device.device_id}" for loc in locations for device in loc.devices]
    columns = [
        Column("location / device", min_width=max(map(len, ids))),
        Column("stored", right=True),
        Column("stored amount"),
        Column("headroom"),
        *([Column("beyond policy")] if wide else []),
    ]
    rows = []
    for loc in locations:
        named: list[tuple[str, LocationStatus | DeviceStatus]] = [
            (loc.location_id + ("" if loc.offline_enabled else " (offline disabled)"), loc)
        ]
        named += [(f"  {device.device_id}", device) for device in loc.devices]
        for name, row in named:
            beyond = [_beyond(row.stored_beyond_policy, "\n")] if wide else []
            rows.append(
                [
                    name,
                    str(row.offline_payments_count),
                    _amounts(row.offline_payment_amounts_by_currency),
                    _headroom(row.headroom),
                    *beyond,
                ]
            )
    return columns, rows


def _status_table(columns: list[Column], rows: list[list[str]]) -> Table:
    """The rows in rich's table, where they do not fit as they are (`text_table.draw`): ids
    keep their width; other cells wrap between words, so no number or id is ever cut."""
    from rich.table import Table

    table = Table(title=STATUS_TITLE, title_justify="left")
    for column in columns:
        table.add_column(
            column.header,
            justify="right" if column.right else "left",
            min_width=column.min_width or None,
        )
    for row in rows:
        table.add_row(*row)
    return table


def _beyond_lines(locations: list[LocationStatus]) -> list[str]:
    """What each location and device stored beyond policy, as lines below the table."""
    return [
        f"{name} stored beyond policy:\n  {_beyond(by_code, chr(10) + '  ')}"
        for name, by_code in _beyond_policy(locations)
    ]


def _beyond_policy(locations: list[LocationStatus]) -> list[tuple[str, dict[str, BeyondPolicy]]]:
    """(location or device id, what it stored beyond policy), for those that did."""
    rows: list[tuple[str, dict[str, BeyondPolicy]]] = []
    for loc in locations:
        for name, by_code in [
            (loc.location_id, loc.stored_beyond_policy),
            *((device.device_id, device.stored_beyond_policy) for device in loc.devices),
        ]:
            if by_code:
                rows.append((name, by_code))
    return rows


def _beyond(by_code: dict[str, BeyondPolicy], between: str) -> str:
    """Stored payments that broke a rule, per code: `STORED_AMOUNT_LIMIT_EXCEEDED: 1, 5.00 USD`."""
    return (
        between.join(
            f"{code}: {row['count']}, {_amounts(row['amounts_by_currency'], ', ')}"
            for code, row in by_code.items()
        )
        or "-"
    )


def _amounts(amounts: dict[str, int], between: str = "\n") -> str:
    return between.join(format_minor(v, c) for c, v in amounts.items()) or "-"


def _headroom(rows: list[HeadroomRow]) -> str:
    parts = []
    for row in rows:
        if row["currency"] is None:
            parts.append(f"{row['remaining']}/{row['max']} payments")
        else:
            parts.append(f"{format_minor(row['remaining'], row['currency'])} left")
    return "\n".join(parts) or "no limits"


@main.command()
@click.argument("offline_id", callback=no_card_number)
@db_option
@json_option
def history(offline_id: str, database_url: str | None, as_json: bool) -> None:
    """Every event of one payment, in the order recorded, with when it happened and when it
    was recorded, and what Stripe said about its PaymentIntents beside them: a timeline to
    read, or with --json every entry (source, version, event, occurred_at, recorded_at,
    data)."""
    with opened(database_url, as_json) as ledger:
        entries = ledger.history(offline_id)
    if as_json:
        print_json([entry.model_dump(mode="json") for entry in entries])
        return
    from adapters.cli.timeline import timeline

    stdout.print(timeline(offline_id, entries, stdout.width))


@main.command()
@click.option("--amount", type=int, required=True, help="Amount in minor units (1250 = 12.50).")
@click.option("--currency", required=True, help="Lowercase ISO 4217 code, e.g. usd.")
@reader_options
@click.option(
    "--offline-behavior",
    default="prefer_online",
    show_default=True,
    type=click.Choice(["prefer_online", "require_online", "force_offline"]),
)
@time_option("--at", help="Evaluate at this time; default now.")
@db_option
@json_option
def decide(
    amount: int,
    currency: str,
    device_id: str,
    location_id: str,
    offline_behavior: str,
    at: datetime | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """May this sale be taken offline? Prints the answer, the reason and the headroom left."""
    with opened(database_url, as_json) as ledger:
        decision = ledger.decide(
            amount=amount,
            currency=currency,
            device_id=device_id,
            location_id=location_id,
            offline_behavior=offline_behavior,
            at=at,
        )
    if as_json:
        print_json(decision.to_dict())
        return
    if decision.offline_allowed:
        stdout.print("[green]offline allowed[/]: pass offline_behavior=prefer_online")
    else:
        stdout.print("[red]take it online[/]: pass offline_behavior=require_online")
        for reason in decision.reasons:
            stdout.print(f"  {reason.code}: {reason.message}", highlight=False)
    for row in decision.headroom:
        stdout.print(
            f"  {row.scope} {row.limit}: {_quantity(row.remaining, row.currency)} left "
            f"of {_quantity(row.maximum, row.currency)}",
            highlight=False,
        )


@main.command()
@click.option("--offline-id", "offline_id", required=True, help="The sale's offline_id (UUID).")
@click.option("--amount", type=int, required=True, help="Amount in minor units (1250 = 12.50).")
@click.option("--currency", required=True, help="Lowercase ISO 4217 code, e.g. usd.")
@reader_options
@click.option(
    "--hold-minutes",
    type=click.IntRange(1, 60),
    default=5,
    show_default=True,
    help="How long the headroom is held unless the payment is confirmed.",
)
@time_option("--at", help="Decide at this time; default now.")
@db_option
@json_option
def reserve(
    offline_id: str,
    amount: int,
    currency: str,
    device_id: str,
    location_id: str,
    hold_minutes: int,
    at: datetime | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Decide whether this sale may be taken offline and hold its headroom (a reservation).

    The same request always gets the same answer: a retry prints the recorded one."""
    with opened(database_url, as_json, writes=True) as ledger:
        answer = ledger.reserve(
            offline_id,
            amount,
            currency,
            device_id,
            location_id,
            at=at,
            hold_for=timedelta(minutes=hold_minutes),
        )
    _print_reservation(answer, as_json)


@main.command()
@click.argument("offline_id")
@db_option
@json_option
def release(offline_id: str, database_url: str | None, as_json: bool) -> None:
    """Give back the headroom a reservation holds (the sale was abandoned)."""
    with opened(database_url, as_json, writes=True) as ledger:
        answer = ledger.release(offline_id)
    _print_reservation(answer, as_json)


@main.command()
@reader_options
@click.option(
    "--amount",
    "amounts",
    multiple=True,
    required=True,
    help="CURRENCY=MINOR_UNITS, e.g. usd=50000 (repeat for each currency).",
)
@click.option("--count", type=click.IntRange(0), required=True, help="Payments it may store.")
@time_option("--until", help="Valid until then.", required=True)
@time_option("--at", help="Grant at this time; default now.")
@db_option
@json_option
def allow(
    device_id: str,
    location_id: str,
    amounts: tuple[str, ...],
    count: int,
    until: datetime,
    at: datetime | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Grant a device an offline allowance for when the ledger cannot be reached.

    It is carved out of the location's limits: what is granted may be less than asked."""
    asked: dict[str, int] = {}
    for given in amounts:
        currency, _, minor = given.partition("=")
        if not minor.isdigit():
            raise click.BadParameter(f"{given!r}: give CURRENCY=MINOR_UNITS, e.g. usd=50000")
        asked[currency.strip().lower()] = int(minor)
    with opened(database_url, as_json, writes=True) as ledger:
        allowance = ledger.allow(device_id, location_id, asked, count, until, at=at)
    if as_json:
        print_json(allowance.to_dict())
        return
    stdout.print(
        f"granted {allowance.device_id}: {_amounts(allowance.amounts, ', ')} and "
        f"{allowance.count} payments until {allowance.valid_until.isoformat()}",
        highlight=False,
    )


def _print_reservation(answer: ReservationState, as_json: bool) -> None:
    if as_json:
        print_json(answer.model_dump(mode="json"))
        return
    if answer.released_at is not None:
        stdout.print(f"released at {answer.released_at.isoformat()}", highlight=False)
    elif answer.granted:
        assert answer.expires_at is not None
        stdout.print(
            f"[green]granted[/] until {answer.expires_at.isoformat()}: "
            "pass offline_behavior=prefer_online"
        )
    else:
        stdout.print("[red]refused[/]: pass offline_behavior=require_online")
        for reason in answer.reasons:
            stdout.print(f"  {reason['code']}: {reason['message']}", highlight=False)


def _quantity(value: int, currency: str | None) -> str:
    return str(value) if currency is None else format_minor(value, currency)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the wire records."""
    from ledger.wire import json_schema

    print_json(json_schema())
