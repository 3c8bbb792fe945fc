"""Deterministic aggregate ids.

Every stream's id is derived from the natural key the outside world uses (the POS's offline_id,
Stripe's `tml_`/`tmr_` ids, an idempotency key), so that recording the same thing twice collides
on the event store's primary key instead of creating a second stream. The namespace must never
change: it is part of every stored id.
"""

from uuid import NAMESPACE_URL, UUID, uuid5

NAMESPACE = uuid5(NAMESPACE_URL, "urn:offline-ledger")


def payment_id(offline_id: UUID | str) -> UUID:
    return uuid5(NAMESPACE, f"payment/{str(offline_id).lower()}")


def location_id(location: str) -> UUID:
    return uuid5(NAMESPACE, f"location/{location}")


def device_id(device: str) -> UUID:
    return uuid5(NAMESPACE, f"device/{device}")


def idempotency_key_id(key: str) -> UUID:
    return uuid5(NAMESPACE, f"idempotency-key/{key}")
