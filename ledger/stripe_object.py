"""What Stripe has said about one PaymentIntent, as an event-sourced stream of observations.

One stream per PaymentIntent (or per charge, for a report row that names no PaymentIntent),
whatever the source: API, webhook, exported JSON or report CSV. Observing the same thing twice
is a no-op, so importing a file again or receiving a webhook twice records nothing; an older
snapshot seen again after a newer one is a repeat too, never a step back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from eventsourcing.domain import Aggregate

from ledger.errors import Code, Conflict
from ledger.identity import stripe_account_mode_id, stripe_event_id, stripe_object_id
from ledger.journal import Journaled
from ledger.observations import BalanceTransactionObservation, Observation, movement_key


class StripeObject(Journaled):
    TOPIC = "offline_ledger:StripeObject"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:StripeObject.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:StripeObject.Created"

    class FirstSeen(Created):
        TOPIC = "offline_ledger:StripeObject.FirstSeen"
        key: str

        def apply(self, aggregate: StripeObject) -> None:
            aggregate.key = self.key
            aggregate.snapshot_digests = []
            aggregate.balance_transactions = {}

    class PaymentIntentObserved(Event):
        """A PaymentIntent as Stripe showed it (`observation` is the model's JSON dump); also
        a charge or a dispute (`observation["kind"]` says which): snapshots all."""

        TOPIC = "offline_ledger:StripeObject.PaymentIntentObserved"
        observation: dict[str, Any]

        def apply(self, aggregate: StripeObject) -> None:
            aggregate.snapshot_digests.append(_digest(_snapshot(self.observation)))

    class BalanceTransactionObserved(Event):
        """One money movement about this PaymentIntent (a report row, a refund or dispute a
        webhook announced); seen again with more columns, the same movement completed."""

        TOPIC = "offline_ledger:StripeObject.BalanceTransactionObserved"
        observation: dict[str, Any]

        def apply(self, aggregate: StripeObject) -> None:
            content = _snapshot(self.observation)
            key = movement_key(content)
            known = aggregate.balance_transactions.get(key, {})
            aggregate.balance_transactions[key] = _completed(known, content)

    if TYPE_CHECKING:  # set by the events' apply()
        key: str
        snapshot_digests: list[str]
        balance_transactions: dict[str, dict[str, object]]  # movement key -> what is known

    @classmethod
    def first_seen(cls, key: str) -> StripeObject:
        return cls._create(cls.FirstSeen, id=stripe_object_id(key), key=key)

    def observe(self, observation: Observation) -> bool:
        """Record it if it is news; False for a repeat.

        A money movement seen again is a repeat when what both sightings show agrees: a
        report downloaded with other optional columns, or another report type, shows the same
        balance transaction with some columns absent (never a change) or added (recorded, so
        that a payout learnt later is kept). A value that differs is a conflict naming the
        field: Stripe never changes a balance transaction."""
        content = observation.model_dump(mode="json")
        if not isinstance(observation, BalanceTransactionObservation):
            if _digest(_snapshot(content)) in self.snapshot_digests:
                return False
            self.trigger_event(self.PaymentIntentObserved, observation=content)
            return True
        key = observation.movement_key
        known = self.balance_transactions.get(key)
        if known is None:
            self.trigger_event(self.BalanceTransactionObserved, observation=content)
            return True
        seen = _snapshot(content)
        for name, value in seen.items():
            if value is None or known.get(name) is None or known[name] == value:
                continue
            if name == "balance_transaction_id" or (
                name in _SETTLED and known["currency"] != seen["currency"]
            ):
                # A webhook names a refund before its balance transaction exists, in the
                # currency the customer paid; the report, in the currency it settled in.
                continue
            raise Conflict(
                Code.IDEMPOTENCY_CONFLICT,
                f"balance transaction {observation.balance_transaction_id} was already "
                f"imported with another '{name}' ({known.get(name)!r}, now {value!r}); "
                "Stripe never changes a balance transaction: check the file",
                field=name,
            )
        if _completed(known, seen) == known:
            return False
        self.trigger_event(self.BalanceTransactionObserved, observation=content)
        return True


def _snapshot(content: Mapping[str, object]) -> dict[str, object]:
    """What Stripe said, without where and when we heard it (the same state from a webhook,
    an API read and a file is one fact)."""
    return {
        name: value
        for name, value in content.items()
        if name not in ("source", "as_of", "livemode")
    }


# A movement's amounts in its settlement currency.
_SETTLED = frozenset({"currency", "gross", "fee", "net"})


def _completed(known: Mapping[str, object], seen: Mapping[str, object]) -> dict[str, object]:
    """A movement as known, with the values it lacked that a new sighting shows; a
    balance transaction id replaces the refund's own id a webhook had to use."""
    merged = dict(known)
    for name, value in seen.items():
        if value is not None and (
            merged.get(name) is None
            or (name == "balance_transaction_id" and str(value).startswith("txn_"))
        ):
            merged[name] = value
    return merged


def _digest(content: Mapping[str, object]) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


class StripeEvent(Journaled):
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

        def apply(self, aggregate: StripeEvent) -> None:
            aggregate.event_id = self.event_id
            aggregate.event_type = self.event_type

    if TYPE_CHECKING:  # set by the events' apply()
        event_id: str
        event_type: str

    @classmethod
    def receive(cls, event_id: str, event_type: str) -> StripeEvent:
        return cls._create(
            cls.Received, id=stripe_event_id(event_id), event_id=event_id, event_type=event_type
        )

    class Ignored(Created):
        """A Stripe event deliberately not applied (answered 2xx so that Stripe stops
        retrying it), and why: another mode, a type the ledger does not use, a thin event."""

        TOPIC = "offline_ledger:StripeEvent.Ignored"
        event_id: str
        event_type: str
        reason: str

        def apply(self, aggregate: StripeEvent) -> None:
            aggregate.event_id = self.event_id
            aggregate.event_type = self.event_type

    @classmethod
    def ignore(cls, event_id: str, event_type: str, reason: str) -> StripeEvent:
        return cls._create(
            cls.Ignored,
            id=stripe_event_id(event_id),
            event_id=event_id,
            event_type=event_type,
            reason=reason,
        )


class StripeAccountMode(Journaled):
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

        def apply(self, aggregate: StripeAccountMode) -> None:
            aggregate.livemode = self.livemode

    if TYPE_CHECKING:  # set by the events' apply()
        livemode: bool

    @classmethod
    def bind(cls, livemode: bool) -> StripeAccountMode:
        return cls._create(cls.Bound, id=stripe_account_mode_id(), livemode=livemode)
