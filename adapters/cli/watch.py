"""`watch`: alerts on money at risk, from a small configuration file."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
import orjson
from rich.markup import escape

from adapters.cli.errors import EXIT_OK, EXIT_REFUSED, configured
from adapters.cli.group import main
from adapters.cli.options import db_option, json_option
from adapters.cli.output import print_json, stderr, stdout
from adapters.cli.session import opened
from adapters.settings import Settings

if TYPE_CHECKING:
    from adapters.alerts.watch import WatchResult


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The TOML file of conditions, webhook and queue (docs/operators.md, Alerts).",
)
@click.option("--once", is_flag=True, help="Evaluate once and exit: 0 all clear, 1 alerting.")
@click.option(
    "--interval",
    type=click.IntRange(1, 86_400),
    default=60,
    show_default=True,
    help="Seconds between two evaluations, without --once.",
)
@db_option
@json_option
def watch(
    config_path: Path, once: bool, interval: int, database_url: str | None, as_json: bool
) -> None:
    """Evaluate the alert conditions (money at risk per location and currency, payments
    stored too long, captures due, duplicates, silent devices); raise each once while it
    holds, delivered to the signed webhook (secret: OFFLINE_LEDGER_ALERT_SECRET) with
    retries and a queue that survives restarts. With --once: exit status 0 when nothing holds,
    1 when a condition holds; else every --interval seconds until Ctrl-C or SIGTERM."""
    from adapters.alerts.config import load_config
    from adapters.alerts.watch import watch_once

    settings = configured(Settings.from_environ, "configuration", as_json)
    secret = None if settings.alert_secret is None else settings.alert_secret.get_secret_value()
    with opened(database_url, as_json) as ledger:
        config = load_config(config_path)
        if once:
            result = watch_once(ledger, config, secret)
            print_json(result.to_dict()) if as_json else _say(result)
            sys.exit(EXIT_OK if result.clear else EXIT_REFUSED)
        stop = threading.Event()

        def stopping(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
        while not stop.is_set():
            result = watch_once(ledger, config, secret)
            if as_json:  # one line per evaluation (JSON Lines)
                print(orjson.dumps(result.to_dict()).decode(), flush=True)
            else:
                _say(result)
            stop.wait(interval)


def _say(result: WatchResult) -> None:
    for alert in result.raised:
        stdout.print(f"ALERT {alert['kind']}: {escape(alert['message'])}", highlight=False)
    for failure in result.failures:
        stderr.print(
            f"[bold red]not delivered[/] {failure['alert_id']}: {escape(failure['error'])}",
            highlight=False,
        )
    stdout.print(
        f"{result.at.isoformat()}: {len(result.conditions)} conditions hold, "
        f"{len(result.raised)} new, {len(result.delivered)} delivered, {result.pending} "
        f"waiting, {result.dropped} dropped",
        highlight=False,
    )
