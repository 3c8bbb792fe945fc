"""`offline-ledger report` and `project`, the installed command in subprocesses on a real
SQLite file and on real PostgreSQL, over the example trading day and its Stripe report."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from projections.report import COLUMNS, Category
from tests.support.cli import UNREACHABLE, run, run_json

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AS_OF = "2026-11-23T00:00:00Z"
# What the example day and its Stripe report hold (examples/, used by `make run`).
EXPECTED_COUNTS = {
    "matched": 24,
    "refunded": 1,  # 6.50 refunded of a 6.50 payment: the report's refund row
    "stale_forward": 9,  # with the payment a reader stored beyond its limits (flagged)
    "declined": 2,
    "duplicate": 1,
    "amount_mismatch": 1,
    "missing_in_stripe": 1,
    "orphan_in_stripe": 1,
    "canceled": 3,
}


def load_example_day(database: str) -> None:
    assert run("ingest", str(EXAMPLES / "trading-day.jsonl"), "--db", database).returncode == 0
    imported = run_json(
        "import-stripe-report", str(EXAMPLES / "stripe-balance-report.csv"), "--db", database
    )
    assert imported == {"rows": 30, "recorded": 29, "duplicates": 0, "skipped": 1}


def test_the_example_day_reconciles_into_the_expected_categories(
    database: str, tmp_path: Path
) -> None:
    load_example_day(database)
    for fmt in ("csv", "json", "html", "table"):
        done = run(
            "report",
            "--db",
            database,
            "--as-of",
            AS_OF,
            "--format",
            fmt,
            "--out",
            str(tmp_path / f"report.{fmt}"),
        )
        assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert tuple(rows[0]) == COLUMNS
    counted: dict[str, int] = {}
    for row in rows:
        counted[row["category"]] = counted.get(row["category"], 0) + 1
    assert counted == EXPECTED_COUNTS
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["as_of"] == "2026-11-23T00:00:00Z"
    assert {
        c: sum(t["count"] for t in by.values()) for c, by in report["summary"].items()
    } == EXPECTED_COUNTS
    assert report["at_risk"] == {
        currency: sum(
            int(r["amount_at_risk"])
            for r in rows
            if (r["currency"] or r["stripe_currency"]) == currency and int(r["amount_at_risk"])
        )
        for currency in report["at_risk"]
    }
    html = (tmp_path / "report.html").read_text()
    assert all(
        Category(c).value.replace("_", " ") in html.lower().replace("_", " ")
        for c in EXPECTED_COUNTS
    )
    table = (tmp_path / "report.table").read_text()
    assert "Declined" in table and "161.76 EUR" in table


def test_reports_are_the_same_before_and_after_a_rebuild(database: str) -> None:
    load_example_day(database)
    before = run("report", "--db", database, "--as-of", AS_OF, "--format", "json")
    rebuilt = run("project", "--db", database, "--rebuild")
    assert rebuilt.returncode == 0 and "rebuilt from" in rebuilt.stdout, rebuilt.stderr
    after = run("report", "--db", database, "--as-of", AS_OF, "--format", "json")
    assert json.loads(after.stdout) == json.loads(before.stdout)
    caught_up = run("project", "--db", database)
    assert caught_up.stdout.strip() == "applied 0 events"


def test_filters_narrow_the_report_and_an_empty_period_exits_1(database: str) -> None:
    load_example_day(database)
    berlin = run(
        "report", "--db", database, "--as-of", AS_OF, "--format", "json", "--location", "tml_berlin"
    )
    assert {row["location_id"] for row in json.loads(berlin.stdout)["rows"]} == {"tml_berlin"}
    empty = run("report", "--db", database, "--since", "2030-01-01")
    assert empty.returncode == 1
    assert "NO_REPORT_DATA" in empty.stderr and "since=2030-01-01" in empty.stderr


def test_bad_report_arguments_are_usage_errors(sqlite_url: str) -> None:
    for args in (
        ["--as-of", "yesterday"],
        ["--as-of", "2026-11-23T00:00:00"],
        ["--format", "pdf"],
        ["--stale-hours", "0"],
    ):
        done = run("report", "--db", sqlite_url, *args)
        assert done.returncode == 2, (args, done.stderr)
    assert (
        "has no offset"
        in run("report", "--db", sqlite_url, "--as-of", "2026-11-23T00:00:00").stderr
    )


def test_reading_commands_fail_clearly_without_a_database() -> None:
    for command in ("report", "project"):
        done = run(command, "--db", UNREACHABLE)
        assert done.returncode == 2 and "DATABASE_UNAVAILABLE" in done.stderr, done.stderr
