"""The `offline-ledger` command. Each command parses its input, makes one library call and
formats the answer; errors map to exit statuses here and only here:
0 success, 1 refused input (rejected records, unknown payment...), 2 usage, configuration or
connection errors.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from adapters.forwarding import CONCURRENCY_MAX, Forwarder
from adapters.jsonl import BATCH_SIZE_DEFAULT, IngestSummary, ingest, numbered_lines
from adapters.settings import Settings
from adapters.stripe_files import (
    StripeFileError,
    parse_payment_intents_json,
    read_disputes_json,
    read_payment_intents_json,
    read_report_csv,
)
from adapters.stripe_gateway import StripeGateway
from adapters.stripe_gateway import load_settings as load_stripe_settings
from adapters.stripe_sync import capture, due, sync
from ledger import Ledger, LedgerError
from ledger.errors import Code, StorageError
from ledger.moments import MomentError, check_moment, parse_moment
from ledger.money import format_minor
from ledger.observations import Observation, PaymentIntentObservation
from ledger.pan import holds_pan
from ledger.storage import parse_database_url
from ledger.views import ReservationState
from ledger.wire import json_schema
from projections.formats import FORMATS, write
from projections.read_models import ReadModels
from projections.reconciliation import Filters, Thresholds
from projections.runner import BATCH_SIZE_DEFAULT as PROJECTION_BATCH_SIZE_DEFAULT
from projections.runner import BATCH_SIZE_MAX

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
stdout = Console()
stderr = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def db_option(function: F) -> F:
    return click.option(
        "--db",
        "database_url",
        envvar="OFFLINE_LEDGER_DATABASE_URL",
        help="Database URL: sqlite:///path.db (default ./offline-ledger.db) or "
        "postgresql://user@host:5432/db. Env: OFFLINE_LEDGER_DATABASE_URL.",
    )(function)


def no_card_number(_: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an id argument holding a full card number (`ledger.pan`), without echoing it:
    ids given on the command line are stored (capture) or said back (history, reports)."""
    if value is not None and holds_pan(value):
        raise click.BadParameter(
            f"{Code.CARD_NUMBER_DETECTED}: holds a full card number (13-19 digits passing the "
            "Luhn check); give the id, never a card number",
            param=param,
        )
    return value


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(function)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="offline-ledger")
def main() -> None:
    """offline-ledger: the system of record for Stripe Terminal offline payments."""


@contextmanager
def opened(database_url: str | None, as_json: bool = False) -> Iterator[Ledger]:
    try:
        settings = Settings()
    except ValidationError as error:
        fail(
            f"configuration error: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}",
            EXIT_USAGE,
            as_json,
        )
    try:
        ledger = Ledger.open(
            database_url or settings.database_url, stripe_offline_max=settings.stripe_offline_max
        )
    except LedgerError as error:
        fail_with(error, as_json)
    try:
        yield ledger
    except LedgerError as error:
        fail_with(error, as_json)
    finally:
        ledger.close()


def fail_with(error: LedgerError, as_json: bool) -> NoReturn:
    status = EXIT_USAGE if isinstance(error, StorageError) else EXIT_REFUSED
    if as_json:
        print(json.dumps({"error": error.to_dict()}))
        sys.exit(status)
    fail(str(error), status, as_json)


def fail(message: str, status: int, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"error": {"message": message}}))
    else:
        stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(status)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


# -- commands -----------------------------------------------------------------------------------


@main.command()
@db_option
def migrate(database_url: str | None) -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from migrations import upgrade

    try:
        config = parse_database_url(database_url or Settings().database_url)
        revision = upgrade(config)
    except LedgerError as error:
        fail_with(error, False)
    stdout.print(f"database {config.redacted} is at schema revision {revision}")


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
    with opened(database_url, as_json) as ledger:
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
    lines = numbered_lines(source)
    size = _size_of(source)
    if not stderr.is_terminal or size is None:
        return ingest(ledger, lines, batch_size=batch_size, rejects=rejects)
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("ingesting", total=size)
        return ingest(
            ledger,
            lines,
            batch_size=batch_size,
            rejects=rejects,
            on_batch=lambda done: progress.advance(task, done),
        )


