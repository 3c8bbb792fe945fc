"""Stored events read as their plain JSON fields, for readers that go through the whole log and
need a few fields of each event (the projections' catch-up, the audit's invariants).

Decoding a stored event into its domain event (the library's mapper) turns every tagged value
back into what it tagged and builds an object per event: most of a catch-up's time, for rows
that keep a handful of fields. Here the state is parsed by orjson alone (after the ledger's
cipher and compressor, when it has them) into the fields the domain event would hold: the
same names and values, upcast by the event class's own upcasters when it was stored at an
earlier version, but with each moment left in its stored form (`moment` reads one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import MapperDeserialisationError
from eventsourcing.utils import resolve_topic

Fields = dict[str, Any]
StoredFields = tuple[int, str, str, Fields]  # position, stream id (32 hex digits), topic, fields


class FieldReader:
    """An event's fields from its stored state (`__call__`), as `ledger.Ledger.decode` would
    give them on its domain event, moments aside."""

    def __init__(self, mapper: Any) -> None:
        self.cipher, self.compressor = mapper.cipher, mapper.compressor
        self._classes: dict[str, tuple[int, type[Any]]] = {}  # topic -> class version, class

    def __call__(self, topic: str, state: bytes) -> Fields:
        """A state that does not decode (a wrong or missing cipher key, an edit) raises the
        library's MapperDeserialisationError, as the mapper does, its cause the reason."""
        try:
            if self.cipher:
                state = self.cipher.decrypt(state)
            if self.compressor:
                state = self.compressor.decompress(state)
            fields: Fields = orjson.loads(state)
        except Exception as error:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic '{topic}': {error}"
            ) from error
        stored_version = fields.pop("class_version", 1)
        latest, event_class = self._classes.get(topic) or self._class(topic)
        while stored_version < latest:
            getattr(event_class, f"upcast_v{stored_version}_v{stored_version + 1}")(fields)
            stored_version += 1
        return fields

    def _class(self, topic: str) -> tuple[int, type[Any]]:
        event_class = resolve_topic(topic)
        found = self._classes[topic] = (getattr(event_class, "class_version", 1), event_class)
        return found


def moment(stored: Fields) -> datetime:
    """A moment as a state stores it (the library's tagged ISO text), aware."""
    return datetime.fromisoformat(stored["_data_"])
