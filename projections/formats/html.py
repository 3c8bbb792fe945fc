"""The report as one self-contained HTML page for finance (inline CSS, nothing fetched).

Python prepares every value as display text and every bar length (`projections.formats.charts`);
the template only lays them out, with autoescaping on. The page is bounded: the rows that need
action and the payments still stored on readers are listed one by one, what Stripe matched
only as totals (the CSV lists every row). Money is summed in minor units (integers) per
currency and formatted only at the end; amounts in two currencies are never added.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined

from projections.formats.charts import (
    ACTION,
    SETTLED,
    WAITING,
    Tone,
    at_risk_by_age,
    at_risk_by_brand,
    at_risk_by_group,
    category_charts,
    tone,
)
from projections.formats.urgency import DEADLINES, deadline, save_first
from projections.formats.values import (
    age,
    by_age_bucket,
    category_label,
    currency_label,
    human_time,
    money,
    payout_lines,
    time_left,
)
from projections.report import EXCEPTIONS, Breakdown, Category, Report, Row

# One sentence per category: what it means and, for an exception, what to do about it.
EXPLANATIONS: dict[Category, str] = {
    Category.DECLINED: "The card issuer declined these payments after the goods were handed "
    "over offline, so the amount is lost unless you recover it from the customer.",
    Category.DUPLICATE: "More than one Stripe payment was created for a single sale, so the "
    "customer was charged more than once: refund the extra PaymentIntents.",
    Category.STALE_FORWARD: "These payments are still stored on a reader longer than the stale "
    "threshold (see the settings at the top of the page): bring the reader online so it "
    "forwards them before they expire.",
    Category.CAPTURE_OVERDUE: "These payments were authorized but not captured and the card "
    "brand's capture window has passed or is about to: capture them now or the money is "
    "released back to the customer.",
    Category.AMOUNT_MISMATCH: "Stripe recorded a different amount or currency than the ledger: "
    "check the receipt and correct the charge or refund the difference.",
    Category.ORPHAN_IN_STRIPE: "Stripe holds these payments but the ledger knows no sale for "
    "them: find the sale they belong to (by location, reader and time) before booking them.",
    Category.MISSING_IN_STRIPE: "The ledger says these payments were forwarded but Stripe has "
    "no such payment: ask the location to check the reader, as the money may never have "
    "been collected.",
    Category.MATCHED: "Forwarded, and Stripe agrees on the amount, currency and state.",
    Category.PENDING_FORWARD: "Stored on a reader and not forwarded yet, still within the "
    "normal delay.",
    Category.AWAITING_CAPTURE: "Authorized and still within the capture window.",
    Category.CANCELED: "Canceled before completion; no money moved.",
    Category.DISPUTE_LOST: "The cardholder disputed these payments and the dispute was lost: "
    "the disputed amount (and Stripe's dispute fee) is gone from your balance.",
    Category.DISPUTED: "The cardholder disputed these payments and the dispute is still open: "
    "the disputed amount is withdrawn until it is decided; answer with evidence in Stripe.",
    Category.DISPUTE_WON: "Disputed by the cardholder and won: the money was reinstated.",
    Category.REFUNDED: "Taken in full, then refunded in full to the customer.",
    Category.PARTIALLY_REFUNDED: "Taken in full, then refunded in part (see the refunded amount).",
}

# What each category counts as money at risk (projections/report_sql.py `_category`),
# in the order the page lists them. The other categories put no money at risk.
AT_RISK_RULES: tuple[tuple[Category, str], ...] = (
    (
        Category.PENDING_FORWARD,
        "the amount of a payment stored on a reader and not forwarded "
        "yet (nothing for a sale not confirmed offline)",
    ),
    (
        Category.STALE_FORWARD,
        "the amount of a payment stored on a reader for longer than the stale threshold",
    ),
    (Category.DECLINED, "the amount the card issuer declined"),
    (Category.DISPUTED, "the amount withdrawn by an open dispute"),
    (Category.DISPUTE_LOST, "the amount a lost dispute took back"),
    (Category.DUPLICATE, "the amount to refund for the extra charges"),
    (Category.CAPTURE_OVERDUE, "the amount authorized and not captured in time"),
    (
        Category.AMOUNT_MISMATCH,
        "the difference between the ledger's amount and Stripe's (the "
        "whole amount when the currency differs)",
    ),
    (Category.MISSING_IN_STRIPE, "the amount of a payment forwarded that Stripe does not have"),
)

# The order of the totals table and the category chart: what needs action first.
CATEGORY_ORDER: tuple[Category, ...] = (
    *EXCEPTIONS,
    *(category for category in Category if category not in EXCEPTIONS),
)

# Short words for the status codes of the ledger and of Stripe's PaymentIntents; the raw code
# stays on the page next to the label.
LEDGER_STATUSES: dict[str, str] = {
    "created": "Sale started",
    "collected": "Card read, not confirmed",
    "stored": "Stored on reader",
    "forwarded": "Sent to Stripe",
    "captured": "Captured",
    "declined": "Declined",
    "canceled": "Canceled",
}
STRIPE_STATUSES: dict[str, str] = {
    "requires_payment_method": "Failed, needs a new card",
    "requires_confirmation": "Not confirmed",
    "requires_action": "Needs customer action",
    "processing": "Processing",
    "requires_capture": "Authorized, not captured",
    "canceled": "Canceled",
    "succeeded": "Succeeded",
}


@dataclass(frozen=True)
class Status:
    """A status code with its label; `code` is "" when there is no status."""

    label: str
    code: str

    @property
    def code_differs(self) -> bool:
        """Whether the code says more than the label (`stored` vs `Stored on reader`)."""
        return self.code != self.label.lower()


@dataclass(frozen=True)
class ExceptionRow:
    offline_id: str
    location: str
    device: str
    amount: str
    ledger_status: Status
    stripe_amount: str
    stripe_differs: bool  # Stripe's amount or currency is not the ledger's
    stripe_status: Status
    payment_intents: str
    stored_at: str
    age: str  # "" when unknown
    at_risk: str
    deadline: str  # "" when the row's category has none (`urgency.deadline`)
    time_left: str  # "in 5.0 h", "3.0 h ago"; "" without a deadline


@dataclass(frozen=True)
class Section:
    """The rows of one category listed row by row, what to act on first at the top."""

    anchor: str
    title: str
    explanation: str
    totals: str
    at_risk: str
    deadline_heading: str  # the deadline column's heading; "" for a section without one
    rows: list[ExceptionRow]


@dataclass(frozen=True)
class Line:
    """One line of the money-at-risk table: an age bucket, a currency, its totals."""

    group: str
    currency: str
    count: int
    amount: str


@dataclass(frozen=True)
class CategoryLine:
    """One line of the totals table: a category in one currency."""

    title: str
    anchor: str  # the exception section to link to; "" for a category without one
    tone: Tone
    span: int  # the lines this category spans on its first line (rowspan); 0 on the others
    currency: str
    count: int
    amount: str
    at_risk: str


@dataclass(frozen=True)
class GroupLine:
    """One line of a breakdown (location, reader, day) in one currency."""

    group: str
    span: int  # as in CategoryLine
    currency: str
    count: int
    exceptions: int
    matched: str
    at_risk: str


@dataclass(frozen=True)
class Breakdowns:
    anchor: str
    title: str
    heading: str
    note: str
    lines: list[GroupLine]


@dataclass(frozen=True)
class Headline:
    """The state at a glance, at the top of the page."""

    exceptions: int
    exceptions_text: str  # "7 exception rows"
    exception_links: list[tuple[str, str, int]]  # (anchor, title, rows) per category present
    at_risk: list[str]  # one formatted amount per currency
    stored: str  # "3 payments, 12.50 USD": of the money at risk, what readers still store
    matched_text: str  # "2 payments matched"
    others: str  # e.g. "1 pending forward, 1 canceled"
    rows_text: str  # "12 rows"


_environment = Environment(
    loader=PackageLoader("projections.formats", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# The rows listed one by one: those that need action, and the payments still stored on
# readers (money at risk, no action yet), so that every unit of the money at risk is found.
LISTED: tuple[Category, ...] = (*EXCEPTIONS, Category.PENDING_FORWARD)

STORED_EXPLANATION = (
    "These payments are still stored on their reader, not forwarded to Stripe yet: their "
    "money is at risk until the reader forwards them (a reader lost, reset or kept offline "
    "too long loses them). Nothing to do yet but keep the readers online; each becomes stale, "
    "and needs action, at the time shown."
)


def render_html(report: Report) -> str:
    """The page: every row of `LISTED` (read in one pass over the rows), the other rows as
    totals (the CSV format lists every row)."""
    summary = report.summary()
    kept: list[Row] = [row for row in report.rows if row.category in LISTED]
    listed: dict[Category, list[Row]] = {category: [] for category in LISTED}
    for row in report.branded(kept):
        listed[row.category].append(row)
    sections = {
        category: _section(category, summary, _rows(report, rows))
        for category, rows in listed.items()
        if category.value in summary
    }
    stored = sections.pop(Category.PENDING_FORWARD, None)
    return _environment.get_template("report.html.j2").render(
        as_of=human_time(report.as_of),
        filters=sorted(report.filters.items()),
        settings=settings(report.thresholds),
        row_count=report.row_count(),
        headline=_headline(report, summary),
        sections=list(sections.values()),
        stored=stored,
        totals=_category_lines(summary),
        other_categories=[
            (category_label(category), EXPLANATIONS[category])
            for category in Category
            if category not in EXCEPTIONS
        ],
        at_risk_rules=[(category_label(category), rule) for category, rule in AT_RISK_RULES],
        no_risk=_and(
            [
                category_label(category)
                for category in CATEGORY_ORDER
                if category not in dict(AT_RISK_RULES)
            ]
        ),
        at_risk=_lines(by_age_bucket(report.at_risk_by_age())),
        at_risk_charts=[
            *at_risk_by_age(report.at_risk_by_age(), report.at_risk()),
            *at_risk_by_brand(row for rows in listed.values() for row in rows),
            *at_risk_by_group("Money at risk by location", report.by_location()),
        ],
        payouts=payout_lines(report),
        category_charts=category_charts(summary),
        tones=[ACTION, SETTLED, WAITING],
        breakdowns=[
            Breakdowns(
                "by-location",
                "By location",
                "Location",
                "Per location",
                _group_lines(report.by_location()),
            ),
            Breakdowns(
                "by-reader",
                "By reader",
                "Reader (device)",
                "Per reader",
                _group_lines(report.by_device()),
            ),
            Breakdowns(
                "by-day",
                "By day",
                "Day (UTC)",
                "Per day the sale was stored on a reader, else forwarded, else began (a sale "
                "canceled before it was stored, an orphan Stripe created), in UTC; "
                "(unknown) when no time is known",
                _group_lines(report.by_day()),
            ),
        ],
    )


def settings(thresholds: dict[str, str]) -> list[str]:
    """The thresholds the report was made with (`Report.thresholds`), one sentence each."""
    rest = dict(thresholds)
    said = []
    if "stale_after_hours" in rest:
        stale = duration(rest.pop("stale_after_hours"))
        said.append(f"A payment still stored on a reader is stale after {stale}.")
    windows = [f"{duration(rest.pop(name))} for {brand}" for name, brand in _brand_windows(rest)]
    if "capture_window_default_hours" in rest:
        others = "other card brands" if windows else "every card brand"
        windows.append(f"{duration(rest.pop('capture_window_default_hours'))} for {others}")
    if windows:
        said.append(f"After forwarding, an authorization must be captured within {_and(windows)}.")
    if "capture_warning_hours" in rest:
        warning = duration(rest.pop("capture_warning_hours"))
        said.append(f"A capture is overdue once {warning} or less of that window is left.")
    said.extend(
        f"{name.replace('_', ' ').capitalize()}: {value}." for name, value in sorted(rest.items())
    )
    return said


def _brand_windows(thresholds: dict[str, str]) -> list[tuple[str, str]]:
    """(name, brand) of each `capture_window_<brand>_hours` but the default, by name."""
    prefix, suffix = "capture_window_", "_hours"
    return [
        (name, name[len(prefix) : -len(suffix)].replace("_", " ").title())
        for name in sorted(thresholds)
        if name.startswith(prefix)
        and name.endswith(suffix)
        and name != "capture_window_default_hours"
    ]


def duration(hours: str) -> str:
    """`"24"` -> `24 hours`, `"114"` -> `4 days 18 hours (114 hours)`, `"1.5"` -> `1.5 hours`."""
    if not hours.isdigit():
        return f"{hours} hours"
    whole = int(hours)
    if whole < 48:
        return "1 hour" if whole == 1 else f"{whole} hours"
    days, rest = divmod(whole, 24)
    text = f"{days} days" + (f" {rest} hour{'s' if rest != 1 else ''}" if rest else "")
    return f"{text} ({whole} hours)"


def status(code: str | None, labels: dict[str, str]) -> Status:
    if not code:
        return Status("—", "")
    return Status(labels.get(code, code.replace("_", " ").capitalize()), code)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _headline(report: Report, summary: Breakdown) -> Headline:
    counts = {
        category: sum(totals.count for totals in summary.get(category.value, {}).values())
        for category in Category
    }
    others = [
        f"{counts[category]} {category_label(category).lower()}"
        for category in Category
        if category not in EXCEPTIONS and category != Category.MATCHED and counts[category]
    ]
    exceptions = sum(counts[category] for category in EXCEPTIONS)
    return Headline(
        exceptions=exceptions,
        exceptions_text=_count(exceptions, "exception row"),
        exception_links=[
            (category.value, category_label(category), counts[category])
            for category in EXCEPTIONS
            if counts[category]
        ],
        at_risk=[money(amount, currency) for currency, amount in report.at_risk().items()],
        stored=_stored(counts[Category.PENDING_FORWARD], summary),
        matched_text=f"{_count(counts[Category.MATCHED], 'payment')} matched",
        others=", ".join(others),
        rows_text=_count(report.row_count(), "row"),
    )


def _stored(count: int, summary: Breakdown) -> str:
    """The payments still stored on readers and their money at risk, or "" without any."""
    if not count:
        return ""
    by_currency = summary[Category.PENDING_FORWARD.value].items()
    amounts = [
        money(totals.at_risk, currency) for currency, totals in by_currency if totals.at_risk
    ]
    return ", ".join([_count(count, "payment"), *amounts])


def _section(category: Category, summary: Breakdown, rows: list[ExceptionRow]) -> Section:
    by_currency = summary[category.value]
    return Section(
        anchor=category.value,
        title=category_label(category),
        explanation=(
            STORED_EXPLANATION if category == Category.PENDING_FORWARD else EXPLANATIONS[category]
        ),
        deadline_heading=DEADLINES.get(category, ""),
        totals=", ".join(
            f"{money(totals.amount, currency)} in {_count(totals.count, 'row')}"
            for currency, totals in by_currency.items()
        ),
        at_risk=", ".join(
            money(totals.at_risk, currency)
            for currency, totals in by_currency.items()
            if totals.at_risk
        )
        or "nothing",
        rows=rows,
    )


def _rows(report: Report, rows: list[Row]) -> list[ExceptionRow]:
    """The rows of one section as the page shows them, what to act on first at the top."""
    return [_row(row, report) for row in save_first(rows, report.thresholds)]


def _row(row: Row, report: Report) -> ExceptionRow:
    due = deadline(row, report.thresholds)
    return ExceptionRow(
        offline_id=row.offline_id or "—",
        location=row.location_id or "—",
        device=row.device_id or "—",
        amount=money(row.amount, row.currency),
        ledger_status=status(row.ledger_status, LEDGER_STATUSES),
        stripe_amount=money(row.stripe_amount, row.stripe_currency),
        stripe_differs=(
            row.amount is not None
            and row.stripe_amount is not None
            and (row.amount, row.currency) != (row.stripe_amount, row.stripe_currency)
        ),
        stripe_status=status(row.stripe_status, STRIPE_STATUSES),
        payment_intents=", ".join(row.payment_intent_ids) or "—",
        stored_at=_began(row),
        age=age(row.age_seconds),
        at_risk=money(row.amount_at_risk, row.risk_currency) if row.amount_at_risk else "—",
        deadline=human_time(due) if due else "",
        time_left=time_left(due, report.as_of) if due else "",
    )


def _began(row: Row) -> str:
    """When the sale was stored on the reader or, for one never stored (canceled first, an
    orphan Stripe holds), when it was created: its age counts from then."""
    if row.stored_at is not None or row.began_at is None:
        return human_time(row.stored_at)
    return f"created {human_time(row.began_at)}"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _lines(breakdown: Breakdown) -> list[Line]:
    return [
        Line(group, currency_label(currency), totals.count, money(totals.amount, currency))
        for group, by_currency in breakdown.items()
        for currency, totals in by_currency.items()
    ]


def _category_lines(summary: Breakdown) -> list[CategoryLine]:
    lines = []
    for category in CATEGORY_ORDER:
        by_currency = summary.get(category.value, {})
        for index, (currency, totals) in enumerate(by_currency.items()):
            lines.append(
                CategoryLine(
                    title=category_label(category),
                    anchor=category.value if category in EXCEPTIONS else "",
                    tone=tone(category),
                    span=len(by_currency) if index == 0 else 0,
                    currency=currency_label(currency),
                    count=totals.count,
                    amount=money(totals.amount, currency),
                    at_risk=money(totals.at_risk, currency) if totals.at_risk else "—",
                )
            )
    return lines


def _group_lines(breakdown: Breakdown) -> list[GroupLine]:
    """Per group and currency: the rows of any category, those needing action, the amount
    matched and the amount at risk."""
    lines = []
    for group, by_currency in breakdown.items():
        for index, (currency, totals) in enumerate(by_currency.items()):
            lines.append(
                GroupLine(
                    group=group,
                    span=len(by_currency) if index == 0 else 0,
                    currency=currency_label(currency),
                    count=totals.count,
                    exceptions=totals.exceptions,
                    matched=money(totals.matched, currency) if totals.matched else "—",
                    at_risk=money(totals.at_risk, currency) if totals.at_risk else "—",
                )
            )
    return lines
