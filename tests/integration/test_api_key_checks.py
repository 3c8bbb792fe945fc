"""The API's key check on PostgreSQL (`adapters.http.key_checks`): read on the event loop at
every request, so a revocation is seen at the next one; a connection the server dropped is
replaced without the client noticing; an unreachable database is a 503's error."""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

import psycopg
import pytest

from adapters.http.api_keys import KeyStore, Role
from adapters.http.key_checks import KeyChecks
from adapters.http.problems import ApiError
from ledger import Ledger
from ledger.errors import Code, StorageError
from ledger.storage import parse_database_url


async def _blocking(function: Any, *args: Any) -> Any:
    raise AssertionError("PostgreSQL's key check runs no blocking call")


def test_each_check_reads_the_key_and_survives_a_dropped_connection(postgres_url: str) -> None:
    with Ledger.open(postgres_url) as ledger:
        store = KeyStore(ledger.config)
        key, token = store.create("till", Role.POS, ("tml_1",))
        checks = KeyChecks(store, wait_seconds=10)

        async def scenario() -> None:
            try:
                found = await checks.authenticate(token, _blocking)
                assert (found.key_id, found.role) == (key.key_id, Role.POS)
                assert found.locations == ("tml_1",)
                # Every connection of the check's pool ended by the server at once.
                assert _terminate(postgres_url, f"offline-ledger keys {os.getpid()}") >= 1
                assert (await checks.authenticate(token, _blocking)).key_id == key.key_id
                store.revoke(key.key_id)
                with pytest.raises(ApiError) as refused:
                    await checks.authenticate(token, _blocking)
                assert refused.value.code == "UNAUTHENTICATED"
            finally:
                await checks.close()

        try:
            asyncio.run(scenario())
        finally:
            store.close()


def test_an_unreachable_database_is_unavailable_not_a_hang() -> None:
    config = parse_database_url("postgresql://postgres@127.0.0.1:9/nothing")
    store = KeyStore(config)
    checks = KeyChecks(store, wait_seconds=1)
    token = "olk_0123456789abcdef_" + "x" * 43

    async def scenario() -> None:
        try:
            await checks.authenticate(token, _blocking)
        finally:
            await checks.close()

    with pytest.raises(StorageError) as failed:
        asyncio.run(scenario())
    assert failed.value.code == Code.DATABASE_UNAVAILABLE
    store.close()


def _terminate(url: str, application_name: str) -> int:
    """Ends the server sessions of that name, as a restart or an idle timeout would."""
    base = url.split("?")[0]
    with psycopg.connect(base, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_a_key_id_never_reads_as_a_card_number(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id is stored and logged: a draw of 16 hex digits that are all digits and pass the
    Luhn check (about one in 2,000) is drawn again."""
    draws = iter(["6211509576340345", "0123456789abcdef"])
    drawn = secrets.token_hex
    monkeypatch.setattr(secrets, "token_hex", lambda n=None: next(draws) if n == 8 else drawn(n))
    with Ledger.open(sqlite_url) as ledger:
        store = KeyStore(ledger.config)
        try:
            key, token = store.create("till", Role.POS, ("tml_1",))
        finally:
            store.close()
    assert key.key_id == "0123456789abcdef"
    assert "6211509576340345" not in token
