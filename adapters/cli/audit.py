"""`audit`: tamper evidence, the log as of a moment, export, import, rebuild."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from adapters.cli.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, fail
from adapters.cli.group import main
from adapters.cli.options import (
    MomentType,
    db_option,
    json_option,
    no_card_number,
    public_key_option,
)
from adapters.cli.output import print_json, stderr, stdout
from adapters.cli.seals import audit_seal, say_seal_checks
from adapters.cli.session import open_read_models, opened
from ledger.errors import Code


@main.group()
def audit() -> None:
    """Audit tools over the event log: tamper evidence and the domain's invariants."""


audit.add_command(audit_seal)


@audit.command(name="verify")
@db_option
@json_option
@click.option(
    "--seals",
    "seals_path",
    type=click.Path(exists=True, path_type=Path),
    help="A seal file, or a directory of them (audit seal): check the log against each.",
)
@public_key_option("The Ed25519 public key (PEM) the seals were signed with; needed with --seals.")
def audit_verify(
    database_url: str | None, as_json: bool, seals_path: Path | None, key_path: Path | None
) -> None:
    """Walk the whole log: check every event against its link in the hash chain and the
    domain's invariants, and with --seals every seal (a recomputed chain, a cut tail or an
    edit before a seal is said with the period it breaks). Exit status 0 when all hold, 1
    otherwise."""
    from adapters.audit import verify
    from adapters.seals import verify_sealed

    if (seals_path is None) != (key_path is None):
        fail("give --seals and --public-key together", EXIT_USAGE, as_json, Code.INVALID_VALUE)
    with opened(database_url, as_json) as ledger:
        sealed = None
        if seals_path is not None and key_path is not None:
            sealed = verify_sealed(ledger, seals_path, key_path)
        result = verify(ledger) if sealed is None else sealed.verified
    if as_json:
        print_json(result.to_dict() if sealed is None else sealed.to_dict())
    elif result.ok:
        stdout.print(f"OK: {result.count} events, head hash {result.head_hash}", highlight=False)
    else:
        if result.problem is not None:
            stderr.print(
                f"[bold red]TAMPERED[/] at position {result.problem.position}: "
                f"{result.problem.kind}: {result.problem.detail} "
                f"({result.count} events verified before it)",
                highlight=False,
            )
        for problem in result.invariant_problems:
            stderr.print(f"[bold red]INVARIANT[/] {escape(problem)}", highlight=False)
    if sealed is not None and not as_json:
        say_seal_checks(sealed)
    sys.exit(EXIT_OK if (result if sealed is None else sealed).ok else EXIT_REFUSED)


