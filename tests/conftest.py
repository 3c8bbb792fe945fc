"""Shared fixtures: ledgers on every store we support.

PostgreSQL tests read the server's URL from OFFLINE_LEDGER_TEST_POSTGRES_URL. Without it they
are skipped and the run ends with a visible notice; with it, an unreachable server fails them
(CI sets it, so CI can never go green without PostgreSQL). Each test gets its own schema,
dropped afterwards.

The browser test (tests/e2e/test_report_browser.py) is skipped the same way, with a notice, when
Debian's chromium is not installed; OFFLINE_LEDGER_REQUIRE_BROWSER=1 (set by CI) fails it instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings

from adapters.trading_day import write_jsonl
from ledger import Ledger, LedgerError
from tests.support.cli import day

POSTGRES_ENV = "OFFLINE_LEDGER_TEST_POSTGRES_URL"
BROWSER_ENV = "OFFLINE_LEDGER_REQUIRE_BROWSER"
# Skip reasons start with these words, so the run's summary can count them: under pytest-xdist the
# tests run in worker processes and only their reports reach the process that prints the summary.
POSTGRES_SKIP = "PostgreSQL test:"
BROWSER_SKIP = "browser test:"

# No test depends on the machine's speed (no deadline); CI runs the same examples every time.
settings.register_profile("default", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


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
        pytest.skip(f"{POSTGRES_SKIP} set {POSTGRES_ENV} to run it")
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


def _skipped_with(terminalreporter: pytest.TerminalReporter, prefix: str) -> int:
    """How many tests of the run were skipped with a reason that starts with ``prefix``."""
    count = 0
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and str(longrepr[2]).startswith(f"Skipped: {prefix}"):
            count += 1
    return count


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped_for_postgres = _skipped_with(terminalreporter, POSTGRES_SKIP)
    if skipped_for_postgres:
        terminalreporter.write_sep(
            "!",
            f"NOTICE: {skipped_for_postgres} PostgreSQL tests were SKIPPED: set "
            f"{POSTGRES_ENV}=postgresql://postgres@127.0.0.1:5432/test to run them",
            yellow=True,
            bold=True,
        )
    skipped_for_browser = _skipped_with(terminalreporter, BROWSER_SKIP)
    if skipped_for_browser:
        terminalreporter.write_sep(
            "!",
            f"NOTICE: {skipped_for_browser} browser tests were SKIPPED: install Debian's "
            "chromium package (apt-get install chromium) to run them",
            yellow=True,
            bold=True,
        )


@pytest.fixture
def day_file(tmp_path: Path) -> Path:
    path = tmp_path / "day.jsonl"
    write_jsonl(path, day())
    return path


@pytest.fixture
def loaded_sqlite(sqlite_url: str) -> str:
    """An SQLite ledger holding `day()`, recorded through the library (faster than the CLI;
    ingesting through the CLI is tested on its own)."""
    with Ledger.open(sqlite_url) as ledger:
        assert all(not isinstance(x, LedgerError) for x in ledger.record_many(day()))
    return sqlite_url


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    """A fresh database: an SQLite file, or a fresh schema on the PostgreSQL test server."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("sqlite_url"))
