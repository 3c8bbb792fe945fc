"""Who is calling and what they may see: the key's role, its locations, its rate.

A location, device or payment outside the key's locations is refused exactly as an unknown
one is (404, the ledger's own code and message), so a key for one shop cannot even learn
which ids another shop has.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from adapters.http.api_keys import ApiKey, Role
from adapters.http.problems import FORBIDDEN, RATE_LIMITED, ApiError
from ledger.errors import Code, NotFound

READERS = (Role.POS, Role.FINANCE, Role.ADMIN)
WRITERS = (Role.POS, Role.ADMIN)
FINANCE = (Role.FINANCE, Role.ADMIN)
ADMIN = (Role.ADMIN,)


def require_role(key: ApiKey, roles: tuple[Role, ...]) -> None:
    if key.role not in roles:
        raise ApiError(
            FORBIDDEN,
            f"a {key.role} key may not do this; it needs a key of role "
            f"{' or '.join(str(role) for role in roles)}",
        )


def unknown_location(location_id: str) -> NotFound:
    return NotFound(
        Code.UNKNOWN_LOCATION, f"location {location_id} is unknown", field="location_id"
    )


def unknown_payment(offline_id: str) -> NotFound:
    return NotFound(Code.UNKNOWN_PAYMENT, f"payment {offline_id} is unknown", field="offline_id")


def require_location(key: ApiKey, location_id: str) -> None:
    if not key.sees(location_id):
        raise unknown_location(location_id)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per key, in this server process: `per_second` requests on average, up to
    `burst` at once. Several processes each allow as much (the bound is per process): it keeps
    one key from taking a process' threads and connections from the others, and costs no
    database round trip; a quota for the whole fleet belongs to the reverse proxy
    (docs/operators.md)."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault(key_id, _Bucket(float(self.burst), now))
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_second)
            bucket.at = now
            if bucket.tokens < 1:
                wait = max(1, round((1 - bucket.tokens) / self.per_second))
                raise ApiError(
                    RATE_LIMITED,
                    f"more than {self.per_second:g} requests per second on this key to this "
                    f"server process; retry in {wait} s",
                    headers={"retry-after": str(wait)},
                )
            bucket.tokens -= 1
