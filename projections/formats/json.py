"""The report as JSON: the totals of `Report` and every row with the fields of `COLUMNS`."""

from __future__ import annotations

import json
from typing import Any

from projections.formats.values import by_age_bucket, payout_fields, rfc3339, row_fields
from projections.report import Breakdown, Report


def render_json(report: Report) -> str:
    document: dict[str, Any] = {
        "as_of": rfc3339(report.as_of),
        "filters": dict(sorted(report.filters.items())),
        "thresholds": dict(sorted(report.thresholds.items())),
        "summary": _totals(report.summary()),
        "at_risk": report.at_risk(),
        "stored_beyond_policy": report.stored_beyond_policy(),
        "at_risk_by_age": {
            label: {currency: totals.amount for currency, totals in by_currency.items()}
            for label, by_currency in by_age_bucket(report.at_risk_by_age()).items()
        },
        "by_location": _totals(report.by_location()),
        "by_device": _totals(report.by_device()),
        "by_day": _totals(report.by_day()),
        "payouts": payout_fields(report),
        "rows": [row_fields(row) | {"flagged": row.flagged} for row in report.rows],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _totals(breakdown: Breakdown) -> dict[str, dict[str, dict[str, int]]]:
    return {
        group: {
            currency: {"count": totals.count, "amount": totals.amount}
            for currency, totals in by_currency.items()
        }
        for group, by_currency in breakdown.items()
    }
