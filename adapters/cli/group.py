"""The `offline-ledger` command group every command module registers on.

`--db` and `--json` are accepted before the command too (`offline-ledger --db URL status`):
the command's own option wins, then the group's, then the environment. The group refuses
one the command has no use for rather than ignoring it.
"""

from __future__ import annotations

import click

DB_HELP = (
    "Database URL: sqlite:///path.db (default ./offline-ledger.db) or "
    "postgresql://user@host:5432/db. Env: OFFLINE_LEDGER_DATABASE_URL."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
