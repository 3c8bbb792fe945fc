"""Running the demo: the output directory, recording the day through the library API, importing
Stripe's side and writing the report in every format."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapters.demo.merchant import AS_OF, DAY, NEW_YORK, STORES, Store
from adapters.demo.scenario import Entry, TradingDay
from adapters.demo.stripe_side import write_balance_report, write_disputes, write_payment_intents
from adapters.stripe.files import read_disputes_json, read_payment_intents_json, read_report_csv
from adapters.what_if_page import page
from ledger import Ledger, LedgerError, Result
from ledger.application import BATCH_SIZE_MAX
from ledger.what_if import Outcome, compare, halved, histories
from projections.formats import write
from projections.read_models import ReadModels
from projections.report import Report

# Starts one step of the run with its amount of work (None: unknown) and returns the function
# to call with the work done since the last call; the CLI draws progress bars with it.
Phase = Callable[[str, int | None], Callable[[int], None]]


PAYMENTS_DEFAULT = 3_000
PAYMENTS_MIN = 100  # enough sales at every location for each incident of the day
PAYMENTS_MAX = 50_000
SEED_DEFAULT = 20261120
OUT_DEFAULT = Path("offline-ledger-demo")  # the CLI's defaults repeat these (tests check it)

DATABASE_FILE = "ledger.db"
STRIPE_REPORT_FILE = "stripe-balance-report.csv"
STRIPE_INTENTS_FILE = "stripe-payment-intents.json"
STRIPE_DISPUTES_FILE = "stripe-disputes.json"
WHAT_IF_FILE = "what-if.html"
REPORT_FILES = {
    "html": "report.html",
    "table": "report.txt",
    "csv": "report.csv",
    "json": "report.json",
}
# Everything the demo writes, and so everything --force may delete.
DEMO_FILES = (
    DATABASE_FILE,
    f"{DATABASE_FILE}-wal",
    f"{DATABASE_FILE}-shm",
    f"{DATABASE_FILE}-journal",
    STRIPE_REPORT_FILE,
    STRIPE_INTENTS_FILE,
    STRIPE_DISPUTES_FILE,
    *REPORT_FILES.values(),
    WHAT_IF_FILE,
)

RECORD_BATCH = 1_000
assert RECORD_BATCH <= BATCH_SIZE_MAX


class DemoExists(Exception):
    """The output directory already holds a demo and --force was not given."""

    def __init__(self, database: Path) -> None:
        super().__init__(
            f"{database.parent} already holds a demo ({database.name}): pass --force to "
            "replace it (only the demo's own files are deleted) or choose another --out"
        )


@dataclass
class Tally:
    """The ledger's answers: new facts (and the rules they broke, by code), idempotent
    repeats, refusals by code (malformed input only: none in a well-built day)."""

    accepted: int = 0
    repeats: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Result | LedgerError) -> None:
        if isinstance(outcome, LedgerError):
            self.refused[str(outcome.code)] += 1
        elif outcome.recorded:
            self.accepted += 1
            self.flagged.update(breach["code"] for breach in outcome.breaches)
        else:
            self.repeats += 1


@dataclass(frozen=True)
class DemoSummary:
    out: Path
    seed: int
    payments: int
    online: int
    offline: int
    stores: tuple[Store, ...]
    records: int
    tally: Tally
    stripe_report_rows: int
    stripe_rows_recorded: int
    stripe_rows_skipped: int
    payment_intents: int
    report: Report
    what_if: list[Outcome]  # every location's sales replayed against half its limits
    files: dict[str, Path]

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.files['database']}"

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        at_risk: dict[str, dict[str, int]] = {}
        for row in report.rows:
            if row.amount_at_risk:
                by_currency = at_risk.setdefault(row.category.value, {})
                currency = row.risk_currency or ""
                by_currency[currency] = by_currency.get(currency, 0) + row.amount_at_risk
        return {
            "seed": self.seed,
            "day": DAY.isoformat(),
            "as_of": AS_OF.isoformat().replace("+00:00", "Z"),
            "payments": {
                "simulated": self.payments,
                "online": self.online,
                "offline": self.offline,
            },
            "locations": [
                {
                    "location_id": s.location_id,
                    "currency": s.currency,
                    "readers": s.readers,
                    "outage": s.outage_text,
                }
                for s in self.stores
            ],
            "records": {
                "sent": self.records,
                "accepted": self.tally.accepted,
                "repeats": self.tally.repeats,
                "refused": dict(sorted(self.tally.refused.items())),
                "flagged": dict(sorted(self.tally.flagged.items())),
            },
            "stripe": {
                "report_rows": self.stripe_report_rows,
                "report_rows_recorded": self.stripe_rows_recorded,
                "report_rows_skipped": self.stripe_rows_skipped,
                "payment_intents": self.payment_intents,
            },
            "categories": {
                category: {
                    currency: {"count": t.count, "amount": t.amount}
                    for currency, t in by_currency.items()
                }
                for category, by_currency in report.summary().items()
            },
            "at_risk_by_category": dict(sorted(at_risk.items())),
            "at_risk": report.at_risk(),
            "what_if_half_stored_amount_limits": {
                "newly_refused": sum(o.newly_refused for o in self.what_if),
                "declines_avoided": sum(o.declines_avoided for o in self.what_if),
            },
            "files": {name: str(path) for name, path in self.files.items()},
        }


def existing_demo(out: Path) -> Path | None:
    """The demo database in `out`, if a demo ran there."""
    database = out / DATABASE_FILE
    return database if database.exists() else None


def prepare(out: Path, force: bool) -> None:
    """Create `out`; refuse a directory holding a demo unless `force`, which deletes the
    demo's own files (and nothing else)."""
    database = existing_demo(out)
    if database is not None and not force:
        raise DemoExists(database)
    out.mkdir(parents=True, exist_ok=True)
    if force:
        for name in DEMO_FILES:
            (out / name).unlink(missing_ok=True)


