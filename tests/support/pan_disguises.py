"""Card numbers in disguise, for the tests of `ledger.pan` and of every edge that uses it.

Each planted number is a fresh random Luhn-valid PAN (13-19 digits), so that a leak is found by
its own digits and the masked tails of other numbers (`****4242`) never add up to one. The
checker `leaked` is deliberately simpler than the scanner: it keeps only the digits of a text
(after decoding JSON `\\uXXXX` escapes and Unicode digits) and looks for the planted digits.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable

# Test card numbers from Stripe's docs (docs.stripe.com/testing), 13 to 19 digits, with a 5 in
# doubled positions (5555...) and in every brand's form.
KNOWN_PANS = (
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "2223003122003222",
    "5200828282828210",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3056930009020004",
    "36227206271667",
    "3566002020360505",
    "6200000000000005",
    "6200000000000047",  # 16-digit UnionPay; 19-digit ones below
    "6205500000000000004",
    "4222222222222",
)


def luhn_check_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:  # doubled once the check digit is appended
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def random_pan(rng: random.Random, length: int | None = None) -> str:
    """A random Luhn-valid PAN of 13-19 digits starting like a card (3, 4, 5 or 6)."""
    size = length or rng.randint(13, 19)
    body = rng.choice("3456") + "".join(rng.choice("0123456789") for _ in range(size - 2))
    return body + luhn_check_digit(body)


def _grouped(pan: str, sep: str, size: int = 4) -> str:
    return sep.join(pan[i : i + size] for i in range(0, len(pan), size))


def _digits(pan: str, zero: int) -> str:
    return "".join(chr(zero + int(d)) for d in pan)


def _escaped(pan: str) -> str:
    return "".join(f"\\u{ord(d):04x}" for d in pan)


# Disguises of a PAN inside a string value (the text as it is, before any JSON encoding).
TEXT_DISGUISES: dict[str, Callable[[str], str]] = {
    "plain": lambda p: p,
    "spaces": lambda p: _grouped(p, " "),
    "double spaces": lambda p: _grouped(p, "  "),
    "dashes": lambda p: _grouped(p, "-"),
    "dots": lambda p: _grouped(p, "."),
    "slashes": lambda p: _grouped(p, "/"),
    "underscores": lambda p: _grouped(p, "_"),
    "tabs": lambda p: _grouped(p, "\t"),
    "newlines": lambda p: _grouped(p, "\n"),
    "commas": lambda p: _grouped(p, ","),
    "colons": lambda p: _grouped(p, ":"),
    "nbsp": lambda p: _grouped(p, "\u00a0"),
    "narrow nbsp": lambda p: _grouped(p, "\u202f"),
    "zero-width space": lambda p: _grouped(p, "\u200b"),
    "zero-width joiner": lambda p: _grouped(p, "\u200d"),
    "soft hyphen": lambda p: _grouped(p, "\u00ad"),
    "en dash": lambda p: _grouped(p, "\u2013"),
    "em dash": lambda p: _grouped(p, "\u2014"),
    "ideographic space": lambda p: _grouped(p, "\u3000"),
    "mixed separators": lambda p: p[:4] + " -" + p[4:8] + "./" + p[8:12] + "_\t" + p[12:],
    "every digit spaced": lambda p: " ".join(p),
    "every digit dotted": lambda p: ".".join(p),
    "groups 4-6-rest": lambda p: p[:4] + " " + p[4:10] + " " + p[10:],
    "groups of 3": lambda p: _grouped(p, " ", 3),
    "groups of 5": lambda p: _grouped(p, "-", 5),
    "parentheses": lambda p: "(" + _grouped(p, ")(") + ")",
    "brackets": lambda p: "[" + _grouped(p, "][") + "]",
    "quotes": lambda p: _grouped(p, "'"),
    "plus signs": lambda p: _grouped(p, "+"),
    "asterisks": lambda p: _grouped(p, "*"),
    "pipes": lambda p: _grouped(p, "|"),
    "hashes": lambda p: _grouped(p, "#"),
    "full-width digits": lambda p: _digits(p, 0xFF10),
    "arabic-indic digits": lambda p: _digits(p, 0x0660),
    "eastern arabic digits": lambda p: _digits(p, 0x06F0),
    "devanagari digits": lambda p: _digits(p, 0x0966),
    "bengali digits": lambda p: _digits(p, 0x09E6),
    "thai digits": lambda p: _digits(p, 0x0E50),
    "mathematical bold digits": lambda p: _digits(p, 0x1D7CE),
    "full-width spaced": lambda p: _grouped(_digits(p, 0xFF10), " "),
    "mixed scripts": lambda p: _digits(p[:8], 0xFF10) + p[8:],
    "combining accents": lambda p: "".join(d + "\u0301" for d in p),
    "glued after letters": lambda p: "card" + p,
    "glued before letters": lambda p: p + "exp1229",
    "letter and dash": lambda p: "A-" + p,
    "pan_ prefix": lambda p: "pan_" + p,
    "pi_ prefix": lambda p: "pi_" + p,
    "tml_ prefix": lambda p: "tml_" + p,
    "in a sentence": lambda p: f"customer card {p} paid",
    "in a sentence, spaced": lambda p: f"card: {_grouped(p, ' ')}.",
    "as a decimal": lambda p: p + ".00",
    "dotted and glued": lambda p: "x" + _grouped(p, ".") + "y",
    "after a 12-digit run": lambda p: "123456789012-" + p,
    "between words": lambda p: "pay" + _grouped(p, "_") + "now",
    "email-like": lambda p: p + "@example.com",
    "url path": lambda p: "https://example.com/cards/" + _grouped(p, "/"),
    "key=value": lambda p: "pan=" + p + "&exp=1229",
}


def json_string(text: str) -> str:
    """`text` as a JSON string literal written with only ASCII, the way json.dumps does."""
    import json

    return json.dumps(text)


# Disguises only raw JSON text can hold: what a JSON string literal looks like in the line.
RAW_JSON_DISGUISES: dict[str, Callable[[str], str]] = {
    "json unicode escapes": lambda p: '"' + _escaped(p) + '"',
    "json escapes, spaced": lambda p: (
        '"' + " ".join(_escaped(p[i : i + 4]) for i in range(0, len(p), 4)) + '"'
    ),
    "json tab escapes": lambda p: '"' + _grouped(p, "\\t") + '"',
    "json newline escapes": lambda p: '"' + _grouped(p, "\\n") + '"',
    "json slash escapes": lambda p: '"' + _grouped(p, "\\/") + '"',
    "json number": lambda p: p,
    "json float": lambda p: p + ".0",
    "json exponent": lambda p: p[0] + "." + p[1:] + f"e{len(p) - 1}",
    "split over two strings": lambda p: '["' + p[:8] + '", "' + p[8:] + '"]',
    "split over two numbers": lambda p: "[" + p[:8] + ", " + p[8:] + "]",
}

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def digits_of(text: str) -> str:
    """Only the digits of a text, as ASCII (JSON \\u escapes and Unicode digits decoded)."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    # Escaped surrogate pairs (characters past U+FFFF) back to the character.
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return "".join(
        str(unicodedata.digit(char)) for char in text if unicodedata.digit(char, None) is not None
    )


def leaked(pans: list[str], *texts: str | bytes) -> list[str]:
    """The planted PANs whose digits appear, in order and together, in any of the texts."""
    streams = [
        digits_of(t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t) for t in texts
    ]
    return [pan for pan in pans if any(pan in stream for stream in streams)]
