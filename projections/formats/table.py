"""The report as a plain-text summary for the terminal (no colours, no ANSI codes).

It fits the width it is given (the terminal's; `WIDTH` for a file) and never cuts a number
or an id: a table too wide for it is laid out again with fewer, stacked columns (an exception
row's ids and age under one another in one cell, a payout's totals as lines)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from projections.formats.urgency import DEADLINES, deadline, save_first
from projections.formats.values import (
    category_label,
    currency_label,
    human_time,
    money,
    payout_lines,
    time_left,
)
from projections.report import EXCEPTIONS, Category, Report, Row

WIDTH = 120
"""The width of the table written to a file (`report --out`, the demo's report.txt): fixed, so
a file reads the same wherever it was written."""
EXCEPTION_ROWS_MAX = 50


def render_table(report: Report, width: int = WIDTH) -> str:
    """The summary laid out to fit `width` columns."""
    console = Console(file=io.StringIO(), record=True, width=width, color_system=None)
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
        console.print(_fitting(console, _payouts(report), _payouts_stacked(report)))
    _print_exceptions(console, report)
    return _plain(console)


def _fitting(console: Console, table: Table, stacked: Table) -> Table:
    """`table` when it fits the console's width with every cell whole, else `stacked`."""
    needed = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    return table if needed <= console.width else stacked


_UNBOUNDED = 10_000


_TOTALS = ("gross", "fees", "refunds", "disputes", "net")


def _payouts(report: Report) -> Table:
    table = Table(title="Payouts", title_justify="left")
    table.add_column("Payout", no_wrap=True)
    for heading in ("Date", "Currency", "Payments"):
        table.add_column(heading, no_wrap=True)
    for heading in _TOTALS:
        table.add_column(heading.capitalize(), justify="right", no_wrap=True)
    for line in payout_lines(report):
        table.add_row(*(Text(value) for value in line.values()))
    return table


def _payouts_stacked(report: Report) -> Table:
    """A payout a row: its id, date and count in one cell, its totals as lines in another."""
    table = Table(title="Payouts", title_justify="left")
    table.add_column("Payout", no_wrap=True)
    table.add_column("Totals", justify="right", no_wrap=True)
    for line in payout_lines(report):
        count = line["payments"]
        payout = f"{line['payout_id']}\n{line['date']}, {line['currency']}, "
        payout += f"{count} payment{'' if count == '1' else 's'}"
        amounts = max(len(line[name]) for name in _TOTALS)
        totals = "\n".join(f"{name} {line[name]:>{amounts}}" for name in _TOTALS)
        table.add_row(Text(payout), Text(totals))
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
    """The exception rows by category, what can still be saved first (`urgency`),
    `EXCEPTION_ROWS_MAX` in all: the most urgent of each kept from one pass over the rows
    (their card brands, which set a capture's deadline, looked up once it is over)."""
    exceptions: dict[Category, list[Row]] = {category: [] for category in EXCEPTIONS}
    for row in report.rows:
        kept = exceptions.get(row.category)
        if kept is not None:
            kept.append(row)
            if len(kept) == 2 * EXCEPTION_ROWS_MAX:
                kept[:] = save_first(kept, report.thresholds)[:EXCEPTION_ROWS_MAX]
    for category, kept in exceptions.items():
        exceptions[category] = save_first(report.branded(kept), report.thresholds)
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
            shown = rows[:room]
            deadlines = _deadlines(report, shown)
            console.print(
                _fitting(
                    console,
                    _exception_rows(title, shown, deadlines),
                    _exception_rows_stacked(title, shown, deadlines),
                )
            )
            room -= min(room, len(rows))
    hidden = total - (EXCEPTION_ROWS_MAX - room)
    if hidden:
        console.print(
            Text(f"… and {hidden} more exception rows (the CSV and JSON formats list every row).")
        )


def _deadlines(report: Report, rows: list[Row]) -> list[str]:
    """Each row's deadline with the time left ("2026-11-22 04:00 UTC, in 10.0 h"), or "" for
    a row without one; an empty list when none of them has one."""
    said = []
    for row in rows:
        due = deadline(row, report.thresholds)
        said.append(f"{human_time(due)}, {time_left(due, report.as_of)}" if due else "")
    return said if any(said) else []


def _exception_rows(title: str, rows: list[Row], deadlines: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("Offline id", "Location", "PaymentIntents"):
        table.add_column(name, no_wrap=True)
    for name in ("Amount", "Stripe amount", "Age (h)", "At risk"):
        table.add_column(name, justify="right", no_wrap=True)
    if deadlines:
        table.add_column(DEADLINES[rows[0].category], no_wrap=True)
    for index, row in enumerate(rows):
        cells = [
            row.offline_id or "—",
            row.location_id or "—",
            "\n".join(row.payment_intent_ids) or "—",
            money(row.amount, row.currency),
            money(row.stripe_amount, row.stripe_currency),
            row.age_hours or "—",
            _at_risk_of(row),
        ]
        if deadlines:
            cells.append(deadlines[index].replace(", ", "\n") or "—")
        table.add_row(*(Text(cell) for cell in cells))
    return table


def _exception_rows_stacked(title: str, rows: list[Row], deadlines: list[str]) -> Table:
    """The same rows in three columns: the payment's ids, age and deadline under one
    another, its amount above Stripe's, and what is at risk."""
    table = Table(title=title, title_justify="left")
    table.add_column("Payment (location, PaymentIntents, age)", no_wrap=True)
    table.add_column("Amount (Stripe's)", justify="right", no_wrap=True)
    table.add_column("At risk", justify="right", no_wrap=True)
    for index, row in enumerate(rows):
        payment = [row.offline_id or "—", row.location_id or "—", *row.payment_intent_ids]
        if row.age_hours:
            payment.append(f"{row.age_hours} h old")
        if deadlines and deadlines[index]:
            payment.append(f"{DEADLINES[row.category].lower()} {deadlines[index]}")
        amounts = f"{money(row.amount, row.currency)}\n"
        amounts += f"({money(row.stripe_amount, row.stripe_currency)})"
        table.add_row(Text("\n".join(payment)), Text(amounts), Text(_at_risk_of(row)))
    return table


def _at_risk_of(row: Row) -> str:
    return money(row.amount_at_risk, row.risk_currency) if row.amount_at_risk else "—"