@audit.command(name="as-of")
@click.argument("moment", metavar="TIME", type=MomentType())
@click.option("--offline-id", help="One payment.", callback=no_card_number)
@click.option("--location", "location_id", help="One location.", callback=no_card_number)
@db_option
@json_option
def audit_as_of(
    moment: datetime,
    offline_id: str | None,
    location_id: str | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """The state of one payment, one location, or the whole ledger as it was recorded at
    TIME (from the events recorded up to then). Exit status 1 if it did not exist yet.

    TIME: RFC 3339 (2026-11-22T18:00:00Z) or a date (2026-11-22, its start in UTC)."""
    from adapters.audit import ledger_as_of, location_as_of, payment_as_of

    if offline_id is not None and location_id is not None:
        fail("give --offline-id or --location, not both", EXIT_USAGE, as_json, Code.INVALID_VALUE)
    with opened(database_url, as_json) as ledger:
        if offline_id is not None:
            state: Any = payment_as_of(ledger, offline_id, moment)
        elif location_id is not None:
            state = location_as_of(ledger, location_id, moment)
        else:
            state = ledger_as_of(ledger, moment)
    if state is None:
        fail(
            f"{offline_id or location_id} did not exist at {moment.isoformat()}",
            EXIT_REFUSED,
            as_json,
            Code.UNKNOWN_PAYMENT if offline_id is not None else Code.UNKNOWN_LOCATION,
        )
    body = (
        state.model_dump(mode="json")  # a payment
        if hasattr(state, "model_dump")
        else state.to_dict()  # a location
        if hasattr(state, "to_dict")
        else {
            "at": state.at.isoformat(),
            "events": state.events,
            "payments_by_status": {
                status: {
                    currency: {"count": count, "amount": amount}
                    for currency, (count, amount) in by.items()
                }
                for status, by in state.payments_by_status.items()
            },
            "locations": [location.to_dict() for location in state.locations],
        }
    )
    print_json(body) if as_json else stdout.print_json(data=body)


@audit.command(name="export")
@db_option
@json_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new, empty directory for the JSON Lines files and manifest.json.",
)
def audit_export(database_url: str | None, as_json: bool, out_dir: Path) -> None:
    """Write every event, as stored, to JSON Lines files with a manifest (count, head hash,
    each file's SHA-256). Refused when the hash chain does not verify."""
    from adapters.audit_export import export_log

    with opened(database_url, as_json) as ledger:
        manifest = export_log(ledger, out_dir)
    if as_json:
        print_json(manifest.to_dict())
    else:
        stdout.print(
            f"exported {manifest.count} events in {len(manifest.files)} files to "
            f"{out_dir}, head hash {manifest.head_hash}",
            highlight=False,
        )


@audit.command(name="import")
@click.argument(
    "in_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@db_option
@json_option
@public_key_option("The Ed25519 public key (PEM) the export's seals must be signed with.")
def audit_import(
    in_dir: Path, database_url: str | None, as_json: bool, key_path: Path | None
) -> None:
    """Load an export into an empty database: the same events at the same positions, the
    same head hash, each seal matching the events (and signed by --public-key when given).
    A tampered export is refused whole (exit status 1)."""
    from adapters.audit_export import import_log
    from adapters.seals import public_key

    with opened(database_url, as_json, writes=True) as ledger:
        manifest = import_log(ledger, in_dir, None if key_path is None else public_key(key_path))
    if as_json:
        print_json(manifest.to_dict())
    else:
        stdout.print(
            f"imported {manifest.count} events, head hash {manifest.head_hash}", highlight=False
        )


@audit.command(name="rebuild")
@db_option
@json_option
@click.option(
    "--swap", "swap_in", is_flag=True, help="Replace the live read models with the rebuilt ones."
)
def audit_rebuild(database_url: str | None, as_json: bool, swap_in: bool) -> None:
    """Replay the whole log into fresh read models and compare them with the live ones, row
    by row. Exit status 0 when they agree (or were swapped in), 1 when they drift."""
    with opened(database_url, as_json) as ledger, open_read_models(ledger) as read_models:
        drifts = read_models.audit_rebuild(swap_in)
    drifted = [drift for drift in drifts if not drift.clean]
    if as_json:
        print_json(
            {
                "clean": not drifted,
                "swapped": swap_in,
                "tables": [{**vars(d), "clean": d.clean} for d in drifts],
            }
        )
    else:
        for drift in drifts:
            state = (
                "agrees"
                if drift.clean
                else (
                    f"DRIFT: {drift.differing_count} rows differ, {len(drift.only_live)} only "
                    f"live, {len(drift.only_rebuilt)} only rebuilt; e.g. "
                    f"{(drift.differing + drift.only_live + drift.only_rebuilt)[:5]}"
                )
            )
            stdout.print(
                f"{drift.table}: {drift.live_rows} live, {drift.rebuilt_rows} rebuilt: {state}",
                highlight=False,
            )
        if drifted:
            stdout.print(
                "swapped in the rebuilt read models"
                if swap_in
                else "run again with --swap to replace the live read models"
            )
    sys.exit(EXIT_REFUSED if drifted and not swap_in else EXIT_OK)
