"""`demo`: a simulated trading day, end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from adapters.cli.errors import EXIT_USAGE, fail, fail_with
from adapters.cli.group import main
from adapters.cli.options import json_option
from adapters.cli.output import print_json, stderr, stdout
from ledger import LedgerError


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
