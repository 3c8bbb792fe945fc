"""Shared fixtures: ledgers on every store we support.

PostgreSQL tests read the server's URL from OFFLINE_LEDGER_TEST_POSTGRES_URL. Without it they
are skipped and the run ends with a visible notice; with it, an unreachable server fails them
(CI sets it, so CI can never go green without PostgreSQL). Each test gets its own schema,
dropped afterwards.

The browser test (tests/test_report_browser.py) is skipped the same way, with a notice, when
Debian's chromium is not installed; OFFLINE_LEDGER_REQUIRE_BROWSER=1 (set by CI) fails it instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ledger import Ledger

POSTGRES_ENV = "OFFLINE_LEDGER_TEST_POSTGRES_URL"
_skipped_for_postgres: list[str] = []
BROWSER_ENV = "OFFLINE_LEDGER_REQUIRE_BROWSER"
_skipped_for_browser: list[str] = []


def postgres_base_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh schema on the test server, as a ledger URL; dropped after the test."""
    base = postgres_base_url()
    if base is None:
        _skipped_for_postgres.append(request.node.nodeid)
        pytest.skip(f"PostgreSQL test: set {POSTGRES_ENV} to run it")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as error:
        pytest.fail(f"{POSTGRES_ENV} is set but the server is unreachable: {error}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_url(request: pytest.FixtureRequest) -> str:
    """The same test on the in-memory store, a real SQLite file and real PostgreSQL."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def ledger(any_url: str) -> Iterator[Ledger]:
    with Ledger.open(any_url) as opened:
        yield opened


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    with Ledger.open("memory://") as opened:
        yield opened


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_for_postgres:
        terminalreporter.write_sep(
            "!",
            f"NOTICE: {len(_skipped_for_postgres)} PostgreSQL tests were SKIPPED: set "
            f"{POSTGRES_ENV}=postgresql://postgres@127.0.0.1:5432/test to run them",
            yellow=True,
            bold=True,
        )
    if _skipped_for_browser:
        terminalreporter.write_sep(
            "!",
            f"NOTICE: {len(_skipped_for_browser)} browser tests were SKIPPED: install Debian's "
            "chromium package (apt-get install chromium) to run them",
            yellow=True,
            bold=True,
        )
