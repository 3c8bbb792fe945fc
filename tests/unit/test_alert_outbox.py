"""The watch's memory and queue: a condition raises one alert while it holds and again only
after it cleared; the queue keeps at most max_pending alerts, dropping the oldest, and counts
them; failed tries wait longer each time. And the webhook's signature, as a receiver checks
it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from adapters.alerts.conditions import Condition
from adapters.alerts.outbox import Outbox
from adapters.alerts.webhook import signature, signature_holds

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def condition(key: str) -> Condition:
    return Condition(key, key.split("/")[0], f"{key} holds", {"subject": key.split("/")[1]})


def test_a_condition_alerts_once_while_it_holds_and_again_after_it_cleared(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "alerts.db", max_pending=10)
    first = outbox.raise_new([condition("duplicate/a")], NOW)
    assert [alert["key"] for alert in first] == ["duplicate/a"]
    assert first[0]["subject"] == "a" and first[0]["raised_at"] == NOW.isoformat()
    assert outbox.raise_new([condition("duplicate/a")], NOW) == []
    assert (
        Outbox(tmp_path / "alerts.db", max_pending=10).raise_new([condition("duplicate/a")], NOW)
        == []
    )  # a restart remembers
    assert outbox.raise_new([], NOW) == []
    again = outbox.raise_new([condition("duplicate/a")], NOW)
    assert [alert["key"] for alert in again] == ["duplicate/a"]
    assert again[0]["id"] != first[0]["id"]
    due = outbox.due(NOW)
    assert [orjson.loads(p.body) for p in due] == [first[0], again[0]]


def test_the_queue_drops_its_oldest_alerts_beyond_its_bound(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "alerts.db", max_pending=3)
    raised = outbox.raise_new([condition(f"duplicate/{n}") for n in range(5)], NOW)
    assert [p.alert_id for p in outbox.due(NOW)] == [alert["id"] for alert in raised[2:]]
    assert outbox.counts() == (3, 2)
    outbox.delivered(raised[2]["id"])
    assert outbox.counts() == (2, 2)


def test_a_failed_try_waits_twice_as_long_each_time(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "alerts.db", max_pending=3)
    (alert,) = outbox.raise_new([condition("duplicate/a")], NOW)
    outbox.failed(alert["id"], "the receiver answered 500", NOW, backoff_seconds=10)
    assert outbox.due(NOW + timedelta(seconds=9)) == []
    assert [p.attempts for p in outbox.due(NOW + timedelta(seconds=10))] == [1]
    outbox.failed(alert["id"], "the receiver answered 500", NOW, backoff_seconds=10)
    assert outbox.due(NOW + timedelta(seconds=19)) == []
    assert [p.attempts for p in outbox.due(NOW + timedelta(seconds=20))] == [2]


def test_a_receiver_accepts_the_signature_only_for_its_secret_body_and_time() -> None:
    body = b'{"id": "1"}'
    header = signature("s3cret", body, int(NOW.timestamp()))
    assert signature_holds("s3cret", header, body, NOW)
    assert not signature_holds("other", header, body, NOW)
    assert not signature_holds("s3cret", header, body + b" ", NOW)
    assert not signature_holds("s3cret", header, body, NOW + timedelta(minutes=6))
    assert not signature_holds("s3cret", "v1=abc", body, NOW)
