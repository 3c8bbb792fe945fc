"""The report as one self-contained HTML page for finance (inline CSS and SVG, nothing fetched).

Python prepares every value as display text and every bar length in whole pixels; the template
only lays them out, with autoescaping on. Money is summed in minor units (integers) per
currency and formatted only at the end; amounts in two currencies are never added.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined

from projections.formats.values import (
    by_age_bucket,
    category_label,
    currency_label,
    human_time,
    money,
    payout_lines,
)
from projections.report import AGE_BUCKETS, EXCEPTIONS, Breakdown, Category, Report, Row, Totals

BAR_WIDTH_MAX = 360  # pixels of the longest bar of a chart

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
class Tone:
    """How a category is coloured in charts and marked in tables."""

    name: str
    colour: str
    meaning: str


ACTION = Tone("action", "#c0392b", "needs action")
SETTLED = Tone("settled", "#2e7d32", "matched or authorized in time")
WAITING = Tone("waiting", "#8a8a8a", "no action: waiting to be forwarded, or canceled")
AT_RISK_COLOUR = "#d35400"  # the bars of money at risk


def tone(category: Category) -> Tone:
    if category in EXCEPTIONS:
        return ACTION
    if category in (
        Category.MATCHED,
        Category.AWAITING_CAPTURE,
        Category.REFUNDED,
        Category.PARTIALLY_REFUNDED,
        Category.DISPUTE_WON,
    ):
        return SETTLED
    return WAITING


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


@dataclass(frozen=True)
class Section:
    """The rows of one exception category."""

    anchor: str
    title: str
    explanation: str
    totals: str
    at_risk: str
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
class Bar:
    label: str
    value: str
    width: int  # pixels, at most BAR_WIDTH_MAX
    colour: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]


@dataclass(frozen=True)
class Headline:
    """The state at a glance, at the top of the page."""

    exceptions: int
    exceptions_text: str  # "7 exception rows"
    exception_links: list[tuple[str, str, int]]  # (anchor, title, rows) per category present
    at_risk: list[str]  # one formatted amount per currency
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


def render_html(report: Report) -> str:
    """The page: every exception row (read in one pass over the rows), the other rows as
    totals (the CSV format lists every row)."""
    summary = report.summary()
    exceptions: dict[Category, list[ExceptionRow]] = {category: [] for category in EXCEPTIONS}
    for row in report.rows:
        if row.category in exceptions:
            exceptions[row.category].append(_row(row))
    return _environment.get_template("report.html.j2").render(
        as_of=human_time(report.as_of),
        filters=sorted(report.filters.items()),
        settings=settings(report.thresholds),
        row_count=report.row_count(),
        headline=_headline(report, summary),
        sections=[
            _section(category, summary, exceptions[category])
            for category in EXCEPTIONS
            if category.value in summary
        ],
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
        at_risk_charts=_at_risk_charts(report),
        payouts=payout_lines(report),
        category_chart=_category_chart(summary),
        tones=[ACTION, SETTLED, WAITING],
        bar_width_max=BAR_WIDTH_MAX,
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
                "Per day the sale was stored on a reader (else forwarded), in UTC",
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


def age(age_seconds: int | None) -> str:
    """Hours with one decimal (`26.5 h`) under 48 hours, days with one decimal (`6.0 days`)
    from 48 hours on; rounded half up, in integers."""
    if age_seconds is None:
        return ""
    if age_seconds >= 48 * 3600:
        tenths = (age_seconds * 10 + 43_200) // 86_400
        return f"{tenths // 10}.{tenths % 10} days"
    tenths = (age_seconds * 10 + 1800) // 3600
    return f"{tenths // 10}.{tenths % 10} h"


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
        matched_text=f"{_count(counts[Category.MATCHED], 'payment')} matched",
        others=", ".join(others),
        rows_text=_count(report.row_count(), "row"),
    )


def _section(category: Category, summary: Breakdown, rows: list[ExceptionRow]) -> Section:
    by_currency = summary[category.value]
    return Section(
        anchor=category.value,
        title=category_label(category),
        explanation=EXPLANATIONS[category],
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


def _row(row: Row) -> ExceptionRow:
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
        stored_at=human_time(row.stored_at),
        age=age(row.age_seconds),
        at_risk=money(row.amount_at_risk, row.risk_currency) if row.amount_at_risk else "—",
    )


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


def _at_risk_charts(report: Report) -> list[Chart]:
    """One chart per currency: amounts in two currencies do not compare."""
    by_age = report.at_risk_by_age()
    charts = []
    for currency in report.at_risk():
        amounts = [
            (label, by_age.get(label, {}).get(currency, Totals()).amount)
            for label, _ in AGE_BUCKETS
        ]
        largest = max(amount for _, amount in amounts)
        charts.append(
            Chart(
                f"Money at risk by age, {currency_label(currency)}",
                [
                    Bar(
                        label,
                        money(amount, currency) if amount else "—",
                        _bar_width(amount, largest),
                        AT_RISK_COLOUR,
                    )
                    for label, amount in amounts
                ],
            )
        )
    return charts


def _category_chart(summary: Breakdown) -> Chart:
    counts = [
        (category, sum(totals.count for totals in summary[category.value].values()))
        for category in CATEGORY_ORDER
        if category.value in summary
    ]
    largest = max((count for _, count in counts), default=0)
    return Chart(
        "Rows per category",
        [
            Bar(
                category_label(category),
                str(count),
                _bar_width(count, largest),
                tone(category).colour,
            )
            for category, count in counts
        ],
    )


def _bar_width(value: int, largest: int) -> int:
    """Whole pixels, proportional to `largest`; a non-zero value is always visible."""
    if value <= 0 or largest <= 0:
        return 0
    return max(1, value * BAR_WIDTH_MAX // largest)