def run(
    out: Path,
    payments: int = PAYMENTS_DEFAULT,
    seed: int = SEED_DEFAULT,
    force: bool = False,
    phase: Phase | None = None,
) -> DemoSummary:
    """Simulate the day into `out`, import Stripe's side, write the report in every format.

    Raises DemoExists when `out` holds a demo and not `force`; LedgerError and OSError pass
    through.
    """
    assert PAYMENTS_MIN <= payments <= PAYMENTS_MAX, payments
    prepare(out, force)
    start = phase or _no_progress
    day = TradingDay(random.Random(seed), payments)
    sales = day.sales()
    files = {
        "database": (out / DATABASE_FILE).resolve(),
        "stripe_report": out / STRIPE_REPORT_FILE,
        "stripe_payment_intents": out / STRIPE_INTENTS_FILE,
        "stripe_disputes": out / STRIPE_DISPUTES_FILE,
        **{f"report_{fmt}": out / name for fmt, name in REPORT_FILES.items()},
        "what_if": out / WHAT_IF_FILE,
    }
    with Ledger.open(f"sqlite:///{files['database']}") as ledger:
        tally = Tally()
        during = day.outage_records(sales)
        advance = start("recording the outages' sales", len(during))
        outage = NEW_YORK.at(NEW_YORK.outage[0])
        _record(ledger, [e for e in during if e.when < outage], tally, advance)
        _grant_allowances(ledger, day)
        _record(ledger, [e for e in during if e.when >= outage], tally, advance)
        after = day.after_outage_records(sales)
        _record(ledger, after, tally, start("recording forwarding and captures", len(after)))

        report_rows = write_balance_report(files["stripe_report"], day, sales)
        write_payment_intents(files["stripe_payment_intents"], sales)
        write_disputes(files["stripe_disputes"], sales)
        advance = start("importing Stripe's report, PaymentIntents and disputes", 3)
        rows = read_report_csv(files["stripe_report"])
        recorded = ledger.observe_file(rows).recorded
        advance(1)
        intents = read_payment_intents_json(files["stripe_payment_intents"])
        ledger.observe_file(intents)
        advance(1)
        ledger.observe_file(read_disputes_json(files["stripe_disputes"]))
        advance(1)

        with ReadModels(ledger) as read_models:
            read_models.refresh(start("updating read models", None))
            report = read_models.report(AS_OF)
        what_if = [
            outcome
            for history in histories(ledger.store)
            for outcome in compare(history, ledger.policy, halved(history.config))
        ]
    files["what_if"].write_text(page(what_if), encoding="utf-8")
    advance = start("writing the report", len(REPORT_FILES))
    for fmt in REPORT_FILES:
        with files[f"report_{fmt}"].open("w", encoding="utf-8", newline="") as file:
            write(report, fmt, file)
        advance(1)
    offline = sum(1 for sale in sales if sale.offline)
    return DemoSummary(
        out=out,
        seed=seed,
        payments=len(sales),
        online=len(sales) - offline,
        offline=offline,
        stores=STORES,
        records=len(during) + len(after),
        tally=tally,
        stripe_report_rows=report_rows,
        stripe_rows_recorded=recorded,
        stripe_rows_skipped=rows.skipped,
        payment_intents=len(intents),
        report=report,
        what_if=what_if,
        files=files,
    )


def _grant_allowances(ledger: Ledger, day: TradingDay) -> None:
    """Just before New York loses its network, its POS backend (in the cloud, unreachable
    during the outage) grants each reader an allowance for the rest of the outage: an equal
    share of the location's limit, as much as is left of it (the ledger cuts each grant to
    what the limit leaves beside what is stored and the other readers' allowances)."""
    start, end = NEW_YORK.outage
    limit = day.limits[NEW_YORK.location_id]["limits"]["stored_amount_max"][NEW_YORK.currency]
    share = limit // NEW_YORK.readers
    for reader in NEW_YORK.reader_ids():
        ledger.allow(
            reader,
            NEW_YORK.location_id,
            {NEW_YORK.currency: share},
            1_000,
            NEW_YORK.at(end),
            at=NEW_YORK.at(start) - timedelta(minutes=5),
        )


def _no_progress(description: str, total: int | None) -> Callable[[int], None]:
    return lambda done: None


def _record(
    ledger: Ledger, entries: list[Entry], tally: Tally, advance: Callable[[int], None]
) -> None:
    """Send the records in time order, in batches, as a POS backend would, and note which
    payments the ledger stored (the rest of the day depends on it)."""
    entries.sort(key=lambda entry: (entry.when, entry.sequence))
    for start in range(0, len(entries), RECORD_BATCH):
        batch = entries[start : start + RECORD_BATCH]
        outcomes = ledger.record_many([entry.record for entry in batch])
        for entry, outcome in zip(batch, outcomes, strict=True):
            tally.add(outcome)
            if entry.sale is not None and entry.record["type"] == "payment.confirmed_offline":
                entry.sale.stored = isinstance(outcome, Result)
        advance(len(batch))
