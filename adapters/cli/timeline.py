"""`history` for people: one payment's events as a timeline, each event's details as short
`name: value` lines (amounts with their currency, breaches one a line), not Python reprs.
`--json` gives the entries as they are, for machines."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from ledger.money import format_minor
from ledger.views import HistoryEntry

# Integer fields that are money, in the currency named beside them.
_MONEY = {
    "amount": "currency",
    "gross": "currency",
    "fee": "currency",
    "net": "currency",
    "refund_amount": "currency",
    "amount_received": "currency",
    "amount_capturable": "currency",
    "amount_refunded": "currency",
    "customer_facing_amount": "customer_facing_currency",
}
# What every row of this payment repeats, or what says nothing to a reader.
_LEFT_OUT = {"offline_id", "source", "kind", "reported_late", "implied"}


WIDE = 120  # from this many columns on, when each event was recorded is shown too


def timeline(offline_id: str, entries: list[HistoryEntry], width: int) -> Table:
    """The timeline for a terminal `width` columns wide: times break between date and time,
    details fold, and a narrow terminal leaves out the recording times (`--json` has them)."""
    wide = width >= WIDE
    table = Table(title=f"History of payment {offline_id}", title_justify="left")
    table.add_column("occurred", max_width=None if wide else len("14:07:29-05:00"))
    table.add_column("from", no_wrap=True)
    table.add_column("what", overflow="fold", max_width=None if wide else len("transaction"))
    table.add_column("details", overflow="fold", ratio=1)
    if wide:
        table.add_column("recorded")
    for entry in entries:
        data = entry.model_dump(mode="json")["data"]
        data = data.get("observation", data)  # Stripe's word, flattened
        what = _words(entry.event)
        if data.get("implied"):
            what += "\n(implied by a later step)"
        if data.get("reported_late"):
            what += "\n(reported late)"
        # Stripe's observations happened when Stripe created the object they report.
        occurred = entry.occurred_at or (
            datetime.fromisoformat(data["created_at"]) if data.get("created_at") else None
        )
        cells = [
            _when(occurred) if occurred else "—",
            "Stripe" if entry.source == "stripe" else "ledger",
            Text(what),
            Text("\n".join(_details(data))),
        ]
        table.add_row(*cells, *([_when(entry.recorded_at)] if wide else []))
    return table


def _words(event: str) -> str:
    """`PaymentMethodCollected` -> `payment method collected`."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", event).lower()


def _when(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def _details(data: dict[str, Any]) -> list[str]:
    """`name: value` lines; a currency is said with its amounts rather than on its own."""
    said_with_amounts = {_MONEY[key] for key in data if key in _MONEY and key != "currency"}
    said_with_amounts |= {"currency"} if any(_MONEY.get(k) == "currency" for k in data) else set()
    lines = []
    for key, value in data.items():
        if key in _LEFT_OUT or key in said_with_amounts or value in (None, False, "", [], {}):
            continue
        if key == "breaches":
            lines += [f"broke {b['code']}: {b['message']}" for b in value]
            continue
        lines.append(f"{key.replace('_', ' ')}: {_value(key, value, data)}")
    return lines


def _value(key: str, value: Any, data: dict[str, Any]) -> str:
    currency = data.get(_MONEY.get(key, ""))
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(currency, str):
        return format_minor(value, currency)
    if isinstance(value, dict):
        return ", ".join(
            f"{k.replace('_', ' ')} {_value(k, v, value)}"
            for k, v in value.items()
            if v not in (None, False, "", [], {})
        )
    if isinstance(value, list):
        return ", ".join(_value(key, item, data) for item in value)
    return "yes" if value is True else str(value)
