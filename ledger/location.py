"""A Stripe Terminal Location: its offline configuration and what is stored offline there.

The location is the consistency boundary for the stored-amount limits: every confirmation
records `PaymentStored` on the location's stream in the same transaction as the payment's own
event, so two devices (or two processes) racing for the last headroom collide on the location's
next version and the loser re-decides with fresh totals. Per-device totals live here too,
because device limits are part of a location's configuration (`device_limits`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate

from ledger.identity import location_id as location_stream_id


class Location(Aggregate):
    TOPIC = "offline_ledger:Location"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:Location.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:Location.Created"

    class Configured(Created):
        TOPIC = "offline_ledger:Location.Configured"
        location_id: str
        config: dict[str, Any]
        occurred_at: datetime

        def apply(self, aggregate: Any) -> None:
            location: Location = aggregate
            location.location_id = self.location_id
            location.config = self.config
            location.configured_at = self.occurred_at
            location.stored = {}
            location.stored_amounts = {}
            location.stored_count = 0
            location.device_stored_amounts = {}
            location.device_stored_counts = {}

    class Reconfigured(Event):
        TOPIC = "offline_ledger:Location.Reconfigured"
        config: dict[str, Any]
        occurred_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.config = self.config
            aggregate.configured_at = self.occurred_at

    class PaymentStored(Event):
        TOPIC = "offline_ledger:Location.PaymentStored"
        offline_id: str
        device_id: str
        currency: str
        amount: int
        occurred_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.add_stored(self.offline_id, self.device_id, self.currency, self.amount)

    class PaymentReleased(Event):
        """The amount left the stored totals: forwarded, declined or canceled."""

        TOPIC = "offline_ledger:Location.PaymentReleased"
        offline_id: str
        reason: str
        occurred_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.remove_stored(self.offline_id)

    if TYPE_CHECKING:  # set by the events' apply(); runtime annotations would make
        # the eventsourcing metaclass generate a dataclass __init__
        location_id: str
        config: dict[str, Any]
        configured_at: datetime
        stored: dict[str, list[Any]]  # offline_id -> [device_id, currency, amount]
        stored_amounts: dict[str, int]
        stored_count: int
        device_stored_amounts: dict[str, dict[str, int]]
        device_stored_counts: dict[str, int]

    @classmethod
    def configure(cls, location_id: str, config: dict[str, Any], occurred_at: datetime) -> Location:
        return cls._create(
            cls.Configured,
            id=location_stream_id(location_id),
            location_id=location_id,
            config=config,
            occurred_at=occurred_at,
        )

    def reconfigure(self, config: dict[str, Any], occurred_at: datetime) -> bool:
        if config == self.config:
            return False
        self.trigger_event(self.Reconfigured, config=config, occurred_at=occurred_at)
        return True

    def store_payment(
        self, offline_id: str, device_id: str, currency: str, amount: int, occurred_at: datetime
    ) -> None:
        """Count a payment as stored; the limits were checked by `ledger.limits` beforehand."""
        assert offline_id not in self.stored, offline_id
        self.trigger_event(
            self.PaymentStored,
            offline_id=offline_id,
            device_id=device_id,
            currency=currency,
            amount=amount,
            occurred_at=occurred_at,
        )

    def release_payment(self, offline_id: str, reason: str, occurred_at: datetime) -> None:
        assert offline_id in self.stored, offline_id
        self.trigger_event(
            self.PaymentReleased, offline_id=offline_id, reason=reason, occurred_at=occurred_at
        )

    # -- state --------------------------------------------------------------------------------

    @property
    def offline_enabled(self) -> bool:
        return bool(self.config["offline_enabled"])

    @property
    def sca_required(self) -> bool:
        return bool(self.config["sca_required"])

    @property
    def offline_currencies(self) -> frozenset[str]:
        """Explicit `currencies`, else every currency named in the limits."""
        explicit = self.config.get("currencies")
        if explicit is not None:
            return frozenset(explicit)
        limits = self.config["limits"]
        return frozenset(limits["per_payment_max"]) | frozenset(limits["stored_amount_max"])

    def add_stored(self, offline_id: str, device_id: str, currency: str, amount: int) -> None:
        self.stored[offline_id] = [device_id, currency, amount]
        self.stored_amounts[currency] = self.stored_amounts.get(currency, 0) + amount
        self.stored_count += 1
        by_currency = self.device_stored_amounts.setdefault(device_id, {})
        by_currency[currency] = by_currency.get(currency, 0) + amount
        self.device_stored_counts[device_id] = self.device_stored_counts.get(device_id, 0) + 1

    def remove_stored(self, offline_id: str) -> None:
        device_id, currency, amount = self.stored.pop(offline_id)
        self.stored_amounts[currency] -= amount
        if self.stored_amounts[currency] == 0:
            del self.stored_amounts[currency]
        self.stored_count -= 1
        by_currency = self.device_stored_amounts[device_id]
        by_currency[currency] -= amount
        if by_currency[currency] == 0:
            del by_currency[currency]
        self.device_stored_counts[device_id] -= 1
        if self.device_stored_counts[device_id] == 0:
            del self.device_stored_counts[device_id]
            del self.device_stored_amounts[device_id]
        assert self.stored_count >= 0 and all(v > 0 for v in self.stored_amounts.values())
