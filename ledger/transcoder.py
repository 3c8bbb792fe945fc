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

import sys
from collections.abc import Generator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from itertools import chain
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
# Pydantic's zones (`TzInfo`, what Stripe's facts carry) are asked (`_known_whole_minutes`); the
# wire's parse gives the standard library's fixed offsets, remembered here.
_WHOLE_MINUTE_ZONES: set[timezone] = set()
_WHOLE_MINUTE_ZONES_MAX = 4_096


class _NotLoaded:
    """No zone is of this type: pydantic's zone type until pydantic is loaded."""


# Pydantic's zone type (`pydantic_core.TzInfo`), read once pydantic is loaded (`_read_zone_type`):
# a command that only reads the ledger (`status`) does not load pydantic to encode nothing.
_pydantic_zone: type = _NotLoaded
_UUID_REFUSED = "a UUID in an event's state would be stored untagged: store its text instead"
# Between two states of a batch dumped together, and what it gives in orjson's output. The cut
# and the hole are runs of a control byte (which orjson never writes: JSON strings escape it)
# rather than one such byte: `bytes.split` on one byte tests every byte of the batch's output,
# on a longer pattern it skips ahead past any byte not in it. Each pattern split on (the cut with
# its commas) is under six bytes: from six on, in a long output, CPython searches by the two-way
# algorithm, whose set-up every search of the split repeats (about 900 instructions an event
# fewer than one byte each).
_CUT = b"\x00" * 3
_CUT_FRAGMENT = orjson.Fragment(_CUT)
_CUT_APART = b"," + _CUT + b","
# Where a datetime's text goes in a batch's output, and the hole's bytes by the tag's prefix.
_HOLE = b"\x01" * 5
_HOLE_FRAGMENTS: dict[bytes, orjson.Fragment] = {}
_TAG_KEY = (
    b'"_type_"'  # in every tagged value's bytes; a string or key of that text just costs a walk
)


class OrjsonTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        # `in` over a map of types runs in C: a generator expression cost as much as the dump.
        if isinstance(obj, dict) and UUID in map(type, obj.values()):
            raise TranscodingNotRegisteredError(_UUID_REFUSED)
        return _kept(orjson.dumps(obj, default=self._tagged, option=_OPTIONS))

    def encode_events(
        self, fields: Sequence[dict[str, Any]], versions: Sequence[int]
    ) -> list[bytes]:
        """`encode` of a batch of events' stored states, in one call of orjson for the batch.
        `fields[i]`: an event's fields; `versions[i]`: its class version (above 1 written
        last, as the library's mapper does). Each state is its fields less the originator's
        id and version, the order of the rest kept; the bytes are `encode`'s for that state.

        What a batch spares, the same bytes per event: a call of orjson per event and per
        datetime, each about 2,000 instructions before any byte is written. Every state is
        written by one `dumps` of the list of them with bytes orjson never writes between
        them (a run of a control character, which JSON strings escape), cut apart by a `split`. Each
        datetime orjson meets there, at any depth, is handed to `_holes`, which notes
        it and has orjson write its tag around another such run; the noted moments are then
        written by one `dumps` of their list, and their texts joined into the holes in C. A
        datetime whose offset is not known to be whole minutes is written where it stands
        (`_tagged`), by `_isoformat_json` (Python's text for an offset in seconds)."""
        transcoding = self.types.get(datetime)
        if not fields:
            return []
        if transcoding is None:  # no tag to write: `encode` says so
            return [
                self.encode(library_state(one, class_version))
                for one, class_version in zip(fields, versions, strict=True)
            ]
        states = list(map(dict.copy, fields))
        for state, class_version in zip(states, versions, strict=True):
            del state["originator_id"], state["originator_version"]
            if class_version > 1:
                state["class_version"] = class_version
        if UUID in set(map(type, chain.from_iterable(map(dict.values, states)))):
            raise TranscodingNotRegisteredError(_UUID_REFUSED)
        moments: list[datetime] = []
        holes = _holes(self, _tag_prefix(transcoding.name), moments)
        next(holes)
        together: list[object] = [_CUT_FRAGMENT] * (2 * len(states) - 1)
        together[::2] = states
        try:
            dumped = orjson.dumps(together, default=holes.send, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # The list puts every state one level deeper: a state nested to orjson's limit
            # fails only here. Each alone gives the same bytes, or the error one alone gives.
            return list(map(self.encode, states))
        if moments:
            pieces = dumped.split(_HOLE)
            parts: list[bytes] = [b""] * (2 * len(moments) + 1)
            parts[::2] = pieces
            parts[1::2] = orjson.dumps(moments)[1:-1].split(b",")
            dumped = b"".join(parts)
        encoded = dumped[1:-1].split(_CUT_APART)
        assert len(encoded) == len(states), (len(encoded), len(states))
        return encoded

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


def _holes(
    transcoder: OrjsonTranscoder, prefix: bytes, moments: list[datetime]
) -> Generator[object, object, None]:
    """A batch's datetimes as orjson meets them, each written as a hole (the tag's bytes
    around bytes orjson never writes) and its moment noted in `moments`, in the order of the
    output; its `send` is orjson's `default`, primed by a first `next`. A datetime in a fixed
    offset of whole minutes becomes a hole; any other value what `_tagged` makes of it.

    A generator rather than a method: orjson's call of `send` resumes this one frame where a
    method's call makes a new frame each time, about a third of what a moment's hole cost
    (2.4 an event: the library's UTC `timestamp`, the record's `occurred_at`...). The only
    Python a moment costs is this loop's turn; its hole is one shared `Fragment`, and the
    order of the moments is the output's by construction, whatever the order of a state's
    keys."""
    note = moments.append
    fragment = _HOLE_FRAGMENTS.get(prefix) or _HOLE_FRAGMENTS.setdefault(
        prefix, orjson.Fragment(prefix + _HOLE + b"}")
    )
    tagged = transcoder._tagged
    value = yield None
    while True:
        if type(value) is datetime:
            zone: Any = value.tzinfo
            # UTC first (every event's timestamp), then `_known_whole_minutes` written out:
            # the wire's parsed moments have a fixed offset (`timezone`), Stripe's facts a
            # pydantic zone each.
            if (
                zone is UTC
                or (type(zone) is timezone and zone in _WHOLE_MINUTE_ZONES)
                or (type(zone) is _pydantic_zone and not zone.utcoffset(None).seconds % 60)  # type: ignore[attr-defined]
            ):
                note(value)
                value = yield fragment
                continue
        value = yield tagged(value)


def library_state(fields: dict[str, Any], class_version: int) -> dict[str, Any]:
    """The state the library's mapper encodes for an event of these fields: all but the
    originator's id and version, with `class_version` last when above 1."""
    state = dict(fields)
    del state["originator_id"], state["originator_version"]
    if class_version > 1:
        state["class_version"] = class_version
    return state


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
    would round, keeps Python's own text. Each event holds three or four datetimes."""
    zone = moment.tzinfo
    if zone is not UTC and not _known_whole_minutes(zone):
        offset = moment.utcoffset()
        if offset is not None and (offset.seconds % 60 or offset.microseconds):
            return orjson.dumps(moment.isoformat())
        if _pydantic_zone is _NotLoaded:
            _read_zone_type()  # pydantic's next zones are known, if it is loaded now
        if type(zone) is timezone and len(_WHOLE_MINUTE_ZONES) < _WHOLE_MINUTE_ZONES_MAX:
            _WHOLE_MINUTE_ZONES.add(zone)  # a fixed offset: the same for every moment
    return orjson.dumps(moment)


def _known_whole_minutes(zone: object) -> bool:
    """Whether `zone` is known to be a fixed offset in whole minutes. A pydantic zone is a
    whole number of seconds (`TzInfo(seconds)`), asked through its type's own `utcoffset`:
    about 1,000 instructions against 2,000 for its text (`str()`, `+01:00`), which a set of
    them was keyed by; its equality and hash are calls into Rust costing more. Only the
    standard library's fixed offsets are remembered: a zone of another kind may not even be
    hashable (dateutil's)."""
    if type(zone) is _pydantic_zone:
        offset: timedelta = _pydantic_zone.utcoffset(zone, None)  # type: ignore[attr-defined]
        return not offset.seconds % 60
    return type(zone) is timezone and zone in _WHOLE_MINUTE_ZONES


def _read_zone_type() -> None:
    """Pydantic's zone type, once pydantic is loaded: a zone of it can exist only then."""
    global _pydantic_zone
    module = sys.modules.get("pydantic_core")
    if module is not None:
        _pydantic_zone = module.TzInfo
