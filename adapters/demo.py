"""`offline-ledger demo`: a realistic trading day, recorded, reconciled and reported.

Everything is simulated, and the same seed always gives the same day, the same files and the
same report (times come from the simulated day, never from the clock). The day, 2026-11-20:

- Four locations: New York (USD), Toronto (CAD), Berlin (EUR, strong customer authentication)
  and Tokyo (JPY, no decimals), each with a few readers and offline limits.
- Sales arrive through the opening hours, busier at lunch and in the evening. Each location
  loses its internet connection for a few hours; the readers store the sales taken meanwhile,
  and the POS backend records every step through the library API (`Ledger.record_many`),
  as in production. Sales taken online go straight to Stripe: the ledger never sees them.
- What the readers did is recorded as facts, never refused; the offline rules flag some of
  them: swiped cards, contactless taps in Berlin, Interac and girocard cards, online PIN,
  expired cards (the customer then inserts the card or pays with another one), a spare reader
  that has not been online for 42 days, baskets over the per-payment limit, New York's last
  sales once its stored total passed the location's limit during its four-hour outage, and
  the busiest Toronto reader once it held its maximum count. Before that outage New York's
  readers were granted offline allowances carved out of the location's limit; the sales a
  reader stored beyond its allowance are flagged OFFLINE_ALLOWANCE_EXCEEDED, naming it.
- When the network is back, each reader forwards its stored payments, oldest first: a few
  fail once and are retried, a few are declined by the issuer, one is forwarded twice (two
  PaymentIntents) and one never leaves its reader. Manual-capture authorizations are captured
  later (one partially, one is voided), except open New York tabs, Berlin orders not picked
  up yet and Tokyo reader 2's, whose end-of-day capture never ran: by the time of the report
  the two-day window of their Mastercard and JCB cards is almost over.
- The next day at 12:20 New York loses the network again for half an hour.
- Stripe's side is written as Stripe gives it: the itemized payout reconciliation report
  (CSV) with every charge (online sales too), a full and a partial refund, three disputes
  (open, lost, won back), a partial capture (the charge and its `partial_capture_reversal`),
  a Toronto payment settled in USD, and the payout of each movement, in which one charge has
  another amount than its sale, one belongs to no sale the ledger knows and one forwarded
  payment is missing; the PaymentIntents that moved no money (authorizations awaiting
  capture, declines, voids) as the API lists them (JSON); and the disputes (JSON), whose
  status the report cannot give. They are imported with the code behind
  `import-stripe-report`, `import-stripe-json` and `import-stripe-disputes`.

The reconciliation report is evaluated as of 2026-11-21 18:00 UTC and written in every format.
"""

from __future__ import annotations

import csv
import json
import math
import random
import string
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from adapters.stripe_files import read_disputes_json, read_payment_intents_json, read_report_csv
from ledger import Ledger, LedgerError, Result
from ledger.application import BATCH_SIZE_MAX
from ledger.errors import Code
from ledger.money import exponent, format_minor
from projections.formats import write
from projections.read_models import ReadModels
from projections.report import Category, Report

Record = dict[str, Any]
# Starts one step of the run with its amount of work (None: unknown) and returns the function
# to call with the work done since the last call; the CLI draws progress bars with it.
Phase = Callable[[str, int | None], Callable[[int], None]]

DAY = date(2026, 11, 20)
AS_OF = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
PAYMENTS_DEFAULT = 3_000
PAYMENTS_MIN = 100  # enough sales at every location for each incident of the day
PAYMENTS_MAX = 50_000
SEED_DEFAULT = 20261120
OUT_DEFAULT = Path("offline-ledger-demo")  # the CLI's defaults repeat these (tests check it)

DATABASE_FILE = "ledger.db"
STRIPE_REPORT_FILE = "stripe-balance-report.csv"
STRIPE_INTENTS_FILE = "stripe-payment-intents.json"
STRIPE_DISPUTES_FILE = "stripe-disputes.json"
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
)

RECORD_BATCH = 1_000
assert RECORD_BATCH <= BATCH_SIZE_MAX
# The breaches the day is built to provoke; any other code would be a bug in the simulation.
EXPECTED_BREACHES = frozenset(
    {
        Code.OFFLINE_ALLOWANCE_EXCEEDED,
        Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT,
        Code.STORED_AMOUNT_LIMIT_EXCEEDED,
        Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE,
        Code.CARD_SWIPE_NOT_AVAILABLE,
        Code.CONTACTLESS_NOT_ALLOWED_OFFLINE,
        Code.INTERAC_NOT_SUPPORTED_OFFLINE,
        Code.PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE,
        Code.ONLINE_PIN_NOT_SUPPORTED_OFFLINE,
        Code.OFFLINE_AND_CARD_EXPIRED,
        Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE,
    }
)
DECLINE_CODES = (
    "insufficient_funds",
    "do_not_honor",
    "generic_decline",
    "lost_card",
    "card_velocity_exceeded",
)
_ID_ALPHABET = string.ascii_letters + string.digits


class DemoExists(Exception):
    """The output directory already holds a demo and --force was not given."""

    def __init__(self, database: Path) -> None:
        super().__init__(
            f"{database.parent} already holds a demo ({database.name}): pass --force to "
            "replace it (only the demo's own files are deleted) or choose another --out"
        )


