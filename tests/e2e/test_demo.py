"""`offline-ledger demo`: the installed command, in real subprocesses, on a small day.

The demo claims every reconciliation category; its report must hold each of them, with totals
that add up, the same report for the same seed and another for another seed, and an earlier
demo must never be overwritten without --force.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from adapters.demo import (
    DEMO_FILES,
    EXPECTED_BREACHES,
    OUT_DEFAULT,
    PAYMENTS_DEFAULT,
    PAYMENTS_MAX,
    PAYMENTS_MIN,
    REPORT_FILES,
    SEED_DEFAULT,
)
from ledger.application import BATCH_SIZE_MAX
from projections.report import COLUMNS, Category

CLI = Path(sys.executable).parent / "offline-ledger"
PAYMENTS = "300"
AS_OF = "2026-11-21T18:00:00Z"
EVERY_CATEGORY = {category.value for category in Category}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command without any OFFLINE_LEDGER_* setting; never a traceback."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OFFLINE_LEDGER_")}
    environment["COLUMNS"] = "200"
    done = subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=environment, timeout=300, check=False
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def demo(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run("demo", "--out", str(out), "--payments", PAYMENTS, *args)


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One demo run, with its --json summary."""
    out = tmp_path_factory.mktemp("demo") / "day"
    done = demo(out, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return out, json.loads(done.stdout)


def test_the_demo_writes_every_format_and_every_category_it_claims(
    first: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = first
    for name in (
        *REPORT_FILES.values(),
        "stripe-balance-report.csv",
        "stripe-payment-intents.json",
        "ledger.db",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    rows = report["rows"]
    assert report["as_of"] == AS_OF
    assert {row["category"] for row in rows} == EVERY_CATEGORY
    assert set(report["summary"]) == EVERY_CATEGORY

    # The summary, the money at risk and the breakdowns are the sums of the rows.
    totals: dict[str, dict[str, list[int]]] = {}
    at_risk: Counter[str] = Counter()
    for row in rows:
        currency = row["currency"] or row["stripe_currency"]
        amount = row["amount"] if row["amount"] is not None else row["stripe_amount"]
        count_and_amount = totals.setdefault(row["category"], {}).setdefault(currency, [0, 0])
        count_and_amount[0] += 1
        count_and_amount[1] += amount
        at_risk[currency] += row["amount_at_risk"]
    assert report["summary"] == {
        category: {
            currency: {"count": n, "amount": amount}
            for currency, (n, amount) in by_currency.items()
        }
        for category, by_currency in totals.items()
    }
    assert report["at_risk"] == {currency: v for currency, v in at_risk.items() if v}
    assert sum(t["count"] for by in report["by_location"].values() for t in by.values()) == len(
        rows
    )

    # The other formats say the same.
    table = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    assert tuple(table[0]) == COLUMNS
    assert Counter(r["category"] for r in table) == Counter(r["category"] for r in rows)
    page = (out / "report.html").read_text()
    html = page.lower().replace("_", " ")
    assert all(category.replace("_", " ") in html for category in EVERY_CATEGORY)
    # The page charts the money at risk by the brands the readers read (looked up for the
    # rows it lists) and lists the payments still stored, as many as the report counts.
    brands = page.split('aria-label="Money at risk by card brand, USD"')[1].split("</figure>")[0]
    assert "Visa" in brands and "Mastercard" in brands
    pending = sum(t["count"] for t in report["summary"].get("pending_forward", {}).values())
    assert f"<h2>Still stored on readers ({pending})</h2>" in page
    text = (out / "report.txt").read_text()
    assert "Reconciliation report as of 2026-11-21 18:00 UTC" in text

    # The command's own summary agrees with the report; no fact was refused, and only the
    # rules the day provokes were broken (anything else would be a bug in the simulation).
    assert summary["categories"] == report["summary"]
    assert summary["at_risk"] == report["at_risk"]
    assert summary["payments"]["simulated"] == int(PAYMENTS)
    assert summary["payments"]["offline"] + summary["payments"]["online"] == int(PAYMENTS)
    assert summary["records"]["refused"] == {}
    # Half the stored-amount limits would have sent more sales online; the page charts it.
    assert summary["what_if_half_stored_amount_limits"]["newly_refused"] > 0
    assert "<svg" in (out / "what-if.html").read_text()
    flagged = summary["records"]["flagged"]
    assert set(flagged) <= {str(code) for code in EXPECTED_BREACHES}
    assert {
        "STORED_AMOUNT_LIMIT_EXCEEDED",
        "OFFLINE_ALLOWANCE_EXCEEDED",
        "AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT",
        "CARD_SWIPE_NOT_AVAILABLE",
    } <= set(flagged)
    assert report["stored_beyond_policy"]
    records = summary["records"]
    assert records["accepted"] + records["repeats"] == records["sent"]
    assert records["repeats"] >= 1
    assert summary["stripe"]["report_rows_skipped"] == 4  # the payouts


def test_the_ledger_it_leaves_reports_the_same_through_the_report_command(
    first: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = first
    done = run(
        "report", "--db", f"sqlite:///{out / 'ledger.db'}", "--as-of", AS_OF, "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (out / "report.json").read_text()


def test_the_same_seed_gives_the_same_report_and_another_seed_another(
    first: tuple[Path, dict[str, Any]],
    tmp_path: Path,
) -> None:
    out, _ = first
    again = tmp_path / "again"
    done = demo(again)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""  # no progress bar when nobody watches a terminal
    assert "open it in a browser" in done.stdout and "report.html" in done.stdout
    assert "orphan_in_stripe" in done.stdout and "Money at risk" in done.stdout
    for name in (
        "report.json",
        "report.csv",
        "report.txt",
        "report.html",
        "stripe-balance-report.csv",
        "stripe-payment-intents.json",
    ):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name

    other = tmp_path / "other"
    done = demo(other, "--seed", "7")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (other / "report.json").read_bytes() != (out / "report.json").read_bytes()
    report = json.loads((other / "report.json").read_text())
    assert {row["category"] for row in report["rows"]} == EVERY_CATEGORY


def test_an_earlier_demo_is_kept_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "day"
    assert demo(out, "--seed", "11").returncode == 0
    before = {name: (out / name).read_bytes() for name in REPORT_FILES.values()}
    (out / "notes.txt").write_text("mine\n")

    refused = demo(out, "--seed", "12")
    assert refused.returncode == 2
    assert "already holds a demo" in refused.stderr and "--force" in refused.stderr
    assert {name: (out / name).read_bytes() for name in REPORT_FILES.values()} == before

    forced = demo(out, "--seed", "12", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert (out / "report.json").read_bytes() != before["report.json"]
    assert (out / "notes.txt").read_text() == "mine\n"  # not one of the demo's files
    assert "notes.txt" not in DEMO_FILES


def test_a_day_whose_stripe_files_outgrow_one_batch_is_imported_whole(tmp_path: Path) -> None:
    """Stripe's report of a larger day holds more rows than one transaction takes: the demo
    imports its files as files, a bounded transaction at a time, as the import commands do."""
    done = demo(tmp_path / "large", "--payments", "6000", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    stripe = json.loads(done.stdout)["stripe"]
    assert stripe["report_rows"] > BATCH_SIZE_MAX
    assert stripe["report_rows_recorded"] + stripe["report_rows_skipped"] == stripe["report_rows"]


def test_a_day_too_small_for_the_script_is_a_usage_error(tmp_path: Path) -> None:
    done = demo(tmp_path / "tiny", "--payments", "10")
    assert done.returncode == 2
    assert "--payments" in done.stderr
    assert not (tmp_path / "tiny").exists()


def test_the_command_offers_the_demos_own_defaults() -> None:
    done = run("demo", "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for shown in (
        str(OUT_DEFAULT),
        f"default: {PAYMENTS_DEFAULT}",
        f"default: {SEED_DEFAULT}",
        f"{PAYMENTS_MIN}<=x<={PAYMENTS_MAX}",
    ):
        assert shown in text, shown
