"""The what-if replay as one self-contained HTML page: per location and currency, the stored
amount over time under the limits in force and under the proposed ones (inline SVG, nothing
fetched), with the figures of the table beside it.

Python computes every coordinate (whole pixels) and every display text; the template only lays
them out, with autoescaping on, so no id or code from the ledger can inject markup.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

from ledger.money import format_minor
from ledger.what_if import Outcome, moment_of

WIDTH, HEIGHT = 720, 180  # the chart's drawing area, in pixels

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>What-if: proposed limits</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
svg { border: 1px solid #ccc; background: #fafafa; }
.recorded { stroke: #555; fill: none; stroke-width: 1.5; }
.proposed { stroke: #c33; fill: none; stroke-width: 1.5; }
td, th { padding: 2px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
</style></head><body>
<h1>What-if: the offline sale attempts replayed against proposed limits</h1>
<p>Grey: stored amount as it happened. Red: under the proposed limits (a refused sale goes
online and stores nothing; a refused reservation they allow is stored until its device next
forwarded).</p>
{% for chart in charts %}
<h2>{{ chart.title }}</h2>
<svg width="{{ width }}" height="{{ height }}" role="img" aria-label="{{ chart.title }}">
<path class="recorded" d="{{ chart.recorded }}"/><path class="proposed" d="{{ chart.proposed }}"/>
</svg>
<p>{{ chart.span }}; the top of the chart is {{ chart.top }}.</p>
<table><tr><th></th><th>recorded</th><th>proposed</th></tr>
{% for name, recorded, proposed in chart.rows %}
<tr><td>{{ name }}</td><td>{{ recorded }}</td><td>{{ proposed }}</td></tr>
{% endfor %}</table>
{% endfor %}
</body></html>
"""


def page(outcomes: list[Outcome]) -> str:
    template = Environment(autoescape=True).from_string(_TEMPLATE)
    return template.render(
        charts=[_chart(outcome) for outcome in outcomes], width=WIDTH, height=HEIGHT
    )


def _chart(outcome: Outcome) -> dict[str, Any]:
    currency = outcome.currency
    points = outcome.series["recorded"] + outcome.series["proposed"]
    moments = [moment for moment, _ in points]
    start, end = (min(moments), max(moments)) if moments else (None, None)
    top = max([amount for _, amount in points] + [1])

    def money(amount: int) -> str:
        return format_minor(amount, currency)

    return {
        "title": f"{outcome.location_id} · {currency.upper()}",
        "recorded": _path(outcome.series["recorded"], start, end, top),
        "proposed": _path(outcome.series["proposed"], start, end, top),
        "span": (
            f"from {moment_of(start).isoformat()} to {moment_of(end).isoformat()}"
            if start is not None and end is not None
            else "no sales"
        ),
        "top": money(top),
        "rows": [
            (
                "sale attempts (refused reservations)",
                f"{outcome.sales} ({outcome.reservations_refused})",
                "",
            ),
            ("refused", outcome.refused_recorded, outcome.refused_proposed),
            (
                "peak stored amount",
                money(outcome.peak_amount_recorded),
                money(outcome.peak_amount_proposed),
            ),
            ("peak stored count", outcome.peak_count_recorded, outcome.peak_count_proposed),
            ("money at risk", money(outcome.at_risk_recorded), money(outcome.at_risk_proposed)),
            ("money at risk, outcome unknown", "", money(outcome.at_risk_unknown_proposed)),
            ("declines avoided / added", outcome.declines_avoided, outcome.declines_added),
        ],
    }


def _path(series: list[tuple[int, int]], start: int | None, end: int | None, top: int) -> str:
    """A step line: the amount holds until the next store or release (moments in
    microseconds)."""
    if not series or start is None or end is None:
        return ""
    span = max(end - start, 1_000_000)
    steps = [f"M 0 {HEIGHT}"]
    for moment, amount in series:
        x = round((moment - start) / span * WIDTH)
        y = HEIGHT - amount * HEIGHT // top
        steps.append(f"H {x} V {y}")
    steps.append(f"H {WIDTH}")
    return " ".join(steps)
