"""What to do first: the order of the rows within a section of the report, and the deadline
of an authorization that must be captured.

The sections themselves come in the order of `EXCEPTIONS` (what can still be saved first).
Within one: an authorization by the moment it lapses, earliest first; a payment stored on a
reader by how long it has been stored, longest first (the reader may lose it, and Stripe
refuses a payment forwarded too late); any other row by the money it puts at risk, then its
amount, largest first. Ties fall back on the ids, so the order is the same every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from projections.report import Category, Row

_STORED = (Category.STALE_FORWARD, Category.PENDING_FORWARD)

# What a row's deadline (`deadline`) is, per category that has one: a heading for people.
DEADLINES: dict[Category, str] = {
    Category.CAPTURE_OVERDUE: "Capture by",
    Category.STALE_FORWARD: "Stale since",
    Category.PENDING_FORWARD: "Stale from",
}


def capture_deadline(row: Row, thresholds: Mapping[str, str]) -> datetime | None:
    """When an authorization forwarded to Stripe lapses: forwarded at, plus the capture window
    of its card brand (`capture_window_<brand>_hours`, else the default one) among the report's
    thresholds. None when it was not forwarded or the thresholds were not recorded."""
    if row.forwarded_at is None:
        return None
    hours = thresholds.get(f"capture_window_{row.card_brand}_hours") or thresholds.get(
        "capture_window_default_hours"
    )
    if hours is None:
        return None
    return row.forwarded_at + _hours(hours)


def deadline(row: Row, thresholds: Mapping[str, str]) -> datetime | None:
    """The moment that decides a row's fate, where there is one: when an overdue
    authorization lapses (`capture_deadline`), when a payment stored on a reader is (or
    became) stale."""
    if row.category == Category.CAPTURE_OVERDUE:
        return capture_deadline(row, thresholds)
    stale = thresholds.get("stale_after_hours")
    if row.category in _STORED and row.stored_at is not None and stale is not None:
        return row.stored_at + _hours(stale)
    return None


def save_first(rows: Iterable[Row], thresholds: Mapping[str, str]) -> list[Row]:
    """The rows of one section, what to act on first at the top."""
    return sorted(rows, key=lambda row: _urgency(row, thresholds))


def _urgency(row: Row, thresholds: Mapping[str, str]) -> tuple[int, int, int, int, str, str]:
    deadline = (
        capture_deadline(row, thresholds) if row.category == Category.CAPTURE_OVERDUE else None
    )
    if deadline is not None:
        first = (0, int(deadline.timestamp()))
    elif row.category in _STORED:
        first = (1, -(row.age_seconds or 0))
    else:
        first = (2, 0)
    amount = row.amount if row.amount is not None else row.stripe_amount or 0
    ids = ";".join(row.payment_intent_ids)
    return (*first, -row.amount_at_risk, -amount, row.offline_id or "", ids)


def _hours(hours: str) -> timedelta:
    """A threshold's hours (`"114"`, `"1.5"`: `Report.thresholds`) as a span."""
    return timedelta(seconds=int(Decimal(hours) * 3600))
