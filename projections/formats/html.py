"""The report as one self-contained HTML page for finance (inline CSS and SVG, nothing fetched).

Python prepares every value as display text and every bar length in whole pixels; the template
only lays them out, with autoescaping on.
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
    "threshold (24 hours by default): bring the reader online so it forwards them before "
    "they expire.",
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
}


@dataclass(frozen=True)
class Line:
    """One line of a totals table: a group (category, location...), a currency, its totals."""

    group: str
    currency: str
    count: int
    amount: str


@dataclass(frozen=True)
class Bar:
    label: str
    value: str
    width: int  # pixels, at most BAR_WIDTH_MAX


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]


@dataclass(frozen=True)
class Section:
    """The rows of one exception category."""

    anchor: str
    title: str
    explanation: str
    totals: str
    rows: list[dict[str, str]]


_environment = Environment(
    loader=PackageLoader("projections.formats", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(report: Report) -> str:
    summary = report.summary()
    return _environment.get_template("report.html.j2").render(
        as_of=human_time(report.as_of),
        filters=sorted(report.filters.items()),
        row_count=len(report.rows),
        sections=[_section(report, category, summary) for category in EXCEPTIONS
                  if category.value in summary],
        totals=_lines({category_label(category): summary[category.value]
                       for category in Category if category.value in summary}),
        other_categories=[(category_label(category), EXPLANATIONS[category])
                          for category in Category if category not in EXCEPTIONS],
        at_risk=_lines(by_age_bucket(report.at_risk_by_age())),
        at_risk_charts=_at_risk_charts(report),
        category_chart=_category_chart(summary),
        bar_width_max=BAR_WIDTH_MAX,
        breakdowns=[("By location", "Location", _lines(report.by_location())),
                    ("By reader", "Reader (device)", _lines(report.by_device())),
                    ("By day", "Day (UTC)", _lines(report.by_day()))],
    )


def _section(report: Report, category: Category, summary: Breakdown) -> Section:
    return Section(
        anchor=category.value,
        title=category_label(category),
        explanation=EXPLANATIONS[category],
        totals=", ".join(f"{money(totals.amount, currency)} in {_count(totals.count, 'row')}"
                         for currency, totals in summary[category.value].items()),
        rows=[_row(row) for row in report.rows if row.category == category],
    )


def _row(row: Row) -> dict[str, str]:
    return {
        "offline_id": row.offline_id or "—",
        "location": row.location_id or "—",
        "device": row.device_id or "—",
        "amount": money(row.amount, row.currency),
        "ledger_status": row.ledger_status or "—",
        "stripe_amount": money(row.stripe_amount, row.stripe_currency),
        "stripe_status": row.stripe_status or "—",
        "payment_intents": ", ".join(row.payment_intent_ids) or "—",
        "stored_at": human_time(row.stored_at),
        "age_hours": row.age_hours or "—",
        "at_risk": money(row.amount_at_risk, row.risk_currency) if row.amount_at_risk else "—",
    }


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _lines(breakdown: Breakdown) -> list[Line]:
    return [Line(group, currency_label(currency), totals.count, money(totals.amount, currency))
            for group, by_currency in breakdown.items()
            for currency, totals in by_currency.items()]


def _at_risk_charts(report: Report) -> list[Chart]:
    """One chart per currency: amounts in two currencies do not compare."""
    by_age = report.at_risk_by_age()
    charts = []
    for currency in report.at_risk():
        amounts = [(label, by_age.get(label, {}).get(currency, Totals()).amount)
                   for label, _ in AGE_BUCKETS]
        largest = max(amount for _, amount in amounts)
        charts.append(Chart(
            f"Money at risk by age, {currency_label(currency)}",
            [Bar(label, money(amount, currency), _bar_width(amount, largest))
             for label, amount in amounts],
        ))
    return charts


def _category_chart(summary: Breakdown) -> Chart:
    counts = [(category, sum(totals.count for totals in summary[category.value].values()))
              for category in Category if category.value in summary]
    largest = max((count for _, count in counts), default=0)
    return Chart("Rows per category", [
        Bar(category_label(category), str(count), _bar_width(count, largest))
        for category, count in counts
    ])


def _bar_width(value: int, largest: int) -> int:
    """Whole pixels, proportional to `largest`; a non-zero value is always visible."""
    if value <= 0 or largest <= 0:
        return 0
    return max(1, value * BAR_WIDTH_MAX // largest)
