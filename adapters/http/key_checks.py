"""Each request's key, read from the database at every request (so that a revocation takes
effect at once, in every server process) at the least cost.

On PostgreSQL the read runs on the server's event loop over a few asynchronous connections of
its own: one prepared, indexed read outside any transaction (no rollback after it), and no hop
to a worker thread, which costs more than the read itself (the thread must be woken, then the
event loop). On SQLite, whose driver has no asynchronous form, the key store reads it in a
worker thread.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from adapters.http.api_keys import ApiKey, KeyStore, key_id_of, live_key
from ledger.errors import Code, StorageError
from ledger.storage import postgres_session

# The key's row, by its primary key; every column `live_key` reads.
_READ = (
    "SELECT key_id, secret_sha256, name, role, locations, created_at, revoked_at "
    "FROM api_keys WHERE key_id = %s"
)
_CONNECTIONS = 4  # reads of a few tens of microseconds: a few connections serve many requests

T = TypeVar("T")
Connection = psycopg.AsyncConnection[dict[str, Any]]


class Runner(Protocol):
    """Runs a blocking call in a worker thread, within the database wait."""

    def __call__(self, function: Callable[..., T], *args: Any) -> Awaitable[T]: ...


class KeyChecks:
    """Who each request's token is, or 401 (`api_keys.live_key`)."""

    def __init__(self, keys: KeyStore, wait_seconds: float) -> None:
        self.keys = keys
        self.wait_seconds = wait_seconds
        self._pool: AsyncConnectionPool[Connection] | None = None
        engine = keys.engine
        if engine.dialect.name == "postgresql":
            self._pool = AsyncConnectionPool(
                kwargs={
                    **engine.dialect.create_connect_args(engine.url)[1],
                    **postgres_session(keys.config),
                    "autocommit": True,
                    # Which server process holds them, for pg_stat_activity.
                    "application_name": f"offline-ledger keys {os.getpid()}",
                    "row_factory": dict_row,
                },
                connection_class=Connection,
                min_size=1,
                max_size=_CONNECTIONS,
                timeout=wait_seconds,
                open=False,  # opened by the first request, on the event loop that serves it
                name="offline-ledger-keys",
            )

    async def authenticate(self, token: str | None, run: Runner) -> ApiKey:
        """The live key the token is, else ApiError UNAUTHENTICATED; `run` runs the key
        store's read when it blocks (SQLite)."""
        if self._pool is None:
            return await run(self.keys.authenticate, token)
        key_id = key_id_of(token)
        row = None if key_id is None else await self._read(self._pool, key_id)
        return live_key(token, row)

    async def _read(self, pool: AsyncConnectionPool[Connection], key_id: str) -> Any:
        """The key's row, or None. When the server dropped the connection (a restart, an idle
        timeout), it most likely dropped the pool's others too: they are all checked (a round
        trip each, on this rare path only) and the read tried once more, then the database
        counts as unavailable (503)."""
        try:
            async with asyncio.timeout(self.wait_seconds):
                if pool.closed:
                    await pool.open()
                try:
                    return await _row(pool, key_id)
                except psycopg.OperationalError:
                    await pool.check()  # every idle connection the server dropped, replaced
                    return await _row(pool, key_id)
        except (TimeoutError, psycopg.Error, OSError) as error:
            raise StorageError(
                Code.DATABASE_UNAVAILABLE,
                f"cannot read the API key: {type(error).__name__}; nothing is lost by "
                "retrying the same request",
            ) from None

    async def close(self) -> None:
        if self._pool is not None and not self._pool.closed:
            await self._pool.close()


async def _row(pool: AsyncConnectionPool[Connection], key_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        found = await conn.execute(_READ, (key_id,), prepare=True)
        return await found.fetchone()
