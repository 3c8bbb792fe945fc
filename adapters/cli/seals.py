"""`audit seal`: close a period with a signed seal; and how `audit verify --seals` says what
the seals found."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from adapters.cli.options import db_option, json_option, time_option
from adapters.cli.output import print_json, stderr, stdout
from adapters.cli.session import opened

if TYPE_CHECKING:
    from adapters.seals import SealedVerify


@click.command(name="seal")
@time_option(
    "--through",
    help="The period's end (default: now): the seal covers the events recorded by then.",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Ed25519 private key, PEM (else the PEM text in OFFLINE_LEDGER_SEAL_KEY); never "
    "stored.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The directory the seal file (seal-<position>.json) is written to.",
)
@db_option
@json_option
def audit_seal(
    through: datetime | None,
    key_path: Path | None,
    out_dir: Path,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Close a period: sign the hash chain's head, position and count at the last event
    recorded by --through, record the seal in the ledger and write it as a file for the
    auditor. Sealing again with nothing new recorded gives back the same seal. Refused
    (exit status 1) when the chain does not verify."""
    from adapters.seals import private_key, seal

    with opened(database_url, as_json) as ledger:
        done = seal(ledger, private_key(key_path), out_dir, through)
    if as_json:
        print_json(done.to_dict())
        return
    stdout.print(
        f"{'sealed' if done.recorded else 'already sealed'} through {done.seal.through}: "
        f"{done.seal.count} events up to position {done.seal.through_position}, head hash "
        f"{done.seal.head_hash}; seal file {done.file}",
        highlight=False,
    )


def say_seal_checks(sealed: SealedVerify) -> None:
    """One line per seal, and the period the log was changed in."""
    for check in sealed.checks:
        period = (
            f"positions {check.first_position}-{check.seal.through_position} "
            f"({check.period_from or 'the start'} to {check.seal.through})"
        )
        if check.holds:
            stdout.print(f"SEAL {check.file}: holds, {period}", highlight=False)
        else:
            stderr.print(
                f"[bold red]SEAL BROKEN[/] {escape(check.file)}: {period}: "
                f"{escape(check.problem or '')}",
                highlight=False,
            )
    broken = sealed.broken
    if broken is not None:
        stderr.print(
            f"[bold red]first broken period[/]: positions {broken.first_position}-"
            f"{broken.seal.through_position}, sealed by {escape(broken.file)}",
            highlight=False,
        )
