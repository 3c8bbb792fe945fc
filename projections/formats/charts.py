"""The bar charts of the HTML report: rows per category and money at risk by age, card brand
and location, each on its own scale.

A chart is data (labels, display values, bar lengths in whole per mille of the chart's width)
laid out by the template as HTML bars that shrink with the page, so that a phone shows the
same chart without scrolling. Money is charted per currency: amounts in two currencies do not
compare, so each currency gets its own chart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from projections.formats.values import category_label, currency_label, money
from projections.report import AGE_BUCKETS, EXCEPTIONS, Breakdown, Category, Row, Totals

BAR_MAX = 1000  # per mille: the longest bar of a chart spans its whole track
AT_RISK_COLOUR = "#d35400"  # the bars of money at risk


@dataclass(frozen=True)
class Tone:
    """How a category is coloured in charts and marked in tables."""

    name: str
    colour: str
    meaning: str


ACTION = Tone("action", "#c0392b", "needs action")
SETTLED = Tone("settled", "#2e7d32", "matched or authorized in time")
WAITING = Tone("waiting", "#8a8a8a", "no action: waiting to be forwarded, or canceled")


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
class Bar:
    label: str
    value: str
    length: int  # per mille of the track, at most BAR_MAX
    colour: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]


def category_charts(summary: Breakdown) -> list[Chart]:
    """Rows per category in two charts, each on its own scale: the exceptions (a few rows
    that would be slivers beside thousands matched), then every other category."""
    counts = {
        category: sum(totals.count for totals in by_currency.values())
        for category in Category
        if (by_currency := summary.get(category.value))
    }
    exceptions = [(category, counts[category]) for category in EXCEPTIONS if category in counts]
    others = [(category, count) for category, count in counts.items() if category not in EXCEPTIONS]
    charts = [
        _chart(title, [(category_label(c), str(n), n, tone(c).colour) for c, n in shown])
        for title, shown in (
            ("Rows needing action, per category", exceptions),
            ("Other rows, per category", others),
        )
        if shown
    ]
    return charts


def at_risk_by_age(by_age: Breakdown, currencies: Iterable[str]) -> list[Chart]:
    """Money at risk per age bucket, youngest first, one chart per currency."""
    return [
        _money_chart(
            f"Money at risk by age, {currency_label(currency)}",
            [
                (label, by_age.get(label, {}).get(currency, Totals()).amount)
                for label, _ in AGE_BUCKETS
            ],
            currency,
            keep_zeros=True,
        )
        for currency in currencies
    ]


def at_risk_by_brand(rows: Iterable[Row]) -> list[Chart]:
    """Money at risk per card brand, largest first, one chart per currency (from the rows
    with money at risk, their brand looked up: `Report.branded`)."""
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if row.amount_at_risk:
            brand = (row.card_brand or "unknown").replace("_", " ").title()
            sums[row.risk_currency or ""][brand] += row.amount_at_risk
    return _per_currency("Money at risk by card brand", sums)


def at_risk_by_group(title: str, breakdown: Breakdown) -> list[Chart]:
    """Money at risk per group of a breakdown (a location...), largest first, per currency."""
    sums: dict[str, dict[str, int]] = defaultdict(dict)
    for group, by_currency in breakdown.items():
        for currency, totals in by_currency.items():
            if totals.at_risk:
                sums[currency][group] = totals.at_risk
    return _per_currency(title, sums)


def _per_currency(title: str, sums: Mapping[str, Mapping[str, int]]) -> list[Chart]:
    return [
        _money_chart(
            f"{title}, {currency_label(currency)}",
            sorted(sums[currency].items(), key=lambda item: (-item[1], item[0])),
            currency,
        )
        for currency in sorted(sums)
    ]


def _money_chart(
    title: str, amounts: list[tuple[str, int]], currency: str, keep_zeros: bool = False
) -> Chart:
    return _chart(
        title,
        [
            (label, money(amount, currency) if amount else "—", amount, AT_RISK_COLOUR)
            for label, amount in amounts
            if amount or keep_zeros
        ],
    )


def _chart(title: str, bars: list[tuple[str, str, int, str]]) -> Chart:
    largest = max((value for _, _, value, _ in bars), default=0)
    return Chart(
        title,
        [
            Bar(label, shown, _length(value, largest), colour)
            for label, shown, value, colour in bars
        ],
    )


def _length(value: int, largest: int) -> int:
    """Per mille of the track, proportional to `largest`; a non-zero value always shows."""
    if value <= 0 or largest <= 0:
        return 0
    return max(5, value * BAR_MAX // largest)
