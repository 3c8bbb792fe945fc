"""Detection and masking of full card numbers (PANs) in any input text.

The ledger must never store a full card number, nor echo one back (PCI DSS). A PAN is 13 to 19
digits with a valid Luhn check digit, and people and programs write it in many disguises, so
one scanner reads the raw text of every input before it is parsed and sees through them:

- every Unicode decimal digit (full-width, Arabic-Indic, superscripts...) counts as its
  ASCII digit, and a JSON `\\uXXXX` escape counts as the character it stands for;
- any run of characters that are neither letters nor digits (spaces, NBSP, zero-width spaces,
  tabs, dots, slashes, underscores, dashes, quotes, commas, the JSON escapes `\\t` `\\n`...)
  between digit groups joins them: `4242.4242.4242.4242` and `["4242 4242", "4242 4242"]` are
  one number;
- no word boundary is needed: `card4242424242424242`, `pi_4242424242424242` hold one.

Every run of consecutive digit groups (each group taken whole) that adds up to 13-19 digits is
a candidate, refused when it passes the Luhn check.

What is still allowed, because real data is made of it and would otherwise be refused:

- a run of 20 or more digits with nothing between them is one token, not a card number, even
  if a card number is part of it (it is no longer a usable PAN without knowing where it sits);
- a UUID (`8-4-4-4-12` hex digits), a run of 24 or more hexadecimal characters standing
  alone (a UUID without dashes, a MongoDB ObjectId, a SHA digest, an `evt_` + hex id) and a
  date or RFC 3339 date-time of the years 1900-2199 are whole tokens: their digit groups never
  join into a candidate (random hex holds a 13-digit run often enough that one id in a
  few hundred would otherwise be refused);
- letters split digits: a Stripe id such as `pi_3MtwBwLkdIwHu7ix28a3tqPa` holds only short
  digit groups, which a letter keeps apart.

A value made of punctuation-separated digit groups that add up to 13-19 digits (an id like
`12-3456-7890-123`) is refused one time in ten, when the Luhn check happens to pass: separate
digit groups with letters in identifiers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from pydantic_core import SchemaValidator

PAN_DIGITS_MIN = 13
PAN_DIGITS_MAX = 19
MASK_RUN_MIN = 6  # digit runs at least this long are masked when quoted
MASK_KEEP = 4  # the last digits a masked run keeps (as a receipt shows them)

# A JSON \uXXXX escape, or two that make a surrogate pair (a character past U+FFFF, such as
# the mathematical digits); a lone surrogate is no digit and no letter.
_UNICODE_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9A-Fa-f]{4})"
)
# A separator: neither letter nor digit (\W), an underscore, or the letter of a JSON escape
# such as \t or \n (the backslash itself is \W).
_SEPARATOR = r"(?:[\W_]|(?<=\\)[bfnrt])"
_CHAIN = re.compile(rf"[0-9]+(?:{_SEPARATOR}+[0-9]+)*")
_GROUP = re.compile(r"[0-9]+")
# The quick test, in two linear passes: with every separator removed, a text without 13
# consecutive digits holds no 13 digits joined by separators (most records), and needs no
# barrier work. (One backtracking regex for the same test cost ten times as much.)
_ESCAPED_LETTER = re.compile(r"\\[bfnrt]")
_SEPARATORS = re.compile(r"[\W_]+")
_ASCII_SEPARATORS = bytes(code for code in range(128) if not chr(code).isalnum())
_THIRTEEN = re.compile(rf"[0-9]{{{PAN_DIGITS_MIN}}}")
_THIRTEEN_BYTES = re.compile(rb"[0-9]{%d}" % PAN_DIGITS_MIN)
_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"
_HEX = "[0-9A-Fa-f]"
_UUID = (
    rf"{_NOT_ALNUM_BEFORE}{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
    rf"{_NOT_ALNUM_AFTER}"
)
# Whole tokens whose digits never join into a candidate (see the module docstring).
_CENTURY = "(?:19|20|21)"
_YEAR_MONTH_DAY = "[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"  # after the century
_HOURS_MINUTES = "[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]"
_SECONDS = ":(?:[0-5][0-9]|60)"
_FRACTION = "(?:[.,][0-9]{1,9})"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])"
_DATE_TIME = (
    rf"{_NOT_ALNUM_BEFORE}{_CENTURY}{_YEAR_MONTH_DAY}"
    rf"(?:{_HOURS_MINUTES}(?:{_SECONDS}{_FRACTION}?)?{_OFFSET}?)?{_NOT_ALNUM_AFTER}"
)
# Date-times are taken out first, on their own: nearly every record holds one, and one with
# milliseconds has 13 digits joined by punctuation, which would fail the quick test. No other
# barrier can overlap a date-time (none holds two dashes 2 characters apart), so this changes
# nothing of what the barriers leave. The same pattern, written to begin with a character set:
# the regex engine then skips to the next 1 or 2 in C instead of trying the leading lookbehind
# at every position (half the cost of the scan); the lookbehind looks past that first digit.
_DATE_TIMES = re.compile(
    r"[12](?<![0-9A-Za-z].)(?:(?<=1)9|(?<=2)[01])"
    + _DATE_TIME.removeprefix(_NOT_ALNUM_BEFORE + _CENTURY)
)
_BARRIERS = re.compile(
    "|".join(
        [
            r"[0-9]{20,}",
            _UUID,
            rf"{_NOT_ALNUM_BEFORE}(?:[0-9a-f]{{24,}}|[0-9A-F]{{24,}}){_NOT_ALNUM_AFTER}",
        ]
    )
)
# The pre-filter's date-time: a complete one (time, seconds and offset) of the years 2000-2099
# standing alone between double quotes, as a record's moments are written. `_DATE_TIMES` takes
# every such text out whole, the same characters (a quote is no character of a date-time, so no
# date-time found before it reaches into it, and after it nothing lets the greedy reading stop
# short), so taking out only these, and keeping the quotes, takes out nothing `_DATE_TIMES`
# keeps. Beginning with the literal `"20`, the pattern is tried only where that stands: tried
# at every quote, it cost twice as much.
_QUOTED_DATE_TIMES = re.compile(
    f'"20{_YEAR_MONTH_DAY}{_HOURS_MINUTES}{_SECONDS}{_FRACTION}?{_OFFSET}"'.encode("ascii")
)
# The pre-filter's second stage, for the few records the first leaves (a UUID's hex holding 13
# digits in a row, about one payment's in forty): UUIDs standing between double quotes, which
# `_BARRIERS` takes out whole (nothing it or `_DATE_TIMES` takes out spans a quote, and a
# UUID holds no date-time).
_QUOTED_UUIDS = re.compile(
    f'"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"'.encode("ascii")
)
_ESCAPED_LETTER_BYTES = re.compile(_ESCAPED_LETTER.pattern.encode("ascii"))
# What the pre-filter reads an escaped letter (`\\t`) as: a separator, as the scan reads it,
# but none that a quoted date-time or UUID may hold. The scan takes its date-times out before
# it reads escapes, so in `"2026-11-22\\t08:02:39.451+01:00"` it sees a date and a time of 13
# joined digits; a space here would have made it one date-time and taken both out.
_NO_DATE_TIME_SEPARATOR = b"/"
# The pre-filter's squeeze of UTF-8 bytes: every ASCII digit becomes 0 and every character past
# ASCII one 0 as well (its leading byte: any of them may be a digit, and as a digit it joins at
# least as much as a separator or a letter would); separators and continuation bytes go.
_ZEROS = bytes(ord("0") if code in b"0123456789" or code >= 0xC0 else code for code in range(256))
_SQUEEZED = _ASCII_SEPARATORS + bytes(range(0x80, 0xC0))
_THIRTEEN_ZEROS = b"0" * PAN_DIGITS_MIN
# A digit run to mask, or a UUID, kept whole: it names a payment and holds no card number.
_RUN_OR_UUID = re.compile(rf"(?P<uuid>{_UUID})|[0-9]{{{MASK_RUN_MIN},}}")
_QUOTED_MAX = 60


class _AsciiDigits(dict[int, str]):
    """str.translate table: every Unicode digit to its ASCII digit, other characters kept."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = unicodedata.digit(char, None) if code > 127 else None
        self[code] = result = char if value is None else str(value)
        return result


