"""Nothing waits forever on PostgreSQL: every session of the ledger has a statement timeout,
a lock timeout, an idle-in-transaction timeout and TCP keepalives (OFFLINE_LEDGER_DATABASE_*);
a wait past a limit is DATABASE_TIMEOUT (exit status 2) and nothing of it is applied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from adapters.cli import main
from ledger import Code, Ledger, LedgerError
from ledger.storage import POSTGRES_EVENTS_TABLE, parse_database_url, session_limits
from tests import records as r


@contextmanager
def events_table_locked(url: str) -> Iterator[None]:
    """Another session holding the event table's write lock, as a stuck writer would."""
    config = parse_database_url(url)
    base = url.split("?")[0]
    with psycopg.connect(base, autocommit=False, connect_timeout=5) as holder:
        holder.execute(f'LOCK TABLE "{config.schema}".{POSTGRES_EVENTS_TABLE} IN EXCLUSIVE MODE')
        yield
        holder.rollback()


def test_sessions_have_the_configured_limits(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFLINE_LEDGER_DATABASE_STATEMENT_TIMEOUT", "7")
    with (
        Ledger.open(postgres_url) as ledger,
        ledger.store.recorder.datastore.get_connection() as conn,  # type: ignore[attr-defined]
    ):
        shown = {
            name: conn.execute(f"SHOW {name}").fetchone()[name]
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
        }
        keepalives = conn.info.get_parameters().get("keepalives")
    assert shown == {
        "statement_timeout": "7s",
        "lock_timeout": "10s",
        "idle_in_transaction_session_timeout": "1min",
    }
    assert keepalives == "1"


@pytest.mark.parametrize(
    ("setting", "other"),
    [
        ("OFFLINE_LEDGER_DATABASE_LOCK_TIMEOUT", {}),
        # No lock limit: the statement's own limit ends the wait.
        (
            "OFFLINE_LEDGER_DATABASE_STATEMENT_TIMEOUT",
            {"OFFLINE_LEDGER_DATABASE_LOCK_TIMEOUT": "0"},
        ),
    ],
)
def test_a_wait_past_a_limit_is_database_timeout_and_stores_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, setting: str, other: dict[str, str]
) -> None:
    monkeypatch.setenv(setting, "1")
    for name, value in other.items():
        monkeypatch.setenv(name, value)
    with Ledger.open(postgres_url) as ledger:
        with events_table_locked(postgres_url), pytest.raises(LedgerError) as timed_out:
            ledger.record(r.location())
        assert timed_out.value.code == Code.DATABASE_TIMEOUT
        assert timed_out.value.details == {"setting": setting}
        assert setting in timed_out.value.message
        assert ledger.store.recorder.max_notification_id() in (None, 0)
        ledger.record(r.location())  # the lock is gone: the same record goes through
        assert ledger.status()[0].location_id == "tml_1"


def test_the_cli_exits_2_on_a_timeout(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OFFLINE_LEDGER_DATABASE_LOCK_TIMEOUT", "1")
    with Ledger.open(postgres_url):
        pass  # the schema exists before the lock is taken
    source = tmp_path / "one.jsonl"
    source.write_text(json.dumps(r.location()) + "\n")
    with events_table_locked(postgres_url):
        done = CliRunner().invoke(main, ["ingest", str(source), "--db", postgres_url, "--json"])
    assert done.exit_code == 2, done.output
    summary = json.loads(done.stdout)
    assert summary["stopped"]["code"] == "DATABASE_TIMEOUT"
    assert (summary["last_applied_line"], summary["accepted"]) == (0, 0)


@pytest.mark.parametrize("value", ["-1", "ten", "1.5", "86401", "\uff11"])
def test_a_bad_setting_is_refused_with_its_name(value: str) -> None:
    with pytest.raises(LedgerError) as refused:
        session_limits({"OFFLINE_LEDGER_DATABASE_LOCK_TIMEOUT": value})
    assert refused.value.code == Code.INVALID_DATABASE_SETTING
    assert "OFFLINE_LEDGER_DATABASE_LOCK_TIMEOUT" in refused.value.message
    with pytest.raises(LedgerError):
        session_limits({"OFFLINE_LEDGER_DATABASE_CONNECT_TIMEOUT": "0"})
