"""`keys`: the HTTP API's keys (create, list, revoke)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from adapters.cli.group import main
from adapters.cli.options import db_option, json_option, no_card_number
from adapters.cli.output import print_json, stderr, stdout
from adapters.cli.session import opened
from adapters.http.api_keys import KeyStore, Role


@contextmanager
def key_store(database_url: str | None, as_json: bool, writes: bool = False) -> Iterator[KeyStore]:
    """The keys of the ledger's database (created by its migrations; by `keys create` when
    the database is not there yet)."""
    with opened(database_url, as_json, writes=writes) as ledger:
        store = KeyStore(ledger.config)
        try:
            yield store
        finally:
            store.close()


@main.group()
def keys() -> None:
    """API keys of the HTTP API: each has a role (pos, finance, admin) and, optionally, the
    only locations it may see. Only a hash of each key is stored."""


@keys.command(name="create")
@click.option("--name", required=True, help="Who holds it, e.g. 'till app, shop 12'.")
@click.option(
    "--role",
    type=click.Choice([str(role) for role in Role]),
    required=True,
    help="pos: record, decide, reserve, read; finance: read and report; admin: everything.",
)
@click.option(
    "--location",
    "locations",
    multiple=True,
    callback=lambda ctx, param, values: tuple(no_card_number(ctx, param, v) for v in values),
    help="A location the key may see (repeat; default: every location).",
)
@db_option
@json_option
def keys_create(
    name: str, role: str, locations: tuple[str, ...], database_url: str | None, as_json: bool
) -> None:
    """Create a key and print it, once: it cannot be shown again."""
    with key_store(database_url, as_json, writes=True) as store:
        key, token = store.create(name, Role(role), locations)
    if as_json:
        print_json({**key.to_dict(), "token": token})
        return
    stdout.print(token, highlight=False, soft_wrap=True)
    stderr.print(
        f"key {key.key_id} ({key.role}"
        f"{', ' + ', '.join(key.locations) if key.locations else ', every location'}): "
        "store the token now, it is not shown again",
        highlight=False,
    )


@keys.command(name="list")
@db_option
@json_option
def keys_list(database_url: str | None, as_json: bool) -> None:
    """Every key: id, name, role, locations, created and revoked (never the token)."""
    with key_store(database_url, as_json) as store:
        found = store.list()
    if as_json:
        print_json([key.to_dict() for key in found])
        return
    for key in found:
        state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "live"
        stdout.print(
            f"{key.key_id}  {key.role:<7}  {state:<10}  {', '.join(key.locations) or '*'}  "
            f"{key.name}",
            highlight=False,
        )


@keys.command(name="revoke")
@click.argument("key_id")
@db_option
@json_option
def keys_revoke(key_id: str, database_url: str | None, as_json: bool) -> None:
    """Revoke a key: every server refuses it from its next request."""
    with key_store(database_url, as_json) as store:
        key = store.revoke(key_id)
    if as_json:
        print_json(key.to_dict())
        return
    stdout.print(f"revoked {key.key_id} ({key.name})", highlight=False)