_ASCII_DIGITS = _AsciiDigits()


def _unescape(match: re.Match[str]) -> str:
    high, low, single = match.groups()
    if single is None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    code = int(single, 16)
    return " " if 0xD800 <= code <= 0xDFFF else chr(code)


def normalized(text: str) -> str:
    """The text as the scanner reads it: JSON \\u escapes decoded, every digit ASCII."""
    if "\\u" in text:
        text = _UNICODE_ESCAPE.sub(_unescape, text)
    return text if text.isascii() else text.translate(_ASCII_DIGITS)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of ASCII digits, as card numbers carry it."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _chain_holds_pan(chain: str) -> bool:
    """Whether consecutive whole digit groups of a chain make a Luhn-valid 13-19 digits."""
    groups = _GROUP.findall(chain)
    for start in range(len(groups)):
        digits = ""
        for group in groups[start:]:
            digits += group
            if len(digits) > PAN_DIGITS_MAX:
                break
            if len(digits) >= PAN_DIGITS_MIN and luhn_valid(digits):
                return True
    return False


def _crossed_out(match: re.Match[str]) -> str:
    """A barrier token as letters of its length: its digits join nothing."""
    return "x" * len(match.group())


def _joins_thirteen(text: str) -> bool:
    """Whether 13 digits stand joined by separators only: the text without its separators
    holds 13 consecutive digits. ASCII text (nearly every record) loses them by one
    bytes.translate, far cheaper than any regex over it."""
    if "\\" in text:
        text = _ESCAPED_LETTER.sub(" ", text)
    if text.isascii():
        squeezed = text.encode("ascii").translate(None, _ASCII_SEPARATORS)
        return _THIRTEEN_BYTES.search(squeezed) is not None
    return _THIRTEEN.search(_SEPARATORS.sub("", text)) is not None


