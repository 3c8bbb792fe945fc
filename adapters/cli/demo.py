"""`demo`: a simulated trading day, end to end."""

from __future__ import annotations

from pathlib import Path

import click

from adapters import demo
from adapters.cli.errors import EXIT_USAGE, fail, fail_with
from adapters.cli.group import main
from adapters.cli.options import json_option
from adapters.cli.output import phases_progress, print_json, stdout
from adapters.demo import OUT_DEFAULT, PAYMENTS_DEFAULT, PAYMENTS_MAX, PAYMENTS_MIN, SEED_DEFAULT
from ledger.errors import Code, LedgerError


@main.command(name="demo")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=OUT_DEFAULT,
    show_default=True,
    help="Directory for the demo's ledger (SQLite), Stripe files and reports.",
)
@click.option(
    "--payments",
    type=click.IntRange(PAYMENTS_MIN, PAYMENTS_MAX),
    default=PAYMENTS_DEFAULT,
    show_default=True,
    help="Sales in the simulated day, online and offline.",
)
@click.option(
    "--seed",
    type=int,
    default=SEED_DEFAULT,
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
    try:
        with phases_progress(shown=not as_json) as phase:
            summary = demo.run(out, payments, seed, force=force, phase=phase)
    except demo.DemoExists as error:
        fail(str(error), EXIT_USAGE, as_json, Code.INVALID_VALUE)
    except LedgerError as error:
        fail_with(error, as_json)
    except OSError as error:
        fail(
            f"cannot write the demo into {out}: {error.strerror or error}",
            EXIT_USAGE,
            as_json,
            Code.INVALID_VALUE,
        )
    if as_json:
        print_json(summary.to_dict())
    else:
        demo.print_summary(summary, stdout)
