"""Limits on the size and shape of any input, checked before anything walks it.

Everything after this check may recurse, buffer or copy without care: a record nested a
thousand levels deep made the card-number search raise RecursionError and cost the other
records of its batch; a line of gigabytes would be held whole. So every input is measured
first, without recursion, and refused with its own code (RECORD_TOO_LARGE, NESTING_TOO_DEEP)
when it is larger than any real record could be. `NaN` and `Infinity` are not JSON
(RFC 8259, section 6) and are refused as MALFORMED_JSON, never read as amounts.

The limits are far above what the wire format, Stripe's objects or its reports ever hold
(a wire record is under 4 KiB and 5 levels deep; a PaymentIntent under 64 KiB and 12 levels).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import orjson

from ledger.errors import Code, InvalidRecord

LINE_BYTES_MAX = 1024 * 1024  # one JSON Lines record, one webhook body, one JSON document item
DEPTH_MAX = 32  # nested objects and arrays
VALUES_MAX = 100_000  # keys, items and scalars in one document
STRING_CHARS_MAX = 65_536  # one string or key

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def check_line(raw: bytes, *, what: str = "the record") -> None:
    """Refuse one JSON text that is too large, too deep or holds NaN/Infinity.

    Cheap counts on the bytes rule out most records without decoding them: at most DEPTH_MAX
    opening brackets cannot nest deeper, fewer bytes than STRING_CHARS_MAX cannot hold more
    values (or longer strings), and neither `NaN` nor `Infinity` written anywhere leaves no
    such value. Only the rest is decoded (orjson: no Python recursion, its own depth limit of
    1024) and measured exactly; that decoding also refuses malformed JSON in its own words, so
    which lines take that way is the counts' answer exactly, never more or fewer.

    The counts take one pass, keeping the four bytes that can matter (usually two or three
    brackets): the brackets are counted there only when those are more than DEPTH_MAX, and
    the words are looked for only where an `N` or an `I` stands (a Stripe id's random
    letters, about one line in eight). Two counts and two searches of the whole line cost
    half as much again.
    """
    if len(raw) < STRING_CHARS_MAX:
        kept = raw.translate(None, _NOT_KEPT)
        shallow = len(kept) <= DEPTH_MAX or kept.count(b"[") + kept.count(b"{") <= DEPTH_MAX
        # find, not `in`: `in` on bytes first tries the needle as an integer, and fails.
        if shallow and (
            not kept.strip(b"[{") or (raw.find(b"NaN") < 0 and raw.find(b"Infinity") < 0)
        ):
            return
    check_size(raw, what=what)
    check_value(decode(raw, what=what), what=what)


def cleared(
    lines: Sequence[bytes], *, joined: bytes | None = None, longest: int | None = None
) -> bool:
    """Whether `check_line` clears each of `lines` by its quick counts alone (none as long as
    STRING_CHARS_MAX, none with more than DEPTH_MAX opening brackets, none holding `NaN` or
    `Infinity`), as it would line by line: counted over the lines joined by newlines, one
    translate and two searches for a whole batch instead of a call a line. A line holding a
    newline of its own makes it say False (every line is then measured on its own).

    `joined` and `longest`: exactly `b"\n".join(lines)` and the longest line's length in
    bytes (never less than its characters), when the caller has them already
    (`ledger.wire.parse_lines`: a join and a pass over the lengths are about 500
    instructions a line)."""
    if joined is None:
        joined = b"\n".join(lines)
    if not lines or joined.find(b"NaN") >= 0 or joined.find(b"Infinity") >= 0:
        return not lines
    if longest is None:
        longest = max(map(len, lines))
    # Each line's opening brackets as as many `{`, between newlines: a line with too many
    # is a run of more `{` than DEPTH_MAX, found by one search.
    brackets = joined.translate(_OPENING, _NOT_OPENING)
    return (
        brackets.count(b"\n") == len(lines) - 1
        and brackets.find(_TOO_DEEP) < 0
        and longest < STRING_CHARS_MAX
    )


# Every byte but the opening brackets and the newlines between lines (`cleared`), and both
# brackets as one.
_NOT_OPENING = bytes(sorted(set(range(256)) - set(b"[{\n")))
_OPENING = bytes(range(256)).replace(b"[", b"{")
_TOO_DEEP = b"{" * (DEPTH_MAX + 1)
# Every byte but the four `check_line` counts: the opening brackets and the capitals that
# start `NaN` and `Infinity`.
_NOT_KEPT = bytes(sorted(set(range(256)) - set(b"[{NI")))


def check_size(raw: bytes, *, what: str = "the record") -> None:
    """Refuse a JSON text longer than any record could be, before anything reads it."""
    if len(raw) > LINE_BYTES_MAX:
        raise InvalidRecord(
            Code.RECORD_TOO_LARGE,
            f"{what} is longer than {LINE_BYTES_MAX:,} bytes, the most accepted "
            "(one record per line: was a line break lost?)",
        )


def decode(raw: bytes, *, what: str = "the record") -> Any:
    """Strict JSON (orjson: UTF-8 only, no BOM, no NaN, no lone surrogate); InvalidRecord."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if "depth limit" in str(error) or "recursion" in str(error):
            raise _too_deep(what) from None
        # orjson's message names the position and the rule, never the text itself.
        raise InvalidRecord(Code.MALFORMED_JSON, f"{what} is not valid JSON: {error}") from None


def check_value(
    value: object,
    *,
    what: str = "the record",
    depth_max: int = DEPTH_MAX,
    values_max: int | None = VALUES_MAX,
) -> None:
    """Refuse a decoded document (or a library caller's dict) past the limits; no recursion.
    A whole file of records (`values_max` None) is bounded per record by its reader."""
    values = 0
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        values += 1
        if values_max is not None and values > values_max:
            raise InvalidRecord(
                Code.RECORD_TOO_LARGE,
                f"{what} holds more than {values_max:,} values; split it",
            )
        if isinstance(item, dict | list | tuple):
            if depth > depth_max:
                raise _too_deep(what, depth_max)
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key, what)
                    pending.append((child, depth + 1))
            else:
                pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_string(item, what)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidRecord(
                Code.INVALID_VALUE,
                f"{what} holds NaN or an infinity: amounts are whole numbers of minor units",
            )


def _check_string(text: object, what: str) -> None:
    if not isinstance(text, str):
        return
    if len(text) > STRING_CHARS_MAX:
        raise InvalidRecord(
            Code.RECORD_TOO_LARGE,
            f"{what} holds a string of {len(text):,} characters; at most "
            f"{STRING_CHARS_MAX:,} are accepted",
        )
    # A library caller's str (or Python's json, which decodes "\ud800") may hold a lone
    # surrogate: no UTF-8 encodes it, so every later step (validation messages, the store)
    # would fail on it. orjson refuses it in a JSON text with the same code.
    if not text.isascii() and _LONE_SURROGATE.search(text):
        raise InvalidRecord(
            Code.MALFORMED_JSON,
            f"{what} holds a lone surrogate (U+D800 to U+DFFF), which is not Unicode text",
        )


def _too_deep(what: str, depth_max: int = DEPTH_MAX) -> InvalidRecord:
    return InvalidRecord(
        Code.NESTING_TOO_DEEP,
        f"{what} nests objects or arrays more than {depth_max} levels deep; no record does",
    )
