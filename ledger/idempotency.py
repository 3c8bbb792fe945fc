"""Idempotency keys: the client names a record, a retry answers "exists", a different body
under the same key is an error that names the field that differs.

A key is its own stream, created in the same transaction as the record's effects, holding one
digest per field rather than the record itself (so no card detail or metadata is copied).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.errors import Code, Conflict
from ledger.identity import idempotency_key_id
from ledger.journal import Journaled


class IdempotencyKey(Journaled):
    TOPIC = "offline_ledger:IdempotencyKey"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:IdempotencyKey.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:IdempotencyKey.Created"

    class Recorded(Created):
        TOPIC = "offline_ledger:IdempotencyKey.Recorded"
        key: str
        record_type: str
        digests: dict[str, str]

        def apply(self, aggregate: IdempotencyKey) -> None:
            aggregate.key = self.key
            aggregate.record_type = self.record_type
            aggregate.digests = dict(self.digests)

    if TYPE_CHECKING:  # set by the events' apply(); runtime annotations would make
        # the eventsourcing metaclass generate a dataclass __init__
        key: str
        record_type: str
        digests: dict[str, str]

    @classmethod
    def record(
        cls, key: str, record_type: str, digests: dict[str, str], stream: UUID | None = None
    ) -> IdempotencyKey:
        """`stream`: the request's own stream id, when the key is not a client's."""
        return cls._create(
            cls.Recorded,
            id=stream or idempotency_key_id(key),
            key=key,
            record_type=record_type,
            digests=digests,
        )

    def check_same(self, digests: dict[str, str]) -> None:
        """Raise IDEMPOTENCY_CONFLICT naming the first field whose content differs."""
        for field in sorted(self.digests.keys() | digests.keys()):
            if self.digests.get(field) != digests.get(field):
                raise Conflict(
                    Code.IDEMPOTENCY_CONFLICT,
                    f"idempotency_key '{self.key}' was already used for a record whose "
                    f"'{field}' differs; use a new key for a new record",
                    field=field,
                )


def field_digests(content: Mapping[str, object]) -> dict[str, str]:
    """One short digest per leaf field (dotted path), so conflicts can name the field."""
    digests: dict[str, str] = {}
    _flatten(content, "", digests)
    return digests


def _flatten(value: object, path: str, into: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), into)
        return
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    into[path] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
