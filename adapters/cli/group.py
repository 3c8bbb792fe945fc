"""The `offline-ledger` command group every command module registers on.

A command's module is imported only when that command runs (or its own --help is asked):
starting the CLI costs click and the registry below, not every library every command uses.
`COMMANDS` names each command's module and the one line `offline-ledger --help` lists it with.

`--db` and `--json` are accepted before the command too (`offline-ledger --db URL status`):
the command's own option wins, then the group's, then the environment. The group refuses
one the command has no use for rather than ignoring it.
"""

from __future__ import annotations

from contextlib import suppress
from importlib import import_module
from itertools import pairwise
from typing import IO, Any

import click
from click.formatting import HelpFormatter

DB_HELP = (
    "Database URL: sqlite:///path.db (default ./offline-ledger.db) or "
    "postgresql://user@host:5432/db. Env: OFFLINE_LEDGER_DATABASE_URL."
)

_ARGS = "offline_ledger.args"  # the command line as given, in `click.Context.meta`
_LEDGER = "adapters.cli.ledger_commands"
_READ = "adapters.cli.report"
_STRIPE = "adapters.cli.stripe"
COMMANDS: dict[str, tuple[str, str]] = {
    "allow": (_LEDGER, "Grant a device an offline allowance for outages."),
    "audit": ("adapters.cli.audit", "Tamper evidence, sealed periods, export and import."),
    "capture": (_STRIPE, "Capture authorized payments (one, or all due)."),
    "cipher": ("adapters.cli.cipher", "Rotate the key that encrypts events at rest."),
    "decide": (_LEDGER, "May this sale be taken offline? Records nothing."),
    "demo": ("adapters.cli.demo", "Simulate a trading day and reconcile it."),
    "forward": (_STRIPE, "Forward stored payments to Stripe, oldest first."),
    "history": (_LEDGER, "Every event of one payment, as a timeline."),
    "import-stripe-disputes": (_STRIPE, "Record Disputes exported from Stripe's API."),
    "import-stripe-json": (_STRIPE, "Record PaymentIntents exported from Stripe's API."),
    "import-stripe-report": (_STRIPE, "Record Stripe's itemized balance or payout report."),
    "keys": ("adapters.cli.keys", "Create, list and revoke the HTTP API's keys."),
    "ingest": (_LEDGER, "Apply wire records from a JSON Lines file."),
    "migrate": ("adapters.cli.migrate", "Create or upgrade the database schema."),
    "openapi": ("adapters.cli.serve", "Print the HTTP API's OpenAPI document."),
    "project": (_READ, "Bring the read models up to date."),
    "release": (_LEDGER, "Give back the headroom a reservation holds."),
    "report": (_READ, "The reconciliation report, with the money at risk."),
    "reserve": (_LEDGER, "Decide on a sale and hold its headroom."),
    "schema": (_LEDGER, "Print the JSON Schema of the wire records."),
    "serve": ("adapters.cli.serve", "Serve the HTTP API and Stripe's webhooks."),
    "status": (_LEDGER, "Stored payments and headroom per location, device."),
    "stored": (_READ, "Every payment still stored on a reader, oldest first."),
    "stripe-mode": (_STRIPE, "The Stripe mode (test, live) of this ledger."),
    "sync-stripe": (_STRIPE, "Read Stripe's PaymentIntents into the ledger."),
    "watch": ("adapters.cli.watch", "Alerts on money at risk, to a signed webhook."),
    "what-if": ("adapters.cli.what_if", "Replay stored sales against proposed limits."),
}


class CodedUsageError(click.UsageError):
    """A usage error click found (an unknown option or command, a missing argument, a value
    of the wrong type), said like every other error: with its code, `USAGE_ERROR`, after the
    command's usage as text, or as `{"error": {"code", "message"}}` on standard output when
    the command line asked for JSON. Exit status 2, as click's own."""

    def __init__(self, error: click.UsageError, as_json: bool) -> None:
        super().__init__(error.message, error.ctx)
        self.as_json = as_json
        self.said = error.format_message()

    def show(self, file: IO[Any] | None = None) -> None:
        from adapters.cli.errors import fail  # the errors' table, only when one is shown
        from ledger.errors import Code

        if not self.as_json and self.ctx is not None:
            help_option = max(self.ctx.command.get_help_option_names(self.ctx), key=len)
            click.echo(self.ctx.get_usage(), err=True)
            click.echo(f"Try '{self.ctx.command_path} {help_option}' for help.\n", err=True)
        with suppress(SystemExit):  # click exits with `exit_code` once the error is shown
            fail(self.said, self.exit_code, self.as_json, Code.USAGE_ERROR)


def _coded(error: click.UsageError, args: list[str]) -> CodedUsageError:
    if isinstance(error, CodedUsageError):
        return error
    given = args[: args.index("--")] if "--" in args else args
    as_json = (
        "--json" in given or "--format=json" in given or ("--format", "json") in pairwise(given)
    )
    return CodedUsageError(error, as_json)


class LazyGroup(click.Group):
    """A group whose commands in `COMMANDS` are imported on first use, and whose usage
    errors carry a code (`CodedUsageError`)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        given = list(args)  # parsing consumes `args`
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise _coded(error, given) from error
        ctx.meta[_ARGS] = given
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise _coded(error, ctx.meta.get(_ARGS, [])) from error

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            import_module(COMMANDS[cmd_name][0])  # its decorators register it on `main`
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: HelpFormatter) -> None:
        """The listing from `COMMANDS`, without importing a single command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = [
            (
                name,
                COMMANDS[name][1]
                if name in COMMANDS
                else self.commands[name].get_short_help_str(limit),
            )
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "database_url", metavar="URL", help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (commands that have --json).")
@click.version_option(package_name="offline-ledger")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, as_json: bool) -> None:
    """offline-ledger: the system of record for Stripe Terminal offline payments.

    --db and --json may come before or after the command."""
    name = ctx.invoked_subcommand
    assert isinstance(ctx.command, click.Group)
    command = None if name is None else ctx.command.get_command(ctx, name)
    if command is None:
        return
    for given, param, option in (
        (database_url, "database_url", "--db"),
        (as_json, "as_json", "--json"),
    ):
        if given and not _takes(command, ctx, param):
            raise click.UsageError(f"`{name}` does not take {option}", ctx)


def _takes(command: click.Command, ctx: click.Context, param: str) -> bool:
    """Whether `command` (every command of it, for a group) has the parameter `param`."""
    if isinstance(command, click.Group):
        return all(
            _takes(sub, ctx, param)
            for sub in (command.get_command(ctx, n) for n in command.list_commands(ctx))
            if sub is not None
        )
    return any(p.name == param for p in command.params)
