"""How report values are written: exact fields for machines (CSV, JSON), text for people."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.money import format_minor, is_currency
from projections.report import AGE_BUCKETS, COLUMNS, Breakdown, Category, Report, Row

Field = str | int | list[str] | None


def rfc3339(when: datetime) -> str:
    """RFC 3339 in UTC with a `Z` suffix."""
    return _utc(when).isoformat().replace("+00:00", "Z")


def row_fields(row: Row) -> dict[str, Field]:
    """The row's value for each of `COLUMNS`, in that order."""
    fields: dict[str, Field] = {
        "offline_id": row.offline_id,
        "location_id": row.location_id,
        "device_id": row.device_id,
        "amount": row.amount,
        "currency": row.currency,
        "category": row.category.value,
        "ledger_status": row.ledger_status,
        "payment_intent_ids": list(row.payment_intent_ids),
        "stripe_amount": row.stripe_amount,
        "stripe_currency": row.stripe_currency,
        "stripe_status": row.stripe_status,
        "stored_at": rfc3339(row.stored_at) if row.stored_at else None,
        "forwarded_at": rfc3339(row.forwarded_at) if row.forwarded_at else None,
        "age_hours": row.age_hours,
        "amount_at_risk": row.amount_at_risk,
        "refunded_amount": row.refunded_amount,
        "disputed_amount": row.disputed_amount,
        "dispute_status": row.dispute_status,
        "settlement_amount": row.settlement_amount,
        "settlement_currency": row.settlement_currency,
        "stripe_fee": row.stripe_fee,
        "stripe_net": row.stripe_net,
        "payout_id": row.payout_id,
        "payout_date": row.payout_at.date().isoformat() if row.payout_at else None,
        "breaches": list(row.breaches),
    }
    assert tuple(fields) == COLUMNS
    return fields


def payout_fields(report: Report) -> list[dict[str, Field]]:
    """Each payout's totals, for machines (JSON)."""
    return [
        {
            "payout_id": p.payout_id,
            "payout_date": p.payout_at.date().isoformat() if p.payout_at else None,
            "currency": p.currency,
            "payments": p.payments,
            "gross": p.gross,
            "fees": p.fees,
            "refunds": p.refunds,
            "disputes": p.disputes,
            "net": p.net,
        }
        for p in report.payouts()
    ]


def payout_lines(report: Report) -> list[dict[str, str]]:
    """Each payout's totals as people read them (formatted money, the date in UTC)."""
    return [
        {
            "payout_id": p.payout_id,
            "date": p.payout_at.date().isoformat() if p.payout_at else "—",
            "currency": currency_label(p.currency),
            "payments": str(p.payments),
            **{
                name: money(getattr(p, name), p.currency)
                for name in ("gross", "fees", "refunds", "disputes", "net")
            },
        }
        for p in report.payouts()
    ]


def money(amount_minor: int | None, currency: str | None) -> str:
    """`format_minor` where the currency is known; otherwise the bare minor units, marked."""
    if amount_minor is None:
        return "—"
    if currency and is_currency(currency):
        return format_minor(amount_minor, currency)
    return f"{amount_minor:,} minor units ({currency.upper() if currency else 'no currency'})"


def by_age_bucket(breakdown: Breakdown) -> Breakdown:
    """`Report.at_risk_by_age()` from the youngest bucket to the oldest, not alphabetically."""
    return {label: breakdown[label] for label, _ in AGE_BUCKETS if label in breakdown}


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


def time_left(due: datetime, now: datetime) -> str:
    """`in 5.0 h` before `due`, `3.0 h ago` after it (`age` writes the span)."""
    seconds = int((due - now).total_seconds())
    return f"in {age(seconds)}" if seconds >= 0 else f"{age(-seconds)} ago"


def human_time(when: datetime | None) -> str:
    if when is None:
        return "—"
    return _utc(when).strftime("%Y-%m-%d %H:%M UTC")


def currency_label(currency: str) -> str:
    return currency.upper() or "—"


def category_label(category: Category) -> str:
    """`stale_forward` -> `Stale forward`, `missing_in_stripe` -> `Missing in Stripe`."""
    return str(category).replace("_", " ").capitalize().replace("stripe", "Stripe")


def _utc(when: datetime) -> datetime:
    """A naive time is taken as UTC, as the report's times are."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