def _size_of(source: IO[bytes]) -> int | None:
    try:
        return os.fstat(source.fileno()).st_size or None
    except (OSError, ValueError):
        return None


def _print_summary(summary: IngestSummary, rejects: Path | None) -> None:
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
                "locations": [loc.model_dump(mode="json") for loc in locations],
                "devices": [d.model_dump(mode="json") for loc in locations for d in loc.devices],
            }
        )
        return
    if not locations:
        stdout.print("no locations recorded yet: ingest a location.configured record first")
        return
    table = Table(title="Offline status: stored payments and headroom")
    columns = (
        "location",
        "device",
        "offline",
        "stored",
        "stored amount",
        "headroom",
        "beyond policy",
    )
    for column in columns:
        table.add_column(column, no_wrap=column in ("location", "device"))
    for loc in locations:
        table.add_row(
            loc.location_id,
            "(all)",
            "enabled" if loc.offline_enabled else "disabled",
            str(loc.offline_payments_count),
            _amounts(loc.offline_payment_amounts_by_currency),
            _headroom(loc.headroom),
            _beyond(loc.stored_beyond_policy),
        )
        for device in loc.devices:
            table.add_row(
                "",
                device.device_id,
                "",
                str(device.offline_payments_count),
                _amounts(device.offline_payment_amounts_by_currency),
                _headroom(device.headroom),
                _beyond(device.stored_beyond_policy),
            )
    stdout.print(table)


def _beyond(by_code: dict[str, dict[str, Any]]) -> str:
    """Stored payments that broke a rule, per code: `STORED_AMOUNT_LIMIT_EXCEEDED: 1, 5.00 USD`."""
    return (
        "; ".join(
            f"{code}: {row['count']}, {_amounts(row['amounts_by_currency'])}"
            for code, row in by_code.items()
        )
        or "-"
    )


def _amounts(amounts: dict[str, int]) -> str:
    return ", ".join(format_minor(v, c) for c, v in amounts.items()) or "-"


def _headroom(rows: list[Any]) -> str:
    parts = []
    for row in rows:
        if row.currency is None:
            parts.append(f"{row.remaining}/{row.maximum} payments")
        else:
            parts.append(f"{format_minor(row.remaining, row.currency)} left")
    return "\n".join(parts) or "no limits"


@main.command()
@click.argument("offline_id", callback=no_card_number)
@db_option
@json_option
def history(offline_id: str, database_url: str | None, as_json: bool) -> None:
    """Every event of one payment, in order, with when it happened and when it was recorded,
    and what Stripe said about its PaymentIntents beside them."""
    with opened(database_url, as_json) as ledger:
        entries = ledger.history(offline_id)
    if as_json:
        print_json([entry.model_dump(mode="json") for entry in entries])
        return
    table = Table(title=f"History of payment {offline_id}")
    for column in ("#", "from", "event", "occurred at", "recorded at", "details"):
        table.add_column(column)
    for entry in entries:
        data = entry.data.get("observation", entry.data)  # Stripe's word, flattened
        details = ", ".join(f"{k}={v}" for k, v in data.items() if v not in (None, {}, []))
        table.add_row(
            str(entry.version),
            entry.source,
            entry.event,
            entry.occurred_at.isoformat() if entry.occurred_at else "",
            entry.recorded_at.isoformat(timespec="seconds"),
            details,
        )
    stdout.print(table)


@main.command()
@click.option("--amount", type=int, required=True, help="Amount in minor units (1250 = 12.50).")
@click.option("--currency", required=True, help="Lowercase ISO 4217 code, e.g. usd.")
@click.option(
    "--device", "device_id", required=True, help="Device (reader) id.", callback=no_card_number
)
@click.option(
    "--location", "location_id", required=True, help="Location id.", callback=no_card_number
)
@click.option(
    "--offline-behavior",
    default="prefer_online",
    show_default=True,
    type=click.Choice(["prefer_online", "require_online", "force_offline"]),
)
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]),
    help="Evaluate at this time (RFC 3339 with offset); default now.",
)
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
@click.option(
    "--device", "device_id", required=True, help="Device (reader) id.", callback=no_card_number
)
@click.option(
    "--location", "location_id", required=True, help="Location id.", callback=no_card_number
)
@click.option(
    "--hold-minutes",
    type=click.IntRange(1, 60),
    default=5,
    show_default=True,
    help="How long the headroom is held unless the payment is confirmed.",
)
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]),
    help="Decide at this time (RFC 3339 with offset); default now.",
)
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
    with opened(database_url, as_json) as ledger:
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
    with opened(database_url, as_json) as ledger:
        answer = ledger.release(offline_id)
    _print_reservation(answer, as_json)