def holds_pan(text: str | bytes) -> bool:
    """Whether raw input text holds a full card number in any disguise (module docstring).

    Bytes are read as UTF-8 (invalid bytes become U+FFFD, which separates like punctuation),
    so that text which is not valid JSON or not valid UTF-8 is searched all the same.
    """
    # Nothing below lengthens the text (an escape or a date-time shortens it, a Unicode digit
    # stays one character, an invalid UTF-8 sequence becomes one): fewer characters than a card
    # number's digits hold none. Most keys and values read one by one are that short.
    if len(text) < PAN_DIGITS_MIN:
        return False
    # A line is bytes already: `bytes()` would give it back, at a cost of about 1,000
    # instructions (its arguments parsed), an eighth of the pre-filter's regex.
    if type(text) is bytes:
        raw = text
    elif isinstance(text, str):
        raw = text.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(text)
    return _may_join_thirteen(raw) and _searched(text)


def _may_join_thirteen(raw: bytes) -> bool:
    """The pre-filter: False only when the text surely holds no 13 digits joined by separators
    once its date-times are taken out, so no card number. Nearly every record ends here, at the
    cost of one regex tried only where `"20` stands and one bytes.translate: decoding the text,
    making its digits ASCII and taking out every date-time cost about three times as much. The
    few it does not end go through it again without their quoted UUIDs (`_QUOTED_UUIDS`):
    the full scan of one cost about thirty times as much.

    It reads the bytes as they are (no JSON `\\u` escape in them: those are decoded first by
    `_searched`), and answers True whenever `_searched` finds a card number: it takes out fewer
    date-times than its quick test does (only quoted complete ones, see `_QUOTED_DATE_TIMES`),
    fewer UUIDs than its barriers do (only quoted ones), and reads every character past ASCII
    as a digit."""
    # Whether bytes hold a part is asked by `partition`, which gives the part back when found:
    # `find` parses its arguments from a tuple (about 450 instructions more), `in` first tries
    # the part as an integer and clears the error.
    if raw.partition(b"\\")[1]:
        if raw.partition(b"\\u")[1]:
            return True
        raw = _ESCAPED_LETTER_BYTES.sub(_NO_DATE_TIME_SEPARATOR, raw)
    # The same bytes as `sub`, with less of its machinery (about 500 instructions).
    raw = b'"x"'.join(_QUOTED_DATE_TIMES.split(raw))
    if not raw.translate(_ZEROS, _SQUEEZED).partition(_THIRTEEN_ZEROS)[1]:
        return False
    raw = _QUOTED_UUIDS.sub(b'"x"', raw)
    return bool(raw.translate(_ZEROS, _SQUEEZED).partition(_THIRTEEN_ZEROS)[1])


