"""The eventsourcing library's JSON format for stored events, encoded and decoded by orjson.

Encoding event state with the standard library's json module (and a Python callback for each
datetime) was the largest single cost of saving an event; walking every value in Python to wrap
datetimes before handing the result to orjson was the next one. Here orjson walks the state in
Rust and calls back into Python only for the values JSON has no name for: datetimes (passed
through to `default` rather than written as plain text) and any other type the library has a
transcoding for. The bytes are the library's own layout (`{"_type_":"datetime_iso","_data_":
"..."}`, compact separators, UTF-8), so events written by either transcoder, before or after
this one, read back the same, and the hash chain over the stored bytes holds across them.

orjson writes a UUID as its canonical text with no hook to tag it, so a UUID inside an event's
state would come back as a string: events hold ids as strings (`Payment.offline_id`), and
`encode` refuses a UUID at the top level of a state, where the library's own fields would put it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timezone
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError

_TYPE, _DATA = "_type_", "_data_"
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
_CONTAINERS = (dict, list)
# The bytes before a tagged datetime's text, by the transcoding's name: `{"_type_":"...","_data_":`
_TAG_PREFIXES: dict[str, bytes] = {}
# Fixed offsets (`datetime.timezone`) seen to be whole minutes, which orjson writes as Python
# does; a zone whose offset moves with the moment (`zoneinfo`) is asked each time. Bounded: a
# file could name every offset there is.
_WHOLE_MINUTE_ZONES: set[timezone] = set()
_WHOLE_MINUTE_ZONES_MAX = 4_096
_UUID_REFUSED = "a UUID in an event's state would be stored untagged: store its text instead"
_TAG_KEY = (
    b'"_type_"'  # in every tagged value's bytes; a string or key of that text just costs a walk
)


class OrjsonTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        # `in` over a map of types runs in C: a generator expression cost as much as the dump.
        if isinstance(obj, dict) and UUID in map(type, obj.values()):
            raise TranscodingNotRegisteredError(_UUID_REFUSED)
        return _kept(orjson.dumps(obj, default=self._tagged, option=_OPTIONS))

    def event_encoder(self) -> Callable[[dict[str, Any], int, tuple[str, ...]], bytes]:
        """`encode` of an event's stored state, for a batch of events: `(fields,
        class_version, moments)` gives the state of the fields less the originator's id and
        version, with `class_version` last when above 1 (the library mapper's layout). The
        datetimes' transcoding is looked up once for the batch.

        `moments`: the fields the event's class declares as datetimes (every event's
        `timestamp`, its `occurred_at`...), tagged here, one Python call each, rather than
        through orjson's `default`, which calls back into Python for each one and looks up the
        transcoding there. Only they are visited: the state is the fields' dict copied, its
        two originator keys deleted (the order of the rest kept), and checked for a UUID in
        C. A datetime anywhere else (a field whose declaration does not say so, a nested
        one) goes through `default` and is written with the same bytes."""
        transcoding = self.types.get(datetime)
        if transcoding is None:  # no tag to write: `encode` says so
            return self._encode_event_untagged
        prefix, fragment, dumps, tagged = (
            _tag_prefix(transcoding.name),
            orjson.Fragment,
            orjson.dumps,
            self._tagged,
        )

        def encode_event(
            fields: dict[str, Any], class_version: int, moments: tuple[str, ...]
        ) -> bytes:
            state = fields.copy()
            del state["originator_id"], state["originator_version"]
            if UUID in map(type, state.values()):
                raise TranscodingNotRegisteredError(_UUID_REFUSED)
            for name in moments:
                value = state.get(name)
                if type(value) is datetime:
                    # The library's clock's UTC (every `timestamp`) without `_isoformat_json`.
                    text = dumps(value) if value.tzinfo is UTC else _isoformat_json(value)
                    state[name] = fragment(prefix + text + b"}")
            if class_version > 1:
                state["class_version"] = class_version
            return _kept(dumps(state, default=tagged, option=_OPTIONS))

        return encode_event

    def _encode_event_untagged(
        self, fields: dict[str, Any], class_version: int, moments: tuple[str, ...]
    ) -> bytes:
        state = dict(fields)
        del state["originator_id"], state["originator_version"]
        if class_version > 1:
            state["class_version"] = class_version
        return self.encode(state)

    def decode(self, data: bytes) -> Any:
        """orjson's parse, then the tagged values turned back into what they tagged. Most
        events hold their tagged values (`timestamp`, `occurred_at`) at the top level only:
        counting the tags in the bytes first tells when nothing below needs a walk."""
        value = orjson.loads(data)
        tags = data.count(_TAG_KEY)
        if not tags or type(value) is not dict:
            return self._untagged(value) if tags else value
        for key, item in value.items():
            if type(item) is dict and len(item) == 2 and _TYPE in item and _DATA in item:
                value[key] = self._decode_obj(item)
                tags -= 1
        return self._untagged(value) if tags else value

    def _tagged(self, value: object) -> object:
        """The library's tagged form of a value orjson hands back (a datetime, a Decimal).
        A datetime's is handed back as the finished bytes (an `orjson.Fragment`): the same
        bytes orjson would write for the tag's dict, without building the dict, decoding
        the text into it and walking it again (half the cost of encoding an event)."""
        transcoding = self.types.get(type(value))
        if transcoding is None:
            raise TypeError(f"no transcoding for {type(value).__name__}")
        if type(value) is datetime:
            return orjson.Fragment(_tag_prefix(transcoding.name) + _isoformat_json(value) + b"}")
        return {_TYPE: transcoding.name, _DATA: transcoding.encode(value)}

    def _untagged(self, value: Any) -> Any:
        """`value` with every tagged object turned back into what it tagged; containers are
        rebuilt only where needed, and lists of plain values are left as they are."""
        if type(value) is dict:
            if len(value) == 2 and _TYPE in value and _DATA in value:
                return self._decode_obj(value)
            return {
                key: self._untagged(item) if type(item) in _CONTAINERS else item
                for key, item in value.items()
            }
        if any(type(item) in _CONTAINERS for item in value):
            return [self._untagged(item) if type(item) in _CONTAINERS else item for item in value]
        return value


def _kept(dumped: bytes) -> bytes:
    """orjson's output copied into bytes of its own size, for output that is kept (a batch's
    stored states wait for the batch's write). orjson writes into a buffer larger than what
    it returns and shrinks it in place: each output kept holds a fresh page of the heap, a
    page fault apiece (about 1.5 us of system time on this machine, as much as the dump),
    while a copy made at once lets the next dump reuse the freed buffer."""
    return memoryview(dumped).tobytes()


def _tag_prefix(name: str) -> bytes:
    """The bytes before a tagged value's text: `{"_type_":"<name>","_data_":`."""
    prefix = _TAG_PREFIXES.get(name)
    if prefix is None:
        prefix = _TAG_PREFIXES[name] = (
            b'{"' + _TYPE.encode() + b'":' + orjson.dumps(name) + b',"' + _DATA.encode() + b'":'
        )
    return prefix


def _isoformat_json(moment: datetime) -> bytes:
    """`moment.isoformat()`, the library's text for a datetime, as a JSON string written by
    orjson: the same characters for every offset in whole minutes (all that RFC 3339, and so
    every record, can give) at about a tenth of the cost; an offset in seconds, which orjson
    would round, keeps Python's own text. Each event holds three or four datetimes. Only
    `timezone` objects are remembered: a zone of another kind may not even be hashable
    (dateutil's)."""
    zone = moment.tzinfo
    if zone is not UTC and not (type(zone) is timezone and zone in _WHOLE_MINUTE_ZONES):
        offset = moment.utcoffset()
        if offset is not None and (offset.seconds % 60 or offset.microseconds):
            return orjson.dumps(moment.isoformat())
        if type(zone) is timezone and len(_WHOLE_MINUTE_ZONES) < _WHOLE_MINUTE_ZONES_MAX:
            _WHOLE_MINUTE_ZONES.add(zone)  # a fixed offset: the same for every moment
    return orjson.dumps(moment)