@main.command()
@click.option(
    "--device", "device_id", required=True, help="Device (reader) id.", callback=no_card_number
)
@click.option(
    "--location", "location_id", required=True, help="Location id.", callback=no_card_number
)
@click.option(
    "--amount",
    "amounts",
    multiple=True,
    required=True,
    help="CURRENCY=MINOR_UNITS, e.g. usd=50000 (repeat for each currency).",
)
@click.option("--count", type=click.IntRange(0), required=True, help="Payments it may store.")
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]),
    required=True,
    help="Valid until (RFC 3339 with offset).",
)
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]),
    help="Grant at this time (RFC 3339 with offset); default now.",
)
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
    with opened(database_url, as_json) as ledger:
        allowance = ledger.allow(device_id, location_id, asked, count, until, at=at)
    if as_json:
        print_json(allowance.model_dump(mode="json"))
        return
    stdout.print(
        f"granted {allowance.device_id}: {_amounts(allowance.amounts)} and "
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
    print_json(json_schema())


class TimeZoneType(click.ParamType[ZoneInfo, Any]):
    """An IANA time zone name (Europe/Paris, America/New_York, UTC)."""

    name = "TIMEZONE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, ZoneInfo):
            return value
        try:
            return ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(f"{value!r} is not an IANA time zone name like Europe/Paris", param, ctx)


# -- importing Stripe's files ----------------------------------------------------------------


@main.command(name="import-stripe-report")
@click.argument(
    "path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--timezone",
    "zone",
    type=TimeZoneType(),
    default=None,
    help="The time zone the report was run in (its `timezone` parameter, e.g. Europe/Paris): "
    "required for a file that gives `created` in local time without `created_utc`.",
)
@db_option
@json_option
def import_stripe_report(
    path: Path, zone: ZoneInfo | None, database_url: str | None, as_json: bool
) -> None:
    """Record the rows of Stripe's itemized balance or payout reconciliation report (CSV).

    The file is checked whole first: any bad row refuses it (exit status 1) and nothing is
    recorded. Rows already recorded are counted as such; rows that name no payment (payouts,
    adjustments) are skipped. A file in local time without `created_utc` is refused unless
    --timezone names the report's time zone: the ledger never guesses one.
    """
    try:
        rows = read_report_csv(path, zone)
    except StripeFileError as error:
        _refuse_file(error, as_json)
    _record_observations(rows, rows.skipped, database_url, as_json)


@main.command(name="import-stripe-json")
@click.argument(
    "path",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)
@db_option
@json_option
def import_stripe_json(path: Path, database_url: str | None, as_json: bool) -> None:
    """Record PaymentIntents exported from Stripe's API: a list page, an array, one object or
    JSON Lines, in FILE (or - for stdin).

    The file is checked whole first: anything that is not a valid PaymentIntent refuses it
    (exit status 1) and nothing is recorded.
    """
    try:
        if str(path) == "-":
            payment_intents = parse_payment_intents_json(sys.stdin.buffer.read(), "stdin")
        else:
            payment_intents = read_payment_intents_json(path)
    except StripeFileError as error:
        _refuse_file(error, as_json)
    _record_observations(payment_intents, 0, database_url, as_json)


@main.command(name="import-stripe-disputes")
@click.argument(
    "path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@db_option
@json_option
def import_stripe_disputes(path: Path, database_url: str | None, as_json: bool) -> None:
    """Record Disputes exported from Stripe's API (GET /v1/disputes: a list page, an array,
    one object or JSON Lines): their status tells an open dispute from a lost or won one,
    which the balance report alone cannot. Checked whole first, like the other imports."""
    try:
        disputes = read_disputes_json(path)
    except StripeFileError as error:
        _refuse_file(error, as_json)
    _record_observations(disputes, 0, database_url, as_json)


def _refuse_file(error: StripeFileError, as_json: bool) -> NoReturn:
    if as_json:
        print_json(
            {
                "error": error.to_dict(),
                "problem_count": error.problem_count,
                "problems": [problem.to_dict() for problem in error.problems],
            }
        )
    else:
        stderr.print(
            f"[bold red]error:[/] {escape(error.message)}", highlight=False, soft_wrap=True
        )
        for problem in error.problems:
            stderr.print(
                f"  {problem.code}: {problem.message}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    sys.exit(EXIT_REFUSED)


def _record_observations(
    observations: Sequence[Observation], skipped: int, database_url: str | None, as_json: bool
) -> None:
    """Checked whole, then recorded in chunks (`Ledger.observe_file`): a conflict records
    nothing; a database failure mid-file says how far it got, and a re-run records the rest."""
    modes = {
        o.livemode
        for o in observations
        if isinstance(o, PaymentIntentObservation) and o.livemode is not None
    }
    with opened(database_url, as_json) as ledger:
        # A file is Stripe showing objects too: it binds the ledger to their mode, and a file
        # of the other mode (or of both) is refused before anything is recorded.
        if len(modes) > 1:
            fail(
                "the file mixes test-mode and live-mode objects: export each mode apart",
                EXIT_REFUSED,
                as_json,
            )
        for livemode in modes:
            ledger.bind_stripe_mode(bool(livemode))
        summary = ledger.observe_file(observations)
    counts = {
        "rows": len(observations) + skipped,
        "recorded": summary.recorded,
        "duplicates": summary.repeats,
        "skipped": skipped,
    }
    if as_json:
        print_json(counts)
        return
    stdout.print(
        f"{counts['rows']} rows: {summary.recorded} recorded, {summary.repeats} already "
        f"recorded, {skipped} skipped (not tied to a payment)",
        highlight=False,
    )


# -- the read side: read models and the reconciliation report ---------------------------------


class MomentType(click.ParamType[datetime, Any]):
    """An RFC 3339 time with an offset (2026-11-22T18:00:00Z), or a date meaning its start in
    UTC (2026-11-22)."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        try:
            if isinstance(value, datetime):
                return check_moment(value)
            if _DATE.fullmatch(str(value)):
                return check_moment(datetime.fromisoformat(str(value)).replace(tzinfo=UTC))
            return parse_moment(str(value))
        except (MomentError, ValueError) as error:
            # The value is not repeated: a mistyped argument could be anything, a card number too.
            self.fail(f"the time {error} (or give a date: 2026-11-22)", param, ctx)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


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
    with opened(database_url) as ledger, _read_models(ledger) as read_models:
        run = read_models.rebuild if rebuild else read_models.refresh
        applied = _with_progress(lambda progress: run(progress, batch_size))
    stdout.print(f"{'rebuilt from' if rebuild else 'applied'} {applied} events")


@main.group()
def audit() -> None:
    """Audit tools over the event log: tamper evidence and the domain's invariants."""


@audit.command(name="verify")
@db_option
@json_option
def audit_verify(database_url: str | None, as_json: bool) -> None:
    """Walk the whole log: check every event against its link in the hash chain and the
    domain's invariants. Exit status 0 when all hold, 1 at the first bad position."""
    from adapters.audit import verify

    with opened(database_url, as_json) as ledger:
        result = verify(ledger)
    if as_json:
        print_json(result.to_dict())
    elif result.ok:
        stdout.print(f"OK: {result.count} events, head hash {result.head_hash}", highlight=False)
    else:
        if result.problem is not None:
            stderr.print(
                f"[bold red]TAMPERED[/] at position {result.problem.position}: "
                f"{result.problem.kind}: {result.problem.detail} "
                f"({result.count} events verified before it)",
                highlight=False,
            )
        for problem in result.invariant_problems:
            stderr.print(f"[bold red]INVARIANT[/] {escape(problem)}", highlight=False)
    sys.exit(EXIT_OK if result.ok else EXIT_REFUSED)


@audit.command(name="as-of")
@click.argument("moment", metavar="T", type=MomentType())
@click.option("--offline-id", help="One payment.", callback=no_card_number)
@click.option("--location", "location_id", help="One location.", callback=no_card_number)
@db_option
@json_option
def audit_as_of(
    moment: datetime,
    offline_id: str | None,
    location_id: str | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """The state of one payment, one location, or the whole ledger as it was recorded at T
    (from the events recorded up to then). Exit status 1 if it did not exist yet."""
    from adapters.audit import ledger_as_of, location_as_of, payment_as_of

    if offline_id is not None and location_id is not None:
        fail("give --offline-id or --location, not both", EXIT_USAGE, as_json)
    with opened(database_url, as_json) as ledger:
        if offline_id is not None:
            state: Any = payment_as_of(ledger, offline_id, moment)
        elif location_id is not None:
            state = location_as_of(ledger, location_id, moment)
        else:
            state = ledger_as_of(ledger, moment)
    if state is None:
        fail(
            f"{offline_id or location_id} did not exist at {moment.isoformat()}",
            EXIT_REFUSED,
            as_json,
        )
    body = (
        state.model_dump(mode="json")
        if hasattr(state, "model_dump")
        else {
            "at": state.at.isoformat(),
            "events": state.events,
            "payments_by_status": {
                status: {
                    currency: {"count": count, "amount": amount}
                    for currency, (count, amount) in by.items()
                }
                for status, by in state.payments_by_status.items()
            },
            "locations": [location.model_dump(mode="json") for location in state.locations],
        }
    )
    print_json(body) if as_json else stdout.print_json(data=body)


@audit.command(name="export")
@db_option
@json_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new, empty directory for the JSON Lines files and manifest.json.",
)
def audit_export(database_url: str | None, as_json: bool, out_dir: Path) -> None:
    """Write every event, as stored, to JSON Lines files with a manifest (count, head hash,
    each file's SHA-256). Refused when the hash chain does not verify."""
    from adapters.audit_export import export_log

    with opened(database_url, as_json) as ledger:
        manifest = export_log(ledger, out_dir)
    if as_json:
        print_json(manifest.to_dict())
    else:
        stdout.print(
            f"exported {manifest.count} events in {len(manifest.files)} files to "
            f"{out_dir}, head hash {manifest.head_hash}",
            highlight=False,
        )


@audit.command(name="import")
@click.argument(
    "in_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@db_option
@json_option
def audit_import(in_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Load an export into an empty database: the same events at the same positions, the
    same head hash. A tampered export is refused whole (exit status 1)."""
    from adapters.audit_export import import_log

    with opened(database_url, as_json) as ledger:
        manifest = import_log(ledger, in_dir)
    if as_json:
        print_json(manifest.to_dict())
    else:
        stdout.print(
            f"imported {manifest.count} events, head hash {manifest.head_hash}", highlight=False
        )


@audit.command(name="rebuild")
@db_option
@json_option
@click.option(
    "--swap", "swap_in", is_flag=True, help="Replace the live read models with the rebuilt ones."
)
def audit_rebuild(database_url: str | None, as_json: bool, swap_in: bool) -> None:
    """Replay the whole log into fresh read models and compare them with the live ones, row
    by row. Exit status 0 when they agree (or were swapped in), 1 when they drift."""
    with opened(database_url, as_json) as ledger, _read_models(ledger) as read_models:
        drifts = read_models.audit_rebuild(swap_in)
    drifted = [drift for drift in drifts if not drift.clean]
    if as_json:
        print_json(
            {
                "clean": not drifted,
                "swapped": swap_in,
                "tables": [{**vars(d), "clean": d.clean} for d in drifts],
            }
        )
    else:
        for drift in drifts:
            state = (
                "agrees"
                if drift.clean
                else (
                    f"DRIFT: {drift.differing_count} rows differ, {len(drift.only_live)} only "
                    f"live, {len(drift.only_rebuilt)} only rebuilt; e.g. "
                    f"{(drift.differing + drift.only_live + drift.only_rebuilt)[:5]}"
                )
            )
            stdout.print(
                f"{drift.table}: {drift.live_rows} live, {drift.rebuilt_rows} rebuilt: {state}",
                highlight=False,
            )
        if drifted:
            stdout.print(
                "swapped in the rebuilt read models"
                if swap_in
                else "run again with --swap to replace the live read models"
            )
    sys.exit(EXIT_REFUSED if drifted and not swap_in else EXIT_OK)


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
    with opened(database_url, fmt == "json") as ledger, _read_models(ledger) as read_models:
        _with_progress(read_models.refresh)
        built = read_models.report(as_of or datetime.now(UTC), thresholds, filters)
    if out is None:
        write(built, fmt, sys.stdout)
        return
    with out.open("w", encoding="utf-8", newline="") as file:
        write(built, fmt, file)
    stderr.print(f"{len(built.rows)} rows written to {out}", highlight=False)


@contextmanager
def _read_models(ledger: Ledger) -> Iterator[ReadModels]:
    with ReadModels(ledger) as read_models:
        yield read_models


def _with_progress(catch_up: Callable[[Callable[[int], None] | None], int]) -> int:
    """Run a catch-up, with a progress bar when someone is watching."""
    if not stderr.is_terminal:
        return catch_up(None)
    with Progress(
        SpinnerColumn(),
        "[progress.description]{task.description}",
        TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task("updating read models", total=None)
        return catch_up(lambda done: progress.advance(task, done))


# -- the webhook receiver -----------------------------------------------------------------------


@main.command()
@db_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for every interface, e.g. behind a proxy).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def serve(database_url: str | None, host: str, port: int) -> None:
    """Receive Stripe's webhooks at POST /stripe/webhook (GET /health for probes).

    The endpoint's signing secret (whsec_...) is read from the STRIPE_WEBHOOK_SECRET
    environment variable, never from the command line. Each event is verified, then applied
    once; Ctrl-C or SIGTERM stops the server after the requests in flight.
    """
    import logging

    import uvicorn

    from adapters.bounded_http import bounded_protocol
    from adapters.http_limits import HttpLimits
    from adapters.webhooks import create_app

    try:
        settings = Settings()
    except ValidationError as error:
        fail(
            f"configuration error: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}",
            EXIT_USAGE,
            False,
        )
    secret = settings.stripe_webhook_secret
    if secret is None or not secret.get_secret_value().strip():
        fail(
            "STRIPE_WEBHOOK_SECRET is not set: export the webhook endpoint's signing secret "
            "(whsec_..., shown in Stripe's Dashboard under Developers > Webhooks)",
            EXIT_USAGE,
            False,
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    limits = HttpLimits(
        header_seconds=settings.http_header_seconds,
        body_seconds=settings.http_body_seconds,
        connections=settings.http_connections,
    )
    with opened(database_url) as ledger:
        app = create_app(
            ledger,
            secret.get_secret_value(),
            database_wait_seconds=settings.webhook_database_wait_seconds,
            limits=limits,
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            server_header=False,
            http=bounded_protocol(limits),
        )


# -- Stripe's API: forwarding, sync, capture ------------------------------------------------------


@contextmanager
def _stripe(database_url: str | None, as_json: bool) -> Iterator[tuple[Ledger, StripeGateway]]:
    """The ledger and the gateway; the API key comes from STRIPE_API_KEY (or the file named by
    OFFLINE_LEDGER_STRIPE_CONFIG), never from the command line."""
    try:
        gateway = StripeGateway(load_stripe_settings())
    except ValidationError as error:
        fail(
            f"Stripe configuration error: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}",
            EXIT_USAGE,
            as_json,
        )
    except LedgerError as error:
        if as_json:
            print(json.dumps({"error": error.to_dict()}))
        else:
            stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        sys.exit(EXIT_USAGE)
    with opened(database_url, as_json) as ledger:
        yield ledger, gateway


@main.command()
@db_option
@json_option
@click.option(
    "--concurrency",
    type=click.IntRange(1, CONCURRENCY_MAX),
    default=4,
    show_default=True,
    help="Payments sent to Stripe at the same time.",
)
@click.option("--limit", type=click.IntRange(1), help="Forward at most this many payments.")
def forward(database_url: str | None, as_json: bool, concurrency: int, limit: int | None) -> None:
    """Forward stored payments that carry a reusable payment method to Stripe, oldest first:
    one PaymentIntent per offline_id whatever crashes or retries happen (safe to rerun).

    Exit status 0 when every payment was forwarded (or declined), 1 when some failed.
    """
    with _stripe(database_url, as_json) as (ledger, gateway), _read_models(ledger) as read_models:
        offline_ids = read_models.stored_oldest_first(limit)
        forwarder = Forwarder(ledger, gateway)
        if stderr.is_terminal and not as_json:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(),
                console=stderr,
                transient=True,
            ) as progress:
                task = progress.add_task("forwarding", total=len(offline_ids))
                summary = forwarder.forward_all(
                    offline_ids, concurrency=concurrency, progress=lambda _: progress.advance(task)
                )
        else:
            summary = forwarder.forward_all(offline_ids, concurrency=concurrency)
    if as_json:
        print_json({"payments": len(offline_ids), **summary.outcomes})
    else:
        shown = ", ".join(f"{count} {name}" for name, count in sorted(summary.outcomes.items()))
        stdout.print(
            f"{len(offline_ids)} stored payments: {shown or 'nothing to do'}", highlight=False
        )
    sys.exit(EXIT_REFUSED if summary.outcomes.get("failed") else EXIT_OK)


@main.command(name="sync-stripe")
@db_option
@json_option
@click.option("--since", type=MomentType(), help="Only PaymentIntents created from then.")
def sync_stripe(database_url: str | None, as_json: bool, since: datetime | None) -> None:
    """Read Stripe's PaymentIntents into the ledger: observations, and the facts their state
    implies for the payments whose metadata.offline_id the ledger knows. Running it twice
    records nothing new."""
    with _stripe(database_url, as_json) as (ledger, gateway):
        summary = sync(ledger, gateway, since)
    if as_json:
        print_json(asdict(summary))
        return
    stdout.print(
        f"{summary.payment_intents} PaymentIntents read: "
        f"{summary.observations_recorded} new observations, "
        f"{summary.facts_recorded} new facts, {summary.facts_refused} refused "
        "(the report shows them)",
        highlight=False,
    )


@main.command(name="stripe-mode")
@db_option
@json_option
def stripe_mode(database_url: str | None, as_json: bool) -> None:
    """Show which Stripe mode (test or live) this ledger holds objects of, if any yet.

    A ledger binds to a mode once Stripe (an API answer, a webhook event) or an exported file
    showed it objects of that mode; from then on keys and events of the other mode are
    refused (webhook events are answered 2xx and ignored)."""
    with opened(database_url, as_json) as ledger:
        bound = ledger.stripe_mode()
    mode = None if bound is None else ("live" if bound else "test")
    if as_json:
        print_json({"mode": mode})
    elif mode is None:
        stdout.print("not bound yet: no Stripe object has been recorded", highlight=False)
    else:
        stdout.print(f"{mode} mode: this ledger holds Stripe {mode}-mode objects", highlight=False)


@main.command(name="capture")
@click.argument("offline_id", required=False, callback=no_card_number)
@db_option
@json_option
@click.option("--amount", type=click.IntRange(1), help="Capture only this much (minor units).")
@click.option(
    "--all-due",
    is_flag=True,
    help="Capture every authorized payment instead, the earliest deadline first.",
)
@click.option(
    "--within-hours",
    type=click.IntRange(0),
    help="With --all-due: only those whose capture window ends within this many hours.",
)
def capture_command(
    offline_id: str | None,
    database_url: str | None,
    as_json: bool,
    amount: int | None,
    all_due: bool,
    within_hours: int | None,
) -> None:
    """Capture a forwarded, manual-capture payment's authorization (all of it or --amount),
    or with --all-due every one that is due. Each capture carries an Idempotency-Key."""
    if (offline_id is None) == (not all_due):
        fail("give an OFFLINE_ID or --all-due (not both)", EXIT_USAGE, as_json)
    if all_due and amount is not None:
        fail("--amount captures one payment: give its OFFLINE_ID", EXIT_USAGE, as_json)
    with _stripe(database_url, as_json) as (ledger, gateway):
        if offline_id is not None:
            captured = [capture(ledger, gateway, offline_id, amount)]
            failed: list[dict[str, Any]] = []
        else:
            with _read_models(ledger) as read_models:
                chosen = due(
                    read_models.authorized(),
                    Thresholds(),
                    datetime.now(UTC),
                    None if within_hours is None else timedelta(hours=within_hours),
                )
            captured, failed = [], []
            for payment in chosen:
                try:
                    captured.append(capture(ledger, gateway, payment.offline_id))
                except LedgerError as error:
                    failed.append({"offline_id": payment.offline_id, **error.to_dict()})
    rows = [
        {
            "payment_intent_id": o.payment_intent_id,
            "status": o.status,
            "amount_received": o.amount_received,
        }
        for o in captured
    ]
    if as_json:
        print_json({"captured": rows, "failed": failed})
    else:
        for row in rows:
            stdout.print(
                f"captured {row['payment_intent_id']}: {row['status']}, "
                f"{row['amount_received']} received",
                highlight=False,
            )
        for problem in failed:
            stderr.print(
                f"  {problem['offline_id']}: {problem['code']}: {problem['message']}",
                highlight=False,
                markup=False,
            )
    sys.exit(EXIT_REFUSED if failed else EXIT_OK)


# -- the demo: a simulated trading day, end to end --------------------------------------------


@main.command(name="demo")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default="offline-ledger-demo",
    show_default=True,
    help="Directory for the demo's ledger (SQLite), Stripe files and reports.",
)
@click.option(
    "--payments",
    type=click.IntRange(100, 50_000),
    default=3_000,
    show_default=True,
    help="Sales in the simulated day, online and offline.",
)
@click.option(
    "--seed",
    type=int,
    default=20261120,
    show_default=True,
    help="The same seed gives the same day, files and report.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an earlier demo in --out (deletes only the demo's own files).",
)
@json_option
def demo_command(out: Path, payments: int, seed: int, force: bool, as_json: bool) -> None:
    """Simulate a trading day and reconcile it, on an embedded SQLite ledger (no server).

    Four locations (USD, CAD, EUR with strong customer authentication, JPY) lose the
    internet for a few hours: their readers store payments, some refused by the offline
    rules and limits, then forward them; a few are declined, one is forwarded twice, one is
    lost on its reader, manual captures run late. Every step is recorded through the
    library API a POS backend uses. Stripe's side is written as Stripe gives it (balance
    report CSV, PaymentIntents JSON) and imported, and the reconciliation report is written
    in every format into --out. Exit status 2 when --out already holds a demo (use --force).
    """
    from rich.progress import MofNCompleteColumn

    from adapters import demo

    try:
        if as_json or not stderr.is_terminal:
            summary = demo.run(out, payments, seed, force=force)
        else:
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=stderr,
                transient=True,
            ) as progress:
                summary = demo.run(out, payments, seed, force=force, phase=_demo_phases(progress))
    except demo.DemoExists as error:
        fail(str(error), EXIT_USAGE, as_json)
    except LedgerError as error:
        fail_with(error, as_json)
    except OSError as error:
        fail(f"cannot write the demo into {out}: {error.strerror or error}", EXIT_USAGE, as_json)
    if as_json:
        print_json(summary.to_dict())
    else:
        demo.print_summary(summary, stdout)


def _demo_phases(progress: Progress) -> Callable[[str, int | None], Callable[[int], None]]:
    """One progress line per step of the demo; a step shows done when the next starts."""
    tasks: list[Any] = []

    def start(description: str, total: int | None) -> Callable[[int], None]:
        if tasks:
            done = progress.tasks[-1].completed or 1
            progress.update(tasks[-1], total=done, completed=done)
        task = progress.add_task(description, total=total)
        tasks.append(task)
        return lambda done: progress.advance(task, done)

    return start
