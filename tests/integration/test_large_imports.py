"""Files of a real merchant's size: Stripe reports recorded chunk by chunk, each chunk in its
own transaction, after a check of the whole file; a conflict anywhere still records nothing,
a database failure says how far it got, and a re-run records the rest.

The sizes that once hung (a 50,000-row report into PostgreSQL) run with `-m slow`:

    OFFLINE_LEDGER_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/pytest -m slow tests/integration/test_large_imports.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.jsonl import ingest, numbered_lines
from adapters.stripe.files import read_report_csv
from ledger import Code, Ledger, LedgerError, application
from ledger.errors import StorageError
from tests.support.big_files import REPORT_HEADER, write_jsonl, write_report

CHUNK = 4  # small chunks, so that a few rows cross several transactions


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(application, "OBSERVE_CHUNK", CHUNK)


def stored_events(ledger: Ledger) -> int:
    return ledger.store.recorder.max_notification_id() or 0


@pytest.mark.usefixtures("small_chunks")
def test_a_report_is_recorded_in_chunks_and_a_second_import_records_nothing(
    ledger: Ledger, tmp_path: Path
) -> None:
    path = tmp_path / "report.csv"
    rows = write_report(path, 23)
    first = ledger.observe_file(read_report_csv(path))
    assert (first.recorded, first.repeats) == (rows, 0)
    events = stored_events(ledger)
    again = ledger.observe_file(read_report_csv(path))
    assert (again.recorded, again.repeats) == (0, rows)
    assert stored_events(ledger) == events


@pytest.mark.usefixtures("small_chunks")
def test_a_conflict_in_a_later_chunk_records_nothing_of_the_file(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The same balance transaction twice with other amounts, many chunks apart; and a row
    contradicting what an earlier import recorded, in the last chunk."""
    path = tmp_path / "report.csv"
    write_report(path, 12)
    lines = path.read_text().splitlines()
    changed = lines[1].replace("5.01", "5.02", 1)
    within = tmp_path / "within.csv"
    within.write_text("\n".join([*lines, changed]) + "\n")
    with pytest.raises(LedgerError) as refused:
        ledger.observe_file(read_report_csv(within))
    assert refused.value.code == Code.IDEMPOTENCY_CONFLICT
    assert stored_events(ledger) == 0

    first = tmp_path / "first.csv"
    first.write_text("\n".join([REPORT_HEADER, lines[1]]) + "\n")
    ledger.observe_file(read_report_csv(first))
    events = stored_events(ledger)
    later = tmp_path / "later.csv"
    later.write_text("\n".join([REPORT_HEADER, *lines[2:], changed]) + "\n")
    with pytest.raises(LedgerError) as against_store:
        ledger.observe_file(read_report_csv(later))
    assert against_store.value.code == Code.IDEMPOTENCY_CONFLICT
    assert stored_events(ledger) == events


@pytest.mark.usefixtures("small_chunks")
def test_a_database_failure_mid_file_says_how_far_it_got_and_a_rerun_finishes(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.csv"
    rows = write_report(path, 10)
    observations = read_report_csv(path)
    real = Ledger._observe_atomic  # one chunk's transaction
    calls = {"n": 0}

    def failing(self: Ledger, chunk: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise StorageError(Code.DATABASE_UNAVAILABLE, "lost the database (test)")
        return real(self, chunk, **kwargs)

    monkeypatch.setattr(Ledger, "_observe_atomic", failing)
    with pytest.raises(StorageError) as stopped:
        ledger.observe_file(observations)
    assert stopped.value.details["rows_recorded"] == CHUNK
    assert f"{CHUNK} of {rows} rows were recorded" in stopped.value.message
    monkeypatch.setattr(Ledger, "_observe_atomic", real)
    rerun = ledger.observe_file(observations)
    assert (rerun.recorded, rerun.repeats) == (rows - CHUNK, CHUNK)


def _import_report(url: str, path: Path, rows: int) -> None:
    write_report(path, rows)
    with Ledger.open(url) as ledger:
        summary = ledger.observe_file(read_report_csv(path))
    assert (summary.recorded, summary.repeats) == (rows, 0)


def test_a_report_larger_than_the_size_that_hung_is_imported(
    postgres_url: str, tmp_path: Path
) -> None:
    """A 50,000-row report never returned from PostgreSQL (one pipelined batch); CI runs
    this size, just past it. 200,000 rows run in the slow test below."""
    _import_report(postgres_url, tmp_path / "report.csv", 50_000)


@pytest.mark.slow
def test_a_200000_row_report_is_imported(postgres_url: str, tmp_path: Path) -> None:
    _import_report(postgres_url, tmp_path / "report.csv", 200_000)


@pytest.mark.slow
def test_a_million_line_file_is_ingested(postgres_url: str, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    lines = write_jsonl(path, 1_000_000)
    with Ledger.open(postgres_url) as ledger, path.open("rb") as stream:
        summary = ingest(ledger, numbered_lines(stream))
    assert (summary.accepted, summary.rejected_count, summary.stopped) == (lines, 0, None)
    assert summary.last_applied_line == lines


def test_a_big_file_is_ingested_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    lines = write_jsonl(path, 20_000)
    with Ledger.open(sqlite_url) as ledger, path.open("rb") as stream:
        summary = ingest(ledger, numbered_lines(stream))
    assert json.loads(json.dumps(summary.to_dict()))["accepted"] == lines
