"""Detection of full card numbers (PANs) anywhere in a record.

The ledger must never store a full card number. A PAN is 13 to 19 digits with a valid Luhn
check digit; POS software sometimes writes one with spaces or dashes between groups, so those
separators are accepted inside a candidate. A candidate must stand alone (no letter, digit,
underscore or dash right before or after it) so that UUIDs, ids like `pi_...` and timestamps
do not match.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_CANDIDATE = re.compile(r"(?<![0-9A-Za-z_\-])(?:\d[ \-]?){12,18}\d(?![0-9A-Za-z_\-])")


_DIGIT_RUN = re.compile(rb"\d(?:[ \-]?\d){12}")


def may_hold_pan(raw: bytes) -> bool:
    """Cheap pre-check of raw text: False means no 13-digit run (so no PAN) is in it.

    JSON escapes (\u0034 for "4") could hide digits from this check, so any backslash-u
    escape makes it answer True and the full walk runs.
    """
    return _DIGIT_RUN.search(raw) is not None or b"\\u" in raw


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_pan(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


# Stands in a path for a key that is itself a card number, so the path never repeats it.
_REDACTED_KEY = "<card number>"


def _holds_pan(text: str) -> bool:
    return any(_is_pan(match.group()) for match in _CANDIDATE.finditer(text))


def find_pan(value: Any, path: str = "") -> str | None:
    """Return the dotted path of the first value (or key) holding a PAN, or None."""
    for where, text in _walk(value, path):
        if _holds_pan(text):
            return where or "(record)"
    return None


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            text = str(key)
            label = _REDACTED_KEY if len(text) >= 13 and _holds_pan(text) else text
            child = f"{path}.{label}" if path else label
            if label is _REDACTED_KEY:
                yield child, text
            yield from _walk(item, child)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    elif isinstance(value, str):
        if len(value) >= 13:  # shorter strings cannot hold 13 digits
            yield path, value
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 10**12:
        yield path, str(value)
