"""What Stripe has said about one PaymentIntent, as an event-sourced stream of observations.

One stream per PaymentIntent (or per charge, for a report row that names no PaymentIntent),
whatever the source: API, webhook, exported JSON or report CSV. Observing the same thing twice
is a no-op, so importing a file again or receiving a webhook twice records nothing; an older
snapshot seen again after a newer one is a repeat too, never a step back.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson
from eventsourcing.domain import Aggregate

from ledger.errors import Code, Conflict
from ledger.identity import stripe_account_mode_id, stripe_event_id, stripe_object_id
from ledger.observations import (
    BalanceTransactionObservation,
    Observation,
    PaymentIntentObservation,
)


class StripeObject(Aggregate):
    TOPIC = "offline_ledger:StripeObject"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:StripeObject.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:StripeObject.Created"

    class FirstSeen(Created):
        TOPIC = "offline_ledger:StripeObject.FirstSeen"
        key: str

        def apply(self, aggregate: Any) -> None:
            aggregate.key = self.key
            aggregate.snapshot_digests = []
            aggregate.balance_transactions = {}

    class PaymentIntentObserved(Event):
        """A PaymentIntent as Stripe showed it (`observation` is the model's JSON dump)."""

        TOPIC = "offline_ledger:StripeObject.PaymentIntentObserved"
        observation: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.snapshot_digests.append(_digest(_snapshot(self.observation)))

    class BalanceTransactionObserved(Event):
        """One row of Stripe's itemized balance report about this PaymentIntent."""

        TOPIC = "offline_ledger:StripeObject.BalanceTransactionObserved"
        observation: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            content = _snapshot(self.observation)
            aggregate.balance_transactions[content["balance_transaction_id"]] = content

    if TYPE_CHECKING:  # set by the events' apply()
        key: str
        snapshot_digests: list[str]
        balance_transactions: dict[str, dict[str, Any]]

    @classmethod
    def first_seen(cls, key: str) -> StripeObject:
        return cls._create(cls.FirstSeen, id=stripe_object_id(key), key=key)

    def observe(self, observation: Observation) -> bool:
        """Record it if it is news; False for a repeat. A balance transaction seen again
        with other content is a conflict naming the field."""
        content = observation.model_dump(mode="json")
        if isinstance(observation, PaymentIntentObservation):
            if _digest(_snapshot(content)) in self.snapshot_digests:
                return False
            self.trigger_event(self.PaymentIntentObserved, observation=content)
            return True
        assert isinstance(observation, BalanceTransactionObservation)
        known = self.balance_transactions.get(observation.balance_transaction_id)
        if known is None:
            self.trigger_event(self.BalanceTransactionObserved, observation=content)
            return True
        for name, value in _snapshot(content).items():
            if known.get(name) != value:
                raise Conflict(
                    Code.IDEMPOTENCY_CONFLICT,
                    f"balance transaction {observation.balance_transaction_id} was already "
                    f"imported with another '{name}' ({known.get(name)!r}, now {value!r}); "
                    "Stripe never changes a balance transaction: check the file",
                    field=name,
                )
        return False


def _snapshot(content: dict[str, Any]) -> dict[str, Any]:
    """What Stripe said, without where and when we heard it (the same state from a webhook,
    an API read and a file is one fact)."""
    return {name: value for name, value in content.items() if name not in ("source", "as_of")}


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


class StripeEvent(Aggregate):
    """A Stripe event (`evt_...`) applied once: its receipt is recorded in the same
    transaction as what it said, so a redelivery finds it and changes nothing."""

    TOPIC = "offline_ledger:StripeEvent"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:StripeEvent.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:StripeEvent.Created"

    class Received(Created):
        TOPIC = "offline_ledger:StripeEvent.Received"
        event_id: str
        event_type: str

        def apply(self, aggregate: Any) -> None:
            aggregate.event_id = self.event_id
            aggregate.event_type = self.event_type

    @classmethod
    def receive(cls, event_id: str, event_type: str) -> StripeEvent:
        return cls._create(
            cls.Received, id=stripe_event_id(event_id), event_id=event_id, event_type=event_type
        )


class StripeAccountMode(Aggregate):
    """Whether this ledger holds Stripe test-mode or live-mode objects: fixed by the first
    use of a key, so the two are never mixed in one database."""

    TOPIC = "offline_ledger:StripeAccountMode"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:StripeAccountMode.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:StripeAccountMode.Created"

    class Bound(Created):
        TOPIC = "offline_ledger:StripeAccountMode.Bound"
        livemode: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.livemode = self.livemode

    if TYPE_CHECKING:  # set by the events' apply()
        livemode: bool

    @classmethod
    def bind(cls, livemode: bool) -> StripeAccountMode:
        return cls._create(cls.Bound, id=stripe_account_mode_id(), livemode=livemode)
