"""Options and argument types shared by the commands."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from adapters.cli.group import DB_HELP
from ledger.errors import Code
from ledger.moments import MomentError, check_moment, parse_moment
from ledger.pan import holds_pan

F = TypeVar("F", bound=Callable[..., Any])


def db_option(function: F) -> F:
    """`--db URL`, here or before the command; without either, the environment's
    (OFFLINE_LEDGER_DATABASE_URL, read with the other settings), else the default."""
    return click.option("--db", "database_url", metavar="URL", help=DB_HELP, callback=_or_global)(
        function
    )


def json_option(function: F) -> F:
    """`--json`, here or before the command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.", callback=_or_global)(
        function
    )


def _or_global(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """The command's own value, else the one given before the command (`adapters.cli.group`)."""
    return value or ctx.find_root().params.get(param.name or "")


def time_option(*declarations: str, help: str, required: bool = False) -> Callable[[F], F]:
    """An option naming a moment: every one takes the same `TIME` (`MomentType`) and says so
    with an example."""
    return click.option(
        *declarations,
        type=MomentType(),
        required=required,
        help=f"{help} {TIME_HELP}",
    )


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


def reader_options(function: F) -> F:
    """`--device` and `--location`, both required: the reader and the location a sale or an
    allowance is for (checked, like every id, for a card number)."""
    function = click.option(
        "--location", "location_id", required=True, help="Location id.", callback=no_card_number
    )(function)
    return click.option(
        "--device", "device_id", required=True, help="Device (reader) id.", callback=no_card_number
    )(function)


def public_key_option(help_text: str) -> Callable[[F], F]:
    """`--public-key FILE`: the Ed25519 public key (PEM) seals are checked with."""
    return click.option(
        "--public-key",
        "key_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help_text,
    )


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


TIME_HELP = (
    "TIME: RFC 3339 (2026-11-22T18:00:00Z, 2026-11-22T13:00:00.5-05:00) "
    "or a date (2026-11-22, its start in UTC)."
)


class MomentType(click.ParamType[datetime, Any]):
    """An RFC 3339 time with an offset (2026-11-22T18:00:00Z), or a date meaning its start in
    UTC (2026-11-22): the one type of every option naming a moment (`time_option`)."""

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


def check_period(since: datetime | None, until: datetime | None, as_json: bool) -> None:
    """Stop with INVALID_VALUE when `--since` is not before `--until`."""
    from adapters.cli.errors import EXIT_USAGE, fail  # the errors' table, only when it fails

    if since is not None and until is not None and since >= until:
        fail(
            f"--since ({since.isoformat()}) is not before --until ({until.isoformat()}): "
            "give the earlier time to --since",
            EXIT_USAGE,
            as_json,
            Code.INVALID_VALUE,
        )
