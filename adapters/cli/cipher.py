"""`cipher rotate`: a new encryption key for new events, the old ones kept to decrypt."""

from __future__ import annotations

import os
from pathlib import Path

import click

from adapters.cli.errors import configured, fail_with
from adapters.cli.group import main
from adapters.cli.options import db_option, json_option, no_card_number
from adapters.cli.output import print_json, stdout
from adapters.settings import Settings
from ledger.errors import LedgerError
from ledger.keyring import CIPHER_KEY_ENV, KEYRING_ENV


@main.group()
def cipher() -> None:
    """The keys that encrypt the ledger's events at rest."""


@cipher.command(name="rotate")
@click.option(
    "--keyring",
    "keyring_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The keyring file to write (default: the one in {KEYRING_ENV}; needed when the key "
    f"is in {CIPHER_KEY_ENV}).",
)
@click.option(
    "--reason",
    default="scheduled rotation",
    show_default=True,
    help="Why the key is rotated: recorded with the rotation.",
    callback=no_card_number,
)
@db_option
@json_option
def cipher_rotate(
    keyring_path: Path | None, reason: str, database_url: str | None, as_json: bool
) -> None:
    """Add a new key as the current one and retire every other key: new events are
    encrypted with the new key, the retired ones still decrypt what they encrypted and are
    refused for any new write (CIPHER_KEY_RETIRED). Writes the keyring file (owner-only),
    then records the rotation (key ids, never keys) in the ledger. Old events keep their
    ciphertext: the hash chain and the seals stay valid."""
    from adapters.cipher import rotate

    settings = configured(Settings.from_environ, "configuration", as_json)
    try:
        done = rotate(database_url or settings.database_url, keyring_path, reason, os.environ)
    except LedgerError as error:
        fail_with(error, as_json)
    if as_json:
        print_json(done.to_dict())
        return
    stdout.print(
        f"rotated: key {done.current} is current; retired (decrypt only): "
        f"{', '.join(done.retired)}; keyring written to {done.keyring}. Set {KEYRING_ENV}="
        f"{done.keyring} (and unset {CIPHER_KEY_ENV}) for every process (writers given that "
        "file pick the new key up at their next write; restart the others), and back the file "
        "up: losing it loses the log.",
        highlight=False,
        soft_wrap=True,
    )