# The batch's pre-filter (`suspects`), one regular expression run by pydantic-core's regex
# engine (Rust's `regex`: a lazy DFA, about 8.5 instructions a byte, where `_may_join_thirteen`'s
# regexes and squeezes cost about 40 a byte over a batch). A text matches it when every stretch
# between its letters, once its quoted date-times and quoted UUIDs are taken out, holds at most
# 12 digits, counting every character past ASCII as one (any of them may be a Unicode digit):
# then `_searched` finds no 13 digits joined, so no card number. The text is split into
# stretches (ASCII separators and at most 12 digits) and tokens (an ASCII letter, a quoted
# date-time or UUID as `_QUOTED_DATE_TIMES` and `_QUOTED_UUIDS` read them, which the scan takes
# out whole, see there); the engine answers whether some such split exists, and any one is
# enough: the scan takes out at least those tokens, and its letter-free stretches lie within
# those of the split. A backslash matches nothing (the scan reads escapes); neither does a text
# that is not UTF-8. A newline is a separator, as the scan reads it: lines joined by newlines
# match only when each line does.
_JOINER = r"[\x00-/:-@\[\]-`{-\x7F]"  # every ASCII character but letters, digits, backslash
_DIGIT_OR_BEYOND = r"[0-9\x{80}-\x{10FFFF}]"
_STRETCH = rf"{_JOINER}*(?:{_DIGIT_OR_BEYOND}{_JOINER}*){{0,{PAN_DIGITS_MIN - 1}}}"
_TOKEN = (
    rf"(?:[A-Za-z]|{_QUOTED_DATE_TIMES.pattern.decode('ascii')}"
    rf"|{_QUOTED_UUIDS.pattern.decode('ascii')})"
)
_JOINS_NO_THIRTEEN = rf"^{_STRETCH}(?:{_TOKEN}{_STRETCH})*$"


@cache
def _joining_no_thirteen() -> SchemaValidator:
    """Each of a list of texts (bytes read as UTF-8) as itself when it matches
    `_JOINS_NO_THIRTEEN`, else None. Built when first used: a command that reads no batch does
    not compile it. The engine is named, so that a pattern it could not compile fails here
    instead of going to Python's `re`, whose backtracking this pattern would not survive.
    pydantic-core is imported here, not with the module: `status` masks with this module and
    loads no pydantic."""
    from pydantic_core import SchemaValidator, core_schema

    text = core_schema.str_schema(pattern=_JOINS_NO_THIRTEEN)
    return SchemaValidator(
        core_schema.list_schema(
            core_schema.with_default_schema(text, default=None, on_error="default")
        ),
        core_schema.CoreConfig(regex_engine="rust-regex"),
    )


