"""Sealed periods: signed statements of what the hash chain (`ledger.chain`) was at a position.

The chain alone is unkeyed: whoever can write to the database can edit an event and recompute
every later link, or cut the tail together with its links, and the chain still verifies. A
seal closes a period: it states the chain hash at one position (`head_hash`), how many events
the log held up to it (`count`) and the moment the period ends (`through`), and is signed
with an Ed25519 key kept outside the database (the signing is done in `adapters.seals`). An
auditor who keeps the seal files and the public key can tell, later, whether the events up to
each seal are still the ones sealed.

A seal is recorded in the log itself, on one stream (`Seals`), so it is chained like any fact,
exported with the log and imported with it in the same transaction. The stream's own events
are never what a seal covers last: a seal ends at a fact, so sealing twice with nothing new
recorded in between gives back the same seal.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from eventsourcing.domain import Aggregate

from ledger.errors import Code, Conflict, InvalidRecord
from ledger.identity import seals_id
from ledger.journal import Journaled

SEAL_FORMAT = "offline-ledger-seal/1"
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Seal:
    """One closed period: every field but `signature` is what was signed (`message`)."""

    through: str  # the period's end, UTC ISO 8601: every event it covers was recorded by then
    through_position: int  # the position of the last event it covers
    count: int  # the events in the log up to that position
    head_hash: str  # the chain hash at that position, hex
    sealed_at: str  # when it was signed, UTC ISO 8601
    key_id: str  # the first 16 hex digits of the SHA-256 of the raw public key
    signature: str  # base64 of the Ed25519 signature of `message()`
    format: str = SEAL_FORMAT

    def message(self) -> bytes:
        """The signed bytes: the fields but the signature, as JSON with sorted keys and no
        spaces, so any reader can rebuild them from the seal file."""
        signed = {key: value for key, value in self.to_dict().items() if key != "signature"}
        return orjson.dumps(signed, option=orjson.OPT_SORT_KEYS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def signature_bytes(self) -> bytes:
        return base64.b64decode(self.signature)

    @classmethod
    def from_dict(cls, value: object, where: str) -> Seal:
        """A seal read from a file or an export; INVALID_SEAL naming `where` when it is not
        one (a missing or extra field, a wrong type, a malformed hash, moment or signature)."""
        names = {f.name for f in fields(cls)}
        if not isinstance(value, dict) or set(value) != names:
            raise _invalid(where, f"a seal has exactly the fields {', '.join(sorted(names))}")
        if value["format"] != SEAL_FORMAT:
            raise _invalid(where, f"format is {value['format']!r}, not {SEAL_FORMAT!r}")
        for name in ("through_position", "count"):
            if type(value[name]) is not int or value[name] < 0:
                raise _invalid(where, f"{name} must be a whole number from 0")
        texts = ("through", "head_hash", "sealed_at", "key_id", "signature")
        if not all(isinstance(value[name], str) for name in texts):
            raise _invalid(where, f"{', '.join(texts)} must be strings")
        if not _HEX_HASH.fullmatch(value["head_hash"]):
            raise _invalid(where, "head_hash is not 64 lowercase hex digits")
        if not _KEY_ID.fullmatch(value["key_id"]):
            raise _invalid(where, "key_id is not 16 lowercase hex digits")
        for name in ("through", "sealed_at"):
            try:
                datetime.fromisoformat(value[name])
            except ValueError:
                raise _invalid(where, f"{name} is not an ISO 8601 moment") from None
        try:
            base64.b64decode(value["signature"], validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(where, "signature is not base64") from None
        return cls(**value)


def moment_text(moment: datetime) -> str:
    """A moment as a seal writes it: UTC, to the microsecond, with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _invalid(where: str, what: str) -> InvalidRecord:
    return InvalidRecord(Code.INVALID_SEAL, f"{where}: {what}", details={"file": where})


class Seals(Journaled):
    """Every seal this ledger made, in order: one stream for the whole ledger."""

    TOPIC = "offline_ledger:Seals"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:Seals.Event"

    class Started(Event, Aggregate.Created):
        TOPIC = "offline_ledger:Seals.Started"

        def apply(self, aggregate: Seals) -> None:
            aggregate.seals = []

    class Sealed(Event):
        TOPIC = "offline_ledger:Seals.Sealed"
        seal: dict[str, Any]

        def apply(self, aggregate: Seals) -> None:
            aggregate.seals.append(Seal(**self.seal))

    if TYPE_CHECKING:  # set by the events' apply()
        seals: list[Seal]

    @classmethod
    def start(cls) -> Seals:
        return cls._create(cls.Started, id=seals_id())

    @property
    def last(self) -> Seal | None:
        return self.seals[-1] if self.seals else None

    def close(self, seal: Seal) -> tuple[Seal, bool]:
        """Record `seal` and answer it with True; answer the recorded seal that ends at the
        same position with False (sealing again with nothing new is a repeat); refuse a
        seal ending before the last one: periods follow each other."""
        last = self.last
        if last is not None and seal.through_position == last.through_position:
            return last, False
        if last is not None and seal.through_position < last.through_position:
            raise Conflict(
                Code.INVALID_VALUE,
                f"the ledger is sealed through position {last.through_position} "
                f"({last.through}) already: a new seal closes a later period",
                field="through",
            )
        self.trigger_event(self.Sealed, seal=seal.to_dict())
        return seal, True
