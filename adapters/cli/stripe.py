"""Stripe's side: importing its files, forwarding, sync, capture, the bound mode."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from rich.progress import (
    BarColumn,
    TextColumn,
    TimeRemainingColumn,
)

from adapters.cli.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, fail, fail_with
from adapters.cli.group import main
from adapters.cli.options import (
    TimeZoneType,
    db_option,
    json_option,
    no_card_number,
    time_option,
)
from adapters.cli.output import print_json, progress_bar, stderr, stdout
from adapters.cli.session import open_read_models, opened, stripe_session
from adapters.stripe.files import (
    parse_payment_intents_json,
    read_disputes_json,
    read_payment_intents_json,
    read_report_csv,
)
from adapters.stripe.forwarding import CONCURRENCY_MAX, Forwarder
from adapters.stripe.port import stripe_service
from adapters.stripe.problems import StripeFileError
from adapters.stripe.sync import due, sync
from ledger.errors import Code
from ledger.observations import Observation
from ledger.stripe_service import Captures, StripeService
from projections.reconciliation import Thresholds


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
        fail_with(error, as_json)
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
        fail_with(error, as_json)
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
        fail_with(error, as_json)
    _record_observations(disputes, 0, database_url, as_json)


def _record_observations(
    observations: Sequence[Observation], skipped: int, database_url: str | None, as_json: bool
) -> None:
    """Checked whole, then recorded in chunks (`StripeService.import_file`): a conflict, or
    objects of the other Stripe mode (or of both), record nothing; a database failure mid-file
    says how far it got, and a re-run records the rest."""
    with opened(database_url, as_json, writes=True) as ledger:
        summary = StripeService(ledger).import_file(observations)
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
    with (
        stripe_session(database_url, as_json) as (ledger, gateway),
        open_read_models(ledger) as read_models,
    ):
        offline_ids = read_models.stored_oldest_first(limit)
        forwarder = Forwarder(ledger, gateway)
        columns = (
            "[progress.description]{task.description}",
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
        )
        with progress_bar("forwarding", len(offline_ids), *columns, shown=not as_json) as advance:
            summary = forwarder.forward_all(
                offline_ids,
                concurrency=concurrency,
                progress=None if advance is None else lambda _: advance(1),
            )
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
@time_option("--since", help="Only PaymentIntents created from then.")
def sync_stripe(database_url: str | None, as_json: bool, since: datetime | None) -> None:
    """Read Stripe's PaymentIntents into the ledger: observations, and the facts their state
    implies for the payments whose metadata.offline_id the ledger knows. Running it twice
    records nothing new."""
    with stripe_session(database_url, as_json) as (ledger, gateway):
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
    or with --all-due every one that is due. Each capture carries an Idempotency-Key.

    With --all-due, a payment that cannot be captured is listed (exit status 1) and the others
    go on; the database or Stripe not answering stops the run, and running it again is safe."""
    if (offline_id is None) == (not all_due):
        fail("give an OFFLINE_ID or --all-due (not both)", EXIT_USAGE, as_json, Code.INVALID_VALUE)
    if all_due and amount is not None:
        fail(
            "--amount captures one payment: give its OFFLINE_ID",
            EXIT_USAGE,
            as_json,
            Code.INVALID_VALUE,
        )
    with stripe_session(database_url, as_json) as (ledger, gateway):
        service = stripe_service(ledger, gateway)
        if offline_id is not None:
            captures = Captures([service.capture(offline_id, amount)])
        else:
            with open_read_models(ledger) as read_models:
                chosen = due(
                    read_models.authorized(),
                    Thresholds(),
                    datetime.now(UTC),
                    None if within_hours is None else timedelta(hours=within_hours),
                )
            captures = service.capture_all(payment.offline_id for payment in chosen)
    failed = [{"offline_id": failed_id, **error.to_dict()} for failed_id, error in captures.failed]
    rows = [
        {
            "payment_intent_id": o.payment_intent_id,
            "status": o.status,
            "amount_received": o.amount_received,
        }
        for o in captures.captured
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
