"""The watch's conditions, found from the read models: money at risk per location and
currency above its threshold, payments stored too long, captures due, duplicates, devices
that stopped forwarding; and none when the thresholds are not reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.alerts.conditions import evaluate
from adapters.alerts.config import Conditions
from ledger import Ledger
from projections.read_models import ReadModels
from tests.support.days import AUTHORIZED, STORED, TWICE, a_day


def keys(url: str, wanted: Conditions, now: datetime) -> list[str]:
    with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
        return [condition.key for condition in evaluate(read_models, wanted, now)]


def test_every_condition_is_found_once_with_its_subject(sqlite_url: str) -> None:
    a_day(sqlite_url)
    wanted = Conditions(
        money_at_risk={"usd": 4999, "eur": 0},
        stored_older_than_hours=24,
        captures_due_within_hours=12,
        duplicates=True,
        device_silent_hours=24,
    )
    assert keys(sqlite_url, wanted, datetime.now(UTC)) == sorted(
        [
            f"capture_due/{AUTHORIZED}",
            f"duplicate/{TWICE}",
            "device_silent/tmr_1",
            "money_at_risk/tml_1/usd",
            f"stored_too_long/{STORED}",
        ]
    )


def test_nothing_holds_below_the_thresholds(sqlite_url: str) -> None:
    a_day(sqlite_url)
    wanted = Conditions(
        money_at_risk={"usd": 1_000_000},
        stored_older_than_hours=24,
        captures_due_within_hours=1,
        device_silent_hours=24,
    )
    # The evening of the sales: nothing stored a day yet, no capture window ending soon.
    morning = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    assert keys(sqlite_url, wanted, morning) == []
    assert keys(sqlite_url, Conditions(), morning + timedelta(days=30)) == []