# The most bytes of lines `suspects` joins into one text: the engine's answer is a `str` of the
# whole text, up to four bytes a character (one emoji in a batch makes every character four),
# so a batch of long lines joined whole would be held several times over at once.
JOINED_BYTES_MAX = 1 << 20


def suspects(lines: Sequence[bytes], joined: bytes | None = None) -> set[int]:
    """The indices of the lines `holds_pan` may find a card number in: every one it finds
    one in, and the few that `_JOINS_NO_THIRTEEN` does not clear. The lines are tried joined
    by newlines first, one pass over the batch (they all match when that does), in runs of
    at most JOINED_BYTES_MAX bytes (a longer line alone); only a run that does not match is
    tried line by line, about a third dearer a line. `joined`: `b"\n".join(lines)` exactly,
    when the caller has it already (tried as it is when that short): any other text would
    be searched in the lines' place."""
    check = _joining_no_thirteen().validate_python
    found: set[int] = set()
    for start, run, text in _runs(lines, joined):
        if check([text])[0] is None:
            found.update(start + n for n, line in enumerate(check(run)) if line is None)
    return found


def _runs(
    lines: Sequence[bytes], joined: bytes | None
) -> Iterator[tuple[int, Sequence[bytes], bytes]]:
    """The lines in consecutive runs of at most JOINED_BYTES_MAX bytes joined, with the index
    of each run's first line and the run joined: the whole batch at once when it is that
    short, as a batch of the contract's usual lines is (a few hundred bytes each)."""
    if joined is not None and len(joined) < JOINED_BYTES_MAX:
        yield 0, lines, joined
        return
    if sum(map(len, lines)) + len(lines) <= JOINED_BYTES_MAX:
        yield 0, lines, b"\n".join(lines)
        return
    start = size = 0
    for end, line in enumerate(lines):
        if size and size + len(line) > JOINED_BYTES_MAX:
            yield start, lines[start:end], b"\n".join(lines[start:end])
            start, size = end, 0
        size += len(line) + 1
    if start < len(lines):
        yield start, lines[start:], b"\n".join(lines[start:])


