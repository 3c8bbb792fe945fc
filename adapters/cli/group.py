"""The `offline-ledger` command group every command module registers on."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="offline-ledger")
def main() -> None:
    """offline-ledger: the system of record for Stripe Terminal offline payments."""
