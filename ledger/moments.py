"""The one way a moment in time enters the ledger: RFC 3339 text with an explicit offset.

Lenient parsers take `"4500"` or `"1763737200.5"` for Unix time and accept any year Python
can hold; a record dated `9999-12-31T23:59:59-23:59` is then accepted today and makes every
later report overflow when it converts it to UTC. So a moment is accepted only as RFC 3339
(`2026-11-22T08:15:00Z`, `2026-11-22T09:15:00.250+01:00`) whose UTC instant lies in
[YEAR_MIN, YEAR_MAX]: every accepted moment can be converted, compared and formatted by any
later read. The wire format (`ledger.wire`), the command line (`adapters.cli`) and Stripe's
files and events (`adapters.stripe.files`, `adapters.http.webhooks`) all use it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

YEAR_MIN, YEAR_MAX = 2000, 2100
EARLIEST = datetime(YEAR_MIN, 1, 1, tzinfo=UTC)
LATEST = datetime(YEAR_MAX, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
FORMAT_HINT = "use RFC 3339 with an offset, e.g. 2026-11-22T08:15:00+00:00 or ...Z"

# RFC 3339 section 5.6 `date-time`: the offset is required; the separator may be `T`, `t` or
# a space (section 5.6, NOTE); fractions of any length are allowed (microseconds are kept).
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
# The same without the offset: a local time, which could be any of 26 hours' worth of instants.
_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?", re.ASCII)


class MomentError(ValueError):
    """Why a text or datetime is not an acceptable moment (safe to show: no input echoed)."""


def parse_moment(text: str) -> datetime:
    """The aware datetime of an RFC 3339 text, within the ledger's years; MomentError if not."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        if _LOCAL.fullmatch(text):
            raise MomentError(f"has no offset; {FORMAT_HINT}")
        raise MomentError(f"is not an RFC 3339 date-time with an offset; {FORMAT_HINT}")
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    offset = "+00:00" if match["offset"] in "Zz" else match["offset"]
    if int(match["date"][:4]) < YEAR_MIN - 1 or int(match["date"][:4]) > YEAR_MAX + 1:
        raise _out_of_range()
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{offset}")
    except ValueError as error:  # 2026-02-30, 25:00, an offset of 24 hours or more
        raise MomentError(f"is not a valid date and time ({error}); {FORMAT_HINT}") from None
    return check_moment(moment)


def check_moment(moment: datetime) -> datetime:
    """`moment` itself if it has an offset and lies within the ledger's years."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MomentError(f"has no offset; {FORMAT_HINT}")
    if moment.year < YEAR_MIN - 1 or moment.year > YEAR_MAX + 1:
        raise _out_of_range()  # converting it to UTC could overflow: refuse before
    if not EARLIEST <= moment <= LATEST:
        raise _out_of_range()
    return moment


def from_unix_seconds(value: object) -> datetime:
    """Stripe's own timestamps (`created`: whole Unix seconds), within the ledger's years."""
    if type(value) is not int:
        raise MomentError("is not a time in whole Unix seconds, as Stripe writes it")
    if not EARLIEST.timestamp() <= value <= LATEST.timestamp():
        raise _out_of_range()
    return datetime.fromtimestamp(value, UTC)


def _out_of_range() -> MomentError:
    return MomentError(
        f"is outside the years {YEAR_MIN}-{YEAR_MAX} (in UTC) the ledger accepts; "
        "check the clock of the device that wrote it"
    )