def _searched(text: str | bytes) -> bool:
    """`holds_pan` without the pre-filter: the scan as the module docstring defines it."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    # A date-time becomes one letter: it joins no digits either side, as its own length of
    # letters would, and nothing after this reads lengths or positions.
    text = _DATE_TIMES.sub("x", normalized(text))
    if not _joins_thirteen(text):
        return False
    text = _BARRIERS.sub(_crossed_out, text)
    return any(
        _chain_holds_pan(chain.group())
        for chain in _CHAIN.finditer(text)
        if len(chain.group()) >= PAN_DIGITS_MIN
    )


# Stands in a path for a key that is itself a card number, so the path never repeats it.
_REDACTED_KEY = "<card number>"


def find_pan(value: object, path: str = "") -> str | None:
    """Where a PAN is in a decoded value (dicts, lists, strings, numbers): the dotted path of
    the first value or key holding one, "(record)" when only the value as a whole does (a
    number split over two strings), or None. Keys and values are all read, also numbers.

    A value made of JSON's own types (a Stripe object, a wire record) is read as its JSON text
    once (`_json_text`): only when that holds a card number are its keys and values read one
    by one, to say where."""
    text = _json_text(value)
    if text is not None and not holds_pan(text):
        return None
    return _find_pan_walked(value, path)


def _json_text(value: object) -> str | None:
    """The value's JSON text when reading it alone answers for every key and value in it, else
    None (then each is read on its own).

    That holds for dicts with string keys, lists, strings, integers, booleans and None, without
    a backslash of their own: in the text each key and value stands whole, between quotes or
    JSON's punctuation, as itself or in JSON escapes that the scanner reads as what they stand
    for (`normalized`; the letter of `\\n` separates as a newline does). None of the scanner's
    tokens (a digit group, a date-time, a UUID, a hex run, 20 digits) spans a quote, a comma, a
    colon or a bracket, and each sees punctuation where a value read alone has its start or its
    end: a card number in any key or value alone is one in the text.

    The exceptions go to the walk: a float holding a card number as str() writes it (orjson
    writes `1e-5` where str() writes `1e-05`, so each is read alone here), any other type (a
    subclass, a Decimal, a tuple), what orjson refuses (an integer past 64 bits, nesting past
    255), and a backslash of the value's own (JSON doubles it, and a `\\u0034` after it then
    no longer reads as the digit it reads as alone)."""
    pending: list[object] = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            assert isinstance(item, dict)
            for key in item:
                if type(key) is not str:
                    return None
            pending.extend(item.values())
        elif kind is list:
            assert isinstance(item, list)
            pending.extend(item)
        elif kind is float:
            if holds_pan(str(item)):
                return None
        elif kind not in _JSON_SCALARS:
            return None
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return None
    return None if b"\\\\" in text else text.decode()


_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def _find_pan_walked(value: object, path: str) -> str | None:
    """`find_pan` by reading every key and scalar alone, then the value as a whole."""
    for where, text in _walk(value, path):
        if holds_pan(text):
            return where or "(record)"
    if holds_pan(_as_text(value)):
        return path or "(record)"
    return None


def _as_text(value: object) -> str:
    """The value as JSON text (anything JSON has no type for as its str())."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def _walk(value: object, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every key and scalar; iterative, so that no nesting depth breaks it."""
    pending: list[tuple[str, object]] = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                text = str(key)
                label = _REDACTED_KEY if holds_pan(text) else text
                if label is _REDACTED_KEY:
                    yield (f"{where}.{label}" if where else label), text
                children.append((f"{where}.{label}" if where else label, child))
            pending.extend(reversed(children))
        elif isinstance(item, list | tuple):
            pending.extend(reversed([(f"{where}[{i}]", child) for i, child in enumerate(item)]))
        elif item is not None and not isinstance(item, bool):
            yield where, str(item)


def mask(text: str) -> str:
    """The text with every run of 6 or more digits masked but its last 4 (`424242******4242`
    becomes `************4242`), after decoding JSON escapes and Unicode digits. UUIDs are kept:
    they name payments, and the scanner never reads one as a card number."""
    return _RUN_OR_UUID.sub(_masked_run, normalized(text))


def _masked_run(match: re.Match[str]) -> str:
    run = match.group()
    if match.group("uuid") is not None:
        return run
    return "*" * (len(run) - MASK_KEEP) + run[-MASK_KEEP:]


def quoted(value: object) -> str:
    """A value fit to quote in a message: short, digit runs masked, and never a card number
    (one in any disguise is replaced whole)."""
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    text = str(value) if isinstance(value, Decimal) else repr(value)
    if holds_pan(text):
        return "(a value holding a card number, not shown)"
    text = mask(text)
    return text if len(text) <= _QUOTED_MAX else text[: _QUOTED_MAX - 3] + "..."


def redacted(text: str) -> str:
    """Text for a message or a log line with any card number in it masked: every digit of
    every group of joined digits of 6 or more but the last 4. A safety net for text built from
    input: the edges refuse card numbers before anything is said."""
    if not holds_pan(text):
        return text
    return _CHAIN.sub(_masked_chain, normalized(text))


def _masked_chain(match: re.Match[str]) -> str:
    chain = match.group()
    digits = sum(char.isdigit() for char in chain)
    if digits < MASK_RUN_MIN:
        return chain
    kept = 0
    masked = []
    for char in reversed(chain):
        if char.isdigit():
            kept += 1
            masked.append(char if kept <= MASK_KEEP else "*")
        else:
            masked.append(char)
    return "".join(reversed(masked))
