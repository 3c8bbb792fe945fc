"""The report as a plain-text summary for the terminal (no colours, no ANSI codes)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from projections.formats.values import (
    category_label,
    currency_label,
    human_time,
    money,
    payout_lines,
)
from projections.report import EXCEPTIONS, Category, Report, Row

WIDTH = 120
EXCEPTION_ROWS_MAX = 50


def render_table(report: Report) -> str:
    console = Console(file=io.StringIO(), record=True, width=WIDTH, color_system=None)
    console.print(Text(f"Reconciliation report as of {human_time(report.as_of)}"))
    if report.filters:
        given = ", ".join(f"{name} {value}" for name, value in sorted(report.filters.items()))
        console.print(Text(f"Filters: {given}"))
    if not report.row_count():
        console.print(Text("No payments match: nothing to reconcile."))
        return _plain(console)
    console.print(_summary(report))
    console.print(_at_risk(report))
    beyond = report.stored_beyond_policy()
    if beyond:
        shown = ", ".join(money(amount, currency) for currency, amount in beyond.items())
        flagged = report.flagged()
        console.print(
            Text(f"Stored beyond policy: {shown} ({flagged} flagged payments; see `breaches`)")
        )
    if report.payouts():
        console.print(_payouts(report))
    _print_exceptions(console, report)
    return _plain(console)


def _payouts(report: Report) -> Table:
    table = Table(title="Payouts", title_justify="left")
    table.add_column("Payout", no_wrap=True)
    for heading in ("Date", "Currency", "Payments"):
        table.add_column(heading)
    for heading in ("Gross", "Fees", "Refunds", "Disputes", "Net"):
        table.add_column(heading, justify="right", no_wrap=True)
    for line in payout_lines(report):
        table.add_row(*(Text(value) for value in line.values()))
    return table


def _plain(console: Console) -> str:
    """The recorded text without the padding rich puts after titles."""
    return "".join(line.rstrip() + "\n" for line in console.export_text().splitlines())


def _summary(report: Report) -> Table:
    table = Table(title="Payments by category", title_justify="left")
    table.add_column("Category")
    table.add_column("Currency")
    table.add_column("Count", justify="right")
    table.add_column("Amount", justify="right", no_wrap=True)
    summary = report.summary()
    for category in Category:
        for currency, totals in summary.get(category.value, {}).items():
            table.add_row(
                Text(category_label(category)),
                Text(currency_label(currency)),
                Text(str(totals.count)),
                Text(money(totals.amount, currency)),
            )
    return table


def _at_risk(report: Report) -> Table | Text:
    at_risk = report.at_risk()
    if not at_risk:
        return Text("No money at risk.")
    table = Table(title="Money at risk", title_justify="left")
    table.add_column("Currency")
    table.add_column("Amount", justify="right", no_wrap=True)
    for currency, amount in at_risk.items():
        table.add_row(Text(currency_label(currency)), Text(money(amount, currency)))
    return table


def _print_exceptions(console: Console, report: Report) -> None:
    """The exception rows by category, most urgent first, `EXCEPTION_ROWS_MAX` in all (at
    most that many of each kept from one pass over the rows)."""
    exceptions: dict[Category, list[Row]] = {category: [] for category in EXCEPTIONS}
    for row in report.rows:
        kept = exceptions.get(row.category)
        if kept is not None and len(kept) < EXCEPTION_ROWS_MAX:
            kept.append(row)
    summary = report.summary()
    counts = {
        category: sum(totals.count for totals in summary.get(category.value, {}).values())
        for category in EXCEPTIONS
    }
    total = sum(counts.values())
    if total == 0:
        console.print(Text("No exceptions: nothing needs action."))
        return
    room = EXCEPTION_ROWS_MAX
    for category, rows in exceptions.items():
        if rows and room:
            title = f"{category_label(category)} ({counts[category]})"
            console.print(_exception_rows(title, rows[:room]))
            room -= min(room, len(rows))
    hidden = total - (EXCEPTION_ROWS_MAX - room)
    if hidden:
        console.print(
            Text(f"… and {hidden} more exception rows (the CSV and JSON formats list every row).")
        )


def _exception_rows(title: str, rows: list[Row]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Offline id", no_wrap=True)
    table.add_column("Location", overflow="fold")
    table.add_column("PaymentIntents", overflow="fold", min_width=len("PaymentIntents"))
    for name in ("Amount", "Stripe amount", "Age (h)", "At risk"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    row.offline_id or "—",
                    row.location_id or "—",
                    ", ".join(row.payment_intent_ids) or "—",
                    money(row.amount, row.currency),
                    money(row.stripe_amount, row.stripe_currency),
                    row.age_hours or "—",
                    money(row.amount_at_risk, row.risk_currency) if row.amount_at_risk else "—",
                )
            )
        )
    return table
