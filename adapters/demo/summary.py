"""The summary printed at the end of `offline-ledger demo`."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console
from rich.table import Table

from adapters.demo.merchant import AS_OF, DAY
from adapters.demo.runner import DemoSummary
from ledger.money import format_minor
from projections.report import Category, Report


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
        title=f"Reconciliation as of {AS_OF:%Y-%m-%d %H:%M} UTC ({report.row_count():,} rows)",
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
    refused = sum(o.newly_refused for o in summary.what_if)
    avoided = sum(o.declines_avoided for o in summary.what_if)
    out(
        f"What-if: with half the stored-amount limits, {refused:,} more sales would have been "
        f"refused (sent online) and {avoided:,} declines avoided",
        highlight=False,
    )
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
        f"  {files['what_if'].name}  the stored amount over time under half the limits",
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
