"""The signed outgoing webhook: one POST per alert, its body JSON.

The signature follows the scheme Stripe uses for its own webhooks, so a receiver can check it
the same way: the header `Offline-Ledger-Signature: t=<unix seconds>,v1=<hex>` where v1 is
HMAC-SHA256, keyed with the shared secret, of `<t>.` followed by the raw body. A receiver
recomputes it, compares in constant time, and refuses a `t` too far from its own clock
(`signature_holds`), so a captured request cannot be replayed later. `Offline-Ledger-Alert-Id`
names the alert: a retry after a lost answer carries the same id, for the receiver to drop.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from datetime import datetime

SIGNATURE_HEADER = "Offline-Ledger-Signature"
ALERT_ID_HEADER = "Offline-Ledger-Alert-Id"
TOLERANCE_SECONDS = 300


class DeliveryFailed(Exception):
    """The receiver did not acknowledge the alert (no answer, or not a 2xx)."""


def signature(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def signature_holds(
    secret: str, header: str, body: bytes, now: datetime, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance` seconds of
    `now`: what a receiver checks."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not parts.get("t", "").isdigit() or "v1" not in parts:
        return False
    timestamp = int(parts["t"])
    if abs(now.timestamp() - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp)
    return hmac.compare_digest(expected, f"t={timestamp},v1={parts['v1']}")


def send(url: str, secret: str, alert_id: str, body: bytes, now: datetime, timeout: float) -> None:
    """POST one alert; DeliveryFailed unless the receiver answers 2xx."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "offline-ledger-watch",
            ALERT_ID_HEADER: alert_id,
            SIGNATURE_HEADER: signature(secret, body, int(now.timestamp())),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
    except urllib.error.HTTPError as error:
        raise DeliveryFailed(f"the receiver answered {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryFailed(f"no answer from the receiver: {reason}") from None
