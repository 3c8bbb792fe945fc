"""Running a write again when another writer moved one of its streams first.

The event store refuses an event whose stream version was taken meanwhile (optimistic
concurrency, an IntegrityError): nothing of the transaction is stored, so the write can run
again on fresh state. One policy for every write of the service layer: a few attempts, with
a short, growing, random pause between them so that racing writers spread out, then a
CONTENTION conflict that tells the caller to retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from eventsourcing.persistence import IntegrityError

from ledger.errors import Code, Conflict

T = TypeVar("T")

BATCH_ATTEMPTS = 3  # a batch of records, before each record runs alone
RECORD_ATTEMPTS = 50  # one record, one observation file chunk, one reservation


def retry_on_contention(write: Callable[[], T], *, attempts: int, contended: str) -> T:
    """`write()` until it stores without a version clash, at most `attempts` times; then a
    CONTENTION Conflict naming what was `contended` (and what to do)."""
    for attempt in range(attempts):
        try:
            return write()
        except IntegrityError:
            _backoff(attempt)
    raise Conflict(Code.CONTENTION, f"gave up after {attempts} concurrent updates of {contended}")


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.2)))
