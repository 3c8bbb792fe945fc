"""One evaluation of the watch: the conditions holding now, a new alert for each one not
raised before (`adapters.alerts.outbox`), then every alert due delivered to the webhook, each
tried a few times with a growing pause, the rest left queued for the next evaluation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.alerts.conditions import Condition, evaluate
from adapters.alerts.config import AlertsConfig, Webhook
from adapters.alerts.outbox import Outbox
from adapters.alerts.webhook import DeliveryFailed, send
from ledger import Ledger
from ledger.errors import Code, InvalidRecord
from projections.read_models import ReadModels

SECRET_ENV = "OFFLINE_LEDGER_ALERT_SECRET"


@dataclass
class WatchResult:
    at: datetime
    conditions: list[Condition]
    raised: list[dict[str, Any]]  # the alerts this evaluation queued
    delivered: list[str] = field(default_factory=list)  # alert ids
    failures: list[dict[str, str]] = field(default_factory=list)  # alert id, error
    pending: int = 0
    dropped: int = 0

    @property
    def clear(self) -> bool:
        return not self.conditions

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "clear": self.clear,
            "conditions": [condition.to_dict() for condition in self.conditions],
            "raised": self.raised,
            "delivered": self.delivered,
            "failures": self.failures,
            "pending": self.pending,
            "dropped": self.dropped,
        }


def watch_once(
    ledger: Ledger,
    config: AlertsConfig,
    secret: str | None,
    now: datetime | None = None,
    pause: Callable[[float], None] = time.sleep,
) -> WatchResult:
    """Evaluate, raise and deliver once. `secret` signs the webhook's requests: required when
    the configuration has a webhook."""
    if config.webhook is not None and not secret:
        raise InvalidRecord(
            Code.INVALID_ALERT_CONFIG,
            f"the configuration names a webhook: set {SECRET_ENV} to the secret shared with "
            "its receiver, which signs every alert",
            field="config",
        )
    now = now or datetime.now(UTC)
    with ReadModels(ledger) as read_models:
        conditions = evaluate(read_models, config.conditions, now)
    outbox = Outbox(config.queue.path, config.queue.max_pending)
    raised = outbox.raise_new(conditions, now, queued=config.webhook is not None)
    result = WatchResult(now, conditions, raised)
    if config.webhook is not None and secret:
        _deliver(outbox, config.webhook, secret, result, pause)
    result.pending, result.dropped = outbox.counts()
    return result


def _deliver(
    outbox: Outbox,
    webhook: Webhook,
    secret: str,
    result: WatchResult,
    pause: Callable[[float], None],
) -> None:
    """Each due alert in order, tried up to `attempts_per_run` times; the first one that
    fails every try ends the delivery: the receiver is down, and the alerts after it wait for
    the next evaluation rather than each spend the same tries and timeouts."""
    for alert in outbox.due(result.at):
        if not _deliver_one(outbox, webhook, secret, alert.alert_id, alert.body, result, pause):
            return


def _deliver_one(
    outbox: Outbox,
    webhook: Webhook,
    secret: str,
    alert_id: str,
    body: bytes,
    result: WatchResult,
    pause: Callable[[float], None],
) -> bool:
    """Whether the receiver acknowledged the alert within this evaluation's tries."""
    tries = 0
    while True:
        try:
            send(webhook.url, secret, alert_id, body, datetime.now(UTC), webhook.timeout_seconds)
        except DeliveryFailed as error:
            outbox.failed(alert_id, str(error), datetime.now(UTC), webhook.backoff_seconds)
            tries += 1
            if tries == webhook.attempts_per_run:
                result.failures.append({"alert_id": alert_id, "error": str(error)})
                return False
            pause(webhook.backoff_seconds * 2 ** (tries - 1))
            continue
        outbox.delivered(alert_id)
        result.delivered.append(alert_id)
        return True
