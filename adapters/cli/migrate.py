"""`migrate`: create or upgrade the schema."""

from __future__ import annotations

from adapters.cli.errors import configured, fail_with
from adapters.cli.group import main
from adapters.cli.options import db_option
from adapters.cli.output import stdout
from adapters.settings import Settings
from ledger import LedgerError
from ledger.storage import parse_database_url


@main.command()
@db_option
def migrate(database_url: str | None) -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from migrations import upgrade

    try:
        config = parse_database_url(
            database_url or configured(Settings.from_environ, "configuration", False).database_url
        )
        revision = upgrade(config)
    except LedgerError as error:
        fail_with(error, False)
    stdout.print(f"database {config.redacted} is at schema revision {revision}")
