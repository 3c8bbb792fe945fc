"""Nothing waits forever on PostgreSQL: every session of the ledger has a statement timeout,
a lock timeout, an idle-in-transaction timeout and TCP keepalives (OFFLINE_LEDGER_DATABASE_*);
a wait past a limit is DATABASE_TIMEOUT (exit status 2) and nothing of it is applied."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from adapters.audit_export import export_log, import_log
from adapters.cli import main
from ledger import Code, Ledger, LedgerError
from ledger.storage import POSTGRES_EVENTS_TABLE, parse_database_url, session_limits
from projections.read_models import ReadModels
from tests.support import records as r


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


def test_no_write_sends_a_batch_in_pipeline_mode(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg's `executemany` sends a whole list in pipeline mode, where with a large batch
    client and server can each wait for the other for ever, inside an open transaction.
    Every write path of many rows is checked here on PostgreSQL:
    records, read models brought up to date, an audit rebuild swapped in, an export imported
    into a new schema. None may open a pipeline."""
    pipelines: list[str] = []
    for name in ("pipeline", "_pipeline_nolock"):
        original = getattr(psycopg.Connection, name)

        def counted(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            pipelines.append(_original.__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(psycopg.Connection, name, counted)
    target = _new_schema_url(postgres_url)
    try:
        with Ledger.open(postgres_url) as ledger:
            ledger.record(r.location(limits={"stored_count_max": 10_000}))
            ledger.record(r.device())
            ledger.record_many([record for _ in range(700) for record in r.stored_payment()])
            with ReadModels(ledger) as read_models:
                assert read_models.refresh() > 1_000
                drifts = read_models.audit_rebuild(swap_in=True)
                assert all(drift.clean for drift in drifts)
            manifest = export_log(ledger, tmp_path / "export")
        with Ledger.open(target) as imported:
            assert import_log(imported, tmp_path / "export") == manifest
    finally:
        _drop_schema(target)
    assert pipelines == []


def _new_schema_url(url: str) -> str:
    base, schema = url.split("?")[0], f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?schema={schema}"


def _drop_schema(url: str) -> None:
    base, schema = url.split("?schema=")
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
