"""The report as JSON: the totals of `Report` and every row with the fields of `COLUMNS`.

The document is written as `json.dumps(document, indent=2, ensure_ascii=False)` would write
it, but piecewise: the totals first, then the rows one by one as they are read, so a report of
a million rows never exists as one string or one list.
"""

from __future__ import annotations

import io
import json
from typing import Any, TextIO

import orjson

from projections.formats.values import by_age_bucket, payout_fields, rfc3339, row_fields
from projections.report import Breakdown, Report, Row


def write_json(report: Report, out: TextIO) -> None:
    head: dict[str, Any] = {
        "as_of": rfc3339(report.as_of),
        "filters": dict(sorted(report.filters.items())),
        "thresholds": {name: number(hours) for name, hours in sorted(report.thresholds.items())},
        "summary": _totals(report.summary()),
        "at_risk": report.at_risk(),
        "stored_beyond_policy": report.stored_beyond_policy(),
        "at_risk_by_age": {
            label: {currency: totals.amount for currency, totals in by_currency.items()}
            for label, by_currency in by_age_bucket(report.at_risk_by_age()).items()
        },
        "by_location": _groups(report.by_location()),
        "by_device": _groups(report.by_device()),
        "by_day": _groups(report.by_day()),
        "payouts": payout_fields(report),
    }
    text = json.dumps(head, indent=2, ensure_ascii=False)
    out.write(text.removesuffix("\n}") + ',\n  "rows": [')
    separator = "\n    "
    for row in report.rows:
        fields = row_fields(row) | {"age_hours": age_hours(row), "flagged": row.flagged}
        out.write(separator)
        out.write(orjson.dumps(fields, option=orjson.OPT_INDENT_2).decode().replace("\n", "\n    "))
        separator = ",\n    "
    out.write("]\n}\n" if separator == "\n    " else "\n  ]\n}\n")


def render_json(report: Report) -> str:
    out = io.StringIO()
    write_json(report, out)
    return out.getvalue()


def number(hours: str) -> int | float:
    """A threshold's hours as a JSON number: `"24"` -> 24, `"1.5"` -> 1.5 (hours are no
    money: a fraction of one is a float)."""
    return int(hours) if hours.isdigit() else float(hours)


def age_hours(row: Row) -> float | None:
    """`Row.age_hours` as a number with one decimal (26.5)."""
    return None if row.age_hours is None else float(row.age_hours)


def _totals(breakdown: Breakdown) -> dict[str, dict[str, dict[str, int]]]:
    return {
        group: {
            currency: {"count": totals.count, "amount": totals.amount}
            for currency, totals in by_currency.items()
        }
        for group, by_currency in breakdown.items()
    }


def _groups(breakdown: Breakdown) -> dict[str, dict[str, dict[str, int]]]:
    """A breakdown (location, reader, day) with what the HTML page shows of each group: its
    rows and their amount, the rows needing action, the amount matched and the amount at
    risk, per currency."""
    return {
        group: {
            currency: {
                "count": totals.count,
                "amount": totals.amount,
                "exceptions": totals.exceptions,
                "matched": totals.matched,
                "at_risk": totals.at_risk,
            }
            for currency, totals in by_currency.items()
        }
        for group, by_currency in breakdown.items()
    }
