"""The watch's configuration: a small TOML file, checked whole before anything runs.

    [conditions]                      # each one optional; a missing one is not watched
    money_at_risk = { usd = 50000 }   # per location and currency, minor units: alert above it
    stored_older_than_hours = 20      # a payment stored offline and not forwarded for so long
    captures_due_within_hours = 12    # an authorization whose capture window ends that soon
    duplicates = true                 # a payment Stripe took more than once
    device_silent_hours = 6           # a device holding stored payments, no forward that long

    [webhook]                         # optional: without it, alerts are exit status and JSON
    url = "https://ops.example.com/hooks/offline-ledger"
    attempts_per_run = 3              # tries per alert in one evaluation
    backoff_seconds = 2               # the wait after a failed try; doubles up to an hour
    timeout_seconds = 10

    [queue]
    path = "offline-ledger-alerts.db" # which conditions were raised, and undelivered alerts
    max_pending = 1000                # the oldest undelivered alert is dropped beyond it

The webhook's signing secret comes from OFFLINE_LEDGER_ALERT_SECRET, never from this file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ledger.errors import Code, InvalidRecord


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
MinorUnits = Annotated[int, Field(ge=0)]


class Conditions(_Strict):
    money_at_risk: dict[Currency, MinorUnits] = Field(default_factory=dict)
    stored_older_than_hours: int | None = Field(default=None, ge=1, le=24 * 365)
    captures_due_within_hours: int | None = Field(default=None, ge=1, le=24 * 365)
    duplicates: bool = False
    device_silent_hours: int | None = Field(default=None, ge=1, le=24 * 365)


class Webhook(_Strict):
    url: str = Field(pattern=r"^https?://\S+$")
    attempts_per_run: int = Field(default=3, ge=1, le=10)
    backoff_seconds: float = Field(default=2, ge=0, le=3600)
    timeout_seconds: float = Field(default=10, gt=0, le=120)


class Queue(_Strict):
    path: Annotated[Path, Field(strict=False)] = Path("offline-ledger-alerts.db")  # TOML text
    max_pending: int = Field(default=1000, ge=1, le=1_000_000)


class AlertsConfig(_Strict):
    conditions: Conditions
    webhook: Webhook | None = None
    queue: Queue = Field(default_factory=Queue)


def load_config(path: Path) -> AlertsConfig:
    """The configuration in `path`; INVALID_ALERT_CONFIG naming the first problem. A relative
    queue path is taken from the file's own directory, so cron's working directory does not
    matter."""
    try:
        value = tomllib.loads(path.read_text())
    except OSError as error:
        raise _invalid(f"cannot read {path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise _invalid(f"{path} is not TOML: {error}") from None
    try:
        config = AlertsConfig.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _invalid(f"{path}: {where}: {first['msg']}") from None
    if not config.queue.path.is_absolute():
        queue = config.queue.model_copy(update={"path": path.parent / config.queue.path})
        config = config.model_copy(update={"queue": queue})
    return config


def _invalid(message: str) -> InvalidRecord:
    return InvalidRecord(Code.INVALID_ALERT_CONFIG, message, field="config")