# -- the merchant ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """One Stripe Terminal Location of the simulated merchant."""

    location_id: str
    city: str
    country: str
    currency: str
    utc_offset_hours: int
    sca_required: bool
    weight: float  # share of the day's sales, relative to the other stores
    opens: float  # local hours
    closes: float
    outage: tuple[float, float]  # local hours without internet
    readers: int
    manual_share: float  # sales authorized now and captured later (tabs, orders, deposits)
    median_basket: float  # major units
    per_payment_max: int  # minor units
    brands: tuple[tuple[str, str, int], ...]  # (brand, network, weight) of cards presented
    contactless_share: float
    swipe_share: float
    fee_basis_points: int  # Stripe's card-present fee: a share ...
    fee_fixed: int  # ... plus a fixed amount, minor units

    @property
    def tz(self) -> timezone:
        return timezone(timedelta(hours=self.utc_offset_hours))

    def at(self, hours: float, day: date = DAY) -> datetime:
        """Local time `hours` after midnight of `day`, to the second."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return midnight + timedelta(seconds=round(hours * 3600))

    def reader_ids(self) -> list[str]:
        name = self.location_id.removeprefix("tml_")
        return [f"tmr_{name}_{n}" for n in range(1, self.readers + 1)]

    @property
    def spare_reader_id(self) -> str:
        return f"tmr_{self.location_id.removeprefix('tml_')}_spare"

    @property
    def outage_text(self) -> str:
        start, end = self.outage
        return f"{_clock(start)}-{_clock(end)} local"


NEW_YORK = Store(
    "tml_nyc_broadway",
    "New York",
    "US",
    "usd",
    -5,
    False,
    weight=4.0,
    opens=8.0,
    closes=21.0,
    outage=(11.0, 15.0),
    readers=4,
    manual_share=0.2,
    median_basket=28.0,
    per_payment_max=40_000,
    brands=(
        ("visa", "visa", 50),
        ("mastercard", "mastercard", 30),
        ("amex", "amex", 12),
        ("discover", "discover", 8),
    ),
    contactless_share=0.62,
    swipe_share=0.04,
    fee_basis_points=270,
    fee_fixed=5,
)
TORONTO = Store(
    "tml_toronto_queen_st",
    "Toronto",
    "CA",
    "cad",
    -5,
    False,
    weight=2.0,
    opens=9.0,
    closes=21.0,
    outage=(12.5, 15.5),
    readers=3,
    manual_share=0.0,
    median_basket=32.0,
    per_payment_max=50_000,
    brands=(
        ("visa", "visa", 42),
        ("mastercard", "mastercard", 36),
        ("amex", "amex", 8),
        ("interac", "interac", 14),
    ),
    contactless_share=0.6,
    swipe_share=0.01,
    fee_basis_points=260,
    fee_fixed=10,
)
BERLIN = Store(
    "tml_berlin_mitte",
    "Berlin",
    "DE",
    "eur",
    1,
    True,
    weight=2.5,
    opens=9.0,
    closes=20.0,
    outage=(10.0, 13.5),
    readers=3,
    manual_share=0.15,
    median_basket=24.0,
    per_payment_max=30_000,
    brands=(
        ("visa", "visa", 35),
        ("mastercard", "mastercard", 42),
        ("maestro", "girocard", 15),
        ("amex", "amex", 8),
    ),
    contactless_share=0.12,
    swipe_share=0.005,
    fee_basis_points=140,
    fee_fixed=10,
)
TOKYO = Store(
    "tml_tokyo_shibuya",
    "Tokyo",
    "JP",
    "jpy",
    9,
    False,
    weight=2.0,
    opens=10.0,
    closes=21.0,
    outage=(10.0, 13.0),
    readers=2,
    manual_share=0.3,
    median_basket=3_200.0,
    per_payment_max=30_000,
    brands=(
        ("jcb", "jcb", 40),
        ("visa", "visa", 33),
        ("mastercard", "mastercard", 20),
        ("amex", "amex", 7),
    ),
    contactless_share=0.5,
    swipe_share=0.005,
    fee_basis_points=360,
    fee_fixed=0,
)
STORES: tuple[Store, ...] = (NEW_YORK, TORONTO, BERLIN, TOKYO)
# The parts of the day's script, each given to chosen offline sales:
ROLES = {
    "tab_voided": "a New York tab authorized during the outage, then voided",
    "tab_open": "a New York tab authorized during the outage, still open (awaiting capture)",
    "jcb_uncaptured": "a Tokyo reader 2 JCB authorization its end-of-day capture missed",
    "over_limit": "a basket over the location's per-payment limit (refused, paid otherwise)",
    "spare_reader": "a sale on New York's spare reader, not online for 42 days (refused)",
    "next_day": "a sale stored during New York's short outage the next day (pending)",
    "lost": "a stored payment its reader never forwards (stale)",
    "missing": "a forwarded payment missing from Stripe's report",
    "duplicate": "a payment forwarded twice: two PaymentIntents, both charged",
    "refund": "a payment refunded the next morning",
    "partial_refund": "a payment refunded in part (one item returned)",
    "dispute_open": "a payment the cardholder disputes (open: the money is withdrawn)",
    "dispute_lost": "a payment disputed, and the dispute lost",
    "dispute_won": "a payment disputed, and the dispute won (the money reinstated)",
    "converted": "a Toronto payment settled in USD (currency conversion)",
    "mismatch": "a payment Stripe charged 1.00 more than the sale",
    "partial": "a Berlin order captured partially (an item was out of stock)",
    "declined": "a payment the issuer declines when forwarded",
}
# New York's second, short outage the next day: its sales are still stored at AS_OF.
NEXT_DAY_OUTAGE = (12 + 20 / 60, 12 + 50 / 60)


# -- one sale ---------------------------------------------------------------------------------


@dataclass
class Sale:
    number: int
    store: Store
    device_id: str
    created_at: datetime  # local time of the store
    amount: int  # minor units
    offline: bool
    offline_id: str = ""
    manual: bool = False
    cards: list[dict[str, Any]] = field(default_factory=list)  # presented, in order
    pays_cash: bool = False  # the first card is refused and the customer pays cash instead
    walks_away: bool = False  # the customer cancels before the payment is confirmed
    role: str = ""  # its part in the day's script (see ROLES), if any
    # What happened in the ledger and at Stripe, filled in as the day goes.
    confirmed_at: datetime | None = None
    stored: bool = False
    payment_intent_id: str | None = None
    charge_id: str | None = None
    forwarded_at: datetime | None = None
    decline_code: str | None = None
    duplicate_payment_intent_id: str | None = None
    duplicate_at: datetime | None = None
    captured_at: datetime | None = None
    amount_captured: int | None = None
    voided_at: datetime | None = None
    refunded_at: datetime | None = None
    refund_amount: int | None = None
    disputed_at: datetime | None = None

    @property
    def card(self) -> dict[str, Any]:
        return self.cards[-1]

    @property
    def forwarded(self) -> bool:
        """Sent to Stripe when the network came back (the lost one and the next day's
        outage's are still on their readers)."""
        return self.role not in ("lost", "next_day")

    @property
    def stripe_amount(self) -> int:
        """What Stripe charged: the sale's amount, except for the one charge that differs."""
        return self.amount + (10 ** exponent(self.store.currency) if self.role == "mismatch" else 0)


@dataclass(frozen=True)
class Entry:
    """A wire record, when it happened, and what to do with the ledger's answer."""

    when: datetime
    sequence: int
    record: Record
    sale: Sale | None = None


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
            "files": {name: str(path) for name, path in self.files.items()},
        }


