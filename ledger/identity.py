"""Deterministic aggregate ids.

Every stream's id is derived from the natural key the outside world uses (the POS's offline_id,
Stripe's `tml_`/`tmr_` ids, an idempotency key), so that recording the same thing twice collides
on the event store's primary key instead of creating a second stream. The namespace must never
change: it is part of every stored id.
"""

from datetime import UTC, datetime
from functools import lru_cache
from hashlib import sha1
from uuid import NAMESPACE_URL, UUID, uuid5

NAMESPACE = uuid5(NAMESPACE_URL, "urn:offline-ledger")
_NAMESPACE_BYTES = NAMESPACE.bytes


def _uuid5(name: str) -> UUID:
    """uuid5(NAMESPACE, name), without the stdlib's slower argument handling."""
    digest = bytearray(sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return UUID(bytes=bytes(digest))


_stream_id = lru_cache(maxsize=65_536)(_uuid5)


# A payment's stream id, with its offline_id's text, by the offline_id's integer: asked several
# times a record, and a UUID's hash and equality (an `lru_cache` key's) are Python code, an
# int's are not.
_PAYMENT_IDS: dict[int, tuple[UUID, str]] = {}
_PAYMENT_IDS_MAX = 65_536  # then forgotten all at once: a long ingest's memory stays bounded


def payment_id(offline_id: UUID | str) -> UUID:
    if type(offline_id) is not UUID:
        return _stream_id(f"payment/{str(offline_id).lower()}")
    key = offline_id.int
    found = _PAYMENT_IDS.get(key)
    if found is None:
        if len(_PAYMENT_IDS) >= _PAYMENT_IDS_MAX:
            _PAYMENT_IDS.clear()
        # Not through `_stream_id`'s cache too: a day's payments would push the locations'
        # and devices' ids out of it.
        text = str(offline_id)
        found = _PAYMENT_IDS[key] = (_uuid5(f"payment/{text}"), text)
    return found[0]


def offline_text(offline_id: UUID) -> str:
    """`str(offline_id)`, as `payment_id` remembered it: a new payment's stream id is asked
    for before its creation stores the text, and a UUID's `__str__` costs as much as the
    rest of `payment_id` together (it formats the 128-bit integer in Python)."""
    found = _PAYMENT_IDS.get(offline_id.int)
    return str(offline_id) if found is None else found[1]


# A location's and a device's stream id by the name itself: asked several times a record, with
# the same name object each time (the aggregates' own), whose hash the string keeps, where
# `_stream_id`'s key is a new string formatted and hashed anew each call.
_LOCATION_IDS: dict[str, UUID] = {}
_DEVICE_IDS: dict[str, UUID] = {}
_NAMED_IDS_MAX = 16_384  # then forgotten all at once, as `_PAYMENT_IDS`


def location_id(location: str) -> UUID:
    found = _LOCATION_IDS.get(location)
    if found is None:
        found = _remembered(_LOCATION_IDS, location, f"location/{location}")
    return found


def device_id(device: str) -> UUID:
    found = _DEVICE_IDS.get(device)
    if found is None:
        found = _remembered(_DEVICE_IDS, device, f"device/{device}")
    return found


def _remembered(ids: dict[str, UUID], key: str, name: str) -> UUID:
    if len(ids) >= _NAMED_IDS_MAX:
        ids.clear()
    found = ids[key] = _stream_id(name)
    return found


def idempotency_key_id(key: str) -> UUID:
    return _stream_id(f"idempotency-key/{key}")


def allowance_request_id(location: str, device: str, at: datetime) -> UUID:
    """The request for an allowance a device asked at a location at one moment: a retry of
    it names the same stream, whatever offset its moment is written with."""
    return _stream_id(f"allowance-request/{location}/{device}/{at.astimezone(UTC).isoformat()}")


def stripe_object_id(key: str) -> UUID:
    """The stream of what Stripe said about one PaymentIntent (`pi_...`) or charge."""
    return _stream_id(f"stripe/{key}")


def stripe_event_id(event_id: str) -> UUID:
    """The receipt of one Stripe event (`evt_...`)."""
    return _stream_id(f"stripe-event/{event_id}")


def stripe_account_mode_id() -> UUID:
    """The one stream saying whether this ledger holds test-mode or live-mode objects."""
    return _stream_id("stripe-account-mode")


def seals_id() -> UUID:
    """The one stream of the seals closing the ledger's periods (`ledger.seal`)."""
    return _stream_id("seals")


def cipher_keys_id() -> UUID:
    """The one stream of the cipher key rotations (`ledger.cipher`)."""
    return _stream_id("cipher-keys")


def reservation_id(offline_id: UUID | str) -> UUID:
    """The answer to the reservation request for one sale (its offline_id)."""
    return _stream_id(f"reservation/{str(offline_id).lower()}")
