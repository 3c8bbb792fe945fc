"""The eventsourcing library's JSON format for stored events, encoded by orjson.

Encoding event state with the standard library's json module (and a Python callback for each
datetime) was the largest single cost of saving an event. This writes the same bytes layout
(`{"_type_": "datetime_iso", "_data_": "..."}` for datetimes, `uuid_hex` for UUIDs), so events
written either way read back the same through the library's own decoder.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder


class OrjsonTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(_tagged(obj))


def _tagged(value: Any) -> Any:
    """Wrap the types JSON has no name for in the library's tagged form."""
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tagged(item) for item in value]
    if isinstance(value, datetime):
        return {"_type_": "datetime_iso", "_data_": value}  # orjson writes isoformat() text
    if isinstance(value, UUID):
        return {"_type_": "uuid_hex", "_data_": value.hex}
    if isinstance(value, Decimal):
        return {"_type_": "decimal_str", "_data_": str(value)}
    return value