# -- running it -------------------------------------------------------------------------------


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
    day = _Day(random.Random(seed), payments)
    sales = day.sales()
    files = {
        "database": (out / DATABASE_FILE).resolve(),
        "stripe_report": out / STRIPE_REPORT_FILE,
        "stripe_payment_intents": out / STRIPE_INTENTS_FILE,
        "stripe_disputes": out / STRIPE_DISPUTES_FILE,
        **{f"report_{fmt}": out / name for fmt, name in REPORT_FILES.items()},
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

        report_rows = _write_balance_report(files["stripe_report"], day, sales)
        _write_payment_intents(files["stripe_payment_intents"], sales)
        _write_disputes(files["stripe_disputes"], sales)
        advance = start("importing Stripe's report, PaymentIntents and disputes", 3)
        rows = read_report_csv(files["stripe_report"])
        recorded = ledger.observe(rows).recorded
        advance(1)
        intents = read_payment_intents_json(files["stripe_payment_intents"])
        ledger.observe(intents)
        advance(1)
        ledger.observe(read_disputes_json(files["stripe_disputes"]))
        advance(1)

        with ReadModels(ledger) as read_models:
            read_models.refresh(start("updating read models", None))
            report = read_models.report(AS_OF)
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
        files=files,
    )


def _grant_allowances(ledger: Ledger, day: _Day) -> None:
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


# -- the simulated day ------------------------------------------------------------------------


class _Day:
    def __init__(self, rng: random.Random, payments: int) -> None:
        self.rng = rng
        self.payments = payments
        self.sequence = 0
        self.ids: set[str] = set()
        self.limits: dict[str, Record] = {}

    # -- the sales --------------------------------------------------------------------------

    def sales(self) -> list[Sale]:
        """Every sale of the day, online and offline, with the outages' script assigned."""
        next_day = max(2, self.payments // 1_000)
        counts = _apportion(self.payments - next_day, [s.weight for s in STORES])
        sales: list[Sale] = []
        for store, count in zip(STORES, counts, strict=True):
            offline = min(count - 1, max(8, round(count * _outage_share(store))))
            times = [(self._moment(store, *store.outage), True) for _ in range(offline)]
            times += [(self._online_moment(store), False) for _ in range(count - offline)]
            for created_at, is_offline in sorted(times):
                sales.append(self._sale(len(sales) + 1, store, created_at, is_offline))
        tomorrow = DAY + timedelta(days=1)
        for created_at in sorted(
            self._moment(NEW_YORK, *NEXT_DAY_OUTAGE, tomorrow) for _ in range(next_day)
        ):
            sale = self._sale(len(sales) + 1, NEW_YORK, created_at, True)
            self._plain(sale, "next_day", manual=False)
            sales.append(sale)
        self._script_the_outages(sales)
        self._set_limits(sales)
        return sales

    def _moment(self, store: Store, start: float, end: float, day: date = DAY) -> datetime:
        """A local time between `start` and `end`, following the day's rush hours."""
        while True:
            hour = self.rng.uniform(start, end)
            if self.rng.uniform(0, _RUSH_MAX) <= _rush(hour):
                return store.at(hour, day)

    def _online_moment(self, store: Store) -> datetime:
        start, end = (store.at(hour) for hour in store.outage)
        while True:
            moment = self._moment(store, store.opens, store.closes)
            if not start <= moment < end:
                return moment

    def _sale(self, number: int, store: Store, created_at: datetime, offline: bool) -> Sale:
        rng = self.rng
        readers = store.reader_ids()
        device_id = rng.choices(readers, weights=range(len(readers), 0, -1))[0]
        sale = Sale(number, store, device_id, created_at, self._amount(store), offline)
        if not offline:
            return sale
        sale.offline_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        sale.manual = rng.random() < store.manual_share
        first = self._card(store)
        sale.cards.append(first)
        if _refused_card(first, store):
            if _insert_fixes(first) and rng.random() < 0.9:
                sale.cards.append(_inserted(first))
            elif rng.random() < 0.7:
                sale.cards.append(self._card(store, valid=True))
            else:
                sale.pays_cash = True
        sale.walks_away = not sale.pays_cash and rng.random() < 0.01
        return sale

    def _amount(self, store: Store) -> int:
        places = exponent(store.currency)
        value = self.rng.lognormvariate(math.log(store.median_basket), 0.85)
        if places == 0:
            return max(100, round(value / 10) * 10)
        scale: int = 10**places
        minor = round(value * scale)
        return max(100, minor - minor % 5)

    def _card(self, store: Store, valid: bool = False) -> dict[str, Any]:
        """A card as the reader reads it; with `valid`, one the offline rules accept here."""
        rng = self.rng
        choices = [
            (b, n, w) for b, n, w in store.brands if not valid or b not in ("interac", "maestro")
        ]
        brand, network, _ = rng.choices(choices, [w for _, _, w in choices])[0]
        draw = rng.random()
        if draw < store.contactless_share and not (valid and store.sca_required):
            read_method, verification = "contactless_emv", "none"
        elif draw < store.contactless_share + store.swipe_share and not valid:
            read_method = (
                "magnetic_stripe_track2" if store.country == "US" else "magnetic_stripe_fallback"
            )
            verification = "signature"
        else:
            read_method = "contact_emv"
            verification = (
                "signature" if store.country == "US" and rng.random() < 0.4 else "offline_pin"
            )
        funding = "debit" if brand in ("interac", "maestro") or rng.random() < 0.3 else "credit"
        if (
            not valid
            and store.country == "US"
            and funding == "debit"
            and read_method == "contact_emv"
            and rng.random() < 0.05
        ):
            verification = "online_pin"
        exp_year, exp_month = rng.randint(2027, 2031), rng.randint(1, 12)
        if not valid and rng.random() < 0.01:
            exp_year, exp_month = 2026, rng.randint(1, 10)  # expired before the day
        country = store.country if rng.random() < 0.93 else rng.choice(["GB", "FR", "US", "AU"])
        return {
            "brand": brand,
            "network": network,
            "last4": f"{rng.randint(0, 9999):04d}",
            "exp_month": exp_month,
            "exp_year": exp_year,
            "funding": funding,
            "read_method": read_method,
            "cardholder_verification": verification,
            "country": country,
        }

    def _plain(self, sale: Sale, role: str, manual: bool, brand: str | None = None) -> None:
        """Give a sale its part in the script, played plainly: a valid card inserted,
        nothing refused, nobody changes their mind."""
        assert role in ROLES, role
        card = self._card(sale.store, valid=True)
        if brand is not None:
            card.update(brand=brand, network=brand)
        sale.cards = [_inserted(card)]
        sale.manual = manual
        sale.pays_cash = sale.walks_away = False
        sale.amount = min(sale.amount, sale.store.per_payment_max // 2)
        sale.role = role

    def _script_the_outages(self, sales: list[Sale]) -> None:
        """The parts decided before the day: they change what the POS sends while offline."""
        rng = self.rng

        def cast(store: Store, count: int, early: bool = False) -> list[Sale]:
            """`count` offline sales of the outage with no part yet, early in it if asked."""
            start, end = store.outage
            middle = store.at((start + end) / 2)
            free = [s for s in sales if s.store is store and s.offline and not s.role]
            early_ones = [s for s in free if s.created_at < middle]
            chosen = rng.sample(early_ones, min(count, len(early_ones))) if early else []
            rest = [s for s in free if s not in chosen]
            return chosen + rng.sample(rest, min(count - len(chosen), len(rest)))

        # Two New York tabs authorized early in the outage: one is voided, one stays open.
        voided, still_open = cast(NEW_YORK, 2, early=True)
        self._plain(voided, "tab_voided", manual=True, brand="mastercard")
        self._plain(still_open, "tab_open", manual=True, brand="mastercard")
        voided.voided_at = voided.created_at + timedelta(hours=6)
        # Tokyo reader 2's end-of-day capture never runs; one of its authorizations is a JCB.
        (sale,) = cast(TOKYO, 1)
        self._plain(sale, "jcb_uncaptured", manual=True, brand="jcb")
        sale.device_id = TOKYO.reader_ids()[1]
        # Baskets over the per-payment limit.
        for store in (NEW_YORK, TOKYO):
            (sale,) = cast(store, 1)
            self._plain(sale, "over_limit", manual=False)
            step = 10 ** exponent(store.currency) * (100 if store.currency == "jpy" else 1)
            sale.amount = store.per_payment_max + step * rng.randint(20, 400)
        # New York brings out its spare reader, which has not been online for 42 days.
        for sale in cast(NEW_YORK, 1 + (self.payments >= 1_000), early=True):
            self._plain(sale, "spare_reader", manual=False)
            sale.device_id = NEW_YORK.spare_reader_id

    def _set_limits(self, sales: list[Sale]) -> None:
        """Each location's offline limits. The merchant sized them for a normal day, so New
        York's outage reaches its stored amount limit near the end, and Toronto's busiest
        reader its stored count limit; elsewhere they are far from reach."""
        for store in STORES:
            storable = [
                s
                for s in sales
                if s.store is store and s.role != "next_day" and _will_be_confirmed(s)
            ]
            total = sum(s.amount for s in storable)
            busiest = max(Counter(s.device_id for s in storable).values(), default=1)
            unit = 10 ** (exponent(store.currency) + 2)  # 100 major units
            generous = _round_up(2 * total + 1, unit * 10)
            location_amount, device_count = generous, min(1_000_000, 2 * busiest + 10)
            if store is NEW_YORK:  # about five baskets short of the outage's total
                typical = round(store.median_basket) * 10 ** exponent(store.currency)
                location_amount = max(unit, (total - 5 * typical) // (unit // 10) * (unit // 10))
            if store is TORONTO:
                device_count = max(1, busiest - 2)
            self.limits[store.location_id] = {
                "limits": {
                    "per_payment_max": {store.currency: store.per_payment_max},
                    "stored_amount_max": {store.currency: location_amount},
                    "stored_count_max": min(1_000_000, 2 * len(storable) + 10),
                },
                "device_limits": {
                    "stored_amount_max": {store.currency: generous},
                    "stored_count_max": device_count,
                },
            }

    # -- what the POS sends during the outages -------------------------------------------------

    def outage_records(self, sales: list[Sale]) -> list[Entry]:
        """Locations and readers, then every offline sale up to its confirmation."""
        entries: list[Entry] = []
        configured = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
        for store in STORES:
            entries.append(
                self._entry(
                    configured,
                    {
                        "type": "location.configured",
                        "occurred_at": _text(configured.astimezone(store.tz)),
                        "location_id": store.location_id,
                        "offline_enabled": True,
                        "sca_required": store.sca_required,
                        **self.limits[store.location_id],
                    },
                )
            )
            connected = store.at(store.opens - 0.5)
            updated = store.at(9.0, date(2026, 11, 17))
            for index, reader in enumerate(store.reader_ids()):
                moment = connected + timedelta(seconds=17 * index)
                entries.append(self._entry(moment, _device(store, reader, moment, updated)))
        last_seen = NEW_YORK.at(16.0, date(2026, 10, 9))
        entries.append(
            self._entry(
                last_seen, _device(NEW_YORK, NEW_YORK.spare_reader_id, last_seen, last_seen)
            )
        )
        for sale in sales:
            if sale.offline and sale.role != "next_day":
                entries.extend(self._sale_records(sale))
        return entries

    def _sale_records(self, sale: Sale) -> list[Entry]:
        """created, the cards presented, then confirmed offline (stored) or canceled."""
        rng = self.rng
        store = sale.store
        moment = sale.created_at
        entries = [
            self._entry(
                moment,
                {
                    "type": "payment.created",
                    "occurred_at": _text(moment),
                    "offline_id": sale.offline_id,
                    "device_id": sale.device_id,
                    "location_id": store.location_id,
                    "amount": sale.amount,
                    "currency": store.currency,
                    "capture_method": "manual" if sale.manual else "automatic",
                    "offline_behavior": "prefer_online",
                    "payment_intent_id": None,
                    "metadata": {
                        "order": f"{store.country}-{sale.number:06d}",
                        "lane": sale.device_id.rsplit("_", 1)[-1],
                    },
                },
                sale,
            )
        ]
        for index, card in enumerate(sale.cards):
            moment += timedelta(seconds=rng.randint(8, 30) if index == 0 else rng.randint(15, 50))
            entries.append(
                self._entry(
                    moment,
                    {
                        "type": "payment.payment_method_collected",
                        "occurred_at": _text(moment),
                        "offline_id": sale.offline_id,
                        "card": card,
                    },
                    sale,
                )
            )
        if sale.pays_cash or sale.walks_away:
            moment += timedelta(seconds=rng.randint(20, 60))
            entries.append(self._entry(moment, _canceled(sale, moment, "requested_by_customer")))
            return entries
        moment += timedelta(seconds=rng.randint(1, 5))
        sale.confirmed_at = moment
        entries.append(self._entry(moment, _confirmed(sale), sale))
        return entries

    # -- what happens once the network is back -------------------------------------------------

    def after_outage_records(self, sales: list[Sale]) -> list[Entry]:
        """Cancels of the sales a limit refused, forwarding, declines, captures, voids, a few
        resent records, and the next day's short outage."""
        rng = self.rng
        entries: list[Entry] = []
        offline = [s for s in sales if s.offline and s.role != "next_day"]
        for sale in offline:
            if sale.confirmed_at is not None and not sale.stored:
                # Refused when confirmed: the customer pays another way.
                moment = sale.confirmed_at + timedelta(seconds=rng.randint(20, 60))
                entries.append(
                    self._entry(moment, _canceled(sale, moment, "requested_by_customer"))
                )
        stored = [s for s in offline if s.stored]
        self._script_the_forwarding(stored)
        for store in STORES:
            for reader in store.reader_ids():
                queue = sorted(
                    (s for s in stored if s.device_id == reader and s.forwarded),
                    key=lambda s: s.created_at,
                )
                moment = store.at(store.outage[1]) + timedelta(seconds=rng.randint(20, 90))
                for sale in queue:
                    moment += timedelta(milliseconds=rng.randint(1_500, 4_000))
                    entries.extend(self._forwarding(sale, moment.replace(microsecond=0)))
        # The POS resends a few confirmations after a timeout: repeats, recorded once.
        for sale in rng.sample(stored, max(1, len(stored) // 100)):
            assert sale.confirmed_at is not None
            entries.append(self._entry(sale.confirmed_at + timedelta(minutes=5), _confirmed(sale)))
        for sale in sales:
            if sale.role == "next_day":
                entries.extend(self._sale_records(sale))
        return entries

    def _script_the_forwarding(self, stored: list[Sale]) -> None:
        """The parts decided after the outage, among the payments the ledger stored."""
        rng = self.rng
        pool = [s for s in stored if not s.role]
        rng.shuffle(pool)

        def cast(role: str, store: Store | None, manual: bool | None = False) -> None:
            for preferred in (store, None):
                for sale in pool:
                    if (preferred is None or sale.store is preferred) and (
                        manual is None or sale.manual == manual
                    ):
                        pool.remove(sale)
                        sale.role = role
                        return

        cast("lost", BERLIN)
        cast("missing", BERLIN)
        cast("duplicate", NEW_YORK)
        cast("refund", NEW_YORK)
        cast("partial_refund", BERLIN)
        cast("dispute_open", NEW_YORK)
        cast("dispute_lost", TORONTO)
        cast("dispute_won", BERLIN)
        cast("converted", TORONTO)
        cast("mismatch", TORONTO)
        cast("partial", BERLIN, manual=True)
        for _ in range(max(2, round(len(stored) * 0.015))):
            cast("declined", None, manual=None)
        for sale in stored:
            if sale.role in ("refund", "partial_refund"):
                sale.refunded_at = NEW_YORK.at(10.5, DAY + timedelta(days=1))
                sale.refund_amount = sale.amount if sale.role == "refund" else sale.amount // 3
            elif sale.role.startswith("dispute_"):
                sale.disputed_at = sale.store.at(9, DAY + timedelta(days=1))
            elif sale.role == "partial":
                sale.amount_captured = max(1, sale.amount * 3 // 4)
            elif sale.role == "declined":
                sale.decline_code = rng.choice(DECLINE_CODES)

    def _forwarding(self, sale: Sale, moment: datetime) -> list[Entry]:
        """A stored payment's records once its reader forwards it at `moment`."""
        rng = self.rng
        entries: list[Entry] = []
        if sale.role != "declined" and rng.random() < 0.04:
            entries.append(
                self._entry(
                    moment,
                    {
                        "type": "payment.forward_failed",
                        "occurred_at": _text(moment),
                        "offline_id": sale.offline_id,
                        "error_code": "api_connection_error",
                        "message": "the connection dropped again while forwarding",
                        "retryable": True,
                    },
                )
            )
            moment += timedelta(seconds=rng.randint(40, 120))
        sale.payment_intent_id, sale.charge_id = self.payment_intent_ids()
        sale.forwarded_at = moment
        if sale.role == "declined":
            entries.append(
                self._entry(
                    moment,
                    {
                        "type": "payment.declined",
                        "occurred_at": _text(moment),
                        "offline_id": sale.offline_id,
                        "payment_intent_id": sale.payment_intent_id,
                        "decline_code": sale.decline_code,
                    },
                )
            )
            return entries
        entries.append(
            self._entry(
                moment,
                _forwarded(
                    sale,
                    sale.payment_intent_id,
                    moment,
                    "requires_capture" if sale.manual else "succeeded",
                ),
            )
        )
        if sale.role == "duplicate":
            # The reader's forward timed out and it sent the payment again: a second
            # PaymentIntent, charged too.
            sale.duplicate_payment_intent_id, _ = self.payment_intent_ids()
            sale.duplicate_at = moment + timedelta(seconds=rng.randint(180, 420))
            entries.append(
                self._entry(
                    sale.duplicate_at,
                    _forwarded(
                        sale, sale.duplicate_payment_intent_id, sale.duplicate_at, "succeeded"
                    ),
                )
            )
        if not sale.manual:
            return entries
        if sale.voided_at is not None:
            entries.append(self._entry(sale.voided_at, _canceled(sale, sale.voided_at, "voided")))
            return entries
        captured_at = self._capture_time(sale, moment)
        if captured_at is not None:
            sale.captured_at = captured_at
            sale.amount_captured = sale.amount_captured or sale.amount
            entries.append(
                self._entry(
                    captured_at,
                    {
                        "type": "payment.captured",
                        "occurred_at": _text(captured_at),
                        "offline_id": sale.offline_id,
                        "payment_intent_id": sale.payment_intent_id,
                        "amount_captured": sale.amount_captured,
                    },
                )
            )
        return entries

    def _capture_time(self, sale: Sale, forwarded_at: datetime) -> datetime | None:
        """When the authorization is captured; None if it is still open at the report."""
        rng = self.rng
        store = sale.store
        if sale.role == "partial":
            return forwarded_at + timedelta(hours=2)
        if sale.role in ("tab_open", "jcb_uncaptured"):
            return None
        if store is TOKYO:
            if sale.device_id != TOKYO.reader_ids()[0]:
                return None  # reader 2's end-of-day capture never ran
            return store.at(store.closes) + timedelta(seconds=rng.randint(5, 600))
        if rng.random() < (0.15 if store is NEW_YORK else 0.3):
            return None  # tabs not closed yet, orders not picked up yet
        minutes = rng.randint(60, 180) if store is NEW_YORK else rng.randint(30, 360)
        return forwarded_at + timedelta(minutes=minutes, seconds=rng.randint(0, 59))

    # -- helpers --------------------------------------------------------------------------------

    def _entry(self, when: datetime, record: Record, sale: Sale | None = None) -> Entry:
        self.sequence += 1
        return Entry(when, self.sequence, record, sale)

    def unique_id(self, prefix: str, length: int = 24) -> str:
        while True:
            candidate = prefix + "".join(self.rng.choices(_ID_ALPHABET, k=length))
            if candidate not in self.ids:
                self.ids.add(candidate)
                return candidate

    def payment_intent_ids(self) -> tuple[str, str]:
        """A PaymentIntent id and its charge's, as Stripe makes them (the same suffix)."""
        payment_intent_id = self.unique_id("pi_3Q")
        return payment_intent_id, "ch_" + payment_intent_id.removeprefix("pi_")


# -- Stripe's side ----------------------------------------------------------------------------

REPORT_COLUMNS = (
    "balance_transaction_id",
    "created_utc",
    "available_on_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "payment_intent_id",
    "charge_id",
    "payment_metadata[offline_id]",
    "customer_facing_amount",
    "customer_facing_currency",
    "automatic_payout_id",
    "automatic_payout_effective_at_utc",
)
# A converted settlement: Canadian dollars paid out in US dollars, at this rate (per million).
CAD_TO_USD_PER_MILLION = 731_400
DISPUTE_FEE = {"usd": 1500, "cad": 1500, "eur": 1500, "jpy": 2000}


def _write_balance_report(path: Path, day: _Day, sales: list[Sale]) -> int:
    """The itemized payout reconciliation report of the period as Stripe's Dashboard exports
    it, with the optional columns the ledger reads: every charge (online sales and forwarded
    offline payments), refunds, disputes (one won back), a partial capture (its charge and
    the reversal of the uncaptured part), a settlement converted to USD, the payout each
    movement landed in, and a charge for a sale the ledger never heard of; one forwarded
    payment is missing from it."""
    rng = day.rng
    rows: list[tuple[datetime, str, list[str]]] = []
    payouts: dict[tuple[str, datetime], str] = {}
    converted = {s.offline_id for s in sales if s.role == "converted"}

    def add(
        when: datetime,
        store: Store,
        gross: int,
        payment_intent_id: str,
        offline_id: str,
        category: str = "charge",
        source_id: str | None = None,
        fee: int | None = None,
    ) -> None:
        currency = store.currency
        customer_facing = gross
        if category == "charge" and fee is None:
            fee = (gross * store.fee_basis_points + 5_000) // 10_000 + store.fee_fixed
        fee = fee or 0
        if offline_id in converted:
            currency = "usd"
            gross = (gross * CAD_TO_USD_PER_MILLION + 500_000) // 1_000_000
            fee = (fee * CAD_TO_USD_PER_MILLION + 500_000) // 1_000_000
        txn = day.unique_id("txn_3Q")
        utc = when.astimezone(UTC)
        available = (utc + timedelta(days=2)).replace(hour=0, minute=0, second=0)
        payout = payouts.setdefault((currency, available), day.unique_id("po_1Q"))
        charge_id = "ch_" + payment_intent_id.removeprefix("pi_")
        description = {"charge": "Terminal payment", "refund": "Refund"}.get(
            category, f"Chargeback for {charge_id}" if category.startswith("dispute") else ""
        )
        rows.append(
            (
                utc,
                txn,
                [
                    txn,
                    _stripe_time(utc),
                    _stripe_time(available),
                    currency,
                    _major(gross, currency),
                    _major(fee, currency),
                    _major(gross - fee, currency),
                    category,
                    source_id or charge_id,
                    description,
                    payment_intent_id,
                    charge_id,
                    offline_id,
                    _major(customer_facing, store.currency),
                    store.currency,
                    payout,
                    _stripe_time(available),
                ],
            )
        )

    for sale in sales:
        if not sale.offline:
            payment_intent_id, _ = day.payment_intent_ids()
            add(
                sale.created_at + timedelta(seconds=rng.randint(15, 40)),
                sale.store,
                sale.amount,
                payment_intent_id,
                "",
            )
            continue
        if sale.payment_intent_id is None or sale.role in ("missing", "declined"):
            continue
        assert sale.forwarded_at is not None
        if sale.manual:
            if sale.captured_at is not None and sale.amount_captured is not None:
                # Stripe books the whole authorization, then reverses what was not captured.
                add(
                    sale.captured_at,
                    sale.store,
                    sale.amount,
                    sale.payment_intent_id,
                    sale.offline_id,
                )
                if sale.amount_captured < sale.amount:
                    add(
                        sale.captured_at,
                        sale.store,
                        sale.amount_captured - sale.amount,
                        sale.payment_intent_id,
                        sale.offline_id,
                        "partial_capture_reversal",
                        fee=0,
                    )
            continue
        add(
            sale.forwarded_at,
            sale.store,
            sale.stripe_amount,
            sale.payment_intent_id,
            sale.offline_id,
        )
        if sale.duplicate_payment_intent_id is not None and sale.duplicate_at is not None:
            add(
                sale.duplicate_at,
                sale.store,
                sale.amount,
                sale.duplicate_payment_intent_id,
                sale.offline_id,
            )
        if sale.refunded_at is not None and sale.refund_amount is not None:
            add(
                sale.refunded_at,
                sale.store,
                -sale.refund_amount,
                sale.payment_intent_id,
                sale.offline_id,
                "refund",
                day.unique_id("re_3Q"),
            )
        if sale.disputed_at is not None:
            dispute_id = _dispute_id(sale)
            fee = DISPUTE_FEE.get(sale.store.currency, 1500)
            add(
                sale.disputed_at,
                sale.store,
                -sale.amount,
                sale.payment_intent_id,
                sale.offline_id,
                "dispute",
                dispute_id,
                fee=fee,
            )
            if sale.role == "dispute_won":
                add(
                    sale.disputed_at + timedelta(days=1),
                    sale.store,
                    sale.amount,
                    sale.payment_intent_id,
                    sale.offline_id,
                    "dispute_reversal",
                    dispute_id,
                    fee=-fee,
                )
    # A payment collected offline on a reader the POS was never told about (brought over
    # from another shop): Stripe has it, the ledger does not.
    payment_intent_id, _ = day.payment_intent_ids()
    orphan_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    add(
        NEW_YORK.at(NEW_YORK.outage[1] + 0.25),
        NEW_YORK,
        rng.randint(20, 90) * 100 + 99,
        payment_intent_id,
        orphan_id,
    )
    # Each currency's payout of an earlier balance: rows about no payment, skipped on import.
    when = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    for store in STORES:
        total = -sum(s.amount for s in sales if s.store is store) // 2
        txn = day.unique_id("txn_1Q")
        payout = day.unique_id("po_1Q")
        rows.append(
            (
                when,
                txn,
                [
                    txn,
                    _stripe_time(when),
                    _stripe_time(when),
                    store.currency,
                    _major(total, store.currency),
                    _major(0, store.currency),
                    _major(total, store.currency),
                    "payout",
                    payout,
                    "STRIPE PAYOUT",
                    "",
                    "",
                    "",
                    "",
                    "",
                    payout,
                    _stripe_time(when),
                ],
            )
        )
    rows.sort(key=lambda row: (row[0], row[1]))
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(row for _, _, row in rows)
    return len(rows)


def _dispute_id(sale: Sale) -> str:
    """The sale's dispute, as Stripe names it (derived from its PaymentIntent's suffix)."""
    assert sale.payment_intent_id is not None
    return "dp_1Q" + sale.payment_intent_id.removeprefix("pi_3Q")


def _write_disputes(path: Path, sales: list[Sale]) -> int:
    """The disputes as GET /v1/disputes lists them (component `dispute` of Stripe's OpenAPI
    spec): their status tells an open dispute from a lost one, which the report cannot."""
    status = {"dispute_open": "needs_response", "dispute_lost": "lost", "dispute_won": "won"}
    data: list[Record] = [
        {
            "id": _dispute_id(sale),
            "object": "dispute",
            "amount": sale.amount,
            "charge": sale.charge_id,
            "created": _unix(sale.disputed_at),
            "currency": sale.store.currency,
            "livemode": False,
            "metadata": {},
            "payment_intent": sale.payment_intent_id,
            "reason": "fraudulent",
            "status": status[sale.role],
        }
        for sale in sales
        if sale.disputed_at is not None
    ]
    page = {"object": "list", "url": "/v1/disputes", "has_more": False, "data": data}
    path.write_text(json.dumps(page, indent=2) + "\n", encoding="utf-8")
    return len(data)


def _write_payment_intents(path: Path, sales: list[Sale]) -> int:
    """The PaymentIntents that moved no money, as GET /v1/payment_intents lists them:
    authorizations awaiting capture, declined payments and voided authorizations (a balance
    report only holds money that moved)."""
    found: list[tuple[datetime, str, Record]] = []
    for sale in sales:
        if sale.payment_intent_id is None or sale.forwarded_at is None:
            continue
        if sale.role == "declined":
            status = "requires_payment_method"
        elif sale.manual and sale.voided_at is not None:
            status = "canceled"
        elif sale.manual and sale.captured_at is None:
            status = "requires_capture"
        else:
            continue
        found.append((sale.forwarded_at, sale.payment_intent_id, _payment_intent(sale, status)))
    found.sort(key=lambda item: (item[0], item[1]))
    page = {
        "object": "list",
        "url": "/v1/payment_intents",
        "has_more": False,
        "data": [item for _, _, item in found],
    }
    path.write_text(json.dumps(page, indent=2) + "\n", encoding="utf-8")
    return len(found)


def _payment_intent(sale: Sale, status: str) -> Record:
    assert sale.payment_intent_id is not None and sale.charge_id is not None
    assert sale.forwarded_at is not None and sale.confirmed_at is not None
    card = sale.card
    return {
        "id": sale.payment_intent_id,
        "object": "payment_intent",
        "amount": sale.amount,
        "amount_capturable": sale.amount if status == "requires_capture" else 0,
        "amount_received": 0,
        "capture_method": "manual" if sale.manual else "automatic",
        "currency": sale.store.currency,
        "created": _unix(sale.forwarded_at),
        "canceled_at": _unix(sale.voided_at) if sale.voided_at is not None else None,
        "livemode": False,
        "metadata": {"offline_id": sale.offline_id},
        "status": status,
        "last_payment_error": None
        if sale.decline_code is None
        else {"type": "card_error", "code": "card_declined", "decline_code": sale.decline_code},
        "latest_charge": {
            "id": sale.charge_id,
            "object": "charge",
            "amount": sale.amount,
            "captured": False,
            "status": "failed" if sale.decline_code else "succeeded",
            "payment_method_details": {
                "type": "card_present",
                "card_present": {
                    "brand": card["brand"],
                    "last4": card["last4"],
                    "exp_month": card["exp_month"],
                    "exp_year": card["exp_year"],
                    "read_method": card["read_method"],
                    "offline": {"stored_at": _unix(sale.confirmed_at), "type": "deferred"},
                },
            },
        },
    }


# -- small pieces -----------------------------------------------------------------------------


def _rush(hour: float) -> float:
    """How busy the shops are at a local hour (relative): lunch and evening rushes."""
    return (
        1.0
        + 2.2 * math.exp(-((hour - 12.75) ** 2) / 1.1)
        + 1.6 * math.exp(-((hour - 18.0) ** 2) / 2.0)
    )


_RUSH_MAX = 4.8  # above _rush everywhere


def _outage_share(store: Store) -> float:
    """The share of a store's sales that fall in its outage (by the rush-hour curve)."""

    def area(start: float, end: float) -> float:
        steps = max(1, round((end - start) * 60))
        width = (end - start) / steps
        return sum(_rush(start + (i + 0.5) * width) for i in range(steps)) * width

    return area(*store.outage) / area(store.opens, store.closes)


def _apportion(total: int, weights: list[float]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainders), summing to `total`."""
    shares = [total * w / sum(weights) for w in weights]
    counts = [math.floor(s) for s in shares]
    for i in sorted(range(len(weights)), key=lambda i: counts[i] - shares[i])[
        : total - sum(counts)
    ]:
        counts[i] += 1
    return counts


def _expired(card: dict[str, Any]) -> bool:
    return (card["exp_year"], card["exp_month"]) < (DAY.year, DAY.month)


def _refused_card(card: dict[str, Any], store: Store) -> bool:
    """Whether the offline card rules refuse this card here (`ledger.limits.check_card`)."""
    return (
        card["brand"] == "interac"
        or card["network"] == "girocard"
        or card["read_method"].startswith("magnetic_stripe")
        or (store.sca_required and card["read_method"] == "contactless_emv")
        or card["cardholder_verification"] == "online_pin"
        or _expired(card)
    )


def _insert_fixes(card: dict[str, Any]) -> bool:
    """A swipe, a tap where SCA applies or an online PIN: inserting the same card works."""
    return card["brand"] != "interac" and card["network"] != "girocard" and not _expired(card)


def _inserted(card: dict[str, Any]) -> dict[str, Any]:
    return {**card, "read_method": "contact_emv", "cardholder_verification": "offline_pin"}


def _will_be_confirmed(sale: Sale) -> bool:
    """A sale whose confirmation only the stored amount and count limits may still refuse."""
    return (
        sale.offline
        and not sale.pays_cash
        and not sale.walks_away
        and not _refused_card(sale.card, sale.store)
        and sale.amount <= sale.store.per_payment_max
        and sale.device_id != sale.store.spare_reader_id
    )


def _device(store: Store, reader: str, moment: datetime, updated: datetime) -> Record:
    return {
        "type": "device.connected_online",
        "occurred_at": _text(moment),
        "device_id": reader,
        "location_id": store.location_id,
        "reader_type": "stripe_s700" if reader.endswith("_1") else "bbpos_wisepos_e",
        "software_updated_at": _text(updated),
    }


def _confirmed(sale: Sale) -> Record:
    assert sale.confirmed_at is not None
    return {
        "type": "payment.confirmed_offline",
        "occurred_at": _text(sale.confirmed_at),
        "offline_id": sale.offline_id,
        "stored_at": _text(sale.confirmed_at),
    }


def _forwarded(sale: Sale, payment_intent_id: str, moment: datetime, status: str) -> Record:
    return {
        "type": "payment.forwarded",
        "occurred_at": _text(moment),
        "offline_id": sale.offline_id,
        "payment_intent_id": payment_intent_id,
        "status": status,
    }


def _canceled(sale: Sale, moment: datetime, reason: str) -> Record:
    return {
        "type": "payment.canceled",
        "occurred_at": _text(moment),
        "offline_id": sale.offline_id,
        "reason": reason,
    }


def _text(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _clock(hours: float) -> str:
    minutes = round(hours * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _stripe_time(moment: datetime) -> str:
    """Stripe's report timestamps: UTC without an offset."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _major(amount_minor: int, currency: str) -> str:
    """Minor units as the report's decimal major units (`-1250` -> `-12.50`), exactly."""
    places = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**places)
    return f"{sign}{whole}" if places == 0 else f"{sign}{whole}.{fraction:0{places}d}"


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def categories(report: Report) -> Iterator[tuple[Category, dict[str, tuple[int, int, int]]]]:
    """Each category that has rows, in the report's order, with {currency: (rows, amount,
    amount at risk)}."""
    summary = report.summary()
    risk: dict[str, dict[str, int]] = {}
    for row in report.rows:
        by_currency = risk.setdefault(row.category.value, {})
        currency = row.risk_currency or ""
        by_currency[currency] = by_currency.get(currency, 0) + row.amount_at_risk
    for category in Category:
        totals = summary.get(category.value)
        if totals:
            yield (
                category,
                {
                    currency: (t.count, t.amount, risk[category.value].get(currency, 0))
                    for currency, t in totals.items()
                },
            )


# -- the summary printed at the end -----------------------------------------------------------


def print_summary(summary: DemoSummary, console: Console) -> None:
    """What was simulated, what the ledger said, the categories and where to look."""
    out = console.print
    out(
        f"[bold]Simulated trading day {DAY.isoformat()}[/] (seed {summary.seed}): "
        f"{summary.payments:,} payments, {summary.offline:,} taken offline during the "
        f"outages, {summary.online:,} online",
        highlight=False,
    )
    for store in summary.stores:
        sca = ", SCA" if store.sca_required else ""
        out(
            f"  {store.city:<9} {store.location_id:<21} {store.currency.upper()}  "
            f"{store.readers} readers, offline {store.outage_text}{sca}",
            highlight=False,
        )
    tally = summary.tally
    out(
        f"\nRecorded through the library API: {summary.records:,} records, "
        f"[green]{tally.accepted:,} accepted[/], {tally.repeats} resent (recorded once), "
        f"{sum(tally.refused.values()):,} refused (malformed), and "
        f"[yellow]{sum(tally.flagged.values()):,} breaches flagged[/] on facts the readers "
        "reported (recorded: what a reader did is a fact):",
        highlight=False,
    )
    for code, count in sorted(tally.flagged.items(), key=lambda item: (-item[1], item[0])):
        out(f"  {count:>6,}  {code}", highlight=False)
    out(
        f"\nStripe's side, imported: {summary.stripe_report_rows:,} balance report rows "
        f"({summary.stripe_rows_skipped} payouts skipped) and {summary.payment_intents} "
        "PaymentIntents that moved no money",
        highlight=False,
    )
    report = summary.report
    table = Table(
        title=f"Reconciliation as of {AS_OF:%Y-%m-%d %H:%M} UTC ({len(report.rows):,} rows)",
        title_justify="left",
    )
    table.add_column("category")
    for name in ("rows", "amount", "at risk"):
        table.add_column(name, justify="right", no_wrap=True)
    for category, by_currency in categories(report):
        table.add_row(
            category.value,
            f"{sum(rows for rows, _, _ in by_currency.values()):,}",
            "\n".join(_money(amount, c) for c, (_, amount, _) in by_currency.items()),
            "\n".join(_money(risk, c) for c, (_, _, risk) in by_currency.items() if risk) or "-",
        )
    out()
    out(table)
    at_risk = ", ".join(_money(amount, c) for c, amount in report.at_risk().items())
    out(f"Money at risk: [bold]{at_risk or 'none'}[/]", highlight=False)
    files = summary.files
    out(
        f"\nWritten to {summary.out}{'' if str(summary.out).endswith('/') else '/'}:",
        highlight=False,
    )
    out(
        f"  [bold]{files['report_html'].name}[/]  the reconciliation report: [bold]open it "
        "in a browser[/]",
        highlight=False,
    )
    out(
        f"  {files['report_table'].name}, {files['report_csv'].name}, "
        f"{files['report_json'].name}  the same as text, CSV and JSON",
        highlight=False,
    )
    out(
        f"  {files['stripe_report'].name}, {files['stripe_payment_intents'].name}  Stripe's side",
        highlight=False,
    )
    out(f"  {files['database'].name}  the ledger (SQLite); explore it with, e.g.,", highlight=False)
    out(f"    offline-ledger status --db {summary.database_url}", highlight=False, soft_wrap=True)


def _money(amount: int, currency: str) -> str:
    return format_minor(amount, currency) if currency else f"{amount:,}"
